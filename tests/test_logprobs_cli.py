"""`rmvalues logprobs` / `rmvalues implicit` on a tiny random Llama saved as safetensors with the real
Llama-3 tokenizer: runs stored, implicit rewards from stored runs, and clear errors on bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from rmvalues.cli import main


@pytest.fixture(scope="module")
def tiny_model_dirs(tmp_path_factory):
    """Two folders: a tiny Llama with the Llama-3 tokenizer and template, and one without template."""
    import copy

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from rmvalues.models.tokenizers import bundled_tokenizer

    tok = bundled_tokenizer("llama3")
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tok) + 64, hidden_size=16, intermediate_size=32,
                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                         tie_word_embeddings=True, bos_token_id=tok.bos_token_id)
    model = LlamaForCausalLM(config)
    root = tmp_path_factory.mktemp("models")
    with_template, without = root / "tiny-llama", root / "tiny-llama-no-template"
    model.save_pretrained(with_template)
    tok.save_pretrained(with_template)
    model.save_pretrained(without)
    bare = copy.deepcopy(tok)
    bare.chat_template = None
    bare.save_pretrained(without)
    (without / "chat_template.jinja").unlink(missing_ok=True)
    assert any(with_template.glob("*.safetensors"))
    return with_template, without


def _cli(capsys, *args):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_logprobs_then_implicit_from_stored_runs(tiny_model_dirs, tmp_path, capsys):
    model, _ = tiny_model_dirs
    code, text = _cli(capsys, "logprobs", "--model", model, "--kind", "pretrained",
                      "--prompts", "facct-3", "--out", tmp_path / "base", "--name", "tiny-base")
    assert code == 0, text
    assert "64 padded logit rows excluded" in text
    code, text = _cli(capsys, "logprobs", "--model", model, "--kind", "instruct",
                      "--prompts", "facct-3", "--out", tmp_path / "inst", "--name", "tiny-inst",
                      "--batch-size", "2")
    assert code == 0, text
    manifest = json.loads((tmp_path / "inst" / "logprobs.manifest.json").read_text())
    assert manifest["fields"]["date_string"] == "26 Jul 2024"
    assert manifest["fields"]["load"]["source"] == str(model)
    code, text = _cli(capsys, "implicit", "--p", tmp_path / "base", "--q", tmp_path / "inst",
                      "--out", tmp_path / "imp", "--metric", "mwlr", "--k", "5")
    assert code == 0, text
    assert "mwlr of tiny-inst over tiny-base" in text
    table = pd.read_parquet(tmp_path / "imp" / "mwlr.parquet")
    assert set(table["prompt_id"]) == {"greatest_ever_one", "best_ever_one", "worst_ever_one"}
    # same tokenizer on both sides: the exact join keeps every distinct decoded string
    join = json.loads((tmp_path / "imp" / "join.json").read_text())
    assert join["p_tokens"] == join["q_tokens"] == 128256
    assert join["p_tokens_lost"] == join["q_tokens_lost"] == 0
    tb = pd.read_csv(tmp_path / "imp" / "top_bottom.csv", keep_default_na=False)
    assert len(tb) == 10 and (tb["n"] == join["shared_keys"]).all()
    code, text = _cli(capsys, "implicit", "--p", tmp_path / "base", "--q", tmp_path / "inst",
                      "--out", tmp_path / "imp2", "--metric", "clip10", "--join", "normalized",
                      "--prompts", "greatest_ever_one,worst_ever_one", "--drop-formatting")
    assert code == 0, text
    assert len(pd.read_parquet(tmp_path / "imp2" / "clip10.parquet")["prompt_id"].unique()) == 2
    assert np.isfinite(pd.read_parquet(tmp_path / "imp2" / "clip10.parquet")["score"]).all()


def test_bad_inputs_give_one_clear_line(tiny_model_dirs, tmp_path, capsys):
    model, no_template = tiny_model_dirs
    code, text = _cli(capsys, "logprobs", "--model", no_template, "--kind", "instruct",
                      "--prompts", "facct-3", "--out", tmp_path / "x")
    assert code == 2 and "no chat template" in text and "--chat-template" in text
    code, text = _cli(capsys, "logprobs", "--model", model, "--kind", "chat",
                      "--prompts", "facct-3", "--out", tmp_path / "x")
    assert code == 2 and "choose 'pretrained' or 'instruct'" in text
    # two runs over different prompt sets
    _cli(capsys, "logprobs", "--model", model, "--kind", "pretrained", "--prompts", "facct-3",
         "--out", tmp_path / "a")
    from rmvalues.store.logprob_runs import load_run, save_run

    run = load_run(tmp_path / "a")
    run.prompt_ids = ["greatest_ever_one", "best_ever_one", "something_else"]
    save_run(run, tmp_path / "b")
    code, text = _cli(capsys, "implicit", "--p", tmp_path / "a", "--q", tmp_path / "b",
                      "--out", tmp_path / "c")
    assert code == 2 and "different prompts" in text and "something_else" in text
    # a prompt the runs do not have
    code, text = _cli(capsys, "implicit", "--p", tmp_path / "a", "--q", tmp_path / "a",
                      "--out", tmp_path / "c", "--prompts", "paper-54")
    assert code == 2 and "not in the runs" in text
    # not a stored run
    code, text = _cli(capsys, "implicit", "--p", "meta-llama/Llama-3.2-3B", "--q", tmp_path / "a",
                      "--out", tmp_path / "c")
    assert code == 2 and "not a stored log-prob run" in text and "rmvalues logprobs" in text


def test_pickled_weights_are_refused(tiny_model_dirs, tmp_path, capsys):
    import shutil

    import torch
    from safetensors.torch import load_file

    model, _ = tiny_model_dirs
    pickled = tmp_path / "pickled"
    shutil.copytree(model, pickled)
    for f in pickled.glob("*.safetensors"):
        torch.save(load_file(f), pickled / "pytorch_model.bin")
        f.unlink()
    code, text = _cli(capsys, "logprobs", "--model", pickled, "--kind", "pretrained",
                      "--prompts", "facct-3", "--out", tmp_path / "x")
    assert code == 2 and "safetensors" in text
    assert not (tmp_path / "x" / "logprobs.parquet").exists()
