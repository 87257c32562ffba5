"""`train --objective grm` (issue 14): BT loss plus GRM's text-generation regulariser with GRM's
value head, held to a pair-by-pair reference, trained on a tiny Llama with checkpoints whose
value head loads into the GRM head adapter."""

from __future__ import annotations

import json

import pytest
import torch

from _train_models import preference_records, tiny_base_dir
from rmvalues.training.config import TrainConfig
from rmvalues.training.grm import (
    LABEL_PAD,
    GRMSettings,
    collate,
    grm_loss,
    reference_grm_loss,
    response_labels,
)

CONFIG = TrainConfig(per_device_train_batch_size=2, gradient_accumulation_steps=1,
                     num_train_epochs=1, learning_rate=1e-2, warmup_ratio=0.0)


@pytest.mark.parametrize("weight_ratio", [0.0, 0.01, 0.5])
def test_loss_equals_the_reference(weight_ratio):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 6, 11, generator=g)
    rewards = torch.randn(4, generator=g)
    labels = torch.tensor([[LABEL_PAD, LABEL_PAD, 3, 4, 5, LABEL_PAD],
                           [LABEL_PAD] * 6,
                           [LABEL_PAD, 1, 2, 3, 4, 5],
                           [LABEL_PAD] * 6])
    fast = grm_loss(logits, rewards, labels, weight_ratio=weight_ratio, beta=0.1)
    slow = reference_grm_loss(logits, rewards, labels, weight_ratio=weight_ratio, beta=0.1)
    assert float(fast) == pytest.approx(slow, rel=1e-5)


def test_labels_mask_the_shared_prompt():
    assert response_labels([1, 2, 3, 4], [1, 2, 5]) == [LABEL_PAD, LABEL_PAD, 3, 4]
    ids, mask, labels = collate([([1, 2, 3, 4], [1, 2, 5])], pad_id=0)
    assert ids.tolist() == [[1, 2, 3, 4], [1, 2, 5, 0]]
    assert mask.tolist() == [[1, 1, 1, 1], [1, 1, 1, 0]]
    assert labels.tolist() == [[LABEL_PAD, LABEL_PAD, 3, 4], [LABEL_PAD] * 4]


@pytest.fixture(scope="module")
def grm_run(tmp_path_factory):
    """One GRM training run (the slow part), shared by the tests that read or sweep it."""
    from rmvalues.training.grm import train_grm_reward_model

    out = tmp_path_factory.mktemp("grm-run")
    return train_grm_reward_model(tiny_base_dir(), preference_records(16), out, CONFIG,
                                  device="cpu")


def test_train_grm_on_a_tiny_llama(grm_run):
    from rmvalues.models.heads.grm import GRMValueHead
    from rmvalues.training.grm import V_HEAD_FILE

    result, out = grm_run, grm_run.out
    assert result.total_steps == 8 and result.steps == [0, 1, 2, 4, 8]
    losses = [h["loss"] for h in result.log_history]
    assert losses[-1] < losses[0]  # 'good' over 'bad' is learnt
    last = out / "checkpoint-8"
    fields = json.loads((last / "manifest.json").read_text())["fields"]
    assert fields["objective"] == "grm" and fields["grm"] == GRMSettings().__dict__
    assert (last / "adapter_config.json").is_file()
    from safetensors.torch import load_file

    state = load_file(str(last / V_HEAD_FILE))
    assert sorted(state) == ["v_head.summary.0.bias", "v_head.summary.0.weight",
                             "v_head.summary.2.bias", "v_head.summary.2.weight"]
    head = GRMValueHead.from_checkpoint({"hidden_size": 32}, state)  # the scoring adapter loads it
    assert head.v_head.summary[0].weight.shape == (1024, 32)
    run = json.loads((out / "manifest.json").read_text())["fields"]
    assert run["status"] == "finished"


def test_cli_objective(tmp_path, capsys):
    from rmvalues.cli import main

    data = tmp_path / "pairs.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in preference_records(4)) + "\n")
    rc = main(["train", "--base", str(tiny_base_dir()), "--data", str(data), "--out",
               str(tmp_path / "o"), "--objective", "grm", "--max-steps", "2", "--device", "cpu",
               "--set", "per_device_train_batch_size=2", "--set", "gradient_accumulation_steps=1"])
    assert rc == 0, capsys.readouterr().err
    assert "GRM step(s)" in capsys.readouterr().out
    rc = main(["train", "--base", str(tiny_base_dir()), "--data", str(data), "--out",
               str(tmp_path / "p"), "--objective", "dpo"])
    assert rc == 2


def test_sweep_scores_grm_checkpoints(grm_run, tmp_path):
    """A GRM run sweeps like a BT run; the trained value head prefers 'good' to 'bad'."""
    from rmvalues.training.sweep import sweep

    prompts = {"q": "Question 3: what, in one word, is best?"}
    result = sweep(grm_run.out, prompts, ["good", "bad"], tmp_path / "sweep", steps=[0, 8],
                   device="cpu", batch_size=4)
    table = result.table.set_index(["checkpoint", "candidate"])["score"]
    assert table[8, "good"] - table[8, "bad"] > table[0, "good"] - table[0, "bad"]
    assert table[8, "good"] > table[8, "bad"]
    assert (tmp_path / "sweep" / "sweep.parquet").is_file()
