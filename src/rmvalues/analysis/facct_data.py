"""The FAccT 2025 paper's released files: a pinned registry (``facct.toml``), a fetcher, and the
importer of its full-vocabulary RM scores into ordinary score runs.

Files are pinned by the git blob id of the pinned commit's tree, and by sha256 where known; a score
CSV's sha256 is recorded on its first verified download (see ``facct.toml``). A local copy
(``$RMVALUES_FACCT_DATA`` or ``data_dir``) replaces the network and is verified the same way.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import tomllib
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from rmvalues.errors import ChecksumError, FetchError, InputError

if TYPE_CHECKING:
    import pandas as pd

FACCT_DATA_ENV = "RMVALUES_FACCT_DATA"
#: The released CSVs' prompt columns -> prompt ids of the built-in ``facct-3`` prompt set.
PROMPT_COLUMNS = {"greatest": "greatest_ever_one", "best": "best_ever_one", "worst": "worst_ever_one"}
FACCT_PROMPT_SET = "facct-3"
_RECORD = "recorded-sha256.json"


@dataclass(frozen=True)
class ReleasedFile:
    """One pinned file: upstream path, git blob id, sha256 ("" = recorded on first download)."""

    name: str
    path: str
    git_sha1: str
    sha256: str = ""
    prompt: str = ""

    @property
    def filename(self) -> str:
        return self.path.rsplit("/", 1)[-1]


@cache
def _registry() -> dict:
    return tomllib.loads(files("rmvalues.analysis").joinpath("facct.toml").read_text("utf-8"))


def release_commit() -> str:
    return _registry()["commit"]


def released_files() -> dict[str, ReleasedFile]:
    """The data files (prompts, AFINN, BNC, EloEverything) by name."""
    return {n: ReleasedFile(name=n, **spec) for n, spec in _registry()["files"].items()}


def released_scores() -> dict[str, ReleasedFile]:
    """The full-vocabulary score CSVs by model registry key."""
    return {n: ReleasedFile(name=n, **spec) for n, spec in _registry()["scores"].items()}


def elo_files() -> dict[str, ReleasedFile]:
    """The three EloEverything files, by name (``elo-...``)."""
    return {n: f for n, f in released_files().items() if n.startswith("elo-")}


def file_url(spec: ReleasedFile) -> str:
    return _registry()["url"].format(commit=release_commit(), path=quote(spec.path))


def git_blob_sha1(path: str | Path) -> str:
    """The git blob id of a file (sha1 of ``blob <size>\\0`` + content), as in a commit's tree."""
    path = Path(path)
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _local_copy(spec: ReleasedFile, data_dir: str | Path | None) -> Path | None:
    from rmvalues.fetch import local_data_root

    root = local_data_root(data_dir, FACCT_DATA_ENV, "FAccT data folder")
    if root is None:
        return None
    tail = spec.path.split("/", 1)[1]
    for candidate in (root / spec.path, root / tail, root / spec.filename):
        if candidate.is_file():
            return candidate
    return None


def _record_path() -> Path:
    from rmvalues.fetch import cache_dir

    return cache_dir("facct") / _RECORD


def recorded_sha256() -> dict[str, str]:
    """sha256 values recorded on first download, by upstream path."""
    path = _record_path()
    return json.loads(path.read_text("utf-8")) if path.exists() else {}


def _record(spec: ReleasedFile, sha256: str) -> None:
    from rmvalues.io import atomic_write_text

    data = recorded_sha256()
    data[spec.path] = sha256
    atomic_write_text(_record_path(), json.dumps(data, indent=2, sort_keys=True) + "\n")


def expected_sha256(spec: ReleasedFile) -> str:
    return spec.sha256 or recorded_sha256().get(spec.path, "")


def fetch_released(spec: ReleasedFile, data_dir: str | Path | None = None) -> Path:
    """The verified cached copy of ``spec`` (from the local copy if any, else its pinned URL)."""
    from rmvalues.fetch import cache_dir, is_cached
    from rmvalues.io import atomic_path, sha256_file

    dest = cache_dir("facct", *spec.path.split("/")[:-1]) / spec.filename
    known = expected_sha256(spec)
    if known and is_cached(dest, known):
        return dest
    local = _local_copy(spec, data_dir)
    with tempfile.TemporaryDirectory() as tmp:
        if local is not None:
            source, where = local, str(local)
        else:
            source, where = _download(spec, Path(tmp)), file_url(spec)
        blob = git_blob_sha1(source)
        if blob != spec.git_sha1:
            raise ChecksumError(
                f"{where}: git blob id {blob} differs from {spec.git_sha1}, the one of {spec.path} at "
                f"commit {release_commit()}. The file was not kept; use the pinned version."
            )
        actual = sha256_file(source)
        if known and actual != known:
            raise ChecksumError(f"{where}: sha256 {actual} differs from the pinned/recorded {known}.")
        with atomic_path(dest) as part:
            shutil.copyfile(source, part)
    if not known:
        _record(spec, actual)
    return dest


