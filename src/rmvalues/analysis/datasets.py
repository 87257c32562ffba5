"""The paper's released data files: a registry (``released.toml``) and a fetcher.

Files are fetched by name from the pinned commit into the cache (``rmvalues.fetch.fetch_url``,
sha256-checked), or copied from a local copy of the data (``--data DIR`` or
``$RMVALUES_PAPER_DATA``), still checked. Files the registry lists without a hash can only come
from a local copy and are used as they are (the report says so).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from functools import cache
from importlib.resources import files
from pathlib import Path

from rmvalues.errors import FetchError, InputError

PAPER_DATA_ENV = "RMVALUES_PAPER_DATA"


@dataclass(frozen=True)
class ReleasedDataset:
    """One folder of released files (see ``released.toml`` for the fields)."""

    name: str
    folder: str
    format: str
    lexicon: str
    prefixes: tuple[str, ...]
    description: str = ""
    files: dict[str, str] = field(default_factory=dict)
    runs: dict[str, dict[str, object]] = field(default_factory=dict)
    commit: str = ""
    url_pattern: str = ""

    @property
    def local_name(self) -> str:
        """The folder's last part: what a local copy calls it (``dict_big2_nouns``)."""
        return self.folder.rstrip("/").split("/")[-1]

    @property
    def pinned(self) -> bool:
        return bool(self.files) and all(self.files.values())

    def url(self, filename: str) -> str:
        return self.url_pattern.format(commit=self.commit, folder=self.folder, file=filename)


@cache
def released_datasets() -> dict[str, ReleasedDataset]:
    """All released datasets by name, in file order."""
    data = tomllib.loads(files("rmvalues.analysis").joinpath("released.toml").read_text("utf-8"))
    out = {}
    for name, spec in data["datasets"].items():
        out[name] = ReleasedDataset(
            name=name, folder=spec["folder"], format=spec["format"], lexicon=spec["lexicon"],
            prefixes=tuple(spec.get("prefixes", ())), description=spec.get("description", ""),
            files=dict(spec.get("files", {})), runs=dict(spec.get("runs", {})),
            commit=data["commit"], url_pattern=data["url"],
        )
    return out


def get_dataset(name: str) -> ReleasedDataset:
    datasets = released_datasets()
    if name not in datasets:
        raise InputError(f"unknown released dataset {name!r}; known: {', '.join(datasets)}.")
    return datasets[name]


def local_folder(dataset: ReleasedDataset, data_dir: str | Path | None) -> Path | None:
    """Where a local copy of ``dataset`` lives under ``data_dir`` (or ``$RMVALUES_PAPER_DATA``).

    Accepts the folder itself, a root holding ``<local_name>/``, or a clone of the repository.
    """
    from rmvalues.fetch import local_data_root

    root = local_data_root(data_dir, PAPER_DATA_ENV, "--data")
    if root is None:
        return None
    for candidate in (root / dataset.local_name, root / dataset.folder, root):
        if _holds(candidate, dataset):
            return candidate
    return None


def _holds(folder: Path, dataset: ReleasedDataset) -> bool:
    """True if ``folder`` holds files of ``dataset`` (a listed name, or a known file-name prefix)."""
    if not folder.is_dir():
        return False
    if dataset.files:
        return any((folder / f).exists() for f in dataset.files)
    return any(p.name.startswith(dataset.prefixes) for p in folder.glob("*.csv"))


def fetch_dataset(name: str, data_dir: str | Path | None = None) -> tuple[list[Path], bool]:
    """The files of a released dataset, verified where pinned: ``(paths, verified)``.

    Pinned files are fetched into the cache (from the local copy when there is one, else from the
    pinned URL). Unpinned datasets need a local copy; every ``.csv`` in it is used.
    """
    from rmvalues.fetch import cache_dir, fetch_url

    dataset = get_dataset(name)
    local = local_folder(dataset, data_dir)
    if dataset.pinned:
        dest = cache_dir("paper-data", dataset.local_name)
        paths = [fetch_url(dataset.url(f), sha, dest / f, local_dir=local,
                           what=f"released data {name}/{f}") for f, sha in dataset.files.items()]
        return paths, True
    if local is None:
        raise FetchError(
            f"released dataset {name!r} ({dataset.folder}) has no pinned hashes in the registry, so "
            f"it cannot be downloaded; pass --data DIR with a copy of {dataset.local_name}/ "
            f"(or set {PAPER_DATA_ENV})."
        )
    listed = [local / f for f in dataset.files if (local / f).exists()]
    paths = listed or sorted(local.glob("*.csv"))
    if not paths:
        raise FetchError(f"{local} holds none of the files of {name!r}.")
    return paths, False


def check_data_dir(data_dir: str | Path | None, names: list[str] | tuple[str, ...]) -> None:
    """Refuse a ``--data`` folder that holds none of the datasets asked for (a wrong path would
    otherwise fall back to cached copies, or skip everything, without a word)."""
    if data_dir is None:
        return
    datasets = [get_dataset(n) for n in names]
    if any(local_folder(d, data_dir) is not None for d in datasets):
        return
    expected = ", ".join(f"{d.local_name}/" for d in datasets)
    raise InputError(
        f"--data {data_dir} holds none of the expected sub-folders ({expected}) nor their files; "
        "point it at a copy of the released data (the folder holding them), or leave --data out "
        f"to use ${PAPER_DATA_ENV} or the pinned download.")


def file_origins(name: str, data_dir: str | Path | None = None) -> dict[str, str]:
    """Where each file of dataset ``name`` will come from, for the manifest: the cache, a local
    copy or the pinned URL (as :func:`fetch_dataset` chooses), and whether it is sha256-checked."""
    from rmvalues.fetch import cache_dir, is_cached

    dataset = get_dataset(name)
    local = local_folder(dataset, data_dir)
    if not dataset.pinned:
        if local is None:
            return {}
        listed = [local / f for f in dataset.files if (local / f).exists()]
        return {p.name: f"local copy {p} (unpinned, not checked)"
                for p in listed or sorted(local.glob("*.csv"))}
    dest = cache_dir("paper-data", dataset.local_name)
    out = {}
    for f, sha in dataset.files.items():
        if is_cached(dest / f, sha):
            out[f] = f"cache {dest / f} (sha256 verified)"
        elif local is not None:
            out[f] = f"local copy {local / f} (sha256 verified)"
        else:
            out[f] = f"download {dataset.url(f)} (sha256 verified)"
    return out
