"""Statistics within one reward model, and across any grouping of runs (beyond the paper).

The paper compares base families (a mixed model over ten RMs). A user with one RM asks a simpler
question: does it rank category A above category B? The unit is the paper's: the median rank of a
category's items under one prompt. Under each prompt the two categories' median ranks are paired,
so the contrast is

    places_above = median_rank(B) − median_rank(A)     (rank 1 = best; positive: A ranks higher)

with a paired t-test and a Wilcoxon signed-rank test over the prompts, a bootstrap CI of the mean
(prompts resampled), and Cohen's d_z (mean / SD of the paired differences). Those tests treat the
prompts as the sample and the words as fixed: an RM that merely happens to like a few of these
particular words passes them. The null baselines answer the other question — would *any* word set
of these sizes (``random_words``) or any split of these words (``shuffled_labels``) differ as much?
— so a verdict needs both (see :func:`verdict`).

``group_comparison`` compares the A−B contrast between the levels of any column (model,
checkpoint, base family, ...), paired over prompts, for two or more groups without the paper's
two-families × two-models design.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import combinations
from typing import TYPE_CHECKING, Any

from rmvalues.errors import AnalysisError, InputError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

#: Columns of a contrasts table after the group columns.
CONTRAST_COLUMNS = (
    "framing", "category_a", "category_b", "n_prompts", "median_rank_a", "median_rank_b",
    "places_above", "places_above_lo", "places_above_hi", "a_better", "b_better", "t", "p_t", "p_wilcoxon",
    "d_z", "d_z_lo", "d_z_hi",
)
ALL = "all"


def categories_of(units: pd.DataFrame) -> list[str]:
    """The unit table's categories in lexicon order (categorical order, else first appearance)."""
    import pandas as pd

    col = units["category"]
    if isinstance(col.dtype, pd.CategoricalDtype):
        return [c for c in col.cat.categories if c in set(col)]
    return list(dict.fromkeys(col))


def paired_bootstrap(diffs: np.ndarray, *, n_boot: int = 2000, level: float = 0.95,
                     seed: int | np.random.SeedSequence = 0) -> tuple[float, float, float, float]:
    """Percentile bootstrap CIs (prompts resampled) of the mean difference and of d_z."""
    import numpy as np

    rng = np.random.default_rng(seed)
    boot = diffs[rng.integers(0, len(diffs), size=(n_boot, len(diffs)))]
    means = boot.mean(axis=1)
    sds = boot.std(axis=1, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        dz = np.where(sds > 0, means / np.where(sds > 0, sds, 1), np.nan)
    alpha = (1 - level) / 2
    lo, hi = np.quantile(means, [alpha, 1 - alpha])
    dz_lo, dz_hi = (np.nanquantile(dz, [alpha, 1 - alpha]) if np.isfinite(dz).any()
                    else (np.nan, np.nan))
    return float(lo), float(hi), float(dz_lo), float(dz_hi)


def reference_paired_bootstrap(diffs: Sequence[float], *, n_boot: int = 2000, level: float = 0.95,
                               seed: int = 0) -> tuple[float, float]:
    """One resample at a time, the same draws as :func:`paired_bootstrap`: the mean's CI."""
    import numpy as np

    diffs = np.asarray(diffs, dtype=float)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(diffs), size=(n_boot, len(diffs)))
    means = [sum(diffs[i] for i in row) / len(row) for row in idx]
    alpha = (1 - level) / 2
    lo, hi = np.quantile(means, [alpha, 1 - alpha])
    return float(lo), float(hi)


def paired_tests(diffs: np.ndarray) -> tuple[float, float, float]:
    """Paired t statistic, its two-sided p, and the two-sided Wilcoxon signed-rank p of ``diffs``
    (p = 1 when every difference is zero; NaN with fewer than two prompts)."""
    import numpy as np
    from scipy import stats

    if len(diffs) < 2:  # nothing to test over: reported as missing, never as significant
        return float("nan"), float("nan"), float("nan")
    if np.allclose(diffs, 0):
        return 0.0, 1.0, 1.0
    if np.allclose(diffs, diffs[0]):  # constant non-zero: t is infinite, p as small as it gets
        t, p_t = float(np.sign(diffs[0]) * np.inf), 0.0
    else:
        res = stats.ttest_1samp(diffs, 0.0)
        t, p_t = float(res.statistic), float(res.pvalue)
    p_w = float(stats.wilcoxon(diffs, zero_method="wilcox").pvalue) if np.any(diffs != 0) else 1.0
    return t, p_t, p_w


