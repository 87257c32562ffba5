"""`reproduce` on rank_results_*.csv files with every trait of the real released ones (issue 13).

The real files (upstream commit 5d8d2e9) hold: exact duplicate rows from a merge (60,956 rows, 84
distinct), ``NA`` as base_model for a Qwen model, extra columns and a first column ``X`` of NA,
two byte-identical files under different names, and last checkpoints that differ between files.
Small synthetic files with each trait stand in for them here.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

from _released import pin_local_copy
from rmvalues.analysis.checkpoints import family_gap_table, final_checkpoint_table
from rmvalues.analysis.datasets import get_dataset
from rmvalues.analysis.importers import read_rank_results
from rmvalues.analysis.reproduce import format_report, load_rank_results, reproduce
from rmvalues.cli import main

HEADER = '"","model_id","Category","checkpoint","base_model","sum_value"\n'
#: (model id, base_model as written, last checkpoint, Agency rank, Communion rank at the end)
MODELS = [("google--gemma-2b-it", "Gemma", 3000, 600.0, 800.0),
          ("meta-llama--Llama-3.2-3B", "Llama", 2500, 700.0, 650.0),
          ("Qwen2.5-3B-Instruct", "NA", 3000, 750.0, 720.0)]


def _rows(models, repeat: int = 1) -> list[str]:
    out = []
    for model, base, last, agency, communion in models:
        for category, final in (("Agency", agency), ("Communion", communion)):
            for step in range(1000, last + 1, 500):
                value = final if step == last else final + 37.5
                out += [f'"{model}","{category}",{step},{"NA" if base == "NA" else chr(34) + base + chr(34)},{value:g}'] * repeat
    return out


def _write_indexed(path, rows) -> None:
    """R's write.csv: a quoted row-number first column named ""."""
    path.write_text(HEADER + "".join(f'"{i}",{r}\n' for i, r in enumerate(rows, 1)))


def write_upstream_like(root):
    """A folder laid out like upstream ``data/reward_model_training/`` with every real trait."""
    folder = root / "reward_model_training"
    folder.mkdir(parents=True)
    _write_indexed(folder / "rank_results_uf_13.csv", _rows(MODELS))
    (folder / "rank_results_uf_27.csv").write_bytes((folder / "rank_results_uf_13.csv").read_bytes())
    _write_indexed(folder / "rank_results_uf_54.csv", _rows(MODELS, repeat=7))  # merge duplicates
    _write_indexed(folder / "rank_results_uf_100.csv", _rows(MODELS[1:]))  # no Gemma at all
    later = [(m, b, 4000, a + 10, c - 10) for m, b, _, a, c in MODELS[:2]]
    _write_indexed(folder / "rank_results_sky_80k.csv", _rows(later))
    (folder / "rank_results_grm_80k.csv").write_text(
        '"X","model_id","Category","checkpoint","base_model","sum_value","data_size","data_source",'
        '"method","prompt"\n'
        'NA,"R-Lla-3B","Agency",1,"Llama",678,85,"skywork","GRM","Greatest"\n'
        'NA,"R-Lla-3B","Communion",1,"Llama",725,85,"skywork","GRM","Greatest"\n'
        'NA,"R-Gem-2B","Agency",1,"Gemma",720.5,85,"skywork","GRM","Greatest"\n'
        'NA,"R-Gem-2B","Communion",1,"Gemma",647.5,85,"skywork","GRM","Greatest"\n')
    return folder


@pytest.fixture
def upstream(tmp_path, monkeypatch):
    """The synthetic folder, with the registry's hashes pointed at it (the layout stays pinned)."""
    folder = write_upstream_like(tmp_path / "data")
    pin_local_copy(monkeypatch, "rank-results", folder)
    monkeypatch.setenv("RMVALUES_CACHE", str(tmp_path / "cache"))
    return folder


def test_registry_pins_every_released_file():
    for name in ("big2-nouns", "mfd2", "rank-results"):
        assert get_dataset(name).pinned, name
    mfd = get_dataset("mfd2")
    assert len(mfd.files) == 10 and {f.split("_rewards_")[0] for f in mfd.files} == {"MFD20", "big2"}
    rank = get_dataset("rank-results")
    assert rank.files["rank_results_uf_13.csv"] == rank.files["rank_results_uf_27.csv"]
    assert set(rank.runs) == set(rank.files)
    assert rank.runs["rank_results_grm_80k.csv"] == {"data_size": 550, "data_source": "uf+skywork",
                                                     "method": "GRM"}


def test_reader_handles_index_column_na_base_and_extra_columns(upstream):
    grm = read_rank_results(upstream / "rank_results_grm_80k.csv")
    assert "X" not in grm.columns and {"data_size", "prompt"} <= set(grm.columns)
    assert set(grm["base"]) == {"Llama", "Gemma"}
    uf = read_rank_results(upstream / "rank_results_uf_13.csv")
    assert "" not in uf.columns and "Unnamed: 0" not in uf.columns
    qwen = uf[uf["model"] == "Qwen2.5-3B-Instruct"]
    assert set(qwen["base"]) == {"Qwen"} and uf.attrs["base_inferred"] == ["Qwen2.5-3B-Instruct"]
    odd = upstream / "odd.csv"
    odd.write_text(HEADER + '"1","my-rm","Agency",1,NA,5\n')
    assert read_rank_results(odd)["base"].tolist() == ["my-rm"]  # its own level


