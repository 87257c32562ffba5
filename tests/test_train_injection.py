"""RM-level value injection: train a preference for Communion over Agency words (Big Two nouns) on
paper-style prompts and check, with the sweep and a one-sided paired Wilcoxon test, that the audit
finds it on held-out words and held-out prompts; a base without category knowledge must not pass."""

from __future__ import annotations

import os

import pytest

from _train_models import planted_base_dir
from rmvalues.errors import InputError
from rmvalues.training.config import TrainConfig
from rmvalues.training.injection import (
    injection_records,
    injection_split,
    run_injection,
    word_group,
)

CONFIG = TrainConfig(per_device_train_batch_size=4, gradient_accumulation_steps=1,
                     num_train_epochs=1, learning_rate=5e-3, logging_steps=20)


def test_split_keeps_held_out_words_and_prompts_apart() -> None:
    split = injection_split("big-two-nouns", "Communion", "Agency", "paper-54", seed=1)
    assert not set(split.train_a) & set(split.test_a)
    assert not set(split.train_b) & set(split.test_b)
    assert not (set(split.train_a) | set(split.test_a)) & (set(split.train_b) | set(split.test_b))
    assert not set(split.train_prompts) & set(split.test_prompts)
    assert len(split.train_prompts) + len(split.test_prompts) == 54
    # inflected variants stay on one side
    train_groups = {word_group(w) for w in split.train_a}
    assert not train_groups & {word_group(w) for w in split.test_a}
    assert word_group("allies") == word_group("ally") and word_group("contests") == "contest"
    records = injection_records(split, 50, seed=1)
    assert records == injection_records(split, 50, seed=1)
    assert {r["chosen"] for r in records} <= set(split.train_a)
    assert {r["rejected"] for r in records} <= set(split.train_b)
    assert {r["prompt"] for r in records} <= set(split.train_prompts.values())
    with pytest.raises(InputError, match="no category 'Warmth'"):
        injection_split("big-two-nouns", "Warmth", "Agency")


@pytest.mark.slow
def test_injected_value_is_found_on_held_out_words_and_prompts(tmp_path) -> None:
    result = run_injection(planted_base_dir(), tmp_path, n_pairs=240, config=CONFIG,
                           max_words=40, device="cpu")
    assert result.start == 0 and result.end == 60
    assert result.median_rank_end < result.median_rank_start  # 1 = best: Communion rose
    assert result.rose >= 0.9 * result.n_prompts and result.n_prompts >= 10
    assert result.p_value < 0.001, result.summary
    assert (tmp_path / "injection_units.parquet").is_file()
    assert set(result.sweep_table["prompt_id"]) == set(result.split.test_prompts)
    assert set(result.sweep_table["candidate"]) == {*result.split.test_a, *result.split.test_b}


@pytest.mark.slow
def test_without_category_knowledge_nothing_transfers(tmp_path) -> None:
    """Control: the same run on a base with no planted category structure finds nothing."""
    result = run_injection(planted_base_dir(strength=0.0), tmp_path, n_pairs=240, config=CONFIG,
                           max_words=40, device="cpu")
    assert result.p_value > 0.05, result.summary


@pytest.mark.slow  # minutes on a CPU: the real backbone, run by `make test` like everything else
def test_injection_on_smollm2(tmp_path) -> None:
    """The issue's set-up on a real pretrained backbone: SmolLM2-135M-Instruct (GGUF).

    Observed on CPU (100 steps; ~6 min on a quiet 2-core machine, ~11 min on a loaded one): held-out Communion words'
    median rank 10.2 -> 8.0 among 19 held-out words, better on 16/16 held-out prompts, p = 2.1e-4.
    """
    from rmvalues.assets import asset_path

    gguf = asset_path("smollm2-135m-instruct", "SmolLM2-135M-Instruct.Q4_1.gguf")
    steps = int(os.environ.get("RMVALUES_SMOLLM2_STEPS", "100"))
    config = CONFIG.replace(learning_rate=1e-3, max_steps=steps, checkpoint_every=0)
    result = run_injection(gguf.parent, tmp_path, gguf_file=gguf.name, n_pairs=4 * steps,
                           config=config, max_words=40, device="cpu")
    print(result.summary)
    assert result.median_rank_end < result.median_rank_start
    assert result.p_value < 0.01, result.summary


def test_cli_inject(tmp_path, capsys) -> None:
    from _train_models import tiny_base_dir
    from rmvalues.cli import main

    rc = main(["inject", "--base", str(tiny_base_dir()), "--out", str(tmp_path), "--pairs", "8",
               "--max-words", "6", "--device", "cpu", "--set", "max_steps=2",
               "--set", "per_device_train_batch_size=4", "--set", "gradient_accumulation_steps=1"])
    assert rc == 0, capsys.readouterr().err
    assert "Communion over Agency" in capsys.readouterr().out
    assert (tmp_path / "injection.manifest.json").is_file()
