"""Two-group tests per panel (e.g. Gemma vs Llama per category × framing), corrections and stars.

The paper's Fig 1 labels say "permutation test" (R ``MKinfer::perm.t.test``, Bonferroni over the
panels) but the reported p-values match the Welch t-test that ``perm.t.test`` also returns first;
so both are computed and reported side by side: Welch (``scipy.stats.ttest_ind(equal_var=False)``)
and a permutation test of the Welch statistic (``scipy.stats.PermutationMethod``, 9,999 resamples,
seeded).

The permutation p follows scipy's convention (:data:`PERMUTATION_CONVENTION`): the observed
labelling counts as one of the resamples on each side, so a p is never 0 and the smallest possible
value is ``2 / (R + 1)`` (0.0002 at R = 9,999; the one-sided-on-|t| form ``(b + 1) / (R + 1)`` would
give 0.0001, and the paper's ``MKinfer::perm.t.test`` counts ``mean(|T*| > |t|)`` with no +1 and can
return 0). A p at that limit is flagged, and :func:`permutation_resolution` says when the limit and
the correction make a star level unreachable (999 resamples, Bonferroni over 4 panels: never ***).
Each panel draws from its own random stream, spawned from the run's one seed
(``numpy.random.SeedSequence(seed).spawn``), so Monte Carlo errors are not shared across panels.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

from rmvalues.errors import AnalysisError, InputError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

#: How :func:`permutation_test` turns resamples into a two-sided p (stated in outputs).
PERMUTATION_CONVENTION = ("two-sided p = min(1, 2 min((#{T* <= t} + 1) / (R + 1), (#{T* >= t} + 1) / "
                          "(R + 1))) over R random relabellings (scipy); smallest possible p = 2 / (R + 1)")

Correction = Literal["bonferroni", "holm", "bh", "none"]
CORRECTIONS: dict[str, str] = {"bonferroni": "bonferroni", "holm": "holm", "bh": "fdr_bh"}

#: Columns of :func:`panel_tests`' table (panel keys come first).
PANEL_TEST_COLUMNS = (
    "group_a", "group_b", "n_a", "n_b", "mean_a", "mean_b", "sd_a", "sd_b", "diff",
    "t", "df", "p_welch", "p_perm", "p_welch_adj", "p_perm_adj", "stars_welch", "stars_perm",
    "p_perm_at_limit", "cohen_d", "cohen_d_lo", "cohen_d_hi", "d_rms", "d_rms_lo", "d_rms_hi",
    "d_av", "d_av_lo", "d_av_hi", "hedges_g", "hedges_g_lo", "hedges_g_hi", "ci_method",
    "correction", "n_resamples", "seed",
)


def welch_test(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Welch's t-test of ``x`` vs ``y``: (t, Welch–Satterthwaite df, two-sided p)."""
    from scipy import stats

    res = stats.ttest_ind(x, y, equal_var=False)
    return float(res.statistic), float(res.df), float(res.pvalue)


def permutation_test(
    x: np.ndarray, y: np.ndarray, *, n_resamples: int = 9999, seed: int | np.random.SeedSequence = 42
) -> float:
    """Two-sided permutation p-value of the Welch t statistic (group labels shuffled, seeded), by
    :data:`PERMUTATION_CONVENTION`."""
    import numpy as np
    from scipy import stats

    method = stats.PermutationMethod(n_resamples=n_resamples, rng=np.random.default_rng(seed))
    return float(stats.ttest_ind(x, y, equal_var=False, method=method).pvalue)


def permutation_floor(n_resamples: int) -> float:
    """The smallest p :func:`permutation_test` can return with ``n_resamples`` resamples."""
    return min(1.0, 2 / (n_resamples + 1))


def permutation_resolution(n_resamples: int, n_tests: int, correction: Correction = "bonferroni") -> str:
    """A sentence on the resolution of corrected permutation p-values: the smallest attainable
    corrected p and the best star level it allows (flagging levels it can never reach)."""
    floor = permutation_floor(n_resamples)
    # The smallest raw p gets multiplied by the family size under Bonferroni and Holm; under BH a
    # family all at the floor stays at the floor.
    best = min(1.0, floor * n_tests) if correction in ("bonferroni", "holm") else floor
    text = (f"permutation p-values: {n_resamples} resamples, smallest raw p 2/(R+1) = {floor:.2g}; "
            f"smallest {correction}-corrected p over {n_tests} panel(s) = {best:.2g}")
    if stars(best) != "***":
        text += f" (so no panel can reach ***; best possible {stars(best)}: raise the resamples)"
    return text


def adjust_pvalues(p: Sequence[float], method: Correction = "bonferroni") -> np.ndarray:
    """Family-wise / FDR adjusted p-values (statsmodels ``multipletests``); ``none`` passes through."""
    import numpy as np
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(p, dtype=float)
    if method == "none" or len(p) == 0:
        return p.copy()
    if method not in CORRECTIONS:
        raise InputError(f"unknown correction {method!r}; choose one of {[*CORRECTIONS, 'none']}.")
    return multipletests(p, method=CORRECTIONS[method])[1]