def test_duplicates_identical_files_and_last_checkpoints(upstream):
    paths = sorted(upstream.glob("*.csv"))
    table, files = load_rank_results(paths, get_dataset("rank-results").runs)
    by_name = {f.name: f for f in files}
    dup = by_name["rank_results_uf_54.csv"]
    assert dup.rows == 7 * dup.distinct and "collapsed" in dup.summary()
    assert by_name["rank_results_uf_27.csv"].identical_to == "rank_results_uf_13.csv"
    assert "byte-identical" in by_name["rank_results_uf_27.csv"].summary()
    assert set(table["source"]) == {p.name for p in paths} - {"rank_results_uf_27.csv"}
    assert not table.duplicated().any()
    # the registry's training set replaces what the GRM file says about itself
    grm = table[table["source"] == "rank_results_grm_80k.csv"]
    assert set(grm["data_size"]) == {550} and set(grm["data_source"]) == {"uf+skywork"}
    final = final_checkpoint_table(table)
    uf13 = final[final["source"] == "rank_results_uf_13.csv"].set_index(["model", "category"])
    # each model keeps its own last checkpoint (Llama stopped at 2500, the others at 3000)
    assert uf13.loc[("meta-llama--Llama-3.2-3B", "Agency"), "checkpoint"] == 2500
    assert uf13.loc[("meta-llama--Llama-3.2-3B", "Agency"), "median_rank"] == 700
    assert uf13.loc[("google--gemma-2b-it", "Agency"), "checkpoint"] == 3000
    sky = final[final["source"] == "rank_results_sky_80k.csv"]
    assert set(sky["checkpoint"]) == {4000}


def test_gap_per_category_and_training_set(upstream):
    table, _ = load_rank_results(sorted(upstream.glob("*.csv")), get_dataset("rank-results").runs)
    gap = family_gap_table(final_checkpoint_table(table)).set_index(["source", "category"])
    assert gap.loc[("rank_results_uf_13.csv", "Agency"), "Llama_minus_Gemma"] == 700 - 600
    assert gap.loc[("rank_results_uf_13.csv", "Communion"), "Llama_minus_Gemma"] == 650 - 800
    assert gap.loc[("rank_results_grm_80k.csv", "Agency"), "Llama_minus_Gemma"] == 678 - 720.5
    assert pd.isna(gap.loc[("rank_results_uf_100.csv", "Agency"), "Llama_minus_Gemma"])  # no Gemma


def test_reproduce_finishes_on_an_upstream_like_folder(upstream, tmp_path, capsys):
    report = reproduce(upstream.parent, datasets=["rank-results"], compare=False)
    assert report.status == {"rank-results": "done"} and not report.failed
    text = format_report(report)
    assert "6 exact duplicate(s) collapsed" not in text  # counted per file, not per model
    assert "byte-identical to rank_results_uf_13.csv" in text and "Llama - Gemma" in text
    assert len(text.splitlines()) < 80  # a summary per file, never the rows
    out = tmp_path / "rep"
    rc = main(["reproduce", "--data", str(upstream.parent), "--dataset", "rank-results",
               "--no-compare", "--out", str(out)])
    printed = capsys.readouterr().out
    assert rc == 0, printed
    assert "rank-results: done" in printed
    gap = pd.read_csv(out / "fig4b_llama_minus_gemma.csv")
    assert {"source", "category", "Llama", "Gemma", "Llama_minus_Gemma"} <= set(gap.columns)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["fields"]["datasets"] == {"rank-results": "done"}
    assert (out / "report" / "figures" / "fig4b.png").exists()  # drawn, whatever the families


def test_one_failing_dataset_never_hides_another(upstream, tmp_path, capsys):
    bad = upstream.parent / "dict_big2_nouns"
    bad.mkdir()
    (bad / "big2_rewards_LxzGordon_URM-LLaMa-3.1-8B.csv").write_text("response,p\nx,1\n")
    report = reproduce(upstream.parent, datasets=["big2-nouns", "rank-results"], compare=False,
                       n_resamples=99, n_boot=50)
    assert report.status["rank-results"] == "done"
    assert report.status["big2-nouns"].startswith("skipped:") and report.failed == ["big2-nouns"]
    rc = main(["reproduce", "--data", str(upstream.parent), "--dataset", "big2-nouns",
               "--dataset", "rank-results", "--no-compare", "--resamples", "99"])
    captured = capsys.readouterr()
    assert rc != 0 and "not reproduced: big2-nouns" in captured.err
    assert "rank-results: done" in captured.out


def test_fig4b_is_drawn_whatever_families_the_table_holds():
    from rmvalues.errors import InputError
    from rmvalues.report.training import figure4b

    only_qwen = pd.DataFrame({"model": ["Qwen2.5-3B-Instruct"] * 2, "base": ["Qwen"] * 2,
                              "category": ["Agency", "Communion"], "data_size": [13, 13],
                              "data_source": ["uf", "uf"], "method": ["BT", "BT"],
                              "median_rank": [5.0, 6.0], "checkpoint": [3, 3]})
    drawn = figure4b(only_qwen)
    assert set(drawn.data["base"]) == {"qwen"} and len(drawn.data) == 2
    with pytest.raises(InputError, match="no run has data_size"):  # not matplotlib's ValueError
        figure4b(only_qwen.assign(data_size=float("nan")))
