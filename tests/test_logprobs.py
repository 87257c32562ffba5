"""Full-vocabulary log-probs: batched fast path = unbatched reference, padded rows, kinds, storage."""

from __future__ import annotations

import numpy as np
import pytest

from rmvalues.engines.logprobs import (
    compute_logprobs,
    log_softmax64,
    next_token_logprobs,
    reference_logprobs,
)
from rmvalues.errors import TemplateError
from rmvalues.implicit import logsumexp
from rmvalues.models.chat import FACCT_TEMPLATE, prompt_input_ids
from rmvalues.store.logprob_runs import load_run, save_run

PROMPTS = {
    "greatest_ever_one": "What, in one word, is the greatest thing ever?",
    "worst_time_please": "What is the worst thing of all time? Please answer in one word only.",
    "bad_world_single": "What, in a single word, is the most bad thing in the world?",
    "worst_ever_one": "What, in one word, is the worst thing ever?",
    "best_ever_one": "What, in one word, is the best thing ever?",
    "short": "Hi",
}
ATOL = 1e-5
REAL_ATOL = 1e-4  # SmolLM2: logits ~33, see test_smollm2_logprobs_equal_reference
LLAMA3_VOCAB = 128256
PADDED_ROWS = 64


@pytest.fixture(scope="module")
def llama3_tokenizer():
    from rmvalues.models.tokenizers import bundled_tokenizer

    return bundled_tokenizer("llama3")


@pytest.fixture(scope="module")
def tiny_llama():
    """A tiny random Llama whose output matrix is padded 64 rows beyond the Llama-3 vocabulary."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=LLAMA3_VOCAB + PADDED_ROWS, hidden_size=16,
                         intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
                         num_key_value_heads=1, max_position_embeddings=256,
                         tie_word_embeddings=False)
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():
        model.lm_head.weight.mul_(8.0)  # spread the logits so the softmax is not near-uniform
    return model


def _check_against_reference(model, ids, vocab_size, batch_size, atol=ATOL):
    fast = next_token_logprobs(model, ids, vocab_size=vocab_size, batch_size=batch_size)
    assert fast.shape == (len(ids), vocab_size) and fast.dtype == np.float32
    for row, seq in zip(fast, ids):
        ref = reference_logprobs(model, seq, vocab_size=vocab_size)
        np.testing.assert_allclose(row, ref, atol=atol, rtol=0)
    return fast


@pytest.mark.parametrize("kind", ["pretrained", "instruct"])
def test_tiny_llama3_logprobs_equal_reference_and_batching_changes_nothing(
        tiny_llama, llama3_tokenizer, kind):
    ids = prompt_input_ids(llama3_tokenizer, list(PROMPTS.values()), kind=kind)
    lengths = [len(s) for s in ids]
    assert 1 < len(set(lengths)) < len(lengths)  # several buckets, one holding several prompts
    batched = _check_against_reference(tiny_llama, ids, LLAMA3_VOCAB, batch_size=4)
    single = next_token_logprobs(tiny_llama, ids, vocab_size=LLAMA3_VOCAB, batch_size=1)
    np.testing.assert_allclose(batched, single, atol=ATOL, rtol=0)
    # a proper distribution over the tokenizer's ids: the padded rows took no mass
    np.testing.assert_allclose(logsumexp(batched.astype(np.float64)), 0.0, atol=1e-4)
    assert batched.std() > 0.5


def _tiny_lm(family: str, vocab: int):
    """A tiny random causal LM of ``family``; Gemma-2 with a sliding window (8) shorter than the
    longer prompts and both soft-cappings, Qwen2 with its q/k/v biases."""
    import torch
    from transformers import (
        Gemma2Config,
        Gemma2ForCausalLM,
        LlamaConfig,
        LlamaForCausalLM,
        Qwen2Config,
        Qwen2ForCausalLM,
    )

    common = {"vocab_size": vocab, "hidden_size": 16, "intermediate_size": 32,
              "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1,
              "max_position_embeddings": 256, "tie_word_embeddings": False}
    torch.manual_seed(1)
    if family == "llama":
        model = LlamaForCausalLM(LlamaConfig(**common))
    elif family == "gemma2":
        model = Gemma2ForCausalLM(Gemma2Config(**common, head_dim=8, sliding_window=8,
                                               attn_logit_softcapping=50.0,
                                               final_logit_softcapping=30.0))
    else:
        model = Qwen2ForCausalLM(Qwen2Config(**common))
    with torch.no_grad():
        model.lm_head.weight.mul_(8.0)
    return model.eval()


@pytest.mark.parametrize("family", ["llama", "gemma2", "qwen2"])
def test_padded_token_budget_batches_equal_unpadded_reference(family, llama3_tokenizer):
    """Prompts of many lengths right-padded into shared forwards (one batch, then a token budget
    that splits them unevenly) give the unbatched full forward's log-probs."""
    model = _tiny_lm(family, LLAMA3_VOCAB)
    ids = prompt_input_ids(llama3_tokenizer, list(PROMPTS.values()), kind="instruct")
    ids += prompt_input_ids(llama3_tokenizer, list(PROMPTS.values()), kind="pretrained")
    assert len({len(s) for s in ids}) >= 6 and max(map(len, ids)) > 2 * 8
    refs = np.stack([reference_logprobs(model, s, vocab_size=LLAMA3_VOCAB) for s in ids])
    assert refs.std() > 0.5
    for batch_size, budget in [(64, None), (5, None), (64, 3 * max(map(len, ids)))]:
        fast = next_token_logprobs(model, ids, vocab_size=LLAMA3_VOCAB, batch_size=batch_size,
                                   max_batch_tokens=budget)
        assert fast.shape == refs.shape and fast.dtype == np.float32
        np.testing.assert_allclose(fast, refs, atol=ATOL, rtol=0)


