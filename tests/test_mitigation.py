"""Mitigations on planted biases: each must shrink the base-family gap, and none may create a bias
where there is none (controls); the debias comparison measures both and the price on neutral prompts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from _bias_fixtures import LEXICON, META, planted_implicit, planted_scores
from rmvalues.analysis.debias import debias
from rmvalues.analysis.mitigation import (
    base_corrected,
    ensemble,
    fit_lambda,
    mitigation_infos,
    split_prompts,
    write_mitigated,
)
from rmvalues.errors import InputError
from rmvalues.prompts import load_prompt_set

PROMPTS = [p.id for p in load_prompt_set("paper-54") if p.factors["framing"] == "positive"]
CONTROLS = load_prompt_set("neutral-controls").ids


def _runs(bias: float, seed: int = 0) -> pd.DataFrame:
    return pd.concat([planted_scores(PROMPTS, bias=bias, seed=seed),
                      planted_scores(CONTROLS, bias=0.0, seed=seed + 100)], ignore_index=True)


def test_ensemble_is_the_mean_of_z_scores_by_hand():
    runs = planted_scores(["best_ever_one"], bias=1.0, models=("g1", "l1"))
    res = ensemble([runs], model_meta=META)
    by_hand = {}
    for _, g in runs.groupby("model"):
        z = (g["score"] - g["score"].mean()) / g["score"].std(ddof=0)
        for c, v in zip(g["candidate"], z, strict=True):
            by_hand.setdefault(c, []).append(v)
    got = res.table.set_index("candidate")["score"]
    assert got.to_dict() == pytest.approx({c: np.mean(v) for c, v in by_hand.items()}, abs=1e-5)
    assert res.info["kind"] == "ensemble" and res.info["source_bases"] == {"g1": "Gemma", "l1": "Llama"}
    with pytest.raises(InputError, match="cross-family ensemble needs 2"):
        ensemble([planted_scores(["best_ever_one"], models=("g1", "g2"))], model_meta=META)


def test_lambda_is_the_pooled_within_prompt_slope_and_prompts_are_held_out():
    rng = np.random.default_rng(0)
    m, g = rng.normal(size=200), np.repeat(np.arange(4), 50)
    r = 0.7 * m + g * 3.0 + rng.normal(0, 0.1, 200)  # prompt offsets must not bias λ
    assert fit_lambda(r, m, g) == pytest.approx(
        np.polyfit(m - pd.Series(m).groupby(g).transform("mean"),
                   r - pd.Series(r).groupby(g).transform("mean"), 1)[0])
    fit, ev = split_prompts(PROMPTS, 0.5, seed=3)
    assert set(fit).isdisjoint(ev) and sorted(fit + ev) == sorted(PROMPTS)


def _corrected(runs, implicit_bias, tmp_path, seed=0):
    outs = []
    for model in META:
        base = META[model]["base"]
        imp = planted_implicit(PROMPTS + CONTROLS, base, bias=implicit_bias, seed=len(model) + ord(model[0]),
                               noise=0.15)
        res = base_corrected(runs[runs["model"] == model], imp, fit_prompts=PROMPTS[:9],
                             model_meta=META)
        assert res.info["eval_prompts"] == PROMPTS[9:] + CONTROLS and res.info["base"] == base
        outs.append(write_mitigated(res, tmp_path / "after"))
    return outs


def test_base_correction_removes_a_planted_base_bias(tmp_path):
    runs = _runs(bias=1.5)
    runs.to_parquet(tmp_path / "before.parquet")
    after = _corrected(runs, 1.0, tmp_path)
    assert mitigation_infos(after[0])["g1-basecorrected"]["kind"] == "base-corrected"
    res = debias([tmp_path / "before.parquet"], [tmp_path / "after"], LEXICON, model_meta=META,
                 n_boot=500)
    gap = res.gap.set_index("stage")
    assert gap.loc["before", "hi"] < 0  # Gemma favours Communion, Llama Agency: Llama - Gemma < 0
    assert gap.loc["change", "lo"] > 0  # the correction moves it back toward 0 ...
    # ... most of the way (not all: noise in the implicit reward attenuates the OLS λ)
    assert abs(gap.loc["after", "gap"]) < abs(gap.loc["before", "gap"]) / 2
    assert (res.runs["change_hi"] < 0).all()
    # price on the neutral controls: rankings mostly kept (words' quality is shared), but the base
    # shift carries its bias there too while these RMs had none, so subtracting it tilts the
    # controls the other way; the report must show that price
    price = res.price.set_index("source")
    assert (price["spearman"] > 0.3).all() and (price["spearman"] < 0.999).all()
    g, ll = price.loc[["g1", "g2"]], price.loc[["l1", "l2"]]
    assert (g["tilt_after_hi"] < g["tilt_before"]).all()  # Communion pushed down
    assert (ll["tilt_after_lo"] > ll["tilt_before"]).all()  # Agency pushed down


def test_base_correction_control_creates_no_bias(tmp_path):
    runs = _runs(bias=0.0)  # RMs without a bias; their base shifts still carry one
    runs.to_parquet(tmp_path / "before.parquet")
    after = _corrected(runs, 1.0, tmp_path)
    lams = [i["lambda"] for p in after for i in mitigation_infos(p).values()]
    assert len(lams) == 4
    assert max(abs(x) for x in lams) < 0.3  # vs ≈ 1.4 where the RMs carry the bias
    res = debias([tmp_path / "before.parquet"], after, LEXICON, model_meta=META, n_boot=500)
    gap = res.gap.set_index("stage")
    assert gap.loc["after", "lo"] < 0 < gap.loc["after", "hi"]


def test_ensemble_shrinks_the_base_attributable_tilt_and_control_stays_unbiased(tmp_path):
    for bias, folder in ((2.0, "biased"), (0.0, "control")):
        runs = _runs(bias=bias)
        runs.to_parquet(tmp_path / f"{folder}.parquet")
        ens = ensemble([runs[runs["model"].isin(["g1", "l1"])]], model_meta=META, name="ens")
        write_mitigated(ens, tmp_path / f"{folder}-ens")
        res = debias([tmp_path / f"{folder}.parquet"], [tmp_path / f"{folder}-ens"], LEXICON,
                     model_meta=META, n_boot=500)
        row = res.runs.iloc[0]
        if bias:
            assert row.change_hi < 0 and row.offset_after < row.offset_before / 3
        else:
            gap = res.gap.set_index("stage").loc["before"]
            assert gap.lo < 0 < gap.hi
            price = res.price.iloc[0]
            assert price.tilt_after_lo < 0 < price.tilt_after_hi
        assert "base-attributable" in res.summary_text()


def test_cli_mitigate_and_debias_write_ordinary_runs(tmp_path):
    from typer.testing import CliRunner

    from rmvalues.cli import app

    runs = _runs(bias=1.5)
    runs.to_parquet(tmp_path / "before.parquet")
    meta = tmp_path / "meta.csv"
    pd.DataFrame([{"model": m, **v} for m, v in META.items()]).to_csv(meta, index=False)
    planted_implicit(PROMPTS + CONTROLS, "Gemma").to_parquet(tmp_path / "mwlr.parquet")
    runs[runs["model"] == "g1"].to_parquet(tmp_path / "g1.parquet")
    cli = CliRunner()
    r1 = cli.invoke(app, ["mitigate", "ensemble", str(tmp_path / "before.parquet"), "--out",
                          str(tmp_path / "ens"), "--model-meta", str(meta)])
    assert r1.exit_code == 0, r1.output
    r2 = cli.invoke(app, ["mitigate", "base-correct", str(tmp_path / "g1.parquet"), "--implicit",
                          str(tmp_path / "mwlr.parquet"), "--out", str(tmp_path / "corr"),
                          "--model-meta", str(meta), "--seed", "1"])
    assert r2.exit_code == 0, r2.output and "λ =" in r2.output
    wide = pd.crosstab(LEXICON["term"], LEXICON["category"]).replace({1: "X", 0: ""})
    wide.reset_index().to_csv(tmp_path / "lex.csv", index=False)
    r3 = cli.invoke(app, ["mitigate", "debias", "--before", str(tmp_path / "before.parquet"),
                          "--after", str(tmp_path / "ens"), "--after", str(tmp_path / "corr"),
                          "--lexicon", str(tmp_path / "lex.csv"), "--model-meta", str(meta),
                          "--boot", "200", "--out", str(tmp_path / "debias")])
    assert r3.exit_code == 0, r3.output
    assert (tmp_path / "debias" / "debias_runs.csv").exists()
    # the mitigated runs are ordinary runs: analyze reads them
    from rmvalues.analysis.pipeline import analyze

    res = analyze([tmp_path / "ens"], LEXICON)
    assert res.units["model"].unique().tolist() == ["ensemble(g1+g2+l1+l2)"]
    # and the report shows the debias tables
    r4 = cli.invoke(app, ["report", str(tmp_path / "debias"), "--out", str(tmp_path / "rep")])
    assert r4.exit_code == 0, r4.output
    html = (tmp_path / "rep" / "report.html").read_text()
    assert "debias runs" in html and "Base-family gap" in html
    assert (tmp_path / "rep" / "figures" / "debias.png").exists()
    bad = cli.invoke(app, ["mitigate", "debias", "--before", str(tmp_path / "before.parquet"),
                           "--after", str(tmp_path / "before.parquet"), "--lexicon",
                           str(tmp_path / "lex.csv"), "--model-meta", str(meta)])
    assert bad.exit_code != 0


def test_debias_pairs_a_counterbalanced_run_with_the_unbalanced_one_of_the_same_seed():
    unbalanced = _runs(bias=2.0, seed=4)
    balanced = _runs(bias=0.2, seed=4)  # what balancing the data did to the same seed's RM
    balanced["model"] = balanced["model"] + "-balanced"
    res = debias([unbalanced], [balanced], LEXICON, model_meta=META, n_boot=500,
                 pairs={f"{m}-balanced": m for m in META})
    gap = res.gap.set_index("stage")
    assert gap.loc["before", "hi"] < 0 and gap.loc["change", "lo"] > 0
    assert set(res.runs["kind"]) == {"paired"}
    with pytest.raises(InputError, match="--pair AFTER=BEFORE"):
        debias([unbalanced], [balanced], LEXICON, model_meta=META, n_boot=50)
