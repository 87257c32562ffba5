"""The foundation demo: lexicon coverage on the real tokenizers, checked against the raw vocabularies."""

from __future__ import annotations

import pandas as pd
import pytest

from rmvalues.errors import InputError, StoreError
from rmvalues.io import sha256_file
from rmvalues.lexicons import load_lexicon
from rmvalues.lexicons.audit import CoverageAudit, coverage_audit, write_audit
from rmvalues.models.tokenizers import bundled_tokenizer
from rmvalues.store.manifest import read_manifest

# How each vocabulary spells a leading space in its raw pieces (byte-level BPE vs SentencePiece).
SPACE_MARK = {"llama3": "Ġ", "gemma2": "▁", "qwen": "Ġ"}


@pytest.fixture(scope="module")
def audit() -> CoverageAudit:
    return coverage_audit()


def test_summary_shape_and_counts(audit: CoverageAudit) -> None:
    summary = audit.summary.set_index(["lexicon", "tokenizer"])
    assert list(summary.index) == [(lex, tok) for lex in ("big-two-nouns", "mfd2")
                                   for tok in ("llama3", "gemma2", "qwen")]
    assert audit.joint_column == "single_llama3_and_gemma2"
    assert set(summary.loc["big-two-nouns", "terms"]) == {263}
    assert set(summary.loc["mfd2", "terms"]) == {2040}
    assert (summary["single_token"] + summary["multi_token"] == summary["terms"]).all()
    assert (summary["single_token"] >= summary[["single_bare", "single_space"]].max(axis=1)).all()
    for lexicon in ("big-two-nouns", "mfd2"):
        rows = summary.loc[lexicon]
        both = rows[audit.joint_column].iloc[0]
        assert (rows[audit.joint_column] == both).all()
        assert both <= min(rows.loc["llama3", "single_token"], rows.loc["gemma2", "single_token"])


@pytest.mark.parametrize("name", ["llama3", "gemma2"])
def test_single_token_flags_match_the_raw_vocabulary(audit: CoverageAudit, name: str) -> None:
    """Independent of decoding: an ASCII word is one token iff its raw piece is in the vocabulary."""
    pieces = bundled_tokenizer(name).get_vocab()
    terms = audit.terms[(audit.terms.lexicon == "big-two-nouns") & (audit.terms.tokenizer == name)]
    words = terms[terms.term.str.fullmatch(r"[A-Za-z]+")]
    assert len(words) > 250
    for row in words.itertuples():
        assert row.single_bare == (row.term in pieces), row.term
        assert row.single_space == (SPACE_MARK[name] + row.term in pieces), row.term
        if row.single_space:
            assert row.space_id == pieces[SPACE_MARK[name] + row.term]
        if not row.single_token:
            assert row.n_tokens > 1 and row.n_tokens_space > 1


def test_joint_count_is_the_intersection(audit: CoverageAudit) -> None:
    terms = audit.terms.set_index(["lexicon", "tokenizer", "term"])["single_token"].sort_index()
    for lexicon in ("big-two-nouns", "mfd2"):
        both = terms.loc[lexicon, "llama3"] & terms.loc[lexicon, "gemma2"]
        summary = audit.summary[audit.summary.lexicon == lexicon]
        assert int(both.sum()) == summary[audit.joint_column].iloc[0]
        assert len(both) == len(load_lexicon(lexicon))


def test_write_audit_files_and_manifest(audit: CoverageAudit, tmp_path) -> None:
    paths = write_audit(audit, tmp_path / "out")
    csv = pd.read_csv(paths.summary_csv)
    pd.testing.assert_frame_equal(csv, audit.summary, check_dtype=False)
    pd.testing.assert_frame_equal(pd.read_parquet(paths.summary_parquet), audit.summary)
    assert len(pd.read_parquet(paths.terms_parquet)) == 3 * (263 + 2040)
    manifest = read_manifest(paths.manifest)
    assert manifest.kind == "lexicon-coverage"
    fields = manifest.fields
    assert fields["lexicons"]["big-two-nouns"]["sha256"] == load_lexicon("big-two-nouns").info.sha256
    assert fields["tokenizers"]["gemma2"]["gemma2-tokenizer/tokenizer.model"].startswith("61a7b147")
    for name, digest in fields["outputs"].items():
        assert sha256_file(paths.out / name) == digest
    assert sorted(p.name for p in paths.out.iterdir()) == [
        "coverage.csv", "coverage.parquet", "coverage_terms.parquet", "manifest.json"]


def test_write_audit_refuses_a_file_as_out(audit: CoverageAudit, tmp_path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(StoreError, match="is a file"):
        write_audit(audit, target)


def test_joint_must_be_audited() -> None:
    with pytest.raises(InputError, match="not among the audited"):
        coverage_audit(tokenizers=("qwen",), joint=("llama3", "gemma2"))
