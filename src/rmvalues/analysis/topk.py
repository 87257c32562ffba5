"""Top-k composition: per model and prompt, how many of the k best-scored items fall in each category.

The pool is every candidate (not only lexicon matches), treated with the same match/variant policy
as the ranks, so "top 10" means the ten highest-scoring tokens or normalised forms of the whole
run. Ties at the k-th place are broken by the item string, so the count is deterministic.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from rmvalues.analysis.ranks import (
    DEFAULT_POLICY,
    RANK_BY,
    MatchPolicy,
    candidate_keys,
    lexicon_frame,
    select_categories,
    term_keys,
)
from rmvalues.errors import InputError

if TYPE_CHECKING:
    import pandas as pd

#: Columns of :func:`topk_counts` (``by`` keys come first).
TOPK_COLUMNS = ("category", "k", "count", "share")


def top_items(
    scores: pd.DataFrame, k: int, policy: MatchPolicy = DEFAULT_POLICY, by: Sequence[str] = RANK_BY
) -> pd.DataFrame:
    """The ``k`` highest-scoring items per ``by`` group: ``*by, item, score, position`` (1 = best)."""
    if k < 1:
        raise InputError(f"k must be at least 1 (got {k}).")
    by = list(by)
    frame = scores[[*by, "score"]].assign(item=candidate_keys(scores, policy).to_numpy())
    if policy.match == "paper":
        frame = frame[frame["item"] != ""]
    if policy.variants == "mean":
        frame = frame.groupby([*by, "item"], as_index=False, observed=True)["score"].mean()
    frame = frame.sort_values([*by, "score", "item"], ascending=[True] * len(by) + [False, True])
    frame["position"] = frame.groupby(by, observed=True).cumcount() + 1
    return frame[frame["position"] <= k].reset_index(drop=True)[[*by, "item", "score", "position"]]


def topk_counts(
    scores: pd.DataFrame,
    lexicon: Any,
    k: int = 10,
    policy: MatchPolicy = DEFAULT_POLICY,
    *,
    categories: Sequence[str] | None = None,
    merge: Mapping[str, str] | None = None,
    by: Sequence[str] = RANK_BY,
) -> pd.DataFrame:
    """Count of top-``k`` items per category (zeros included) and its share of ``k``."""
    import pandas as pd

    by = list(by)
    top = top_items(scores, k, policy, by)
    lex = select_categories(lexicon_frame(lexicon), categories, merge)
    lex = lex.assign(item=term_keys(lex["term"], policy))
    hits = top.merge(lex[["item", "category"]].drop_duplicates(), on="item", how="inner")
    counts = hits.groupby([*by, "category"], observed=False).size().rename("count").reset_index()
    groups = top[by].drop_duplicates()
    grid = groups.merge(pd.DataFrame({"category": lex["category"].cat.categories}), how="cross")
    out = grid.merge(counts, on=[*by, "category"], how="left").fillna({"count": 0})
    out["count"] = out["count"].astype(int)
    out["k"] = k
    out["share"] = out["count"] / k
    return out[[*by, *TOPK_COLUMNS]]