def stars(p: float) -> str:
    """The paper's labels: *** p < .001, ** p < .01, * p < .05, else n.s."""
    if p < 0.001:
        return "***"
    if p < 0.01:
        return "**"
    if p < 0.05:
        return "*"
    return "n.s."


def panel_tests(
    units: pd.DataFrame,
    *,
    by: Sequence[str] = ("category", "framing"),
    group: str = "base",
    value: str = "median_rank",
    correction: Correction = "bonferroni",
    n_resamples: int = 9999,
    seed: int = 42,
    n_boot: int = 2000,
    level: float = 0.95,
    ci_method: str = "percentile",
) -> pd.DataFrame:
    """Compare the two levels of ``group`` within each panel of ``by``: tests and effect sizes.

    Differences and effect sizes are first level minus second (Gemma − Llama with the default
    alphabetical/categorical order). p-values are corrected over the panels. Panel ``i`` (in sorted
    key order) draws its permutations and bootstrap resamples from the ``i``-th child of
    ``SeedSequence(seed)``. Columns: the ``by`` keys, then :data:`PANEL_TEST_COLUMNS`.
    """
    import numpy as np
    import pandas as pd

    from rmvalues.analysis.effect_sizes import BOOT_METHODS, EFFECT_SIZES, bootstrap_ci, effect_size

    for col in [*by, group, value]:
        if col not in units.columns:
            raise InputError(f"units have no column {col!r}.")
    levels = (list(units[group].cat.categories) if isinstance(units[group].dtype, pd.CategoricalDtype)
              else sorted(units[group].dropna().unique()))
    levels = [lv for lv in levels if lv in set(units[group])]
    if len(levels) != 2:
        raise AnalysisError(f"panel tests compare exactly two {group} levels; the data have {levels}.")
    if ci_method not in BOOT_METHODS:
        raise InputError(f"bootstrap CI method {ci_method!r}: choose one of {BOOT_METHODS}.")
    a, b = levels
    rows = []
    panels = list(units.groupby(list(by), observed=True, sort=True))
    streams = panel_streams(seed, len(panels))
    for (key, panel), (perm_seed, boot_seed) in zip(panels, streams):
        key = key if isinstance(key, tuple) else (key,)
        x = panel.loc[panel[group] == a, value].to_numpy(dtype=float)
        y = panel.loc[panel[group] == b, value].to_numpy(dtype=float)
        if len(x) < 2 or len(y) < 2:
            raise AnalysisError(f"panel {dict(zip(by, key))} has {len(x)} {a} and {len(y)} {b} units; "
                                "each group needs at least two.")
        t, df, p = welch_test(x, y)
        row = dict(zip(by, key)) | {
            "group_a": a, "group_b": b, "n_a": len(x), "n_b": len(y),
            "mean_a": x.mean(), "mean_b": y.mean(), "sd_a": x.std(ddof=1), "sd_b": y.std(ddof=1),
            "diff": x.mean() - y.mean(), "t": t, "df": df, "p_welch": p,
            "p_perm": permutation_test(x, y, n_resamples=n_resamples, seed=perm_seed),
        }
        for kind in EFFECT_SIZES:
            row[kind] = effect_size(x, y, kind)
            row[f"{kind}_lo"], row[f"{kind}_hi"] = bootstrap_ci(x, y, kind, n_boot=n_boot, level=level,
                                                               seed=boot_seed, method=ci_method)
        rows.append(row)
    out = pd.DataFrame(rows)
    out["p_welch_adj"] = adjust_pvalues(out["p_welch"], correction)
    out["p_perm_adj"] = adjust_pvalues(out["p_perm"], correction)
    out["stars_welch"] = [stars(p) for p in out["p_welch_adj"]]
    out["stars_perm"] = [stars(p) for p in out["p_perm_adj"]]
    out["p_perm_at_limit"] = np.isclose(out["p_perm"], permutation_floor(n_resamples), rtol=1e-9, atol=0)
    out["ci_method"] = ci_method
    out["correction"] = correction
    out["n_resamples"] = n_resamples
    out["seed"] = seed
    return out[[*by, *PANEL_TEST_COLUMNS]]


def panel_notes(panels: pd.DataFrame) -> list[str]:
    """What a panel table's numbers are: the effect-size definitions, the permutation p convention
    and its resolution limit under the table's correction."""
    from rmvalues.analysis.effect_sizes import EFFECT_NOTE

    first = panels.iloc[0]
    return [EFFECT_NOTE, PERMUTATION_CONVENTION,
            permutation_resolution(int(first["n_resamples"]), len(panels), first["correction"])]


def panel_streams(seed: int, n_panels: int) -> list[tuple[np.random.SeedSequence, np.random.SeedSequence]]:
    """Independent (permutation, bootstrap) seed sequences for each panel, from one run seed."""
    import numpy as np

    return [tuple(child.spawn(2)) for child in np.random.SeedSequence(seed).spawn(n_panels)]  # type: ignore[misc]


def group_summary(units: pd.DataFrame, by: Sequence[str] = ("framing",), value: str = "median_rank") -> pd.DataFrame:
    """Mean, SD (n − 1) and n of ``value`` per ``by`` group (the paper's framing means and SDs)."""
    return (units.groupby(list(by), observed=True)[value]
            .agg(mean="mean", sd="std", n="size").reset_index())
