"""A tiny reward model with a planted Communion-over-Agency preference, on the real Llama-3
tokenizer and chat template.

One layer whose attention is uniform (query and key weights zero) and whose value/output maps are
the identity, no MLP: the final position's state is the mean of the (normalised) token embeddings,
so a candidate's own embedding reaches the score head. Every token of a Communion word is moved
along one direction, every token of an Agency word the opposite way, and the head reads that
direction: Communion words score higher under every prompt. ``strength=0`` is the no-preference
control (random embeddings, the same architecture).
"""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

_ROOT = Path(tempfile.mkdtemp(prefix="rmvalues-audit-tests-"))


@functools.cache
def planted_rm_dir(strength: float = 1.0, seed: int = 0, hidden: int = 32) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForSequenceClassification

    from rmvalues.lexicons import load_lexicon
    from rmvalues.models.tokenizers import bundled_tokenizer

    tok = bundled_tokenizer("llama3")
    torch.manual_seed(seed)
    model = LlamaForSequenceClassification(LlamaConfig(
        vocab_size=len(tok), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=1,
        num_attention_heads=4, num_key_value_heads=4, num_labels=1, pad_token_id=tok.eos_token_id,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id))
    generator = torch.Generator().manual_seed(seed + 1)
    direction = torch.randn(hidden, generator=generator)
    direction /= direction.norm()
    layer = model.model.layers[0]
    with torch.no_grad():
        layer.self_attn.q_proj.weight.zero_()
        layer.self_attn.k_proj.weight.zero_()
        layer.self_attn.v_proj.weight.copy_(torch.eye(hidden))
        layer.self_attn.o_proj.weight.copy_(torch.eye(hidden))
        layer.mlp.down_proj.weight.zero_()
        weight = model.get_input_embeddings().weight
        lex = load_lexicon("big-two-nouns")
        for category, sign in (("Communion", 1.0), ("Agency", -1.0)):
            for term in lex.terms(category):
                for token in set(tok.encode(term, add_special_tokens=False)):
                    weight[token] += sign * strength * direction
        model.score.weight.copy_(direction[None, :])
    folder = _ROOT / f"planted-{strength}-{seed}-{hidden}"
    model.save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)
    return folder