def _paired(frame: pd.DataFrame, a: str, b: str, keys: Sequence[str] = ("prompt_id",)) -> pd.DataFrame:
    """Median ranks of ``a`` and ``b`` side by side, one row per ``keys`` (prompts where both exist)."""
    wide = frame.pivot_table(index=list(keys), columns="category", values="median_rank", observed=True)
    missing = [c for c in (a, b) if c not in wide.columns]
    if missing:
        raise AnalysisError(f"no units for categor{'y' if len(missing) == 1 else 'ies'} {missing}; "
                            f"the units have {list(wide.columns)}.")
    return wide[[a, b]].dropna().rename(columns={a: "a", b: "b"})


def category_contrasts(
    units: pd.DataFrame,
    category_a: str | None = None,
    category_b: str | None = None,
    *,
    by: Sequence[str] = ("model",),
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 42,
) -> pd.DataFrame:
    """A − B contrasts per ``by`` group and framing (``"all"`` first, then each framing level).

    With no categories given: the two categories of a two-category lexicon, or every pair (lexicon
    order) of a larger one. Columns: ``by`` then :data:`CONTRAST_COLUMNS`.
    """
    import numpy as np
    import pandas as pd

    for col in [*by, "prompt_id", "category", "median_rank"]:
        if col not in units.columns:
            raise InputError(f"units have no column {col!r}.")
    cats = categories_of(units)
    if category_a is not None or category_b is not None:
        pairs = [(category_a or cats[0], category_b or next(c for c in cats if c != category_a))]
        for c in pairs[0]:
            if c not in cats:
                raise AnalysisError(f"category {c!r} is not among the units' categories {cats}.")
    elif len(cats) < 2:
        raise AnalysisError(f"a category contrast needs two categories; the units have {cats}.")
    else:
        pairs = list(combinations(cats, 2))
    has_framing = "framing" in units.columns and units["framing"].notna().all()
    groups = list(units.groupby(list(by), observed=True, sort=True)) if by else [((), units)]
    tasks = []
    for key, frame in groups:
        key = key if isinstance(key, tuple) else (key,)
        slices = [(ALL, frame)]
        if has_framing:
            slices += [(str(f), part) for f, part in frame.groupby("framing", observed=True, sort=True)]
        for a, b in pairs:
            tasks += [(key, framing, part, a, b) for framing, part in slices]
    streams = np.random.SeedSequence(seed).spawn(max(len(tasks), 1))
    rows = []
    for (key, framing, part, a, b), stream in zip(tasks, streams):
        wide = _paired(part, a, b)
        diffs = (wide["b"] - wide["a"]).to_numpy(dtype=float)
        t, p_t, p_w = paired_tests(diffs)
        lo, hi, dz_lo, dz_hi = paired_bootstrap(diffs, n_boot=n_boot, level=level, seed=stream)
        sd = diffs.std(ddof=1)
        rows.append(dict(zip(by, key)) | {
            "framing": framing, "category_a": a, "category_b": b, "n_prompts": len(diffs),
            "median_rank_a": float(wide["a"].mean()), "median_rank_b": float(wide["b"].mean()),
            "places_above": float(diffs.mean()), "places_above_lo": lo, "places_above_hi": hi,
            "a_better": int((diffs > 0).sum()), "b_better": int((diffs < 0).sum()), "t": t, "p_t": p_t, "p_wilcoxon": p_w,
            "d_z": float(diffs.mean() / sd) if sd > 0 else float("nan"), "d_z_lo": dz_lo, "d_z_hi": dz_hi,
        })
    return pd.DataFrame(rows, columns=[*by, *CONTRAST_COLUMNS])