def test_batches_follow_the_token_budget_and_halve_on_oom(tiny_llama, llama3_tokenizer,
                                                          monkeypatch):
    """All prompts share one forward when they fit; a budget caps the padded tokens per forward;
    an out-of-memory forward is retried at half the rows (BatchRunner)."""
    import torch

    ids = prompt_input_ids(llama3_tokenizer, list(PROMPTS.values()), kind="pretrained")
    seen: list[tuple[int, int]] = []
    forward = tiny_llama.forward

    def spy(*args, **kwargs):
        shape = tuple(kwargs["input_ids"].shape)
        seen.append(shape)
        if shape[0] > 3 and spy.oom:
            raise torch.OutOfMemoryError("fake")
        return forward(*args, **kwargs)

    spy.oom = False
    monkeypatch.setattr(tiny_llama, "forward", spy)
    base = next_token_logprobs(tiny_llama, ids, vocab_size=LLAMA3_VOCAB, batch_size=64)
    assert seen == [(len(ids), max(map(len, ids)))]
    seen.clear()
    width = max(map(len, ids))
    next_token_logprobs(tiny_llama, ids, vocab_size=LLAMA3_VOCAB, batch_size=64,
                        max_batch_tokens=2 * width)
    assert [rows for rows, _ in seen] == [2, 2, 2] and all(r * w <= 2 * width for r, w in seen)
    seen.clear()
    spy.oom = True
    halved = next_token_logprobs(tiny_llama, ids, vocab_size=LLAMA3_VOCAB, batch_size=6)
    assert [rows for rows, _ in seen] == [6, 3, 3]  # 6 rows fail, then two batches of 3
    np.testing.assert_allclose(halved, base, atol=ATOL, rtol=0)


