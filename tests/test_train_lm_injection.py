"""LM-level value injection (paper Fig A3): LoRA SFT on Authority words, then every implicit-reward
metric's sensitivity on held-out prompts, MWLR next to each rival. The tiny random model runs the
whole path in seconds; SmolLM2 (opt-in) is the real check."""

from __future__ import annotations

import numpy as np
import pytest

from _train_models import llama_tokenizer, tiny_base_dir
from rmvalues.analysis.ranks import reference_rank
from rmvalues.implicit import METRICS
from rmvalues.training.lm_injection import (
    AUTHORITY_WORDS,
    LMInjectionConfig,
    _average_ranks,
    injected_token_ids,
    positive_prompts,
    sft_records,
    validate_metrics,
)


def test_recipe_and_prompts() -> None:
    cfg = LMInjectionConfig()
    assert (cfg.lora_r, cfg.learning_rate, cfg.max_steps) == (8, 2e-4, 50)
    assert (cfg.per_device_train_batch_size, cfg.gradient_accumulation_steps) == (1, 4)
    assert {"q_proj", "o_proj", "gate_proj", "down_proj"} <= set(cfg.target_modules)
    train, held = positive_prompts()
    assert len(train) == 36 and len(held) == 9 and not set(train) & set(held)
    assert positive_prompts() == (train, held)
    records = sft_records(train)
    assert len(records) == 360 and len(AUTHORITY_WORDS) == 10
    assert records[0]["prompt"].startswith("Instruction:\n") and \
        records[0]["prompt"].endswith("\n\nResponse:\n")
    ids = injected_token_ids(llama_tokenizer())
    head = llama_tokenizer()("Instruction:\nQ\n\nResponse:\n", add_special_tokens=False)["input_ids"]
    for word, token in ids.items():
        full = llama_tokenizer()("Instruction:\nQ\n\nResponse:\n" + word,
                                 add_special_tokens=False)["input_ids"]
        assert full[len(head)] == token, word


def test_average_ranks_equal_reference() -> None:
    rng = np.random.default_rng(0)
    row = rng.integers(0, 20, size=200).astype(float)  # many ties
    cols = [0, 5, 17, 199]
    reference = reference_rank(list(row))
    np.testing.assert_array_equal(_average_ranks(row, cols), [reference[c] for c in cols])
    assert _average_ranks(np.zeros(11), [3])[0] == 6.0  # all tied: (V + 1) / 2


def test_validate_metrics_end_to_end(tmp_path) -> None:
    config = LMInjectionConfig(max_steps=4, learning_rate=1e-2)
    result = validate_metrics(tiny_base_dir(), tmp_path, config=config, device="cpu")
    table = result.table
    assert list(table["metric"]) == list(METRICS) and table["metric"].iloc[0] == "mwlr"
    vocab = len(llama_tokenizer())
    assert (table["vocab_size"] == vocab).all() and (table["n_prompts"] == 9).all()
    assert table["mean_rank"].between(1, vocab).all()
    assert ((table["hits_top10"] >= 0) & (table["hits_top10"] <= table["hits_top100"])).all()
    for name in ("metric_sensitivity.parquet", "metric_sensitivity.csv", "manifest.json"):
        assert (tmp_path / name).is_file()
    assert (tmp_path / "adapter" / "adapter_config.json").is_file()
    assert "most sensitive metric" in result.summary


@pytest.mark.slow  # minutes on a CPU: the real backbone, run by `make test` like everything else
def test_validate_metrics_on_smollm2(tmp_path) -> None:
    """The authors' Fig A3 set-up (default): their 36 questions x 10 Authority words, template and
    9 held-out prompts, LoRA r 8 / alpha 8, 50 steps. Observed on CPU (vocabulary 49,152): mwlr mean
    rank 1,580 (median 1,404), top-100 hits 1.6; clip15 best at 1,138; clip5 floors everything
    (24,570). The generated recipe (alpha 16, completion-only loss) reached mwlr mean rank 70."""
    from rmvalues.assets import asset_path
    from rmvalues.training.injection_setups import authors_setup

    gguf = asset_path("smollm2-135m-instruct", "SmolLM2-135M-Instruct.Q4_1.gguf")
    result = validate_metrics(gguf.parent, tmp_path, gguf_file=gguf.name, device="cpu")
    print(result.summary)
    print(result.table.to_string())
    setup = authors_setup()
    assert result.held_out == setup.held_out and set(result.token_ids) == set(setup.words)
    mwlr = result.table.set_index("metric").loc["mwlr"]
    assert mwlr["mean_rank"] < result.table["vocab_size"].iloc[0] / 20  # far above chance (V/2)
    assert (tmp_path / "fig_a3.csv").is_file()


def test_cli_validate_metrics(tmp_path, capsys) -> None:
    from rmvalues.cli import main

    rc = main(["validate-metrics", "--base", str(tiny_base_dir()), "--out", str(tmp_path),
               "--steps", "2", "--device", "cpu"])
    assert rc == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "mwlr" in out and "log_ratio" in out and "most sensitive metric" in out
