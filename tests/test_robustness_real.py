"""The robustness suites and mitigations on the bundled small REAL models, end to end on a CPU:
SmolLM2-135M-Instruct (Llama architecture, its ChatML template) and Gemma-3-270m (with the Gemma-2
template, which has no system role) as RM backbones with seeded score heads, standing in for a
Llama- and a Gemma-based RM. Scores paper prompts, in-distribution prompts with and without a
system prompt, and neutral controls on the Big Two nouns; then the ensemble, the debias
comparison and the prompt-sensitivity analysis run on what was written."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.slow

META = {"smollm2": {"base": "Llama"}, "gemma3": {"base": "Gemma"}}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from rmvalues.api import score
    from rmvalues.assets import asset_path
    from rmvalues.models.heads.sequence_classification import SequenceClassificationHead
    from rmvalues.models.loading import load_reward_model
    from rmvalues.prompts import PromptSet, load_prompt_set, prompt_set_from_dict

    paper = [p for p in load_prompt_set("paper-54") if p.id in {"best_ever_one", "worst_ever_one"}]
    indist = [p for p in load_prompt_set("in-distribution")
              if p.factors["scenario"] == "speech" and p.factors["adjective"] in {"best", "worst"}]
    neutral = list(load_prompt_set("neutral-controls"))[:3]
    rows = [{"id": p.id, "text": p.text, "system": p.system,
             "factors": {"family": p.factors.get("family", "paper"), "framing": p.factors["framing"]}}
            for p in paper + indist + neutral]
    pset: PromptSet = prompt_set_from_dict({"name": "real-mini", "prompts": rows})
    from rmvalues.lexicons import load_lexicon

    lex = load_lexicon("big-two-nouns")  # 60 words of each category keep the run to a few minutes
    words = sorted(lex.terms("Agency"))[:60] + sorted(lex.terms("Communion"))[:60]
    out = tmp_path_factory.mktemp("real")
    gemma_template = asset_path("chat-templates") / "google-gemma-2-2b-it.jinja"
    models = [("smollm2", "smollm2-135m-instruct", "SmolLM2-135M-Instruct.Q4_1.gguf", 576, None),
              ("gemma3", "gemma3-270m", "gemma-3-270m-q4_k_m.gguf", 640, gemma_template)]
    results = {}
    for name, asset, gguf, hidden, template in models:
        rm = load_reward_model(asset_path(asset), gguf_file=gguf, head=SequenceClassificationHead.seeded(hidden),
                               device="cpu", dtype="float32", chat_template=template)
        rm.name = name
        results[name] = score(rm, pset, words, out / "before", chat_template=template)
    return pset, out, results


def test_system_prompts_reach_both_real_templates(runs):
    _, _, results = runs
    assert results["gemma3"].manifest["prefix_ids"]["best_speech_assistant"] != \
        results["gemma3"].manifest["prefix_ids"]["best_speech_none"]
    for res in results.values():
        t = res.table
        a = t[t["prompt_id"] == "best_speech_assistant"]["score"].to_numpy()
        b = t[t["prompt_id"] == "best_speech_none"]["score"].to_numpy()
        assert np.isfinite(a).all() and not np.allclose(a, b)


def test_ensemble_debias_and_sensitivity_on_real_runs(runs, tmp_path):
    from rmvalues.analysis.debias import debias
    from rmvalues.analysis.mitigation import ensemble, write_mitigated
    from rmvalues.analysis.ranks import ranked_items
    from rmvalues.analysis.sensitivity import prompt_sensitivity
    from rmvalues.analysis.units import median_rank_units
    from rmvalues.lexicons import load_lexicon

    pset, out, results = runs
    ens = ensemble([out / "before"], model_meta=META, name="ens")
    # the ensemble is the mean of per-model, per-prompt z-scores (reference by hand)
    both = pd.concat([r.table for r in results.values()])
    both = both.groupby(["model", "prompt_id", "candidate"])["score"].mean().reset_index()
    both["z"] = both.groupby(["model", "prompt_id"])["score"].transform(lambda s: (s - s.mean()) / s.std(ddof=0))
    shared = both.groupby(["prompt_id", "candidate"]).filter(lambda g: len(g) == 2)
    want = shared.groupby(["prompt_id", "candidate"])["z"].mean()
    got = ens.table.set_index(["prompt_id", "candidate"])["score"]
    assert np.abs(got.loc[want.index].to_numpy() - want.to_numpy()).max() < 1e-5
    write_mitigated(ens, tmp_path / "ens")
    res = debias([out / "before"], [tmp_path / "ens"], "big-two-nouns", model_meta=META,
                 prompts=pset, n_boot=300)
    assert set(res.gap["stage"]) == {"before"} and np.isfinite(res.gap["gap"]).all()
    assert len(res.runs) == res.gap["framing"].nunique()
    price = res.price.set_index("source")
    assert set(price.index) == {"smollm2", "gemma3"}
    assert (price["spearman"].between(-1, 1)).all() and (price["topk_overlap"].between(0, 1)).all()
    scores = pd.concat([r.table for r in results.values()], ignore_index=True)
    units = median_rank_units(ranked_items(scores, load_lexicon("big-two-nouns")), model_meta=META,
                              prompts=pset)
    sens = prompt_sensitivity(units, pset, n_boot=200)
    assert {"paper", "in-distribution", "in-distribution-system", "neutral"} <= set(sens.families["family"])
    assert "one model per base family" in " ".join(sens.notes)
