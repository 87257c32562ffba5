"""Split a reward model's chat template into prefix / response / suffix token ids.

Exhaustive token search scores ``[user: prompt, assistant: candidate]`` for every candidate. The
conversation is rendered once with a sentinel as the response; the text before the sentinel is the
prefix (system header, user turn, assistant header), the text after it the suffix (end-of-turn
tokens). A round-trip check proves that tokenising prefix, response and suffix separately gives
exactly the ids of tokenising the whole conversation, so a token candidate's conversation is
``prefix_ids + [token_id] + suffix_ids`` without ever decoding and re-tokenising it.

Llama-3.1/3.2 templates insert "Today Date: ..." (3.2 uses the wall clock when no date is given);
the date is pinned (default :data:`DEFAULT_DATE_STRING`, the 3.1 template's own default) and recorded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from rmvalues.errors import InputError, TemplateError
from rmvalues.io import sha256_bytes

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedTokenizerBase

#: Date string Llama-3.1/3.2 templates receive ("Today Date: ..."): the Llama-3.1 template default.
DEFAULT_DATE_STRING = "26 Jul 2024"

# Plain ASCII letters: no template trims or escapes them and every tokenizer keeps them inside the
# response, so the text before/after it is exactly the template's prefix/suffix.
_SENTINEL = "RMVALUESRESPONSESENTINEL"
# Responses the round-trip check renders and re-tokenises in full.
_ROUND_TRIP_SAMPLES = ("Hello world", "good", "x")

CHAT_TEMPLATE_HINT = (
    "pass --chat-template (a .jinja file or the template text) naming the chat template the reward "
    "model was trained with"
)


def template_source(tokenizer: PreTrainedTokenizerBase, chat_template: str | Path | None, *,
                    missing: str | None = None) -> str:
    """The Jinja text that will render conversations: the override, else the tokenizer's own;
    without either, :class:`TemplateError` (``missing`` is its message when given)."""
    if chat_template is not None:
        from rmvalues.models.tokenizers import read_chat_template

        return read_chat_template(chat_template)
    own = getattr(tokenizer, "chat_template", None)
    if isinstance(own, dict):  # named templates: the default one renders plain conversations
        own = own.get("default")
    if not own:
        name = getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__
        raise TemplateError(missing or f"the tokenizer of {name!r} has no chat template; "
                            f"{CHAT_TEMPLATE_HINT}.")
    return own


def render_conversation(
    tokenizer: PreTrainedTokenizerBase,
    prompt: str,
    response: str,
    *,
    template: str,
    date_string: str = DEFAULT_DATE_STRING,
    system: str | None = None,
    system_mode: str = "role",
) -> str:
    """``[system?, user: prompt, assistant: response]`` rendered to text by ``template``.

    ``system_mode="user"`` puts the system prompt at the start of the user turn instead of a system
    message: what Gemma 3's own template does, for templates with no system role (Gemma 2).
    """
    if system and system_mode == "user":
        prompt, system = f"{system}\n\n{prompt}", None
    messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]
    if system:
        messages.insert(0, {"role": "system", "content": system})
    try:
        text = tokenizer.apply_chat_template(
            messages, chat_template=template, tokenize=False, date_string=date_string
        )
    except Exception as exc:  # jinja2 TemplateError, raise_exception(...) inside templates
        if system:  # e.g. Gemma's template raises "System role not supported"
            raise TemplateError(
                f"the chat template failed to render a conversation with a system prompt: {exc}; "
                "score this prompt set with a model whose template has a system role, or use a "
                "set without system prompts."
            ) from exc
        raise TemplateError(
            f"the chat template failed to render a user/assistant conversation: {exc}; "
            f"{CHAT_TEMPLATE_HINT}."
        ) from exc
    if not isinstance(text, str):
        raise TemplateError("apply_chat_template(tokenize=False) did not return text")
    return text


def encode_rendered(tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
    """Token ids of templated text: the template already wrote every special token it wants.

    Public so that training tokenises its preference pairs exactly as the chat split does.
    """
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


@dataclass(frozen=True)
class ChatSplit:
    """One prompt's conversation, split around the assistant response."""

    prompt: str
    prefix_ids: tuple[int, ...]
    suffix_ids: tuple[int, ...]
    template: str
    date_string: str
    system: str | None = None
    #: "role" (a system message) or "user" (prepended to the user turn; see render_conversation).
    system_mode: str = "role"

    @property
    def template_hash(self) -> str:
        return template_hash(self.template)

    @property
    def uses_date(self) -> bool:
        """Whether the template reads ``date_string`` (Llama-3.1/3.2's "Today Date")."""
        return "date_string" in self.template

    def token_ids(self, token_id: int) -> list[int]:
        """Conversation ids whose response is exactly one vocabulary token."""
        return [*self.prefix_ids, int(token_id), *self.suffix_ids]

    def response_ids(self, tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
        """Ids of a text response as the template and tokenizer produce them in context.

        The whole conversation is rendered and tokenised (so template trimming and context-dependent
        merges apply), then checked to start with the prefix and end with the suffix.
        """
        full = encode_rendered(tokenizer, render_conversation(
            tokenizer, self.prompt, text, template=self.template, date_string=self.date_string,
            system=self.system, system_mode=self.system_mode))
        p, s = len(self.prefix_ids), len(self.suffix_ids)
        if (len(full) <= p + s or tuple(full[:p]) != self.prefix_ids
                or tuple(full[len(full) - s:]) != self.suffix_ids):
            raise TemplateError(
                f"text candidate {text!r} does not tokenise to prefix + response + suffix under this "
                "template (empty after the template trims it, or merged with the template's "
                "tokens); remove it from the candidate list."
            )
        return full[p:len(full) - s]


def template_hash(template: str) -> str:
    return sha256_bytes(template.encode("utf-8"))


def split_chat(
    tokenizer: PreTrainedTokenizerBase,
    prompt: str,
    *,
    chat_template: str | Path | None = None,
    date_string: str = DEFAULT_DATE_STRING,
    system: str | None = None,
) -> ChatSplit:
    """Split ``[user: prompt, assistant: <response>]`` into prefix and suffix ids, round-trip checked.

    ``system``: an optional system prompt placed before the user turn (it ends up in the prefix);
    a template that refuses a system role gets it at the start of the user turn instead.

    Raises :class:`TemplateError` when the tokenizer has no template (asking for
    ``--chat-template``), the response is not a contiguous span of the rendered text, or token
    boundaries do not fall at the response's edges.
    """
    template = template_source(tokenizer, chat_template)
    system_mode = "role"
    try:
        text = render_conversation(tokenizer, prompt, _SENTINEL, template=template,
                                   date_string=date_string, system=system)
    except TemplateError:
        if not system:
            raise
        system_mode = "user"
        text = render_conversation(tokenizer, prompt, _SENTINEL, template=template,
                                   date_string=date_string, system=system, system_mode="user")
    if text.count(_SENTINEL) != 1:
        raise TemplateError(
            f"the chat template does not place the assistant response verbatim exactly once "
            f"(found {text.count(_SENTINEL)} copies); {CHAT_TEMPLATE_HINT}."
        )
    prefix_text, suffix_text = text.split(_SENTINEL)
    split = ChatSplit(
        prompt=prompt,
        prefix_ids=tuple(encode_rendered(tokenizer, prefix_text)),
        suffix_ids=tuple(encode_rendered(tokenizer, suffix_text)),
        template=template,
        date_string=date_string,
        system=system or None,
        system_mode=system_mode,
    )
    if not split.prefix_ids:
        raise TemplateError("the chat template renders an empty prefix; it cannot be an RM template")
    for sample in (_SENTINEL, *_ROUND_TRIP_SAMPLES):
        # Raises when prefix or suffix ids are not what the whole conversation tokenises to.
        response = split.response_ids(tokenizer, sample)
        alone = encode_rendered(tokenizer, sample)
        if response != alone:
            raise TemplateError(
                f"round-trip check failed: response {sample!r} tokenises to {alone} alone but to "
                f"{response} inside the conversation; the template's prefix/suffix merge with the "
                "response, so token candidates cannot be spliced in as ids."
            )
    return split


def conversation_kwargs(split: ChatSplit) -> dict[str, Any]:
    """What a manifest records about how conversations were built."""
    return {
        "template_hash": split.template_hash,
        "date_string": split.date_string if split.uses_date else None,
        "prefix_ids": list(split.prefix_ids),
        "suffix_ids": list(split.suffix_ids),
        # Only when present, so the keys of runs without system prompts stay as they were.
        **({"system": split.system, "system_mode": split.system_mode} if split.system else {}),
    }


# --- language-model prompts (full-vocabulary log-probs, paper §4) -----------------------------------

Kind = Literal["pretrained", "instruct"]
KINDS: tuple[str, ...] = ("pretrained", "instruct")
#: The FAccT 2025 paper's template for pretrained models.
FACCT_TEMPLATE = "User: {prompt}\nAssistant:"


def instruct_template(tokenizer: PreTrainedTokenizerBase, chat_template: str | Path | None, *,
                      model: str = "the model") -> str:
    """The chat template that renders ``--kind instruct`` prompts (:func:`template_source`), with
    an error that offers ``--kind pretrained`` when there is none."""
    return template_source(tokenizer, chat_template, missing=(
        f"{model} has no chat template, so it cannot be run as --kind instruct; pass "
        "--chat-template (a .jinja file or the template text) naming the template it was "
        "tuned with, or use --kind pretrained."))


def prompt_input_ids(
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    *,
    kind: Kind,
    template: str | None = None,
    chat_template: str | Path | None = None,
    date_string: str | None = None,
    add_bos: bool = True,
    model: str = "the model",
) -> list[list[int]]:
    """Token ids fed to the model for each prompt.

    ``instruct``: the chat template with the generation prompt (the template's own special tokens,
    nothing added). ``pretrained``: ``template.format(prompt=...)`` (default: the raw prompt), with the
    tokenizer's BOS in front when it has one and ``add_bos``.
    """
    if kind not in KINDS:
        raise InputError(f"unknown kind {kind!r}; choose 'pretrained' or 'instruct'.")
    out: list[list[int]] = []
    if kind == "instruct":
        source = instruct_template(tokenizer, chat_template, model=model)
        for text in prompts:
            try:
                rendered = tokenizer.apply_chat_template(
                    [{"role": "user", "content": text}], chat_template=source, tokenize=False,
                    add_generation_prompt=True, date_string=date_string or DEFAULT_DATE_STRING)
            except Exception as exc:
                raise TemplateError(f"the chat template of {model} failed to render a user turn: "
                                    f"{exc}; pass a working --chat-template.") from exc
            out.append(list(tokenizer(rendered, add_special_tokens=False)["input_ids"]))
        return out
    if template is not None and "{prompt}" not in template:
        raise InputError(f"pretrained template {template!r} lacks the '{{prompt}}' placeholder")
    bos = getattr(tokenizer, "bos_token_id", None)
    for text in prompts:
        body = template.format(prompt=text) if template is not None else text
        ids = list(tokenizer(body, add_special_tokens=False)["input_ids"])
        if add_bos and bos is not None:
            ids = [bos, *ids]
        out.append(ids)
    return out
