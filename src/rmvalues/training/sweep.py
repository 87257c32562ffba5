"""Checkpoint sweeps: score every checkpoint of a training run with the scoring engine.

A sweep is a scoring run whose units are (checkpoint, prompt) (:mod:`rmvalues.runs.sweep`): the
same shard keys, worker, resume and shard store as ``rmvalues score``. The base model is loaded once; each checkpoint's LoRA adapter and score head are swapped in (peft
adapters by name), and the engine runs the adapted backbone with the checkpoint's head. The long
table gains a ``checkpoint`` column (the optimizer step), so it feeds
:func:`rmvalues.analysis.checkpoint_units` (median rank per checkpoint and category, Fig 4a) and
:func:`rmvalues.analysis.rank_change` (first → last, Fig 5) directly. :func:`merge_checkpoint`
writes a checkpoint as a plain reward-model folder, the obviously-correct path a sweep is held to.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rmvalues.errors import InputError, ModelError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from torch import nn
    from transformers import PreTrainedTokenizerBase

    from rmvalues.models.loading import RewardModel
    from rmvalues.runs.plan import Plan


@dataclass(frozen=True)
class Checkpoint:
    """One complete checkpoint folder of a run and its manifest fields."""

    step: int
    path: Path
    fields: dict[str, Any] = field(hash=False, compare=False)


def list_checkpoints(train_dir: str | Path, steps: Sequence[int] | None = None) -> list[Checkpoint]:
    """The run's complete checkpoints (optionally only ``steps``), ascending."""
    from rmvalues.store.manifest import read_manifest
    from rmvalues.training.trainer import MANIFEST_NAME, checkpoint_dirs

    train_dir = Path(train_dir)
    found = checkpoint_dirs(train_dir)
    if not found:
        raise InputError(f"{train_dir} holds no complete checkpoint (checkpoint-N folders with a "
                         "manifest.json); is it a `rmvalues train` output folder?")
    if steps is not None:
        missing = sorted(set(steps) - set(found))
        if missing:
            raise InputError(f"{train_dir} has no checkpoint at step(s) {missing}; it has "
                             f"{list(found)}.")
        found = {s: p for s, p in found.items() if s in set(steps)}
    return [Checkpoint(s, p, read_manifest(p / MANIFEST_NAME).fields) for s, p in found.items()]


def _score_weight(checkpoint: Checkpoint):
    """The score head ``[1, H]`` saved with the adapter (``modules_to_save``)."""
    from safetensors import safe_open

    with safe_open(str(checkpoint.path / "adapter_model.safetensors"), framework="pt") as handle:
        keys = [k for k in handle.keys() if k.endswith("score.weight")]  # noqa: SIM118
        if len(keys) != 1:
            raise ModelError(f"{checkpoint.path}: expected one saved score head, found {keys}.")
        weight = handle.get_tensor(keys[0])
        bias_keys = [k for k in handle.keys() if k.endswith("score.bias")]  # noqa: SIM118
        bias = handle.get_tensor(bias_keys[0]) if bias_keys else None
    return weight, bias


def _body(seq_cls: nn.Module) -> nn.Module:
    """The transformer body of a ``*ForSequenceClassification`` model (returns hidden states)."""
    return getattr(seq_cls, seq_cls.base_model_prefix)


