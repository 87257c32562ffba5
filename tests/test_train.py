"""Bradley–Terry LoRA training of a tiny Llama on a tiny preference set: checkpoints at step 0,
powers of two and every N, self-sufficient folders, the head reloading to identical scores, resume
after an interruption, bad input refused before training, and checkpoint sweeps equal to scoring
the merged checkpoint directly."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from _train_models import preference_records, tiny_base_dir
from rmvalues.errors import InputError, LexiconError
from rmvalues.training.config import TrainConfig

PROMPTS = {"best": "What, in one word, is the best thing?", "worst": "Name the worst thing."}
CANDIDATES = ["good", "bad", "love", "war", "kind"]
CONFIG = TrainConfig(per_device_train_batch_size=2, gradient_accumulation_steps=1,
                     num_train_epochs=1, learning_rate=1e-2, checkpoint_every=3, logging_steps=4)
STEPS = [0, 1, 2, 3, 4, 6, 8]  # 16 pairs / 2 per step = 8 steps: 0, 2^k, every 3, last


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from rmvalues.training.trainer import train_reward_model

    out = tmp_path_factory.mktemp("run")
    return train_reward_model(tiny_base_dir(), preference_records(16), out, CONFIG, device="cpu")


def test_checkpoints_on_schedule_and_self_sufficient(run) -> None:
    from rmvalues.store.manifest import read_manifest
    from rmvalues.training.trainer import checkpoint_dirs

    assert run.total_steps == 8 and run.steps == STEPS
    assert list(checkpoint_dirs(run.out)) == STEPS
    for step, folder in checkpoint_dirs(run.out).items():
        names = {p.name for p in folder.iterdir()}
        assert {"adapter_model.safetensors", "adapter_config.json", "tokenizer.json",
                "manifest.json", "added_embeddings.safetensors"} <= names, (step, names)
        if step > 0:  # resumable: optimizer, scheduler, RNG and trainer state
            assert {"optimizer.pt", "scheduler.pt", "rng_state.pth", "trainer_state.json"} <= names
        fields = read_manifest(folder / "manifest.json").fields
        assert fields["step"] == step and fields["total_steps"] == 8
        assert fields["base"]["source"] == str(tiny_base_dir())
        assert fields["config"]["lora_r"] == 32 and fields["data"]["pairs"] == 16
        # pad policy: Llama-3 has no pad token; one is added (never EOS) and recorded
        pad = fields["pad"]
        assert pad["added"] and pad["pad_token"] == "<|pad|>" and pad["pad_token_id"] == 128256
        assert pad["vocab_rows_after"] == pad["vocab_rows_before"] + 1
        config = json.loads((folder / "adapter_config.json").read_text())
        assert config["r"] == 32 and "score" in config["modules_to_save"]
    run_manifest = read_manifest(run.out / "manifest.json").fields
    assert run_manifest["status"] == "finished" and run_manifest["checkpoints"] == STEPS
    assert run.tokenizer.pad_token_id != run.tokenizer.eos_token_id
    # training moved the adapter: the loss went down on this separable toy task
    losses = [h["loss"] for h in run.log_history if "loss" in h]
    assert losses[-1] < losses[0]


def test_saved_head_reloads_to_identical_scores(run) -> None:
    from rmvalues.api import score
    from rmvalues.training.sweep import CheckpointModels, trained_reward_model

    live = score(trained_reward_model(run.model, run.tokenizer), PROMPTS, CANDIDATES).table
    reloaded = CheckpointModels(run.out, device="cpu").reward_model(run.total_steps)
    again = score(reloaded, PROMPTS, CANDIDATES).table
    np.testing.assert_array_equal(live["score"].to_numpy(), again["score"].to_numpy())
    # trained toward 'good' over 'bad' for every prompt
    for _, rows in again.groupby("prompt_id"):
        by = dict(zip(rows["candidate"], rows["score"]))
        assert by["good"] > by["bad"]


def test_sweep_of_one_checkpoint_equals_merged_model(run, tmp_path) -> None:
    from rmvalues.api import score
    from rmvalues.training.sweep import merge_checkpoint, sweep

    for step in (0, run.total_steps):
        swept = sweep(run.out, PROMPTS, CANDIDATES, steps=[step], device="cpu").table
        merged = merge_checkpoint(run.out / f"checkpoint-{step}", tmp_path / f"merged-{step}")
        direct = score(str(merged), PROMPTS, CANDIDATES, device="cpu", dtype="float32").table
        assert (swept["checkpoint"] == step).all()
        np.testing.assert_allclose(swept["score"].to_numpy(), direct["score"].to_numpy(),
                                   rtol=1e-5, atol=1e-5)
        assert list(swept["candidate"]) == list(direct["candidate"])


def test_sweep_feeds_training_dynamics(run, tmp_path) -> None:
    from rmvalues.analysis import checkpoint_units, rank_change
    from rmvalues.training.sweep import sweep

    result = sweep(run.out, PROMPTS, CANDIDATES, tmp_path / "sweep", device="cpu")
    assert result.steps == STEPS and sorted(result.table["checkpoint"].unique()) == STEPS
    assert result.path is not None and result.path.is_file()
    assert len(pd.read_parquet(result.path)) == len(STEPS) * len(PROMPTS) * len(CANDIDATES)
    lexicon = pd.DataFrame({"term": ["good", "love", "kind", "bad", "war"],
                            "category": ["Pos", "Pos", "Pos", "Neg", "Neg"]})
    units = checkpoint_units(result.table, lexicon)
    assert set(units["checkpoint"]) == set(STEPS) and set(units["category"]) == {"Pos", "Neg"}
    change = rank_change(result.table, lexicon)
    assert set(change["start"]) == {0} and set(change["end"]) == {8}
    # a second sweep reads the finished step tables back
    again = sweep(run.out, PROMPTS, CANDIDATES, tmp_path / "sweep", device="cpu")
    pd.testing.assert_frame_equal(again.table, result.table)


def test_sweep_plan_keys_are_the_loaded_checkpoints_keys(run, tmp_path) -> None:
    """Planning probes one checkpoint for all: its provenance (hence every shard key) must equal
    loading each checkpoint, or a re-run would never find its shards."""
    from rmvalues.runs import RunSpec, make_plan
    from rmvalues.runs.sweep import make_sweep_plan
    from rmvalues.training.sweep import CheckpointLoader, CheckpointModels, list_checkpoints

    models = CheckpointModels(run.out, device="cpu")
    chosen = list_checkpoints(run.out)
    spec = RunSpec.build(str(run.out), PROMPTS, CANDIDATES)
    planned = make_sweep_plan(spec, CheckpointLoader(models).probes(chosen), tmp_path)
    keys = set()
    for checkpoint in chosen:
        loaded = models.reward_model(checkpoint)
        plan = planned.plans[checkpoint.step]
        assert plan.context.rm.provenance() == loaded.provenance()
        assert [u.key for u in plan.units] == [
            u.key for u in make_plan(spec, tmp_path, rm=loaded).units]
        keys |= {u.key for u in plan.units}
    assert len(keys) == len(STEPS) * len(PROMPTS)  # every (checkpoint, prompt) its own unit
    assert planned.estimate()["remaining"] == len(keys)


def test_refused_sweep_leaves_no_folder(run, tmp_path) -> None:
    from rmvalues.training.sweep import sweep

    out = tmp_path / "deep" / "sweep"
    with pytest.raises(InputError, match="no checkpoint at step"):
        sweep(run.out, PROMPTS, CANDIDATES, out, steps=[5], device="cpu")
    with pytest.raises(LexiconError):
        sweep(run.out, PROMPTS, "lexicon:no-such-lexicon", out, device="cpu")
    assert not (tmp_path / "deep").exists()


_KILLED_RUN = """
import os, signal, sys
from transformers import TrainerCallback
sys.path.insert(0, {tests!r})
from _train_models import preference_records
from rmvalues.training.config import TrainConfig
from rmvalues.training.trainer import train_reward_model

