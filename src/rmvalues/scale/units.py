"""Units of work: one (model, revision, prompt, candidate shard) with a content-hash key.

A unit's key is the scoring engine's own shard key (:func:`rmvalues.api.shard_key`) over the
unit's slice of the candidates, so a unit is written as an ordinary engine shard
(``OUT/shards/<model>/<prompt>-<key>.parquet``). With one candidate shard per prompt (the default)
the key is exactly :func:`rmvalues.api.score`'s, so ``rmvalues score`` and every executor resume
each other's shards; any executor can pick up where another stopped.

:class:`RunSpec` is what the user asked for (JSON, shipped to workers); :class:`RunContext` is that
spec resolved against a model (tokenizer, provenance, candidates, chat splits) and yields the units.
A context comes from a loaded model (workers) or from :func:`probe_model`, which reads the config
and tokenizer and builds the body on the ``meta`` device, so planning a 70B run loads no weights.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rmvalues.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    from rmvalues.engines.candidates import CandidateSet
    from rmvalues.models.chat import ChatSplit


@dataclass(frozen=True)
class RunSpec:
    """One model's scoring run as the user asked for it: the arguments of :func:`rmvalues.api.score`.

    ``shard_size``: candidates per unit (``None``: one unit per prompt, the engine's own shards).
    ``device_map``: ``"auto"`` shards a large model over the GPUs of one node (27B-70B).
    ``backend``: ``"engine"`` (rmvalues' prefix-cached engine) or ``"vllm"`` (plain
    sequence-classification RMs on GPUs; its shards are keyed apart from the engine's), with
    ``vllm`` holding :class:`~rmvalues.scale.vllm_backend.VllmOptions` fields.
    """

    model: str
    prompts: tuple[tuple[str, str], ...]
    candidates: str | tuple[Any, ...] = "vocab"
    prompt_set: str = "custom"
    revision: str | None = None
    dtype: str | None = None
    attn_implementation: str | None = None
    device: str | None = None
    device_map: str | None = None
    date_string: str = "26 Jul 2024"
    chat_template: str | None = None
    paper_compatible: bool = False
    trust_remote_code: bool = False
    batch_size: int | None = None
    mode: str = "auto"
    shard_size: int | None = None
    backend: str = "engine"
    vllm: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.backend not in ("engine", "vllm"):
            raise InputError(f"unknown backend {self.backend!r}; use engine or vllm")
        if self.vllm is not None:
            from rmvalues.scale.vllm_backend import vllm_options

            vllm_options(self.vllm)  # fail on a bad option now, not on the GPU node
        if self.shard_size is not None and self.shard_size < 1:
            raise InputError(f"shard size must be at least 1 candidate (got {self.shard_size})")
        if self.device_map not in (None, "auto"):
            raise InputError(f"device_map must be 'auto' or unset (got {self.device_map!r})")

    @classmethod
    def build(cls, model: str | Path, prompts: Any = "paper-54", candidates: Any = "vocab",
              **options: Any) -> RunSpec:
        """A spec from :func:`rmvalues.api.score`-style arguments (prompt set name/file/mapping/list)."""
        from rmvalues.api import resolve_prompts

        set_name, pairs = resolve_prompts(prompts)
        if not isinstance(candidates, str):
            candidates = tuple(candidates)
        if options.get("chat_template") is not None:
            options["chat_template"] = str(options["chat_template"])
        if options.get("paper_compatible"):  # the paper's dtype for the model, as score() loads it
            from rmvalues.engines.paper_compat import paper_dtype

            options["dtype"] = paper_dtype(model, options.get("dtype"))
        return cls(model=str(model), prompts=tuple(pairs), candidates=candidates,
                   prompt_set=set_name, **options)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> RunSpec:
        data = json.loads(text)
        data["prompts"] = tuple(tuple(p) for p in data["prompts"])
        if not isinstance(data["candidates"], str):
            data["candidates"] = tuple(data["candidates"])
        return cls(**data)

    def load_options(self) -> dict[str, Any]:
        """Keyword arguments of :func:`rmvalues.models.loading.load_reward_model`."""
        return {"revision": self.revision, "dtype": self.dtype,
                "attn_implementation": self.attn_implementation, "device": self.device,
                "device_map": self.device_map, "chat_template": self.chat_template,
                "trust_remote_code": self.trust_remote_code}


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


@dataclass
class ProbedModel:
    """What planning needs of a model without its weights: name, tokenizer, head, provenance."""

    name: str
    tokenizer: Any
    head: Any
    _provenance: dict[str, Any] = field(default_factory=dict)

    def provenance(self) -> dict[str, Any]:
        return dict(self._provenance)


def probe_model(spec: RunSpec) -> ProbedModel:
    """The model's provenance as :func:`load_reward_model` would record it, without loading weights.

    The body is built on the ``meta`` device only to learn the attention implementation
    transformers resolves. Held equal to a real load by the tests.
    """
    import torch
    from transformers import AutoConfig, AutoModel

    from rmvalues.models import loading
    from rmvalues.models.heads import head_class
    from rmvalues.models.registry import find_model
    from rmvalues.models.tokenizers import load_tokenizer

    model_spec = find_model(spec.model)
    local_dir, resolved = loading.resolve_source(spec.model, spec.revision, model_spec)
    files = loading.weight_files(local_dir)
    device = loading.placement_device(spec.device, spec.device_map)
    dtype = loading.torch_dtype(spec.dtype, device=device, spec=model_spec,
                                published=loading.checkpoint_dtype(local_dir))
    config = AutoConfig.from_pretrained(str(local_dir), trust_remote_code=spec.trust_remote_code)
    kwargs: dict[str, Any] = {"dtype": dtype, "trust_remote_code": spec.trust_remote_code}
    if spec.attn_implementation:
        kwargs["attn_implementation"] = spec.attn_implementation
    with torch.device("meta"):
        body = AutoModel.from_config(config, **kwargs)
    head = head_class(model_spec.head if model_spec else loading.DEFAULT_HEAD)
    tokenizer = load_tokenizer(local_dir, chat_template=spec.chat_template,
                               trust_remote_code=spec.trust_remote_code)
    name = model_spec.key if model_spec else loading.display_name(spec.model, local_dir)
    provenance = loading.model_provenance(
        name=name, source=spec.model, revision=resolved,
        fingerprint=None if resolved else loading.fingerprint_files(files),
        head_type=head.head_type, dtype=dtype, config=body.config,
        device_type=torch.device(device).type)
    return ProbedModel(name=name, tokenizer=tokenizer, head=head, _provenance=provenance)


class RunContext:
    """A spec resolved against a model: its candidates, chat splits, shard config and units."""

    def __init__(self, spec: RunSpec, rm: Any) -> None:
        from rmvalues.api import early_candidates
        from rmvalues.engines.candidates import resolve_candidates
        from rmvalues.models.chat import split_chat

        self.spec = spec
        self.rm = rm
        self.model = rm.name
        cands = spec.candidates if isinstance(spec.candidates, str) else list(spec.candidates)
        self.candidates: CandidateSet = resolve_candidates(early_candidates(cands), rm.tokenizer)
        self.splits: dict[str, ChatSplit] = {
            pid: split_chat(rm.tokenizer, text, date_string=spec.date_string,
                            chat_template=spec.chat_template)
            for pid, text in spec.prompts}
        self.texts = dict(spec.prompts)
        self.revision = rm.provenance().get("revision")
        self.full_sequences = spec.paper_compatible or spec.mode == "full" or not getattr(
            rm.head, "supports_prefix_cache", True)
        self.units: list[Unit] = self._units()

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
        from rmvalues.api import shard_config

        config = shard_config(self.rm, candidates, paper_compatible=self.spec.paper_compatible)
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
        from rmvalues.api import shard_key

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
        from rmvalues.scale.errors import PlanMismatchError

        by_key = {u.key: u for u in self.units}
        missing = [k for k in keys if k not in by_key]
        if missing:
            raise PlanMismatchError(
                f"{len(missing)} unit key(s) (e.g. {missing[0]}) are not units of {self.model} as "
                "loaded here: the model's provenance (dtype, device type, attention, library "
                "versions) differs between the planner and this worker. Re-plan on a machine like "
                "the workers, or pass the same --dtype/--device/--attn-implementation.")
        return [by_key[k] for k in keys]