class CheckpointModels:
    """A run's base model, loaded once, with checkpoints swapped in as reward models."""

    def __init__(self, train_dir: str | Path, *, device: str | None = None,
                 dtype: str | None = None, name: str | None = None) -> None:
        from rmvalues.models.loading import default_device, torch_dtype
        from rmvalues.models.tokenizers import load_tokenizer
        from rmvalues.training.pad import apply_pad_policy
        from rmvalues.training.trainer import BaseModel, load_base

        self.train_dir = Path(train_dir)
        self.checkpoints = list_checkpoints(self.train_dir)
        first = self.checkpoints[0]
        self.name = name or self.train_dir.name
        self.device = device or default_device()
        self.base = BaseModel(**first.fields["base"])
        self.tokenizer: PreTrainedTokenizerBase = load_tokenizer(first.path)
        model, _, _ = load_base(self.base, tokenizer=self.tokenizer,
                                dtype=torch_dtype(dtype, device=self.device, spec=None))
        apply_pad_policy(self.tokenizer, model, record=first.fields["pad"])
        self._model = model
        self._peft = None
        self._active: str | None = None

    def reward_model(self, checkpoint: Checkpoint | int) -> RewardModel:
        """The engine's view of ``checkpoint``: adapted backbone + its score head + tokenizer."""
        from peft import PeftModel

        from rmvalues.models.heads.sequence_classification import SequenceClassificationHead
        from rmvalues.training.trainer import load_added_embeddings

        if isinstance(checkpoint, int):
            matches = [c for c in self.checkpoints if c.step == checkpoint]
            if not matches:
                raise InputError(f"{self.train_dir} has no checkpoint at step {checkpoint}.")
            checkpoint = matches[0]
        adapter = f"step-{checkpoint.step}"
        load_added_embeddings(self._model, checkpoint.path)
        if self._peft is None:
            self._peft = PeftModel.from_pretrained(self._model, str(checkpoint.path),
                                                   adapter_name=adapter, is_trainable=False)
        elif adapter not in self._peft.peft_config:
            self._peft.load_adapter(str(checkpoint.path), adapter_name=adapter, is_trainable=False)
        self._peft.set_adapter(adapter)
        if self._active not in (None, adapter):  # keep one adapter in memory
            self._peft.delete_adapter(self._active)
        self._active = adapter
        self._peft.to(self.device).eval()
        weight, bias = _score_weight(checkpoint)
        head = SequenceClassificationHead(weight, bias).to(self.device).eval()
        return reward_model_from_parts(
            _body(self._peft.get_base_model()), head, self.tokenizer, name=self.name,
            source=str(checkpoint.path), step=checkpoint.step, run_key=checkpoint.fields["run_key"])


def reward_model_from_parts(backbone: nn.Module, head: Any, tokenizer: PreTrainedTokenizerBase, *,
                            name: str, source: str, step: int | None = None,
                            run_key: str | None = None) -> RewardModel:
    from rmvalues.models.loading import RewardModel

    return RewardModel(name=name, source=source, backbone=backbone.eval(), head=head,
                       tokenizer=tokenizer, fingerprint=run_key,
                       extra=_checkpoint_extra(step, run_key))


def _checkpoint_extra(step: int | None, run_key: str | None) -> dict[str, Any]:
    """The provenance fields that tell a run's checkpoints apart (they enter the shard keys)."""
    return {"checkpoint": step, "train_run_key": run_key}


def trained_reward_model(peft_model: nn.Module, tokenizer: PreTrainedTokenizerBase,
                         name: str = "trained") -> RewardModel:
    """The engine's view of an in-memory trained PeftModel (its active adapter and score head)."""
    from rmvalues.models.heads.sequence_classification import SequenceClassificationHead

    base = peft_model.get_base_model()
    score = base.score
    active = getattr(score, "active_adapter", None)
    module = score.modules_to_save[active if isinstance(active, str) else active[0]] \
        if hasattr(score, "modules_to_save") else score
    head = SequenceClassificationHead(module.weight.detach().cpu(),
                                      None if module.bias is None else module.bias.detach().cpu())
    peft_model.eval()
    return reward_model_from_parts(_body(base), head.to(next(base.parameters()).device), tokenizer,
                                   name=name, source="memory")


def merge_checkpoint(checkpoint_dir: str | Path, out: str | Path, *, dtype: str | None = None
                     ) -> Path:
    """Write one checkpoint as a plain reward-model folder (LoRA merged into the weights, head as
    ``score.weight``) that :func:`rmvalues.models.loading.load_reward_model` reads like any RM."""
    from peft import PeftModel

    from rmvalues.models.loading import save_reward_model, torch_dtype
    from rmvalues.models.tokenizers import load_tokenizer
    from rmvalues.store.manifest import read_manifest
    from rmvalues.training.pad import apply_pad_policy
    from rmvalues.training.trainer import MANIFEST_NAME, BaseModel, load_added_embeddings, load_base

    checkpoint_dir = Path(checkpoint_dir)
    if not (checkpoint_dir / MANIFEST_NAME).is_file():
        raise InputError(f"{checkpoint_dir} is not a complete training checkpoint (no manifest).")
    fields = read_manifest(checkpoint_dir / MANIFEST_NAME).fields
    tokenizer = load_tokenizer(checkpoint_dir)
    model, _, _ = load_base(BaseModel(**fields["base"]), tokenizer=tokenizer,
                            dtype=torch_dtype(dtype, device="cpu", spec=None))
    apply_pad_policy(tokenizer, model, record=fields["pad"])
    load_added_embeddings(model, checkpoint_dir)
    merged = PeftModel.from_pretrained(model, str(checkpoint_dir)).merge_and_unload()
    score = merged.score
    head_state = {"score.weight": score.weight}
    if getattr(score, "bias", None) is not None:
        head_state["score.bias"] = score.bias
    return save_reward_model(out, _body(merged), head_state, tokenizer)


