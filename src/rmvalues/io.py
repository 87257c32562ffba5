"""Small file helpers shared by every stage: checksums, atomic writes, and output folders.

Output folders: one lock per folder (:func:`output_lock`), disk-full errors as one clear line
(:func:`disk_errors`), and one-shot outputs staged in a temporary folder and swapped in whole
(:func:`staged_folder`), so no folder ever mixes two runs or keeps a half-written file.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from rmvalues.errors import StoreError

log = logging.getLogger("rmvalues.io")


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks so large weights do not fill memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` only if the block succeeds.

    Readers never see a half-written file and a crash leaves no partial output behind.
    """
    target = Path(target)
    with disk_errors(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp creates owner-only files; give the output the permissions a plain open() would.
    os.chmod(tmp_path, 0o666 & ~_umask())
    try:
        with disk_errors(target):
            yield tmp_path
            os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_bytes(target: str | Path, data: bytes) -> Path:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    return Path(target)


def atomic_write_text(target: str | Path, text: str) -> Path:
    return atomic_write_bytes(target, text.encode("utf-8"))


# --- output folders: disk-full errors, a lock per folder, staged writes swapped in whole ------------

#: errno values that mean "the disk (or quota) is full".
_DISK_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
#: Output folders this process holds the lock of: how many holders, and the parent folders the
#: first one created (re-entrant within one process; the last holder out releases it).
_HELD: dict[Path, list] = {}
#: A lock file this old whose content cannot be read is taken as left by a crash.
_UNREADABLE_LOCK_STALE_S = 30.0


def cached_folder(target: str | Path, build: Callable[[Path], None], marker: str = ".complete",
                  ) -> Path:
    """``target``, built once by ``build(empty folder)`` and renamed into place with ``marker``.

    For derived caches (built tokenizers, de-quantised models): a killed build leaves only a hidden
    temporary folder, never a ``target`` without its marker, and two processes building at once
    both end with one complete ``target`` (the loser's copy is discarded).
    """
    target = Path(target)
    if (target / marker).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        os.chmod(tmp, 0o777 & ~_umask())
        build(tmp)
        (tmp / marker).touch()
        try:
            os.replace(tmp, target)
        except OSError:  # a concurrent builder won the race (or a stale partial folder is there)
            if not (target / marker).is_file():
                shutil.rmtree(target, ignore_errors=True)
                os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def is_disk_full(exc: BaseException) -> bool:
    """True when ``exc`` is the OS saying the disk or the quota is full."""
    return isinstance(exc, OSError) and (exc.errno in _DISK_FULL
                                         or "No space left on device" in str(exc))


@contextlib.contextmanager
def disk_errors(target: str | Path) -> Iterator[None]:
    """Turn a disk-full ``OSError`` raised while writing ``target`` into one clear :class:`StoreError`."""
    try:
        yield
    except OSError as exc:
        if not is_disk_full(exc):
            raise
        raise StoreError(
            f"disk full while writing {target} ({exc.strerror or exc}); nothing half-written was "
            "kept. Free some space (or choose another --out) and re-run: finished shards resume."
        ) from None


def lock_path(out: str | Path) -> Path:
    """The lock file of output folder ``out``: beside it, so it exists before the folder does."""
    out = Path(out).expanduser().absolute()
    return out.parent / f".{out.name}.rmvalues.lock"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def _read_lock(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text("utf-8"))
        return data if isinstance(data, dict) and isinstance(data.get("pid"), int) else None
    except (OSError, ValueError):
        return None


def _stale(path: Path, holder: dict | None) -> bool:
    """A lock left by a process that is gone (same host), or unreadable and old."""
    if holder is None:
        try:
            return time.time() - path.stat().st_mtime > _UNREADABLE_LOCK_STALE_S
        except FileNotFoundError:
            return True
    return holder.get("host") == socket.gethostname() and not _pid_alive(holder["pid"])


def _make_parents(folder: Path) -> list[Path]:
    """Create ``folder`` and missing parents; return the ones created (outermost first)."""
    missing = []
    probe = folder
    while not probe.exists():
        missing.append(probe)
        if probe.parent == probe:
            break
        probe = probe.parent
    folder.mkdir(parents=True, exist_ok=True)
    return list(reversed(missing))


def _remove_if_empty(folders: list[Path]) -> None:
    for folder in reversed(folders):
        with contextlib.suppress(OSError):
            folder.rmdir()


@contextlib.contextmanager
def output_lock(out: str | Path) -> Iterator[Path]:
    """Hold the lock of output folder ``out`` for the block, so two runs never write one folder.

    The lock file names the holder (pid, host, start time). A lock whose process is gone is taken
    over with a warning; a live one is a :class:`StoreError` saying who holds it. Re-entrant
    within one process, counted: the lock goes when the last holder leaves, in whatever order
    they leave (a run takes it before loading its model, its store again for its own life).
    Parent folders created for the lock are removed again when left empty.
    """
    out = Path(out).expanduser().absolute()
    path = lock_path(out)
    if path in _HELD:
        _HELD[path][0] += 1
    else:
        _HELD[path] = [1, _take_lock(path, out)]
    try:
        yield path
    finally:
        held = _HELD[path]
        held[0] -= 1
        if not held[0]:
            del _HELD[path]
            if (_read_lock(path) or {}).get("pid") == os.getpid():
                path.unlink(missing_ok=True)
            _remove_if_empty(held[1])


def _take_lock(path: Path, out: Path) -> list[Path]:
    """Create lock file ``path`` for ``out`` (taking over a stale one); return the parent folders
    created for it."""
    try:
        created = _make_parents(path.parent)
    except OSError as exc:
        raise StoreError(f"cannot create the folder of --out {out} ({exc.strerror or exc}); "
                         "choose another --out or fix its permissions.") from None
    me = {"pid": os.getpid(), "host": socket.gethostname(), "out": str(out),
          "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    try:
        for _attempt in range(3):
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = _read_lock(path)
                if _stale(path, holder):
                    log.warning("removing the stale lock %s (pid %s is no longer running)", path,
                                holder.get("pid") if holder else "unknown")
                    path.unlink(missing_ok=True)
                    continue
                who = (f"pid {holder['pid']} on {holder.get('host')}, since {holder.get('started')}"
                       if holder else "a process that is starting")
                raise StoreError(
                    f"output folder {out} is in use by another rmvalues run ({who}); wait for it "
                    f"to finish or choose another --out. If that run is dead, delete {path}."
                ) from None
            except OSError as exc:
                raise StoreError(f"cannot create the lock file {path} ({exc.strerror or exc}); "
                                 "choose another --out or fix its permissions.") from None
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(me, fh)
            return created
        raise StoreError(f"could not take the lock {path}; delete it and re-run.")  # pragma: no cover
    except BaseException:
        _remove_if_empty(created)
        raise


def folder_kinds(folder: Path) -> set[str]:
    """The ``kind`` of every manifest at the top of ``folder`` (empty when it holds none)."""
    kinds = set()
    for file in [*folder.glob("manifest.json"), *folder.glob("*.manifest.json")]:
        try:
            kinds.add(str(json.loads(file.read_text("utf-8")).get("kind")))
        except (OSError, ValueError, AttributeError):
            kinds.add("unreadable")
    return kinds


def check_replaceable(out: str | Path, kind: str, keep: Sequence[str] = ()) -> Path:
    """``out`` may be (re)written whole by a ``kind`` run: absent, empty, or an earlier ``kind`` run.

    A folder of another stage, or one rmvalues did not write, is refused rather than deleted.
    Entries named in ``keep`` (a sub-run the stage itself wrote there) do not count.
    """
    out = Path(out).expanduser()
    if not out.exists():
        return out
    if not out.is_dir():
        raise StoreError(f"--out {out} is a file, not a folder; choose a folder.")
    if not any(p.name not in keep for p in out.iterdir()):
        return out
    kinds = folder_kinds(out)
    if not kinds:
        raise StoreError(
            f"--out {out} is not empty and holds no rmvalues manifest, so it was not written by a "
            f"{kind} run; choose a new or empty folder (nothing was written)."
        )
    if kinds != {kind}:
        raise StoreError(
            f"--out {out} holds the output of another stage ({', '.join(sorted(kinds))}), not of "
            f"a {kind} run; choose a new or empty folder (nothing was written)."
        )
    return out


@contextlib.contextmanager
def staged_folder(out: str | Path, kind: str, keep: Sequence[str] = ()) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``out``; when the block succeeds it replaces ``out``
    whole, so an output folder never mixes two runs and a failed run leaves the old one intact.

    ``out`` must be absent, empty, or an earlier output of the same ``kind`` (see
    :func:`check_replaceable`); the folder is locked while the block runs. The entries of ``out``
    named in ``keep`` (e.g. the score run ``check-released`` writes under ``out/scores``) are
    carried over into the new folder.
    """
    out = check_replaceable(out, kind, keep)
    with output_lock(out):
        check_replaceable(out, kind, keep)  # again, under the lock
        try:
            with disk_errors(out):
                tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
        except OSError as exc:
            raise StoreError(f"cannot write beside --out {out} ({exc.strerror or exc}); choose "
                             "another --out or fix its permissions.") from None
        os.chmod(tmp, 0o777 & ~_umask())
        try:
            with disk_errors(out):
                yield tmp
                _swap_in(tmp, out, keep)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def _swap_in(tmp: Path, out: Path, keep: Sequence[str] = ()) -> None:
    """Rename ``tmp`` onto ``out``, moving an earlier ``out`` aside first and deleting it after;
    ``out``'s ``keep`` entries move into ``tmp`` first (and back if the swap fails)."""
    moved = [name for name in keep if (out / name).exists() and not (tmp / name).exists()]
    for name in moved:
        os.rename(out / name, tmp / name)
    try:
        _swap(tmp, out)
    except BaseException:
        for name in moved:
            os.rename(tmp / name, out / name)
        raise


def _swap(tmp: Path, out: Path) -> None:
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        shutil.rmtree(old, ignore_errors=True)
        os.rename(out, old)
    try:
        os.rename(tmp, out)
    except OSError:
        if old is not None:
            os.rename(old, out)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
