"""`analyze-training` (issue 14, §5): sweeps -> Fig 4a/5 tables on the token intersection, the
released rank_results mapped to (data size, source, method) by explicit data -> Fig 4b, a report."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from rmvalues.analysis.checkpoints import checkpoint_units
from rmvalues.cli import main
from rmvalues.errors import AnalysisError, InputError
from rmvalues.lexicons import load_lexicon, paper_normalize


@pytest.fixture(scope="module")
def lex():
    return load_lexicon("big-two-expanded")


@pytest.fixture(scope="module")
def intersection(shared_dir):
    import csv

    with open(shared_dir / "paper-data" / "token_intersection.csv", newline="", encoding="utf-8") as fh:
        return {r["token_decoded"] for r in csv.DictReader(fh)}


@pytest.fixture(scope="module")
def words(lex, intersection):
    """40 words of each category that are whole decoded tokens of all three families."""
    return {c: [w for w in lex.terms(c) if w in intersection][:40] for c in ("Agency", "Communion")}


def _sweep(folder, base, words, boost, seed, outsider=True):
    """A sweep table as `rmvalues sweep` writes it: 3 checkpoints, two prompts."""
    rng = np.random.default_rng(seed)
    words = words["Agency"] + words["Communion"] + ["the", "and", "of", "accomplishing"]
    if outsider:
        words = words + ["Leadership\u00a0"]  # a lexicon word in a form no tokenizer shares
    rows = []
    for step in (1, 2, 4):
        for pid in ("greatest_ever_one", "best_ever_one"):
            for w in words:
                s = rng.normal() + (step * 0.5 if w in boost else 0.0)
                if w.endswith("\u00a0"):
                    s = 50.0
                rows.append(("rm-" + base, pid, "token", 0, w, paper_normalize(w), s, step))
    frame = pd.DataFrame(rows, columns=["model", "prompt_id", "candidate_kind", "token_id",
                                        "candidate", "normalized", "score", "checkpoint"])
    folder.mkdir(parents=True)
    frame.to_parquet(folder / "sweep.parquet", index=False)
    (folder / "sweep.manifest.json").write_text(json.dumps(
        {"kind": "rm-checkpoint-sweep",
         "fields": {"base": {"source": f"org/{base}-2b"}, "model": "rm-" + base}}))
    return frame


def _rank_results(folder, name, step_values):
    rows = [(f"google--gemma-2-2b-{name}", cat, step, v + (0 if cat == "Agency" else 10), "x")
            for step, v in step_values for cat in ("Agency", "Communion")]
    rows += [(f"meta-llama--Llama-3.2-3B-{name}", cat, step, v + 5, "x")
             for step, v in step_values for cat in ("Agency", "Communion")]
    frame = pd.DataFrame(rows, columns=["model_id", "Category", "checkpoint", "sum_value", "X"])
    path = folder / name
    frame.to_csv(path, index=False)
    return path


def test_sweeps_to_fig4a_and_5_tables(tmp_path, lex, words, intersection):
    from rmvalues.analysis.training_dynamics import analyze_training

    assert len(words["Agency"]) == len(words["Communion"]) == 40
    g = _sweep(tmp_path / "g", "gemma", words, set(words["Agency"]), 1)
    ll = _sweep(tmp_path / "l", "llama", words, set(words["Communion"]), 2)
    res = analyze_training([tmp_path / "g", tmp_path / "l"], lexicon=lex)
    units = res.checkpoints
    assert set(units["base"]) == {"Gemma", "Llama"}
    assert set(units["prompt_id"]) == {"greatest_ever_one"}
    # equal to the checkpoint units of the sweeps' candidates in the intersection file
    both = pd.concat([g, ll])
    kept = both[(both["prompt_id"] == "greatest_ever_one") & both["candidate"].isin(intersection)]
    assert len(kept) < len(both[both["prompt_id"] == "greatest_ever_one"])
    expected = checkpoint_units(kept, lex)
    pd.testing.assert_frame_equal(units.drop(columns="base"), expected)
    # training moves the boosted category up (smaller median rank) for each family
    last = units[units["checkpoint"] == 4].set_index(["base", "category"])["median_rank"]
    assert last["Gemma", "Agency"] < last["Gemma", "Communion"]
    assert last["Llama", "Communion"] < last["Llama", "Agency"]
    changes = res.rank_changes
    assert set(changes["start"]) == {1} and set(changes["end"]) == {4}
    assert set(changes["base"]) == {"Gemma", "Llama"}
    # "accomplishing" is a lexicon word but no shared token: ranked only without the filter
    assert "accomplishing" not in intersection
    assert "accomplishing" not in set(changes["item"])
    raw = analyze_training([tmp_path / "g"], lexicon=lex, strings=None)
    assert "accomplishing" in set(raw.rank_changes["item"])


def test_released_rank_results_get_their_run_facts(tmp_path):
    from rmvalues.analysis.training_dynamics import analyze_training

    paths = [_rank_results(tmp_path, "rank_results_uf_54.csv", [(100, 300), (200, 250)]),
             _rank_results(tmp_path, "rank_results_grm_80k.csv", [(900, 420)])]
    res = analyze_training(rank_results=paths)
    table = res.final_checkpoint
    facts = table.groupby("source")[["data_size", "data_source", "method", "checkpoint"]].first()
    assert facts.loc["rank_results_uf_54.csv"].tolist() == [53, "uf", "BT", 200]
    assert facts.loc["rank_results_grm_80k.csv"].tolist() == [550, "uf+skywork", "GRM", 1]
    assert set(table["base"]) == {"Gemma", "Llama"}
    assert len(table) == 2 * 2 * 2  # two files x two models x two categories, last checkpoint
    # an override file changes one fact of one file; unknown files are an error naming them
    (tmp_path / "map.toml").write_text('[files."rank_results_uf_54.csv"]\ndata_size = 54\n')
    res = analyze_training(rank_results=paths, rank_results_map=tmp_path / "map.toml")
    assert set(res.final_checkpoint.loc[res.final_checkpoint["source"] == "rank_results_uf_54.csv",
                                        "data_size"]) == {54}
    other = _rank_results(tmp_path, "rank_results_new.csv", [(1, 1)])
    with pytest.raises(InputError, match="rank_results_new.csv"):
        analyze_training(rank_results=[other])


def test_reproduce_and_analyze_training_share_the_registry_facts():
    from rmvalues.analysis.datasets import get_dataset
    from rmvalues.analysis.rank_results_runs import rank_results_map

    # one source for each file's training set: the registry that `reproduce` reads
    mapping = rank_results_map()
    for name, facts in get_dataset("rank-results").runs.items():
        assert {k: mapping[name][k] for k in facts} == facts


def test_errors(tmp_path, lex, words):
    from rmvalues.analysis.training_dynamics import analyze_training

    _sweep(tmp_path / "g", "gemma", words, set(), 1)
    (tmp_path / "none.txt").write_text("zzz-none\n")
    with pytest.raises(AnalysisError, match="leaves no candidate"):
        analyze_training([tmp_path / "g"], lexicon=lex, strings=str(tmp_path / "none.txt"))
    with pytest.raises(InputError, match="no prompt 'worst_ever_one'"):
        analyze_training([tmp_path / "g"], lexicon=lex, prompt="worst_ever_one")
    with pytest.raises(InputError, match="nothing to analyse"):
        analyze_training()


def test_cli_writes_tables_and_figures(tmp_path, words, capsys):
    _sweep(tmp_path / "g", "gemma", words, set(words["Agency"]), 1)
    _sweep(tmp_path / "q", "mystery", words, set(), 3)
    rr = _rank_results(tmp_path, "rank_results_sky_80k.csv", [(5, 200)])
    code = main(["analyze-training", "--sweep", str(tmp_path / "g"), "--sweep", str(tmp_path / "q"),
                 "--family", f"{tmp_path / 'q'}=Llama", "--rank-results", str(rr),
                 "--out", str(tmp_path / "o")])
    out = capsys.readouterr()
    assert code == 0, out.err
    for name in ("checkpoint_units", "final_checkpoint", "rank_changes"):
        assert (tmp_path / "o" / f"{name}.csv").exists()
    assert json.loads((tmp_path / "o" / "manifest.json").read_text())["kind"] == "training-analysis"
    page = (tmp_path / "o" / "report" / "report.html").read_text("utf-8")
    for title in ("Fig. 4a", "Fig. 4b", "Fig. 5"):
        assert title in page
    code = main(["analyze-training", "--sweep", str(tmp_path / "q"), "--out", str(tmp_path / "x")])
    assert code == 2 and "cannot tell the base family" in capsys.readouterr().err