def test_models_without_logits_to_keep_get_the_last_real_position(tiny_llama, llama3_tokenizer):
    """A forward that takes no ``logits_to_keep`` (older or custom model code) returns every
    position's logits; each row's last real one is read, as with the per-row slice."""
    import torch

    class AllPositions(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def get_input_embeddings(self):
            return self.model.get_input_embeddings()

        def get_output_embeddings(self):
            return self.model.get_output_embeddings()

        def forward(self, input_ids, attention_mask=None, use_cache=False):
            return self.model(input_ids=input_ids, attention_mask=attention_mask)

    ids = prompt_input_ids(llama3_tokenizer, list(PROMPTS.values()), kind="pretrained")
    plain = next_token_logprobs(AllPositions(tiny_llama), ids, vocab_size=LLAMA3_VOCAB)
    sliced = next_token_logprobs(tiny_llama, ids, vocab_size=LLAMA3_VOCAB)
    np.testing.assert_allclose(plain, sliced, atol=ATOL, rtol=0)
    for row, seq in zip(plain, ids):
        np.testing.assert_allclose(row, reference_logprobs(tiny_llama, seq,
                                                           vocab_size=LLAMA3_VOCAB), atol=ATOL)


def test_padded_rows_are_excluded_not_renormalised_in(tiny_llama, llama3_tokenizer):
    import copy

    import torch

    ids = prompt_input_ids(llama3_tokenizer, ["Hello there"], kind="pretrained")
    model = copy.deepcopy(tiny_llama)
    with torch.inference_mode():
        top = int(model(input_ids=torch.tensor(ids)).logits[0, -1, :LLAMA3_VOCAB].argmax())
        model.lm_head.weight[LLAMA3_VOCAB:] = 3.0 * model.lm_head.weight[top]
        logits = model(input_ids=torch.tensor(ids)).logits[0, -1].double().numpy()
    # the padded rows dominate the full softmax ...
    full = logits - logsumexp(logits)
    assert np.exp(full[LLAMA3_VOCAB:]).sum() > 0.5
    # ... but the run normalises over the tokenizer's ids only
    out = next_token_logprobs(model, ids, vocab_size=LLAMA3_VOCAB)[0]
    np.testing.assert_allclose(out, logits[:LLAMA3_VOCAB] - logsumexp(logits[:LLAMA3_VOCAB]),
                               atol=ATOL)


def test_prompt_construction_per_kind(llama3_tokenizer):
    tok = llama3_tokenizer
    text = PROMPTS["greatest_ever_one"]
    (pre,) = prompt_input_ids(tok, [text], kind="pretrained")
    assert pre[0] == tok.bos_token_id and pre[1:] == tok(text, add_special_tokens=False)["input_ids"]
    (facct,) = prompt_input_ids(tok, [text], kind="pretrained", template=FACCT_TEMPLATE)
    assert tok.decode(facct[1:]) == f"User: {text}\nAssistant:"
    (inst,) = prompt_input_ids(tok, [text], kind="instruct")
    rendered = tok.decode(inst)
    assert rendered.startswith("<|begin_of_text|><|start_header_id|>system")
    assert "Today Date: 26 Jul 2024" in rendered
    assert rendered.endswith(f"{text}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")
    assert rendered.count("<|begin_of_text|>") == 1


def test_instruct_without_chat_template_asks_for_one(tiny_llama, llama3_tokenizer):
    import copy

    tok = copy.deepcopy(llama3_tokenizer)
    tok.chat_template = None
    with pytest.raises(TemplateError, match="no chat template.*--chat-template"):
        compute_logprobs(tiny_llama, tok, {"a": "Hi"}, kind="instruct", model_name="tiny")
    # a template given as a file fixes it
    from rmvalues.assets import asset_path

    path = asset_path("chat-templates", "google-gemma-2-2b-it.jinja")
    run = compute_logprobs(tiny_llama, tok, {"a": "Hi"}, kind="instruct", model_name="tiny",
                           chat_template=path)
    (ids,) = prompt_input_ids(tok, ["Hi"], kind="instruct", chat_template=path)
    assert tok.decode(ids).endswith("<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n")
    assert run.meta["date_string"] is None and run.logprobs.shape == (1, LLAMA3_VOCAB)


def test_run_round_trip_through_parquet(tiny_llama, llama3_tokenizer, tmp_path):
    import pyarrow.parquet as pq

    from rmvalues.models.tokenizers import vocabulary_table
    from rmvalues.store.manifest import read_manifest
    from rmvalues.store.schema import SCORE_SCHEMA

    prompts = dict(list(PROMPTS.items())[:2])
    run = compute_logprobs(tiny_llama, llama3_tokenizer, prompts, kind="instruct",
                           model_name="tiny-llama", batch_size=2)
    assert run.meta["padded_rows_excluded"] == PADDED_ROWS
    assert run.meta["date_string"] == "26 Jul 2024"
    path = save_run(run, tmp_path / "run", vocabulary=vocabulary_table(llama3_tokenizer))
    table = pq.read_table(path)
    assert table.schema.equals(SCORE_SCHEMA)
    assert table.num_rows == 2 * LLAMA3_VOCAB
    row = table.slice(LLAMA3_VOCAB + 1000, 1).to_pylist()[0]
    assert row["prompt_id"] == "worst_time_please" and row["token_id"] == 1000
    assert row["candidate"] == run.tokens[1000] and row["candidate_kind"] == "token"
    assert (tmp_path / "run" / "vocabulary.parquet").exists()
    assert read_manifest(tmp_path / "run" / "logprobs.manifest.json").kind == "lm-logprobs"
    back = load_run(tmp_path / "run")
    assert back.prompt_ids == run.prompt_ids and back.tokens == run.tokens
    np.testing.assert_array_equal(back.logprobs, run.logprobs)
    assert back.meta["model_kind"] == "instruct"


# --- the real SmolLM2-135M-Instruct (GGUF, dequantised to fp32) ------------------------------------


@pytest.fixture(scope="module")
def smollm2():
    from rmvalues.assets import asset_path
    from rmvalues.models.lm import load_causal_lm

    folder = asset_path("smollm2-135m-instruct")
    return load_causal_lm(folder, gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["pretrained", "instruct"])
def test_smollm2_logprobs_equal_reference(smollm2, kind):
    tok = smollm2.tokenizer
    ids = prompt_input_ids(tok, list(PROMPTS.values())[:5], kind=kind)
    assert len({len(s) for s in ids}) < len(ids)
    if kind == "instruct":
        assert tok.decode(ids[0]).endswith("<|im_end|>\n<|im_start|>assistant\n")
    vocab = len(tok)
    # Real logits reach ~33, where the last-position-only output projection (a matrix-vector
    # kernel on CPU, vs the reference's all-positions matrix product) rounds them differently
    # by a few fp32 ulps: measured up to 3.1e-5 unpadded and 4.8e-5 right-padded (the same 1e-4
    # as the RM engine's SmolLM2 test).
    fast = _check_against_reference(smollm2.model, ids, vocab, batch_size=3, atol=REAL_ATOL)
    single = next_token_logprobs(smollm2.model, ids, vocab_size=vocab, batch_size=1)
    np.testing.assert_allclose(fast, single, atol=REAL_ATOL, rtol=0)
    assert smollm2.info["gguf_sha256"]


def test_normaliser_keeps_float32_log_probs_exact(tiny_llama, llama3_tokenizer):
    """Log-probs over a realistic range (below -40): the float64 normaliser gives the reference's
    float32 values to 1 ulp on the same logits; an fp32 ``log_softmax`` over the 128,256 logits is
    off by tens of ulps here, which the 1e-5 tolerance of the tests above lets through on small
    spreads. (Same logits: the fast path's last-position-only output projection rounds the logits
    themselves differently, by up to 1 ulp of a logit, i.e. ~8e-6 at this scale.)"""
    import copy

    import torch

    model = copy.deepcopy(tiny_llama)
    with torch.no_grad():
        model.lm_head.weight.mul_(12.0)
    ids = prompt_input_ids(llama3_tokenizer, list(PROMPTS.values()), kind="pretrained")
    for seq in ids:
        ref = reference_logprobs(model, seq, vocab_size=LLAMA3_VOCAB)
        assert ref.min() < -40
        with torch.inference_mode():
            logits = model(input_ids=torch.tensor([seq])).logits[:, -1, :LLAMA3_VOCAB]
        np.testing.assert_array_max_ulp(log_softmax64(logits)[0], ref, maxulp=1)
        fp32 = torch.log_softmax(logits, dim=-1)[0].numpy()
        with pytest.raises(AssertionError):
            np.testing.assert_array_max_ulp(fp32, ref, maxulp=1)
        fast = next_token_logprobs(model, [seq], vocab_size=LLAMA3_VOCAB)[0]
        np.testing.assert_allclose(fast, ref, atol=2e-5, rtol=0)
