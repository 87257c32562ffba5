"""Preference data for Bradley–Terry training: read, validate, subsample, tokenise, length-filter.

Sources: a Hugging Face hub dataset id (``Skywork/Skywork-Reward-Preference-80K-v0.2``;
``llm-blender/Unified-Feedback``, config ``all``, whose rated pairs become chosen/rejected with ties
dropped), a local JSONL/JSON/Parquet file, or a list of records. A record is either
``{"chosen": [messages], "rejected": [messages]}`` (messages are ``{"role", "content"}``),
``{"prompt": str | [messages], "chosen": str, "rejected": str}``, or Unified-Feedback's
``conv_A``/``conv_B`` with ``conv_A_rating``/``conv_B_rating``. Every record is checked before
anything is tokenised; the first bad one is named. Conversations are rendered with the tokenizer's
chat template exactly as the scoring engine renders them, so training and audit see the same ids.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rmvalues.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    import datasets
    from transformers import PreTrainedTokenizerBase

Messages = list[dict[str, str]]

#: Hub datasets the paper trained on, with the config they need (a data table, not code paths).
HUB_PRESETS: dict[str, dict[str, Any]] = {
    "Skywork/Skywork-Reward-Preference-80K-v0.2": {"config": None, "split": "train"},
    "llm-blender/Unified-Feedback": {"config": "all", "split": "train"},
}
_LOCAL_SUFFIXES = (".jsonl", ".json", ".parquet")
_ROLES = {"system", "user", "assistant", "tool"}


@dataclass
class PreferencePair:
    """One validated pair: two conversations that share a prompt and differ in the last reply."""

    chosen: Messages
    rejected: Messages
    index: int  # position in the source, for error messages and provenance


@dataclass
class PreferenceData:
    """Tokenised pairs ready for the trainer, and what was dropped on the way."""

    chosen_ids: list[list[int]]
    rejected_ids: list[list[int]]
    indices: list[int]
    source: str
    stats: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.chosen_ids)

    def to_dataset(self) -> datasets.Dataset:
        """A ``datasets.Dataset`` with TRL's tokenised columns (``chosen_ids``, ``rejected_ids``)."""
        from datasets import Dataset

        return Dataset.from_dict({"chosen_ids": self.chosen_ids, "rejected_ids": self.rejected_ids})

    def provenance(self) -> dict[str, Any]:
        from rmvalues.store.manifest import stable_hash

        return {"source": self.source, **self.stats,
                "content_hash": stable_hash([self.chosen_ids, self.rejected_ids])}


def _where(index: int, source: str) -> str:
    return f"{source}, record {index}"


def _messages(value: Any, what: str, where: str) -> Messages:
    if not isinstance(value, (list, tuple)) or not value:
        raise InputError(f"{where}: {what!r} must be a non-empty list of {{role, content}} "
                         f"messages (got {type(value).__name__}).")
    out: Messages = []
    for i, message in enumerate(value):
        if not isinstance(message, Mapping) or "role" not in message or "content" not in message:
            raise InputError(f"{where}: {what}[{i}] must be a mapping with 'role' and 'content'.")
        role, content = message["role"], message["content"]
        if role not in _ROLES:
            raise InputError(f"{where}: {what}[{i}] has role {role!r}; use one of {sorted(_ROLES)}.")
        if not isinstance(content, str):
            raise InputError(f"{where}: {what}[{i}].content must be text (got "
                             f"{type(content).__name__}).")
        out.append({"role": str(role), "content": content})
    if out[-1]["role"] != "assistant":
        raise InputError(f"{where}: {what} must end with an assistant message (the response the "
                         "reward model judges).")
    return out


def _text(value: Any, what: str, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"{where}: {what!r} must be non-empty text.")
    return value


def _rating(value: Any, what: str, where: str) -> float:
    try:
        rating = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{where}: {what!r} must be a number (got {value!r}).") from None
    if math.isnan(rating):
        raise InputError(f"{where}: {what!r} is NaN.")
    return rating