def _download(spec: ReleasedFile, into: Path) -> Path:
    import pooch

    url = file_url(spec)
    try:
        return Path(pooch.retrieve(url, known_hash=None, path=into, fname=spec.filename,
                                   progressbar=False))
    except Exception as exc:  # network errors come in many types
        raise FetchError(
            f"could not download {url} ({exc}). Check the network, or point --facct-data / "
            f"${FACCT_DATA_ENV} at a local copy of the repository's data/ folder."
        ) from exc


def fetch_data_file(name: str, data_dir: str | Path | None = None) -> Path:
    """A data file (``prompts``, ``afinn``, ``bnc``, ``elo-*``) by name, verified."""
    specs = released_files()
    if name not in specs:
        raise InputError(f"unknown FAccT data file {name!r}; known: {', '.join(specs)}.")
    return fetch_released(specs[name], data_dir)


# --- the full-vocabulary score CSVs -> score runs -------------------------------------------------


def read_facct_scores(path: str | Path, model: str) -> pd.DataFrame:
    """One released ``<org>--<model>.csv`` as a long results table (prompt ids of ``facct-3``).

    Empty score cells (tokens the authors did not score) are dropped, as the authors' loader does;
    ``frame.attrs['dropped']`` counts them per prompt.
    """
    import pandas as pd

    from rmvalues.analysis.importers import VOCAB_ID_COLUMNS, read_vocabulary_scores

    head = pd.read_csv(path, nrows=0).columns.tolist()
    want = list(VOCAB_ID_COLUMNS) + list(PROMPT_COLUMNS)
    if head != want:
        raise InputError(f"{path}: columns {head}, expected exactly {want} (a FAccT score CSV).")
    long = read_vocabulary_scores(path, model=model, missing="drop")
    long["prompt_id"] = long["prompt_id"].map(PROMPT_COLUMNS)
    return long


def model_from_facct_filename(path: str | Path) -> str:
    """``<org>--<model>.csv`` -> the registry key of hub id ``<org>/<model>`` (else the stem)."""
    from rmvalues.models.registry import find_model

    stem = Path(path).stem
    spec = find_model(stem.replace("--", "/", 1))
    return spec.key if spec is not None else stem


def is_facct_csv(path: str | Path) -> bool:
    """True if ``path`` is a CSV with exactly the FAccT score columns."""
    from rmvalues.analysis.importers import VOCAB_ID_COLUMNS

    path = Path(path)
    if path.suffix != ".csv" or not path.is_file():
        return False
    with path.open(encoding="utf-8") as fh:
        header = fh.readline().strip().split(",")
    return header == list(VOCAB_ID_COLUMNS) + list(PROMPT_COLUMNS)


def import_facct_scores(
    out_dir: str | Path,
    models: list[str] | None = None,
    *,
    data_dir: str | Path | None = None,
    sources: dict[str, Path] | None = None,
) -> list[Path]:
    """Write each released RM's scores as a score run ``out_dir/<model>.parquet`` with its manifest.

    ``sources`` maps model keys to CSV files already at hand (tests, other copies); otherwise each
    file is fetched (pinned, verified). Returns the written tables.
    """
    from rmvalues.models.registry import get_model
    from rmvalues.prompts import load_prompt_set
    from rmvalues.store.manifest import build_manifest, write_results

    catalogue = released_scores()
    chosen = list(sources) if sources is not None else (models or list(catalogue))
    unknown = [m for m in chosen if m not in catalogue and sources is None]
    if unknown:
        raise InputError(f"no released FAccT scores for {unknown}; known: {', '.join(catalogue)}.")
    prompts = {p.id: p.text for p in load_prompt_set(FACCT_PROMPT_SET).prompts}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for key in chosen:
        spec = catalogue.get(key)
        path = Path(sources[key]) if sources is not None else fetch_released(spec, data_dir)
        frame = read_facct_scores(path, key)
        from rmvalues.engines.candidates import CandidateSet
        from rmvalues.io import sha256_file

        tokens = frame.drop_duplicates("token_id").sort_values("token_id")
        cands = CandidateSet(kind="token", source="vocab", texts=tuple(tokens["candidate"]),
                             token_ids=tuple(int(i) for i in tokens["token_id"]))

        model = get_model(key) if key in catalogue else None
        manifest = build_manifest(
            "rm-scores", model=key, hub_id=model.hub_id if model else key, imported=True,
            source={"repository": "summerfieldlab/Christian_etal_2025_FAccT",
                    "commit": release_commit(), "path": spec.path if spec else str(path),
                    "url": file_url(spec) if spec else "", "git_sha1": git_blob_sha1(path),
                    "sha256": sha256_file(path)},
            prompt_set=FACCT_PROMPT_SET, prompt_ids=sorted(frame["prompt_id"].unique()),
            prompts={k: v for k, v in prompts.items() if k in set(frame["prompt_id"])},
            candidates={"kind": "token", "source": "vocab", "count": len(cands),
                        "hash": cands.content_hash()},
            dropped_missing=frame.attrs.get("dropped", {}),
        )
        written.append(write_results(frame, out / f"{key}.parquet", manifest))
    return written
