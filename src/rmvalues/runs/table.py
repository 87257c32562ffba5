"""Merge unit shards into the run's table, and join tables with a lexicon, in bounded memory.

:func:`merge_shards` streams record batches from each shard into one Parquet writer, so memory is
bounded by a batch, not by the run (10 RMs x 54 prompts x 256k tokens = 138M rows).
:func:`lexicon_join` lets DuckDB (under a memory limit, spilling to disk) keep only the rows whose
key matches a lexicon term, then runs the analysis' own :func:`~rmvalues.analysis.ranks.join_lexicon`
on that small remainder, so its result is the in-memory path's exactly (:func:`reference_lexicon_join`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rmvalues.errors import ExecutorError
from rmvalues.runs.keys import run_manifest_fields

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from rmvalues.analysis.ranks import MatchPolicy
    from rmvalues.runs.plan import Plan
    from rmvalues.store.manifest import RunManifest

#: Rows per record batch streamed from a shard into the merged file.
BATCH_ROWS = 1 << 16


def merge_shards(paths: Sequence[str | Path], target: str | Path, manifest: RunManifest, *,
                 batch_rows: int = BATCH_ROWS) -> Path:
    """Concatenate results shards (in order) into ``target`` with ``SCORE_SCHEMA``, atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from rmvalues.io import atomic_path
    from rmvalues.store.manifest import manifest_path, write_manifest
    from rmvalues.store.schema import SCORE_COLUMNS, SCORE_SCHEMA

    target = Path(target)
    if not paths:
        raise ExecutorError(f"nothing to merge into {target}: no shards given")
    # The shards' pandas metadata (nullable Int64 token ids) carries over, so the merged file reads
    # back exactly as a table written in one piece by write_results.
    schema = SCORE_SCHEMA.with_metadata(pq.read_schema(paths[0]).metadata)
    with atomic_path(target) as tmp:
        with pq.ParquetWriter(tmp, schema) as writer:
            for path in paths:
                for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows,
                                                                columns=list(SCORE_COLUMNS)):
                    writer.write_table(pa.Table.from_batches([batch]).cast(schema))
        write_manifest(manifest_path(target), manifest)
    return target


def merge_plan(plan: Plan, *, executor: str = "local") -> Path:
    """Merge a finished plan's shards into ``OUT/<model>.parquet`` with the run's manifest.

    Raises :class:`ExecutorError` naming the missing units when the run is not finished.
    """
    from rmvalues.store.manifest import build_manifest

    missing = plan.remaining()
    if missing:
        shown = ", ".join(u.id for u in missing[:5])
        raise ExecutorError(
            f"{plan.model}: {len(missing)} of {len(plan.units)} unit(s) are not finished ({shown}"
            f"{', ...' if len(missing) > 5 else ''}); re-run the same command to finish them.")
    spec = plan.spec
    manifest = build_manifest(
        "rm-scores", **run_manifest_fields(plan.context),
        paper_compatible=spec.paper_compatible, executor=executor, shard_size=spec.shard_size,
        shard_keys={u.id: u.key for u in plan.units},
        token_forwards=sum(u.token_forwards for u in plan.units))
    return merge_shards([plan.shard_path(u) for u in plan.units], plan.store.table_path, manifest)


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

    from rmvalues.analysis.ranks import (
        DEFAULT_POLICY,
        join_lexicon,
        lexicon_frame,
        select_categories,
    )
    from rmvalues.lexicons import paper_normalize

    policy = policy or DEFAULT_POLICY
    paths = [str(tables)] if isinstance(tables, (str, Path)) else [str(p) for p in tables]
    missing = [p for p in paths if not Path(p).exists()]
    if missing:
        raise ExecutorError(f"no results table at {missing[0]}; merge the run first")
    lex = select_categories(lexicon_frame(lexicon), categories, merge)
    column = "candidate" if policy.match == "exact" else "normalized"
    keys = lex["term"] if policy.match == "exact" else lex["term"].map(paper_normalize)
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

    from rmvalues.analysis.ranks import DEFAULT_POLICY, join_lexicon
    from rmvalues.store.manifest import read_results

    paths = [tables] if isinstance(tables, (str, Path)) else list(tables)
    frame = pd.concat([read_results(p) for p in paths], ignore_index=True)
    return join_lexicon(frame, lexicon, policy or DEFAULT_POLICY, **kwargs)
