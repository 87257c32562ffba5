"""Real weights: SmolLM2-135M-Instruct (Llama architecture, GGUF) as an RM backbone with a seeded
score head. 500 vocabulary candidates through the fast path equal the reference path."""

from __future__ import annotations

import numpy as np
import pytest

from rmvalues.engines.candidates import vocabulary_candidates
from rmvalues.engines.reference import reference_score
from rmvalues.engines.score import Engine, continuation_ids
from rmvalues.models.chat import split_chat
from rmvalues.models.heads.sequence_classification import SequenceClassificationHead

pytestmark = pytest.mark.slow

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def test_smollm2_fast_path_equals_reference():
    from rmvalues.assets import asset_path
    from rmvalues.models.loading import load_reward_model

    folder = asset_path("smollm2-135m-instruct")
    rm = load_reward_model(folder, gguf_file=GGUF, head=SequenceClassificationHead.seeded(576),
                           device="cpu", dtype="float32")
    assert type(rm.backbone).__name__ == "LlamaModel"
    tok = rm.tokenizer
    split = split_chat(tok, "What, in one word, is the best thing ever?")  # ChatML from the GGUF
    assert tok.convert_ids_to_tokens(list(split.suffix_ids)) == ["<|im_end|>", "Ċ"]
    step = len(tok) // 500
    ids = [*range(0, len(tok), step)][:498] + [tok.eos_token_id, len(tok) - 1]
    candidates = vocabulary_candidates(tok, ids)
    assert len(candidates) == 500
    fast = Engine(rm, batch_size=64).score_prompt(split, candidates)
    assert np.isfinite(fast).all() and fast.std() > 0.05
    # The reference: one unpadded full forward per conversation, for every one of the 500.
    conversations = [[*split.prefix_ids, *c] for c in continuation_ids(rm, split, candidates)]
    slow = reference_score(rm, conversations)
    assert np.abs(fast - slow).max() <= 1e-4
