"""Tiny random-weight sequence-classification RMs on the REAL tokenizers and chat templates.

Built once per test session into a temporary folder (``save_pretrained`` with safetensors) and
loaded through the same loader as a hub model. Full-size vocabularies (128,256 / 256,000) keep every
real token id valid; hidden size 32 and 2 layers keep them fast.
"""

from __future__ import annotations

import atexit
import functools
import re
import shutil
import tempfile
from pathlib import Path

import torch

_ROOT = Path(tempfile.mkdtemp(prefix="rmvalues-engine-tests-"))
atexit.register(shutil.rmtree, _ROOT, ignore_errors=True)


@functools.cache
def tokenizer(name: str):
    from rmvalues.models.tokenizers import bundled_tokenizer

    return bundled_tokenizer(name)


@functools.cache
def tiny_rm_dir(family: str, seed: int = 0) -> Path:
    """Folder of a tiny ``LlamaForSequenceClassification`` or ``Gemma2ForSequenceClassification``.

    Gemma-2 gets a sliding window (12) shorter than its prompts and its attention soft-capping, so
    the cached path must reproduce both.
    """
    from transformers import (
        Gemma2Config,
        Gemma2ForSequenceClassification,
        LlamaConfig,
        LlamaForSequenceClassification,
    )

    tok = tokenizer("llama3" if family == "llama" else "gemma2")
    common = {"vocab_size": len(tok), "hidden_size": 32, "intermediate_size": 64,
              "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
              "num_labels": 1}
    torch.manual_seed(seed)
    if family == "llama":
        # pad = eos, as in several Llama RMs: transformers' pad pooling would mis-pool eos candidates.
        model = LlamaForSequenceClassification(LlamaConfig(**common, pad_token_id=tok.eos_token_id))
    else:
        model = Gemma2ForSequenceClassification(Gemma2Config(
            **common, head_dim=8, sliding_window=12, attn_logit_softcapping=50.0,
            pad_token_id=tok.pad_token_id))
    # Random init is small; a larger score head spreads the rewards so differences are visible.
    with torch.no_grad():
        model.score.weight.normal_(0, 1.0)
    folder = _ROOT / f"{family}-{seed}"
    model.save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)
    return folder


@functools.cache
def tiny_rm(family: str, attn_implementation: str | None = None):
    from rmvalues.models.loading import load_reward_model

    return load_reward_model(tiny_rm_dir(family), device="cpu", dtype="float32",
                             attn_implementation=attn_implementation)


def token_slice(tok, size: int = 2048) -> list[int]:
    """>= 2,000 ids: plain ones plus every kind the round trip would lose.

    special/added tokens, byte-level / byte-fallback tokens (decode to U+FFFD or ``<0x..>``),
    whitespace-only tokens, leading-space tokens, the pad and eos tokens, the last id.
    """
    from rmvalues.models.tokenizers import decoded_vocabulary

    decoded = decoded_vocabulary(tok)
    pieces = tok.convert_ids_to_tokens(list(range(len(decoded))))
    chosen: dict[int, None] = {}
    special = sorted(set(tok.all_special_ids) | set(tok.added_tokens_decoder))

    def take(ids, k):
        for i in list(ids)[:k]:
            chosen.setdefault(i, None)

    take(special[:150], 150)
    take((i for i, s in enumerate(decoded) if "\ufffd" in s), 150)
    take((i for i, p in enumerate(pieces) if re.fullmatch(r"<0x[0-9A-F]{2}>", p or "")), 150)
    take((i for i, s in enumerate(decoded) if s and not s.strip()), 80)
    take((i for i, s in enumerate(decoded) if i > 5000 and s.startswith(" ") and s.strip()), 150)
    take([tok.eos_token_id, tok.bos_token_id, len(decoded) - 1], 3)
    if tok.pad_token_id is not None:
        take([tok.pad_token_id], 1)
    for i in range(len(decoded)):  # ordinary ids fill the rest
        if len(chosen) >= size:
            break
        chosen.setdefault(i, None)
    return list(chosen)
