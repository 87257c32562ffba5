"""Type-II ANOVA (OLS) with Welch post hoc comparisons and Benjamini–Hochberg correction.

Used by the log-prob analysis (paper §4): ``rank ~ C(Category) * C(framing) * C(model)`` over one
row per unit, where every model is a fixed factor. Type II sums of squares (statsmodels
``anova_lm(typ=2)``) test each term after all others that do not contain it, so the result does not
depend on the order of the formula (unlike type I) and respects marginality (unlike type III).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations
from typing import TYPE_CHECKING

from rmvalues.errors import AnalysisError, InputError

if TYPE_CHECKING:
    import pandas as pd

#: Columns of :func:`type2_anova`.
ANOVA_COLUMNS = ("term", "sum_sq", "df", "F", "p")
#: Columns of :func:`welch_posthoc` (``by`` keys come first).
POSTHOC_COLUMNS = ("group_a", "group_b", "n_a", "n_b", "mean_a", "mean_b", "diff", "t", "df",
                   "p", "p_adj", "stars", "correction")


def type2_anova(data: pd.DataFrame, formula: str) -> pd.DataFrame:
    """Type-II ANOVA table of an OLS fit: term, sum_sq, df, F, p (last row ``Residual``)."""
    import statsmodels.formula.api as smf
    from statsmodels.stats.anova import anova_lm

    try:
        fit = smf.ols(formula, data=data).fit()
    except Exception as exc:  # patsy raises many types for a bad formula or missing column
        raise InputError(f"cannot fit {formula!r}: {exc}") from exc
    if fit.df_resid <= 0:
        raise AnalysisError(f"{formula!r} leaves no residual degrees of freedom ({len(data)} rows).")
    table = anova_lm(fit, typ=2).reset_index().rename(
        columns={"index": "term", "PR(>F)": "p", "df": "df"})
    table["df"] = table["df"].astype(int)
    return table[list(ANOVA_COLUMNS)]


def welch_posthoc(
    data: pd.DataFrame,
    value: str,
    group: str,
    *,
    by: Sequence[str] = (),
    correction: str = "bh",
) -> pd.DataFrame:
    """Pairwise Welch t-tests between the levels of ``group`` (within each ``by`` cell).

    All comparisons of the table are corrected together (BH by default), as one family.
    """
    import pandas as pd

    from rmvalues.analysis.hypothesis_tests import adjust_pvalues, stars, welch_test

    for col in [value, group, *by]:
        if col not in data.columns:
            raise InputError(f"data have no column {col!r}.")
    cells = data.groupby(list(by), observed=True, sort=True) if by else [((), data)]
    rows = []
    for key, cell in cells:
        key = key if isinstance(key, tuple) else (key,)
        groups = {g: d[value].to_numpy(dtype=float) for g, d in cell.groupby(group, observed=True, sort=True)}
        for a, b in combinations(groups, 2):
            x, y = groups[a], groups[b]
            if len(x) < 2 or len(y) < 2:
                raise AnalysisError(f"{group} {a!r} or {b!r} has fewer than two rows in {dict(zip(by, key))}.")
            t, df, p = welch_test(x, y)
            rows.append(dict(zip(by, key)) | {"group_a": a, "group_b": b, "n_a": len(x), "n_b": len(y),
                                              "mean_a": x.mean(), "mean_b": y.mean(),
                                              "diff": x.mean() - y.mean(), "t": t, "df": df, "p": p})
    if not rows:
        raise AnalysisError(f"{group!r} has fewer than two levels; nothing to compare.")
    out = pd.DataFrame(rows)
    out["p_adj"] = adjust_pvalues(out["p"], correction)  # type: ignore[arg-type]
    out["stars"] = [stars(p) for p in out["p_adj"]]
    out["correction"] = correction
    return out[[*by, *POSTHOC_COLUMNS]]
