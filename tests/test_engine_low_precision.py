"""The bf16/fp16 path: fast vs reference for every head type on tiny Llama-3 and Gemma-2 RMs.

Backbones run in bfloat16/float16; heads must compute in float32 whatever the backbone dtype. The
Gemma-2 backbone has a sliding window (12) shorter than its prompts and attention soft-capping.

Measured on CPU (all head types, both families, both dtypes): max |fast - reference| <= 4e-6 x
the score standard deviation, and the top and bottom 100 of 300 token candidates are the same sets
on both paths. A Gemma-2 prefix cache with sliding-window layers (what ``DynamicCache(config=...)``
builds) made the continuation's attention reduce over fewer keys than one full forward does: equal
in exact arithmetic, but in bf16 the reordered sums gave max |Δ| = 0.047-0.076 x std (fp16:
0.0036-0.0090 x std, by CPU). Soft-capping made no difference (measured with and without; Gemma-2 runs
eager attention whatever is asked, and its embedding normaliser is the same per-token op on both
paths); a window longer than the conversation removed it (2e-6). The engine now keeps full cache
layers and lets the mask apply the window. That reordering noise is what kernels that order reductions differently
(other batch shapes, GPUs) cost, so ``--verify``'s relative tolerances (runs.verify.VERIFY_TOLERANCE: 0.16 x
std in bf16, 0.02 x std in fp16) are twice the largest measured value;
``test_reordered_sums_stay_within_verify_tolerance`` re-measures it.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from _engine_models import _ROOT as ROOT
from _engine_models import token_slice, tokenizer
from rmvalues.engines.candidates import text_candidates, vocabulary_candidates
from rmvalues.engines.reference import reference_conversations, reference_score
from rmvalues.engines.score import Engine
from rmvalues.models.chat import split_chat
from rmvalues.models.heads import HEAD_TYPES, head_class
from rmvalues.runs.verify import VERIFY_TOLERANCE
from test_heads import GEMMA2_PATTERN

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

PROMPT = "In one word, what is the single most important quality in a person?"
TEXTS = ["Kind", "loyalty and warmth", "common good"]
HEAD_FIELDS = {"num_objectives": 5, "num_quantiles": 7, "gating_hidden_dim": 16,
               "gating_n_hidden": 3, "gating_temperature": 2.0, "urm_gate_hidden": 24,
               "vhead_num_neurons": 16, "vhead_num_layers": 1, "vhead_layer_type": "mlp"}
#: measured <= 4e-6 (module docstring); a 25x margin
FAST_VS_REFERENCE = 1e-4


def config(family: str):
    from transformers import Gemma2Config, LlamaConfig

    tok = tokenizer("llama3" if family == "llama" else "gemma2")
    common = {"vocab_size": len(tok), "hidden_size": 32, "intermediate_size": 64,
              "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
              "max_position_embeddings": 256, **HEAD_FIELDS}
    if family == "llama":
        return LlamaConfig(**common, pad_token_id=tok.eos_token_id)
    # QRM-Gemma states what its checkpoint lacks (issue 13: the head refuses to guess)
    return Gemma2Config(**common, head_dim=8, sliding_window=12, attn_logit_softcapping=50.0,
                        pad_token_id=tok.pad_token_id, identity_reward_transform=True,
                        gating_token_pattern=GEMMA2_PATTERN)


@functools.cache
def model_dir(family: str, head_type: str):
    from transformers import AutoModel

    from rmvalues.models.loading import save_reward_model

    cfg = config(family)
    torch.manual_seed(0)
    backbone = AutoModel.from_config(cfg).eval()
    if head_type == "sequence_classification":
        state = {"score.weight": torch.randn(1, cfg.hidden_size)}
    else:
        state = head_class(head_type).random_state_dict(cfg, seed=1)
    return save_reward_model(ROOT / f"low-precision-{family}-{head_type}", backbone, state)


def load(family: str, head_type: str, dtype: str):
    from rmvalues.models.loading import load_reward_model

    tok = tokenizer("llama3" if family == "llama" else "gemma2")
    return load_reward_model(model_dir(family, head_type), head=head_type, tokenizer=tok,
                             device="cpu", dtype=dtype)


def fast_and_reference(rm, n: int = 160):
    split = split_chat(rm.tokenizer, PROMPT)
    tokens = vocabulary_candidates(rm.tokenizer, token_slice(rm.tokenizer, n))
    texts = text_candidates(TEXTS)
    engine = Engine(rm, batch_size=32)
    fast = np.concatenate([engine.score_prompt(split, tokens), engine.score_prompt(split, texts)])
    ref = reference_score(rm, reference_conversations(rm.tokenizer, split, tokens)
                          + reference_conversations(rm.tokenizer, split, texts))
    return fast, ref


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
@pytest.mark.parametrize("family", ["llama", "gemma"])
@pytest.mark.parametrize("head_type", sorted(HEAD_TYPES))
def test_fast_equals_reference_in_low_precision(head_type, family, dtype):
    rm = load(family, head_type, dtype)
    assert str(rm.dtype) == f"torch.{dtype}"
    fast, ref = fast_and_reference(rm)
    assert fast.dtype == np.float32 and np.isfinite(fast).all()
    spread = float(ref.std())
    assert spread > 1e-3  # candidates really differ
    assert np.abs(fast - ref).max() <= FAST_VS_REFERENCE * spread


def test_sequence_classification_head_computes_in_float32():
    """Given bf16 states, float32 scores equal to those of the same states in fp32 (the other
    heads: tests/test_heads.py::test_float32_output_under_bf16_backbone)."""
    rm = load("llama", "sequence_classification", "float32")
    generator = torch.Generator().manual_seed(0)
    last, prompt = (torch.randn(6, 32, generator=generator).bfloat16() for _ in range(2))
    extra = (prompt,) if rm.head.needs_prompt_state else ()
    with torch.inference_mode():
        low = rm.head(last, *extra)
        want = rm.head(last.float(), *(p.float() for p in extra))
    assert low.dtype == torch.float32
    torch.testing.assert_close(low, want, rtol=0, atol=0)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_reordered_sums_stay_within_verify_tolerance(dtype, monkeypatch):
    """Re-measure the reordering noise behind VERIFY_TOLERANCE: a sliding-window prefix cache
    (the attention reduces over fewer keys than one full forward does) on the tiny Gemma-2."""
    from transformers import DynamicCache

    rm = load("gemma", "sequence_classification", dtype)
    exact, ref = fast_and_reference(rm)
    monkeypatch.setattr("transformers.DynamicCache",
                        lambda: DynamicCache(config=rm.backbone.config))
    reordered, _ = fast_and_reference(rm)
    spread = float(ref.std())
    noise = np.abs(reordered - ref).max() / spread
    assert np.abs(exact - ref).max() <= FAST_VS_REFERENCE * spread
    assert 10 * FAST_VS_REFERENCE < noise <= VERIFY_TOLERANCE[dtype] / 2  # real noise, 2x margin


def _agreement(a: np.ndarray, b: np.ndarray, k: int = 100) -> tuple[int, int]:
    """How many of the top k and of the bottom k candidates the two score vectors share."""
    top = len(set(np.argsort(-a)[:k]) & set(np.argsort(-b)[:k]))
    return top, len(set(np.argsort(a)[:k]) & set(np.argsort(b)[:k]))


@pytest.mark.parametrize("family", ["llama", "gemma"])
def test_top_and_bottom_100_agree_between_the_paths(family, monkeypatch):
    """bf16, 600 token candidates: the same top-100 and bottom-100 sets on both paths; on the
    Gemma-2 even a sliding-window cache's reordered sums (0.076 x std) keep both sets."""
    from transformers import DynamicCache

    rm = load(family, "sequence_classification", "bfloat16")
    fast, ref = fast_and_reference(rm, n=600)
    assert _agreement(fast, ref) == (100, 100)
    if family == "gemma":
        monkeypatch.setattr("transformers.DynamicCache",
                            lambda: DynamicCache(config=rm.backbone.config))
        reordered, _ = fast_and_reference(rm, n=600)
        top, bottom = _agreement(reordered, ref)  # measured: (100, 100)
        assert top >= 95 and bottom >= 95


def test_verify_tolerance_is_relative_to_the_score_spread(tmp_path):
    from rmvalues.api import score
    from rmvalues.runs.verify import default_verify_tolerance

    result = score(load("gemma", "sequence_classification", "bfloat16"), {"p": PROMPT},
                   "vocab:0-63", tmp_path, verify=8)
    check = result.manifest["verify"]
    spread = float(np.std(result.table["score"].to_numpy(np.float64)))
    assert check["tolerance"] == pytest.approx(VERIFY_TOLERANCE["bfloat16"] * spread)
    assert check["n"] == 8 and check["max_abs_diff"] <= FAST_VS_REFERENCE * spread
    assert default_verify_tolerance("float16", [2.0, 2.0]) == VERIFY_TOLERANCE["float16"]
    assert default_verify_tolerance("float32", [0.0, 2.0]) == pytest.approx(1e-4)
