"""The obviously-correct reference path: one unpadded full forward per conversation.

No cache, no batching, no padding: each conversation's ids go through the backbone alone and the
head reads the last position (gating heads: their prompt position, found as their original code
finds it). Tests and ``--verify`` hold the fast path equal to this.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from rmvalues.models.loading import RewardModel


def reference_score(rm: RewardModel, conversations: Sequence[Sequence[int]],
                    pool: Callable[[Sequence[int]], int] | None = None) -> np.ndarray:
    """float32 score of each full conversation (prefix + response + suffix ids); ``pool`` picks
    the position the head reads (default: the last)."""
    import torch

    from rmvalues.models.heads import score_full_sequences

    scores = np.empty(len(conversations), dtype=np.float32)
    for i, conversation in enumerate(conversations):
        ids = torch.tensor([list(conversation)], device=rm.device)
        with torch.inference_mode():
            hidden = rm.backbone(input_ids=ids, use_cache=False).last_hidden_state
            positions = None if pool is None else [pool(list(conversation))]
            scores[i] = score_full_sequences(rm.head, hidden.float(), [conversation],
                                             positions).item()
    return scores
