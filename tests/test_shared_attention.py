"""Shared-prefix attention (the default prefix path) equals the expanded-cache reference path.

fp32, max |Δ| <= 1e-5 on every head type on tiny Llama-3 and Gemma-2 RMs (GQA: 4 query heads on 2
key/value heads; Gemma-2 with a sliding window of 12, shorter than prefix + continuation, and
attention soft-capping) and on a tiny Qwen2 with sliding-window layers; token ids and multi-token
texts longer than the window. Also: the model's attention implementation is restored, the full
path and multi-token search still run on the same model, and batches are sized by tokens.
"""

from __future__ import annotations

import functools
import logging

import numpy as np
import pytest
import torch

from _engine_models import _ROOT as ROOT
from _engine_models import token_slice, tokenizer
from rmvalues.engines.candidates import text_candidates, vocabulary_candidates
from rmvalues.engines.score import Engine
from rmvalues.models.chat import split_chat
from rmvalues.models.heads import HEAD_TYPES
from test_engine_low_precision import HEAD_FIELDS, PROMPT, load

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

TEXTS = ["Kind", "loyalty and warmth", "common good", "a long answer that runs past the window " * 2]
#: float32 rounding of the reordered attention sums (measured: <= 5e-6)
SHARED_VS_EXPAND = 1e-5


def shared_and_expanded(rm, n: int = 300, **engine):
    split = split_chat(rm.tokenizer, PROMPT)
    candidates = [vocabulary_candidates(rm.tokenizer, token_slice(rm.tokenizer, n)),
                  text_candidates(TEXTS)]
    out = []
    for attention in ("shared", "expand"):
        scorer = Engine(rm, batch_size=32, attention=attention, **engine)
        assert scorer.attention == attention
        out.append(np.concatenate([scorer.score_prompt(split, c) for c in candidates]))
    return out


@pytest.mark.parametrize("family", ["llama", "gemma"])
@pytest.mark.parametrize("head_type", sorted(HEAD_TYPES))
def test_shared_equals_expanded_on_every_head(head_type, family):
    rm = load(family, head_type, "float32")
    config = rm.backbone.config
    assert config.num_key_value_heads < config.num_attention_heads  # GQA
    if family == "gemma":  # the window cuts into the prefix and into long texts
        assert config.sliding_window < len(split_chat(rm.tokenizer, PROMPT).prefix_ids)
    shared, expanded = shared_and_expanded(rm)
    assert np.isfinite(shared).all() and shared.std() > 1e-3
    assert np.abs(shared - expanded).max() <= SHARED_VS_EXPAND


@functools.cache
def qwen2_rm():
    from transformers import AutoModel, Qwen2Config

    from rmvalues.models.loading import load_reward_model, save_reward_model

    tok = tokenizer("llama3")  # any real chat template works for the attention under test
    cfg = Qwen2Config(vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                      num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=256, use_sliding_window=True, sliding_window=9,
                      max_window_layers=1, pad_token_id=tok.eos_token_id, **HEAD_FIELDS)
    assert cfg.layer_types == ["full_attention", "sliding_attention"]
    torch.manual_seed(0)
    backbone = AutoModel.from_config(cfg).eval()
    folder = save_reward_model(ROOT / "shared-qwen2", backbone,
                               {"score.weight": torch.randn(1, cfg.hidden_size)})
    return load_reward_model(folder, tokenizer=tok, device="cpu", dtype="float32")


def test_shared_equals_expanded_on_qwen2_with_sliding_layers():
    shared, expanded = shared_and_expanded(qwen2_rm())
    assert shared.std() > 1e-3
    assert np.abs(shared - expanded).max() <= SHARED_VS_EXPAND


def test_sliding_window_matters_on_qwen2():
    """The window really masks keys: without it the sliding layer scores differently."""
    rm = qwen2_rm()
    shared, _ = shared_and_expanded(rm, n=40)
    rm.backbone.layers[1].self_attn.sliding_window = None
    try:
        unwindowed, _ = shared_and_expanded(rm, n=40)
    finally:
        rm.backbone.layers[1].self_attn.sliding_window = rm.backbone.config.sliding_window
    assert np.abs(shared - unwindowed).max() > 1e-3


def test_the_shared_path_never_expands_and_restores_the_model(monkeypatch):
    from rmvalues.engines import score

    rm = load("gemma", "sequence_classification", "float32")
    before = rm.backbone.config._attn_implementation
    split = split_chat(rm.tokenizer, PROMPT)
    candidates = vocabulary_candidates(rm.tokenizer, range(50))
    want = Engine(rm, attention="expand").score_prompt(split, candidates)
    monkeypatch.setattr(score, "_expanded_cache", lambda *a: pytest.fail("cache expanded"))
    got = Engine(rm).score_prompt(split, candidates)
    assert rm.backbone.config._attn_implementation == before
    assert np.abs(got - want).max() <= SHARED_VS_EXPAND
    full = Engine(rm, mode="full").score_prompt(split, candidates)  # the model's own attention
    assert np.abs(full - want).max() <= 1e-4


def test_multi_token_states_score_alike():
    """extend (reference attention, one row) then score_state on either attention."""
    rm = load("llama", "armorm", "float32")
    split = split_chat(rm.tokenizer, PROMPT)
    scores = []
    for attention in ("shared", "expand"):
        engine = Engine(rm, attention=attention)
        state = engine.extend(engine.prefill(split.prefix_ids), [791, 1888])
        scores.append(engine.score_state(state, [[t, *split.suffix_ids] for t in range(80)]))
    assert np.abs(scores[0] - scores[1]).max() <= SHARED_VS_EXPAND


