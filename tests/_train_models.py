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


@functools.cache
def planted_base_dir(category_a: str = "Communion", category_b: str = "Agency",
                     lexicon: str = "big-two-nouns", strength: float = 0.1, seed: int = 0,
                     hidden: int = 32) -> Path:
    """A tiny random Llama that "knows" the two categories: the embedding rows of every token of an
    A word move along one direction, those of B words the opposite way.

    A random model has no word meanings, so nothing learned on training words could transfer to
    held-out ones; this stands in for what pretraining gives a real base model, so the injection
    pipeline (data -> LoRA training -> sweep -> statistics) can be checked on CPU in seconds.
    """
    import torch
    from transformers import LlamaForCausalLM

    from rmvalues.lexicons import load_lexicon

    tok = llama_tokenizer()
    model = LlamaForCausalLM.from_pretrained(tiny_base_dir(seed, hidden))
    lex = load_lexicon(lexicon)
    generator = torch.Generator().manual_seed(seed + 1)
    direction = torch.randn(hidden, generator=generator)
    direction /= direction.norm()
    weight = model.get_input_embeddings().weight
    with torch.no_grad():
        for category, sign in ((category_a, 1.0), (category_b, -1.0)):
            for term in lex.terms(category):
                for token in tok.encode(term, add_special_tokens=False):
                    weight[token] += sign * strength * direction
    folder = _ROOT / f"planted-{category_a}-{category_b}-{strength}-{seed}-{hidden}"
    model.save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)
    return folder
