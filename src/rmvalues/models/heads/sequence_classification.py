"""The plain sequence-classification head: ``score = hidden @ score.weight.T``.

This is transformers' ``*ForSequenceClassification`` head with one label and no bias, as in
Skywork-Reward-* and GRM-*-rewardmodel-ft (checkpoint key ``score.weight``, shape ``[1, H]``), and the
head of any unknown model the generic loader sees. transformers pools it at the last non-pad token;
the engine instead hands it the final position's hidden state, so the pad/eos token can be a candidate.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import torch
from torch import nn

from rmvalues.errors import ModelError
from rmvalues.models.heads.base import RewardHead


class SequenceClassificationHead(RewardHead):
    """One linear map from the final hidden state to a scalar reward, in float32 (paper mode: in
    the backbone dtype, as transformers ran it)."""

    score_definition: ClassVar[str] = "score.weight @ h (logits[:, 0])"

    head_type: ClassVar[str] = "sequence_classification"
    state_dict_prefixes: ClassVar[tuple[str, ...]] = ("score.",)

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None = None) -> None:
        super().__init__()
        if weight.ndim != 2 or weight.shape[0] != 1:
            raise ModelError(
                f"score.weight has shape {tuple(weight.shape)}; a reward model's sequence-"
                "classification head has one label ([1, hidden]). For a multi-output head register "
                "the model with its head type in rmvalues/models/registry.toml."
            )
        self.weight = nn.Parameter(weight.detach().to(torch.float32).clone(), requires_grad=False)
        self.bias = (None if bias is None else
                     nn.Parameter(bias.detach().to(torch.float32).reshape(1).clone(),
                                  requires_grad=False))

    @property
    def hidden_size(self) -> int:
        return self.weight.shape[1]

    def forward(
        self, last_hidden: torch.Tensor, prompt_hidden: torch.Tensor | None = None
    ) -> torch.Tensor:
        out = last_hidden.to(self.weight.dtype) @ self.weight[0]
        return out if self.bias is None else out + self.bias[0]

    @classmethod
    def from_checkpoint(
        cls, config: object, state_dict: Mapping[str, torch.Tensor]
    ) -> SequenceClassificationHead:
        if "score.weight" not in state_dict:
            raise ModelError(
                "the checkpoint has no 'score.weight': it is not a sequence-classification reward "
                "model. If it is a known RM with another head, set its `head` in the registry."
            )
        weight = state_dict["score.weight"]
        hidden = getattr(config, "hidden_size", None)
        if hidden is not None and weight.shape[-1] != hidden:
            raise ModelError(
                f"score.weight has {weight.shape[-1]} columns but the backbone's hidden size is "
                f"{hidden}; the checkpoint's head does not belong to this backbone."
            )
        return cls(weight, state_dict.get("score.bias"))

    @classmethod
    def seeded(cls, hidden_size: int, seed: int = 0) -> SequenceClassificationHead:
        """A reproducible random head (std 1/sqrt(H)): turns any LM backbone into a test RM."""
        generator = torch.Generator().manual_seed(seed)
        weight = torch.randn(1, hidden_size, generator=generator) / hidden_size**0.5
        return cls(weight)
