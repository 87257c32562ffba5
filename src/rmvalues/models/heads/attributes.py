"""Per-attribute rewards of multi-objective heads, each scored as a model of its own.

ArmoRM's 19 objectives, QRM's objectives (the expectation over quantiles) and URM's five HelpSteer2
attribute means are the heads' intermediate outputs before gating. :class:`AttributeHead` wraps a
loaded head and returns one attribute as the score, so the unchanged engine scores it and the run
is an ordinary results table whose model is ``<model>@<attribute>`` (the head type in the shard key
names the attribute, so runs never resume each other's shards).

What each attribute is (the model's own ``rewards`` output, before the gate and before ArmoRM's
``reward_transform_matrix``, as ``output.rewards`` in ArmoRM's ``modeling_custom.py``):

* ``armorm``: ``regression_layer(h_last)[:, k]``;
* ``qrm``: ``regression_layer(h_last).reshape(B, O, Q).mean(-1)[:, k]`` (untransformed, like ArmoRM);
* ``urm``: ``score(h_last)[:, 2k]`` (the mean of the k-th (mean, uncertainty) pair).

Names: 19 objectives take ArmoRM's (its model card's order; QRM-Llama3.1 was trained on the same
19), 5 take the HelpSteer2 attributes, other counts ``objective_<k>``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

import torch

from rmvalues.errors import InputError
from rmvalues.models.heads._common import cast_like
from rmvalues.models.heads.base import RewardHead
from rmvalues.store.schema import ATTRIBUTE_SEP

if TYPE_CHECKING:  # pragma: no cover
    from rmvalues.models.loading import RewardModel


HELPSTEER2 = ("helpsteer-helpfulness", "helpsteer-correctness", "helpsteer-coherence",
              "helpsteer-complexity", "helpsteer-verbosity")
#: ArmoRM-Llama3-8B-v0.1's objectives, in its regression layer's order (model card).
ARMORM_OBJECTIVES = (
    *HELPSTEER2, "ultrafeedback-overall_score", "ultrafeedback-instruction_following",
    "ultrafeedback-truthfulness", "ultrafeedback-honesty", "ultrafeedback-helpfulness",
    "beavertails-is_safe", "prometheus-score", "argilla-overall_quality", "argilla-judge_lm",
    "code-complexity", "code-style", "code-explanation", "code-instruction-following",
    "code-readability")

MULTI_OBJECTIVE_HEADS = ("armorm", "qrm", "urm")


def attribute_rewards(head: RewardHead, last_hidden: torch.Tensor) -> torch.Tensor:
    """``[B, O]`` per-attribute rewards of a multi-objective head (see the module docstring)."""
    _require_multi(head)
    kind = head.head_type
    layer = head.score if kind == "urm" else head.regression_layer
    h = cast_like(last_hidden, layer.weight)  # the head's compute dtype, as its own forward uses
    if kind == "armorm":
        return head.regression_layer(h)
    if kind == "qrm":
        q = head.regression_layer(h)
        return q.reshape(-1, head.num_objectives, head.num_quantiles).mean(dim=-1)
    return head.score(h)[:, 0::2]  # urm


def _require_multi(head: RewardHead) -> None:
    if head.head_type not in MULTI_OBJECTIVE_HEADS:
        raise InputError(f"the {head.head_type} head has a single reward, no attributes; "
                         f"per-attribute scoring works for {', '.join(MULTI_OBJECTIVE_HEADS)} heads.")


def attribute_names(head: RewardHead) -> list[str]:
    """Names of the head's attributes, in output order."""
    _require_multi(head)
    n = {"armorm": lambda: head.regression_layer.out_features,
         "qrm": lambda: head.num_objectives,
         "urm": lambda: head.score.out_features // 2}[head.head_type]()
    if n == len(ARMORM_OBJECTIVES):
        return list(ARMORM_OBJECTIVES)
    if n == len(HELPSTEER2):
        return list(HELPSTEER2)
    return [f"objective_{k}" for k in range(n)]


class AttributeHead(RewardHead):
    """One attribute of a multi-objective head as the score ``[B]``."""

    head_type: ClassVar[str] = "attribute"
    needs_prompt_state: ClassVar[bool] = False  # attributes are read before the prompt's gate

    def __init__(self, inner: RewardHead, attribute: str) -> None:
        super().__init__()
        names = attribute_names(inner)
        if attribute not in names:
            raise InputError(f"the {inner.head_type} head has no attribute {attribute!r}; it has "
                             f"{', '.join(names)}.")
        self.inner = inner
        self.attribute = attribute
        self.index = names.index(attribute)
        # the shard key hashes the head type: one per attribute
        self.head_type = f"{inner.head_type}{ATTRIBUTE_SEP}{attribute}"  # type: ignore[misc]

    def forward(self, last_hidden: torch.Tensor, prompt_hidden: torch.Tensor | None = None
                ) -> torch.Tensor:
        return attribute_rewards(self.inner, last_hidden)[:, self.index]


def attribute_model(rm: RewardModel, attribute: str) -> RewardModel:
    """``rm`` scoring one attribute: same backbone and tokenizer, named ``<name>@<attribute>``."""
    return dataclasses.replace(rm, head=AttributeHead(rm.head, attribute),
                               name=f"{rm.name}{ATTRIBUTE_SEP}{attribute}")


def resolve_attributes(rm: RewardModel, attributes: str | Sequence[str]) -> list[str]:
    """``"all"``, one name, or names → the attributes to score (checked against the head)."""
    names = attribute_names(rm.head)
    chosen = names if attributes == "all" else [attributes] if isinstance(attributes, str) else list(attributes)
    unknown = [a for a in chosen if a not in names]
    if unknown:
        raise InputError(f"{rm.name}: unknown attribute(s) {unknown}; the head has {', '.join(names)}.")
    return chosen
