"""What multi-token response search found: margins over the best single token and the
value-lexicon composition of the found responses.

Input: the results table of :func:`rmvalues.runs.search.search_responses` (one row per reported
response: ``model, prompt_id, method, direction, length, rank, response, score, ...``) and
optionally a single-token score run (``prompt_id, candidate, score``; ``model`` too when it holds
several models).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rmvalues.errors import AnalysisError

if TYPE_CHECKING:
    import pandas as pd

SEARCH_BY: tuple[str, ...] = ("model", "prompt_id", "method", "direction")
#: Columns of :func:`search_margins` (after ``SEARCH_BY``).
MARGIN_COLUMNS = ("length", "response", "score", "single", "single_score", "margin")
#: Columns of :func:`response_composition` (after its ``by`` keys).
COMPOSITION_COLUMNS = ("lexicon", "category", "words", "responses", "total_words", "share")
_WORD = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)?")


def _check(results: pd.DataFrame, needed: Sequence[str]) -> None:
    missing = [c for c in needed if c not in results.columns]
    if missing:
        raise AnalysisError(f"the search results lack column(s) {missing}; pass the table "
                            "`rmvalues search` wrote")


def read_singles(singles: Any) -> pd.DataFrame:
    """A stored single-token score run (a results Parquet file or folder, or a frame)."""
    import pandas as pd

    if isinstance(singles, pd.DataFrame):
        frame = singles
    else:
        from rmvalues.store.manifest import read_results

        path = Path(singles)
        if path.is_dir():  # a `rmvalues score --out` folder: its merged table(s)
            tables = sorted(p for p in path.glob("*.parquet"))
            if not tables:
                raise AnalysisError(f"{path} holds no score table; pass the folder of a finished "
                                 "`rmvalues score` run or its .parquet file")
            path = tables[0]
        frame = read_results(path)
    missing = {"prompt_id", "token_id", "score"} - set(frame.columns)
    if missing:
        raise AnalysisError(f"the stored score run lacks column(s) {sorted(missing)}; pass the output "
                         "of `rmvalues score`")
    return frame


def best_responses(results: pd.DataFrame) -> pd.DataFrame:
    """Per model, prompt, method and direction: the best response of the longest length found."""
    _check(results, [*SEARCH_BY, "length", "rank", "score"])
    top = results[results["rank"] == 1]
    longest = top.groupby(list(SEARCH_BY), observed=True)["length"].transform("max")
    return top[top["length"] == longest].reset_index(drop=True)


def _sign(direction: str) -> float:
    return 1.0 if direction == "max" else -1.0


def search_margins(results: pd.DataFrame, singles: pd.DataFrame | None = None) -> pd.DataFrame:
    """How far the best k-token response beats the best single token, per prompt and direction.

    The best single token comes from ``singles`` (a stored single-token score run) when given,
    else from the search's own one-token responses (beam search reports the best of every length;
    its first step scores every allowed token). ``margin`` = ``score - single_score`` for ``max``
    and ``single_score - score`` for ``min``: positive when the longer response is better.
    """
    import pandas as pd

    best = best_responses(results)
    rows = []
    for record in best.itertuples(index=False):
        sign = _sign(record.direction)
        single, single_score = None, math.nan
        if singles is not None:
            pool = singles[singles["prompt_id"] == record.prompt_id]
            if "model" in pool.columns and record.model in set(pool["model"]):
                pool = pool[pool["model"] == record.model]
            pool = pool.dropna(subset=["score"])
            if len(pool):
                pick = pool.loc[(sign * pool["score"]).idxmax()]
                single, single_score = str(pick["candidate"]), float(pick["score"])
        else:
            ones = results[(results["model"] == record.model)
                           & (results["prompt_id"] == record.prompt_id)
                           & (results["method"] == record.method)
                           & (results["direction"] == record.direction)
                           & (results["length"] == 1)]
            if len(ones):
                pick = ones.loc[(sign * ones["score"]).idxmax()]
                single, single_score = str(pick["response"]), float(pick["score"])
        rows.append({**{k: getattr(record, k) for k in SEARCH_BY}, "length": int(record.length),
                     "response": record.response, "score": float(record.score), "single": single,
                     "single_score": single_score,
                     "margin": sign * (float(record.score) - single_score)})
    return pd.DataFrame(rows, columns=[*SEARCH_BY, *MARGIN_COLUMNS])


def response_words(text: str) -> list[str]:
    """The words of a response, lower-cased (letters, with an inner apostrophe)."""
    return [w.lower() for w in _WORD.findall(text)]


def response_composition(
    results: pd.DataFrame,
    lexicon: Any,
    *,
    by: Sequence[str] = ("model", "method", "direction"),
    best_only: bool = True,
) -> pd.DataFrame:
    """Value-lexicon categories of the words of the found responses, per ``by`` group.

    ``words``: occurrences of the category's terms among the responses' words (a word in two
    categories counts in both); ``responses``: responses with at least one such word;
    ``share``: ``words / total_words``. ``best_only``: only each search's best response
    (:func:`best_responses`), else every reported response. Wildcard terms (``achiev*``) match as
    in LIWC.
    """
    import pandas as pd

    from rmvalues.lexicons import load_lexicon

    lex = load_lexicon(lexicon) if not hasattr(lexicon, "categories") else lexicon
    frame = best_responses(results) if best_only else results
    _check(frame, [*by, "response"])
    words = frame.assign(word=frame["response"].map(response_words), response_index=range(
        len(frame)))
    total = words.assign(n=words["word"].map(len)).groupby(list(by), observed=True)["n"].sum()
    exploded = words.explode("word").dropna(subset=["word"])
    expanded = lex.expand(sorted(set(exploded["word"])))
    lookup = {term.lower(): cats for term, cats in expanded.entries.items()}
    hits = [(*(getattr(r, k) for k in by), cat, r.response_index)
            for r in exploded.itertuples(index=False) for cat in lookup.get(r.word, ())]
    hit_frame = pd.DataFrame(hits, columns=[*by, "category", "response_index"])
    counts = hit_frame.groupby([*by, "category"], observed=True).agg(
        words=("response_index", "size"), responses=("response_index", "nunique"))
    groups = frame[list(by)].drop_duplicates()
    grid = groups.merge(pd.DataFrame({"category": list(lex.categories)}), how="cross")
    out = grid.merge(counts.reset_index(), on=[*by, "category"], how="left").fillna(
        {"words": 0, "responses": 0})
    out = out.merge(total.rename("total_words").reset_index(), on=list(by), how="left")
    out["words"] = out["words"].astype(int)
    out["responses"] = out["responses"].astype(int)
    out["share"] = out["words"] / out["total_words"].where(out["total_words"] > 0)
    out["lexicon"] = lex.name
    if not len(out):
        raise AnalysisError("no search results to analyse")
    return out[[*by, *COMPOSITION_COLUMNS]]


def write_search_analysis(results: pd.DataFrame, out: str | Path, *,
                          lexicons: Sequence[Any] = ("big-two-nouns", "mfd2"),
                          singles: Any = None, source: Any = None) -> list[Path]:
    """Write ``search_margins`` and (with ``lexicons``) ``search_composition`` as Parquet beside
    one manifest (``search_analysis.manifest.json``); the report reads them as tables."""
    import pandas as pd

    from rmvalues.io import atomic_path
    from rmvalues.store.manifest import build_manifest, write_manifest

    out = Path(out)
    frames = {"search_margins": search_margins(
        results, read_singles(singles) if singles is not None else None)}
    if lexicons:
        frames["search_composition"] = pd.concat(
            [response_composition(results, lex) for lex in lexicons], ignore_index=True)
    written = []
    for stem, frame in frames.items():
        with atomic_path(out / f"{stem}.parquet") as tmp:
            frame.to_parquet(tmp, index=False)
        written.append(out / f"{stem}.parquet")
    write_manifest(out / "search_analysis.manifest.json", build_manifest(
        "rm-search-analysis", source=source, lexicons=[str(x) for x in lexicons],
        singles=str(singles) if isinstance(singles, (str, Path)) else None,
        tables=[p.name for p in written]))
    return written
