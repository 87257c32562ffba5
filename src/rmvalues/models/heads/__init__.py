"""Score heads: one small class per head type, vendored so no ``trust_remote_code`` is needed.

``HEAD_TYPES`` maps the registry's ``head`` names to their classes; ``build_head`` makes a head
from a model config and a checkpoint state dict (real key names; the full checkpoint may be
passed, each head picks its own tensors by ``state_dict_prefixes``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from rmvalues.errors import ModelError
from rmvalues.models.heads.armorm import ArmoRMHead
from rmvalues.models.heads.base import RewardHead
from rmvalues.models.heads.grm import GRMValueHead
from rmvalues.models.heads.qrm import QRMHead
from rmvalues.models.heads.sequence_classification import SequenceClassificationHead
from rmvalues.models.heads.urm import URMHead

HEAD_TYPES: dict[str, type[RewardHead]] = {
    cls.head_type: cls
    for cls in (SequenceClassificationHead, URMHead, GRMValueHead, ArmoRMHead, QRMHead)
}


def head_class(head_type: str) -> type[RewardHead]:
    """The head class registered under ``head_type``."""
    try:
        return HEAD_TYPES[head_type]
    except KeyError:
        raise ModelError(
            f"unknown head type {head_type!r}; known: {', '.join(sorted(HEAD_TYPES))}. "
            "Set `head` in the model registry to one of these (a new architecture needs a new "
            "head class in rmvalues/models/heads/)."
        ) from None


def build_head(
    head_type: str, config: object, state_dict: Mapping[str, torch.Tensor]
) -> RewardHead:
    """Build the ``head_type`` head from ``config`` and the checkpoint's ``state_dict``."""
    return head_class(head_type).from_checkpoint(config, state_dict)


def score_full_sequences(
    head: RewardHead, hidden_states: torch.Tensor, input_ids: Sequence[Sequence[int]],
    positions: Sequence[int] | None = None,
) -> torch.Tensor:
    """Scores ``[B]`` from full, unpadded conversations: the slow path prefix caching must match.

    ``hidden_states`` ``[B, T, H]`` are the backbone's final states for ``input_ids`` ``[B, T]``
    (equal lengths, no padding). The head reads the last position (or ``positions``, one per row:
    paper mode's pad pooling), and gating heads the position their original code searches in the
    WHOLE sequence, as the remote code does.
    """
    rows = torch.arange(hidden_states.shape[0], device=hidden_states.device)
    last = (hidden_states[:, -1] if positions is None else
            hidden_states[rows, torch.tensor(list(positions), device=hidden_states.device)])
    if not head.needs_prompt_state:
        return head(last)
    gate_at = torch.tensor([head.prompt_position(list(map(int, ids))) for ids in input_ids],
                           device=hidden_states.device)
    return head(last, hidden_states[rows, gate_at])


__all__ = ["HEAD_TYPES", "RewardHead", "build_head", "head_class", "score_full_sequences"]