def single_rm_nulls(
    scores: pd.DataFrame,
    lexicon: Any,
    category_a: str,
    category_b: str,
    *,
    policy: Any = None,
    by: Sequence[str] = ("model",),
    n_draws: int = 999,
    seed: int = 42,
    categories: Sequence[str] | None = None,
    merge: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Per ``by`` group, where the observed mean A − B contrast falls among random word sets of the
    same sizes and among label shuffles of the same words (two-sided permutation p)."""
    import numpy as np
    import pandas as pd

    from rmvalues.analysis.null import category_medians, draw_null, lexicon_membership
    from rmvalues.analysis.ranks import DEFAULT_POLICY

    policy = policy or DEFAULT_POLICY
    if n_draws < 1:
        raise InputError(f"null draws must be at least 1 (got {n_draws}).")
    rows = []
    groups = list(scores.groupby(list(by), observed=True, sort=True)) if by else [((), scores)]
    for key, part in groups:
        key = key if isinstance(key, tuple) else (key,)
        _, matrix, observed_idx, membership, cats = lexicon_membership(
            part.assign(model="|".join(map(str, key)) or "model"), lexicon, policy,
            categories=categories, merge=merge)
        missing = [c for c in (category_a, category_b) if c not in cats]
        if missing:
            raise AnalysisError(f"categories {missing} have no item scored under every prompt; "
                                f"the matched categories are {cats}.")
        pair = [cats.index(category_a), cats.index(category_b)]

        def statistic(m: np.ndarray, member: np.ndarray, pair: list[int] = pair) -> float:
            med = category_medians(m, member[:, pair])
            return float(np.mean(med[:, 1] - med[:, 0]))

        for kind in ("random_words", "shuffled_labels"):
            res = draw_null(matrix, observed_idx, membership, statistic, kind=kind, n_draws=n_draws,
                            seed=seed, two_sided=True,
                            label=f"mean over prompts of median rank {category_b} - {category_a}")
            rows.append(dict(zip(by, key)) | res.to_frame().iloc[0].to_dict()
                        | {"null_abs_q95": float(np.quantile(np.abs(res.null), 0.95))})
    return pd.DataFrame(rows)


def group_comparison(
    units: pd.DataFrame,
    group_by: str,
    category_a: str,
    category_b: str,
    *,
    pairs: Sequence[tuple[Any, Any]] | None = None,
    correction: str = "holm",
) -> pd.DataFrame:
    """The A − B contrast compared between levels of ``group_by``, paired over prompts.

    A group with several members (e.g. a base family of several models) contributes the mean of
    its members' contrasts under each prompt. ``pairs`` (default: every pair of levels, in order)
    says which levels to compare; p-values are corrected over the pairs.
    """
    import pandas as pd

    from rmvalues.analysis.hypothesis_tests import adjust_pvalues

    if group_by not in units.columns:
        raise InputError(f"--group-by {group_by!r}: the units have no such column; they have "
                         f"{[c for c in units.columns if c not in ('median_rank', 'n_items')]}.")
    members = [c for c in ("model", "checkpoint") if c in units.columns and c != group_by]
    wide = _paired(units, category_a, category_b, keys=[group_by, *members, "prompt_id"])
    wide["gap"] = wide["b"] - wide["a"]
    gap = wide.groupby([group_by, "prompt_id"], observed=True)["gap"].mean().unstack(group_by)
    levels = list(gap.columns)
    if len(levels) < 2:
        raise AnalysisError(f"--group-by {group_by}: the data have one level ({levels}); comparing "
                            "groups needs at least two.")
    rows = []
    for x, y in pairs or list(combinations(levels, 2)):
        both = gap[[x, y]].dropna()
        diffs = (both[y] - both[x]).to_numpy(dtype=float)
        t, p_t, p_w = paired_tests(diffs)
        rows.append({"group_by": group_by, "group_x": x, "group_y": y, "category_a": category_a,
                     "category_b": category_b, "n_prompts": len(diffs),
                     "places_above_x": float(both[x].mean()), "places_above_y": float(both[y].mean()),
                     "change": float(diffs.mean()), "t": t, "p_t": p_t, "p_wilcoxon": p_w})
    out = pd.DataFrame(rows)
    out["p_t_adj"] = adjust_pvalues(out["p_t"], correction)  # type: ignore[arg-type]
    out["p_wilcoxon_adj"] = adjust_pvalues(out["p_wilcoxon"], correction)  # type: ignore[arg-type]
    out["correction"] = correction
    return out


def verdict(contrast: Mapping[str, Any], nulls: pd.DataFrame | None = None, alpha: float = 0.05) -> bool:
    """Whether a contrast row counts as a preference: the paired tests over prompts (t and
    Wilcoxon) are significant and, when null baselines were drawn, so is the label shuffle (the
    words' category split matters, not just these particular words)."""
    if not (contrast["p_t"] < alpha and contrast["p_wilcoxon"] < alpha):
        return False
    if nulls is None or nulls.empty:
        return True
    shuffled = nulls[nulls["kind"] == "shuffled_labels"]
    return bool(shuffled.empty or (shuffled["p_value"] < alpha).all())


def describe_contrast(row: Mapping[str, Any], level: float = 0.95) -> str:
    """One sentence: "Communion ranks 12.3 places above Agency (95% CI 8.1 to 16.0) ..."."""
    a, b, d = row["category_a"], row["category_b"], row["places_above"]
    lo, hi, better = row["places_above_lo"], row["places_above_hi"], row["a_better"]
    if d < 0:
        a, b, d, lo, hi, better = b, a, -d, -hi, -lo, row["b_better"]
    where = "" if row["framing"] == ALL else f" under {row['framing']} prompts"
    return (f"{a} ranks {d:.1f} places above {b}{where} ({level:.0%} CI {lo:.1f} to {hi:.1f}; "
            f"higher under {better} of {row['n_prompts']} prompts; paired t-test p = {row['p_t']:.2g}, "
            f"Wilcoxon p = {row['p_wilcoxon']:.2g}; " + (
                f"Cohen's d_z = {abs(row['d_z']):.2f})" if row["d_z"] == row["d_z"]
                else "Cohen's d_z undefined: the same difference under every prompt)"))


def within_rm(result: Any, scores: pd.DataFrame, lexicon: Any, *, group_by: str | None = None,
              null_draws: int = 0, n_boot: int = 2000, seed: int = 42,
              categories: Sequence[str] | None = None, merge: Mapping[str, str] | None = None) -> None:
    """Fill an :class:`~rmvalues.analysis.pipeline.AnalysisResult` with the contrasts of each run,
    the null baselines (``null_draws`` > 0) and the comparison across ``group_by`` (default:
    checkpoints of a sweep, first against each later one; several models against each other)."""
    from rmvalues.analysis.grouped import checkpoint_pairs, two_categories

    units, keys = result.units, list(result.keys)
    if len(categories_of(units)) < 2:  # one category: ranks and units only, nothing to contrast
        result.notes.append("one category: no category contrast")
        return
    a, b = two_categories(units)
    result.contrasts = category_contrasts(units, by=keys, n_boot=n_boot, seed=seed)
    if null_draws:
        result.null = single_rm_nulls(scores, lexicon, a, b, policy=result.policy, by=keys,
                                      n_draws=null_draws, seed=seed, categories=categories, merge=merge)
    if group_by is None:
        group_by = ("checkpoint" if "checkpoint" in keys
                    else "model" if units["model"].nunique() > 1 else None)
    if group_by is not None:
        pairs = checkpoint_pairs(units) if group_by == "checkpoint" else None
        result.groups = group_comparison(units, group_by, a, b, pairs=pairs)


def run_label(row: Mapping[str, Any], keys: Sequence[str]) -> str:
    """``"rm1"`` or ``"rm1 @ checkpoint 30"``."""
    return " ".join(f"{'' if k == 'model' else f'@ {k} '}{row[k]}" for k in keys)


def summary_lines(contrasts: pd.DataFrame | None, groups: pd.DataFrame | None,
                  nulls: pd.DataFrame | None, keys: Sequence[str]) -> list[str]:
    """The within-RM answer as text: the headline contrast per run (all prompts, then by framing),
    its null baselines, and the group comparison."""
    if contrasts is None or contrasts.empty:
        return []
    first = contrasts.iloc[0]
    head = contrasts[(contrasts["category_a"] == first["category_a"])
                     & (contrasts["category_b"] == first["category_b"])]
    lines = [(f"Category contrast {first['category_a']} vs {first['category_b']} per run "
              "(median ranks paired over prompts; 1 = best):")]
    for _, run in head.groupby(list(keys), observed=True, sort=False):
        lines.append(f"  {run_label(run.iloc[0], keys)}:")
        lines += [f"    {describe_contrast(r)}" for r in run.to_dict("records")]
        if nulls is not None and not nulls.empty:
            sel = nulls
            for k in keys:
                sel = sel[sel[k] == run.iloc[0][k]]
            for r in sel.to_dict("records"):
                lines.append(f"    null {r['kind']:<16} |observed| {abs(r['observed']):7.2f}  null 95% of "
                             f"|draws| {r['null_abs_q95']:7.2f}  p = {r['p_value']:.3g} ({r['n_draws']} draws)")
    if len(set(zip(contrasts["category_a"], contrasts["category_b"]))) > 1:
        lines.append("  (every other pair of categories is in the contrasts table)")
    if groups is not None and not groups.empty:
        g = groups.iloc[0]
        lines.append(f"Across {g['group_by']} (places {g['category_a']} ranks above {g['category_b']}, paired "
                     f"over prompts; {g['correction']}-corrected):")
        for r in groups.to_dict("records"):
            lines.append(f"  {r['group_x']} -> {r['group_y']}: {r['places_above_x']:.2f} -> "
                         f"{r['places_above_y']:.2f} (change {r['change']:+.2f}; p_t {r['p_t_adj']:.2g}, "
                         f"p_wilcoxon {r['p_wilcoxon_adj']:.2g}; n = {r['n_prompts']})")
    return lines