class Kill(TrainerCallback):
    def on_save(self, args, state, control, **kwargs):
        if state.global_step == 4:
            os.kill(os.getpid(), signal.SIGKILL)  # no clean-up, as a real kill

config = TrainConfig.from_dict({config!r})
train_reward_model({base!r}, preference_records(16), {out!r}, config, device="cpu",
                   callbacks=[Kill()])
"""


def test_resume_after_a_kill_continues_from_last_checkpoint(run, tmp_path) -> None:
    import subprocess
    import sys
    from pathlib import Path

    from safetensors.torch import load_file

    from rmvalues.store.manifest import read_manifest
    from rmvalues.training.trainer import checkpoint_dirs, train_reward_model

    out = tmp_path / "killed"
    script = _KILLED_RUN.format(tests=str(Path(__file__).parent), config=CONFIG.to_dict(),
                                base=str(tiny_base_dir()), out=str(out))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert list(checkpoint_dirs(out)) == [0, 1, 2, 3, 4]
    assert read_manifest(out / "manifest.json").fields["status"] == "running"
    before = {s: (f / "manifest.json").stat().st_mtime_ns for s, f in checkpoint_dirs(out).items()}
    resumed = train_reward_model(tiny_base_dir(), preference_records(16), out, CONFIG,
                                 device="cpu")
    assert resumed.resumed_from == 4 and resumed.steps == STEPS
    assert read_manifest(out / "manifest.json").fields["resumed_from"] == 4
    # Steps up to 4 were not redone, and the steps after land where the uninterrupted run did.
    after = {s: (f / "manifest.json").stat().st_mtime_ns for s, f in checkpoint_dirs(out).items()}
    assert all(after[s] == before[s] for s in before)
    for step in (6, 8):
        a = load_file(str(run.out / f"checkpoint-{step}" / "adapter_model.safetensors"))
        b = load_file(str(out / f"checkpoint-{step}" / "adapter_model.safetensors"))
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_allclose(a[key].numpy(), b[key].numpy(), rtol=1e-5, atol=1e-6,
                                       err_msg=key)


def test_interrupted_save_is_ignored_on_resume(run, tmp_path) -> None:
    """A checkpoint whose manifest never got written (killed mid-save) is not resumed from."""
    from rmvalues.training.trainer import TrainingInterrupted, checkpoint_dirs, train_reward_model

    out = tmp_path / "partial"
    with pytest.raises(TrainingInterrupted):
        train_reward_model(tiny_base_dir(), preference_records(16), out, CONFIG, device="cpu",
                           interrupt_after=4)
    (out / "checkpoint-4" / "manifest.json").unlink()
    assert list(checkpoint_dirs(out)) == [0, 1, 2, 3]
    resumed = train_reward_model(tiny_base_dir(), preference_records(16), out, CONFIG,
                                 device="cpu")
    assert resumed.resumed_from == 3 and resumed.steps == STEPS


def test_other_settings_in_the_same_folder_are_refused(run) -> None:
    from rmvalues.training.trainer import train_reward_model

    with pytest.raises(InputError, match="other settings"):
        train_reward_model(tiny_base_dir(), preference_records(16), run.out,
                           CONFIG.replace(learning_rate=1e-3), device="cpu")


@pytest.mark.parametrize("records, message", [
    ([{"prompt": "p", "answer": "a"}], "no 'chosen' and no 'rejected'"),
    ([{"conv_A": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
       "conv_B": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "b"}],
       "conv_A_rating": 1, "conv_B_rating": 1}], "no pairs left after subsampling"),
    ([{"prompt": "word " * 300, "chosen": "a", "rejected": "b"}], "longer than max_length"),
])
def test_bad_input_fails_before_training(tmp_path, records, message) -> None:
    from rmvalues.training.trainer import train_reward_model

    out = tmp_path / "never"
    with pytest.raises(InputError, match=message):
        train_reward_model(tiny_base_dir(), records, out, CONFIG.replace(max_length=256),
                           device="cpu")
    assert not list(out.glob("checkpoint-*")) and not (out / "manifest.json").exists()


def test_cli_train_and_sweep(tmp_path, capsys) -> None:
    from rmvalues.cli import main

    data = tmp_path / "pairs.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in preference_records(4)) + "\n")
    out = tmp_path / "cli-run"
    rc = main(["train", "--base", str(tiny_base_dir()), "--data", str(data), "--out", str(out),
               "--max-steps", "2", "--device", "cpu", "--set", "per_device_train_batch_size=2",
               "--set", "gradient_accumulation_steps=1"])
    assert rc == 0, capsys.readouterr().err
    assert "2 step(s)" in capsys.readouterr().out
    prompts = tmp_path / "prompts.yaml"
    prompts.write_text("name: two\nprompts:\n  - {id: a, text: 'Best thing?'}\n"
                       "  - {id: b, text: 'Worst thing?'}\n")
    words = tmp_path / "words.txt"
    words.write_text("good\nbad\n")
    rc = main(["sweep", str(out), "--out", str(tmp_path / "sw"), "--prompts", str(prompts),
               "--candidates", f"file:{words}", "--device", "cpu", "--quiet"])
    assert rc == 0, capsys.readouterr().err
    assert "swept 3 checkpoint(s)" in capsys.readouterr().out
    assert main(["train", "--base", str(tiny_base_dir()), "--data", str(tmp_path / "no.jsonl"),
                 "--out", str(tmp_path / "x")]) == 2
    assert "no such file" in capsys.readouterr().err
