"""Built-in lexicons: pinned sources, the paper's counts, sha256 refusal, offline folder, CLI."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rmvalues.cli import app, main
from rmvalues.errors import ChecksumError, LexiconError
from rmvalues.lexicons import fetch_lexicons, lexicon_specs, load_lexicon, paper_normalize
from rmvalues.lexicons.registry import LEXICON_DIR_ENV, get_spec

MFD2_COUNTS = {
    "Care_Virtue": 170, "Care_Vice": 277, "Fairness_Virtue": 115, "Fairness_Vice": 229,
    "Loyalty_Virtue": 137, "Loyalty_Vice": 34, "Authority_Virtue": 295, "Authority_Vice": 123,
    "Sanctity_Virtue": 272, "Sanctity_Vice": 388,
}


@pytest.fixture(scope="session")
def builtins(shared_dir) -> dict[str, Path]:
    """Every built-in lexicon, fetched once per session (package-index ones via pip download)."""
    return fetch_lexicons(lexicon_specs())


def test_registry_pins_every_source():
    specs = lexicon_specs()
    assert set(specs) >= {"big-two-nouns", "big-two-expanded", "mfd2", "mfd2-dic", "big-two",
                          "schwartz-values", "personal-values", "emfd"}
    for spec in specs.values():
        assert re.fullmatch(r"[0-9a-f]{64}", spec.sha256)
        assert spec.citation and spec.description
        if spec.url is not None:
            assert re.search(r"/[0-9a-f]{40}/", spec.url), "URL must be pinned to a commit"
        elif spec.bundled is not None:
            assert spec.bundled == spec.filename and "rmvalues" in spec.source
        else:
            assert spec.pip is not None and "==" in spec.pip.requirement
            assert spec.pip.archive_sha256 is not None


def test_big_two_nouns(builtins):
    lexicon = load_lexicon("big-two-nouns")
    assert len(lexicon) == 263
    assert lexicon.counts() == {"Agency": 104, "Communion": 159}
    assert lexicon.info.sha256 == get_spec("big-two-nouns").sha256
    assert "Pietraszkiewicz" in lexicon.info.citation


def test_big_two_expanded_merges_its_repeated_rows(builtins):
    lexicon = load_lexicon("big-two-expanded")
    assert len(lexicon) == 900  # 936 rows, 36 of them repeats
    assert lexicon.counts() == {"Agency": 426, "Communion": 474}


def test_mfd2(builtins):
    lexicon = load_lexicon("mfd2")
    assert len(lexicon) == 2040
    assert lexicon.counts() == MFD2_COUNTS
    assert lexicon.multi_category_terms() == []


def test_mfd2_dic_words_in_several_foundations(builtins):
    lexicon = load_lexicon("mfd2-dic")
    assert len(lexicon) == 2040
    assert len(lexicon.categories) == 10
    multi = lexicon.multi_category_terms()
    assert len(multi) == 57
    assert sorted(len(lexicon.categories_of(t)) for t in multi) == [2] * 51 + [3] * 6


def test_big_two_wildcards_expand_on_demand(builtins):
    lexicon = load_lexicon("big-two")
    assert len(lexicon) == 333
    assert lexicon.counts() == {"Agency": 158, "Communion": 175}
    assert lexicon.has_wildcards()
    vocab = [" Achievement", "achieving", "ACCEPTED", "able", "zzz", "accommodating"]
    expanded = lexicon.expand(paper_normalize(v) for v in vocab)
    assert not expanded.has_wildcards()
    assert expanded.categories_of("achievement") == ("Agency",)
    assert expanded.categories_of("achieving") == ("Agency",)
    assert expanded.categories_of("accepted") == ("Communion",)
    assert expanded.categories_of("accommodating") == ("Communion",)
    assert "zzz" not in expanded
    assert len(expanded) == (333 - 246) + 4  # exact terms kept, wildcards replaced by matches


def test_package_index_lexicons(builtins):
    assert len(load_lexicon("schwartz-values").categories) == 10
    assert len(load_lexicon("personal-values").categories) == 14
    emfd = load_lexicon("emfd")
    assert len(emfd) == 3270 and emfd.is_weighted()
    assert "Hopp" in emfd.info.citation
    assert emfd.info.source.startswith("pypi:taters==1.5.5:")


def test_wrong_sha256_refuses_the_file_and_keeps_nothing(tmp_path, monkeypatch, shared_dir):
    offline, cache = tmp_path / "offline", tmp_path / "cache"
    offline.mkdir()
    for name in ("big-two-nouns", "big-two"):
        spec = get_spec(name)
        original = shared_dir / "corpora" / spec.filename
        data = original.read_bytes() if original.exists() else b"DicTerm,A\nx,X\n"
        (offline / spec.filename).write_bytes(data.replace(b"a", b"e", 1) + b"tampered\n")
    monkeypatch.setenv(LEXICON_DIR_ENV, str(offline))
    monkeypatch.setenv("RMVALUES_CACHE", str(cache))
    for name in ("big-two-nouns", "big-two"):
        with pytest.raises(ChecksumError, match=f"lexicon {name}.*was not kept"):
            load_lexicon(name)
    assert [p for p in cache.rglob("*") if p.is_file()] == []


def test_offline_folder_fills_the_cache_and_a_corrupt_cache_is_replaced(
    tmp_path, monkeypatch, shared_dir
):
    monkeypatch.setenv(LEXICON_DIR_ENV, str(shared_dir / "corpora"))
    monkeypatch.setenv("RMVALUES_CACHE", str(tmp_path))
    cached = tmp_path / "lexicons" / "mfd2" / "moral-foundations-dictionary-20.dicx"
    assert len(load_lexicon("mfd2")) == 2040
    assert cached.read_bytes() == (shared_dir / "corpora" / cached.name).read_bytes()
    cached.write_text("DicTerm,A\nx,X\n")
    assert len(load_lexicon("mfd2")) == 2040
    assert [p.name for p in cached.parent.iterdir()] == [cached.name]


def test_load_lexicon_names_and_paths(tmp_path, shared_dir):
    path = shared_dir / "corpora" / "dict_big2_nouns.csv"
    assert len(load_lexicon(path)) == 263
    assert len(load_lexicon(str(path))) == 263
    assert load_lexicon(path).info.name == "dict_big2_nouns"
    with pytest.raises(LexiconError, match="neither a built-in lexicon .*big-two-nouns"):
        load_lexicon("big-three")


def test_cli_show_big_two_nouns(builtins):
    result = CliRunner().invoke(app, ["lexicons", "show", "big-two-nouns"], terminal_width=200)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "big-two-nouns: 263 terms in 2 categories" in out
    assert re.search(r"Agency\s*│\s*104\s*│", out) and re.search(r"Communion\s*│\s*159\s*│", out)
    assert "Pietraszkiewicz" in out and get_spec("big-two-nouns").sha256 in out


def test_cli_show_file_list_and_errors(tmp_path, shared_dir, capsys, builtins):
    runner = CliRunner()
    result = runner.invoke(app, ["lexicons", "show", "mfd2-dic", "--samples", "2"],
                           terminal_width=200)
    assert result.exit_code == 0 and "57 terms in more than one category" in result.output
    listing = runner.invoke(app, ["lexicons", "list"], terminal_width=200)
    assert all(name in listing.output for name in lexicon_specs())
    copy = tmp_path / "big2.csv"
    shutil.copy(shared_dir / "corpora" / "dict_big2_expanded.csv", copy)
    assert main(["lexicons", "show", str(copy)]) == 2
    assert "duplicate term 'accurate'" in capsys.readouterr().err
    assert main(["lexicons", "show", str(copy), "--duplicates", "merge"]) == 0
    assert "900 terms" in capsys.readouterr().out


def test_cli_convert_round_trips_a_builtin(tmp_path, builtins, capsys):
    target = tmp_path / "mfd2.dic"
    assert main(["lexicons", "convert", "mfd2", str(target)]) == 0
    assert "2040 terms in 10 categories" in capsys.readouterr().out
    back = load_lexicon(target)
    assert back.entries == load_lexicon("mfd2").entries
    assert main(["lexicons", "convert", "emfd", str(tmp_path / "emfd.dic")]) == 2
    assert "weights" in capsys.readouterr().err
    assert not (tmp_path / "emfd.dic").exists()
