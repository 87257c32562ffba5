"""The built-in lexicon registry: a data file (``registry.toml``) read by one loader.

Adding a lexicon is a data change. Files are fetched by name into ``<cache>/lexicons/<name>/``
and kept only if their sha256 matches the pin. For offline use, ``$RMVALUES_LEXICON_DIR`` names a
folder holding files under their upstream names; a file found there is used instead of the network
(and still verified), a file missing there is downloaded as usual.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterable
from functools import cache
from importlib.resources import files
from pathlib import Path, PurePosixPath

from pydantic import BaseModel, ConfigDict, model_validator

from rmvalues.errors import LexiconError
from rmvalues.fetch import PipSource, cache_dir, fetch_pip_members, fetch_url, is_cached
from rmvalues.lexicons.model import Lexicon, LexiconInfo
from rmvalues.lexicons.readers import Duplicates, Format, read_lexicon

LEXICON_DIR_ENV = "RMVALUES_LEXICON_DIR"


class PipMember(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    requirement: str
    member: str
    python_version: str | None = None
    archive_sha256: str | None = None

    def source(self) -> PipSource:
        return PipSource(self.requirement, self.member, self.python_version,
                         archive_sha256=self.archive_sha256)


class LexiconSpec(BaseModel):
    """One built-in lexicon: what it is, what to cite, and where its pinned file comes from."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    description: str
    citation: str
    format: Format
    sha256: str
    duplicates: Duplicates = "error"
    url: str | None = None
    pip: PipMember | None = None
    bundled: str | None = None  # a file shipped in rmvalues/lexicons/data/ (lists compiled here)

    @model_validator(mode="after")
    def _one_source(self) -> LexiconSpec:
        if sum(x is not None for x in (self.url, self.pip, self.bundled)) != 1:
            raise ValueError(f"lexicon {self.name!r} needs exactly one of `url`, `pip` or `bundled`")
        return self

    @property
    def filename(self) -> str:
        """The upstream file name (also its name in the cache and in the offline folder)."""
        if self.bundled is not None:
            return self.bundled
        remote = self.url if self.url is not None else self.pip.member  # type: ignore[union-attr]
        return PurePosixPath(remote).name

    @property
    def source(self) -> str:
        if self.url is not None:
            return self.url
        if self.bundled is not None:
            return f"rmvalues:lexicons/data/{self.bundled}"
        assert self.pip is not None
        return f"pypi:{self.pip.requirement}:{self.pip.member}"

    @property
    def cache_path(self) -> Path:
        return cache_dir("lexicons", self.name) / self.filename

    def info(self) -> LexiconInfo:
        return LexiconInfo(name=self.name, citation=self.citation, source=self.source,
                           sha256=self.sha256, description=self.description)


@cache
def lexicon_specs() -> dict[str, LexiconSpec]:
    """All built-in lexicons by name, in file order."""
    text = files("rmvalues.lexicons").joinpath("registry.toml").read_text("utf-8")
    data = tomllib.loads(text)
    return {name: LexiconSpec(name=name, **spec) for name, spec in data["lexicons"].items()}


def get_spec(name: str) -> LexiconSpec:
    try:
        return lexicon_specs()[name]
    except KeyError:
        raise LexiconError(
            f"{name!r} is not a built-in lexicon; known: {', '.join(lexicon_specs())}. "
            "Pass a file path to read your own (.dic, .dicx or .csv)."
        ) from None


def offline_dir() -> Path | None:
    """The folder named by ``$RMVALUES_LEXICON_DIR``, if set."""
    value = os.environ.get(LEXICON_DIR_ENV)
    return Path(value).expanduser() if value else None


def _offline_copy(spec: LexiconSpec) -> Path | None:
    folder = offline_dir()
    if folder is not None and (folder / spec.filename).is_file():
        return folder
    return None


def is_fetched(name: str) -> bool:
    spec = get_spec(name)
    return spec.cache_path.exists()


def fetch_lexicons(names: Iterable[str]) -> dict[str, Path]:
    """Fetch and verify several built-in lexicons; a shared distribution is downloaded once."""
    specs = [get_spec(n) for n in names]
    out: dict[str, Path] = {}
    by_archive: dict[PipSource, dict[str, tuple[Path, str]]] = {}
    for spec in specs:
        local = _offline_copy(spec)
        if spec.bundled is not None:  # shipped with the package, still sha256-checked
            local = Path(str(files("rmvalues.lexicons").joinpath("data")))
        if spec.url is not None or local is not None:
            # fetch_url serves both: a download, or the offline copy named like the upstream file.
            out[spec.name] = fetch_url(spec.url or spec.filename, spec.sha256, spec.cache_path,
                                       local_dir=local, what=f"lexicon {spec.name}")
        elif not is_cached(spec.cache_path, spec.sha256):
            assert spec.pip is not None
            archive = spec.pip.source()
            key = PipSource(archive.requirement, "", archive.python_version,
                            archive_sha256=archive.archive_sha256)
            by_archive.setdefault(key, {})[spec.pip.member] = (spec.cache_path, spec.sha256)
        else:
            out[spec.name] = spec.cache_path
    for source, members in by_archive.items():
        fetch_pip_members(source, members, what=f"lexicons from {source.requirement}")
    for spec in specs:
        out.setdefault(spec.name, spec.cache_path)
    return {spec.name: out[spec.name] for spec in specs}


def fetch_lexicon(name: str) -> Path:
    """Path of the verified file of built-in lexicon ``name``, fetched into the cache if needed."""
    return fetch_lexicons([name])[name]


def load_builtin(name: str) -> Lexicon:
    spec = get_spec(name)
    path = fetch_lexicon(name)
    return read_lexicon(path, fmt=spec.format, duplicates=spec.duplicates, info=spec.info())


def load_lexicon(
    name_or_path: str | Path, *, fmt: Format | None = None, duplicates: Duplicates = "error"
) -> Lexicon:
    """A built-in lexicon by name, or a lexicon file (format detected from extension and content).

    A :class:`~pathlib.Path` is always read as a file; a string is a built-in name if it is one.
    ``fmt`` and ``duplicates`` apply to files only; built-ins carry their own in the registry.
    """
    if isinstance(name_or_path, str) and name_or_path in lexicon_specs():
        return load_builtin(name_or_path)
    path = Path(name_or_path)
    if not path.exists():
        raise LexiconError(
            f"{str(name_or_path)!r} is neither a built-in lexicon ({', '.join(lexicon_specs())}) "
            "nor an existing file; check the name or path."
        )
    return read_lexicon(path, fmt=fmt, duplicates=duplicates)
