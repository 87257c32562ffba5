"""Lexicon readers and writers: round trips, fuzzing, and one clear error per malformed input."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rmvalues.errors import LexiconError
from rmvalues.lexicons import (
    FORMATS,
    Lexicon,
    LexiconInfo,
    detect_format,
    format_lexicon,
    parse_lexicon,
    read_lexicon,
    write_lexicon,
)

INFO = LexiconInfo(name="t")
EXTENSION = {"long-csv": ".csv", "wide-csv": ".csv", "dicx": ".dicx", "dic": ".dic"}

# Terms and category names as real lexicons have them: phrases, punctuation, quotes, commas,
# non-ASCII letters, wildcards, numbers (which a .dic must not take for category ids).
label_chars = st.sampled_from(list("abcXyz é,\"'%*-#0123456789") + ["\u00a0", "ß", "字"])
labels = st.text(label_chars, min_size=1, max_size=8).map(str.strip).filter(
    lambda s: bool(s) and s != "*"
)  # strip: surrounding whitespace is not part of a term in any format


@st.composite
def lexicons(draw, weighted: bool = True) -> Lexicon:
    cats = draw(st.lists(labels, min_size=1, max_size=4, unique=True))
    weights = (st.just(1.0) | st.floats(-1e6, 1e6, allow_nan=False)) if weighted else st.just(1.0)
    entries = draw(st.dictionaries(
        labels,
        st.dictionaries(st.sampled_from(cats), weights, min_size=1, max_size=len(cats)),
        min_size=1, max_size=12,
    ))
    return Lexicon(INFO, tuple(cats), entries)


def _order_free(lexicon: Lexicon) -> tuple[set[str], dict[str, dict[str, float]]]:
    return set(lexicon.categories), {t: dict(c) for t, c in lexicon.entries.items()}


@pytest.mark.parametrize("fmt", FORMATS)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_round_trip_through_text(fmt, data):
    lexicon = data.draw(lexicons(weighted=fmt != "dic"))
    back = parse_lexicon(format_lexicon(lexicon, fmt), fmt)  # type: ignore[arg-type]
    if fmt == "long-csv":
        # A long table lists categories in order of first use; a category no term uses vanishes.
        used = {c for cats in lexicon.entries.values() for c in cats}
        assert set(back.categories) == used
        assert {t: dict(c) for t, c in back.entries.items()} == _order_free(lexicon)[1]
    else:
        assert back.categories == lexicon.categories
        assert back.entries == lexicon.entries
    assert list(back.entries) == list(lexicon.entries)


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_through_file_and_detection(tmp_path, fmt):
    lexicon = Lexicon(INFO, ("Agency", "Communion"),
                      {"able": {"Agency": 1}, "accept*": {"Communion": 1},
                       "do unto others": {"Agency": 1, "Communion": 1}, "catch 22": {"Agency": 1}})
    path = write_lexicon(lexicon, tmp_path / f"x{EXTENSION[fmt]}", fmt)  # type: ignore[arg-type]
    assert detect_format(path) == fmt
    back = read_lexicon(path)
    assert back.entries == lexicon.entries and back.categories == lexicon.categories
    assert back.info.name == "x" and back.info.source == str(path)
    assert back.info.sha256 is not None and len(back.info.sha256) == 64


def test_dic_cannot_hold_weights(tmp_path):
    lexicon = Lexicon(INFO, ("A",), {"a": {"A": 0.5}})
    with pytest.raises(LexiconError, match="weights"):
        write_lexicon(lexicon, tmp_path / "x.dic")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("fmt", FORMATS)
@settings(max_examples=150, deadline=None)
@given(text=st.text(st.sampled_from(list("%\t\n\r ,\"X1a2*NA\ufeff")), max_size=60))
def test_fuzz_text_parses_or_raises_lexicon_error(fmt, text):
    try:
        lexicon = parse_lexicon(text, fmt)  # type: ignore[arg-type]
    except LexiconError as exc:
        assert str(exc).startswith("<text>")
    else:
        assert len(lexicon) > 0 and lexicon.categories


@pytest.mark.parametrize("fmt", FORMATS)
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fuzz_mutated_valid_files(fmt, data):
    """Valid files with random edits (dropped, repeated, corrupted characters and lines)."""
    text = format_lexicon(data.draw(lexicons(weighted=fmt != "dic")), fmt)  # type: ignore[arg-type]
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(text)))
        j = data.draw(st.integers(i, min(len(text), i + 6)))
        junk = data.draw(st.text(st.sampled_from(list("%\t\n,\"X1*\ufeff")), max_size=3))
        text = data.draw(st.sampled_from([text[:i] + text[j:], text[:i] + junk + text[i:],
                                          text[:j] + text[i:j] + text[j:]]))
    try:
        lexicon = parse_lexicon(text, fmt)  # type: ignore[arg-type]
    except LexiconError as exc:
        assert str(exc).startswith("<text>")
    else:
        assert len(lexicon) > 0 and lexicon.categories


@settings(max_examples=150, deadline=None)
@given(data=st.binary(max_size=80))
def test_fuzz_bytes_read_or_raise_lexicon_error(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("fuzz") / "f.dic"
    path.write_bytes(data)
    try:
        read_lexicon(path)
    except LexiconError as exc:
        assert str(path) in str(exc)


def test_real_dic_conventions():
    text = (
        "%\n1\tcare.virtue\n2\tcare.vice\n%\n\ncompassion\t1\ndo unto others\t1\n"
        "harm 2\nkind of 1 2\nharm\t2\n"
    )
    lexicon = parse_lexicon(text, "dic", duplicates="merge")
    assert lexicon.categories == ("care.virtue", "care.vice")
    assert dict(lexicon.entries) == {
        "compassion": {"care.virtue": 1.0},
        "do unto others": {"care.virtue": 1.0},
        "harm": {"care.vice": 1.0},
        "kind of": {"care.virtue": 1.0, "care.vice": 1.0},  # no tab: trailing integers are ids
    }


def test_wide_cells_x_number_na_empty():
    text = "DicTerm,A,B,C\nfoo,X,NA,\nbar,x,0.25,na\nbaz,,,-2e-3\n"
    lexicon = parse_lexicon(text, "wide-csv")
    assert dict(lexicon.entries) == {"foo": {"A": 1.0}, "bar": {"A": 1.0, "B": 0.25},
                                     "baz": {"C": -0.002}}


def test_long_csv_with_weights_and_multi_category_terms():
    text = "Category,token_decoded,weight\nA,love,1\nB,love,0.5\n"
    lexicon = parse_lexicon(text, "long-csv")
    assert dict(lexicon.entries) == {"love": {"A": 1.0, "B": 0.5}}


# --- duplicates policy --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "text", "expected"),
    [
        ("wide-csv", "DicTerm,A,B\nx,X,NA\ny,NA,X\nx,X,NA\n",
         "<text>:4: duplicate term 'x' (first on line 2)"),
        ("dic", "%\n1\tA\n2\tB\n%\nx\t1\ny\t2\nx\t1\n",
         "<text>:7: duplicate term 'x' (first on line 5)"),
        ("long-csv", "Category,token_decoded\nA,x\nB,y\nA,x\n",
         "<text>:4: duplicate term 'x' in category 'A' (first on line 2)"),
    ],
)
def test_duplicates_error_by_default_and_merge_on_request(fmt, text, expected):
    with pytest.raises(LexiconError, match=re.escape(expected)):
        parse_lexicon(text, fmt)
    merged = parse_lexicon(text, fmt, duplicates="merge")
    assert dict(merged.entries) == {"x": {"A": 1.0}, "y": {"B": 1.0}}


def test_merge_takes_union_and_refuses_conflicting_weights():
    text = "%\n1\tA\n2\tB\n%\nx\t1\nx\t2\n"
    assert parse_lexicon(text, "dic", duplicates="merge").categories_of("x") == ("A", "B")
    with pytest.raises(LexiconError, match=r":3: duplicate term 'x'"):
        parse_lexicon("DicTerm,A\nx,X\nx,0.5\n", "dicx")
    with pytest.raises(LexiconError, match=r":3: term 'x' repeats category 'A' with weight 0.5"):
        parse_lexicon("DicTerm,A\nx,X\nx,0.5\n", "dicx", duplicates="merge")
    with pytest.raises(LexiconError, match="unknown duplicates policy"):
        parse_lexicon("DicTerm,A\nx,X\n", "dicx", duplicates="first")  # type: ignore[arg-type]


def test_real_big_two_expanded_repeats_36_rows(shared_dir):
    path = shared_dir / "corpora" / "dict_big2_expanded.csv"
    with pytest.raises(LexiconError, match=r"dict_big2_expanded.csv:22: duplicate term 'accurate'"):
        read_lexicon(path)
    merged = read_lexicon(path, duplicates="merge")
    assert len(merged) == 936 - 36
    assert merged.multi_category_terms() == []


# --- malformed input: one clear error naming file, line and problem ------------------------------

MALFORMED = [
    ("empty.csv", b"", "empty file"),
    ("blank.dic", b" \n\n\t\n", "empty file"),
    ("header-only.dicx", b"DicTerm,A,B\n", "no terms after the header"),
    ("no-header.dic", b"love\t1\n", r":1: missing '%' header"),
    ("unclosed.dic", b"%\n1\tA\nlove\t1\n", r":3: bad category line"),
    ("unclosed2.dic", b"%\n1\tA\n", "header is not closed"),
    ("no-cats.dic", b"%\n%\nlove\t1\n", r":2: no categories"),
    ("bad-cat.dic", b"%\nA\t1\n%\nlove\t1\n", r":2: bad category line"),
    ("dup-id.dic", b"%\n1\tA\n1\tB\n%\nlove\t1\n", r":3: category id 1 defined twice"),
    ("dup-name.dic", b"%\n1\tA\n2\tA\n%\nlove\t1\n", r":3: category name 'A' defined twice"),
    ("unknown-id.dic", b"%\n1\tA\n%\nlove\t1\nhate\t7\n", r":5: unknown category id 7"),
    ("bad-id.dic", b"%\n1\tA\n%\nlove\t(1)\n", r":4: bad category id '\(1\)'"),
    ("repeat-id.dic", b"%\n1\tA\n%\nlove\t1 1\n", r":4: category id 1 repeated"),
    ("no-id.dic", b"%\n1\tA\n%\nlove\n", r":4: term 'love' has no category id"),
    ("star.dic", b"%\n1\tA\n%\n*\t1\n", r":4: a bare '\*'"),
    ("no-terms.dic", b"%\n1\tA\n%\n\n", "no terms after the header"),
    ("cells.dicx", b"DicTerm,A,B\nlove,X\n", r":2: 2 cells, header has 3"),
    ("bad-cell.dicx", b"DicTerm,A\nlove,yes\n", r":2: bad cell 'yes' in column 'A'"),
    ("nan-cell.dicx", b"DicTerm,A\nlove,nan\n", r":2: bad cell 'nan'"),
    ("inf-cell.dicx", b"DicTerm,A\nlove,inf\n", r":2: bad cell 'inf'"),
    ("no-member.dicx", b"DicTerm,A,B\nlove,,NA\n", r":2: term 'love' is in no category"),
    ("empty-term.dicx", b"DicTerm,A\n ,X\n", r":2: empty term"),
    ("no-cat-cols.dicx", b"DicTerm\nlove\n", r":1: header has no category columns"),
    ("blank-cat.dicx", b"DicTerm,A,\nlove,X,\n", r":1: header column 3 has no category name"),
    ("dup-col.dicx", b"DicTerm,A,A\nlove,X,\n", r":1: category 'A' appears twice"),
    ("quote.dicx", b'DicTerm,A\n"love,X\n', "malformed CSV"),
    ("long-as-wide.dicx", b"Category,term\nA,love\n", "looks like a long table"),
    ("bad-long.csv", b"Category,term,extra\nA,love,x\n", r":1: header .* is not Category"),
    ("long-cells.csv", b"Category,term\nA\n", r":2: 1 cells, header has 2"),
    ("long-empty-cat.csv", b"Category,term\n,love\n", r":2: empty category"),
    ("long-no-weight.csv", b"Category,term,weight\nA,love,\n", r":2: missing weight"),
    ("latin1.dicx", "DicTerm,A\ncaf\u00e9,X\n".encode("latin-1"), r":2: not valid utf-8-sig"),
    ("utf16.dic", "%\n1\tA\n%\nlove\t1\n".encode("utf-16"), "not valid utf-8-sig|NUL"),
    ("nul.dicx", b"DicTerm,A\nlo\x00ve,X\n", r":2: contains NUL bytes"),
]


@pytest.mark.parametrize(("name", "data", "problem"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_files_give_one_clear_error(tmp_path, name, data, problem):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(LexiconError, match=problem) as info:
        read_lexicon(path)
    message = str(info.value)
    assert message.startswith(str(path)), message
    assert ";" in message or "." in message  # says what to do


def test_bom_is_accepted_everywhere(tmp_path):
    for fmt, text in [("dicx", "DicTerm,A\nlove,X\n"), ("dic", "%\n1\tA\n%\nlove\t1\n"),
                      ("long-csv", "Category,token_decoded\nA,love\n")]:
        path = tmp_path / f"bom{EXTENSION[fmt]}"
        path.write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode())
        lexicon = read_lexicon(path)
        assert lexicon.categories == ("A",) and lexicon.categories_of("love") == ("A",)


def test_other_encodings_on_request(tmp_path):
    path = tmp_path / "latin1.dicx"
    path.write_bytes("DicTerm,A\ncaf\u00e9,X\n".encode("latin-1"))
    assert read_lexicon(path, encoding="latin-1").terms() == ["caf\u00e9"]


def test_missing_path_and_unknown_format(tmp_path):
    with pytest.raises(LexiconError, match="no such lexicon file"):
        read_lexicon(tmp_path / "nope.dic")
    with pytest.raises(LexiconError, match="is a directory"):
        read_lexicon(tmp_path)
    path = tmp_path / "x.txt"
    path.write_text("%\n1\tA\n%\nlove\t1\n")
    assert read_lexicon(path).terms() == ["love"]  # content sniffing
    with pytest.raises(LexiconError, match="unknown lexicon format"):
        read_lexicon(path, fmt="xml")  # type: ignore[arg-type]


def test_writer_is_atomic(tmp_path: Path):
    target = tmp_path / "x.dic"
    target.write_text("old")
    with pytest.raises(LexiconError, match="has weights, which a .dic cannot hold"):
        write_lexicon(Lexicon(INFO, ("A",), {"a": {"A": math.pi}}), target)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.dic"]
