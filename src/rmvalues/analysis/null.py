"""Null baselines for the base × category interaction (beyond the paper).

A reviewer may ask whether *any* two word sets would differ between Gemma- and Llama-based RMs.
This module recomputes the interaction statistic for

* ``random_words``: random item sets drawn from the same candidate pool, with the lexicon's exact
  category structure (sizes and overlaps: each lexicon item is replaced by a random pool item), and
* ``shuffled_labels``: the lexicon's own items with their category memberships permuted,

and reports where the observed statistic falls. The statistic is the interaction sum of squares of
the base × category table of mean median ranks, ``Σ_bc (m_bc − m_b· − m_·c + m_··)²`` (for 2 × 2
it is DiD²/4, DiD the difference in differences). The p-value is the permutation p
``(1 + #{null ≥ observed}) / (1 + n_draws)`` (Phipson & Smyth 2010), exact under exchangeability.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from rmvalues.analysis.ranks import DEFAULT_POLICY, MatchPolicy, candidate_keys, join_lexicon
from rmvalues.errors import AnalysisError, InputError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

NullKind = Literal["random_words", "shuffled_labels"]
STATISTIC = "interaction SS of mean median ranks (base x category)"


@dataclass
class NullResult:
    """Observed statistic, its null distribution, and the permutation p-value."""

    kind: str
    observed: float
    null: np.ndarray = field(repr=False)
    p_value: float
    n_draws: int
    seed: int
    statistic: str = STATISTIC

    @property
    def percentile(self) -> float:
        """Share of null draws strictly below the observed statistic (0–100)."""
        import numpy as np

        return float(100 * np.mean(self.null < self.observed))

    def to_frame(self) -> pd.DataFrame:
        import numpy as np
        import pandas as pd

        return pd.DataFrame([{
            "kind": self.kind, "statistic": self.statistic, "observed": self.observed,
            "null_mean": float(np.mean(self.null)), "null_q95": float(np.quantile(self.null, 0.95)),
            "percentile": self.percentile, "p_value": self.p_value, "n_draws": self.n_draws,
            "seed": self.seed,
        }])


def interaction_statistic(
    scores: np.ndarray, membership: np.ndarray, row_base: np.ndarray
) -> float:
    """The statistic for one item set.

    ``scores``: (rows, items) — one row per (model, prompt); ``membership``: (items, categories)
    boolean; ``row_base``: (rows,) integer base codes. Items are ranked within each row (1 = best,
    ties averaged), each category's median rank is taken per row, and the base × category
    interaction SS of the cell means is returned.
    """
    import numpy as np

    medians = category_medians(scores, membership)
    bases = np.unique(row_base)
    cells = np.vstack([medians[row_base == b].mean(axis=0) for b in bases])
    inter = cells - cells.mean(axis=1, keepdims=True) - cells.mean(axis=0, keepdims=True) + cells.mean()
    return float(np.sum(inter**2))


def category_medians(scores: np.ndarray, membership: np.ndarray) -> np.ndarray:
    """(rows, categories) median rank of each category's items, items ranked within each row
    (1 = best, ties averaged)."""
    import numpy as np
    from scipy.stats import rankdata

    ranks = rankdata(-scores, axis=1, method="average")
    return np.column_stack([np.median(ranks[:, membership[:, c]], axis=1)
                            for c in range(membership.shape[1])])


def score_matrix(
    scores: pd.DataFrame, policy: MatchPolicy = DEFAULT_POLICY
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Pivot a results table to (rows = model × prompt, columns = items) under ``policy``.

    Returns the row keys, the item names and the matrix. Items not scored under every row are
    dropped (a null draw must be comparable across rows).
    """
    import numpy as np

    frame = scores[["model", "prompt_id", "score"]].assign(item=candidate_keys(scores, policy).to_numpy())
    if policy.match == "paper":
        frame = frame[frame["item"] != ""]
    wide = frame.pivot_table(index=["model", "prompt_id"], columns="item", values="score",
                             aggfunc="mean" if policy.variants == "mean" else "first", observed=True)
    wide = wide.dropna(axis=1)
    return wide.index.to_frame(index=False), np.asarray(wide.columns), wide.to_numpy(dtype=float)


