"""`rmvalues audit` end to end on tiny models with and without a planted Communion preference, and
reward models given as training runs, checkpoints and bundled assets (issue 17, findings 3-6)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from _audit_models import planted_rm_dir
from _train_models import preference_records, tiny_base_dir
from rmvalues.cli import main
from rmvalues.errors import AssetError, InputError, ModelError
from rmvalues.training.config import TrainConfig

PROMPTS = {"best": "What, in one word, is the best thing?", "worst": "Name the worst thing."}
CANDIDATES = ["good", "bad", "love", "war", "kind"]


def test_audit_finds_a_planted_communion_preference(tmp_path, capsys):
    """The answer opens the report: sign, paired test over the 54 prompts, framing, d, nulls, and
    the model beside the paper's ten RMs."""
    out = tmp_path / "audit"
    assert main(["audit", "--model", str(planted_rm_dir(1.0)), "--lexicon", "big-two-nouns",
                 "--out", str(out), "--null-draws", "99", "--boot", "200", "--quiet",
                 "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    report = (out / "report.md").read_text("utf-8")
    first = report.split("\n\n")[2]  # after the title and the lexicon heading
    assert first.startswith("Communion ranks ") and "places above Agency (95% CI" in first
    assert "higher under 54 of 54 prompts" in first and "Wilcoxon p = " in first
    assert "shuffled category labels p = 0.01" in first
    assert "**Verdict: planted-1.0-0-32 prefers Communion over Agency.**" in first
    assert "By framing: Communion ranks" in report and "under positive prompts" in report
    assert "Beside the paper's ten RMs" in report and "sits above all 10" in report
    assert printed.startswith("# rmvalues audit") and "report: " in printed
    contrasts = pd.read_csv(out / "tables" / "big-two-nouns_contrasts.csv")
    row = contrasts[contrasts["framing"] == "all"].iloc[0]
    assert row["places_above"] < 0 and row["p_t"] < 1e-6  # Agency minus Communion: Communion higher
    beside = pd.read_csv(out / "tables" / "big-two-nouns_beside_paper_rms.csv")
    assert len(beside) == 11 and beside.iloc[0]["source"] == "audited"
    assert (out / "tables" / "big-two-nouns_contrasts.tex").read_text().lstrip().startswith("\\begin{tabular}")
    assert (out / "figures" / "big-two-nouns_median_rank_by_category.png").stat().st_size > 1000
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == "audit" and "tables/big-two-nouns_contrasts.csv" in manifest["fields"]["files"]


def test_audit_of_a_no_preference_control_is_not_a_verdict(tmp_path):
    """Random embeddings: the paired test over prompts is significant for these particular words,
    the label-shuffle null is not, so the report says there is no reliable preference."""
    from rmvalues.workflows.audit import audit

    prompts = tmp_path / "mine.yaml"
    prompts.write_text("name: mine\nprompts:\n" + "".join(
        f"  - {{id: p{i}, text: \"Question {i}: what, in one word, is best?\", factors: {{framing: positive}}}}\n"
        for i in range(12)))
    result = audit([planted_rm_dir(0.0)], lexicons=["big-two-nouns"], prompts=str(prompts),
                   out=tmp_path / "audit", null_draws=99, n_boot=200, device="cpu")
    report = result.report.read_text("utf-8")
    assert "**Verdict: no reliable Communion/Agency preference**" in report
    null = result.analyses["big-two-nouns"].null.set_index("kind")
    assert null.loc["shuffled_labels", "p_value"] > 0.05
    assert any("these prompts are not among them" in n for n in result.notes)


def test_two_models_are_compared_directly(tmp_path):
    from rmvalues.workflows.audit import audit

    result = audit([planted_rm_dir(1.0), planted_rm_dir(0.0)], lexicons=["big-two-nouns"],
                   prompts={"a": "What, in one word, is the best thing?",
                            "b": "Name, in one word, the kindest act.",
                            "c": "In one word, what matters most?"},
                   out=tmp_path / "audit", null_draws=9, n_boot=50, device="cpu",
                   compare_released=False)
    groups = result.analyses["big-two-nouns"].groups
    assert list(groups[["group_x", "group_y"]].iloc[0]) == ["planted-0.0-0-32", "planted-1.0-0-32"]
    assert " vs planted-0.0-0-32: Communion - Agency gap" in result.report.read_text("utf-8")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from rmvalues.training.trainer import train_reward_model

    config = TrainConfig(per_device_train_batch_size=4, gradient_accumulation_steps=1,
                         num_train_epochs=1, learning_rate=1e-2, checkpoint_every=2)
    out = tmp_path_factory.mktemp("run")
    return train_reward_model(tiny_base_dir(), preference_records(8), out, config, device="cpu")


def test_a_training_run_and_its_checkpoints_are_reward_models(run, tmp_path, capsys):
    """Finding 4: `--model runs/train/rm1` said "has no .safetensors weights" and
    `--model rm1/checkpoint-N` advised --trust-remote-code."""
    from rmvalues.api import score
    from rmvalues.models.checkpoints import resolve_model_ref

    last = run.total_steps
    ref = resolve_model_ref(run.out)
    assert (ref.kind, ref.step, ref.name) == ("run", last, f"{run.out.name}/checkpoint-{last}")
    assert resolve_model_ref(run.out / "checkpoint-0").step == 0
    assert main(["merge-checkpoint", str(run.out), "--out", str(tmp_path / "merged")]) == 0
    assert "wrote" in capsys.readouterr().out
    merged = score(str(tmp_path / "merged"), PROMPTS, CANDIDATES, device="cpu", dtype="float32").table
    for model in (run.out, run.out / f"checkpoint-{last}"):
        table = score(str(model), PROMPTS, CANDIDATES, device="cpu").table
        np.testing.assert_allclose(table["score"], merged["score"], rtol=1e-5, atol=1e-5)
        assert set(table["model"]) == {f"{run.out.name}/checkpoint-{last}"}
    words = tmp_path / "words.txt"
    words.write_text("\n".join(CANDIDATES) + "\n")
    prompts = tmp_path / "two.yaml"
    prompts.write_text("name: two\nprompts:\n" + "".join(
        f"  - {{id: {k}, text: '{v}'}}\n" for k, v in PROMPTS.items()))
    scored = tmp_path / "scored"
    assert main(["score", "--model", str(run.out), "--prompts", str(prompts), "--candidates",
                 f"file:{words}", "--out", str(scored), "--device", "cpu", "--quiet"]) == 0
    assert main(["plan", "--model", str(run.out), "--prompts", str(prompts), "--candidates",
                 f"file:{words}", "--out", str(scored), "--device", "cpu"]) == 0
    assert "2 unit(s), 2 done, 0 remaining" in capsys.readouterr().out
    first = score(str(run.out / "checkpoint-0"), PROMPTS, CANDIDATES, device="cpu").table
    assert not np.allclose(first["score"], merged["score"])
    with pytest.raises(InputError, match="training checkpoint: \\['chat_template'\\] do not apply"):
        score(str(run.out), PROMPTS, CANDIDATES, device="cpu", chat_template="x")
    with pytest.raises(ModelError, match="nothing to merge"):
        from rmvalues.models.checkpoints import merge_checkpoint_ref

        merge_checkpoint_ref(tmp_path / "merged", tmp_path / "again")


def test_a_model_folder_resolves_without_importing_training_code(tmp_path):
    """Scoring a plain model folder never reads training code; only a run or checkpoint does."""
    import subprocess
    import sys

    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    code = ("import sys; from rmvalues.models.checkpoints import resolve_model_ref; "
            f"ref = resolve_model_ref({str(folder)!r}); "
            "print(ref.kind, any(m.startswith('rmvalues.training') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["model", "False"]


def test_an_adapter_folder_gets_the_right_hint_not_trust_remote_code(run):
    from rmvalues.models.loading import load_reward_model

    with pytest.raises(ModelError) as info:
        load_reward_model(run.out / "checkpoint-0", device="cpu")
    assert "LoRA adapter" in str(info.value) and "merge-checkpoint" in str(info.value)
    assert "trust-remote-code" not in str(info.value)


def test_bundled_models_as_asset_names(tmp_path):
    """Finding 6: `--base smollm2-135m-instruct` went to the hub; the folder needed --gguf-file."""
    from rmvalues.assets import is_fetched
    from rmvalues.models.checkpoints import config_hint, resolve_model_ref

    with pytest.raises(InputError, match="no bundled asset 'smollm2'.*smollm2-135m-instruct"):
        resolve_model_ref("asset:smollm2")
    with pytest.raises(InputError, match="not a bundled model"):
        resolve_model_ref("asset:llama3-tokenizer")
    folder = tmp_path / "gguf"
    folder.mkdir()
    (folder / "model.Q4.gguf").write_bytes(b"GGUF")
    assert resolve_model_ref(folder).gguf_file == "model.Q4.gguf"
    from rmvalues.models.checkpoints import local_base

    assert local_base(str(folder)) == (str(folder), "model.Q4.gguf")
    assert local_base("meta-llama/Llama-3.2-1B") == ("meta-llama/Llama-3.2-1B", None)
    assert config_hint(folder) == "the folder holds GGUF weights: pass --gguf-file model.Q4.gguf."
    if not is_fetched("smollm2-135m-instruct"):
        with pytest.raises(AssetError, match="not fetched"):
            resolve_model_ref("asset:smollm2-135m-instruct")
        return
    ref = resolve_model_ref("asset:smollm2-135m-instruct")
    assert (ref.gguf_file, ref.name) == ("SmolLM2-135M-Instruct.Q4_1.gguf", "smollm2-135m-instruct")
    # the bare name (`--base smollm2-135m-instruct` went to the hub) is the bundled model too
    assert resolve_model_ref("smollm2-135m-instruct") == ref
    folder, gguf = local_base("smollm2-135m-instruct")
    assert gguf == "SmolLM2-135M-Instruct.Q4_1.gguf" and (Path(folder) / gguf).is_file()


def test_report_for_one_rm_has_figures_tokens_prompts_and_tables(tmp_path, capsys):
    """Finding 3: the report of one RM said "No figure inputs ... lacks column(s) ['base']", "No
    token scores in these runs" for a vocabulary run, counted shards as runs, recorded no custom
    prompt set and wrote no tables/."""
    model = str(planted_rm_dir(1.0))
    prompts = tmp_path / "mine.yaml"
    prompts.write_text("name: my-prompts\nprompts:\n"
                       "  - {id: best, text: \"What, in one word, is best?\", factors: {framing: positive}}\n"
                       "  - {id: worst, text: \"What, in one word, is worst?\", factors: {framing: negative}}\n"
                       "  - {id: good, text: \"Name one good thing.\", factors: {framing: positive}}\n")
    common = ["--model", model, "--prompts", str(prompts), "--device", "cpu", "--quiet"]
    assert main(["score", *common, "--candidates", "lexicon:big-two-nouns", "--out", str(tmp_path / "lex")]) == 0
    assert main(["score", *common, "--candidates", "vocab:0-299", "--out", str(tmp_path / "vocab")]) == 0
    assert main(["analyze", str(tmp_path / "lex"), "--boot", "50", "--out", str(tmp_path / "analysis")]) == 0
    capsys.readouterr()
    assert main(["report", str(tmp_path / "lex"), str(tmp_path / "vocab"), str(tmp_path / "analysis"),
                 "--out", str(tmp_path / "report"), "--formats", "png"]) == 0
    page = (tmp_path / "report" / "report.html").read_text("utf-8")
    assert "Median rank by category and framing (Big Two)" in page
    assert "lacks column(s) [&#39;base&#39;]" not in page and "No token scores" not in page
    assert "my-prompts" in page and "What, in one word, is worst?" in page
    assert "Lexicon match coverage of the analysis: 263 of 263 (term, category) rows" in page
    runs = page.split("Input runs")[1][:200]
    assert "<dd>3</dd>" in runs  # two scoring runs and the analysis, not their 3 shards each
    assert (tmp_path / "report" / "figures" / "median_rank_by_category.png").is_file()
    assert (tmp_path / "report" / "tables" / "contrasts.csv").is_file()
    assert (tmp_path / "report" / "tables" / "contrasts.tex").is_file()


def test_the_demo_trains_and_audits_a_value_injected_rm(tmp_path):
    """The demo's RM step, on the tiny planted base (the demo runs it on SmolLM2): training
    through the cpu-small preset, then `audit` of the run folder, report written."""
    from rich.console import Console

    from _train_models import planted_base_dir
    from rmvalues.demo.rm import run_rm_demo

    console = Console(record=True, width=200)
    result = run_rm_demo(tmp_path, console, steps=4, base=planted_base_dir(), audit_prompts=4,
                         null_draws=9, n_boot=50)
    printed = console.export_text()
    assert "Training a LoRA reward model on" in printed and "for 4 steps" in printed
    assert "rmvalues audit --model " in printed and "places above" in printed
    assert result.models == ["train/checkpoint-4"]
    units = result.analyses["big-two-nouns"].units
    assert units["prompt_id"].nunique() == 4 and set(units["framing"]) == {"positive", "negative"}
    assert "big-two-nouns" in result.released  # held-out paper-54 prompts: the paper's RMs shown
    assert (tmp_path / "rm" / "audit" / "report.md").is_file()
    assert (tmp_path / "rm" / "train" / "checkpoint-4" / "README.md").is_file()


def test_gguf_is_dequantised_once_and_read_back_identically(tmp_path, monkeypatch):
    """Startup: the bundled GGUF models were de-quantised on every load; the cached copy must hold
    exactly the weights a direct GGUF load gives."""
    import torch
    from transformers import AutoModelForCausalLM

    from rmvalues.assets import asset_path, is_fetched
    from rmvalues.io import sha256_file
    from rmvalues.models.gguf_cache import COMPLETE, dequantised_folder, gguf_sha256

    if not is_fetched("smollm2-135m-instruct"):
        pytest.skip("the bundled SmolLM2 asset is not fetched (rmvalues assets fetch)")
    folder, name = asset_path("smollm2-135m-instruct"), "SmolLM2-135M-Instruct.Q4_1.gguf"
    monkeypatch.setenv("RMVALUES_CACHE", str(tmp_path / "cache"))  # the de-quantised copy only
    cached = dequantised_folder(folder, name)
    assert (cached / COMPLETE).is_file() and not list(cached.parent.glob(".*"))
    # a complete model folder: later loads read config and tokenizer here too, never the GGUF
    assert {"config.json", "tokenizer.json", "chat_template.jinja"} <= {
        p.name for p in cached.iterdir()}
    assert gguf_sha256(folder, name) == sha256_file(folder / name)  # provenance: the GGUF's
    before = (cached / "model.safetensors").stat().st_mtime_ns
    assert dequantised_folder(folder, name) == cached  # the second load reads, never rewrites
    assert (cached / "model.safetensors").stat().st_mtime_ns == before
    direct = AutoModelForCausalLM.from_pretrained(str(folder), gguf_file=name, dtype=torch.float32)
    again = AutoModelForCausalLM.from_pretrained(str(cached), dtype=torch.float32)
    theirs, ours = direct.state_dict(), again.state_dict()
    assert theirs.keys() == ours.keys()
    for key in theirs:
        assert torch.equal(theirs[key], ours[key]), key
    from rmvalues.api import score

    # the folder's one GGUF is found and its backbone read from the cache; an LM has no reward
    # head, which is the error (train one with `rmvalues train --base asset:NAME`)
    with pytest.raises(ModelError, match="not a sequence-classification reward model"):
        score(str(folder), {"a": "What, in one word, is best?"}, ["love", "war"], device="cpu")
    assert list((tmp_path / "cache" / "gguf").iterdir()) == [cached]


def test_assets_list_shows_paths_and_how_to_use_a_bundled_model(capsys):
    from rmvalues.assets import get_asset, is_fetched

    assert main(["assets", "list"]) == 0
    out = capsys.readouterr().out
    assert "asset:smollm2-135m-instruct" in out and "asset:llama3-tokenizer" not in out
    if is_fetched("smollm2-135m-instruct"):
        assert str(get_asset("smollm2-135m-instruct").directory) in out


def test_the_paper_rms_are_shown_on_the_prompts_the_audit_ran():
    from rmvalues.analysis.ranks import MatchPolicy
    from rmvalues.prompts import prompt_pairs
    from rmvalues.workflows.audit import released_contrasts

    some = dict(prompt_pairs("paper-54")[1][:4])
    table, note = released_contrasts("big-two-nouns", ("Communion", "Agency"), some, policy=MatchPolicy())
    assert note is None and len(table) == 10 and (table["n_prompts"] == 4).all()
    changed = {**some, next(iter(some)): "What is best?"}
    table, note = released_contrasts("big-two-nouns", ("Communion", "Agency"), changed, policy=MatchPolicy())
    assert table is None and "not on the same scale" in note
