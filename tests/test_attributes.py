"""Per-attribute scores of multi-objective heads (ArmoRM, QRM, URM) as runs of their own, and the
analysis per attribute."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from _bias_fixtures import LEXICON, META, planted_scores
from rmvalues.errors import InputError
from rmvalues.prompts import load_prompt_set
from test_heads_engine import load_tiny_rm

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

PROMPTS = {"p0": "Describe a good neighbour in one word.", "p1": "Name a word."}
WORDS = ["Kind", "honesty", "warmth", "A", "power"]


@pytest.fixture(scope="module")
def llama3():
    from rmvalues.models.tokenizers import bundled_tokenizer

    return bundled_tokenizer("llama3")


def _by_hand(head_type, state, last, objectives):
    """Each attribute straight from the checkpoint tensors (no head code)."""
    if head_type == "armorm":
        return last @ state["regression_layer.weight"].T
    if head_type == "qrm":
        q = last @ state["regression_layer.weight"].T
        return q.reshape(len(last), objectives, -1).mean(-1)
    out = last @ state["score.weight"].T + state.get("score.bias", 0)
    return out[:, 0::2]


@pytest.mark.parametrize("head_type", ["armorm", "qrm", "urm"])
def test_attribute_runs_equal_the_checkpoint_tensors(head_type, llama3, tmp_path):
    from rmvalues.engines.attributes import score_attributes
    from rmvalues.models.chat import split_chat
    from rmvalues.models.heads.attributes import attribute_names

    rm, state = load_tiny_rm(tmp_path, head_type, llama3)
    names = attribute_names(rm.head)
    assert names[0] == "helpsteer-helpfulness" and len(names) == 5  # tiny config: 5 objectives
    results = score_attributes(rm, PROMPTS, WORDS, tmp_path / "run", attributes=names[:2],
                               progress=False)
    assert [r.table["model"].iloc[0] for r in results] == [rm.name] + [f"{rm.name}@{a}" for a in names[:2]]
    keys = [r.manifest["shard_keys"]["p0"] for r in results]
    assert len(set(keys)) == 3  # an attribute never resumes another's shards
    for pid, text in PROMPTS.items():
        split = split_chat(llama3, text)
        convs = [[*split.prefix_ids, *split.response_ids(llama3, w), *split.suffix_ids] for w in WORDS]
        with torch.no_grad():
            last = torch.stack([rm.backbone(input_ids=torch.tensor([c])).last_hidden_state[0, -1]
                                for c in convs]).float()
        want = _by_hand(head_type, state, last, rm.backbone.config.num_objectives).numpy()
        for k, res in enumerate(results[1:]):
            got = res.table[res.table["prompt_id"] == pid]["score"].to_numpy()
            assert np.abs(got - want[:, k]).max() < 1e-4
    again = score_attributes(rm, PROMPTS, WORDS, tmp_path / "run", attributes=names[:2], progress=False)
    assert all("resumed" in r.summary for r in again)
    assert {p.name for p in (tmp_path / "run").glob("*.parquet")} >= {f"{rm.name}.parquet"}


def test_single_reward_heads_and_unknown_attributes_are_refused(llama3, tmp_path):
    from _engine_models import tiny_rm
    from rmvalues.models.heads.attributes import attribute_model

    with pytest.raises(InputError, match="single reward"):
        attribute_model(tiny_rm("llama"), "helpsteer-helpfulness")
    rm, _ = load_tiny_rm(tmp_path, "urm", llama3)
    with pytest.raises(InputError, match="no attribute 'kindness'"):
        attribute_model(rm, "kindness")


def test_attribute_is_an_option_of_score_only_and_never_dropped(llama3, tmp_path):
    """--attribute is a ScoreOptions field: `score` has it, `plan` does not, the executors refuse
    it, and api.score (one run) refuses it rather than scoring only the combined reward."""
    from typer.testing import CliRunner

    from rmvalues.api import score
    from rmvalues.cli import app

    rm, _ = load_tiny_rm(tmp_path, "armorm", llama3)
    with pytest.raises(InputError, match="score_attributes"):
        score(rm, PROMPTS, WORDS, attribute=["helpsteer-helpfulness"])
    runner = CliRunner()
    res = runner.invoke(app, ["score", "--model", "x", "--out", str(tmp_path / "o"),
                              "--attribute", "all", "--shard-size", "2"])
    assert res.exit_code != 0 and "--attribute runs on the plain path" in str(res.exception or res.output)
    res = runner.invoke(app, ["plan", "--model", "x", "--out", str(tmp_path / "o"), "--attribute", "all"])
    assert res.exit_code == 2  # no such option
    assert not (tmp_path / "o").exists()


def test_analysis_finds_the_attribute_that_carries_the_bias():
    ids = [p.id for p in load_prompt_set("paper-54") if p.factors["style"] == "one"]
    biased = planted_scores(ids, bias=3.0)
    clean = planted_scores(ids, bias=0.0, seed=5)
    runs = pd.concat([biased.assign(model=biased["model"] + "@helpsteer-verbosity"),
                      clean.assign(model=clean["model"] + "@helpsteer-correctness"),
                      planted_scores(ids, bias=1.5, seed=9)])  # the combined rewards
    from rmvalues.analysis.pipeline import analyze

    res = analyze([runs], LEXICON, model_meta=META, n_boot=300, n_resamples=99)
    attrs = res.attributes
    gaps = attrs[(attrs["scope"] == "family gap") & (attrs["framing"] == "positive")].set_index("attribute")
    assert gaps.loc["helpsteer-verbosity", "hi"] < 0
    assert gaps.loc["helpsteer-correctness", "lo"] < 0 < gaps.loc["helpsteer-correctness", "hi"]
    assert gaps.loc["(combined)", "hi"] < 0
    assert set(res.mixed.fixed["term"]) and res.units["model"].nunique() == 12
    assert "Per-attribute" in res.summary_text()
