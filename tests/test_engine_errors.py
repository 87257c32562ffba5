"""Bad input gives one clear error and leaves nothing partial; OOM halving; --verify; the CLI."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest
import torch

from _engine_models import tiny_rm, tiny_rm_dir
from rmvalues.api import score
from rmvalues.cli import main
from rmvalues.engines.score import Engine
from rmvalues.errors import InputError, ModelError, ScoreError, StoreError, TemplateError
from rmvalues.models.heads.sequence_classification import SequenceClassificationHead
from rmvalues.models.loading import load_reward_model

PROMPTS = {"only": "Which single word describes you best?"}


def no_outputs(out):
    return [p for p in out.rglob("*") if p.is_file()] == []


def test_unknown_model_dir_and_hub_id(tmp_path, monkeypatch):
    with pytest.raises(ModelError, match="no such directory"):
        load_reward_model(tmp_path / "missing")
    with pytest.raises(ModelError, match="no such directory"):
        load_reward_model("./not/a/model")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    with pytest.raises(ModelError, match="could not be fetched from the Hugging Face hub"):
        load_reward_model("nobody-here/no-such-reward-model")


def test_pickled_weights_are_refused(tmp_path):
    folder = tmp_path / "pickled"
    folder.mkdir()
    shutil.copy(tiny_rm_dir("llama") / "config.json", folder)
    (folder / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(ModelError, match="pickled weights"):
        load_reward_model(folder)


def test_checkpoint_without_score_head(tmp_path):
    folder = tmp_path / "lm"
    shutil.copytree(tiny_rm_dir("llama"), folder)
    from safetensors.torch import load_file, save_file

    weights = load_file(folder / "model.safetensors")
    del weights["score.weight"]
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ModelError, match="no 'score.weight'"):
        load_reward_model(folder, device="cpu")


def test_empty_candidates_fail_before_loading(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n")
    out = tmp_path / "out"
    cases = {"[]": ([], r"the candidate list is empty; give at least one candidate"),
             "file": (f"file:{empty}", r"candidate set 'file:.*empty\.txt' is empty"),
             "unknown": ("nonsense:x", r"unknown candidate set 'nonsense:x'; use vocab")}
    for candidates, message in cases.values():
        with pytest.raises(InputError, match=message):
            score(tmp_path / "no-model", PROMPTS, candidates, out)  # never reaches the model
    assert no_outputs(out)
    with pytest.raises(InputError, match="the prompt set is empty; give at least one prompt"):
        score(tiny_rm("llama"), {}, "vocab:0-9", out)


def test_output_dir_not_writable(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="not writable"):
        score(tiny_rm("llama"), PROMPTS, "vocab:0-9", blocker / "out")


class NanHead(SequenceClassificationHead):
    """Returns NaN/inf for candidates whose first hidden feature is positive."""

    def forward(self, last_hidden, prompt_hidden=None):
        out = super().forward(last_hidden)
        out = torch.where(last_hidden[:, 0] > 0, torch.full_like(out, float("nan")), out)
        return torch.where(last_hidden[:, 1] > 1.5, torch.full_like(out, float("inf")), out)


def test_nan_scores_name_the_candidates_and_write_nothing(tmp_path):
    rm = tiny_rm("llama")
    broken = dataclasses.replace(rm, head=NanHead(rm.head.weight.data))
    with pytest.raises(ScoreError, match=r"candidate score\(s\) hold non-finite values \(.+\): id \d+ ") as err:
        score(broken, PROMPTS, "vocab:0-199", tmp_path)
    assert "nan" in str(err.value) and "Nothing was written" in str(err.value)
    assert no_outputs(tmp_path)


def test_out_of_memory_halves_the_batch(monkeypatch):
    rm = tiny_rm("llama")
    from rmvalues.engines.candidates import vocabulary_candidates
    from rmvalues.models.chat import split_chat

    split = split_chat(rm.tokenizer, PROMPTS["only"])
    candidates = vocabulary_candidates(rm.tokenizer, range(100))
    expected = Engine(rm, batch_size=100).score_prompt(split, candidates)
    original = Engine._continue_batch

    def small_memory(self, state, batch, *rest):
        if len(batch) > 16:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return original(self, state, batch, *rest)

    monkeypatch.setattr(Engine, "_continue_batch", small_memory)
    engine = Engine(rm, batch_size=64)
    got = engine.score_prompt(split, candidates)
    assert engine.runner.batch_size == 16
    assert np.abs(got - expected).max() <= 1e-5


def test_verify_failure_is_reported(tmp_path, monkeypatch):
    from rmvalues.engines import reference

    real = reference.reference_score
    monkeypatch.setattr(reference, "reference_score", lambda rm, conv, *pool: real(rm, conv, *pool) + 0.5)
    with pytest.raises(ScoreError, match="--verify failed"):
        score(tiny_rm("llama"), PROMPTS, "vocab:0-49", tmp_path, verify=5)
    assert not (tmp_path / "llama-0.parquet").exists()


def test_cli_scores_and_reports_errors_in_one_line(tmp_path, capsys):
    folder = tmp_path / "no-template"
    shutil.copytree(tiny_rm_dir("llama"), folder)
    (folder / "chat_template.jinja").unlink(missing_ok=True)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    prompts = tmp_path / "prompts.yaml"
    prompts.write_text("name: two\nprompts:\n  - id: a\n    text: Best word?\n"
                       "  - id: b\n    text: Worst word?\n")
    args = ["score", "--model", str(folder), "--prompts", str(prompts), "--candidates",
            "vocab:0-31", "--out", str(tmp_path / "out"), "--quiet", "--device", "cpu"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "no chat template" in err and "--chat-template" in err
    from rmvalues.assets import asset_path

    template = asset_path("chat-templates", "meta-llama-Llama-3.1-8B-Instruct.jinja")
    assert main([*args, "--chat-template", str(template), "--verify", "4"]) == 0
    out = capsys.readouterr().out
    assert "2 prompt(s) x 32 token candidates = 64 scores" in out and "verify" in out
    assert (tmp_path / "out" / "no-template.parquet").exists()
    with pytest.raises(TemplateError, match="no chat template"):  # the CLI gave exit code 2
        score(folder, {"a": "x"}, "vocab:0-3", None)
