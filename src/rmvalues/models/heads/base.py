"""The interface every score head implements.

The engine runs the backbone itself (so the prompt prefix can be cached) and hands the head the
final-position hidden state of each candidate conversation. Heads whose output also depends on the
prompt (ArmoRM's and QRM's gating networks) declare ``needs_prompt_state``; the engine then passes
the hidden state at ``prompt_position(prefix_ids)``, computed once per prompt from the cached prefix.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar, Self

import torch
from torch import nn


class RewardHead(nn.Module):
    """Maps final hidden states ``[B, H]`` (and optionally a prompt state ``[B, H]``) to scores ``[B]``.

    Heads compute in float32 whatever the backbone dtype (paper mode moves them to the backbone
    dtype, as the originals ran). ``state_dict_prefixes`` lists the key
    prefixes of this head's weights in the real checkpoint, so loaders can split a checkpoint into
    backbone and head without knowing the head type.
    """

    head_type: ClassVar[str]
    needs_prompt_state: ClassVar[bool] = False
    #: False for a head whose inputs are not fixed by the prefix + final state (the engine then
    #: scores whole conversations instead of reusing the prompt's cached prefix, and says so).
    supports_prefix_cache: ClassVar[bool] = True
    state_dict_prefixes: ClassVar[tuple[str, ...]] = ()
    #: What the score is, in words the manifest records (``score_definition``).
    score_definition: str = "the head's published score"

    @classmethod
    def definition(cls, *, first_logit_only: bool = False) -> str:
        """The ``score_definition`` an instance of this class records, known without its weights
        (``first_logit_only``: paper mode's ``paper_score = "first_logit"``)."""
        return cls.score_definition

    def prompt_position(self, prefix_ids: Sequence[int]) -> int:
        """Index into the prefix of the hidden state that conditions the head (gating heads only)."""
        raise NotImplementedError(f"{type(self).__name__} does not use a prompt state")

    def forward(
        self, last_hidden: torch.Tensor, prompt_hidden: torch.Tensor | None = None
    ) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    @classmethod
    def from_checkpoint(
        cls, config: object, state_dict: Mapping[str, torch.Tensor]
    ) -> RewardHead:  # pragma: no cover - interface
        """Build the head from the model config and the head's tensors (real checkpoint key names)."""
        raise NotImplementedError

    @classmethod
    def random_state_dict(
        cls, config: object, seed: int = 0
    ) -> dict[str, torch.Tensor]:  # pragma: no cover - interface
        """A random state dict with the real checkpoint's keys (heads with a test double only)."""
        raise NotImplementedError(f"{cls.__name__} has no random_state_dict")

    @classmethod
    def random_init(cls, config: object, seed: int = 0) -> Self:
        """A head with random weights, built through the same checkpoint loader as real weights."""
        return cls.from_checkpoint(config, cls.random_state_dict(config, seed))
