"""Merge unit shards into the run's table in bounded memory.

:func:`merge_shards` streams record batches from each shard into one Parquet writer, so memory is
bounded by a batch, not by the run (10 RMs x 54 prompts x 256k tokens = 138M rows). Joining such
tables with a lexicon is :func:`rmvalues.analysis.lexicon_join.lexicon_join`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rmvalues.errors import ExecutorError
from rmvalues.runs.keys import run_manifest_fields

if TYPE_CHECKING:  # pragma: no cover
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
