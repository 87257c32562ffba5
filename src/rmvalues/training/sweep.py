"""Checkpoint sweeps: score every checkpoint of a training run with the scoring engine.

The base model is loaded once; each checkpoint's LoRA adapter and score head are swapped in (peft
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
                       extra={"checkpoint": step, "train_run_key": run_key})


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


def sweep(
    train_dir: str | Path,
    prompts: Any = "paper-54",
    candidates: Any = "vocab",
    out: str | Path | None = None,
    *,
    steps: Sequence[int] | None = None,
    batch_size: int = 64,
    device: str | None = None,
    dtype: str | None = None,
    name: str | None = None,
    progress: bool = False,
) -> SweepResult:
    """Score every checkpoint (or ``steps``) of ``train_dir`` on ``prompts`` × ``candidates``.

    Returns the long score table with a ``checkpoint`` column; with ``out``, each checkpoint's
    table is written as ``step-N.parquet`` (re-running skips finished ones) and all of them as
    ``sweep.parquet``, each with its manifest.
    """
    import pandas as pd

    from rmvalues.api import score
    from rmvalues.io import atomic_path
    from rmvalues.store.manifest import build_manifest, write_manifest
    from rmvalues.store.shards import check_writable

    started = time.perf_counter()
    if out is not None:
        out = check_writable(out)
    chosen = list_checkpoints(train_dir, steps)
    if chosen[0].fields.get("objective") == "grm":  # a GRM run: causal LM + value head
        from rmvalues.training.grm import GRMCheckpointModels

        models = GRMCheckpointModels(train_dir, device=device, dtype=dtype, name=name)
    else:
        models = CheckpointModels(train_dir, device=device, dtype=dtype, name=name)
    key = _sweep_key(prompts, candidates, models, dtype)
    frames = []
    for checkpoint in chosen:
        # The file name carries the settings, so a re-run with other prompts/candidates rescores.
        path = (Path(out) / f"step-{checkpoint.step}-{key}.parquet" if out is not None else None)
        if path is not None and path.is_file():
            frames.append(pd.read_parquet(path))
            continue
        rm = models.reward_model(checkpoint)
        result = score(rm, prompts, candidates, None, batch_size=batch_size, progress=progress)
        frame = result.table.assign(checkpoint=checkpoint.step)
        if path is not None:
            with atomic_path(path) as tmp:
                frame.to_parquet(tmp, index=False)
        frames.append(frame)
    table = pd.concat(frames, ignore_index=True)
    written = None
    if out is not None:
        written = Path(out) / "sweep.parquet"
        with atomic_path(written) as tmp:  # the table lands last, beside its manifest
            table.to_parquet(tmp, index=False)
            write_manifest(Path(out) / "sweep.manifest.json", build_manifest(
                "rm-checkpoint-sweep", train_dir=str(train_dir), model=models.name,
                steps=[c.step for c in chosen], run_key=chosen[0].fields.get("run_key"),
                base=chosen[0].fields.get("base"), batch_size=batch_size, settings_key=key))
    elapsed = time.perf_counter() - started
    summary = (f"swept {len(chosen)} checkpoint(s) of {models.name}: {len(table):,} scores in "
               f"{elapsed:.1f}s" + (f" -> {written}" if written else ""))
    return SweepResult(table=table, path=written, summary=summary, steps=[c.step for c in chosen])


def _sweep_key(prompts: Any, candidates: Any, models: CheckpointModels, dtype: str | None) -> str:
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
