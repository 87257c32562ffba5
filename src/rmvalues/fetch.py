"""Fetch pinned remote files into a local cache, verified by sha256.

Two kinds of source exist:

* a URL pinned to a commit (the paper's lexicons and released data), fetched with pooch;
* a member of a distribution on the Python package index (lexicons and test assets that ship inside
  wheels or sdists), fetched with ``pip download --no-deps`` and extracted — never installed, since
  those packages' own dependencies conflict with ours.

Either way the file lands in the cache only after its sha256 matches; a mismatch keeps nothing.
An offline directory (``local_dir``) can stand in for the network: the file is taken from there by
name and still verified.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from rmvalues.errors import ChecksumError, FetchError, InputError
from rmvalues.io import atomic_path, sha256_file

CACHE_ENV = "RMVALUES_CACHE"


def cache_dir(*parts: str) -> Path:
    """The cache root (``$RMVALUES_CACHE`` or the OS cache dir), with optional sub-folders created."""
    root = os.environ.get(CACHE_ENV)
    if root:
        base = Path(root).expanduser()
    else:
        import pooch

        base = Path(pooch.os_cache("rmvalues"))
    path = base.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def local_data_root(data_dir: str | Path | None, env: str, what: str) -> Path | None:
    """The folder to read a local copy of released data from: ``data_dir``, else ``$env``; None
    when neither is set (then the data are downloaded). An explicit ``data_dir`` that is not a
    folder is refused, ``what`` naming it in the error."""
    root = data_dir if data_dir is not None else os.environ.get(env)
    if not root:
        return None
    root = Path(root).expanduser()
    if data_dir is not None and not root.is_dir():
        raise InputError(f"{what} {root} is not a directory.")
    return root


def _verify(path: Path, sha256: str, what: str) -> None:
    actual = sha256_file(path)
    if actual != sha256:
        raise ChecksumError(
            f"{what}: sha256 is {actual}, expected {sha256}. The file was not kept; "
            "check that the source is the pinned version (or update the pin if the change is intended)."
        )


def is_cached(dest: Path, sha256: str) -> bool:
    """True if ``dest`` exists with the right hash; a stale or corrupt copy is removed."""
    if not dest.exists():
        return False
    if sha256_file(dest) == sha256:
        return True
    dest.unlink()
    return False


def _install_verified(src: Path, dest: Path, sha256: str, what: str) -> Path:
    with atomic_path(dest) as tmp:
        shutil.copyfile(src, tmp)
        _verify(tmp, sha256, what)
    return dest


def fetch_url(
    url: str, sha256: str, dest: Path, *, local_dir: str | Path | None = None, what: str = ""
) -> Path:
    """Return ``dest`` holding the verified content of ``url`` (or of ``local_dir/<dest.name>``)."""
    what = what or dest.name
    if is_cached(dest, sha256):
        return dest
    if local_dir is not None:
        local = Path(local_dir) / Path(url).name
        if not local.exists():
            raise FetchError(
                f"{what}: offline copy {local} does not exist. Put {Path(url).name} there, or unset "
                "the offline directory to download it."
            )
        return _install_verified(local, dest, sha256, f"{what} ({local})")
    import pooch

    with tempfile.TemporaryDirectory() as tmp:
        try:
            got = pooch.retrieve(url, known_hash=None, path=tmp, fname=dest.name, progressbar=False)
        except Exception as exc:  # network errors come in many types
            raise FetchError(
                f"{what}: could not download {url} ({exc}). Check the network, or point the "
                "offline directory at a local copy."
            ) from exc
        return _install_verified(Path(got), dest, sha256, f"{what} ({url})")


@dataclass(frozen=True)
class PipSource:
    """A file inside a distribution on the package index.

    ``requirement`` is ``NAME==VERSION``; ``member`` the path inside the archive (for an sdist,
    relative to its top folder); ``python_version`` asks pip for wheels tagged for another Python
    (some wheels are only tagged for 3.12); ``sdist`` asks for the source archive.
    """

    requirement: str
    member: str
    python_version: str | None = None
    sdist: bool = False
    archive_sha256: str | None = None


def download_distribution(source: PipSource, into: Path) -> Path:
    """``pip download --no-deps`` one archive into ``into``; return its path."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--dest", str(into)]
    if source.sdist:
        cmd += ["--no-binary=:all:"]
    else:
        cmd += ["--only-binary=:all:"]
    if source.python_version:
        cmd += ["--python-version", source.python_version]
    cmd.append(source.requirement)
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    archives = [p for p in into.iterdir() if p.suffix in {".whl", ".gz", ".zip"}]
    if proc.returncode != 0 or len(archives) != 1:
        raise FetchError(
            f"pip could not download {source.requirement}: "
            f"{(proc.stderr or proc.stdout).strip().splitlines()[-1:] or 'no archive'}. "
            "Check access to the package index (or its mirror in PIP_INDEX_URL)."
        )
    archive = archives[0]
    if source.archive_sha256:
        _verify(archive, source.archive_sha256, f"{source.requirement} archive")
    return archive


def extract_member(archive: Path, member: str, out: Path) -> None:
    """Copy one member of a wheel (zip) or sdist (tar.gz, under its top folder) to ``out``."""
    try:
        if archive.suffix == ".whl" or archive.suffix == ".zip":
            with zipfile.ZipFile(archive) as zf, zf.open(member) as src, open(out, "wb") as dst:
                shutil.copyfileobj(src, dst)
            return
        with tarfile.open(archive) as tf:
            top = tf.getmembers()[0].name.split("/")[0]
            src = tf.extractfile(f"{top}/{member}")
            if src is None:
                raise KeyError(member)
            with src, open(out, "wb") as dst:
                shutil.copyfileobj(src, dst)
    except KeyError as exc:
        raise FetchError(
            f"{archive.name} has no member {member!r}; the pin in the registry is wrong."
        ) from exc


def fetch_pip_members(
    source: PipSource, members: dict[str, tuple[Path, str]], *, what: str = ""
) -> dict[str, Path]:
    """Fetch several members of one distribution: ``{member: (dest, sha256)}`` → ``{member: dest}``.

    Downloads the archive once, and only if some member is not already cached and valid.
    """
    missing = {m: spec for m, spec in members.items() if not is_cached(*spec)}
    if missing:
        with tempfile.TemporaryDirectory() as tmp:
            archive = download_distribution(source, Path(tmp))
            for member, (dest, sha256) in missing.items():
                raw = Path(tmp) / "member"
                extract_member(archive, member, raw)
                _install_verified(raw, dest, sha256, f"{what or source.requirement}:{member}")
    return {m: dest for m, (dest, _) in members.items()}


def fetch_pip_member(source: PipSource, sha256: str, dest: Path, *, what: str = "") -> Path:
    """Fetch ``source.member`` to ``dest`` (see :func:`fetch_pip_members`)."""
    return fetch_pip_members(source, {source.member: (dest, sha256)}, what=what)[source.member]
