"""Lexicon join and within-(model, prompt) ranks of the lexicon items.

The paper ranks only the candidates that match the lexicon (1 = highest score, ties averaged, as
R's ``rank(-score)``). How candidates match terms differs between its figures, so the policy is
explicit and every output records it:

* ``match="exact"``: the candidate string equals the term (Fig 1, released dictionary scores);
* ``match="paper"``: the paper normaliser of both sides (ASCII only, stripped, lower-case) is equal
  (vocabulary tokens, Figs 4-5);
* ``variants="separate"`` keeps every matching candidate as its own item (Fig 4a), ``"mean"``
  averages the scores of all candidates sharing a normalised form first (Fig 5);
* ``rank_over="items"`` ranks each item once; ``"rows"`` ranks the (item, category) rows, which is
  what the authors' R code does after pivoting a multi-category lexicon (a term in two categories
  is ranked twice). The two agree when no term has two categories (the Big Two nouns).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

from rmvalues.errors import AnalysisError, InputError

if TYPE_CHECKING:
    import pandas as pd

    from rmvalues.lexicons import Lexicon

#: Columns of a ranked table (one row per model × prompt × item × category).
RANK_COLUMNS = ("model", "prompt_id", "item", "category", "score", "rank", "n_items")
#: Default ranking groups: every (model, prompt) is ranked on its own.
RANK_BY = ("model", "prompt_id")


@dataclass(frozen=True)
class MatchPolicy:
    """How candidates are matched to lexicon terms and ranked (see the module docstring)."""

    match: Literal["exact", "paper"] = "exact"
    variants: Literal["separate", "mean"] = "separate"
    rank_over: Literal["items", "rows"] = "items"

    def __post_init__(self) -> None:
        for name, allowed in (("match", ("exact", "paper")), ("variants", ("separate", "mean")),
                              ("rank_over", ("items", "rows"))):
            if getattr(self, name) not in allowed:
                raise InputError(f"match policy: {name}={getattr(self, name)!r}; choose one of {allowed}.")

    def describe(self) -> str:
        return f"match={self.match}, variants={self.variants}, rank_over={self.rank_over}"

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


#: Exact string match, each candidate its own item, each item ranked once (Fig 1).
DEFAULT_POLICY = MatchPolicy()
#: Fig 5 of the paper: normalised match, variants averaged, then ranked.
FIG5_POLICY = MatchPolicy(match="paper", variants="mean")


def lexicon_frame(lexicon: Lexicon | pd.DataFrame) -> pd.DataFrame:
    """A lexicon as a long ``term, category`` frame (a :class:`Lexicon` or such a frame)."""
    import pandas as pd

    frame = lexicon.to_frame() if hasattr(lexicon, "to_frame") else pd.DataFrame(lexicon)
    missing = [c for c in ("term", "category") if c not in frame.columns]
    if missing:
        raise InputError(f"lexicon table lacks column(s) {missing}; expected term, category.")
    frame = frame[["term", "category"]].copy()
    frame["category"] = frame["category"].astype(str)
    return frame


def lexicon_name(lexicon: Any) -> str:
    return getattr(lexicon, "name", None) or "custom lexicon"


def candidate_keys(scores: pd.DataFrame, policy: MatchPolicy) -> pd.Series:
    """The string each candidate of a results table is matched and ranked by under ``policy``:
    itself, or its paper-normalised form (the stored ``normalized`` column when there is one)."""
    from rmvalues.lexicons import paper_normalize

    if policy.match == "exact":
        return scores["candidate"]
    return scores["normalized"] if "normalized" in scores else scores["candidate"].map(paper_normalize)


def term_keys(terms: pd.Series, policy: MatchPolicy) -> pd.Series:
    """Lexicon terms as the keys :func:`candidate_keys` are compared with."""
    from rmvalues.lexicons import paper_normalize

    return terms if policy.match == "exact" else terms.map(paper_normalize)


def select_categories(
    lex: pd.DataFrame,
    categories: Sequence[str] | None = None,
    merge: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Keep ``categories`` (in that order) and rename them via ``merge`` (e.g. Care_Virtue -> Care).

    Merging can make a term belong to the same category twice; the duplicate rows are dropped, as
    the authors' ``distinct()`` does. The category column becomes ordered by first appearance.
    """
    import pandas as pd

    if categories is not None:
        unknown = sorted(set(categories) - set(lex["category"]))
        if unknown:
            raise AnalysisError(
                f"categories {unknown} are not in the lexicon; it has {sorted(set(lex['category']))}."
            )
        lex = lex[lex["category"].isin(categories)].copy()
        order = list(categories)
    else:
        order = list(dict.fromkeys(lex["category"]))
    if merge:
        lex = lex.assign(category=lex["category"].map(lambda c: merge.get(c, c)))
        order = list(dict.fromkeys(merge.get(c, c) for c in order))
    lex = lex.drop_duplicates(["term", "category"])
    lex["category"] = pd.Categorical(lex["category"], categories=order)
    return lex


