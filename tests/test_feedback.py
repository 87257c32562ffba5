"""Feedback on long work (issue 17, findings 7 and 9): progress when output is redirected, a plan
time estimate, the CPU training preset, the --data format and our own model card."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from _audit_models import planted_rm_dir
from _train_models import tiny_base_dir
from rmvalues.cli import main
from rmvalues.errors import InputError
from rmvalues.runs.progress import Progress, format_seconds
from rmvalues.training.config import TrainConfig

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "preferences.jsonl"


def test_progress_prints_lines_when_redirected():
    stream = io.StringIO()
    bar = Progress(True, 10, "scoring rm", unit="cand", stream=stream, interval=0)
    bar.advance(4)
    bar.advance(6)
    bar.close()
    lines = stream.getvalue().splitlines()
    assert lines[0] == "scoring rm: started 0/10 cand (0%)"
    assert lines[1].startswith("scoring rm: at 4/10 cand (40%), ") and "ETA" in lines[1]
    assert lines[-1].startswith("scoring rm: done 10/10 cand (100%)") and "ETA" not in lines[-1]
    quiet = io.StringIO()
    Progress(False, 10, "x", stream=quiet).close()
    assert quiet.getvalue() == ""
    assert format_seconds(3725) == "1h02m05s" and format_seconds(65) == "1m05s"


def test_progress_restarts_for_the_next_piece_of_work():
    """One bar over several searches: each restart closes the last count and starts from zero."""
    stream = io.StringIO()
    bar = Progress(True, 0, "search", unit="step", stream=stream, interval=60, announce=False)
    bar.restart("p max", 3)
    bar.advance(3)
    bar.restart("p min", 2)
    bar.postfix = "best +1.0000"
    bar.advance(2)
    bar.close()
    lines = stream.getvalue().splitlines()
    assert lines[0] == "p max: started 0/3 step (0%)"
    assert lines[1].startswith("p max: done 3/3 step (100%)")
    assert lines[2] == "p min: started 0/2 step (0%)"
    assert lines[3].startswith("p min: done 2/2 step (100%)") and lines[3].endswith("best +1.0000")
    assert len(lines) == 4


def test_score_reports_progress_to_a_redirected_stderr(capsys):
    from rmvalues.api import score

    score(str(planted_rm_dir(1.0)), {"a": "Best thing?"}, ["love", "war"], device="cpu", progress=True)
    err = capsys.readouterr().err
    assert "scoring planted-1.0-0-32: started 0/2 cand" in err
    assert "scoring planted-1.0-0-32: done 2/2 cand (100%)" in err


def test_plan_estimates_the_time_from_a_probe(tmp_path, capsys):
    assert main(["plan", "--model", str(planted_rm_dir(1.0)), "--out", str(tmp_path / "run"),
                 "--candidates", "lexicon:big-two-nouns", "--device", "cpu", "--estimate"]) == 0
    out = capsys.readouterr().out
    assert "14,202 of 14,202 scores" in out
    assert "estimate: " in out and "for 14,202 scores left (probe: 256 candidates at" in out


def test_vocab_ranges_include_their_end():
    from rmvalues.engines.candidates import resolve_candidates
    from rmvalues.models.tokenizers import bundled_tokenizer

    assert len(resolve_candidates("vocab:0-9", bundled_tokenizer("llama3"))) == 10
    import inspect

    from rmvalues.cli.score import score_command

    # the help of --candidates (cli/_options.CandidatesOption, shared by score and plan)
    option = inspect.signature(score_command).parameters["candidates"].annotation.__metadata__[0]
    assert "both included" in option.help


def test_cpu_preset_and_unknown_preset():
    cpu = TrainConfig.preset("cpu-small")
    assert cpu.learning_rate == 1e-3 and cpu.max_steps == 60 and cpu.logging_steps == 1
    assert cpu.extra == {"gradient_checkpointing": False}
    assert cpu.reward_config("/tmp/x", use_cpu=True).gradient_checkpointing is False
    assert TrainConfig.preset("paper") == TrainConfig()
    with pytest.raises(InputError, match="unknown training preset 'fast'; choose one of"):
        TrainConfig.preset("fast")


def test_cli_train_with_the_cpu_preset_the_example_data_progress_and_model_card(tmp_path, capsys):
    out = tmp_path / "rm1"
    rc = main(["train", "--base", str(tiny_base_dir()), "--data", str(EXAMPLE), "--out", str(out),
               "--preset", "cpu-small", "--max-steps", "2", "--device", "cpu"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "training rm1: started 0/2 step" in captured.err
    assert "training rm1: done 2/2 step (100%)" in captured.err and "loss " in captured.err
    manifest = json.loads((out / "manifest.json").read_text())
    config = manifest["fields"]["config"]
    assert config["learning_rate"] == 1e-3 and config["extra"] == {"gradient_checkpointing": False}
    card = (out / "checkpoint-2" / "README.md").read_text("utf-8")
    assert f"- **Base model**: {tiny_base_dir()}" in card and "Bradley–Terry" in card
    assert "checkpoint at optimizer step 2 of 2" in card and "preferences.jsonl: 3 pairs" in card
    assert "fine-tuned version of" not in card
    assert "training run (2 optimizer steps)" in (out / "README.md").read_text("utf-8")
