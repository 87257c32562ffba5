"""Score heads: one small class per head type, vendored so no ``trust_remote_code`` is needed.

``HEAD_TYPES`` maps the registry's ``head`` names to their classes; a class's ``from_checkpoint``
makes a head from a model config and a checkpoint state dict (real key names; the full checkpoint
may be passed, each head picks its own tensors by ``state_dict_prefixes``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from rmvalues.errors import ModelError
from rmvalues.models.heads.armorm import ArmoRMHead
from rmvalues.models.heads.base import RewardHead
from rmvalues.models.heads.grm import GRMValueHead
from rmvalues.models.heads.qrm import QRMHead
from rmvalues.models.heads.sequence_classification import SequenceClassificationHead
from rmvalues.models.heads.urm import URMHead
from rmvalues.registry import Registry

HEAD_TYPES: Registry[type[RewardHead]] = Registry(
    "head type", error=ModelError,
    hint="Set `head` in the model registry to one of these (a new architecture needs a new head "
         "class in rmvalues/models/heads/).")
for _cls in (SequenceClassificationHead, URMHead, GRMValueHead, ArmoRMHead, QRMHead):
    HEAD_TYPES.register(_cls.head_type, _cls)


def head_class(head_type: str) -> type[RewardHead]:
    """The head class registered under ``head_type``."""
    return HEAD_TYPES.get(head_type)


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


__all__ = ["HEAD_TYPES", "RewardHead", "head_class", "score_full_sequences"]