def join_lexicon(
    scores: pd.DataFrame,
    lexicon: Lexicon | pd.DataFrame,
    policy: MatchPolicy = DEFAULT_POLICY,
    *,
    categories: Sequence[str] | None = None,
    merge: Mapping[str, str] | None = None,
    by: Sequence[str] = RANK_BY,
) -> pd.DataFrame:
    """Scores of the candidates that match the lexicon: ``*by, item, category, score``.

    ``item`` is the matched candidate string (``variants="separate"``) or the normalised form
    (``"mean"``); ``by`` are the ranking groups (add ``checkpoint`` for a training sweep).
    Raises :class:`AnalysisError` when nothing matches.
    """
    lex = select_categories(lexicon_frame(lexicon), categories, merge)
    by = list(by)
    need = [*by, "candidate", "score"]
    missing = [c for c in need if c not in scores.columns]
    if missing:
        raise InputError(f"results table lacks column(s) {missing}; is it a rmvalues results table?")
    lex = lex.assign(key=term_keys(lex["term"], policy))
    frame = scores[[*by, "candidate", "score"]].assign(key=candidate_keys(scores, policy).to_numpy())
    frame = frame[frame["key"].isin(set(lex["key"]))]
    if frame.empty:
        sample = ", ".join(repr(c) for c in scores["candidate"].drop_duplicates().head(5))
        raise AnalysisError(
            f"no candidate matches a term of {lexicon_name(lexicon)} under {policy.describe()} "
            f"(candidates look like {sample}). Check the lexicon, or try --match paper."
        )
    if policy.variants == "mean":
        frame = frame.groupby([*by, "key"], as_index=False, observed=True)["score"].mean()
        frame["item"] = frame["key"]
    else:
        frame = frame.rename(columns={"candidate": "item"})
    # The authors' distinct(): one row per (model, prompt, item) even if a file repeats a word.
    frame = frame.drop_duplicates([*by, "item"])
    joined = frame.merge(lex[["key", "category"]].drop_duplicates(), on="key", how="inner")
    return joined[[*by, "item", "category", "score"]].reset_index(drop=True)


def rank_items(
    joined: pd.DataFrame, policy: MatchPolicy = DEFAULT_POLICY, by: Sequence[str] = RANK_BY
) -> pd.DataFrame:
    """Add ``rank`` (1 = highest score, ties averaged) within each ``by`` group, and ``n_items``."""
    keys = list(by)
    if policy.rank_over == "rows":
        ranked = joined.copy()
        ranked["rank"] = ranked.groupby(keys, observed=True)["score"].rank(ascending=False, method="average")
    else:
        items = joined.drop_duplicates(keys + ["item"])[keys + ["item", "score"]].copy()
        items["rank"] = items.groupby(keys, observed=True)["score"].rank(ascending=False, method="average")
        ranked = joined.merge(items[keys + ["item", "rank"]], on=keys + ["item"], how="left")
    ranked["n_items"] = ranked.groupby(keys, observed=True)["rank"].transform("size").astype(int)
    return ranked[[*keys, "item", "category", "score", "rank", "n_items"]]


def reference_rank(scores: Sequence[float]) -> list[float]:
    """Obviously-correct average rank, 1 = highest (O(n²)); tests hold :func:`rank_items` to it."""
    out = []
    for s in scores:
        higher = sum(1 for t in scores if t > s)
        equal = sum(1 for t in scores if t == s)
        out.append(higher + (equal + 1) / 2)
    return out


def ranked_items(
    scores: pd.DataFrame,
    lexicon: Lexicon | pd.DataFrame,
    policy: MatchPolicy = DEFAULT_POLICY,
    *,
    categories: Sequence[str] | None = None,
    merge: Mapping[str, str] | None = None,
    by: Sequence[str] = RANK_BY,
) -> pd.DataFrame:
    """:func:`join_lexicon` then :func:`rank_items`."""
    joined = join_lexicon(scores, lexicon, policy, categories=categories, merge=merge, by=by)
    return rank_items(joined, policy, by)