def test_attention_function_refuses_to_run_outside_the_engine():
    from rmvalues.engines.shared_prefix import shared_attention
    from rmvalues.errors import ModelError

    rm = load("llama", "sequence_classification", "float32")
    with shared_attention(rm.backbone), pytest.raises(ModelError, match="shared_prefix"):
        rm.backbone(input_ids=torch.tensor([[1, 2, 3]]), use_cache=False)
    assert rm.backbone.config._attn_implementation == "sdpa"


def test_unsupported_architecture_falls_back_to_expand(caplog, monkeypatch):
    from rmvalues.engines import shared_prefix
    from rmvalues.errors import InputError

    rm = load("llama", "sequence_classification", "float32")
    monkeypatch.setattr(shared_prefix, "SUPPORTED_MODEL_TYPES", frozenset({"gemma2"}))
    with caplog.at_level(logging.INFO, logger="rmvalues.engines"):
        assert Engine(rm).attention == "expand"
    assert "does not support model type 'llama'" in caplog.text
    with pytest.raises(InputError, match="unknown attention"):
        Engine(rm, attention="flat")


def test_shared_batches_are_sized_by_continuation_tokens():
    """The prefix is held once, so a batch holds budget // continuation length rows; a row cap
    (batch_size) still applies, and neither changes the scores."""
    rm = load("llama", "sequence_classification", "float32")
    split = split_chat(rm.tokenizer, PROMPT)
    candidates = vocabulary_candidates(rm.tokenizer, range(100))
    rows = 1 + len(split.suffix_ids)
    seen = []
    engine = Engine(rm, max_batch_tokens=30 * rows)
    assert engine.runner.batch_size is None
    original = engine._continue_batch
    engine._continue_batch = lambda state, ids, positions: (seen.append(len(ids))
                                                           or original(state, ids, positions))
    got = engine.score_prompt(split, candidates)
    assert seen == [30, 30, 30, 10]
    capped = Engine(rm, batch_size=7, max_batch_tokens=30 * rows)
    assert capped.runner.rows_per_batch(rows) == 7
    np.testing.assert_allclose(capped.score_prompt(split, candidates), got, atol=SHARED_VS_EXPAND)
    assert Engine(rm, attention="expand").runner.rows_per_batch(rows) == 64  # the old default


def test_low_precision_defaults_to_the_reference_kernel_and_eager_shared_is_exact():
    """bf16/fp16 default to the expanded cache (it runs the reference's own kernel); opting in to
    shared attention under eager attention (Gemma-2) reproduces eager's rounding in bf16."""
    from rmvalues.engines.reference import reference_conversations, reference_score

    assert Engine(load("llama", "sequence_classification", "bfloat16")).attention == "expand"
    rm = load("gemma", "sequence_classification", "bfloat16")
    assert Engine(rm).attention == "expand" and rm.attn_implementation == "eager"
    split = split_chat(rm.tokenizer, PROMPT)
    candidates = vocabulary_candidates(rm.tokenizer, token_slice(rm.tokenizer, 120))
    shared = Engine(rm, batch_size=32, attention="shared").score_prompt(split, candidates)
    ref = reference_score(rm, reference_conversations(rm.tokenizer, split, candidates))
    assert np.abs(shared - ref).max() <= 1e-4 * ref.std()  # measured: <= 6e-6 x std


def test_registry_row_cap_applies_off_the_shared_path_only():
    """A model registry's rows per forward (sized for the expanded cache) caps the expand path;
    the shared path batches by tokens alone unless --batch-size is given."""
    rm = load("llama", "sequence_classification", "float32")
    shared = Engine(rm, row_cap=8)
    assert shared.attention == "shared" and shared.runner.batch_size is None
    assert shared.runner.rows_per_batch(2) == shared.runner.max_tokens // 2
    assert Engine(rm, row_cap=8, attention="expand").runner.batch_size == 8
    assert Engine(rm, attention="expand").runner.batch_size == 64
    assert Engine(rm, batch_size=4, row_cap=8).runner.batch_size == 4


def test_score_options_choose_the_attention_and_token_budget(tmp_path):
    """`score --attention expand --max-batch-tokens N` reach the engine and the manifest; the
    expand path's scores equal the shared path's; bad values are refused before loading."""
    import json

    import pandas as pd

    from _engine_models import tiny_rm_dir
    from rmvalues.api import score
    from rmvalues.errors import InputError
    from rmvalues.runs.options import ScoreOptions

    model = tiny_rm_dir("llama")
    runs = {}
    for attention in ("shared", "expand"):
        out = tmp_path / attention
        score(model, {"p": PROMPT}, "vocab:0-63", out, attention=attention, max_batch_tokens=40,
              dtype="float32", device="cpu")
        fields = json.loads(next(out.glob("*.manifest.json")).read_text("utf-8"))["fields"]
        assert fields["attention"] == attention and fields["max_batch_tokens"] == 40
        runs[attention] = pd.read_parquet(next(out.glob("*.parquet")))["score"].to_numpy()
    np.testing.assert_allclose(runs["shared"], runs["expand"], atol=1e-5)
    with pytest.raises(InputError, match="--attention"):
        ScoreOptions(attention="split")
    with pytest.raises(InputError, match="--max-batch-tokens"):
        ScoreOptions(max_batch_tokens=0)
