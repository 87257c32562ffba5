"""Join results tables of any size with a lexicon, in bounded memory.

:func:`lexicon_join` lets DuckDB (under a memory limit, spilling to disk) keep only the rows whose
key matches a lexicon term, then runs the analysis' own :func:`~rmvalues.analysis.ranks.join_lexicon`
on that small remainder, so its result is the in-memory path's exactly (:func:`reference_lexicon_join`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rmvalues.analysis.ranks import (
    DEFAULT_POLICY,
    MatchPolicy,
    join_lexicon,
    lexicon_frame,
    select_categories,
    term_keys,
)
from rmvalues.errors import ExecutorError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd


def lexicon_join(
    tables: str | Path | Sequence[str | Path],
    lexicon: Any,
    policy: MatchPolicy | None = None,
    *,
    categories: Sequence[str] | None = None,
    merge: Mapping[str, str] | None = None,
    memory_limit: str = "2GB",
    temp_directory: str | Path | None = None,
    threads: int | None = None,
) -> pd.DataFrame:
    """:func:`~rmvalues.analysis.ranks.join_lexicon` over results Parquet files of any size.

    DuckDB streams the files and keeps only rows whose key (``candidate`` for exact matching,
    ``normalized`` for the paper's) is a lexicon term; the rest of the join runs in pandas on them.
    """
    import duckdb

    policy = policy or DEFAULT_POLICY
    paths = [str(tables)] if isinstance(tables, (str, Path)) else [str(p) for p in tables]
    missing = [p for p in paths if not Path(p).exists()]
    if missing:
        raise ExecutorError(f"no results table at {missing[0]}; merge the run first")
    lex = select_categories(lexicon_frame(lexicon), categories, merge)
    column = "candidate" if policy.match == "exact" else "normalized"
    keys = term_keys(lex["term"], policy)
    import pandas as pd

    terms = pd.DataFrame({"key": sorted(set(keys))})
    con = duckdb.connect(config={"memory_limit": memory_limit,
                                 **({"threads": threads} if threads else {})})
    try:
        if temp_directory is not None:
            con.execute("SET temp_directory = ?", [str(temp_directory)])
        con.register("terms", terms)
        rows = con.execute(
            "SELECT model, prompt_id, candidate, normalized, score FROM read_parquet(?) "
            f"WHERE {column} IN (SELECT key FROM terms)", [paths]).df()
    finally:
        con.close()
    rows["score"] = rows["score"].astype("float32")
    return join_lexicon(rows, lexicon, policy, categories=categories, merge=merge)


def reference_lexicon_join(tables: str | Path | Sequence[str | Path], lexicon: Any,
                           policy: MatchPolicy | None = None, **kwargs: Any) -> pd.DataFrame:
    """The in-memory path: read every table, then :func:`join_lexicon` (tests hold them equal)."""
    import pandas as pd

    from rmvalues.store.manifest import read_results

    paths = [tables] if isinstance(tables, (str, Path)) else list(tables)
    frame = pd.concat([read_results(p) for p in paths], ignore_index=True)
    return join_lexicon(frame, lexicon, policy or DEFAULT_POLICY, **kwargs)