def normalize_record(record: Any, index: int, source: str = "data") -> PreferencePair | None:
    """A validated :class:`PreferencePair`, or None for a rated pair with a tie (dropped)."""
    where = _where(index, source)
    if not isinstance(record, Mapping):
        raise InputError(f"{where}: a record must be a mapping (got {type(record).__name__}).")
    if "conv_A" in record and "conv_B" in record:  # Unified-Feedback
        a = _messages(record["conv_A"], "conv_A", where)
        b = _messages(record["conv_B"], "conv_B", where)
        ra = _rating(record.get("conv_A_rating"), "conv_A_rating", where)
        rb = _rating(record.get("conv_B_rating"), "conv_B_rating", where)
        if ra == rb:
            return None
        return PreferencePair(a, b, index) if ra > rb else PreferencePair(b, a, index)
    missing = [k for k in ("chosen", "rejected") if k not in record or record[k] is None]
    if missing:
        raise InputError(
            f"{where}: no {' and no '.join(repr(m) for m in missing)} field (it has "
            f"{sorted(map(str, record))}). A preference record needs 'chosen' and 'rejected' "
            "conversations, or 'prompt' with 'chosen'/'rejected' texts, or Unified-Feedback's "
            "'conv_A'/'conv_B' with ratings.")
    chosen, rejected = record["chosen"], record["rejected"]
    prompt = record.get("prompt")
    if prompt is not None:
        context = ([{"role": "user", "content": _text(prompt, "prompt", where)}]
                   if isinstance(prompt, str) else _messages_prompt(prompt, where))
        pair = []
        for name, value in (("chosen", chosen), ("rejected", rejected)):
            if isinstance(value, str):
                pair.append([*context, {"role": "assistant", "content": _text(value, name, where)}])
            else:
                pair.append([*context, *_messages(value, name, where)])
        return PreferencePair(pair[0], pair[1], index)
    if isinstance(chosen, str) or isinstance(rejected, str):
        raise InputError(f"{where}: 'chosen'/'rejected' are plain texts but there is no 'prompt'; "
                         "give a 'prompt' field or whole conversations (lists of messages).")
    return PreferencePair(_messages(chosen, "chosen", where), _messages(rejected, "rejected", where),
                          index)


def _messages_prompt(value: Any, where: str) -> Messages:
    if not isinstance(value, (list, tuple)) or not value:
        raise InputError(f"{where}: 'prompt' must be text or a non-empty list of messages.")
    return [dict(m) for m in _messages([*value, {"role": "assistant", "content": ""}], "prompt",
                                        where)[:-1]]


def read_records(
    source: str | Path | Sequence[Mapping[str, Any]], *, config: str | None = None,
    split: str | None = None,
) -> tuple[list[Any], str]:
    """Raw records and a display name from a hub id, a local file or an in-memory list."""
    if not isinstance(source, (str, Path)):
        return list(source), "records"
    path = Path(source).expanduser()
    if path.suffix.lower() in _LOCAL_SUFFIXES or path.exists():
        return _read_local(path), str(path)
    text = str(source)
    if "/" not in text or text.count("/") > 1:
        raise InputError(f"preference data {text!r}: no such file, and not a hub dataset id "
                         f"(owner/name). Give a {'/'.join(_LOCAL_SUFFIXES)} file or a hub id.")
    return _read_hub(text, config, split), text


def _read_local(path: Path) -> list[Any]:
    if not path.is_file():
        raise InputError(f"preference data {path}: no such file.")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        import pandas as pd

        try:
            frame = pd.read_parquet(path)
        except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for a bad file
            raise InputError(f"{path}: not a readable Parquet file ({exc}).") from None
        return [_plain(r) for r in frame.to_dict(orient="records")]
    text = path.read_text("utf-8")
    if suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}: not valid JSON ({exc}).") from None
        if not isinstance(data, list):
            raise InputError(f"{path}: a .json file must hold a list of records; use JSONL for "
                             "one record per line.")
        return data
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}, line {number}: not valid JSON ({exc.msg}).") from None
    return records


def _plain(value: Any) -> Any:
    """Parquet's numpy arrays of structs as plain lists of dicts."""
    import numpy as np

    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _read_hub(dataset_id: str, config: str | None, split: str | None) -> list[Any]:
    preset = HUB_PRESETS.get(dataset_id, {})
    config = config if config is not None else preset.get("config")
    split = split or preset.get("split") or "train"
    try:
        from datasets import load_dataset

        data = load_dataset(dataset_id, name=config, split=split)
    except Exception as exc:  # DatasetNotFoundError, ConnectionError, ValueError for configs
        raise InputError(
            f"hub dataset {dataset_id!r}{f' (config {config!r})' if config else ''} could not be "
            f"loaded: {type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}. "
            "Check the id, config and network, or pass a local JSONL/Parquet file.") from exc
    return list(data)


