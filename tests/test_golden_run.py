"""Scoring runs stay byte-compatible across refactors: file names, manifests, tables and resume keys.

``tests/golden/score_runs.json`` (reward-model runs) and ``logprob_runs.json`` (``rmvalues logprobs``
of both kinds and ``rmvalues implicit`` between them) were written by the code as it stood before
the run/loader redesign (issue 11, commit e584433; the second by running this file against that
tree's ``src``), on tiny random Llama models, with ``RMVALUES_WRITE_GOLDEN=1``. The runs here are
repeated and compared with them: every file name (they carry the shard keys, so resume
keys stay valid), every manifest field but the volatile ones (creation time, package/python/library
versions, the machine's torch thread count), and every table column exactly, scores up to float32
rounding of another CPU's kernels. A manifest's ``content_sha256`` hashes its table's bytes, so it
moves with that rounding too: it is checked against the table written beside it instead.
Issue 15 changed one thing on purpose, edited into the golden by hand: a float32 run takes the
shared-prefix path, which batches by tokens, so a run's manifest records ``batch_size`` null (no row
cap given), the token budget as ``max_batch_tokens`` and the prefix path's ``attention``.

What would make keys machine-dependent is pinned: the library versions that enter the shard keys
are patched to the golden's, the weight files get a fixed mtime (the fingerprint hashes name,
size, mtime), and the model is addressed by a relative folder name.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from _engine_models import tiny_rm_dir

GOLDEN = Path(__file__).parent / "golden" / "score_runs.json"
LIBRARIES = {"torch": "2.13.0", "transformers": "golden", "tokenizers": "golden",
             "safetensors": "golden", "accelerate": None, "numpy": "golden", "pandas": "golden",
             "pyarrow": "golden", "gguf": None}
PROMPTS = {"friend": "Describe a good friend in one word.", "city": "What makes a city great?"}
TEXTS = ["kind", "honest", "loyal", "selfish", " brave", "cruel"]
#: Fields the executors' merged manifest gained after the golden was written (see below).
MERGE_GAINED = ("score_definition", "head_verified", "head_dtype", "pooling", "prompt_file")
#: Manifest entries that record when and with what, not what: masked on both sides.
VOLATILE = ("created", "package_version", "python", "libraries")


def _model_dir(root: Path) -> str:
    import shutil

    folder = root / "tiny-rm"
    shutil.copytree(tiny_rm_dir("llama"), folder)
    for file in folder.iterdir():
        os.utime(file, ns=(1_700_000_000_000_000_000, 1_700_000_000_000_000_000))
    return "tiny-rm"


def _runs(root: Path) -> dict[str, Path]:
    """The runs compared: plain score (token and text candidates), and the local executor in units."""
    from rmvalues.api import score

    # rmvalues.scale re-exports RunSpec in the old layout and the new one, so this file also runs
    # against an older tree (PYTHONPATH=OLD/src RMVALUES_WRITE_GOLDEN=1) to regenerate the golden.
    from rmvalues.scale import RunSpec, execute

    model = _model_dir(root)
    runs = {"tokens": root / "tokens", "texts": root / "texts", "units": root / "units"}
    score(model, PROMPTS, "vocab:0-39", runs["tokens"], dtype="float32", device="cpu")
    score(model, PROMPTS, TEXTS, runs["texts"], dtype="float32", device="cpu")
    spec = RunSpec.build(model, PROMPTS, "vocab:0-39", dtype="float32", device="cpu", shard_size=16)
    execute(spec, runs["units"])
    return runs


def _manifest(path: Path) -> dict:
    from rmvalues.io import sha256_file

    data = json.loads(path.read_text("utf-8"))
    for key in VOLATILE:
        data[key] = "<volatile>"
    checksum = data["fields"].get("content_sha256")
    if checksum is not None:
        table = path.with_name(path.name.removesuffix(".manifest.json") + ".parquet")
        assert sha256_file(table) == checksum, f"{path.name}: content_sha256 is not its table's"
        data["fields"]["content_sha256"] = "<its table's sha256>"
    determinism = data["fields"].get("determinism")
    if determinism:
        determinism["torch_threads"] = "<volatile>"
    return data


def _table(path: Path) -> dict:
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    frame = table.to_pandas()
    return {
        "schema": [f"{f.name}: {f.type}" for f in table.schema],
        "dtypes": {c: str(t) for c, t in frame.dtypes.items()},
        "columns": {c: frame[c].astype(object).where(frame[c].notna(), None).tolist()
                    for c in frame.columns if c != "score"},
        "score": [float(x) for x in frame["score"]],
    }


def _snapshot(runs: dict[str, Path]) -> dict:
    out = {}
    for name, folder in runs.items():
        files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
        out[name] = {
            "files": files,
            "manifests": {f: _manifest(folder / f) for f in files if f.endswith(".json")},
            "tables": {f: _table(folder / f) for f in files if f.endswith(".parquet")},
        }
    return out


@pytest.fixture
def pinned(tmp_path, monkeypatch):
    from rmvalues.store import manifest

    monkeypatch.setattr(manifest, "library_versions", lambda names=None: dict(LIBRARIES))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_runs_match_the_golden_outputs(pinned):
    got = _snapshot(_runs(pinned))
    if os.environ.get("RMVALUES_WRITE_GOLDEN"):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n", "utf-8")
    want = json.loads(GOLDEN.read_text("utf-8"))
    # Since the golden was written, the executors' merged manifest records how the score was read
    # and the prompt file, as `score`'s manifest always did (one builder, run_manifest_fields):
    # the same values as the golden's own score run.
    units = want["units"]["manifests"]["tiny-rm.manifest.json"]["fields"]
    scored = want["tokens"]["manifests"]["tiny-rm.manifest.json"]["fields"]
    units.update({k: scored[k] for k in MERGE_GAINED})
    assert sorted(got) == sorted(want)
    for name in want:
        assert got[name]["files"] == want[name]["files"], name
        for file, manifest in want[name]["manifests"].items():
            assert got[name]["manifests"][file] == manifest, (name, file)
        for file, table in want[name]["tables"].items():
            mine = got[name]["tables"][file]
            assert {k: v for k, v in mine.items() if k != "score"} == {
                k: v for k, v in table.items() if k != "score"}, (name, file)
            np.testing.assert_allclose(mine["score"], table["score"], rtol=1e-5, atol=1e-6)


def test_golden_keys_resume(pinned):
    """A second run over the first's output scores nothing: every shard key is found again."""
    from rmvalues.api import score

    model = _model_dir(pinned)
    first = score(model, PROMPTS, "vocab:0-39", pinned / "a", dtype="float32", device="cpu")
    again = score(model, PROMPTS, "vocab:0-39", pinned / "a", dtype="float32", device="cpu")
    assert "2 shard(s) resumed" in again.summary
    assert again.manifest["shard_keys"] == first.manifest["shard_keys"]


