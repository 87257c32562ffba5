"""Units of work: one (model, revision, prompt, candidate shard) with a content-hash key.

A unit's key is the scoring engine's own shard key (:func:`rmvalues.runs.keys.shard_key`) over the
unit's slice of the candidates, so a unit is written as an ordinary engine shard
(``OUT/shards/<model>/<prompt>-<key>.parquet``). With one candidate shard per prompt (the default)
the key is exactly :func:`rmvalues.api.score`'s, so ``rmvalues score`` and every executor resume
each other's shards; any executor can pick up where another stopped.

:class:`RunSpec` is what the user asked for (JSON, shipped to workers); :class:`RunContext` is that
spec resolved against a model (tokenizer, provenance, candidates, chat splits) and yields the units.
A context comes from a loaded model (workers) or from :func:`probe_model` (the loader's
:func:`~rmvalues.models.loading.probe_reward_model`: config, tokenizer and a ``meta``-device body),
so planning a 70B run loads no weights.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rmvalues.runs.options import ScoreOptions

if TYPE_CHECKING:  # pragma: no cover
    from rmvalues.engines.candidates import CandidateSet
    from rmvalues.models.chat import ChatSplit


@dataclass(frozen=True, kw_only=True)
class RunSpec(ScoreOptions):
    """One model's scoring run as the user asked for it: model, prompts, candidates and the options.

    JSON-able (shipped to workers) unless ``candidates`` is an already resolved CandidateSet, which
    only a local run accepts.
    """

    model: str
    prompts: tuple[tuple[str, str], ...]
    candidates: Any = "vocab"
    prompt_set: str = "custom"
    #: ``(prompt id, system prompt)`` of the prompts that carry one (a prompt set's ``systems``).
    systems: tuple[tuple[str, str], ...] = ()
    #: The prompt-set file, so `analyze` can read its factors back (a built-in goes by name).
    prompt_file: str | None = None

    @classmethod
    def build(cls, model: str | Path, prompts: Any = "paper-54", candidates: Any = "vocab",
              **options: Any) -> RunSpec:
        """A spec from :func:`rmvalues.api.score`-style arguments (prompt set name/file/mapping/list)."""
        from rmvalues.engines.candidates import CandidateSet
        from rmvalues.prompts import prompt_pairs

        prompt_file = (str(Path(prompts).resolve()) if isinstance(prompts, (str, Path))
                       and Path(prompts).is_file() else None)
        if isinstance(prompts, (str, Path)):
            from rmvalues.prompts import load_prompt_set

            prompts = load_prompt_set(prompts)
        set_name, pairs = prompt_pairs(prompts, allow_system=True)
        systems = tuple(sorted((getattr(prompts, "systems", None) or {}).items()))
        if not isinstance(candidates, (str, CandidateSet)):
            candidates = tuple(candidates)
        if options.get("chat_template") is not None:
            options["chat_template"] = str(options["chat_template"])
        if options.get("paper_compatible"):  # the paper's dtype for the model, as score() loads it
            from rmvalues.engines.paper_compat import paper_dtype

            options["dtype"] = paper_dtype(model, options.get("dtype"))
        return cls(model=str(model), prompts=tuple(pairs), candidates=candidates,
                   prompt_set=set_name, systems=systems, prompt_file=prompt_file,
                   **ScoreOptions.pick(options))

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> RunSpec:
        data = json.loads(text)
        data["prompts"] = tuple(tuple(p) for p in data["prompts"])
        data["systems"] = tuple(tuple(p) for p in data.get("systems", ()))
        if not isinstance(data["candidates"], str):
            data["candidates"] = tuple(data["candidates"])
        return cls(**data)


def early_candidates(candidates: Any) -> Any:
    """Resolve what needs no tokenizer (lexicon, file, text) now, so bad input fails before loading."""
    from rmvalues.engines.candidates import CandidateSet, resolve_candidates

    if isinstance(candidates, CandidateSet):
        return candidates
    if isinstance(candidates, str):
        return candidates if candidates.startswith("vocab") else resolve_candidates(candidates, None)
    items = list(candidates)
    if not items or all(isinstance(x, str) for x in items):
        return resolve_candidates(items, None)
    return items


@dataclass(frozen=True)
class Unit:
    """One (model, revision, prompt, candidate shard ``[start, stop)``) and its shard key."""

    model: str
    revision: str | None
    prompt_id: str
    start: int
    stop: int
    key: str
    token_forwards: int

    @property
    def id(self) -> str:
        return f"{self.prompt_id}[{self.start}:{self.stop}]"

    @property
    def size(self) -> int:
        return self.stop - self.start


def probe_model(spec: RunSpec) -> Any:
    """``spec``'s model as planning needs it, without weights (:func:`probe_reward_model`).

    A training checkpoint, a GGUF model or ``asset:NAME`` has no meta-device probe: it is loaded
    (:func:`~rmvalues.models.checkpoints.load_model_ref`) for its keys.
    """
    from rmvalues.models.checkpoints import load_model_ref, resolve_model_ref
    from rmvalues.models.loading import probe_reward_model

    options = spec.load_options()
    ref = resolve_model_ref(spec.model, spec.gguf_file)
    if ref.kind == "model" and ref.gguf_file is None:
        return probe_reward_model(spec.model, **options)
    return load_model_ref(ref, device=spec.device, dtype=spec.dtype)


class RunContext:
    """A spec resolved against a model: its candidates, chat splits, shard config and units."""

    def __init__(self, spec: RunSpec, rm: Any) -> None:
        from rmvalues.engines.candidates import CandidateSet, resolve_candidates
        from rmvalues.models.chat import split_chat

        self.spec = spec
        self.rm = rm
        systems = dict(spec.systems)
        self.model = rm.name
        cands = (spec.candidates if isinstance(spec.candidates, (str, CandidateSet))
                 else list(spec.candidates))
        self.candidates: CandidateSet = resolve_candidates(early_candidates(cands), rm.tokenizer)
        self.splits: dict[str, ChatSplit] = {
            pid: split_chat(rm.tokenizer, text, date_string=spec.date_string,
                            chat_template=spec.chat_template, system=systems.get(pid))
            for pid, text in spec.prompts}
        self.texts = dict(spec.prompts)
        self.revision = rm.provenance().get("revision")
        self.full_sequences = spec.paper_compatible or spec.mode == "full" or not getattr(
            rm.head, "supports_prefix_cache", True)
        self.units: list[Unit] = self._units()

    @property
    def engine_name(self) -> str:
        """The engine path the manifest records: the backend's name, paper-compatible, full, prefix."""
        if self.spec.backend != "engine":
            return self.spec.backend
        if self.spec.paper_compatible:
            return "paper-compatible"
        return "full" if self.full_sequences else "prefix"

    def slices(self) -> list[tuple[int, int]]:
        n = len(self.candidates)
        size = self.spec.shard_size or n
        return [(start, min(start + size, n)) for start in range(0, n, size)]

    def _slice(self, start: int, stop: int) -> CandidateSet:
        if (start, stop) == (0, len(self.candidates)):
            return self.candidates
        return self.candidates.subset(range(start, stop))

    def subset(self, unit: Unit) -> CandidateSet:
        return self._slice(unit.start, unit.stop)

    def unit_config(self, unit: Unit) -> dict[str, Any]:
        """The shard config of ``unit``'s candidate slice (computed once per slice)."""
        return self._configs[unit.start, unit.stop]

    def config(self, candidates: CandidateSet) -> dict[str, Any]:
        from rmvalues.runs.keys import shard_config

        config = shard_config(self.rm, candidates, paper_compatible=self.spec.paper_compatible)
        if self.spec.truncate_candidates:  # cut candidates change the numbers: keyed apart
            config["truncate_candidates"] = True
        if self.spec.backend != "engine":  # other kernels, other numbers: never the engine's shards
            config["backend"] = self.spec.backend
        return config

    def _lengths(self, split: ChatSplit, candidates: CandidateSet) -> list[int]:
        """Response + suffix length of every candidate (token candidates need no tokenising)."""
        if candidates.kind == "token":
            return [1 + len(split.suffix_ids)] * len(candidates)
        return [len(split.response_ids(self.rm.tokenizer, t)) + len(split.suffix_ids)
                for t in candidates.texts]

    def _units(self) -> list[Unit]:
        from rmvalues.runs.keys import shard_key

        units = []
        slices = self.slices()
        # One config (and candidate hash) per slice, shared by every prompt.
        configs = {s: self.config(self._slice(*s)) for s in slices}
        self._configs = configs
        for pid, text in self.spec.prompts:
            split = self.splits[pid]
            lengths = self._lengths(split, self.candidates)
            prefix = len(split.prefix_ids)
            for start, stop in slices:
                key = shard_key(configs[start, stop], text, split)
                part = lengths[start:stop]
                # Token forwards: the prefix once plus every continuation (prefix path), or every
                # whole conversation (full-sequence path).
                forwards = sum(part) + (prefix * len(part) if self.full_sequences else prefix)
                units.append(Unit(self.model, self.revision, pid, start, stop, key, forwards))
        return units

    def find(self, keys: Sequence[str]) -> list[Unit]:
        """The units with these keys; :class:`PlanMismatchError` if one is not this run's."""
        from rmvalues.errors import PlanMismatchError

        by_key = {u.key: u for u in self.units}
        missing = [k for k in keys if k not in by_key]
        if missing:
            raise PlanMismatchError(
                f"{len(missing)} unit key(s) (e.g. {missing[0]}) are not units of {self.model} as "
                "loaded here: the model's provenance (dtype, device type, attention, library "
                "versions) differs between the planner and this worker. Re-plan on a machine like "
                "the workers, or pass the same --dtype/--device/--attn-implementation.")
        return [by_key[k] for k in keys]