@dataclass
class SweepResult:
    table: pd.DataFrame
    path: Path | None
    summary: str
    steps: list[int]


class CheckpointLoader:
    """A run's checkpoints for a sweep: loaded for scoring, or probed for planning.

    Planning loads one checkpoint; the others are it with their own source, step and run key (all
    that differs between a run's checkpoints; the tests hold this equal to loading each one).
    """

    def __init__(self, models: Any) -> None:
        self.models = models
        self._first: tuple[int, RewardModel] | None = None

    def load(self, checkpoint: Checkpoint) -> RewardModel:
        if self._first is not None and self._first[0] == checkpoint.step:
            return self._first[1]
        return self.models.reward_model(checkpoint)

    def probe(self, checkpoint: Checkpoint) -> RewardModel:
        from dataclasses import replace

        if self._first is None:
            self._first = (checkpoint.step, self.models.reward_model(checkpoint))
        run_key = checkpoint.fields.get("run_key")
        return replace(self._first[1], source=str(checkpoint.path), fingerprint=run_key,
                       extra=_checkpoint_extra(checkpoint.step, run_key))

    def probes(self, chosen: Sequence[Checkpoint]) -> dict[int, Any]:
        """``{step: () -> model}``, as :func:`rmvalues.runs.sweep.make_sweep_plan` takes them."""
        return {c.step: (lambda c=c: self.probe(c)) for c in chosen}


def sweep(
    train_dir: str | Path,
    prompts: Any = "paper-54",
    candidates: Any = "vocab",
    out: str | Path | None = None,
    *,
    steps: Sequence[int] | None = None,
    progress: bool = False,
    **options: Any,
) -> SweepResult:
    """Score every checkpoint (or ``steps``) of ``train_dir`` on ``prompts`` × ``candidates``.

    ``options``: fields of :class:`~rmvalues.training.config.SweepOptions` (batch_size, device,
    dtype, name). Runs a plan whose units are (checkpoint, prompt) (:mod:`rmvalues.runs.sweep`):
    with ``out``, each unit is a resumable shard under ``OUT/shards/`` (re-running scores only
    what is missing; the ``step-N-<key>.parquet`` tables of earlier versions are taken over), and
    the long table with a ``checkpoint`` column is written last as ``sweep.parquet`` with its
    manifest. Nothing is created in ``out`` before the inputs are checked.
    """
    import pandas as pd

    from rmvalues.io import atomic_path
    from rmvalues.runs import RunSpec, UnitWorker, early_candidates
    from rmvalues.runs.sweep import make_sweep_plan
    from rmvalues.runs.worker import run_locally
    from rmvalues.store.manifest import build_manifest, write_manifest
    from rmvalues.store.shards import check_writable
    from rmvalues.training.config import SweepOptions

    started = time.perf_counter()
    opts = SweepOptions(**SweepOptions.pick(options))
    if out is not None:
        out = check_writable(out, create=False)  # an early error leaves no empty folder behind
    chosen = list_checkpoints(train_dir, steps)
    spec = RunSpec.build(str(train_dir), prompts, early_candidates(candidates),
                         batch_size=opts.batch_size)
    if chosen[0].fields.get("objective") == "grm":  # a GRM run: causal LM + value head
        from rmvalues.training.grm import GRMCheckpointModels

        models = GRMCheckpointModels(train_dir, device=opts.device, dtype=opts.dtype,
                                     name=opts.name)
    else:
        models = CheckpointModels(train_dir, device=opts.device, dtype=opts.dtype, name=opts.name)
    key = legacy_sweep_key(prompts, candidates, models, opts.dtype)
    loader = CheckpointLoader(models)
    plan = make_sweep_plan(spec, loader.probes(chosen), out, lock=True)
    frames, resumed = [], 0
    bar = _progress(progress, sum(u.size for _, u in plan.units()), f"sweeping {models.name}")
    try:
        for checkpoint in chosen:
            step_plan = plan.plans[checkpoint.step]
            if out is not None and step_plan.remaining():
                _take_over_legacy(step_plan, Path(out) / f"step-{checkpoint.step}-{key}.parquet")
            stored = [] if step_plan.remaining() else [step_plan.load(u) for u in step_plan.units]
            if stored and all(f is not None for f in stored):
                resumed += len(stored)
                bar.advance(sum(u.size for u in step_plan.units))
            else:  # the checkpoint's remaining units (or a shard that failed verification)
                worker = UnitWorker(spec, out, rm=loader.load(checkpoint), record_units=False,
                                    lock=True)
                try:
                    run = run_locally(worker, on_batch=bar.advance)
                finally:
                    if worker.plan.store is not None:
                        worker.plan.store.release()  # nested in the plan's lock: give it back first
                resumed += run.resumed
                stored = run.frames
            frames.append(pd.concat(stored, ignore_index=True).assign(checkpoint=checkpoint.step))
    finally:
        bar.close()
        plan.release()
    table = pd.concat(frames, ignore_index=True)
    written = None
    if out is not None:
        written = Path(out) / "sweep.parquet"
        with atomic_path(written) as tmp:  # the table lands last, beside its manifest
            table.to_parquet(tmp, index=False)
            write_manifest(Path(out) / "sweep.manifest.json", build_manifest(
                "rm-checkpoint-sweep", train_dir=str(train_dir), model=models.name,
                steps=[c.step for c in chosen], run_key=chosen[0].fields.get("run_key"),
                base=chosen[0].fields.get("base"), batch_size=opts.batch_size, settings_key=key))
    elapsed = time.perf_counter() - started
    summary = (f"swept {len(chosen)} checkpoint(s) of {models.name}: {len(table):,} scores in "
               f"{elapsed:.1f}s" + (f" ({resumed} unit(s) resumed)" if resumed else "")
               + (f" -> {written}" if written else ""))
    return SweepResult(table=table, path=written, summary=summary, steps=[c.step for c in chosen])


