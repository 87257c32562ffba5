"""Paper §4 over many LMs: the LM registry, --device-map, the released log-prob importer, lm-values
pairs, and implicit rewards of all Gemma x Llama instruct pairs on the common vocabulary (issue 14)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from _lm_runs import synthetic_run
from rmvalues.cli import main
from rmvalues.errors import ChecksumError, InputError
from rmvalues.implicit import renormalize
from rmvalues.store.logprob_runs import LogprobRun, load_run, save_run

# The authors' config/models.yaml (commit afa052b): hub id -> (type, family).
AUTHORS_MODELS = {
    "google/gemma-2-2b": ("pretrained", "gemma"),
    "google/gemma-2-2b-it": ("instruct", "gemma"),
    "google/gemma-2-9b-it": ("instruct", "gemma"),
    "google/gemma-2-27b-it": ("instruct", "gemma"),
    "meta-llama/Llama-3.2-3B": ("pretrained", "llama"),
    "meta-llama/Llama-3.2-3B-Instruct": ("instruct", "llama"),
    "meta-llama/Llama-3.2-1B-Instruct": ("instruct", "llama"),
    "meta-llama/Meta-Llama-3-8B-Instruct": ("instruct", "llama"),
    "meta-llama/Llama-3.1-8B-Instruct": ("instruct", "llama"),
    "meta-llama/Meta-Llama-3-70B-Instruct": ("instruct", "llama"),
    "meta-llama/Llama-3.1-70B-Instruct": ("instruct", "llama"),
    "meta-llama/Llama-3.3-70B-Instruct": ("instruct", "llama"),
}


@pytest.fixture(scope="module")
def prompt_ids():
    from rmvalues.prompts import load_prompt_set

    return load_prompt_set("paper-54").ids


def _cli(capsys, *args):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def _run(model, tokens, prompt_ids, seed, boost=()):
    return synthetic_run(model, tokens, prompt_ids, seed, {t for t in tokens if t.strip() in boost})


# --- the registry ---------------------------------------------------------------------------------


def test_registry_holds_the_authors_twelve_lms():
    from rmvalues.models.lm_registry import find_lm, known_lms, paper_lms

    paper = paper_lms()
    assert {s.hub_id: (s.kind, s.family) for s in paper} == AUTHORS_MODELS
    assert all(s.dtype == "bfloat16" and s.released for s in paper)
    assert sum(s.kind == "instruct" and s.family == "gemma" for s in paper) * \
        sum(s.kind == "instruct" and s.family == "llama" for s in paper) == 21
    assert {s.key for s in paper if s.shard} == {"llama-3-70b-instruct", "llama-3.1-70b-instruct",
                                                 "llama-3.3-70b-instruct"}
    assert all(s.template_notes for s in known_lms().values())
    assert {s.family for s in known_lms().values()} == {"gemma", "llama", "qwen"}
    spec = find_lm("meta-llama--Llama-3.1-8B-Instruct.csv")  # the released file name
    assert spec is not None and spec.key == "llama-3.1-8b-instruct"


def test_resolve_options_fill_from_the_registry(tmp_path):
    from rmvalues.models.lm_registry import resolve_lm_options

    assert resolve_lm_options("gemma-2-2b-it", None, None)[:3] == \
        ("google/gemma-2-2b-it", "instruct", "bfloat16")
    assert resolve_lm_options("meta-llama/Llama-3.2-3B", None, "float32")[:3] == \
        ("meta-llama/Llama-3.2-3B", "pretrained", "float32")
    with pytest.raises(InputError, match="contradicts the registry"):
        resolve_lm_options("gemma-2-2b", "instruct", None)
    with pytest.raises(InputError, match="--kind is needed"):
        resolve_lm_options("someone/unknown-lm", None, None)
    # a local folder is never looked up, even when named like a key
    folder = tmp_path / "gemma-2-2b"
    folder.mkdir()
    assert resolve_lm_options(str(folder), "instruct", None) == \
        (str(folder), "instruct", "float32", None)


def test_logprobs_model_key_passes_the_registry_entry(monkeypatch, tmp_path, capsys):
    import rmvalues.engines.logprobs as engine

    seen = {}

    def fake(model, **kw):
        seen.update(model=model, **kw)
        return LogprobRun(model=model, prompt_ids=["a"], token_ids=[0], tokens=["x"],
                          normalized=["x"], logprobs=[[0.0]], meta={"padded_rows_excluded": 0})

    monkeypatch.setattr(engine, "run_logprobs", fake)
    code, text = _cli(capsys, "logprobs", "--model", "llama-3.3-70b-instruct", "--out",
                      tmp_path, "--device-map", "auto")
    assert code == 0, text
    assert (seen["model"], seen["kind"], seen["dtype"], seen["device_map"]) == \
        ("meta-llama/Llama-3.3-70B-Instruct", "instruct", "bfloat16", "auto")
    code, text = _cli(capsys, "logprobs", "--model", "someone/unknown", "--out", tmp_path)
    assert code == 2 and "--kind is needed" in text


def test_device_map_run_equals_the_device_run(tmp_path):
    """A device_map load (accelerate's dispatch) gives the same log-probs as .to(device)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from rmvalues.engines.logprobs import run_logprobs
    from rmvalues.models.tokenizers import bundled_tokenizer

    tok = bundled_tokenizer("llama3")
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32,
                         num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                         bos_token_id=tok.bos_token_id)
    LlamaForCausalLM(config).save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    plain = run_logprobs(tmp_path / "m", kind="instruct", prompts="facct-3")
    sharded = run_logprobs(tmp_path / "m", kind="instruct", prompts="facct-3",
                           device_map={"": "cpu"}, out_dir=tmp_path / "run")
    np.testing.assert_array_equal(plain.logprobs, sharded.logprobs)
    manifest = json.loads((tmp_path / "run" / "logprobs.manifest.json").read_text())
    assert manifest["fields"]["load"]["device_map"] == {"": "cpu"}


