"""ArmoRM (RLHFlow/ArmoRM-Llama3-8B-v0.1): per-objective regression, prompt-conditioned gating.

Source: the model repo's ``modeling_custom.py`` (``LlamaForRewardModelWithGating``, revision
39aadadd6d1b66ab358f0b4ce8899624c35c7434) and its ``config.json`` (19 objectives, gating
temperature 10, 3 hidden gating layers of 1024). The published score is

    rewards = regression_layer(h_last)                       # [B, O], no bias
    gate    = softmax(MLP(h_gate) / T) * logit_scale         # [B, O], ReLU between Linear layers
    score   = sum(gate * (rewards @ reward_transform_matrix))

where ``h_last`` is the final hidden state at the last token and ``h_gate`` the one at the start of
the LAST ``<|eot_id|><|start_header_id|>assistant<|end_header_id|>\\n\\n`` in the sequence, i.e. the
end of the user turn. Under causal attention ``h_gate`` depends only on the prompt, so the engine
computes it once per prompt. The original searches the whole sequence; a response that itself
contains the pattern would move the gate into the response. ``prompt_position`` accepts any id
list, so callers can check ``prompt_position(full_ids) == prompt_position(prefix_ids)`` and fall
back to a full forward when it does not hold (it always holds for a single-token response).

The original computes in the backbone dtype (bf16 in practice); we compute in float32, except in
paper mode, which moves the head to the backbone dtype as the original ran.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import pairwise
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from rmvalues.errors import ModelError
from rmvalues.models.heads._common import (
    PromptGatedHead,
    cast_like,
    config_value,
    gating_pattern_for,
    indices,
    load_exact,
    require,
    select,
)


class ArmoGating(nn.Module):
    """The ArmoRM gating MLP: Linear layers with ReLU between, softmax over objectives / T, scaled.

    Module names follow the checkpoint: ``layers.{i}`` (all with bias) and ``logit_scale``.
    """

    def __init__(self, sizes: Sequence[int], temperature: float):
        super().__init__()
        self.temperature = float(temperature)
        self.logit_scale = nn.Parameter(torch.ones(1))
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in pairwise(sizes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < last:
                x = F.relu(x)
        return F.softmax(x / self.temperature, dim=-1) * self.logit_scale[0]


class ArmoRMHead(PromptGatedHead):
    """ArmoRM's gated multi-objective head (real keys: ``regression_layer.weight``,
    ``reward_transform_matrix``, ``gating.logit_scale``, ``gating.layers.{i}.weight|bias``)."""

    head_type: ClassVar[str] = "armorm"
    display_name: ClassVar[str] = "ArmoRM"
    score_definition: ClassVar[str] = "sum(gate * transformed objective rewards)"

    def __init__(self, hidden_size: int, gating_sizes: Sequence[int], temperature: float,
                 pattern: Sequence[int]):
        super().__init__()
        objectives = gating_sizes[-1]
        self.pattern = tuple(pattern)
        self.regression_layer = nn.Linear(hidden_size, objectives, bias=False)
        self.reward_transform_matrix = nn.Parameter(torch.eye(objectives), requires_grad=False)
        self.gating = ArmoGating([hidden_size, *gating_sizes], temperature)

    def objective_rewards(self, last_hidden: torch.Tensor) -> torch.Tensor:
        """Per-objective rewards ``[B, O]``, transformed by ``reward_transform_matrix``."""
        rewards = self.regression_layer(cast_like(last_hidden, self.regression_layer.weight))
        return rewards @ self.reward_transform_matrix

    @classmethod
    def from_checkpoint(cls, config: object, state_dict: Mapping[str, torch.Tensor]) -> ArmoRMHead:
        tensors = select(state_dict, cls.state_dict_prefixes)
        require("ArmoRM", tensors, ["regression_layer.weight", "reward_transform_matrix",
                                    "gating.logit_scale"])
        layer_ids = indices(tensors, "gating.layers.")
        if not layer_ids or layer_ids != list(range(len(layer_ids))):
            raise ModelError(
                f"ArmoRM head: gating layers {layer_ids} are not numbered 0..n in the checkpoint"
            )
        require("ArmoRM", tensors, [f"gating.layers.{i}.weight" for i in layer_ids])
        gating_sizes = [int(tensors[f"gating.layers.{i}.weight"].shape[0]) for i in layer_ids]
        hidden = int(config_value(config, "hidden_size", tensors["regression_layer.weight"].shape[1]))
        head = cls(hidden, gating_sizes, config_value(config, "gating_temperature", 10),
                   gating_pattern_for(config))
        load_exact(head, tensors, "ArmoRM")
        return head

    @classmethod
    def random_state_dict(cls, config: object, seed: int = 0) -> dict[str, torch.Tensor]:
        """A random state dict with the real checkpoint's keys and the shapes ``config`` implies.

        Reads ``hidden_size``, ``num_objectives`` (19), ``gating_hidden_dim`` (1024) and
        ``gating_n_hidden`` (3), as the original constructor does. Values are scaled so the gate
        varies with the prompt and the transform matrix is not the identity.
        """
        g = torch.Generator().manual_seed(seed)
        hidden = int(config_value(config, "hidden_size"))
        objectives = int(config_value(config, "num_objectives", 19))
        width = int(config_value(config, "gating_hidden_dim", 1024))
        n_hidden = int(config_value(config, "gating_n_hidden", 3))
        sizes = [hidden] + [width] * n_hidden + [objectives]
        out: dict[str, torch.Tensor] = {
            "regression_layer.weight": torch.randn(objectives, hidden, generator=g) / hidden**0.5,
            "reward_transform_matrix": torch.eye(objectives)
            + 0.1 * torch.randn(objectives, objectives, generator=g),
            "gating.logit_scale": torch.tensor([1.3]),
        }
        for i, (a, b) in enumerate(pairwise(sizes)):
            out[f"gating.layers.{i}.weight"] = torch.randn(b, a, generator=g) * (2.0 / a) ** 0.5
            out[f"gating.layers.{i}.bias"] = 0.1 * torch.randn(b, generator=g)
        return out