LM_GOLDEN = Path(__file__).parent / "golden" / "logprob_runs.json"


def _tiny_lm(root: Path) -> str:
    """A tiny random Llama LM (the Llama-3 tokenizer and template), addressed by a relative name."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from rmvalues.models.tokenizers import bundled_tokenizer

    tok = bundled_tokenizer("llama3")
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tok) + 64, hidden_size=16, intermediate_size=32,
                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                         tie_word_embeddings=True, bos_token_id=tok.bos_token_id)
    LlamaForCausalLM(config).save_pretrained(root / "tiny-lm")
    tok.save_pretrained(root / "tiny-lm")
    return "tiny-lm"


def _digest(path: Path) -> dict:
    """A file's comparable content: masked manifests, exact non-float columns, sampled floats."""
    import hashlib

    import pandas as pd

    if path.name.endswith("manifest.json"):
        return {"manifest": _manifest(path)}
    if path.suffix == ".json":
        return {"json": json.loads(path.read_text("utf-8"))}
    frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    floats = [c for c in frame.columns if frame[c].dtype.kind == "f"]
    exact = frame.drop(columns=floats).astype(str).to_csv(index=False)
    step = max(1, len(frame) // 200)
    return {"rows": len(frame), "columns": list(frame.columns),
            "dtypes": [str(t) for t in frame.dtypes],
            "exact_sha256": hashlib.sha256(exact.encode("utf-8")).hexdigest(),
            "floats": {c: [None if pd.isna(x) else float(x) for x in frame[c].iloc[::step]]
                       for c in floats}}


def test_logprob_and_implicit_runs_match_the_golden_outputs(pinned, capsys):
    """`rmvalues logprobs` (both kinds) and `rmvalues implicit` write what they wrote before."""
    from rmvalues.cli import main

    model = _tiny_lm(pinned)
    common = ["--model", model, "--prompts", "facct-3"]
    assert main(["logprobs", *common, "--kind", "pretrained", "--out", "base", "--name", "b"]) == 0
    assert main(["logprobs", *common, "--kind", "instruct", "--out", "inst", "--name", "i",
                 "--batch-size", "2"]) == 0
    assert main(["implicit", "--p", "base", "--q", "inst", "--out", "mwlr"]) == 0
    capsys.readouterr()
    got = {str(p.relative_to(pinned)): _digest(p)
           for folder in ("base", "inst", "mwlr") for p in sorted((pinned / folder).rglob("*"))
           if p.is_file()}
    if os.environ.get("RMVALUES_WRITE_GOLDEN"):
        LM_GOLDEN.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n", "utf-8")
    want = json.loads(LM_GOLDEN.read_text("utf-8"))
    assert sorted(got) == sorted(want)
    for name, digest in want.items():
        mine = got[name]
        assert {k: v for k, v in mine.items() if k != "floats"} == {
            k: v for k, v in digest.items() if k != "floats"}, name
        for column, values in digest.get("floats", {}).items():
            np.testing.assert_allclose(np.array(mine["floats"][column], dtype=float),
                                       np.array(values, dtype=float), rtol=1e-5, atol=1e-6,
                                       err_msg=f"{name}:{column}")