# --- the released log-prob CSVs -------------------------------------------------------------------


def _released_csv(path, prompt_ids, seed=0):
    """A CSV in the authors' format (scripts/generate_logprobs.py): token_id, token_name,
    token_decoded, one log-prob column per prompt; some decoded strings look like NA values."""
    tokens = ["Love", " love", "null", "NaN", "", "Freedom", "▁the", "<bos>"]
    names = ["Love", "▁love", "null", "NaN", "<pad>", "Freedom", "▁▁the", "<bos>"]
    rng = np.random.default_rng(seed)
    lp = renormalize(rng.normal(size=(len(prompt_ids), len(tokens))))
    frame = pd.DataFrame({"token_id": np.arange(len(tokens)) * 2, "token_name": names,
                          "token_decoded": tokens})
    for i, pid in enumerate(prompt_ids):
        frame[pid] = lp[i]
    frame.to_csv(path, index=False)
    return tokens, lp


def test_import_released_csv_pins_sha256_on_first_download(tmp_path, monkeypatch, prompt_ids):
    from rmvalues.analysis.released_logprobs import (
        fetch_released_logprobs,
        import_released_logprobs,
        recorded_sha256,
    )
    from rmvalues.io import sha256_file
    from rmvalues.models.lm_registry import get_lm

    monkeypatch.setenv("RMVALUES_CACHE", str(tmp_path / "cache"))
    release = tmp_path / "release"
    release.mkdir()
    tokens, lp = _released_csv(release / "google--gemma-2-2b-it.csv", prompt_ids)
    paths = import_released_logprobs(tmp_path / "runs", ["gemma-2-2b-it"], data_dir=release)
    assert paths == [tmp_path / "runs" / "gemma-2-2b-it" / "logprobs.parquet"]
    run = load_run(paths[0])
    assert run.model == "google/gemma-2-2b-it" and run.prompt_ids == prompt_ids
    assert run.tokens == tokens and list(run.token_ids) == [0, 2, 4, 6, 8, 10, 12, 14]
    np.testing.assert_allclose(run.logprobs, lp, rtol=1e-6)
    assert run.meta["model_kind"] == "instruct" and run.meta["family"] == "gemma"
    sha = sha256_file(release / "google--gemma-2-2b-it.csv")
    assert recorded_sha256() == {"google--gemma-2-2b-it.csv": sha}
    assert run.meta["source"]["sha256"] == sha
    assert run.meta["source"]["dataset"] == "Oxford-HIPlab/iclr2026-lm-logprobs"
    # a changed file no longer matches the sha256 recorded on first download
    _released_csv(release / "google--gemma-2-2b-it.csv", prompt_ids, seed=1)
    (tmp_path / "cache" / "lm-logprobs" / "google--gemma-2-2b-it.csv").unlink()
    with pytest.raises(ChecksumError, match="recorded"):
        fetch_released_logprobs(get_lm("gemma-2-2b-it"), release)
    with pytest.raises(InputError, match="not in the authors' release"):
        fetch_released_logprobs(get_lm("qwen2.5-3b"), release)