def null_baseline(
    scores: pd.DataFrame,
    lexicon: Any,
    *,
    kind: NullKind = "random_words",
    policy: MatchPolicy = DEFAULT_POLICY,
    model_meta: Any = None,
    n_draws: int = 999,
    seed: int = 0,
    categories: Sequence[str] | None = None,
    merge: Mapping[str, str] | None = None,
) -> NullResult:
    """Where the observed base × category interaction falls among ``n_draws`` null item sets."""
    import numpy as np

    from rmvalues.analysis.units import model_factors

    if kind not in ("random_words", "shuffled_labels"):
        raise InputError(f"null kind {kind!r}: choose 'random_words' or 'shuffled_labels'.")
    if n_draws < 1:
        raise InputError(f"n_draws must be at least 1 (got {n_draws}).")
    rows, matrix, observed_idx, membership, _ = lexicon_membership(scores, lexicon, policy,
                                                                   categories=categories, merge=merge)
    meta = model_factors(rows["model"], model_meta).set_index("model")
    row_base = rows["model"].map(meta["base"]).astype("category").cat.codes.to_numpy()
    if len(np.unique(row_base)) < 2:
        raise AnalysisError("the null baseline compares base families; the data have only one.")
    return draw_null(matrix, observed_idx, membership,
                     lambda m, member: interaction_statistic(m, member, row_base),
                     kind=kind, n_draws=n_draws, seed=seed)


def lexicon_membership(
    scores: pd.DataFrame, lexicon: Any, policy: MatchPolicy = DEFAULT_POLICY, *,
    categories: Sequence[str] | None = None, merge: Mapping[str, str] | None = None,
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """The (model × prompt, items) score matrix, the columns of the lexicon's items, their
    (items, categories) membership and the categories (those of the joined lexicon, in order)."""
    import numpy as np

    rows, items, matrix = score_matrix(scores, policy)
    joined = join_lexicon(scores, lexicon, policy, categories=categories, merge=merge)
    cats = [c for c in joined["category"].cat.categories if c in set(joined["category"])] \
        if hasattr(joined["category"], "cat") else sorted(joined["category"].unique())
    if len(cats) < 2:
        raise AnalysisError(f"a category comparison needs two categories; matched only {cats}.")
    position = {name: i for i, name in enumerate(items)}
    lex_items = [i for i in dict.fromkeys(joined["item"]) if i in position]
    if len(lex_items) < 2:
        raise AnalysisError("fewer than two lexicon items are scored under every model and prompt.")
    member = joined[joined["item"].isin(lex_items)].assign(
        row=lambda d: d["item"].map({i: k for k, i in enumerate(lex_items)}))
    membership = np.zeros((len(lex_items), len(cats)), dtype=bool)
    membership[member["row"].to_numpy(), member["category"].map({c: j for j, c in enumerate(cats)}).to_numpy()] = True
    if not membership.any(axis=0).all():
        raise AnalysisError("a category has no item scored under every model and prompt.")
    return rows, matrix, np.array([position[i] for i in lex_items]), membership, cats


def draw_null(
    matrix: np.ndarray, observed_idx: np.ndarray, membership: np.ndarray,
    statistic: Callable[[np.ndarray, np.ndarray], float], *, kind: str, n_draws: int, seed: int,
    two_sided: bool = False, label: str = STATISTIC,
) -> NullResult:
    """``statistic(scores, membership)`` of the lexicon's items against ``n_draws`` random item
    sets (``random_words``) or label permutations (``shuffled_labels``), with its permutation p."""
    import numpy as np

    observed = statistic(matrix[:, observed_idx], membership)
    rng = np.random.default_rng(seed)
    null = np.empty(n_draws)
    n_items = len(observed_idx)
    for d in range(n_draws):
        if kind == "random_words":
            idx = rng.choice(matrix.shape[1], size=n_items, replace=False)
            null[d] = statistic(matrix[:, idx], membership)
        else:
            null[d] = statistic(matrix[:, observed_idx], membership[rng.permutation(n_items)])
    obs, draws = (abs(observed), np.abs(null)) if two_sided else (observed, null)
    # A relative tolerance keeps ties (equal statistics up to rounding) on the conservative side.
    p = (1 + int(np.sum(draws >= obs * (1 - 1e-12)))) / (1 + n_draws)
    return NullResult(kind=kind, observed=observed, null=null, p_value=p, n_draws=n_draws, seed=seed,
                      statistic=label)
