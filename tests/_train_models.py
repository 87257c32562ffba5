"""A tiny random Llama base model (causal LM, no score head) on the real Llama-3 tokenizer.

Saved once per test session with safetensors, so training loads it like any local base model; the
sequence-classification head is created (seeded) by the trainer, as for a real base LM.
"""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

_ROOT = Path(tempfile.mkdtemp(prefix="rmvalues-train-tests-"))


@functools.cache
def llama_tokenizer():
    from rmvalues.models.tokenizers import bundled_tokenizer

    return bundled_tokenizer("llama3")


@functools.cache
def tiny_base_dir(seed: int = 0, hidden: int = 32) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = llama_tokenizer()
    torch.manual_seed(seed)
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=len(tok), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id))
    folder = _ROOT / f"base-{seed}-{hidden}"
    model.save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)
    return folder


def preference_records(n: int = 16) -> list[dict]:
    """Prompt/chosen/rejected texts: 'good' always beats 'bad'."""
    return [{"prompt": f"Question {i}: what, in one word, is best?", "chosen": "good",
             "rejected": "bad"} for i in range(n)]
