"""Prompt sensitivity of the base-family gap: variance components (= REML) and per-family gaps."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from _bias_fixtures import LEXICON, META, planted_scores
from rmvalues.analysis.gap import tilts
from rmvalues.analysis.pipeline import analyze, write_analysis
from rmvalues.analysis.sensitivity import reference_variance_components, variance_components
from rmvalues.prompts import load_prompt_set


def _units(rng, n_per_base=3, n_prompts=10, sd=(2.0, 3.0, 1.5, 1.0), gap=5.0):
    su, sv, sw, se = sd
    u, v, w = rng.normal(0, su, 2 * n_per_base), rng.normal(0, sv, n_prompts), rng.normal(0, sw, (2, n_prompts))
    rows = []
    for m in range(2 * n_per_base):
        b = m // n_per_base
        for p in range(n_prompts):
            t = gap * b + u[m] + v[p] + w[b, p] + rng.normal(0, se)
            for cat, rank in (("Agency", t), ("Communion", 0.0)):
                rows.append({"model": f"m{m}", "prompt_id": f"p{p}", "category": cat,
                             "median_rank": rank, "base": ("Gemma", "Llama")[b]})
    units = pd.DataFrame(rows)
    units["category"] = pd.Categorical(units["category"], ["Agency", "Communion"])
    units["base"] = pd.Categorical(units["base"], ["Gemma", "Llama"])
    return units


@pytest.mark.parametrize("seed", [1, 2])
def test_anova_estimates_equal_reml(seed):
    units = _units(np.random.default_rng(seed))
    frame = tilts(units, ("Agency", "Communion"))
    d = frame.pivot(index="model", columns="prompt_id", values="tilt").to_numpy()
    in_base2 = np.array([m in {"m3", "m4", "m5"} for m in sorted(frame["model"].unique())])
    fast = variance_components(d, in_base2)
    ref = reference_variance_components(frame)
    for name in ("model", "prompt", "prompt:base", "residual"):
        assert fast[name] == pytest.approx(ref[name], rel=2e-3, abs=1e-3), name
    gaps = d[in_base2].mean(0) - d[~in_base2].mean(0)
    assert fast["gap"] == pytest.approx(gaps.mean())


def test_analyze_reports_a_stable_gap_and_a_null_gap_on_controls(tmp_path):
    indist, neutral = load_prompt_set("in-distribution"), load_prompt_set("neutral-controls")
    biased = planted_scores(indist.ids, bias=2.0)
    control = planted_scores(neutral.ids, bias=0.0, seed=1)
    res = analyze([pd.concat([biased, control])], LEXICON, model_meta=META, n_boot=300, n_resamples=99,
                  prompts=["in-distribution", "neutral-controls"], sensitivity=True)
    fam = res.sensitivity.families.set_index(["family", "framing"])
    # Gemma tilts positive (Communion favoured), Llama negative: gap = Llama - Gemma < 0, in every
    # in-distribution family and framing, with a CI that excludes 0
    for key in [("in-distribution", "positive"), ("in-distribution-system", "negative")]:
        assert fam.loc[key, "hi"] < 0 and fam.loc[key, "same_sign"] == fam.loc[key, "n_prompts"]
    # the control with no planted bias must not show one
    row = fam.loc[("neutral", "neutral")]
    assert row["lo"] < 0 < row["hi"]
    # the planted gap is the same under every prompt: little prompt:base variance vs the gap
    comp = res.sensitivity.components.set_index(["framing", "component"])
    assert np.sqrt(2 * comp.loc[("positive", "prompt:base"), "variance"]) < abs(fam.loc[key, "gap"]) / 3
    assert "neutral controls" in " ".join(res.notes) and res.mixed is not None
    assert "Prompt sensitivity" in res.summary_text()
    written = {p.name for p in write_analysis(res, tmp_path)}
    assert {"sensitivity_components.csv", "sensitivity_families.parquet"} <= written


def test_a_prompt_dependent_gap_shows_as_prompt_base_variance():
    pset = load_prompt_set("paraphrase-54")
    ids = [p.id for p in pset if p.factors["framing"] == "positive"]
    # the bias exists only under the paraphrases, not under the paper's three wordings
    fam = {p.id: p.factors["family"] for p in pset}
    runs = planted_scores(ids, bias=3.0, prompt_bias=lambda pid: float(fam[pid] == "paraphrase"))
    res = analyze([runs], LEXICON, model_meta=META, n_boot=300, n_resamples=99,
                  prompts="paraphrase-54", sensitivity=True)
    families = res.sensitivity.families.set_index("family")
    assert families.loc["paraphrase", "hi"] < 0
    assert families.loc["paper", "lo"] < 0 < families.loc["paper", "hi"]
    comp = res.sensitivity.components.set_index("component")
    assert comp.loc["prompt:base", "lo"] > 0 and comp.loc["prompt:base", "share"] > 0.3


def test_cli_analyze_sensitivity(tmp_path):
    from typer.testing import CliRunner

    from rmvalues.cli import app

    planted_scores(load_prompt_set("neutral-controls").ids, bias=1.0).to_parquet(tmp_path / "r.parquet")
    wide = pd.crosstab(LEXICON["term"], LEXICON["category"]).replace({1: "X", 0: ""})
    wide.reset_index().to_csv(tmp_path / "lex.csv", index=False)
    pd.DataFrame([{"model": m, **v} for m, v in META.items()]).to_csv(tmp_path / "meta.csv", index=False)
    out = CliRunner().invoke(app, ["analyze", str(tmp_path / "r.parquet"), "--lexicon",
                                   str(tmp_path / "lex.csv"), "--model-meta", str(tmp_path / "meta.csv"),
                                   "--prompts", "neutral-controls", "--sensitivity", "--boot", "200",
                                   "--out", str(tmp_path / "a")])
    assert out.exit_code == 0, out.output
    assert "gap per prompt family" in out.output
    assert (tmp_path / "a" / "sensitivity_prompts.csv").exists()
