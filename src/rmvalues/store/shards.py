"""Resumable per-(model, prompt) result shards and the merged table of a run.

Layout under the output directory ``OUT``::

    OUT/<model>.parquet                       merged table (SCORE_SCHEMA), written last
    OUT/<model>.manifest.json                 its manifest
    OUT/shards/<model>/<prompt>-<key>.parquet one shard per prompt, written atomically
    OUT/shards/<model>/<prompt>-<key>.manifest.json

``key`` hashes everything that affects the numbers (model revision, dtype, template, date string,
prefix ids, candidates, library versions, ...), so a re-run with the same settings finds its
finished shards and recomputes only the rest, while a changed setting never reuses a stale shard.
A shard is either complete on disk or absent: killing a run at any point loses at most the shard in
progress.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from rmvalues.errors import StoreError
from rmvalues.store.manifest import RunManifest, read_results, write_results

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd


def slug(name: str, limit: int = 80) -> str:
    """A file-name-safe form of a model or prompt id (``owner/name`` -> ``owner--name``)."""
    text = re.sub(r"[^A-Za-z0-9._-]+", "-", name.replace("/", "--")).strip("-.") or "unnamed"
    return text[:limit]


def check_writable(out: str | Path) -> Path:
    """Create ``out`` if needed and prove a file can be written there; :class:`StoreError` if not."""
    out = Path(out).expanduser()
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-probe-", dir=out)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise StoreError(
            f"output directory {out} is not writable ({exc.strerror or exc}); choose another --out "
            "or fix its permissions."
        ) from None
    return out


class ShardStore:
    """The shards and merged table of one model's run in one output directory."""

    def __init__(self, out: str | Path, model: str) -> None:
        self.out = check_writable(out)
        self.model = model
        self.shard_dir = self.out / "shards" / slug(model)

    def shard_path(self, prompt_id: str, key: str) -> Path:
        return self.shard_dir / f"{slug(prompt_id)}-{key}.parquet"

    def load(self, prompt_id: str, key: str) -> pd.DataFrame | None:
        """The finished shard for this prompt and configuration key, or ``None``."""
        path = self.shard_path(prompt_id, key)
        return read_results(path) if path.exists() else None

    def save(self, prompt_id: str, key: str, frame: pd.DataFrame, manifest: RunManifest) -> Path:
        return write_results(frame, self.shard_path(prompt_id, key), manifest)

    @property
    def table_path(self) -> Path:
        return self.out / f"{slug(self.model)}.parquet"

    def write_table(self, frame: pd.DataFrame, manifest: RunManifest) -> Path:
        return write_results(frame, self.table_path, manifest)
