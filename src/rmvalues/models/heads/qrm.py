"""QRM (nicolinho/QRM-Llama3.1-8B, nicolinho/QRM-Gemma-2-27B): quantile heads with ArmoRM-style gating.

Sources: reward-bench ``rewardbench/models/qrm.py`` (``LlamaForRewardModelWithGating31``, marked there
as the code of ``nicolinho/QRM-Llama3.1-8B``), the model's ``config.json`` (19 objectives,
19 quantiles, gating temperature 5.0, 3 hidden gating layers of 1024) and the model card. The
published ``score`` (the model's ``.score``/``.logits`` output) is

    q       = regression_layer(h_last).reshape(B, O, Q)            # quantiles per objective, no bias
    gate    = softmax(MLP(h_gate) / T) * logit_scale               # [B, O]
    score   = sum(gate * (q.mean(-1) @ reward_transform_matrix))   # expected value, gated

with the gating MLP ``n_hidden x [Linear(no bias), ReLU, BatchNorm1d]`` then ``Linear(bias)``
(BatchNorm with running statistics, as in eval mode) and ``h_gate`` read at the start of the LAST
gating token pattern (the end of the user turn), exactly as ArmoRM.

QRM-Gemma-2-27B: its ``modeling_custom.py`` could not be read here. What this adapter assumes for
it comes from a public third-party re-implementation that lists the checkpoint's head keys
(``gating.layers.{0,4,8}`` Linear, ``{2,6,10}`` BatchNorm, ``11`` final Linear, no
``reward_transform_matrix``; 5 objectives x 19 quantiles): a Dropout after each hidden block but
the last, no transform matrix (identity), and the Gemma-2 pattern
``<end_of_turn>\\n<start_of_turn>model\\n``. The architecture is therefore read from the
checkpoint's keys (Linear where a 2-D ``weight`` is, BatchNorm where ``running_mean`` is, ReLU
right after a hidden Linear, identity (eval-mode Dropout) elsewhere) rather than hard-coded. Every
other head parameter must be stated, never defaulted (the ports disagree: one defaults the gating
temperature to 1, another to 10): ``gating_temperature`` and ``num_quantiles`` from the config, the
gating token pattern from ``gating_token_pattern`` (the Llama-3 one, from the verified Llama code,
only for a Llama backbone), and a checkpoint without ``reward_transform_matrix`` needs
``identity_reward_transform = true``. The registry's ``head_config`` can state them; until this
head is checked against the real QRM-Gemma-2-27B weights the registry marks it unverified.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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


def _layer_kinds(tensors: Mapping[str, torch.Tensor]) -> list[str]:
    """Kind of each ``gating.layers.{i}``: "linear", "batchnorm", "relu" or "identity"."""
    ids = indices(tensors, "gating.layers.")
    if not ids:
        raise ModelError("QRM head: the checkpoint has no gating.layers.* tensors")
    kinds: list[str] = []
    for i in range(ids[-1] + 1):
        key = f"gating.layers.{i}."
        if key + "running_mean" in tensors:
            kinds.append("batchnorm")
        elif key + "weight" in tensors:
            kinds.append("linear")
        else:  # parameter-free: ReLU right after a hidden Linear, else (eval-mode) Dropout
            kinds.append("relu" if kinds and kinds[-1] == "linear" else "identity")
    if kinds[-1] != "linear":
        raise ModelError(f"QRM head: the last gating layer is a {kinds[-1]}, expected a Linear")
    return kinds


def _stated(config: object, name: str) -> float:
    """A head parameter the config must state: the QRM ports disagree on every default."""
    value = config_value(config, name)
    if value is None:
        raise ModelError(
            f"QRM head: the config states no {name}; refusing to guess it (the public ports of "
            "this head disagree on the default). Add it to the model's config.json, or to "
            "`head_config` of the model in rmvalues/models/registry.toml.")
    return value


class QuantileGating(nn.Module):
    """QRM's gating MLP, with the checkpoint's module indices (``layers.{i}``, ``logit_scale``)."""

    def __init__(self, kinds: Sequence[str], shapes: Mapping[int, tuple[int, ...]],
                 biases: set[int], temperature: float):
        super().__init__()
        self.temperature = float(temperature)
        self.logit_scale = nn.Parameter(torch.ones(1))
        layers: list[nn.Module] = []
        for i, kind in enumerate(kinds):
            if kind == "linear":
                out_f, in_f = shapes[i]
                layers.append(nn.Linear(in_f, out_f, bias=i in biases))
            elif kind == "batchnorm":
                layers.append(nn.BatchNorm1d(shapes[i][0]))
            else:
                layers.append(nn.ReLU() if kind == "relu" else nn.Identity())
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            if isinstance(layer, nn.BatchNorm1d):  # always the running statistics (eval mode)
                x = F.batch_norm(x, layer.running_mean, layer.running_var, layer.weight,
                                 layer.bias, training=False, eps=layer.eps)
            else:
                x = layer(x)
        return F.softmax(x / self.temperature, dim=-1) * self.logit_scale[0]


class QRMHead(PromptGatedHead):
    """QRM's gated quantile head (real keys: ``regression_layer.weight``, ``gating.logit_scale``,
    ``gating.layers.{i}.*`` incl. BatchNorm statistics, and ``reward_transform_matrix`` where the
    checkpoint has one)."""

    head_type: ClassVar[str] = "qrm"
    display_name: ClassVar[str] = "QRM"
    score_definition: ClassVar[str] = "sum(gate * mean over quantiles of each objective)"

    def __init__(self, hidden_size: int, num_quantiles: int, gating: QuantileGating,
                 transform: bool, pattern: Sequence[int]):
        super().__init__()
        objectives = gating.layers[-1].out_features
        self.num_objectives, self.num_quantiles = objectives, num_quantiles
        self.pattern = tuple(pattern)
        self.regression_layer = nn.Linear(hidden_size, objectives * num_quantiles, bias=False)
        if transform:
            self.reward_transform_matrix = nn.Parameter(torch.eye(objectives), requires_grad=False)
        else:
            self.register_parameter("reward_transform_matrix", None)
        self.gating = gating

    def objective_rewards(self, last_hidden: torch.Tensor) -> torch.Tensor:
        """Per-objective expected reward ``[B, O]``: the mean over quantiles, transformed."""
        quantiles = self.regression_layer(cast_like(last_hidden, self.regression_layer.weight))
        expected = quantiles.reshape(-1, self.num_objectives, self.num_quantiles).mean(dim=-1)
        if self.reward_transform_matrix is not None:
            expected = expected @ self.reward_transform_matrix
        return expected

    @classmethod
    def from_checkpoint(cls, config: object, state_dict: Mapping[str, torch.Tensor]) -> QRMHead:
        tensors = select(state_dict, cls.state_dict_prefixes)
        require("QRM", tensors, ["regression_layer.weight", "gating.logit_scale"])
        kinds = _layer_kinds(tensors)
        shapes = {i: tuple(tensors[f"gating.layers.{i}.weight"].shape)
                  for i, kind in enumerate(kinds) if kind in ("linear", "batchnorm")}
        biases = {i for i, kind in enumerate(kinds)
                  if kind == "linear" and f"gating.layers.{i}.bias" in tensors}
        gating = QuantileGating(kinds, shapes, biases, _stated(config, "gating_temperature"))
        rows, hidden = tensors["regression_layer.weight"].shape
        objectives = gating.layers[-1].out_features
        if rows % objectives:
            raise ModelError(
                f"QRM head: regression_layer has {rows} outputs, not a multiple of the gating's "
                f"{objectives} objectives; the checkpoint does not fit this architecture"
            )
        quantiles = rows // objectives
        declared = _stated(config, "num_quantiles")
        if int(declared) != quantiles:
            raise ModelError(
                f"QRM head: config.num_quantiles={declared} but the checkpoint holds {quantiles} "
                f"quantiles per objective ({rows} / {objectives}); the config and weights differ"
            )
        transform = "reward_transform_matrix" in tensors
        if not transform and not config_value(config, "identity_reward_transform", False):
            raise ModelError(
                "QRM head: the checkpoint has no reward_transform_matrix and the config does not "
                "say the transform is the identity; state `identity_reward_transform = true` (in "
                "config.json or the registry's head_config) once checked against the original code")
        if config_value(config, "gating_token_pattern") is None and not str(
                config_value(config, "model_type", "")).startswith("llama"):
            raise ModelError(
                "QRM head: the config states no gating_token_pattern (the token ids whose last "
                "occurrence the gate reads) and only the Llama-3 one is known from the original "
                "code; state it in config.json or the registry's head_config")
        head = cls(int(config_value(config, "hidden_size", hidden)), quantiles, gating,
                   transform, gating_pattern_for(config))
        load_exact(head, tensors, "QRM")
        return head

    @classmethod
    def random_state_dict(
        cls, config: object, seed: int = 0, *, gemma_layout: bool | None = None
    ) -> dict[str, torch.Tensor]:
        """A random state dict with the real checkpoint's keys and the shapes ``config`` implies.

        Reads ``hidden_size``, ``num_objectives`` (19), ``num_quantiles`` (19),
        ``gating_hidden_dim`` (1024), ``gating_n_hidden`` (3). The Llama layout (QRM-Llama3.1-8B)
        is ``[Linear, ReLU, BatchNorm] x n`` + Linear with a ``reward_transform_matrix``; the
        Gemma layout (QRM-Gemma-2-27B; default when ``model_type`` is gemma*) adds a Dropout slot
        between hidden blocks and has no transform matrix.
        """
        if gemma_layout is None:
            gemma_layout = str(config_value(config, "model_type", "")).startswith("gemma")
        g = torch.Generator().manual_seed(seed)
        hidden = int(config_value(config, "hidden_size"))
        objectives = int(config_value(config, "num_objectives", 19))
        quantiles = int(config_value(config, "num_quantiles", 19))
        width = int(config_value(config, "gating_hidden_dim", 1024))
        n_hidden = int(config_value(config, "gating_n_hidden", 3))
        out: dict[str, torch.Tensor] = {
            "regression_layer.weight":
                torch.randn(objectives * quantiles, hidden, generator=g) / hidden**0.5,
            "gating.logit_scale": torch.tensor([1.3]),
        }
        if not gemma_layout:
            out["reward_transform_matrix"] = (
                torch.eye(objectives) + 0.1 * torch.randn(objectives, objectives, generator=g)
            )
        i, fan_in = 0, hidden
        for block in range(n_hidden):
            out[f"gating.layers.{i}.weight"] = torch.randn(width, fan_in, generator=g) * (
                2.0 / fan_in) ** 0.5
            bn = f"gating.layers.{i + 2}."
            out[bn + "weight"] = 1 + 0.1 * torch.randn(width, generator=g)
            out[bn + "bias"] = 0.1 * torch.randn(width, generator=g)
            out[bn + "running_mean"] = 0.5 * torch.rand(width, generator=g)
            out[bn + "running_var"] = 0.5 + torch.rand(width, generator=g)
            out[bn + "num_batches_tracked"] = torch.tensor(1000)
            i += 4 if gemma_layout and block < n_hidden - 1 else 3
            fan_in = width
        out[f"gating.layers.{i}.weight"] = torch.randn(objectives, fan_in, generator=g) * (
            2.0 / fan_in) ** 0.5
        out[f"gating.layers.{i}.bias"] = 0.1 * torch.randn(objectives, generator=g)
        return out
