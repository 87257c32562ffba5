"""Paper-compatible mode: build conversations exactly as the published scorer did.

The published code decoded each token id to a string, put it through
``apply_chat_template(tokenize=False)`` and tokenised the resulting text with the tokenizer's
default special tokens. Differences from the exact id-level engine, all reproduced here on purpose
so published numbers can be compared:

* a second BOS: the template writes ``<|begin_of_text|>`` / ``<bos>`` and ``tokenizer(text)`` adds
  another (Llama-3, Gemma-2), so every conversation starts with two BOS tokens;
* lossy round trip: byte-level and byte-fallback tokens that are not valid UTF-8 alone decode to
  U+FFFD, and re-tokenise to a different token (often several);
* the Llama-3 / Gemma-2 templates ``trim`` the content, so whitespace-only tokens become an empty
  response and leading-space tokens lose their space (``" good"`` is scored as ``"good"``);
* special-token strings re-tokenise as the special token (``"<|eot_id|>"``), other strings may merge
  differently, so the scored response is not always the token that is reported.

What is not reproduced: transformers' pad-token pooling (the last non-pad position). As everywhere
in rmvalues, the head reads the final position, so the pad/eos token can be scored.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rmvalues.models.chat import ChatSplit, render_conversation

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedTokenizerBase

    from rmvalues.engines.candidates import CandidateSet


def paper_conversation_ids(
    tokenizer: PreTrainedTokenizerBase, split: ChatSplit, response: str
) -> list[int]:
    """Ids of ``[user, assistant: response]`` as the published scorer tokenised them."""
    text = render_conversation(tokenizer, split.prompt, response, template=split.template,
                               date_string=split.date_string, system=split.system,
                               system_mode=split.system_mode)
    return list(tokenizer(text)["input_ids"])


def paper_conversations(
    tokenizer: PreTrainedTokenizerBase, split: ChatSplit, candidates: CandidateSet
) -> list[list[int]]:
    """Published-scorer ids for every candidate (token candidates through their decoded string)."""
    return [paper_conversation_ids(tokenizer, split, text) for text in candidates.texts]
