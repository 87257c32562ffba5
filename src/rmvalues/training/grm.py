"""The GRM objective (Yang et al. 2024, Ray2333/Generalizable-Reward-Model; the paper's
``method = GRM`` RM): a causal LM keeps its LM head and gains GRM's value head (Linear(H, 1024),
ReLU, Linear(1024, 1) on the last token's hidden state, dropout 0.1 while training), trained on

    loss = (1 - w) * BT + w * SFT,   BT = -log sigmoid(r_chosen - r_rejected),
    SFT = -log sigmoid(beta * sum_t log p(chosen response token t))

with the authors' settings ``w = 0.01`` (weight_ratio), ``beta = 0.1``, ``sft_only`` and
``reference_free``: the text-generation regulariser keeps the LM able to generate the chosen
responses. Their ``GRMRewardTrainer.compute_loss`` is the reference; :func:`reference_grm_loss`
restates it pair by pair and tests hold :func:`grm_loss` equal to it.

Response tokens: the authors mask the prompt (the chat template of all turns but the last, with
the generation prompt). Tokenised pairs here keep no prompt length, so the prompt is taken as the
longest common prefix of the chosen and rejected ids; where both responses start alike, those
shared response tokens are masked too (recorded in the manifest as ``sft_mask``).

Checkpoints (``checkpoint-N``, the same schedule as Bradley–Terry runs) hold the LoRA adapter,
``v_head.safetensors`` (GRM's keys: ``v_head.summary.{0,2}.*``), the tokenizer and a manifest.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rmvalues.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn

LABEL_PAD = -100
V_HEAD_FILE = "v_head.safetensors"


@dataclass(frozen=True)
class GRMSettings:
    """The authors' GRM settings (their train_grm_*.sbatch: weight_ratio 0.01, mlp head)."""

    weight_ratio: float = 0.01
    beta: float = 0.1
    vhead_num_neurons: int = 1024
    vhead_num_layers: int = 1
    dropout: float = 0.1


def build_value_head(hidden: int, settings: GRMSettings = GRMSettings()):
    """GRM's ``v_head`` (mlp): the module layout :class:`~rmvalues.models.heads.grm.ValueHead`
    loads, so a trained head scores with the GRM head adapter."""
    from rmvalues.models.heads.grm import ValueHead

    sizes = [hidden] + [settings.vhead_num_neurons] * settings.vhead_num_layers + [1]
    return ValueHead([(b, a) for a, b in pairwise(sizes)], mlp=True)


class GRMModel:
    """A causal LM (LoRA-wrapped) and a value head: ``forward -> (fp32 logits, rewards)``."""

    def __init__(self, lm: nn.Module, v_head: nn.Module, dropout: float = 0.1) -> None:
        from torch import nn

        self.lm, self.v_head = lm, v_head
        self.dropout = nn.Dropout(dropout)

    def parameters(self):
        yield from (p for p in self.lm.parameters() if p.requires_grad)
        yield from self.v_head.parameters()

    def train(self, mode: bool = True) -> None:
        self.lm.train(mode)
        self.v_head.train(mode)
        self.dropout.train(mode)

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        import torch

        out = self.lm(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True,
                      use_cache=False)
        hidden = out.hidden_states[-1].float()
        last = attention_mask.sum(dim=-1) - 1  # right padding: the last real token
        values = self.v_head(self.dropout(hidden)).squeeze(-1)
        return out.logits.float(), values[torch.arange(len(values)), last]