def test_import_refuses_files_of_another_format(tmp_path, prompt_ids):
    from rmvalues.analysis.released_logprobs import read_released_logprobs

    bad = tmp_path / "x.csv"
    pd.DataFrame({"token_id": [0], "token_decoded": ["a"], "best_ever_one": [0.0]}).to_csv(bad,
                                                                                          index=False)
    with pytest.raises(InputError, match="first columns"):
        read_released_logprobs(bad, "m")
    pd.DataFrame({"token_id": [0], "token_name": ["a"], "token_decoded": ["a"],
                  "greatest": [0.0]}).to_csv(bad, index=False)
    with pytest.raises(InputError, match="not prompts of paper-54"):
        read_released_logprobs(bad, "m")


def test_import_logprobs_cli_offline(tmp_path, monkeypatch, capsys, prompt_ids):
    monkeypatch.setenv("RMVALUES_CACHE", str(tmp_path / "cache"))
    release = tmp_path / "release"
    release.mkdir()
    _released_csv(release / "meta-llama--Llama-3.2-3B.csv", prompt_ids)
    code, text = _cli(capsys, "import-logprobs", "--out", tmp_path / "runs", "--model",
                      "llama-3.2-3b", "--data-dir", release)
    assert code == 0, text
    assert (tmp_path / "runs" / "llama-3.2-3b" / "logprobs.manifest.json").exists()
    code, text = _cli(capsys, "import-logprobs", "--out", tmp_path / "runs", "--model",
                      "gemma-2-2b", "--data-dir", release)
    assert code == 2 and "is not in the offline folder" in text


# --- lm-values over pairs ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fig2_runs(prompt_ids):
    from rmvalues.lexicons import load_lexicon

    lex = load_lexicon("big-two-nouns")
    agency, communion = lex.terms("Agency"), lex.terms("Communion")
    vocab = ["the", *agency, *communion, "!"]
    return {
        "google/gemma-2-2b": _run("google/gemma-2-2b", vocab, prompt_ids, 1, set(agency)),
        "google/gemma-2-2b-it": _run("google/gemma-2-2b-it", vocab, prompt_ids, 2, set(agency)),
        "meta-llama/Llama-3.2-3B": _run("meta-llama/Llama-3.2-3B", vocab[:-5], prompt_ids, 3,
                                        set(communion)),
        "meta-llama/Llama-3.2-3B-Instruct": _run("meta-llama/Llama-3.2-3B-Instruct", vocab,
                                                 prompt_ids, 4, set(communion)),
    }


@pytest.mark.parametrize("pairing, expected", [
    ("kind", [{"google/gemma-2-2b", "meta-llama/Llama-3.2-3B"},
              {"google/gemma-2-2b-it", "meta-llama/Llama-3.2-3B-Instruct"}]),
    ("family", [{"google/gemma-2-2b", "google/gemma-2-2b-it"},
                {"meta-llama/Llama-3.2-3B", "meta-llama/Llama-3.2-3B-Instruct"}]),
])
def test_lm_values_pairs_equal_each_pair_on_its_own(fig2_runs, pairing, expected, tmp_path):
    from rmvalues.analysis.lm_pairs import write_lm_values_pairs
    from rmvalues.analysis.lm_values import lm_values

    results = write_lm_values_pairs(list(fig2_runs.values()), tmp_path, pairing=pairing)
    assert [set(r.models) for r in results.values()] == expected
    for name, res in results.items():
        alone = lm_values([fig2_runs[m] for m in res.models], "big-two-nouns")
        pd.testing.assert_frame_equal(res.anova, alone.anova)
        pd.testing.assert_frame_equal(res.posthoc, alone.posthoc)
        assert (tmp_path / name / "lm_units.csv").exists()
        assert (tmp_path / name / "manifest.json").exists()
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["fields"]["pairing"] == pairing
    assert len(pd.read_csv(tmp_path / "pairs.csv")) == 2


