"""`rmvalues reproduce` and `rmvalues analyze`: released-data registry, both modes, the CLI, outputs."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest

from _released import pin_local_copy
from rmvalues.analysis.datasets import fetch_dataset, get_dataset, released_datasets
from rmvalues.analysis.pipeline import analyze, write_analysis
from rmvalues.analysis.reproduce import format_report, reproduce
from rmvalues.cli import main
from rmvalues.errors import AnalysisError, ChecksumError, FetchError
from rmvalues.lexicons import load_lexicon

BIG2 = "dict_big2_nouns"
FAST = {"n_resamples": 99, "n_boot": 50}


def test_registry_pins_every_big_two_file(shared_dir):
    spec = get_dataset("big2-nouns")
    assert spec.pinned and len(spec.files) == 10
    assert {p.name for p in (shared_dir / "paper-data" / BIG2).glob("*.csv")} == set(spec.files)
    assert spec.url("x.csv").endswith(f"{spec.commit}/data/reward_model_scores/{BIG2}/x.csv")
    assert released_datasets()["mfd2"].pinned  # every dataset downloads by default (issue 13)


def test_tampered_local_copy_is_refused(shared_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("RMVALUES_CACHE", str(tmp_path / "cache"))
    local = tmp_path / "data" / BIG2
    shutil.copytree(shared_dir / "paper-data" / BIG2, local)
    victim = min(local.glob("*.csv"))
    victim.write_text(victim.read_text().replace("accuracy", "accurac", 1))
    with pytest.raises(ChecksumError, match=r"sha256 is [0-9a-f]{64}, expected"):
        fetch_dataset("big2-nouns", tmp_path / "data")


def test_unpinned_dataset_without_a_local_copy_says_pass_data(tmp_path, monkeypatch):
    monkeypatch.delenv("RMVALUES_PAPER_DATA", raising=False)
    pin_local_copy(monkeypatch, "mfd2", tmp_path)  # an empty folder: no file, nothing pinned
    with pytest.raises(FetchError, match="--data"):
        fetch_dataset("mfd2", tmp_path)


def test_big_two_reproduction_in_both_modes():
    report = reproduce(datasets=["big2-nouns", "mfd2"], **FAST)
    (res,) = report.fig1
    assert res.verified and res.mode == "corrected" and res.stars_from == "p_perm"
    assert len(res.units) == 1080 and res.items_per_prompt == 263
    assert round(res.mixed.fixed.set_index("term").loc["baseLlama", "estimate"], 3) == -4.167
    assert any("stars from p_welch (paper) vs p_perm (corrected)" in d for d in report.differences)
    assert any("units identical" in d for d in report.differences)
    assert report.skipped and report.skipped[0].startswith("mfd2")  # not in shared/: skipped, said why
    text = format_report(report)
    assert "1963.78" in text and "-19.828" in text and "131.775 (10.673)" in text


def write_fake_mfd(folder, rng):
    """Four registry RMs (2 Gemma, 2 Llama) scoring 4 terms per MFD category under 4 prompts."""
    lex = load_lexicon("mfd2")
    terms = [t for c in lex.categories for t in lex.terms(c)[:4]]
    prompts = ["best_ever_one", "good_world_please", "worst_ever_one", "bad_time_single"]
    folder.mkdir(parents=True)
    names = {"MFD20_rewards_Skywork_Skywork-Reward-Gemma-2-27B.csv": 1.0,
             "MFD20_rewards_nicolinho_QRM-Gemma-2-27B.csv": 1.0,
             "big2_rewards_Ray2333_GRM-Llama3-8B-rewardmodel-ft.csv": -1.0,
             "MFD20_rewards_nicolinho_QRM-Llama3.1-8B.csv": -1.0}
    care = np.array([t in lex.terms("Care_Virtue") for t in terms])
    for name, sign in names.items():
        frame = pd.DataFrame({"response": terms})
        for p in prompts:
            frame[p] = rng.normal(0, 1, len(terms)) + sign * care
        frame.to_csv(folder / name, index=False)
    return terms


def test_mfd_paper_compatible_vs_corrected(tmp_path, monkeypatch):
    write_fake_mfd(tmp_path / "dict_MFD_20", np.random.default_rng(0))
    pin_local_copy(monkeypatch, "mfd2", tmp_path / "dict_MFD_20")
    monkeypatch.setenv("RMVALUES_CACHE", str(tmp_path / "cache"))
    report = reproduce(tmp_path, datasets=["mfd2"], paper_compatible=True, **FAST)
    (paper,) = report.fig1
    assert paper.verified  # checked against the (test-pinned) hashes
    assert paper.categories == ["Authority", "Care", "Fairness", "Loyalty", "Sanctity"]  # R's order
    assert paper.items_per_prompt == 36  # Sanctity_Vice dropped by the column range
    assert len(paper.panels) == 10 and paper.stars_from == "p_welch"
    joined = "\n".join(report.differences)
    assert "Sanctity_Vice" in joined and "36 ranked rows per prompt (paper) vs 40 items" in joined
    five = reproduce(tmp_path, datasets=["mfd2"], compare=False, mfd_grouping="foundations", **FAST)
    assert five.fig1[0].categories == paper.categories and five.fig1[0].items_per_prompt == 40
    care = paper.panels.set_index(["category", "framing"]).loc[("Care", "positive")]
    assert care["diff"] < 0  # Gemma ranks Care (virtue half) higher: smaller rank


def test_fig4b_from_a_local_copy(tmp_path, monkeypatch):
    folder = tmp_path / "reward_model_training"
    folder.mkdir()
    (folder / "rank_results_uf_13.csv").write_text(
        '"X","model_id","Category","checkpoint","base_model","sum_value"\n'
        'NA,"R-Lla-3B","Agency",1,"Llama",700\nNA,"R-Lla-3B","Agency",2,"Llama",650\n')
    pin_local_copy(monkeypatch, "rank-results", folder)
    monkeypatch.setenv("RMVALUES_CACHE", str(tmp_path / "cache"))
    report = reproduce(tmp_path, datasets=["rank-results"], compare=False)
    assert report.fig4b["median_rank"].tolist() == [650]
    assert "Fig 4b" in format_report(report)


def test_analyze_writes_tables_summary_and_manifest(shared_dir, tmp_path):
    runs = sorted((shared_dir / "paper-data" / BIG2).glob("*.csv"))
    result = analyze(runs, "big-two-nouns", top_k=5, **FAST)
    assert result.mixed is not None and len(result.panels) == 4
    assert set(result.topk["k"]) == {5}
    write_analysis(result, tmp_path / "out")
    for name in ("ranks", "units", "fixed_effects", "anova", "panels", "framing", "topk"):
        assert (tmp_path / "out" / f"{name}.parquet").exists() and (tmp_path / "out" / f"{name}.csv").exists()
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["fields"]["lexicon"] == "big-two-nouns"
    assert manifest["fields"]["settings"]["policy"]["match"] == "exact"
    units = pd.read_parquet(tmp_path / "out" / "units.parquet")
    assert len(units) == 1080 and set(units["base"]) == {"Gemma", "Llama"}


def test_analyze_errors_name_the_missing_piece(shared_dir, tmp_path):
    folder = shared_dir / "paper-data" / BIG2
    two = [folder / "big2_rewards_nicolinho_QRM-Llama3.1-8B.csv", folder / "big2_rewards_nicolinho_QRM-Gemma-2-27B.csv"]
    # issue 17 finding 5: two models of two families are compared directly, saying why
    pair = analyze(two, "big-two-nouns", **FAST)
    assert pair.mixed is None and any("two families with two models each" in n for n in pair.notes)
    assert set(pair.groups[["group_x", "group_y"]].iloc[0]) == set(pair.units["model"])
    nothing = pd.DataFrame({"term": ["zzqx", "qxzz"], "category": ["A", "B"]})
    with pytest.raises(AnalysisError, match="no candidate matches a term of custom lexicon"):
        analyze(two, nothing, **FAST)
    unknown = tmp_path / "my_rm.csv"
    unknown.write_text((folder / two[0].name).read_text())
    unregistered = analyze([unknown, two[1]], "big-two-nouns", **FAST)
    assert any(re.search("my_rm.*--model-meta.*model by model", n) for n in unregistered.notes)
    assert "my_rm" in set(unregistered.contrasts["model"]) and unregistered.contrasts["model"].nunique() == 2
    single = analyze([two[0]], "big-two-nouns", **FAST)
    assert single.mixed is None and "one model" in single.notes[0]


def test_cli_reproduce_and_analyze(shared_dir, tmp_path, capsys):
    assert main(["reproduce", "--dataset", "big2-nouns", "--resamples", "99", "--boot", "50",
                 "--no-compare", "--out", str(tmp_path / "rep")]) == 0
    out = capsys.readouterr().out
    assert "-34.998" in out and "nlme denominator df" in out
    assert (tmp_path / "rep" / "big2-nouns_corrected_fixed_effects.parquet").exists()
    # reproduce ends by writing its report, by default beside the tables
    assert "fig1a" in (tmp_path / "rep" / "report" / "report.html").read_text("utf-8")
    folder = shared_dir / "paper-data" / BIG2
    rc = main(["analyze", str(folder / "big2_rewards_nicolinho_QRM-Llama3.1-8B.csv"),
               str(folder / "big2_rewards_nicolinho_QRM-Gemma-2-27B.csv"), "--resamples", "99"])
    assert rc == 0 and "two families with two models each" in capsys.readouterr().out


def test_analyze_null_baselines_on_the_released_data(shared_dir):
    runs = sorted((shared_dir / "paper-data" / BIG2).glob("*.csv"))
    result = analyze(runs, "big-two-nouns", null_draws=9, **FAST)
    null = result.null.set_index("kind")
    # The Big Two nouns are the whole candidate pool here, so random sets = label shuffles in kind.
    assert list(null.index) == ["random_words", "shuffled_labels"]
    assert (null["p_value"] >= 0.1).all() and (null["n_draws"] == 9).all()
    assert "Null baselines" in result.summary_text()


def test_analyze_reads_stored_run_folders(shared_dir, tmp_path):
    from rmvalues.analysis.importers import read_dictionary_scores
    from rmvalues.store.manifest import build_manifest, write_results

    folder = shared_dir / "paper-data" / BIG2
    names = ["nicolinho_QRM-Gemma-2-27B", "Skywork_Skywork-Reward-Gemma-2-27B",
             "nicolinho_QRM-Llama3.1-8B", "RLHFlow_ArmoRM-Llama3-8B-v0.1"]
    runs = []
    for name in names:
        table = read_dictionary_scores(folder / f"big2_rewards_{name}.csv")
        run = tmp_path / name
        write_results(table, run / "merged.parquet", build_manifest("rm-scores"))
        write_results(table, run / "shards" / "s.parquet", build_manifest("rm-scores"))  # not re-read
        runs.append(run)
    result = analyze(runs, "big-two-nouns", **FAST)
    assert len(result.units) == 4 * 54 * 2 and result.mixed.fixed.loc[1, "df"] == 2
