"""Every vendored head through the engine: checkpoint on disk -> loader -> prefix-cached fast path,
held equal to the reference path AND to the restated original model forward (tests/test_heads.py),
on a tiny random Llama backbone with the real Llama-3.1 tokenizer and template.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rmvalues.errors import RmvaluesError
from rmvalues.models.heads import head_class
from test_heads import CASES, GEMMA2_PATTERN, OriginalQRM, original_scores, tiny_config

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

PROMPTS = ["Describe a good neighbour in one word.", "What matters most in a friend?"]
TEXTS = ["Kind", "loyalty and warmth", " honesty", "common good", "A"]


@pytest.fixture(scope="module")
def llama3():
    from rmvalues.models.tokenizers import bundled_tokenizer

    try:
        return bundled_tokenizer("llama3")
    except RmvaluesError as exc:  # assets not fetched
        pytest.fail(f"bundled llama3 tokenizer unavailable ({exc}); run `make assets`")


def token_slice(tokenizer):
    """A few hundred ids: ordinary, leading-space, byte-level, and special ones incl. <|eot_id|>."""
    ids = list(range(60)) + list(range(12000, 12040)) + list(range(128000, 128020))
    return ids + [tokenizer.eos_token_id, 128255]


def load_tiny_rm(tmp_path, head_type, tokenizer, seed=0, *, config=None):
    from transformers import AutoModel

    from rmvalues.models.loading import load_reward_model, save_reward_model

    cfg = config or tiny_config()
    torch.manual_seed(seed)
    backbone = AutoModel.from_config(cfg).eval()
    state = head_class(head_type).random_state_dict(cfg, seed=seed + 1)
    folder = save_reward_model(tmp_path / head_type, backbone, state)
    rm = load_reward_model(folder, head=head_type, tokenizer=tokenizer, device="cpu",
                           dtype="float32", attn_implementation="eager")
    return rm, state


@pytest.mark.parametrize("head_type", sorted(CASES))
def test_fast_path_equals_reference_and_original(head_type, llama3, tmp_path):
    from rmvalues.engines.candidates import text_candidates, vocabulary_candidates
    from rmvalues.engines.reference import reference_conversations, reference_score
    from rmvalues.engines.score import Engine
    from rmvalues.models.chat import split_chat

    rm, state = load_tiny_rm(tmp_path, head_type, llama3)
    assert rm.head.head_type == head_type
    assert {k: tuple(v.shape) for k, v in rm.head.state_dict().items()} == {
        k: tuple(v.shape) for k, v in state.items()}
    original = CASES[head_type][1](rm.backbone.config)
    original.load_state_dict(state, strict=True)
    original.eval()
    engine = Engine(rm, batch_size=32)
    assert engine.mode == "prefix"
    for prompt in PROMPTS:
        split = split_chat(llama3, prompt)
        ids = token_slice(llama3)
        continuations = [[t, *split.suffix_ids] for t in ids]
        continuations += [[*split.response_ids(llama3, t), *split.suffix_ids] for t in TEXTS]
        fast = engine.score_continuations(split.prefix_ids, continuations)
        # the reference input comes from apply_chat_template(tokenize=True), not from the split
        conversations = (reference_conversations(llama3, split, vocabulary_candidates(llama3, ids))
                         + reference_conversations(llama3, split, text_candidates(TEXTS)))
        slow = reference_score(rm, conversations)
        assert fast.dtype == np.float32 and np.isfinite(fast).all()
        assert np.abs(fast - slow).max() <= 1e-4
        assert fast.std() > 1e-4  # candidates really differ
        # the original model's own forward on (right-padded) full sequences
        sample = [0, 5, len(ids) - 2, len(ids) - 1, len(ids), len(continuations) - 1]
        pairs = [(split.prefix_ids, conversations[i]) for i in sample]
        want = original_scores(original, rm.backbone, pairs).numpy()
        assert np.abs(fast[sample] - want).max() <= 1e-4


@pytest.mark.parametrize("head_type", ["armorm", "urm"])
def test_batch_size_independence(head_type, llama3, tmp_path):
    from rmvalues.engines.score import Engine
    from rmvalues.models.chat import split_chat

    rm, _ = load_tiny_rm(tmp_path, head_type, llama3, seed=3)
    split = split_chat(llama3, PROMPTS[0])
    continuations = [[t, *split.suffix_ids] for t in token_slice(llama3)[:70]]
    one = Engine(rm, batch_size=1).score_continuations(split.prefix_ids, continuations)
    many = Engine(rm, batch_size=64).score_continuations(split.prefix_ids, continuations)
    assert np.abs(one - many).max() <= 1e-5


def test_qrm_gemma2_through_the_engine(tmp_path):
    """QRM-Gemma layout on a tiny Gemma-2 backbone with the real Gemma-2 tokenizer and template:
    the gate reads the end of the user turn (the Gemma-2 pattern) on the fast path too."""
    from transformers import Gemma2Config

    from rmvalues.engines.candidates import vocabulary_candidates
    from rmvalues.engines.reference import reference_conversations, reference_score
    from rmvalues.engines.score import Engine
    from rmvalues.models.chat import split_chat
    from rmvalues.models.tokenizers import bundled_tokenizer

    tok = bundled_tokenizer("gemma2")
    cfg = Gemma2Config(vocab_size=256000, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, head_dim=8,
                       query_pre_attn_scalar=8, max_position_embeddings=256, pad_token_id=0,
                       sliding_window=64, num_objectives=5, num_quantiles=19,
                       gating_hidden_dim=16, gating_n_hidden=3, gating_temperature=1.0,
                       identity_reward_transform=True, gating_token_pattern=GEMMA2_PATTERN)
    cfg._attn_implementation = "eager"
    rm, state = load_tiny_rm(tmp_path, "qrm", tok, config=cfg)
    assert rm.head.reward_transform_matrix is None
    split = split_chat(tok, PROMPTS[1])
    assert list(split.prefix_ids[-5:]) == GEMMA2_PATTERN
    ids = list(range(40)) + list(range(105, 110)) + [tok.eos_token_id]
    continuations = [[t, *split.suffix_ids] for t in ids]
    fast = Engine(rm, batch_size=16).score_continuations(split.prefix_ids, continuations)
    conversations = reference_conversations(tok, split, vocabulary_candidates(tok, ids))
    assert np.abs(fast - reference_score(rm, conversations)).max() <= 1e-4
    original = OriginalQRM(cfg, gemma=True)
    original.load_state_dict(state, strict=True)
    original.eval()
    with torch.no_grad():
        for i in (0, 7, len(ids) - 1):
            x = torch.tensor([conversations[i]])
            hidden = rm.backbone(input_ids=x).last_hidden_state
            want = original(hidden, x, GEMMA2_PATTERN).item()
            assert abs(fast[i] - want) <= 1e-4