def test_lm_values_all_and_joint(fig2_runs, tmp_path):
    from rmvalues.analysis.lm_pairs import write_lm_values_pairs

    assert len(write_lm_values_pairs(list(fig2_runs.values()), tmp_path / "a", pairing="all")) == 6
    joint = write_lm_values_pairs(list(fig2_runs.values()), tmp_path / "j", pairing="joint")
    res = joint["joint"]
    assert len(res.models) == 4 and res.units["model"].nunique() == 4
    assert len(res.posthoc) == 6 * 4  # every model pair in every category x framing cell
    assert res.formula.endswith("C(model)")


def test_lm_values_pairs_errors(fig2_runs, tmp_path, capsys):
    from rmvalues.analysis.lm_pairs import write_lm_values_pairs

    gemma = [fig2_runs["google/gemma-2-2b"], fig2_runs["google/gemma-2-2b-it"]]
    with pytest.raises(InputError, match="same kind from two families"):
        write_lm_values_pairs(gemma, tmp_path, pairing="kind")
    unknown = _run("someone/lm", ["a"], fig2_runs["google/gemma-2-2b"].prompt_ids, 0)
    with pytest.raises(InputError, match="family/kind are unknown"):
        write_lm_values_pairs([unknown, *gemma], tmp_path, pairing="all")
    for m, run in fig2_runs.items():
        save_run(run, tmp_path / "runs" / m.split("/")[1])
    code, text = _cli(capsys, "lm-values", "--runs", tmp_path / "runs", "--out", tmp_path / "o")
    assert code == 0, text
    assert "gemma-2-2b__vs__llama-3.2-3b" in text
    code, text = _cli(capsys, "lm-values", "--runs", tmp_path / "runs", "--out", tmp_path / "o",
                      "--pairs", "nope")
    assert code == 2 and "unknown pairing" in text


# --- implicit rewards of the 21 instruct pairs ------------------------------------------------------

INSTRUCT = [m for m, (kind, _) in AUTHORS_MODELS.items() if kind == "instruct"]


@pytest.fixture(scope="module")
def instruct_runs(prompt_ids):
    """Ten instruct runs with overlapping but different vocabularies (duplicates, variants)."""
    base = [f"w{i}" for i in range(40)] + ["Love", " love", "LOVE", "Freedom", " freedom", "\n"]
    runs = {}
    for i, model in enumerate(INSTRUCT):
        rng = np.random.default_rng(100 + i)
        vocab = [t for t in base if rng.random() > 0.1 or t in ("Love", "Freedom")]
        vocab += [f"only{i}_{j}" for j in range(5)] + ["Love"]  # a duplicate decoded string
        boost = {"freedom"} if "llama" in model else {"love"}
        runs[model] = _run(model, vocab, prompt_ids[::9], 10 + i,
                           boost={t.strip() for t in vocab if t.strip().lower() in boost})
    return runs


def _authors_fig3(runs, prompt="greatest_ever_one", targets=("Freedom", "Love")):
    """The authors' generate_figure_3.py, restated: per model the max log-prob per decoded string,
    strings common to all models, MWLR(llama, gemma), mean over strip().lower() variants."""
    series = {}
    for model, run in runs.items():
        col = run.logprobs[run.prompt_ids.index(prompt)]
        frame = pd.DataFrame({"tok": run.tokens, "lp": col})
        series[model] = frame.groupby("tok")["lp"].max()
    common = sorted(set.intersection(*(set(s.index) for s in series.values())))
    rows = {}
    for llama in [m for m in runs if m.startswith("meta-llama/")]:
        for gemma in [m for m in runs if m.startswith("google/")]:
            l1, l2 = series[llama].loc[common].to_numpy(), series[gemma].loc[common].to_numpy()
            mw = 0.5 * (np.exp(l1) + np.exp(l2)) * (l1 - l2)
            for t in targets:
                mask = np.array([c.strip().lower() == t.lower() for c in common])
                rows[(gemma, llama, t)] = mw[mask].mean()
    return rows, common


