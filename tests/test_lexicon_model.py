"""The Lexicon data model: invariants, queries, wildcard expansion (fast path = reference path)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rmvalues.errors import LexiconError, RmvaluesError
from rmvalues.lexicons import Lexicon, LexiconInfo
from rmvalues.lexicons.model import reference_expand

INFO = LexiconInfo(name="t")


def lex(entries: dict[str, dict[str, float]], categories: tuple[str, ...] = ("A", "B")) -> Lexicon:
    return Lexicon(INFO, categories, entries)


def test_queries_follow_file_order_and_categories():
    lexicon = lex({"zeal": {"B": 1}, "able": {"A": 1, "B": 1}, "care": {"B": 0.5}})
    assert lexicon.terms() == ["zeal", "able", "care"]
    assert lexicon.terms("B") == ["zeal", "able", "care"]
    assert lexicon.terms("A") == ["able"]
    assert lexicon.categories_of("able") == ("A", "B")
    assert lexicon.counts() == {"A": 1, "B": 3}
    assert lexicon.multi_category_terms() == ["able"]
    assert lexicon.is_weighted()
    assert len(lexicon) == 3 and "care" in lexicon and "nope" not in lexicon
    frame = lexicon.to_frame()
    assert list(frame.columns) == ["term", "category", "weight"]
    assert frame.values.tolist() == [["zeal", "B", 1.0], ["able", "A", 1.0], ["able", "B", 1.0],
                                     ["care", "B", 0.5]]
    assert list(frame["category"].cat.categories) == ["A", "B"]


def test_entries_are_immutable_and_copied():
    source = {"able": {"A": 1.0}}
    lexicon = lex(source)
    source["able"]["B"] = 1.0
    assert lexicon.categories_of("able") == ("A",)
    with pytest.raises(TypeError):
        lexicon.entries["x"] = {"A": 1.0}  # type: ignore[index]


@pytest.mark.parametrize(
    ("entries", "categories", "problem"),
    [
        ({"a": {"A": 1}}, (), "no categories"),
        ({"a": {"A": 1}}, ("A", "A"), "repeats categories"),
        ({"a": {"A": 1}}, ("A", " B"), "invalid category name"),
        ({"": {"A": 1}}, ("A",), "invalid term"),
        ({" a": {"A": 1}}, ("A",), "invalid term"),
        ({"a\tb": {"A": 1}}, ("A",), "invalid term"),
        ({"*": {"A": 1}}, ("A",), "invalid term"),
        ({"a": {}}, ("A",), "no category"),
        ({"a": {"C": 1}}, ("A",), "unknown categories"),
        ({"a": {"A": math.nan}}, ("A",), "non-finite"),
    ],
)
def test_invalid_lexicons_are_refused(entries, categories, problem):
    with pytest.raises(LexiconError, match=problem):
        Lexicon(INFO, categories, entries)


def test_unknown_term_and_category_queries_raise_rmvalues_errors():
    lexicon = lex({"a": {"A": 1}})
    with pytest.raises(RmvaluesError, match="not a term"):
        lexicon.categories_of("b")
    with pytest.raises(RmvaluesError, match="not a category"):
        lexicon.terms("C")


def test_expand_liwc_semantics():
    lexicon = lex({"achiev*": {"A": 1}, "achieve": {"B": 1}, "ach*": {"B": 1}, "care": {"B": 1}})
    assert lexicon.has_wildcards()
    vocab = ["achievement", "achieve", "ach", "achiev", "foo", "achievement", " achieved",
             "ach*", "", "ache"]
    out = lexicon.expand(vocab)
    assert not out.has_wildcards()
    assert dict(out.entries) == {
        "achieve": {"B": 1.0},  # an exact term beats the wildcards
        "care": {"B": 1.0},  # exact terms are kept even if absent from the vocabulary
        "achievement": {"A": 1.0},  # the longest wildcard wins
        "ach": {"B": 1.0},
        "achiev": {"A": 1.0},  # the prefix itself matches
        "ache": {"B": 1.0},
    }
    assert out.terms() == ["achieve", "care", "achievement", "ach", "achiev", "ache"]
    assert lex({"a": {"A": 1}}).expand(["ab"]) == lex({"a": {"A": 1}})


terms_st = st.text(alphabet="abc*", min_size=1, max_size=5).filter(
    lambda t: t != "*" and "*" not in t[:-1]
)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(terms_st, st.sampled_from(["A", "B"]), min_size=1, max_size=8),
    st.lists(st.text(alphabet="abc *", max_size=6), max_size=30),
)
def test_expand_equals_reference(entries, vocab):
    lexicon = lex({t: {c: 1.0} for t, c in entries.items()})
    fast, slow = lexicon.expand(vocab), reference_expand(lexicon, vocab)
    assert fast == slow
    assert list(fast.entries) == list(slow.entries)
