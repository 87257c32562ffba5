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
progress. A reused shard is first checked against its manifest (key, prompt id, row count, content
sha256); one that fails is recomputed, with a warning.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
from collections.abc import Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rmvalues.errors import StoreError
from rmvalues.store.manifest import RunManifest, read_results, write_results

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

log = logging.getLogger("rmvalues.store")


def slug(name: str, limit: int = 80) -> str:
    """A file-name-safe form of a model or prompt id (``owner/name`` -> ``owner--name``)."""
    text = re.sub(r"[^A-Za-z0-9._-]+", "-", name.replace("/", "--")).strip("-.") or "unnamed"
    return text[:limit]


def check_writable(out: str | Path, *, create: bool = True) -> Path:
    """Prove a file can be written in ``out`` (created if ``create``); :class:`StoreError` if not.

    With ``create=False`` the probe runs in the nearest existing parent, so an early error later
    leaves no empty folder behind; the folder is made when the first file is written.
    """
    out = Path(out).expanduser()
    try:
        if create:
            out.mkdir(parents=True, exist_ok=True)
        elif out.exists() and not out.is_dir():
            raise NotADirectoryError(20, "not a directory")
        probe_dir = out
        while not probe_dir.exists() and probe_dir.parent != probe_dir:
            probe_dir = probe_dir.parent
        fd, probe = tempfile.mkstemp(prefix=".write-probe-", dir=probe_dir)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise StoreError(
            f"output directory {out} is not writable ({exc.strerror or exc}); choose another --out "
            "or fix its permissions."
        ) from None
    return out


def verify_shard(path: Path, *, prompt_id: str, key: str, rows: int | None = None,
                 expect: Mapping[str, Any] | None = None) -> str | None:
    """Why the stored shard at ``path`` cannot be reused, or ``None`` when it checks out.

    Checked against the manifest written with it: shard key, prompt id, the ``expect`` fields
    (e.g. the candidate-set hash), row count, and the file's sha256; then the rows themselves.
    """
    from rmvalues.io import sha256_file
    from rmvalues.store.manifest import manifest_path, read_manifest

    try:
        fields = read_manifest(manifest_path(path)).fields
    except StoreError as exc:
        return str(exc)
    wanted = {"shard_key": key, "prompt_id": prompt_id, **(expect or {})}
    for name, value in wanted.items():
        if fields.get(name) != value:
            return f"manifest {name} is {fields.get(name)!r}, expected {value!r}"
    if rows is not None and fields.get("rows") != rows:
        return f"manifest says {fields.get('rows')} rows, the run needs {rows}"
    if "content_sha256" not in fields:
        return "manifest has no content checksum (written by an older version)"
    if sha256_file(path) != fields["content_sha256"]:
        return "content checksum differs from the manifest (file changed or truncated)"
    return None


def run_lock(out: str | Path | None) -> AbstractContextManager[Any]:
    """The output folder's lock (:func:`rmvalues.io.output_lock`) for a block that loads a model
    or runs units into ``out``; nothing without an output folder.

    Every scoring run takes it before loading anything (``rmvalues score`` through
    :class:`~rmvalues.runs.worker.UnitWorker`, the executors' coordinator in
    :func:`rmvalues.scale.execute`), so a second run into the folder fails at once, not after
    minutes of loading; the run's :class:`ShardStore` holds it again (the lock is counted).
    """
    if out is None:
        return contextlib.nullcontext()
    from rmvalues.io import output_lock

    return output_lock(check_writable(out, create=False))


class ShardStore:
    """The shards and merged table of one model's run in one output directory.

    ``lock=True`` holds the folder's lock (:func:`rmvalues.io.output_lock`) for the store's life,
    so a second run into the same folder fails at once instead of redoing every shard.
    """

    def __init__(self, out: str | Path, model: str, *, lock: bool = False) -> None:
        self.out = check_writable(out, create=False)
        self.model = model
        self.shard_dir = self.out / "shards" / slug(model)
        #: ``(shard path, reason)`` of every stored shard that failed verification and was redone.
        self.rejected: list[tuple[Path, str]] = []
        self._release = None
        if lock:
            import weakref

            from rmvalues.io import output_lock

            held = output_lock(self.out)
            held.__enter__()
            self._release = weakref.finalize(self, held.__exit__, None, None, None)

    def release(self) -> None:
        """Give the folder's lock back now (else when the store is collected or at exit)."""
        if self._release is not None:
            self._release()

    def shard_path(self, prompt_id: str, key: str) -> Path:
        return self.shard_dir / f"{slug(prompt_id)}-{key}.parquet"

    def load(self, prompt_id: str, key: str, *, rows: int | None = None,
             expect: Mapping[str, Any] | None = None) -> pd.DataFrame | None:
        """The finished shard for this prompt and configuration key, or ``None``.

        A shard that fails :func:`verify_shard` (or whose rows disagree with its manifest) is
        logged, remembered in :attr:`rejected` and reported as absent, so the run recomputes it.
        """
        path = self.shard_path(prompt_id, key)
        if not path.exists():
            return None
        reason = verify_shard(path, prompt_id=prompt_id, key=key, rows=rows, expect=expect)
        frame = None
        if reason is None:
            try:
                frame = read_results(path)
            except StoreError as exc:
                reason = str(exc)
        if frame is not None and (len(frame) != (rows if rows is not None else len(frame))
                                  or set(frame["prompt_id"].astype(str)) != {prompt_id}):
            reason = f"it holds {len(frame)} rows of prompt(s) {sorted(set(frame['prompt_id']))[:3]}"
        if reason is not None:
            log.warning("stored shard %s fails verification (%s); recomputing it", path, reason)
            self.rejected.append((path, reason))
            return None
        return frame

    def save(self, prompt_id: str, key: str, frame: pd.DataFrame, manifest: RunManifest) -> Path:
        return write_results(frame, self.shard_path(prompt_id, key), manifest)

    @property
    def table_path(self) -> Path:
        return self.out / f"{slug(self.model)}.parquet"

    def write_table(self, frame: pd.DataFrame, manifest: RunManifest) -> Path:
        return write_results(frame, self.table_path, manifest)