def legacy_sweep_key(prompts: Any, candidates: Any, models: CheckpointModels,
                     dtype: str | None) -> str:
    """The settings key of sweeps before they ran as a plan: named in the manifest
    (``settings_key``) and in the ``step-N-<key>.parquet`` tables those sweeps left."""
    from rmvalues.prompts import prompt_pairs
    from rmvalues.store.manifest import stable_hash

    content = candidates.content_hash() if hasattr(candidates, "content_hash") else (
        candidates if isinstance(candidates, str) else list(candidates))
    if isinstance(prompts, (str, Path)):
        from rmvalues.prompts import load_prompt_set

        prompts = load_prompt_set(prompts)
    systems = dict(getattr(prompts, "systems", None) or {})  # keyed only when present: old keys hold
    return stable_hash({"prompts": prompt_pairs(prompts, allow_system=True)[1], "candidates": content,
                        "name": models.name, "dtype": dtype, "device": models.device,
                        **({"systems": systems} if systems else {})}, length=10)


def _progress(enabled: bool, total: int, description: str) -> Any:
    from rmvalues.runs.progress import Progress

    return Progress(enabled, total, description)


def _take_over_legacy(plan: Plan, path: Path) -> None:
    """Turn a checkpoint's table left by a sweep of an earlier version (``step-N-<settings
    key>.parquet``, same settings) into the plan's unit shards, then remove it; a table that does
    not hold exactly the units' rows is left alone (with a warning) and the units are scored."""
    import logging

    import pandas as pd

    from rmvalues.runs.keys import shard_manifest

    if not path.is_file():
        return
    log = logging.getLogger("rmvalues.training")
    context = plan.context
    table = pd.read_parquet(path).drop(columns="checkpoint")
    parts = {}
    for unit in plan.remaining():
        rows = table[table["prompt_id"] == unit.prompt_id].iloc[unit.start:unit.stop]
        if list(rows["candidate"]) != list(context.subset(unit).texts) or rows["model"].ne(
                context.model).any():
            log.warning("%s does not hold the rows of unit %s of this sweep; it is scored again "
                        "(delete the file to silence this)", path, unit.id)
            return
        parts[unit] = rows.reset_index(drop=True)
    for unit, rows in parts.items():
        split = context.splits[unit.prompt_id]
        plan.store.save(unit.prompt_id, unit.key, rows, shard_manifest(
            context.unit_config(unit), unit.prompt_id, context.texts[unit.prompt_id], unit.key,
            split, taken_over_from=path.name))
    path.unlink()
    log.info("took over %s (a sweep table of an earlier version) as %d unit shard(s)", path.name,
             len(parts))
