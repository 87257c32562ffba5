"""Run manifests: the provenance written beside every output table.

A manifest records what produced a table (package and library versions, creation time) plus the
free-form fields the producing stage chooses (model id and revision sha, dtype, template hash, ...).
It is JSON, written atomically, and lives beside its output as ``<stem>.manifest.json``.

Also here: :func:`write_results`, which writes a long results table with the shared
:data:`~rmvalues.store.schema.SCORE_SCHEMA` and its manifest in one step, and :func:`stable_hash`,
a canonical hash of JSON-like data that stages use to key shards by their configuration.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import math
import platform
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rmvalues import __version__
from rmvalues.errors import StoreError
from rmvalues.io import atomic_path, atomic_write_text, sha256_file

if TYPE_CHECKING:
    import pandas as pd

#: Distributions whose versions can change the numbers; recorded in every manifest.
RECORDED_LIBRARIES: tuple[str, ...] = (
    "torch",
    "transformers",
    "tokenizers",
    "safetensors",
    "accelerate",
    "numpy",
    "pandas",
    "pyarrow",
    "gguf",
)

MANIFEST_SUFFIX = ".manifest.json"


def library_versions(names: tuple[str, ...] = RECORDED_LIBRARIES) -> dict[str, str | None]:
    """Installed version of each distribution (``None`` when not installed)."""
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _jsonable(value: Any) -> Any:
    """Convert tuples, paths, numpy scalars/arrays and dataclasses into plain JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _jsonable(dataclasses.asdict(value))
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if hasattr(value, "tolist"):  # numpy scalar / array, torch tensor
        return _jsonable(value.tolist())
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def stable_hash(data: Any, length: int = 16) -> str:
    """Hex sha256 (truncated to ``length``) of the canonical JSON form of ``data``.

    Dict key order does not matter; tuples and lists hash alike. Used to key shards by everything
    that affects the numbers, so a changed setting never reuses a stale shard.
    """
    canonical = json.dumps(_jsonable(data), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:length]


@dataclass(frozen=True)
class RunManifest:
    """Provenance of one output: who made it, with which versions, and the stage's own fields."""

    kind: str
    package_version: str
    libraries: dict[str, str | None]
    python: str
    created: str
    fields: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "package": "rmvalues",
            "package_version": self.package_version,
            "python": self.python,
            "libraries": dict(self.libraries),
            "created": self.created,
            "fields": _jsonable(self.fields),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunManifest:
        try:
            return cls(
                kind=data["kind"],
                package_version=data["package_version"],
                libraries=dict(data["libraries"]),
                python=data.get("python", ""),
                created=data["created"],
                fields=dict(data.get("fields", {})),
            )
        except (KeyError, TypeError) as exc:
            raise StoreError(f"manifest is missing or has a malformed entry: {exc}") from None


def build_manifest(kind: str, **fields: Any) -> RunManifest:
    """A manifest for output of ``kind`` (e.g. ``"rm-scores"``, ``"lm-logprobs"``), now, here.

    ``fields`` are free-form and stored as JSON (tuples become lists, paths strings).
    """
    return RunManifest(
        kind=kind,
        package_version=__version__,
        libraries=library_versions(),
        python=platform.python_version(),
        created=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        fields=dict(_jsonable(fields)),
    )


def manifest_path(output: str | Path) -> Path:
    """Where the manifest of ``output`` lives: ``dir/name.parquet`` -> ``dir/name.manifest.json``.

    For a directory output the manifest is ``dir/manifest.json``.
    """
    output = Path(output)
    if output.is_dir() or not output.suffix:
        return output / "manifest.json"
    return output.with_name(output.stem + MANIFEST_SUFFIX)


def write_manifest(path: str | Path, manifest: RunManifest) -> Path:
    """Write ``manifest`` as indented JSON to ``path``, atomically."""
    text = json.dumps(manifest.to_dict(), indent=2, sort_keys=False, ensure_ascii=False) + "\n"
    return atomic_write_text(path, text)


def read_manifest(path: str | Path) -> RunManifest:
    path = Path(path)
    try:
        data = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise StoreError(f"no manifest at {path}; the output was not written by rmvalues") from None
    except json.JSONDecodeError as exc:
        raise StoreError(f"manifest {path} is not valid JSON ({exc}); delete it and re-run") from None
    return RunManifest.from_dict(data)


def results_table(frame: pd.DataFrame):
    """``frame`` as a pyarrow Table with exactly :data:`SCORE_SCHEMA` (columns checked, cast)."""
    import pyarrow as pa

    from rmvalues.store.schema import SCORE_COLUMNS, SCORE_SCHEMA

    missing = [c for c in SCORE_COLUMNS if c not in frame.columns]
    if missing:
        raise StoreError(f"results table lacks column(s) {missing}; expected {list(SCORE_COLUMNS)}")
    try:
        return pa.Table.from_pandas(frame[list(SCORE_COLUMNS)], schema=SCORE_SCHEMA,
                                    preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError) as exc:
        raise StoreError(f"results table does not fit the score schema: {exc}") from None


def write_results(frame: pd.DataFrame, path: str | Path, manifest: RunManifest) -> Path:
    """Write a long results table to Parquet (``SCORE_SCHEMA``) with its manifest beside it.

    Both files are written atomically; the table is renamed into place last, so a table on disk
    always has its manifest and a crash leaves no partial table. Returns the table's path.
    """
    import pyarrow.parquet as pq

    path = Path(path)
    table = results_table(frame)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
        # What the table must hold when read back (a resumed run checks it, see ShardStore.load).
        fields = {**manifest.fields, "rows": table.num_rows, "content_sha256": sha256_file(tmp)}
        write_manifest(manifest_path(path), dataclasses.replace(manifest, fields=fields))
    return path


def read_results(path: str | Path) -> pd.DataFrame:
    """Read a results Parquet file (or a directory of shards) back into a DataFrame."""
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.exists():
        raise StoreError(f"no results at {path}")
    try:
        return pq.read_table(path).to_pandas()
    except (OSError, ValueError) as exc:  # ArrowInvalid (a ValueError) for truncated/garbage files
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise StoreError(
            f"{path} is not a readable Parquet table ({first}); it is truncated or not a results "
            "file. Re-run the stage that wrote it, or pass another file."
        ) from None
