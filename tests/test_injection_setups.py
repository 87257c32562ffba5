"""Fig A3 as the authors ran it (issue 14): their set-up shipped as data and the default of
validate-metrics, the current recipe as an option, and the Fig A3 table and figure."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from _train_models import tiny_base_dir
from rmvalues.errors import InputError
from rmvalues.training.injection_setups import authors_setup, injection_contrast, resolve_setup
from rmvalues.training.lm_injection import LMInjectionConfig, positive_prompts, validate_metrics


def test_shipped_setup_holds_the_authors_values(shared_dir):
    theirs = yaml.safe_load((shared_dir / "paper-data" / "fig-a3-setup.yaml").read_text())
    setup = authors_setup()
    assert setup.base_model == theirs["base_model"] == "google/gemma-2-2b"
    assert setup.template == theirs["template"]
    assert list(setup.words) == theirs["injected_words"]
    assert list(setup.train.values()) == theirs["train_questions"] and len(setup.train) == 36
    assert setup.held_out == theirs["test_prompts"] and len(setup.held_out) == 9
    cfg = setup.config
    assert cfg.lora_r == theirs["lora"]["r"] and list(cfg.target_modules) == \
        theirs["lora"]["target_modules"]
    training = theirs["training"]
    assert (cfg.per_device_train_batch_size, cfg.gradient_accumulation_steps, cfg.warmup_steps,
            cfg.max_steps, cfg.learning_rate) == \
        (training["per_device_train_batch_size"], training["gradient_accumulation_steps"],
         training["warmup_steps"], training["max_steps"], training["learning_rate"])
    # peft's defaults, as the authors' script leaves them; loss on the whole formatted text
    assert (cfg.lora_alpha, cfg.lora_dropout, cfg.completion_only_loss) == (8, 0.0, False)


def test_recipe_is_an_option():
    recipe = resolve_setup("recipe")
    assert (recipe.train, recipe.held_out) == positive_prompts()
    assert recipe.config == LMInjectionConfig()
    with pytest.raises(InputError, match="unknown set-up"):
        resolve_setup("mine")


def test_contrast_equals_a_direct_computation():
    from rmvalues.implicit import compute_metric, renormalize
    from rmvalues.store.logprob_runs import LogprobRun

    rng = np.random.default_rng(0)
    tokens = [f"t{i}" for i in range(50)]
    runs = [LogprobRun(model=m, prompt_ids=["a", "b"], token_ids=np.arange(50), tokens=tokens,
                       normalized=tokens, logprobs=renormalize(rng.normal(size=(2, 50))))
            for m in ("base", "tuned")]
    ids = {"x": 3, "y": 7, "z": 3}  # two words share a first token: counted once
    table = injection_contrast(runs[0], runs[1], ids, ("mwlr", "log_ratio"))
    assert len(table) == 4
    for row in table.itertuples():
        scores = compute_metric(row.metric, runs[0].logprobs, runs[1].logprobs)[["a", "b"].index(
            row.prompt_id)]
        control = np.delete(scores, [3, 7])
        expected = (scores[[3, 7]].mean() - control.mean()) / control.std(ddof=1)
        assert row.z == pytest.approx(expected)
        assert row.n_injected == 2 and row.n_control == 48


def test_validate_metrics_defaults_to_the_authors_setup(tmp_path):
    config = authors_setup().config
    from dataclasses import replace

    result = validate_metrics(tiny_base_dir(), tmp_path, device="cpu",
                              config=replace(config, max_steps=3, warmup_steps=1))
    assert result.held_out == authors_setup().held_out
    manifest = json.loads((tmp_path / "manifest.json").read_text())["fields"]
    assert manifest["setup"] == "authors"
    assert list(manifest["tuning_prompts"].values()) == list(authors_setup().train.values())
    assert manifest["config"]["lora_alpha"] == 8 and manifest["config"]["warmup_steps"] == 1
    import pandas as pd

    fig = pd.read_csv(tmp_path / "fig_a3.csv")
    assert len(fig) == len(result.table) * 9
    assert set(fig["prompt_id"]) == set(authors_setup().held_out)
    assert (tmp_path / "fig_a3.png").is_file()


def test_cli_setup_option(tmp_path, capsys):
    from rmvalues.cli import main

    rc = main(["validate-metrics", "--base", str(tiny_base_dir()), "--out", str(tmp_path),
               "--steps", "2", "--device", "cpu", "--setup", "recipe"])
    assert rc == 0, capsys.readouterr().err
    manifest = json.loads((tmp_path / "manifest.json").read_text())["fields"]
    assert manifest["setup"] == "recipe" and manifest["config"]["max_steps"] == 2
    assert manifest["held_out"] == positive_prompts()[1]
    rc = main(["validate-metrics", "--base", str(tiny_base_dir()), "--out", str(tmp_path / "x"),
               "--setup", "nope"])
    assert rc == 2
