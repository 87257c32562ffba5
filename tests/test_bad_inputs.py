"""Every bad input gets one clear error and no output is ever silently wrong (issue 12).

Each test feeds one input from the bad-input audit through the CLI (or the API where the input is
an object) and checks the exit code, the first line of the message, and that no output folder is
left holding a wrong, partial or mixed table. docs/bad-inputs.md lists the same inputs.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from _engine_models import tiny_rm, tiny_rm_dir
from _train_models import tiny_base_dir
from rmvalues.cli import main

PROMPTS = "facct-3"
FEW = "vocab:0-9"


def _cli(capsys, *args):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    # the message's first line (library progress bars may precede it on stderr)
    lines = [line for line in captured.err.splitlines() if line.startswith("error:")]
    return code, (lines[0] if lines else ""), captured.out + captured.err


def _copy_model(src, dst):
    shutil.copytree(src, dst)
    return dst


def _files(folder):
    """Every file under ``folder`` (relative), hidden ones included."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def _no_output(out):
    """Nothing was left: no folder, no lock, no temporary folder beside it."""
    assert not out.exists(), _files(out)
    assert not [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")]


# --- 1. a truncated model.safetensors ------------------------------------------------------------


def test_truncated_safetensors_is_one_clear_error(tmp_path, capsys):
    model = _copy_model(tiny_rm_dir("llama"), tmp_path / "rm")
    weights = model / "model.safetensors"
    with open(weights, "r+b") as fh:
        fh.truncate(weights.stat().st_size // 2)
    out = tmp_path / "out"
    code, first, _ = _cli(capsys, "score", "--model", model, "--out", out, "--prompts", PROMPTS,
                          "--candidates", FEW, "--quiet")
    assert code == 2
    assert first.startswith(f"error: weights file {weights} is truncated or corrupt")
    _no_output(out)
    lm = _copy_model(tiny_base_dir(), tmp_path / "lm")
    with open(lm / "model.safetensors", "r+b") as fh:
        fh.truncate(100)
    code, first, _ = _cli(capsys, "logprobs", "--model", lm, "--kind", "pretrained",
                          "--prompts", PROMPTS, "--out", out)
    assert code == 2 and "truncated or corrupt" in first
    _no_output(out)


# --- 2. --device quantum, --device cuda on a CPU-only torch --------------------------------------


def test_unknown_device_is_one_clear_error(tmp_path, capsys):
    out = tmp_path / "out"
    code, first, _ = _cli(capsys, "score", "--model", tiny_rm_dir("llama"), "--out", out,
                          "--prompts", PROMPTS, "--candidates", FEW, "--device", "quantum")
    assert code == 2
    assert first == "error: --device 'quantum' is not a device torch knows; use cpu, cuda, cuda:N or mps."
    code, first, _ = _cli(capsys, "logprobs", "--model", tiny_base_dir(), "--kind", "pretrained",
                          "--prompts", PROMPTS, "--out", out, "--device", "quantum")
    assert code == 2 and "is not a device torch knows" in first
    _no_output(out)


def test_cuda_on_cpu_only_torch_is_one_clear_error(tmp_path, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.version, "cuda", None)
    out = tmp_path / "out"
    for argv in (["score", "--model", tiny_rm_dir("llama"), "--candidates", FEW],
                 ["logprobs", "--model", tiny_base_dir(), "--kind", "pretrained"]):
        code, first, _ = _cli(capsys, *argv, "--out", out, "--prompts", PROMPTS, "--device", "cuda")
        assert code == 2
        assert first.startswith("error: --device cuda: this torch build has no CUDA support")
        assert "--device cpu" in first
    _no_output(out)


# --- 3. analyze on truncated, garbage or zero-byte Parquet ---------------------------------------


def _scores_frame(model="m", prompts=("p0", "p1"), n=30, seed=0):
    from rmvalues.lexicons import load_lexicon

    terms = list(load_lexicon("big-two-nouns").entries)[:n]
    rng = np.random.default_rng(seed)
    rows = [{"model": model, "prompt_id": p, "candidate_kind": "text", "token_id": None,
             "candidate": t, "normalized": t.lower(), "score": float(rng.normal())}
            for p in prompts for t in terms]
    frame = pd.DataFrame(rows)
    frame["token_id"] = frame["token_id"].astype("Int64")
    return frame


@pytest.mark.parametrize("damage", ["truncated", "garbage", "zero-byte"])
def test_analyze_on_unreadable_parquet_is_one_clear_error(tmp_path, capsys, damage):
    from rmvalues.store.manifest import build_manifest, write_results

    path = write_results(_scores_frame(), tmp_path / "run.parquet", build_manifest("rm-scores"))
    data = path.read_bytes()
    path.write_bytes({"truncated": data[: len(data) // 2], "garbage": b"PAR1 not parquet at all",
                      "zero-byte": b""}[damage])
    out = tmp_path / "analysis"
    code, first, _ = _cli(capsys, "analyze", path, "--out", out)
    assert code == 2
    assert first.startswith(f"error: {path} is not a readable Parquet table")
    _no_output(out)


# --- 4. disk full while writing a shard or a manifest --------------------------------------------


@pytest.mark.parametrize("where", ["shard", "manifest"])
def test_disk_full_is_one_clear_error_and_leaves_nothing_corrupt(tmp_path, capsys, monkeypatch,
                                                                  where):
    import pyarrow.parquet as pq

    import rmvalues.store.manifest as manifest_module

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    if where == "shard":
        monkeypatch.setattr(pq, "write_table", full)
    else:
        monkeypatch.setattr(manifest_module, "atomic_write_text", full)
    out = tmp_path / "out"
    code, first, _ = _cli(capsys, "score", "--model", tiny_rm_dir("llama"), "--out", out,
                          "--prompts", PROMPTS, "--candidates", FEW, "--quiet")
    assert code == 2
    assert first.startswith("error: disk full while writing ")
    assert "nothing half-written was kept" in first
    left = _files(out) if out.exists() else []
    assert not [f for f in left if f.endswith((".parquet", ".tmp", ".json"))], left
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")]  # no lock left


def test_disk_full_in_a_staged_folder_keeps_the_previous_output(tmp_path, capsys, monkeypatch):
    from rmvalues.store.manifest import build_manifest, write_results

    run = write_results(_scores_frame(), tmp_path / "run.parquet", build_manifest("rm-scores"))
    out = tmp_path / "analysis"
    assert _cli(capsys, "analyze", run, "--out", out)[0] == 0
    before = {f: (out / f).read_bytes() for f in _files(out)}

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_csv", full)
    code, first, _ = _cli(capsys, "analyze", run, "--out", out, "--category", "Agency")
    assert code == 2 and first.startswith(f"error: disk full while writing {out}")
    assert {f: (out / f).read_bytes() for f in _files(out)} == before  # old output, whole
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".analysis")]


# --- 5. candidate length vs max_position_embeddings; batches sized by tokens ----------------------


def test_huge_candidates_are_refused_with_the_limit(tmp_path, capsys):
    path = tmp_path / "huge.txt"
    path.write_text("\n".join((f"{i} lorem ipsum dolor " * 5_556)[:100_000] for i in range(3)))
    out = tmp_path / "out"
    code, first, _ = _cli(capsys, "score", "--model", tiny_rm_dir("llama"), "--out", out,
                          "--prompts", PROMPTS, "--candidates", f"file:{path}", "--quiet")
    assert code == 2
    assert first.startswith("error: 3 candidate(s) do not fit llama-0's context of 2,048 tokens "
                            "(max_position_embeddings)")
    assert "--truncate-candidates" in first
    _no_output(out)


def test_long_candidate_is_refused_or_truncated_when_asked(tmp_path, capsys):
    from rmvalues.api import score
    from rmvalues.errors import InputError

    long = "word " * 5_000  # ~5k tokens, past the tiny model's 2,048 positions
    with pytest.raises(InputError, match=r"context of 2,048 tokens.*needs"):
        score(tiny_rm("llama"), {"p": "One word?"}, ["short", long], tmp_path / "refused")
    assert not (tmp_path / "refused").exists()
    res = score(tiny_rm("llama"), {"p": "One word?"}, ["short", long], tmp_path / "cut",
                truncate_candidates=True)
    assert res.manifest["truncated_candidates"] == 1
    assert np.isfinite(res.table["score"]).all()
    plain = score(tiny_rm("llama"), {"p": "One word?"}, ["short"], None)
    assert res.table["score"].iloc[0] == pytest.approx(plain.table["score"].iloc[0], abs=1e-5)


def test_batches_are_sized_by_tokens_and_score_the_same(tmp_path):
    from rmvalues.engines.candidates import text_candidates
    from rmvalues.engines.score import BatchRunner, Engine
    from rmvalues.models.chat import split_chat

    seen = []
    runner = BatchRunner(64, max_tokens=100)
    runner.run(list(range(10)), lambda b: seen.append(len(b)) or np.zeros(len(b)), row_tokens=30)
    assert seen == [3, 3, 3, 1]
    rm = tiny_rm("llama")
    split = split_chat(rm.tokenizer, "Describe it.")
    cands = text_candidates([f"{w} " * n for w, n in (("good", 40), ("bad", 40), ("ok", 3))])
    wide = Engine(rm, batch_size=64).score_prompt(split, cands)
    # the expanded cache holds the prefix per row (shared attention: tests/test_shared_attention.py)
    narrow = Engine(rm, batch_size=64, attention="expand")
    narrow.runner.max_tokens = 100  # the long rows (prefix + 40 words) go one per batch
    batches = []
    run = narrow.runner.run
    narrow.runner.run = lambda items, fn, on_batch=None, row_tokens=1: run(
        items, lambda b: batches.append((len(b), row_tokens)) or fn(b), on_batch,
        row_tokens=row_tokens)
    np.testing.assert_allclose(narrow.score_prompt(split, cands), wide, atol=1e-5)
    assert all(rows <= max(1, 100 // tokens) for rows, tokens in batches)
    assert max(t for _, t in batches) > 50 and len(batches) == 3


# --- 6. --batch-size 0 ---------------------------------------------------------------------------


def test_batch_size_zero_is_refused(tmp_path, capsys):
    out = tmp_path / "out"
    code, first, _ = _cli(capsys, "score", "--model", tiny_rm_dir("llama"), "--out", out,
                          "--prompts", PROMPTS, "--candidates", FEW, "--batch-size", "0")
    assert code == 2
    assert first == ("error: --batch-size must be at least 1 (got 0); omit it for the default")
    _no_output(out)


def test_batch_size_zero_is_refused_on_the_executor_path(tmp_path, capsys, monkeypatch):
    """`score --executor` builds its run from the same ScoreOptions: refused before any loading."""
    _no_loading(monkeypatch)
    out = tmp_path / "out"
    for extra in (["--executor", "local"], ["--shard-size", "4"]):
        code, first, _ = _cli(capsys, "score", "--model", tiny_rm_dir("llama"), "--out", out,
                              "--prompts", PROMPTS, "--candidates", FEW, "--batch-size", "0",
                              *extra)
        assert code == 2
        assert first == ("error: --batch-size must be at least 1 (got 0); omit it for the default")
        _no_output(out)


# --- 7. resume verifies each shard against its manifest ------------------------------------------

RESUME_PROMPTS = {f"p{i}": f"Name the best quality number {i}, in one word." for i in range(3)}


@pytest.mark.parametrize("tamper", ["truncated", "ten-rows", "other-prompt", "no-checksum"])
def test_resume_recomputes_shards_that_fail_verification(tmp_path, tamper, caplog):
    from rmvalues.api import score
    from rmvalues.store.manifest import manifest_path, read_results

    reference = score(tiny_rm("llama"), RESUME_PROMPTS, "vocab:0-199", tmp_path / "ref")
    out = tmp_path / "run"
    first = score(tiny_rm("llama"), RESUME_PROMPTS, "vocab:0-199", out)
    shards = {p.name.split("-")[0]: p for p in (out / "shards").rglob("*.parquet")}
    target = shards["p1"]
    if tamper == "truncated":
        data = target.read_bytes()
        target.write_bytes(data[: len(data) // 2])
    elif tamper == "ten-rows":
        read_results(target).head(10).to_parquet(target, index=False)
    elif tamper == "other-prompt":
        shutil.copyfile(shards["p0"], target)
        shutil.copyfile(manifest_path(shards["p0"]), manifest_path(target))
    else:
        meta = json.loads(manifest_path(target).read_text())
        del meta["fields"]["content_sha256"]
        manifest_path(target).write_text(json.dumps(meta))
    calls = []
    with caplog.at_level("WARNING", logger="rmvalues"):
        again = score(tiny_rm("llama"), RESUME_PROMPTS, "vocab:0-199", out, on_shard=calls.append)
    assert calls == ["p1"]  # only the bad shard is recomputed
    assert "1 stored shard(s) failed verification and were recomputed" in again.summary
    assert any("fails verification" in r.getMessage() and "recomputing" in r.getMessage()
               for r in caplog.records)
    pd.testing.assert_frame_equal(read_results(again.path), read_results(reference.path))
    pd.testing.assert_frame_equal(read_results(again.path), read_results(first.path))
    # and the repaired shard is trusted again
    calls.clear()
    score(tiny_rm("llama"), RESUME_PROMPTS, "vocab:0-199", out, on_shard=calls.append)
    assert calls == []


# --- 8. non-finite values: logprobs, implicit, analyze --------------------------------------------


def _nan_lm(tmp_path, token_text=None):
    """A copy of the tiny LM with NaN weights: everywhere, or only in ``token_text``'s embedding."""
    from safetensors.torch import load_file, save_file

    lm = _copy_model(tiny_base_dir(), tmp_path / "nan-lm")
    weights = lm / "model.safetensors"
    state = load_file(weights)
    key = next(k for k in state if k.endswith("embed_tokens.weight"))
    if token_text is None:
        state["model.norm.weight"][:] = float("nan")
    else:
        from rmvalues.models.tokenizers import bundled_tokenizer

        (tid,) = bundled_tokenizer("llama3").encode(token_text, add_special_tokens=False)
        state[key][tid] = float("nan")
    save_file(state, str(weights), metadata={"format": "pt"})
    return lm


def test_logprobs_with_nan_weights_is_refused_or_dropped(tmp_path, capsys):
    from rmvalues.prompts import load_prompt_set
    from rmvalues.store.logprob_runs import load_run

    out = tmp_path / "out"
    code, first, _ = _cli(capsys, "logprobs", "--model", _nan_lm(tmp_path), "--kind", "pretrained",
                          "--prompts", PROMPTS, "--out", out)
    assert code == 2
    assert first.startswith("error: log-probs of nan-lm: 3 of 3 row(s) hold non-finite values (NaN)")
    assert "--drop-nonfinite" in first
    _no_output(out)
    # a NaN only in a token that one prompt uses: refused, or that prompt dropped when asked
    prompts = load_prompt_set(PROMPTS)
    word = next(w for w in (" greatest", " worst", " best")
                if sum(w.strip() in p.text for p in prompts.prompts) == 1)
    shutil.rmtree(tmp_path / "nan-lm")
    lm = _nan_lm(tmp_path, word)
    code, first, _ = _cli(capsys, "logprobs", "--model", lm, "--kind", "pretrained",
                          "--prompts", PROMPTS, "--out", out)
    assert code == 2 and "1 of 3 row(s) hold non-finite values" in first
    _no_output(out)
    code, _, text = _cli(capsys, "logprobs", "--model", lm, "--kind", "pretrained",
                         "--prompts", PROMPTS, "--out", out, "--drop-nonfinite")
    assert code == 0, text
    run = load_run(out)
    assert len(run.prompt_ids) == 2 and np.isfinite(run.logprobs).all()
    assert len(run.meta["nonfinite_prompts_dropped"]) == 1


def _save_lp(folder, model, tokens, matrix, prompts=("a", "b")):
    from rmvalues.store.logprob_runs import LogprobRun, save_run

    save_run(LogprobRun(model=model, prompt_ids=list(prompts), token_ids=np.arange(len(tokens)),
                        tokens=list(tokens), normalized=[t.strip().lower() for t in tokens],
                        logprobs=np.asarray(matrix, dtype=np.float32)), folder)
    return folder


TOKENS = [" love", " hate", " Freedom", " Love", " peace", " war"]


def test_implicit_on_a_nan_run_is_refused_or_dropped(tmp_path, capsys):
    good = np.log(np.full((2, 6), 1 / 6))
    bad = good.copy()
    bad[0, 1] = np.nan
    p = _save_lp(tmp_path / "p", "p-model", TOKENS, good)
    q = _save_lp(tmp_path / "q", "q-model", TOKENS, bad)
    out = tmp_path / "imp"
    code, first, _ = _cli(capsys, "implicit", "--p", p, "--q", q, "--out", out, "--k", "2")
    assert code == 2
    assert first.startswith("error: mwlr of q-model over p-model: 1 of 12 row(s) hold non-finite "
                            "values (NaN): prompt 'a' token ' hate'")
    _no_output(out)
    code, _, text = _cli(capsys, "implicit", "--p", p, "--q", q, "--out", out, "--k", "2",
                         "--drop-nonfinite")
    assert code == 0, text
    table = pd.read_parquet(out / "mwlr.parquet")
    assert len(table) == 11 and np.isfinite(table["score"]).all()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["fields"]["nonfinite_rows_dropped"] == 1


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_analyze_on_nonfinite_scores_is_refused_or_dropped(tmp_path, capsys, value):
    frame = _scores_frame()
    frame.loc[3, "score"] = value
    run = tmp_path / "run.parquet"  # the score schema stores no NaN: a table from another tool
    frame.to_parquet(run, index=False)
    out = tmp_path / "analysis"
    code, first, _ = _cli(capsys, "analyze", run, "--out", out)
    assert code == 2
    kind = "NaN" if np.isnan(value) else "+inf"
    assert first.startswith(f"error: the runs' scores: 1 of 60 row(s) hold non-finite values ({kind})")
    _no_output(out)
    code, _, text = _cli(capsys, "analyze", run, "--out", out, "--drop-nonfinite")
    assert code == 0, text
    assert "inf" not in (out / "summary.txt").read_text() and "nan" not in (
        out / "summary.txt").read_text()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["fields"]["settings"]["nonfinite_rows_dropped"] == 1
    assert np.isfinite(pd.read_parquet(out / "ranks.parquet").select_dtypes("number")).all().all()


# --- 9. implicit with an empty join; output folders never mix two runs ---------------------------


def test_implicit_empty_join_and_no_mixed_folder(tmp_path, capsys):
    lp = np.log(np.full((2, 6), 1 / 6))
    p = _save_lp(tmp_path / "p", "p-model", TOKENS, lp)
    q = _save_lp(tmp_path / "q", "q-model", TOKENS, lp - 0.1)
    other = _save_lp(tmp_path / "o", "o-model", ["x", "y", "z", "w", "v", "u"], lp)
    out = tmp_path / "imp"
    code, first, _ = _cli(capsys, "implicit", "--p", p, "--q", other, "--out", out)
    assert code == 2
    assert first.startswith("error: empty join: the runs of 'p-model' and 'o-model' have no token "
                            "string in common")
    _no_output(out)
    assert _cli(capsys, "implicit", "--p", p, "--q", q, "--out", out, "--k", "2")[0] == 0
    before = {f: (out / f).read_bytes() for f in _files(out)}
    # a failing second run into the same folder leaves the first run's output whole
    assert _cli(capsys, "implicit", "--p", p, "--q", other, "--out", out)[0] == 2
    assert {f: (out / f).read_bytes() for f in _files(out)} == before
    # a successful second run replaces the folder whole: nothing of the first run is left
    assert _cli(capsys, "implicit", "--p", q, "--q", p, "--out", out, "--k", "2",
                "--metric", "clip10")[0] == 0
    assert _files(out) == ["clip10.parquet", "join.json", "manifest.json", "target_scores.csv",
                           "top_bottom.csv"]
    manifest = json.loads((out / "manifest.json").read_text())["fields"]
    assert (manifest["p"], manifest["q"], manifest["metric"]) == ("q-model", "p-model", "clip10")
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".imp")]


def test_staged_output_refuses_a_folder_it_did_not_write(tmp_path, capsys):
    from rmvalues.store.manifest import build_manifest, write_results

    run = write_results(_scores_frame(), tmp_path / "runs" / "m.parquet",
                        build_manifest("rm-scores"))
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    code, first, _ = _cli(capsys, "analyze", run, "--out", mine)
    assert code == 2 and "is not empty and holds no rmvalues manifest" in first
    assert _files(mine) == ["notes.txt"]
    code, first, _ = _cli(capsys, "analyze", run, "--out", tmp_path / "runs")
    assert code == 2 and "holds the output of another stage (rm-scores)" in first
    assert _files(tmp_path / "runs") == ["m.manifest.json", "m.parquet"]


# --- 10. reproduce --data on an empty folder; nothing reproduced; provenance ----------------------


def test_reproduce_on_an_empty_data_folder_is_refused(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "out"
    code, first, _ = _cli(capsys, "reproduce", "--data", empty, "--out", out)
    assert code == 2
    assert first.startswith(f"error: --data {empty} holds none of the expected sub-folders "
                            "(dict_big2_nouns/, dict_MFD_20/, reward_model_training/)")
    _no_output(out)


def test_reproduce_that_reproduces_nothing_fails(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("RMVALUES_PAPER_DATA", raising=False)
    out = tmp_path / "out"
    code, first, _ = _cli(capsys, "reproduce", "--dataset", "mfd2", "--dataset", "rank-results",
                          "--out", out)
    assert code == 2 and first.startswith("error: nothing was reproduced: mfd2: ")
    _no_output(out)


def test_reproduce_records_where_each_file_came_from(shared_dir, tmp_path):
    from rmvalues.analysis.datasets import file_origins, get_dataset

    data = shared_dir / "paper-data"
    origins = file_origins("big2-nouns", data)
    assert set(origins) == set(get_dataset("big2-nouns").files)
    assert all(o.startswith(("cache ", "local copy ")) and o.endswith("(sha256 verified)")
               for o in origins.values())
    from rmvalues.analysis.reproduce import reproduce

    report = reproduce(data, datasets=["big2-nouns"], compare=False, n_resamples=9, n_boot=9)
    assert report.sources == {"big2-nouns": origins}


# --- also: empty --out folders, empty report input, config.json, .dicx, locks, sandbox -----------


def test_early_errors_leave_no_empty_out_folder(tmp_path, capsys):
    out = tmp_path / "deep" / "out"
    for argv in (["score", "--model", tmp_path / "missing", "--candidates", FEW],
                 ["logprobs", "--model", tmp_path / "missing", "--kind", "pretrained"],
                 ["implicit", "--p", tmp_path / "missing", "--q", tmp_path / "missing"],
                 ["analyze", tmp_path / "missing.parquet"]):
        code, first, _ = _cli(capsys, *argv, "--out", out)
        assert code == 2 and first.startswith("error: "), (argv, first)
        assert not (tmp_path / "deep").exists(), argv


def test_report_on_empty_input_is_refused(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "report"
    code, first, _ = _cli(capsys, "report", empty, "--out", out)
    assert code == 2
    assert first.startswith(f"error: {empty} holds no rmvalues output (no manifest, table or "
                            "summary.txt)")
    assert not out.exists()


def test_invalid_config_json_does_not_suggest_remote_code(tmp_path, capsys):
    out = tmp_path / "out"
    for argv, src in ((["score", "--candidates", FEW], tiny_rm_dir("llama")),
                      (["logprobs", "--kind", "pretrained"], tiny_base_dir())):
        model = tmp_path / f"bad-{argv[0]}"
        _copy_model(src, model)
        (model / "config.json").write_text('{"model_type": "llama", ')
        code, first, text = _cli(capsys, *argv, "--model", model, "--out", out, "--prompts", PROMPTS)
        assert code == 2
        assert first.startswith(f"error: {model / 'config.json'} is not valid JSON")
        assert "remote" not in text
    _no_output(out)


def test_dicx_requires_its_dicterm_header(tmp_path, capsys):
    from rmvalues.errors import LexiconError
    from rmvalues.lexicons import read_lexicon

    path = tmp_path / "plain.dicx"
    path.write_text("Term,Agency,Communion\nstrength,X,\nwarmth,,X\n")
    with pytest.raises(LexiconError, match=r"plain.dicx:1: header starts with 'Term', not DicTerm"):
        read_lexicon(path)
    code, first, _ = _cli(capsys, "lexicons", "show", path)
    assert code == 2 and "not DicTerm" in first
    path.write_text("DicTerm,Agency,Communion\nstrength,X,\nwarmth,,X\n")
    assert read_lexicon(path).categories == ("Agency", "Communion")


def test_concurrent_runs_into_one_folder_meet_a_lock(tmp_path, capsys):
    from rmvalues.io import lock_path

    out = tmp_path / "out"
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock = lock_path(out)
        lock.write_text(json.dumps({"pid": holder.pid, "host": os.uname().nodename,
                                    "started": "2026-01-01T00:00:00"}))
        code, first, _ = _cli(capsys, "score", "--model", tiny_rm_dir("llama"), "--out", out,
                              "--prompts", PROMPTS, "--candidates", FEW, "--quiet")
        assert code == 2
        assert first.startswith(f"error: output folder {out} is in use by another rmvalues run "
                                f"(pid {holder.pid} on {os.uname().nodename}")
        assert str(lock) in first
        assert not (out / "shards").exists()
    finally:
        holder.kill()
        holder.wait()
    # the holder is gone: its lock is stale, taken over, and removed when the run ends
    code, _, text = _cli(capsys, "score", "--model", tiny_rm_dir("llama"), "--out", out,
                         "--prompts", PROMPTS, "--candidates", FEW, "--quiet")
    assert code == 0, text
    assert "removing the stale lock" in text
    assert not lock.exists()


def _no_loading(monkeypatch):
    """Make loading or probing a model fail the test (it must not happen)."""
    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr("rmvalues.models.checkpoints.load_model_ref", refuse)
    monkeypatch.setattr("rmvalues.runs.spec.probe_model", refuse)


@pytest.mark.parametrize("path", ["score", "executor-local", "executor-accelerate"])
def test_a_second_run_into_a_locked_folder_is_refused_before_loading(tmp_path, monkeypatch, path):
    """The lock is taken before the model loads (minutes for a big one), by `score` and by the
    executors' coordinator alike."""
    from rmvalues.api import score
    from rmvalues.errors import StoreError
    from rmvalues.io import lock_path
    from rmvalues.runs.spec import RunSpec
    from rmvalues.scale import execute

    out = tmp_path / "out"
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock_path(out).write_text(json.dumps({"pid": holder.pid, "host": os.uname().nodename,
                                              "started": "2026-01-01T00:00:00"}))
        _no_loading(monkeypatch)
        model = str(tiny_rm_dir("llama"))
        with pytest.raises(StoreError, match=rf"in use by another rmvalues run \(pid {holder.pid}"):
            if path == "score":
                score(model, {"q": "Best?"}, ["good"], out, device="cpu")
            else:
                execute(RunSpec.build(model, {"q": "Best?"}, ["good"], device="cpu"), out,
                        path.removeprefix("executor-"))
        assert not out.exists()
    finally:
        holder.kill()
        holder.wait()


def test_the_lock_is_held_until_its_last_holder_leaves(tmp_path):
    """Counted re-entry: a run takes the lock before loading and its store again; whichever
    leaves first, the lock stays until the other has left too."""
    from rmvalues.io import lock_path, output_lock

    out = tmp_path / "nested" / "out"
    first, second = output_lock(out), output_lock(out)
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    assert json.loads(lock_path(out).read_text())["pid"] == os.getpid()
    second.__exit__(None, None, None)
    assert not lock_path(out).exists() and not (tmp_path / "nested").exists()


def test_concurrent_processes_one_waits_out(tmp_path):
    """Two real processes: the second is refused while the first holds the folder."""
    out = tmp_path / "out"
    code = ("import sys, time; from rmvalues.io import output_lock\n"
            f"with output_lock({str(out)!r}):\n    print('held', flush=True); time.sleep(30)\n")
    first = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                             env={**os.environ})
    try:
        assert first.stdout.readline().strip() == "held"
        from rmvalues.errors import StoreError
        from rmvalues.io import output_lock

        with (pytest.raises(StoreError, match=rf"in use by another rmvalues run \(pid {first.pid}"),
              output_lock(out)):
            pass
    finally:
        first.kill()
        first.wait()


def _fake_chromium(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "chromium"
    script.write_text("#!/bin/sh\n"
                      f"echo \"$@\" > {tmp_path / 'args.txt'}\n"
                      "for a in \"$@\"; do case $a in --screenshot=*) : > \"${a#--screenshot=}\";; "
                      "esac; done\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.delenv("RMVALUES_CHROMIUM_NO_SANDBOX", raising=False)
    return tmp_path / "args.txt"


@pytest.mark.parametrize("uid", [0, 1000])
def test_screenshot_drops_the_sandbox_only_as_root(tmp_path, monkeypatch, uid):
    from rmvalues.report.browser import screenshot

    args = _fake_chromium(tmp_path, monkeypatch)
    monkeypatch.setattr(os, "geteuid", lambda: uid)
    page = tmp_path / "report.html"
    page.write_text("<html></html>")
    run = screenshot(page, tmp_path / "shot.png")
    flags = args.read_text().split()
    if uid == 0:
        assert "--no-sandbox" in flags
        assert run.notes == [("Chromium ran with --no-sandbox: running as root, where Chromium "
                              "refuses its sandbox")]
    else:
        assert "--no-sandbox" not in flags and run.notes == []
