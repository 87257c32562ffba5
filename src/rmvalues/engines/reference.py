"""The obviously-correct reference path: one unpadded full forward per conversation.

No cache, no batching, no padding: each conversation's ids go through the backbone alone and the
head reads the last position (gating heads: their prompt position, found as their original code
finds it). Tests and ``--verify`` hold the fast path equal to this.

Its input is built independently of the fast path too (:func:`reference_conversations`): by
transformers' own ``apply_chat_template(tokenize=True)`` on the whole conversation, never from the
fast path's prefix/suffix split, so a wrong split cannot hide in both paths at once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from rmvalues.errors import TemplateError

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedTokenizerBase

    from rmvalues.engines.candidates import CandidateSet
    from rmvalues.models.chat import ChatSplit
    from rmvalues.models.loading import RewardModel

# A plain word that every bundled tokenizer keeps as its own tokens after an assistant header.
_PLACEHOLDER = "Placeholder"


def reference_score(rm: RewardModel, conversations: Sequence[Sequence[int]],
                    pool: Callable[[Sequence[int]], int] | None = None) -> np.ndarray:
    """float32 score of each full conversation (prefix + response + suffix ids); ``pool`` picks
    the position the head reads (default: the last)."""
    import torch

    from rmvalues.models.heads import score_full_sequences

    scores = np.empty(len(conversations), dtype=np.float32)
    for i, conversation in enumerate(conversations):
        ids = torch.tensor([list(conversation)], device=rm.device)
        with torch.inference_mode():
            hidden = rm.backbone(input_ids=ids, use_cache=False).last_hidden_state
            positions = None if pool is None else [pool(list(conversation))]
            scores[i] = score_full_sequences(rm.head, hidden.float(), [conversation],
                                             positions).item()
    return scores


def reference_chat_ids(tokenizer: PreTrainedTokenizerBase, split: ChatSplit,
                       response: str) -> list[int]:
    """``apply_chat_template([user: prompt, assistant: response], tokenize=True)``.

    Only the split's inputs are used (prompt, template, date string), never its ids. transformers
    tokenises the rendered text without adding special tokens (the template writes its own BOS).
    """
    messages = [{"role": "user", "content": split.prompt},
                {"role": "assistant", "content": response}]
    return list(tokenizer.apply_chat_template(
        messages, chat_template=split.template, date_string=split.date_string, tokenize=True,
        return_dict=False))


def reference_conversations(tokenizer: PreTrainedTokenizerBase, split: ChatSplit,
                            candidates: CandidateSet) -> list[list[int]]:
    """Every candidate's conversation ids, built by ``apply_chat_template(tokenize=True)``.

    Text candidates: the whole conversation with the text as the response. Token candidates are
    ids, not strings (a decoded byte-level token, a whitespace token or a trimmed one does not
    re-tokenise to itself), so the conversation is rendered once with a placeholder response, and
    the placeholder's ids in the whole-conversation ids are replaced by the one candidate id.
    """
    if candidates.kind == "text":
        return [reference_chat_ids(tokenizer, split, text) for text in candidates.texts]
    whole = reference_chat_ids(tokenizer, split, _PLACEHOLDER)
    marker = list(tokenizer(_PLACEHOLDER, add_special_tokens=False)["input_ids"])
    starts = [i for i in range(len(whole) - len(marker) + 1) if whole[i:i + len(marker)] == marker]
    if len(starts) != 1:
        raise TemplateError(
            f"the reference path cannot find the response in the conversation ids ({len(starts)} "
            f"copies of {_PLACEHOLDER!r}); pass --chat-template with a template that places the "
            "assistant response verbatim once."
        )
    head, tail = whole[:starts[0]], whole[starts[0] + len(marker):]
    return [[*head, int(t), *tail] for t in candidates.token_ids]
