"""Prompt sets with factor metadata, read from YAML (built-in sets are YAML files in this package).

A file holds either an explicit list of prompts::

    name: my-set
    description: ...
    citation: ...
    prompts:
      - {id: p1, text: "What is the best thing?", factors: {adjective: best}}

or a full-factorial ``grid`` (how the paper's 54 prompts are defined)::

    grid:
      id: "{adjective}_{style}"          # filled with level keys
      text: "{style}"                    # filled with level texts, repeatedly, so a level's text
      factors:                           #   may refer to other factors ({adjective} below)
        adjective:                       # first factor varies slowest; levels keep file order
          good: {text: most good, framing: positive}   # extra keys become derived factors
        style:
          one: {text: "What, in one word, is the {adjective} thing?"}

Either form may give a prompt a ``system`` prompt (a key of an explicit prompt, or a ``grid.system``
template filled like ``text``; an empty result means none), so one set can hold the same question
with and without a system prompt.

Either way every prompt gets a unique id, non-empty text and the same factor keys; a file that
breaks this is refused with the file and the problem named.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from rmvalues.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

_SLOT = re.compile(r"\{(\w+)\}")
_NAME = re.compile(r"^[A-Za-z_][\w\-]*$")


@dataclass(frozen=True)
class Prompt:
    """One user prompt and its factor levels (e.g. ``adjective=good, framing=positive``)."""

    id: str
    text: str
    factors: Mapping[str, str] = field(default_factory=dict)
    #: System prompt rendered before the user turn ("" = none).
    system: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "factors", MappingProxyType(dict(self.factors)))

    def __hash__(self) -> int:  # the read-only factors mapping is not hashable by itself
        return hash((self.id, self.text, tuple(self.factors.items()), self.system))


@dataclass(frozen=True)
class PromptSet:
    """An ordered, validated set of prompts sharing one set of factor names."""

    name: str
    prompts: tuple[Prompt, ...]
    description: str = ""
    citation: str = ""
    source: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "prompts", tuple(self.prompts))
        _validate(self.prompts, self.source or self.name)

    def __len__(self) -> int:
        return len(self.prompts)

    def __iter__(self) -> Iterator[Prompt]:
        return iter(self.prompts)

    def __getitem__(self, prompt_id: str) -> Prompt:
        for prompt in self.prompts:
            if prompt.id == prompt_id:
                return prompt
        raise InputError(f"prompt set {self.name!r} has no prompt {prompt_id!r}; see `.ids`.")

    @property
    def ids(self) -> list[str]:
        return [p.id for p in self.prompts]

    @property
    def systems(self) -> dict[str, str]:
        """Prompt id → system prompt, for the prompts that have one."""
        return {p.id: p.system for p in self.prompts if p.system}

    @property
    def factor_names(self) -> list[str]:
        return list(self.prompts[0].factors)

    def levels(self, factor: str) -> list[str]:
        """The distinct levels of one factor, in order of first appearance."""
        if factor not in self.factor_names:
            raise InputError(
                f"prompt set {self.name!r} has no factor {factor!r}; "
                f"its factors are {', '.join(self.factor_names) or 'none'}."
            )
        return list(dict.fromkeys(p.factors[factor] for p in self.prompts))

    def to_frame(self) -> pd.DataFrame:
        """One row per prompt: ``prompt_id, text`` and one column per factor (joins with results)."""
        import pandas as pd

        return pd.DataFrame(
            [{"prompt_id": p.id, "text": p.text, **p.factors} for p in self.prompts],
            columns=["prompt_id", "text", *self.factor_names],
        )


def _validate(prompts: tuple[Prompt, ...], where: str) -> None:
    if not prompts:
        raise InputError(f"prompt set {where}: it has no prompts; add at least one.")
    seen: set[str] = set()
    keys = list(prompts[0].factors)
    for p in prompts:
        if not isinstance(p.id, str) or not p.id.strip() or p.id != p.id.strip():
            raise InputError(
                f"prompt set {where}: prompt id {p.id!r} is empty or has surrounding spaces."
            )
        if p.id in seen:
            raise InputError(f"prompt set {where}: prompt id {p.id!r} appears twice; ids must be unique.")
        seen.add(p.id)
        if not isinstance(p.text, str) or not p.text.strip():
            raise InputError(f"prompt set {where}: prompt {p.id!r} has empty text.")
        if set(p.factors) != set(keys):
            raise InputError(
                f"prompt set {where}: prompt {p.id!r} has factors {sorted(p.factors)} but "
                f"{prompts[0].id!r} has {sorted(keys)}; give every prompt the same factor keys."
            )
        for key, value in p.factors.items():
            if not isinstance(value, str) or not value:
                raise InputError(
                    f"prompt set {where}: prompt {p.id!r} factor {key!r} has level {value!r}; "
                    "levels must be non-empty strings."
                )


# --- reading --------------------------------------------------------------------------------------


def _scalar(value: Any, what: str, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise InputError(f"prompt set {where}: {what} is {value!r}; expected a string.")
    return str(value)


def _mapping(value: Any, what: str, where: str) -> dict:
    if not isinstance(value, dict):
        raise InputError(f"prompt set {where}: {what} must be a mapping, not {type(value).__name__}.")
    return value


def _explicit(items: Any, where: str) -> list[Prompt]:
    if not isinstance(items, list):
        raise InputError(f"prompt set {where}: `prompts` must be a list of {{id, text, factors}}.")
    out = []
    for n, item in enumerate(items, 1):
        item = _mapping(item, f"prompt #{n}", where)
        unknown = set(item) - {"id", "text", "factors", "system"}
        if unknown or "id" not in item or "text" not in item:
            raise InputError(
                f"prompt set {where}: prompt #{n} needs keys id and text (and optional factors, "
                f"system); got {sorted(item)}."
            )
        factors = _mapping(item.get("factors") or {}, f"prompt #{n} factors", where)
        out.append(
            Prompt(
                id=_scalar(item["id"], f"prompt #{n} id", where),
                text=_scalar(item["text"], f"prompt #{n} text", where),
                factors={str(k): _scalar(v, f"prompt #{n} factor {k!r}", where)
                         for k, v in factors.items()},
                system=_scalar(item.get("system") or "", f"prompt #{n} system", where).strip(),
            )
        )
    return out


def _fill(template: str, values: Mapping[str, str], what: str, where: str) -> str:
    """Substitute ``{factor}`` slots until none is left (a level's text may hold further slots)."""
    for _ in range(len(values) + 1):
        missing = [s for s in _SLOT.findall(template) if s not in values]
        if missing:
            raise InputError(
                f"prompt set {where}: {what} refers to {{{missing[0]}}}, which is not a factor; "
                f"factors are {', '.join(values)}."
            )
        filled = _SLOT.sub(lambda m: values[m.group(1)], template)
        if filled == template:
            return filled
        template = filled
    raise InputError(f"prompt set {where}: {what} has slots that refer to each other in a cycle.")


def _grid(spec: Any, where: str) -> list[Prompt]:
    spec = _mapping(spec, "`grid`", where)
    if not {"id", "text", "factors"} <= set(spec) <= {"id", "text", "factors", "system"}:
        raise InputError(f"prompt set {where}: `grid` needs exactly id, text and factors (and an "
                         f"optional system); got {sorted(spec)}.")
    factors = _mapping(spec["factors"], "`grid.factors`", where)
    if not factors:
        raise InputError(f"prompt set {where}: `grid.factors` is empty; add at least one factor.")
    levels: dict[str, list[tuple[str, str, dict[str, str]]]] = {}
    for factor, raw in factors.items():
        raw = _mapping(raw, f"factor {factor!r}", where)
        if not raw:
            raise InputError(f"prompt set {where}: factor {factor!r} has no levels.")
        levels[factor] = []
        for key, attrs in raw.items():
            attrs = dict(_mapping(attrs or {}, f"level {factor}.{key}", where))
            key = _scalar(key, f"a level key of {factor!r}", where)
            text = _scalar(attrs.pop("text", key), f"text of {factor}.{key}", where)
            derived = {str(k): _scalar(v, f"{factor}.{key}.{k}", where) for k, v in attrs.items()}
            clash = set(derived) & set(factors)
            if clash:
                raise InputError(
                    f"prompt set {where}: level {factor}.{key} sets {min(clash)!r}, which is "
                    "also a factor; rename the derived attribute."
                )
            levels[factor].append((key, text, derived))
        attribute_sets = {tuple(sorted(d)) for _, _, d in levels[factor]}
        if len(attribute_sets) > 1:
            raise InputError(
                f"prompt set {where}: the levels of factor {factor!r} set different attributes "
                f"{sorted(attribute_sets)}; give every level the same ones."
            )
    id_template = _scalar(spec["id"], "`grid.id`", where)
    text_template = _scalar(spec["text"], "`grid.text`", where)
    system_template = _scalar(spec.get("system", ""), "`grid.system`", where)
    prompts = []
    for combo in itertools.product(*levels.values()):
        keys = {f: key for f, (key, _, _) in zip(levels, combo, strict=True)}
        texts = {f: text for f, (_, text, _) in zip(levels, combo, strict=True)}
        derived = {k: v for _, _, d in combo for k, v in d.items()}
        prompts.append(
            Prompt(
                id=_fill(id_template, keys, "`grid.id`", where),
                text=_fill(text_template, texts, "`grid.text`", where),
                factors={**keys, **derived},
                system=_fill(system_template, texts, "`grid.system`", where).strip(),
            )
        )
    return prompts


def prompt_set_from_dict(data: Any, *, source: str = "", default_name: str = "") -> PromptSet:
    """Build a :class:`PromptSet` from parsed YAML (explicit ``prompts`` or a ``grid``)."""
    where = source or default_name or "<dict>"
    data = _mapping(data, "the file", where)
    unknown = set(data) - {"name", "description", "citation", "prompts", "grid"}
    if unknown:
        raise InputError(f"prompt set {where}: unknown keys {sorted(unknown)}.")
    if ("prompts" in data) == ("grid" in data):
        raise InputError(f"prompt set {where}: give exactly one of `prompts` (a list) or `grid`.")
    prompts = _explicit(data["prompts"], where) if "prompts" in data else _grid(data["grid"], where)
    name = _scalar(data.get("name", default_name), "`name`", where)
    if not _NAME.match(name):
        raise InputError(f"prompt set {where}: name {name!r} must be letters, digits, '-' or '_'.")
    return PromptSet(
        name=name,
        prompts=tuple(prompts),
        description=_scalar(data.get("description", ""), "`description`", where),
        citation=_scalar(data.get("citation", ""), "`citation`", where),
        source=source,
    )


def read_prompt_set(path: str | Path) -> PromptSet:
    """Read a prompt-set YAML file."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text("utf-8"))
    except FileNotFoundError:
        raise InputError(f"prompt set file {path} does not exist.") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"prompt set file {path} is not UTF-8 text ({exc.reason}).") from None
    except yaml.YAMLError as exc:
        raise InputError(f"prompt set file {path} is not valid YAML: {exc}".replace("\n", " ")) from None
    return prompt_set_from_dict(data, source=str(path), default_name=path.stem)


def builtin_prompt_sets() -> dict[str, Path]:
    """Built-in set names → their YAML files in this package."""
    root = files("rmvalues.prompts")
    return {
        Path(entry.name).stem: Path(str(entry))
        for entry in sorted(root.iterdir(), key=lambda e: e.name)
        if entry.name.endswith(".yaml")
    }


def load_prompt_set(name_or_path: str | Path) -> PromptSet:
    """A built-in prompt set by name (``paper-54``, ``facct-3``) or a YAML file by path."""
    builtins = builtin_prompt_sets()
    if isinstance(name_or_path, str) and name_or_path in builtins:
        return read_prompt_set(builtins[name_or_path])
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return read_prompt_set(path)
    raise InputError(
        f"unknown prompt set {str(name_or_path)!r}: not a built-in set "
        f"({', '.join(builtins)}) and not an existing YAML file."
    )


def prompt_pairs(prompts: Any, *, allow_system: bool = False) -> tuple[str, list[tuple[str, str]]]:
    """``(set name, [(prompt id, text), ...])`` from anything a stage accepts as prompts.

    A set name or YAML file, a :class:`PromptSet`, ``{id: text}``, ``(id, text)`` pairs,
    :class:`Prompt` objects, or plain texts (ids ``p0``, ``p1``, ...). The one resolution shared by
    reward-model scoring, LM log-probs and training. A set whose prompts carry system prompts is
    refused unless ``allow_system`` (the caller then reads them from the set's ``systems``), so no
    path drops them silently.
    """
    if isinstance(prompts, (str, Path)):
        prompts = load_prompt_set(prompts)
    if getattr(prompts, "systems", None) and not allow_system:
        raise InputError(
            f"prompt set {getattr(prompts, 'name', '')!r} has system prompts, which this path does "
            "not render (LM log-probs, executors); score it with `rmvalues score` (one process), "
            "or drop the system prompts."
        )
    if hasattr(prompts, "prompts"):
        name = str(getattr(prompts, "name", "prompts"))
        pairs = [(str(p.id), str(p.text)) for p in prompts.prompts]
    elif isinstance(prompts, Mapping):
        name, pairs = "custom", [(str(k), str(v)) for k, v in prompts.items()]
    else:
        name, pairs = "custom", []
        for i, item in enumerate(prompts):
            if hasattr(item, "id") and hasattr(item, "text"):
                pairs.append((str(item.id), str(item.text)))
            elif isinstance(item, str):
                pairs.append((f"p{i}", item))
            else:
                pid, text = item
                pairs.append((str(pid), str(text)))
    if not pairs:
        raise InputError("the prompt set is empty; give at least one prompt (e.g. 'paper-54')")
    ids = [pid for pid, _ in pairs]
    if len(set(ids)) != len(ids):
        raise InputError(f"prompt ids must be unique; duplicated: {sorted({i for i in ids if ids.count(i) > 1})}")
    return name, pairs
