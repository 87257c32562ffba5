"""URM (LxzGordon/URM-LLaMa-3.1-8B): uncertainty-aware attribute head with a learned gate.

What the paper used is the model card's ``model(ids).logits[0][0]``, i.e. ``logits[:, 0]`` of the
model output. The head (a ``LlamaForSequenceClassification`` with ``num_labels = 10`` plus a gating
network called ``weights``) is

    out   = score(h_last)                           # [B, 10] = five (mean, uncertainty) pairs
    gate  = weights.fc(h_last)                      # Linear-SELU-Linear-SELU-Linear -> [B, 5]
    logit = sum(out[:, 0::2] * gate)                # logits[:, 0]: the gated sum of the 5 means

for the five HelpSteer2 attributes (helpfulness, correctness, coherence, complexity, verbosity).

Not verified against the checkpoint's own ``modeling_custom.py``, which could not be read here.
What this rests on: the model card (usage ``logits[0][0]``, two-stage training: attribute
regression with a Gaussian value head, then a gating layer on frozen features, "inspired by
ArmoRM"); and two public third-party adapters of this checkpoint, one reading the ten
``score`` outputs as five ``(mean, uncertainty)`` pairs and reproducing the model card's two
published scores as ``means @ gate`` (so ``logits[:, 0]`` is the gated sum, with no softmax on
the gate), the other restating the gating network "matching original URM gating layers" as
``weights.fc = Sequential(Linear(H, H), SELU, Linear(H, H), SELU, Linear(H, 5))`` applied to the
last-token state. The layer sizes and biases are read from the checkpoint's keys, so only the
activation (SELU), the mean/uncertainty interleaving and the absence of a gate softmax are assumed.
URM's gate reads the last token, not the prompt, so no prompt state is needed.

The paper's released URM scores are NOT this: its scorer loaded the checkpoint without
``trust_remote_code``, so transformers built a plain ``LlamaForSequenceClassification`` from the
config (10 labels) and dropped the gate; ``logits[:, 0]`` was then the first attribute's mean alone.
``--paper-compatible`` computes that (``first_logit_only``); the default keeps the gated score.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import torch
from torch import nn

from rmvalues.errors import ModelError
from rmvalues.models.heads._common import (
    cast_like,
    config_value,
    indices,
    load_exact,
    require,
    select,
)
from rmvalues.models.heads.base import RewardHead

NUM_ATTRIBUTES = 5  # HelpSteer2: helpfulness, correctness, coherence, complexity, verbosity


class URMGate(nn.Module):
    """The gating network ``weights``: ``fc`` = Linear layers with SELU between (real indices)."""

    def __init__(self, shapes: list[tuple[int, int]], biases: list[bool]):
        super().__init__()
        layers: list[nn.Module] = []
        for n, ((out_f, in_f), bias) in enumerate(zip(shapes, biases)):
            if n:
                layers.append(nn.SELU())
            layers.append(nn.Linear(in_f, out_f, bias=bias))
        self.fc = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


class URMHead(RewardHead):
    """URM's gated attribute head (real keys: ``score.weight``, ``weights.fc.{0,2,4}.weight|bias``)."""

    head_type: ClassVar[str] = "urm"
    state_dict_prefixes: ClassVar[tuple[str, ...]] = ("score.", "weights.")

    def __init__(self, hidden_size: int, num_labels: int, gate: URMGate, score_bias: bool):
        super().__init__()
        self.score = nn.Linear(hidden_size, num_labels, bias=score_bias)
        self.weights = gate

    #: The paper's scorer loaded URM without trust_remote_code: transformers then built its own
    #: LlamaForSequenceClassification (10 labels, no bias, gate weights dropped as unexpected keys),
    #: and the paper's score is its logits[:, 0] - the first attribute's mean alone.
    first_logit_only: bool = False

    @property
    def score_definition(self) -> str:  # type: ignore[override]
        return self.definition(first_logit_only=self.first_logit_only)

    @classmethod
    def definition(cls, *, first_logit_only: bool = False) -> str:
        if first_logit_only:
            return "logits[:, 0]: first attribute mean, no gate (paper's scorer, no remote code)"
        return "sum(attribute means * gate): the model card's gated logits[:, 0]"

    def attribute_means(self, last_hidden: torch.Tensor) -> torch.Tensor:
        """The five attribute means ``[B, 5]`` (even outputs of ``score``; odd ones are the
        uncertainty parameters)."""
        return self.score(cast_like(last_hidden, self.score.weight))[:, 0::2]

    def forward(
        self, last_hidden: torch.Tensor, prompt_hidden: torch.Tensor | None = None
    ) -> torch.Tensor:
        h = cast_like(last_hidden, self.score.weight)
        if self.first_logit_only:  # transformers' score layer has no bias: the checkpoint's is dropped too
            return torch.nn.functional.linear(h, self.score.weight[:1]).squeeze(-1)
        return (self.attribute_means(h) * self.weights(h)).sum(dim=-1)

    @classmethod
    def from_checkpoint(cls, config: object, state_dict: Mapping[str, torch.Tensor]) -> URMHead:
        tensors = select(state_dict, cls.state_dict_prefixes)
        require("URM", tensors, ["score.weight"])
        fc_ids = indices(tensors, "weights.fc.")
        if not fc_ids or fc_ids != list(range(0, 2 * len(fc_ids), 2)):
            raise ModelError(
                f"URM head: expected gating layers weights.fc.0, .2, .4, ... in the checkpoint, "
                f"found indices {fc_ids or 'none'}; is this really a URM checkpoint?"
            )
        require("URM", tensors, [f"weights.fc.{i}.weight" for i in fc_ids])
        shapes = [tuple(tensors[f"weights.fc.{i}.weight"].shape) for i in fc_ids]
        biases = [f"weights.fc.{i}.bias" in tensors for i in fc_ids]
        num_labels, hidden = tensors["score.weight"].shape
        if num_labels != 2 * shapes[-1][0]:
            raise ModelError(
                f"URM head: score has {num_labels} outputs but the gate weighs {shapes[-1][0]} "
                "attributes; URM needs one (mean, uncertainty) pair per gated attribute"
            )
        head = cls(int(config_value(config, "hidden_size", hidden)), int(num_labels),
                   URMGate(shapes, biases), "score.bias" in tensors)
        load_exact(head, tensors, "URM")
        return head

    @classmethod
    def random_state_dict(cls, config: object, seed: int = 0) -> dict[str, torch.Tensor]:
        """A random state dict with the real keys: ``score.weight [10, H]`` (no bias) and
        ``weights.fc.{0,2,4}`` of sizes H -> G -> G -> 5, G = ``config.urm_gate_hidden`` (default
        ``hidden_size``, as in the real model)."""
        g = torch.Generator().manual_seed(seed)
        hidden = int(config_value(config, "hidden_size"))
        width = int(config_value(config, "urm_gate_hidden", hidden))
        out = {"score.weight": torch.randn(2 * NUM_ATTRIBUTES, hidden, generator=g) / hidden**0.5}
        for n, (a, b) in enumerate([(hidden, width), (width, width), (width, NUM_ATTRIBUTES)]):
            out[f"weights.fc.{2 * n}.weight"] = torch.randn(b, a, generator=g) / a**0.5
            out[f"weights.fc.{2 * n}.bias"] = 0.1 * torch.randn(b, generator=g)
        return out
