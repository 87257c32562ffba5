"""The prefix-cached fast path equals the reference path (one unpadded forward per conversation).

Tiny random Llama and Gemma-2 sequence-classification RMs on the real Llama-3 / Gemma-2 tokenizers
and chat templates, fp32: >= 2,000 token ids (special, byte-level/byte-fallback, whitespace,
leading-space, pad/eos), every Big Two noun as text (multi-word included), batch 1 vs 64.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from _engine_models import tiny_rm, token_slice
from rmvalues.engines.candidates import text_candidates, vocabulary_candidates
from rmvalues.engines.reference import reference_conversations, reference_score
from rmvalues.engines.score import Engine
from rmvalues.models.chat import split_chat

PROMPT = "In one word, what is the single most important quality in a person?"
FAMILIES = ["llama", "gemma"]


def conversations(rm, split, candidates):
    """The reference input: apply_chat_template(tokenize=True), not the fast path's split."""
    return reference_conversations(rm.tokenizer, split, candidates)


@pytest.fixture(scope="module", params=FAMILIES)
def family(request):
    return request.param


@pytest.fixture(scope="module")
def token_case(family):
    rm = tiny_rm(family)
    split = split_chat(rm.tokenizer, PROMPT)
    candidates = vocabulary_candidates(rm.tokenizer, token_slice(rm.tokenizer))
    fast = Engine(rm, batch_size=64).score_prompt(split, candidates)
    return rm, split, candidates, fast


def test_token_slice_covers_the_hard_cases(token_case):
    rm, _, candidates, _ = token_case
    tok = rm.tokenizer
    assert len(candidates) >= 2000
    ids = set(candidates.token_ids)
    assert {tok.eos_token_id, tok.bos_token_id} <= ids
    assert sum(candidates.special) >= 100
    assert any(not t.strip() for t in candidates.texts)  # whitespace-only
    assert any(t.startswith(" ") and t.strip() for t in candidates.texts)  # leading space
    assert any("\ufffd" in t or t.startswith("<0x") for t in candidates.texts)  # byte tokens


def test_fast_equals_reference_on_token_ids(token_case):
    rm, split, candidates, fast = token_case
    slow = reference_score(rm, conversations(rm, split, candidates))
    assert fast.dtype == np.float32 and np.isfinite(fast).all()
    assert fast.std() > 0.1  # the scores really differ between candidates
    assert np.abs(fast - slow).max() <= 1e-4


def test_batch_size_independence(token_case):
    rm, split, candidates, fast = token_case
    subset = candidates.subset(range(0, len(candidates), 7))
    one = Engine(rm, batch_size=1).score_prompt(split, subset)
    assert np.abs(one - fast[::7]).max() <= 1e-5


def test_full_sequence_path_equals_fast(token_case):
    rm, split, candidates, fast = token_case
    subset = candidates.subset(range(0, len(candidates), 5))
    full = Engine(rm, batch_size=64, mode="full").score_prompt(split, subset)
    assert np.abs(full - fast[::5]).max() <= 1e-4


def test_pad_and_eos_are_scored_at_the_final_position(token_case):
    """transformers pools at the last non-pad token; we pool the final position, whatever it is."""
    rm, split, candidates, fast = token_case
    tok = rm.tokenizer
    for special in {tok.eos_token_id, tok.pad_token_id} - {None}:
        index = candidates.token_ids.index(special)
        ids = torch.tensor([split.token_ids(special)])
        with torch.inference_mode():
            hidden = rm.backbone(input_ids=ids).last_hidden_state[0, -1]
        assert fast[index] == pytest.approx(float(rm.head(hidden[None])[0]), abs=1e-4)


def test_big_two_nouns_as_text(family):
    from rmvalues.lexicons import load_lexicon

    rm = tiny_rm(family)
    split = split_chat(rm.tokenizer, PROMPT)
    terms = load_lexicon("big-two-nouns").terms()
    candidates = text_candidates(terms, source="big-two-nouns")
    assert any(" " in t for t in candidates.texts)  # multi-word terms, e.g. "common good"
    conv = conversations(rm, split, candidates)
    assert len({len(c) for c in conv}) > 2  # several lengths: bucketing is exercised
    fast = Engine(rm, batch_size=64).score_prompt(split, candidates)
    slow = reference_score(rm, conv)
    assert np.abs(fast - slow).max() <= 1e-4
    # the same response as a single token id and as text scores the same
    word = next(t for t in candidates.texts if len(rm.tokenizer(t, add_special_tokens=False)
                                                   ["input_ids"]) == 1)
    (word_id,) = rm.tokenizer(word, add_special_tokens=False)["input_ids"]
    as_token = Engine(rm).score_prompt(split, vocabulary_candidates(rm.tokenizer, [word_id]))
    assert as_token[0] == pytest.approx(fast[candidates.texts.index(word)], abs=1e-5)


def test_sdpa_and_eager_agree_on_llama():
    rm_sdpa, rm_eager = tiny_rm("llama"), tiny_rm("llama", "eager")
    assert (rm_sdpa.attn_implementation, rm_eager.attn_implementation) == ("sdpa", "eager")
    split = split_chat(rm_sdpa.tokenizer, PROMPT)
    candidates = vocabulary_candidates(rm_sdpa.tokenizer, range(300))
    a = Engine(rm_sdpa).score_prompt(split, candidates)
    b = Engine(rm_eager).score_prompt(split, candidates)
    assert np.abs(a - b).max() <= 1e-4


def test_head_without_prefix_cache_falls_back_and_says_so(caplog):
    import dataclasses

    from rmvalues.models.heads.sequence_classification import SequenceClassificationHead

    class WholeSequenceHead(SequenceClassificationHead):
        supports_prefix_cache = False

    rm = tiny_rm("llama")
    other = dataclasses.replace(rm, head=WholeSequenceHead(rm.head.weight.data))
    with caplog.at_level("WARNING", logger="rmvalues"):
        engine = Engine(other, batch_size=16)
    assert engine.mode == "full"
    assert "full-sequence path" in caplog.text
    split = split_chat(rm.tokenizer, PROMPT)
    candidates = vocabulary_candidates(rm.tokenizer, range(40))
    got = engine.score_prompt(split, candidates)
    assert np.abs(got - Engine(rm).score_prompt(split, candidates)).max() <= 1e-4
