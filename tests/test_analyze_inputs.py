"""`analyze` beyond RM score runs (issue 14): implicit-reward tables with the pair direction as the
base factor, and any prompt set's factors, taken from the runs' manifests, in the formula."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from _lm_runs import synthetic_run
from rmvalues.analysis.mixed import PAPER_FORMULA
from rmvalues.analysis.pipeline import analyze, default_formula
from rmvalues.cli import main
from rmvalues.lexicons import load_lexicon, paper_normalize


@pytest.fixture(scope="module")
def big_two():
    return load_lexicon("big-two-nouns")


def _run(model, tokens, prompt_ids, seed, boost=()):
    return synthetic_run(model, tokens, prompt_ids, seed, boost, sd=1.0, shift=2.0,
                         meta={"prompt_set": "paper-54"})


@pytest.fixture(scope="module")
def pair_tree(tmp_path_factory, big_two):
    """2 Gemma x 2 Llama instruct runs (Llama boosts Communion words) -> 4 implicit pairs."""
    from rmvalues.analysis.lm_pairs import write_implicit_pairs
    from rmvalues.prompts import load_prompt_set

    ids = load_prompt_set("paper-54").ids
    agency, communion = big_two.terms("Agency"), big_two.terms("Communion")
    vocab = ["the", *agency, *communion, "!"]
    runs = [_run("google/gemma-2-2b-it", vocab, ids, 1, set(agency)),
            _run("google/gemma-2-9b-it", vocab, ids, 2, set(agency)),
            _run("meta-llama/Llama-3.2-1B-Instruct", vocab, ids, 3, set(communion)),
            _run("meta-llama/Llama-3.1-8B-Instruct", vocab, ids, 4, set(communion))]
    out = tmp_path_factory.mktemp("pairs")
    write_implicit_pairs(runs, out, k=2)
    return out


def test_implicit_pairs_through_analyze(pair_tree, big_two):
    res = analyze([pair_tree], big_two, n_resamples=199, n_boot=99)
    units = res.units
    assert units["model"].nunique() == 8  # 4 pairs x both directions
    assert len(units) == 8 * 54 * 2
    by_base = units.groupby("base", observed=True)["model"].unique()
    assert all(m.endswith("Instruct") for m in by_base["Llama"])  # q = Llama: Gemma -> Llama
    assert all(m.endswith("-it") for m in by_base["Gemma"])
    assert res.settings["formula"] == PAPER_FORMULA
    assert res.mixed is not None and res.panels is not None and len(res.panels) == 4
    means = units.groupby(["base", "category"], observed=True)["median_rank"].mean()
    assert means["Llama", "Communion"] < means["Llama", "Agency"]
    assert means["Gemma", "Agency"] < means["Gemma", "Communion"]


def test_implicit_units_equal_a_direct_ranking(pair_tree, big_two):
    """Units of one direction = median over each category of the words' ranks by the pair's MWLR;
    the reverse direction ranks by -MWLR (MWLR is antisymmetric)."""
    folder = pair_tree / "gemma-2-2b-it__llama-3.2-1b-instruct"
    table = pd.read_parquet(folder / "mwlr.parquet")
    from rmvalues.analysis.pipeline import read_run
    from rmvalues.analysis.ranks import ranked_items
    from rmvalues.analysis.units import median_rank_units

    scores = read_run(folder)
    units = median_rank_units(ranked_items(scores, big_two), require_base=False)
    cat = {t: c for c in ("Agency", "Communion") for t in big_two.terms(c)}
    for sign, model in ((1, "google/gemma-2-2b-it \u2192 meta-llama/Llama-3.2-1B-Instruct"),
                        (-1, "meta-llama/Llama-3.2-1B-Instruct \u2192 google/gemma-2-2b-it")):
        one = table[(table["prompt_id"] == "worst_time_please") & table["key"].isin(cat)].copy()
        one["rank"] = (sign * one["score"]).rank(ascending=False)
        one["category"] = one["key"].map(cat)
        expected = one.groupby("category")["rank"].median()
        got = units[(units["model"] == model) & (units["prompt_id"] == "worst_time_please")]
        assert dict(zip(got["category"], got["median_rank"])) == pytest.approx(expected.to_dict())


def test_analyze_cli_on_implicit_pairs(pair_tree, tmp_path, capsys):
    code = main(["analyze", str(pair_tree), "--out", str(tmp_path / "a"), "--resamples", "99",
                 "--boot", "9"])
    text = capsys.readouterr()
    assert code == 0, text.err
    assert (tmp_path / "a" / "panels.csv").exists() and (tmp_path / "a" / "manifest.json").exists()


# --- any prompt set ---------------------------------------------------------------------------------

RMS = {"skywork-gemma2-27b": "Agency", "grm-gemma2-2b": "Agency",
       "urm-llama3.1-8b": "Communion", "armorm-llama3-8b": "Communion"}


def _prompt_yaml(tmp_path, framing=True):
    levels = {"good": "positive", "bad": "negative", "plain": "neutral"}
    lines = ["name: my-set", "prompts:"]
    for adj, frame in levels.items():
        for tone in ("formal", "casual"):
            factors = {"adjective": adj, "tone": tone}
            if framing:
                factors["framing"] = frame
            inner = ", ".join(f"{k}: {v}" for k, v in factors.items())
            lines.append(f'  - {{id: {adj}_{tone}, text: "What is the {adj} thing ({tone})?", '
                         f"factors: {{{inner}}}}}")
    path = tmp_path / ("set.yaml" if framing else "set-nf.yaml")
    path.write_text("\n".join(lines) + "\n")
    return path


def _score_runs(tmp_path, big_two, yaml_path):
    from rmvalues.prompts import load_prompt_set
    from rmvalues.store.manifest import build_manifest, write_results

    pset = load_prompt_set(yaml_path)
    words = big_two.terms("Agency") + big_two.terms("Communion")
    paths = []
    for i, (model, boosted) in enumerate(RMS.items()):
        rng = np.random.default_rng(i)
        rows = []
        for pid in pset.ids:
            for w in words:
                s = rng.normal() + (1.5 if w in big_two.terms(boosted) else 0.0)
                rows.append((model, pid, "text", pd.NA, w, paper_normalize(w), s))
        frame = pd.DataFrame(rows, columns=["model", "prompt_id", "candidate_kind", "token_id",
                                            "candidate", "normalized", "score"])
        path = tmp_path / f"{model}.parquet"
        write_results(frame, path, build_manifest("rm-scores", model=model,
                                                  prompt_set=str(yaml_path)))
        paths.append(path)
    return paths


def test_prompt_factors_come_from_the_recorded_set(tmp_path, big_two):
    paths = _score_runs(tmp_path, big_two, _prompt_yaml(tmp_path))
    res = analyze(paths, big_two, n_resamples=99, n_boot=9)
    units = res.units
    assert list(units["framing"].cat.categories) == ["positive", "negative", "neutral"]
    assert set(units["tone"]) == {"formal", "casual"}
    assert res.settings["formula"] == "median_rank ~ base * category * framing"
    assert res.settings["prompt_set"] == "my-set"
    assert len(res.panels) == 2 * 3  # category x three framing levels
    assert len(units) == 4 * 6 * 2


def test_prompt_set_without_framing(tmp_path, big_two):
    paths = _score_runs(tmp_path, big_two, _prompt_yaml(tmp_path, framing=False))
    res = analyze(paths, big_two, n_resamples=99, n_boot=9)
    assert res.settings["formula"] == "median_rank ~ base * category"
    assert len(res.panels) == 2 and "framing" not in res.panels.columns
    assert res.framing is None


def test_paper_default_formula_unchanged(big_two):
    from rmvalues.analysis.units import prompt_factors
    from rmvalues.prompts import load_prompt_set

    units = prompt_factors(load_prompt_set("paper-54").ids)
    units["base"] = "Gemma"
    assert default_formula(units) == PAPER_FORMULA


def test_unloadable_recorded_set_falls_back_with_a_note(tmp_path, big_two):
    from rmvalues.store.manifest import build_manifest, read_results, write_results

    paths = _score_runs(tmp_path, big_two, _prompt_yaml(tmp_path))
    for path in paths:  # a set recorded by name only, not loadable here
        write_results(read_results(path), path, build_manifest("rm-scores", prompt_set="gone"))
    res = analyze(paths, big_two, n_resamples=99, n_boot=9, prompts=_prompt_yaml(tmp_path))
    assert not res.notes and set(res.units["tone"]) == {"formal", "casual"}
    from rmvalues.analysis.pipeline import read_run, resolve_analysis_prompts
    from rmvalues.errors import AnalysisError

    pset, notes = resolve_analysis_prompts([read_run(p) for p in paths])
    assert pset.name == "paper-54" and "'gone' cannot be loaded" in notes[0]
    with pytest.raises(AnalysisError, match="outside the prompt set"):  # plain_* has no framing
        analyze(paths, big_two, n_resamples=99, n_boot=9)


def test_score_records_a_prompt_file_that_analyze_reads(tmp_path):
    from _engine_models import tiny_rm
    from rmvalues.analysis.pipeline import read_run, resolve_analysis_prompts
    from rmvalues.api import score

    yaml_path = _prompt_yaml(tmp_path)
    result = score(tiny_rm("llama"), yaml_path, ["good", "bad"], tmp_path / "run")
    assert result.manifest["prompt_file"] == str(yaml_path.resolve())
    frame = read_run(tmp_path / "run")
    pset, notes = resolve_analysis_prompts([frame])
    assert pset.name == "my-set" and not notes and "tone" in pset.factor_names