def sequence_logps(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Sum of log p(label_t | < t) over unmasked labels (GRM's ``get_batch_logps``)."""
    import torch

    labels = labels[:, 1:].clone()
    logits = logits[:, :-1, :]
    mask = labels != LABEL_PAD
    labels[~mask] = 0
    per_token = torch.gather(logits.log_softmax(-1), 2, labels.unsqueeze(2)).squeeze(2)
    return (per_token * mask).sum(-1)


def grm_loss(logits: torch.Tensor, rewards: torch.Tensor, labels: torch.Tensor, *,
             weight_ratio: float = 0.01, beta: float = 0.1) -> torch.Tensor:
    """The GRM loss of an interleaved batch (chosen at even rows, rejected at odd rows)."""
    import torch.nn.functional as F

    chosen, rejected = rewards[0::2], rewards[1::2]
    bt = -F.logsigmoid(chosen - rejected).mean()
    if weight_ratio <= 0:
        return bt
    sft = -F.logsigmoid(beta * sequence_logps(logits, labels)[0::2]).mean()
    return weight_ratio * sft + (1 - weight_ratio) * bt


def reference_grm_loss(logits, rewards, labels, *, weight_ratio: float = 0.01,
                       beta: float = 0.1) -> float:
    """The same loss pair by pair with plain Python sums (the obviously-correct path)."""
    import math

    total_bt = total_sft = 0.0
    n = len(rewards) // 2
    for i in range(n):
        c, r = float(rewards[2 * i]), float(rewards[2 * i + 1])
        total_bt += math.log1p(math.exp(-(c - r)))
        logp = 0.0
        row, lab = logits[2 * i], labels[2 * i]
        for t in range(1, len(lab)):
            if int(lab[t]) == LABEL_PAD:
                continue
            z = [float(v) for v in row[t - 1]]
            m = max(z)
            logp += z[int(lab[t])] - m - math.log(sum(math.exp(v - m) for v in z))
        total_sft += math.log1p(math.exp(-beta * logp))
    bt, sft = total_bt / n, total_sft / n
    return bt if weight_ratio <= 0 else weight_ratio * sft + (1 - weight_ratio) * bt


def response_labels(chosen: Sequence[int], rejected: Sequence[int]) -> list[int]:
    """``chosen`` with its prompt (the common prefix with ``rejected``) masked."""
    n = 0
    for a, b in zip(chosen, rejected):
        if a != b:
            break
        n += 1
    return [LABEL_PAD] * n + list(chosen[n:])


def collate(pairs: Sequence[tuple[list[int], list[int]]], pad_id: int):
    """Interleaved, right-padded batch: ``input_ids, attention_mask, labels``."""
    import torch

    rows, labels = [], []
    for chosen, rejected in pairs:
        rows += [chosen, rejected]
        labels += [response_labels(chosen, rejected), [LABEL_PAD] * len(rejected)]
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    lab = torch.full((len(rows), width), LABEL_PAD, dtype=torch.long)
    for i, (row, target) in enumerate(zip(rows, labels)):
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
        lab[i, : len(target)] = torch.tensor(target)
    return ids, mask, lab


def train_grm_reward_model(
    base: Any,
    data: Any,
    out: str | Path,
    config: Any = None,
    *,
    settings: GRMSettings = GRMSettings(),
    every: int | None = None,
    size: int | None = None,
    data_config: str | None = None,
    gguf_file: str | None = None,
    chat_template: str | None = None,
    device: str | None = None,
):
    """Train a GRM-objective LoRA reward model (see the module docstring) into ``out``."""
    import torch
    from peft import LoraConfig, TaskType, get_peft_model

    from rmvalues.io import staged_folder
    from rmvalues.store.manifest import build_manifest, write_manifest
    from rmvalues.store.shards import check_writable
    from rmvalues.training.config import TrainConfig
    from rmvalues.training.data import load_preference_data
    from rmvalues.training.pad import apply_pad_policy
    from rmvalues.training.trainer import (
        CHECKPOINT_PREFIX,
        MANIFEST_NAME,
        BaseModel,
        TrainResult,
        checkpoint_dirs,
        load_base_lm,
        load_base_tokenizer,
        pin_base,
    )

    config = config or TrainConfig()
    if not isinstance(base, BaseModel):
        base = BaseModel(str(base), gguf_file=gguf_file, chat_template=chat_template)
    final = check_writable(out, create=False)
    if checkpoint_dirs(final, complete=False):
        raise InputError(f"{final} already holds checkpoints; GRM runs do not resume, use a new "
                         "--out folder.")
    # No resume: the run is written in a staged folder and swapped in whole when it finishes, so
    # a refused or crashed run leaves nothing behind.
    with staged_folder(final, "rm-train-run") as stage:
        started = time.perf_counter()
        base = pin_base(base)
        tokenizer = load_base_tokenizer(base)
        pairs = load_preference_data(data, tokenizer, every=every, size=size, seed=config.seed,
                                     max_length=config.max_length, config=data_config,
                                     chat_template=base.chat_template)
        if len(pairs) < 1:
            raise InputError("no preference pairs to train on.")
        torch.manual_seed(config.seed)
        lm = load_base_lm(base, dtype="float32")
        pad = apply_pad_policy(tokenizer, lm, config.pad_token)
        lora = LoraConfig(task_type=TaskType.CAUSAL_LM, r=config.lora_r, lora_alpha=config.lora_alpha,
                          lora_dropout=config.lora_dropout, target_modules=list(config.target_modules),
                          bias="none")
        lm = get_peft_model(lm, lora)
        lm.peft_config["default"].base_model_name_or_path = ""
        v_head = build_value_head(int(lm.config.hidden_size), settings)
        if device:
            lm.to(device)
            v_head.to(device)
        model = GRMModel(lm, v_head, settings.dropout)
        batch = config.per_device_train_batch_size
        accumulate = config.gradient_accumulation_steps
        per_epoch = max(1, len(pairs) // (batch * accumulate))
        total = config.max_steps if config.max_steps > 0 else int(per_epoch * config.num_train_epochs)
        optimizer = torch.optim.AdamW(list(model.parameters()), lr=config.learning_rate)
        warmup = max(1, int(config.warmup_ratio * total))
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: min(1.0, (s + 1) / warmup))
        schedule = config.checkpoint_schedule()
        save_at = set(schedule.steps(total))
        fields = {"objective": "grm", "grm": settings.__dict__, "base": base.to_dict(), "pad": pad,
                  "config": config.to_dict(), "data": pairs.provenance(),
                  "sft_mask": "common prefix of chosen and rejected ids"}
        write_manifest(stage / MANIFEST_NAME, build_manifest("rm-train-run", **fields, status="running"))

        def save(step: int) -> None:
            from safetensors.torch import save_file

            from rmvalues.training.trainer import save_added_embeddings

            folder = stage / f"{CHECKPOINT_PREFIX}{step}"
            lm.save_pretrained(str(folder))
            save_added_embeddings(lm, pad, folder)
            save_file({f"v_head.{k}": v.detach().cpu().contiguous()
                       for k, v in v_head.state_dict().items()}, str(folder / V_HEAD_FILE))
            tokenizer.save_pretrained(str(folder))
            write_manifest(folder / MANIFEST_NAME, build_manifest(
                "rm-train-checkpoint", step=step, total_steps=total, **fields))

        generator = torch.Generator().manual_seed(config.seed)
        order: list[int] = []
        history = []
        dev = device or "cpu"
        if 0 in save_at:
            save(0)
        model.train()
        for step in range(1, total + 1):
            optimizer.zero_grad()
            for _ in range(accumulate):
                if len(order) < batch:
                    order += torch.randperm(len(pairs), generator=generator).tolist()
                chosen = [order.pop(0) for _ in range(batch)]
                ids, mask, labels = collate([(pairs.chosen_ids[i], pairs.rejected_ids[i])
                                             for i in chosen], pad["pad_token_id"])
                logits, rewards = model(ids.to(dev), mask.to(dev))
                loss = grm_loss(logits, rewards, labels.to(dev), weight_ratio=settings.weight_ratio,
                                beta=settings.beta) / accumulate
                loss.backward()
            torch.nn.utils.clip_grad_norm_(list(model.parameters()), config.max_grad_norm)
            optimizer.step()
            scheduler.step()
            history.append({"step": step, "loss": float(loss.detach()) * accumulate})
            if step in save_at:
                save(step)
        steps = list(checkpoint_dirs(stage))
        write_manifest(stage / MANIFEST_NAME, build_manifest(
            "rm-train-run", **fields, status="finished", total_steps=total, checkpoints=steps,
            log_history=history))
        summary = (f"trained {total} GRM step(s) on {len(pairs):,} pairs in "
                   f"{time.perf_counter() - started:.1f}s; {len(steps)} checkpoints -> {final}")
        return TrainResult(out=final, steps=steps, total_steps=total, resumed_from=None,
                           summary=summary, log_history=history, model=model, tokenizer=tokenizer)


class GRMCheckpointModels:
    """A GRM run's checkpoints as reward models for ``sweep`` (the interface of
    :class:`rmvalues.training.sweep.CheckpointModels`): the base causal LM with the checkpoint's
    LoRA merged, its body as the backbone, and the saved value head through the GRM head adapter."""

    def __init__(self, train_dir: str | Path, *, device: str | None = None,
                 dtype: str | None = None, name: str | None = None) -> None:
        from rmvalues.models.loading import default_device
        from rmvalues.training.sweep import list_checkpoints
        from rmvalues.training.trainer import BaseModel

        self.train_dir = Path(train_dir)
        self.checkpoints = list_checkpoints(self.train_dir)
        self.name = name or self.train_dir.name
        self.device = device or default_device()
        self.dtype = dtype
        self.base = BaseModel(**self.checkpoints[0].fields["base"])

    def reward_model(self, checkpoint):
        from peft import PeftModel
        from safetensors.torch import load_file

        from rmvalues.models.heads.grm import GRMValueHead
        from rmvalues.models.loading import torch_dtype
        from rmvalues.models.tokenizers import load_tokenizer
        from rmvalues.training.pad import apply_pad_policy
        from rmvalues.training.sweep import _body, reward_model_from_parts
        from rmvalues.training.trainer import load_added_embeddings, load_base_lm

        if isinstance(checkpoint, int):
            matches = [c for c in self.checkpoints if c.step == checkpoint]
            if not matches:
                raise InputError(f"{self.train_dir} has no checkpoint at step {checkpoint}.")
            checkpoint = matches[0]
        tokenizer = load_tokenizer(checkpoint.path)
        # auto resolves without the checkpoint's published dtype, as this sweep always has
        lm = load_base_lm(self.base, dtype=torch_dtype(self.dtype, device=self.device),
                          device=self.device)
        apply_pad_policy(tokenizer, lm, record=checkpoint.fields["pad"])
        load_added_embeddings(lm, checkpoint.path)
        lm = PeftModel.from_pretrained(lm, str(checkpoint.path), is_trainable=False)
        lm = lm.merge_and_unload().to(self.device).eval()
        state = load_file(str(checkpoint.path / V_HEAD_FILE))
        head = GRMValueHead.from_checkpoint(lm.config, state).to(self.device).eval()
        return reward_model_from_parts(_body(lm), head, tokenizer, name=self.name,
                                       source=str(checkpoint.path), step=checkpoint.step,
                                       run_key=checkpoint.fields.get("run_key"))
