"""GRM value head (Ray2333/GRM-*-sftreg): an MLP ``v_head`` on the last token's hidden state.

Sources: reward-bench ``rewardbench/models/grm.py`` (``ValueHead``, ``GRewardModel``) and the
checkpoints' ``config.json`` (e.g. Ray2333/GRM-llama3-8B-sftreg: ``vhead_layer_type = "mlp"``,
``vhead_num_layers = 1``, ``vhead_num_neurons = 1024``). The head is

    mlp:    v_head.summary = Sequential(Linear(H, N), ReLU, [Linear(N, N), ReLU]*, Linear(N, 1))
    linear: v_head.summary = Linear(H, 1)

applied to the final hidden state at the last token (dropout is inactive at inference). The
checkpoint keys are ``v_head.summary.{0,2,...}.weight|bias`` (mlp) or ``v_head.summary.weight|bias``
(linear); the layout is read from the keys. Not to be confused with the paper's
GRM-*-rewardmodel-ft models, which are plain sequence classifiers.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import pairwise
from typing import ClassVar

import torch
from torch import nn

from rmvalues.errors import ModelError
from rmvalues.models.heads._common import cast_like, config_value, indices, load_exact, select
from rmvalues.models.heads.base import RewardHead


class ValueHead(nn.Module):
    """``v_head``: ``summary`` is a Linear or a ReLU MLP with the checkpoint's module indices."""

    def __init__(self, shapes: list[tuple[int, int]], mlp: bool):
        super().__init__()
        if not mlp:
            (out_f, in_f), = shapes
            self.summary: nn.Module = nn.Linear(in_f, out_f)
            return
        layers: list[nn.Module] = []
        for n, (out_f, in_f) in enumerate(shapes):
            if n:
                layers.append(nn.ReLU())
            layers.append(nn.Linear(in_f, out_f))
        self.summary = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.summary(x)


class GRMValueHead(RewardHead):
    """GRM's value head (real keys: ``v_head.summary.{0,2}.weight|bias`` for the 1-layer MLP)."""

    head_type: ClassVar[str] = "grm_value_head"
    score_definition: ClassVar[str] = "v_head(h)"
    state_dict_prefixes: ClassVar[tuple[str, ...]] = ("v_head.",)

    def __init__(self, v_head: ValueHead):
        super().__init__()
        self.v_head = v_head

    def forward(
        self, last_hidden: torch.Tensor, prompt_hidden: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.v_head(cast_like(last_hidden, next(self.v_head.parameters()))).squeeze(-1)

    @classmethod
    def from_checkpoint(cls, config: object, state_dict: Mapping[str, torch.Tensor]) -> GRMValueHead:
        tensors = select(state_dict, cls.state_dict_prefixes)
        if "v_head.summary.weight" in tensors:
            v_head = ValueHead([tuple(tensors["v_head.summary.weight"].shape)], mlp=False)
        else:
            ids = indices(tensors, "v_head.summary.")
            if not ids or ids != list(range(0, 2 * len(ids), 2)):
                raise ModelError(
                    "GRM value head: expected v_head.summary.weight (linear) or "
                    "v_head.summary.0/.2/... (mlp) in the checkpoint, found "
                    f"{sorted(tensors) or 'no v_head tensors'}. Check `head` in the model registry "
                    "(the GRM-*-rewardmodel-ft models are sequence classifiers)."
                )
            shapes = [tuple(tensors[f"v_head.summary.{i}.weight"].shape) for i in ids]
            v_head = ValueHead(shapes, mlp=True)
        hidden = v_head.summary.weight.shape[1] if isinstance(v_head.summary, nn.Linear) else \
            v_head.summary[0].weight.shape[1]
        declared = config_value(config, "hidden_size", hidden)
        if int(declared) != hidden:
            raise ModelError(
                f"GRM value head: v_head reads {hidden} features but config.hidden_size is "
                f"{declared}; the config does not belong to this checkpoint"
            )
        head = cls(v_head)
        load_exact(head, tensors, "GRM value")
        return head

    @classmethod
    def random_state_dict(cls, config: object, seed: int = 0) -> dict[str, torch.Tensor]:
        """A random state dict with the real keys, from ``hidden_size``, ``vhead_layer_type``
        ("mlp"), ``vhead_num_layers`` (1) and ``vhead_num_neurons`` (1024)."""
        g = torch.Generator().manual_seed(seed)
        hidden = int(config_value(config, "hidden_size"))
        if config_value(config, "vhead_layer_type", "mlp") == "linear":
            return {"v_head.summary.weight": torch.randn(1, hidden, generator=g) / hidden**0.5,
                    "v_head.summary.bias": 0.1 * torch.randn(1, generator=g)}
        width = int(config_value(config, "vhead_num_neurons", 1024))
        n_layers = int(config_value(config, "vhead_num_layers", 1))
        sizes = [hidden] + [width] * n_layers + [1]
        out: dict[str, torch.Tensor] = {}
        for n, (a, b) in enumerate(pairwise(sizes)):
            out[f"v_head.summary.{2 * n}.weight"] = torch.randn(b, a, generator=g) / a**0.5
            out[f"v_head.summary.{2 * n}.bias"] = 0.1 * torch.randn(b, generator=g)
        return out
