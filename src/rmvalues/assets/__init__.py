"""Real test assets (tokenizers, chat templates, small models) fetched from the package index.

``fetch_asset(name)`` downloads and verifies one asset into ``<cache>/assets/<name>/``;
``asset_path(name)`` returns that folder and, when it is missing, fails with the command to run —
tests call it so that a missing asset is an error with a fix, never a silent skip.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from pathlib import Path

from rmvalues.errors import AssetError
from rmvalues.fetch import PipSource, cache_dir, fetch_pip_members, is_cached
from rmvalues.io import atomic_path, sha256_file

FETCH_HINT = "run `rmvalues assets fetch` (or `make assets`) with access to the package index"


@dataclass(frozen=True)
class AssetFile:
    source: PipSource
    dest: str
    sha256: str


@dataclass(frozen=True)
class Asset:
    name: str
    description: str
    files: tuple[AssetFile, ...]
    assemble_dest: str | None = None
    assemble_sha256: str | None = None

    @property
    def directory(self) -> Path:
        return cache_dir("assets", self.name)

    @property
    def outputs(self) -> dict[str, str]:
        """Final files of the asset: ``{dest: sha256}`` (parts of an assembled file excluded)."""
        if self.assemble_dest:
            return {self.assemble_dest: self.assemble_sha256 or ""}
        return {f.dest: f.sha256 for f in self.files}


@cache
def registry() -> dict[str, Asset]:
    """All known assets, read from the package's ``registry.toml``."""
    data = tomllib.loads(files("rmvalues.assets").joinpath("registry.toml").read_text("utf-8"))
    out: dict[str, Asset] = {}
    for name, spec in data["assets"].items():
        entries = []
        for f in spec["files"]:
            source = PipSource(
                requirement=f.get("requirement", spec.get("requirement")),
                member=f["member"],
                python_version=f.get("python_version", spec.get("python_version")),
                sdist=f.get("sdist", spec.get("sdist", False)),
                archive_sha256=f.get("archive_sha256", spec.get("archive_sha256")),
            )
            entries.append(AssetFile(source=source, dest=f["dest"], sha256=f["sha256"]))
        assemble = spec.get("assemble", {})
        out[name] = Asset(
            name=name,
            description=spec["description"],
            files=tuple(entries),
            assemble_dest=assemble.get("dest"),
            assemble_sha256=assemble.get("sha256"),
        )
    return out


def get_asset(name: str) -> Asset:
    try:
        return registry()[name]
    except KeyError:
        raise AssetError(
            f"unknown asset {name!r}; known assets: {', '.join(sorted(registry()))}"
        ) from None


def is_fetched(name: str) -> bool:
    asset = get_asset(name)
    return all((asset.directory / dest).exists() for dest in asset.outputs)


def fetch_asset(name: str) -> Path:
    """Download, verify (and for split files, reassemble) one asset; return its folder."""
    asset = get_asset(name)
    directory = asset.directory
    if asset.assemble_dest and is_cached(directory / asset.assemble_dest, asset.assemble_sha256):
        return directory
    by_archive: dict[PipSource, dict[str, tuple[Path, str]]] = {}
    for f in asset.files:
        key = PipSource(f.source.requirement, "", f.source.python_version, f.source.sdist,
                        f.source.archive_sha256)
        by_archive.setdefault(key, {})[f.source.member] = (directory / f.dest, f.sha256)
    for source, members in by_archive.items():
        fetch_pip_members(source, members, what=f"asset {name}")
    if asset.assemble_dest:
        target = directory / asset.assemble_dest
        with atomic_path(target) as tmp:
            with open(tmp, "wb") as out:
                for f in asset.files:
                    out.write((directory / f.dest).read_bytes())
            if sha256_file(tmp) != asset.assemble_sha256:
                raise AssetError(f"asset {name}: reassembled {asset.assemble_dest} has a wrong sha256")
        for f in asset.files:
            (directory / f.dest).unlink()
    return directory


def asset_path(name: str, filename: str | None = None) -> Path:
    """Folder (or one file) of a fetched asset; an :class:`AssetError` with the fix if missing."""
    asset = get_asset(name)
    if not is_fetched(name):
        raise AssetError(f"test asset {name!r} ({asset.description}) is not fetched; {FETCH_HINT}")
    return asset.directory / filename if filename else asset.directory