def test_all_instruct_pairs_equal_the_authors_fig3(instruct_runs, tmp_path):
    from rmvalues.analysis.lm_pairs import write_implicit_pairs

    res = write_implicit_pairs(list(instruct_runs.values()), tmp_path, k=3)
    assert len(res.pairs) == 21 and len(res.folders) == 21
    expected, common = _authors_fig3(instruct_runs)
    assert res.n_common == len(common)
    scores = pd.read_csv(tmp_path / "target_scores.csv")
    assert set(scores["prompt_id"]) == {"greatest_ever_one"}
    got = {(r.p_model, r.q_model, r.target): r.score for r in scores.itertuples()}
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-5, abs=1e-9)
    # each pair's table is on the common vocabulary, all prompts; Table 1 names the pair
    folder = tmp_path / "gemma-2-9b-it__llama-3.3-70b-instruct"
    table = pd.read_parquet(folder / "mwlr.parquet")
    assert set(table["key"]) == set(common) and table["prompt_id"].nunique() == 6
    tb = pd.read_csv(folder / "top_bottom.csv", keep_default_na=False)
    assert set(tb["p_model"]) == {"google/gemma-2-9b-it"}
    assert set(tb["q_model"]) == {"meta-llama/Llama-3.3-70B-Instruct"}
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["fields"]["n_pairs"] == 21


def test_report_draws_every_pair(instruct_runs, tmp_path):
    from rmvalues.analysis.lm_pairs import write_implicit_pairs
    from rmvalues.report import write_report

    write_implicit_pairs(list(instruct_runs.values()), tmp_path / "pairs", k=3)
    page = write_report(tmp_path / "pairs", out_dir=tmp_path / "report").read_text("utf-8")
    assert "for 21 model pairs" in page  # Fig 3 caption
    assert page.count("<h4>") == 21  # one Table 1 per pair
    assert len(list((tmp_path / "report" / "tables").glob("table1_pair*.tex"))) == 21


def test_report_says_which_second_tables_it_left_out(fig2_runs, tmp_path):
    from rmvalues.analysis.lm_pairs import write_lm_values_pairs
    from rmvalues.report.inputs import load_report_inputs

    write_lm_values_pairs(list(fig2_runs.values()), tmp_path, pairing="kind")
    inputs = load_report_inputs([tmp_path])
    assert inputs.lm_units is not None
    assert any("lm_units" in note and "only the first is drawn" in note
               for note in inputs.left_out)


def test_implicit_pairs_errors_and_cli(instruct_runs, tmp_path, capsys):
    from rmvalues.analysis.lm_pairs import write_implicit_pairs

    llama = [r for m, r in instruct_runs.items() if m.startswith("meta-llama/")]
    with pytest.raises(InputError, match="from llama only"):
        write_implicit_pairs(llama, tmp_path / "x")
    for m, run in instruct_runs.items():
        save_run(run, tmp_path / "runs" / m.split("/")[1])
    code, text = _cli(capsys, "implicit", "--pairs", "all-instruct", "--runs", tmp_path / "runs",
                      "--out", tmp_path / "o", "--k", "2")
    assert code == 0, text
    assert "21 pairs on" in text and (tmp_path / "o" / "target_scores.csv").exists()
    code, text = _cli(capsys, "implicit", "--out", tmp_path / "o2")
    assert code == 2 and "give --p and --q" in text


def test_figure3_caption_names_pairs_without_a_target():
    from rmvalues.report.mwlr import figure3

    rows = [("google/gemma-2-2b-it", "meta-llama/Llama-3.2-1B-Instruct", "p", "Freedom", 0.1, 1),
            ("google/gemma-2-2b-it", "meta-llama/Llama-3.2-1B-Instruct", "p", "Love", -0.1, 1),
            ("google/gemma-2-9b-it", "meta-llama/Llama-3.2-1B-Instruct", "p", "Freedom", 0.2, 1),
            ("google/gemma-2-9b-it", "meta-llama/Llama-3.2-1B-Instruct", "p", "Love", np.nan, 0)]
    frame = pd.DataFrame(rows, columns=["p_model", "q_model", "prompt_id", "target", "score",
                                        "n_variants"])
    result = figure3(frame)
    assert "Not shown" in result.caption and "Love for" in result.caption
    assert result.caption.count("Love for") == 1
    result.close()
