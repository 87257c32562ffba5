"""Training commands write --out only once their inputs are checked: a refused run leaves no folder,
a crashed one-shot run (GRM, validate-metrics) leaves nothing, and a folder in use by another run
is refused untouched."""

from __future__ import annotations

import json
import socket

import pytest

from _train_models import preference_records, tiny_base_dir
from rmvalues.errors import InputError, StoreError
from rmvalues.training.config import TrainConfig

CONFIG = TrainConfig(per_device_train_batch_size=2, gradient_accumulation_steps=1, max_steps=2,
                     learning_rate=1e-2, lora_r=4, lora_alpha=8)


def _leftovers(parent):
    return sorted(p.name for p in parent.iterdir()) if parent.exists() else []


def test_a_refused_run_creates_no_folder(tmp_path):
    from rmvalues.training.trainer import train_reward_model

    out = tmp_path / "runs" / "bt"
    with pytest.raises(InputError, match="no 'chosen'"):
        train_reward_model(tiny_base_dir(), [{"prompt": "p", "answer": "a"}], out, CONFIG,
                           device="cpu")
    assert _leftovers(tmp_path) == []  # not even the parent, nor a lock file


def test_a_folder_in_use_is_refused_untouched(tmp_path):
    """Another live process holds the folder's lock: the run stops before writing anything."""
    from rmvalues.io import lock_path
    from rmvalues.training.trainer import train_reward_model

    out = tmp_path / "bt"
    lock = lock_path(out)
    lock.write_text(json.dumps({"pid": 1, "host": socket.gethostname(), "started": "now"}))
    with pytest.raises(StoreError, match="in use by another rmvalues run"):
        train_reward_model(tiny_base_dir(), preference_records(4), out, CONFIG, device="cpu")
    assert not out.exists() and lock.is_file()


def test_a_crashed_grm_run_leaves_nothing(tmp_path, monkeypatch):
    from rmvalues.training import grm

    calls = []

    def crash(*args, **kwargs):
        calls.append(1)
        if len(calls) > 1:  # after the first step (and checkpoint 0, 1) were written
            raise RuntimeError("killed mid-run")
        return original(*args, **kwargs)

    original = grm.grm_loss
    monkeypatch.setattr(grm, "grm_loss", crash)
    out = tmp_path / "grm"
    with pytest.raises(RuntimeError, match="killed mid-run"):
        grm.train_grm_reward_model(tiny_base_dir(), preference_records(4), out, CONFIG,
                                   device="cpu")
    assert len(calls) == 2 and _leftovers(tmp_path) == []
    monkeypatch.setattr(grm, "grm_loss", original)
    result = grm.train_grm_reward_model(tiny_base_dir(), preference_records(4), out, CONFIG,
                                        device="cpu")
    assert result.out == out and sorted(p.name for p in out.iterdir()) == [
        "checkpoint-0", "checkpoint-1", "checkpoint-2", "manifest.json"]
    assert _leftovers(tmp_path) == ["grm"]


def test_cli_refusals_leave_no_folder(tmp_path, capsys):
    from rmvalues.cli import main

    data = tmp_path / "pairs.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in preference_records(4)) + "\n")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "p", "answer": "a"}) + "\n")
    common = ["train", "--base", str(tiny_base_dir()), "--max-steps", "1", "--device", "cpu"]
    out = tmp_path / "out"
    assert main([*common, "--data", str(data), "--out", str(out), "--objective", "dpo"]) == 2
    assert "choose bt or grm" in capsys.readouterr().err
    assert main([*common, "--data", str(bad), "--out", str(out), "--quiet",
                 "--counterbalance", "big-two-nouns"]) == 2
    capsys.readouterr()
    assert main([*common, "--data", str(bad), "--out", str(out), "--quiet", "--seeds", "1,2"]) == 2
    assert "no 'chosen'" in capsys.readouterr().err
    assert not out.exists() and not any(p.name.startswith(".out") for p in tmp_path.iterdir())
