"""Small helpers the vendored heads share: reading configs, checking checkpoint keys, gating patterns.

Each head builds its modules under the real checkpoint's attribute names, so ``head.state_dict()``
has exactly the real key names and ``load_state_dict(strict=True)`` is the final key check.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from rmvalues.errors import ModelError
from rmvalues.models.heads.base import RewardHead

# "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n" in the Llama-3 / 3.1 tokenizer: the
# pattern ArmoRM and QRM-Llama search for (modeling_custom.py, `token_pattern`).
LLAMA3_GATING_PATTERN: tuple[int, ...] = (128009, 128006, 78191, 128007, 271)
# "<end_of_turn>\n<start_of_turn>model\n" in the Gemma-2 tokenizer (checked against the real
# SentencePiece model): the same place in a Gemma-2 conversation, the end of the last user turn.
GEMMA2_GATING_PATTERN: tuple[int, ...] = (107, 108, 106, 2516, 108)


def config_value(config: object, name: str, default: Any = None) -> Any:
    """``config.name`` for a transformers config (or a plain mapping), else ``default``."""
    if isinstance(config, Mapping):
        value = config.get(name, default)
    else:
        value = getattr(config, name, default)
    return default if value is None else value


def select(state_dict: Mapping[str, torch.Tensor], prefixes: Sequence[str]) -> dict[str, torch.Tensor]:
    """The tensors under ``prefixes`` (a full checkpoint or just the head's tensors may be passed)."""
    return {k: v for k, v in state_dict.items() if k.startswith(tuple(prefixes))}


def require(
    head: str, tensors: Mapping[str, torch.Tensor], keys: Sequence[str], hint: str = ""
) -> None:
    """Raise a ModelError naming every key in ``keys`` the checkpoint lacks."""
    missing = [k for k in keys if k not in tensors]
    if missing:
        found = ", ".join(sorted(tensors)) or "none"
        raise ModelError(
            f"{head} head: the checkpoint lacks {', '.join(missing)} (head tensors found: {found}). "
            "Pass the checkpoint's own state dict (real key names) and check that the model's "
            f"`head` in the registry is right.{' ' + hint if hint else ''}"
        )


def indices(tensors: Mapping[str, torch.Tensor], prefix: str) -> list[int]:
    """Sorted module indices ``i`` that occur as ``{prefix}{i}.…`` (e.g. ``gating.layers.``)."""
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    return sorted({int(m.group(1)) for k in tensors if (m := pattern.match(k))})


def load_exact(head: torch.nn.Module, tensors: Mapping[str, torch.Tensor], name: str) -> None:
    """Load ``tensors`` into ``head`` (float tensors as float32); the key sets must match exactly."""
    expected = set(head.state_dict())
    if set(tensors) != expected:
        extra = sorted(set(tensors) - expected)
        missing = sorted(expected - set(tensors))
        raise ModelError(
            f"{name} head: checkpoint keys do not match the architecture "
            f"(unexpected: {extra or 'none'}; missing: {missing or 'none'}). "
            "The checkpoint is probably a different head type: check `head` in the model registry."
        )
    own = head.state_dict()
    for key, value in tensors.items():
        if tuple(value.shape) != tuple(own[key].shape):
            raise ModelError(
                f"{name} head: {key} has shape {tuple(value.shape)}, expected "
                f"{tuple(own[key].shape)} from the config. Check that the config belongs to this "
                "checkpoint."
            )
    converted = {
        k: (v.detach().to(torch.float32) if v.is_floating_point() else v.detach())
        for k, v in tensors.items()
    }
    head.load_state_dict(converted, strict=True)
    head.requires_grad_(False)
    head.eval()


def cast_like(tensor: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``tensor`` in the head's compute dtype (its weights' dtype: float32 unless a paper-mode run
    moved the head to the backbone dtype, as the original heads ran)."""
    return tensor if tensor.dtype == like.dtype else tensor.to(like.dtype)


def last_occurrence(ids: Sequence[int], pattern: Sequence[int]) -> int | None:
    """Start index of the last occurrence of ``pattern`` in ``ids`` (the original search), or None."""
    ids, pattern = list(ids), list(pattern)
    for start in range(len(ids) - len(pattern), -1, -1):
        if ids[start : start + len(pattern)] == pattern:
            return start
    return None


def gating_pattern_for(config: object) -> tuple[int, ...]:
    """The gating token pattern: ``config.gating_token_pattern`` if set, else by model family."""
    explicit = config_value(config, "gating_token_pattern")
    if explicit is not None:
        return tuple(int(i) for i in explicit)
    model_type = str(config_value(config, "model_type", "")).lower()
    return GEMMA2_GATING_PATTERN if model_type.startswith("gemma") else LLAMA3_GATING_PATTERN


def find_gating_position(head: str, ids: Sequence[int], pattern: Sequence[int]) -> int:
    position = last_occurrence(ids, pattern)
    if position is None:
        raise ModelError(
            f"{head} head: the gating token pattern {list(pattern)} (the end of the user turn "
            "followed by the assistant header) is not in the prompt prefix of "
            f"{len(ids)} ids. Format the prompt with the model's own chat template (a "
            "user turn and the assistant header), or set `gating_token_pattern` in the config."
        )
    return position


class PromptGatedHead(RewardHead):
    """What ArmoRM and QRM share: per-objective rewards from ``regression_layer``, weighted by a
    gating MLP (``gating``) of the prompt state read at the last gating ``pattern``.

    Subclasses set ``display_name``, build ``pattern``, ``regression_layer`` and ``gating``, and
    implement :meth:`objective_rewards`.
    """

    needs_prompt_state: ClassVar[bool] = True
    state_dict_prefixes: ClassVar[tuple[str, ...]] = (
        "regression_layer.",
        "reward_transform_matrix",
        "gating.",
    )
    #: The head's name in error messages.
    display_name: ClassVar[str]
    pattern: tuple[int, ...]
    regression_layer: nn.Linear
    gating: nn.Module

    def prompt_position(self, prefix_ids: Sequence[int]) -> int:
        return find_gating_position(self.display_name, prefix_ids, self.pattern)

    def gate(self, prompt_hidden: torch.Tensor) -> torch.Tensor:
        """Objective weights ``[B, O]`` from the prompt state (compute once per prompt)."""
        return self.gating(cast_like(prompt_hidden, self.regression_layer.weight))

    def objective_rewards(self, last_hidden: torch.Tensor) -> torch.Tensor:
        """Per-objective rewards ``[B, O]`` that the gate weights."""
        raise NotImplementedError

    def forward(
        self, last_hidden: torch.Tensor, prompt_hidden: torch.Tensor | None = None
    ) -> torch.Tensor:
        if prompt_hidden is None:
            raise ModelError(
                f"{self.display_name} head needs the prompt state (hidden state at prompt_position)"
            )
        rewards = self.objective_rewards(last_hidden)
        # a single prompt state [1, H] broadcasts over a batch of candidates of the same prompt
        return (self.gate(prompt_hidden) * rewards).sum(dim=-1)
