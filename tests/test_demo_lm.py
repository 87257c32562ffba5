"""The LM demo step end to end on the two real small models (SmolLM2 instruct, Gemma-3 pretrained),
on a few prompts of both framings so it stays quick; `make demo` runs all 54."""

from __future__ import annotations

import io
import json

import pandas as pd
import pytest


@pytest.mark.slow
def test_lm_demo_end_to_end_on_real_models(tmp_path):
    import pyarrow.parquet as pq
    from rich.console import Console

    from rmvalues.demo.lm import run_lm_demo
    from rmvalues.prompts import PromptSet, load_prompt_set
    from rmvalues.store.logprob_runs import load_run
    from rmvalues.store.schema import SCORE_SCHEMA

    paper = load_prompt_set("paper-54")
    ids = ["greatest_ever_one", "best_world_single", "good_time_please", "worst_ever_one",
           "bad_world_single", "terrible_time_please"]
    subset = PromptSet(name="paper-54", prompts=tuple(paper[i] for i in ids))
    buffer = io.StringIO()
    summary = run_lm_demo(tmp_path, Console(file=buffer, width=200), prompts=subset)
    out = tmp_path / "lm"

    # log-prob runs: full vocabularies, results schema, manifests, vocabulary tables
    smol = load_run(out / "logprobs" / "SmolLM2-135M-Instruct")
    gemma = load_run(out / "logprobs" / "gemma-3-270m")
    assert smol.logprobs.shape == (6, 49152) and gemma.logprobs.shape == (6, 262144)
    assert smol.meta["model_kind"] == "instruct" and gemma.meta["model_kind"] == "pretrained"
    assert pq.read_schema(out / "logprobs" / "gemma-3-270m" / "logprobs.parquet").equals(
        SCORE_SCHEMA)
    for run_dir in summary.run_dirs.values():
        assert (run_dir / "vocabulary.parquet").exists()
        assert (run_dir / "logprobs.manifest.json").exists()

    # Fig 2: 6 prompts x 2 categories x 2 models
    units = pd.read_csv(out / "big_two" / "lm_units.csv")
    assert len(units) == 24 and summary.values.residual_df == 16
    assert len(pd.read_csv(out / "big_two" / "lm_tests.csv")) == 4

    # implicit RM: join losses reported, Table 1 and Fig 3 tables written
    join = json.loads((out / "implicit" / "join.json").read_text())
    assert join["p_tokens"] == 262144 and join["q_tokens"] == 49152
    assert join["p_tokens_lost"] + join["shared_keys"] + join["p_tokens_merged"] == 262144
    tb = pd.read_csv(out / "implicit" / "top_bottom.csv", keep_default_na=False)
    assert list(tb["side"].unique()) == ["top", "bottom"] and len(tb) == 30
    assert tb["score"].is_monotonic_decreasing
    targets = pd.read_csv(out / "implicit" / "target_scores.csv")
    assert set(targets["target"]) == {"Freedom", "Love"} and len(targets) == 12

    text = (out / "summary.txt").read_text()
    assert "ANOVA residual df 16" in text and "shared keys" in text
    assert str(out.resolve()) in buffer.getvalue().replace("\n", "")