def subsample_indices(n: int, *, every: int | None = None, size: int | None = None,
                      seed: int = 1) -> list[int]:
    """Indices kept: every ``every``-th (0, N, 2N, ... as the paper's step sizes) or ``size`` drawn
    without replacement with ``seed`` (in source order), or all."""
    if every is not None and size is not None:
        raise InputError("subsample with either every-N-th or a target size, not both.")
    if every is not None:
        if every < 1:
            raise InputError(f"--every must be >= 1 (got {every}).")
        return list(range(0, n, every))
    if size is not None:
        if size < 1:
            raise InputError(f"--size must be >= 1 (got {size}).")
        if size >= n:
            return list(range(n))
        import numpy as np

        return sorted(np.random.default_rng(seed).choice(n, size=size, replace=False).tolist())
    return list(range(n))


def render_ids(tokenizer: PreTrainedTokenizerBase, messages: Messages, *, template: str,
               date_string: str) -> str:
    """The conversation rendered to text by the chat template (the engine's rendering)."""
    from rmvalues.errors import TemplateError

    try:
        return tokenizer.apply_chat_template(messages, chat_template=template, tokenize=False,
                                             date_string=date_string)
    except Exception as exc:  # jinja errors, raise_exception() in templates
        raise TemplateError(f"the chat template failed to render a training conversation: {exc}. "
                            "Pass --chat-template with the template the model should use.") from exc


def load_preference_data(
    source: str | Path | Sequence[Mapping[str, Any]],
    tokenizer: PreTrainedTokenizerBase,
    *,
    every: int | None = None,
    size: int | None = None,
    seed: int = 1,
    max_length: int = 1024,
    config: str | None = None,
    split: str | None = None,
    chat_template: str | Path | None = None,
    date_string: str | None = None,
) -> PreferenceData:
    """Read, validate, subsample, tokenise and length-filter preference pairs, before any training.

    Raises :class:`InputError` naming the bad record, and when nothing is left after subsampling
    or every pair is longer than ``max_length`` tokens.
    """
    from rmvalues.models.chat import DEFAULT_DATE_STRING, encode_rendered, template_source

    records, name = read_records(source, config=config, split=split)
    if not records:
        raise InputError(f"preference data {name} holds no records.")
    pairs = [normalize_record(r, i, name) for i, r in enumerate(records)]
    ties = sum(p is None for p in pairs)
    valid = [p for p in pairs if p is not None]
    keep = subsample_indices(len(valid), every=every, size=size, seed=seed)
    if not keep:
        raise InputError(f"preference data {name}: no pairs left after subsampling "
                         f"({len(valid)} valid pairs, {ties} ties dropped); use a smaller --every "
                         "or a larger --size.")
    chosen_pairs = [valid[i] for i in keep]
    template = template_source(tokenizer, chat_template)
    date_string = date_string or DEFAULT_DATE_STRING
    chosen_ids, rejected_ids, indices, too_long = [], [], [], 0
    for pair in chosen_pairs:
        c = encode_rendered(tokenizer, render_ids(tokenizer, pair.chosen, template=template,
                                                  date_string=date_string))
        r = encode_rendered(tokenizer, render_ids(tokenizer, pair.rejected, template=template,
                                                  date_string=date_string))
        if len(c) > max_length or len(r) > max_length:
            too_long += 1
            continue
        chosen_ids.append(c)
        rejected_ids.append(r)
        indices.append(pair.index)
    if not chosen_ids:
        raise InputError(f"preference data {name}: all {len(chosen_pairs)} pair(s) are longer than "
                         f"max_length = {max_length} tokens; raise --max-length or use shorter "
                         "conversations.")
    stats = {"records": len(records), "ties_dropped": ties, "valid_pairs": len(valid),
             "subsample": {"every": every, "size": size, "seed": seed},
             "after_subsample": len(chosen_pairs), "too_long_dropped": too_long,
             "pairs": len(chosen_ids), "max_length": max_length,
             "template_hash": _template_hash(template), "date_string": date_string}
    return PreferenceData(chosen_ids, rejected_ids, indices, name, stats)


def _template_hash(template: str) -> str:
    from rmvalues.models.chat import template_hash

    return template_hash(template)
