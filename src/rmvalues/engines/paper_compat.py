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

Per model, paper mode also runs what the published scorer ran (:func:`paper_model`):

* the paper's dtype (registry ``paper_dtype``: float16 for URM and the GRM -rewardmodel-ft models,
  bfloat16 for the rest), and the head in that dtype too, as transformers and the remote code ran
  it (so the ties of the released CSVs reappear);
* transformers' pooling, as ``*ForSequenceClassification`` and the custom heads of transformers 4.43
  pool: the position before the FIRST ``config.pad_token_id`` in the ids (the last position when
  there is none), so a candidate that is the pad token is read at the token before it;
* URM's score as the paper read it (registry ``paper_score = "first_logit"``): loaded without
  remote code, transformers dropped the gate, and ``logits[:, 0]`` is the first attribute's mean.

The manifest records ``score_definition``, ``head_verified`` and the pooling either way.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rmvalues.errors import ModelError
from rmvalues.models.chat import ChatSplit, render_conversation

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedTokenizerBase

    from rmvalues.engines.candidates import CandidateSet
    from rmvalues.models.loading import RewardModel


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


def pad_pooling(pad_token_id: int | None) -> Callable[[Sequence[int]], int]:
    """transformers 4.43's sequence-classification pooling: ``argmax(ids == pad) - 1``, modulo the
    length (no pad, or a pad at position 0, gives the last position; no pad id, the last)."""

    def position(ids: Sequence[int]) -> int:
        ids = list(ids)
        if pad_token_id is None or pad_token_id not in ids:
            return len(ids) - 1
        return (ids.index(pad_token_id) - 1) % len(ids)

    return position


def paper_dtype(model: Any, dtype: str | None) -> str | None:
    """The dtype to load ``model`` in for paper mode: ``dtype`` if given, else the registry's."""
    if dtype is not None or not isinstance(model, (str, Path)):
        return dtype
    from rmvalues.models.registry import find_model

    spec = find_model(str(model))
    return spec.paper_dtype if spec is not None else None


def paper_model(rm: RewardModel) -> RewardModel:
    """``rm`` as the published scorer ran it: its own copy of the head, in the backbone dtype, with
    the paper's score definition (the caller's model is left as it was)."""
    head = copy.deepcopy(rm.head).to(rm.dtype)
    definition = rm.spec.paper_score if rm.spec is not None else None
    if definition == "first_logit":
        if not hasattr(head, "first_logit_only"):
            raise ModelError(f"{rm.name}: paper_score = 'first_logit' needs a head that can read "
                             f"logits[:, 0] alone; the {head.head_type} head cannot")
        head.first_logit_only = True
    elif definition is not None:
        raise ModelError(f"{rm.name}: unknown paper_score {definition!r} in the model registry")
    return dataclasses.replace(rm, head=head)


def paper_pooling(rm: RewardModel) -> Callable[[Sequence[int]], int]:
    """The pad pooling of ``rm``'s config (:func:`pad_pooling`)."""
    return pad_pooling(getattr(rm.backbone.config, "pad_token_id", None))


def score_fields(rm: RewardModel, paper_compatible: bool) -> dict[str, Any]:
    """What a run's manifest records about how the score was read (``rm`` as the scorer ran it)."""
    pad = getattr(rm.backbone.config, "pad_token_id", None)
    return _score_fields(rm.head.score_definition, rm.spec,
                         str(next(rm.head.parameters()).dtype).removeprefix("torch."), pad,
                         paper_compatible)


def planned_score_fields(probe: Any, spec: Any) -> dict[str, Any]:
    """:func:`score_fields` as running ``spec`` would record them, from a planning probe (the
    head's class, no weights): what the executors' coordinator merges with. Tests hold the two
    equal.

    The head runs in float32, in paper mode in the model's dtype (:func:`paper_model`); the pad
    id that paper mode pools at is read from the model's config.
    """
    from rmvalues.models.loading import resolve_model

    source = resolve_model(spec.model, revision=spec.revision, dtype=spec.dtype,
                           device=spec.device, device_map=spec.device_map)
    registered = source.spec
    first_logit = (spec.paper_compatible and registered is not None
                   and registered.paper_score == "first_logit")
    pad = None
    if spec.paper_compatible:
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(str(source.local_dir),
                                            trust_remote_code=spec.trust_remote_code)
        pad = getattr(config, "pad_token_id", None)
    head_dtype = probe.provenance()["dtype"] if spec.paper_compatible else "float32"
    return _score_fields(probe.head.definition(first_logit_only=first_logit), registered,
                         head_dtype, pad, spec.paper_compatible)


def _score_fields(definition: str, registered: Any, head_dtype: str, pad: int | None,
                  paper_compatible: bool) -> dict[str, Any]:
    return {
        "score_definition": definition,
        "head_verified": registered.head_verified if registered is not None else None,
        "head_dtype": head_dtype,
        "pooling": (f"before the first pad token (id {pad}), else the last position"
                    if paper_compatible else "the last position"),
    }
