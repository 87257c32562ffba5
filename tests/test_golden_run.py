"""Scoring runs stay byte-compatible across refactors: file names, manifests, tables and resume keys.

``tests/golden/score_runs.json`` was written by the code as it stood before the run/loader redesign
(issue 11), on the tests' tiny random Llama RM, by this file with ``RMVALUES_WRITE_GOLDEN=1``. The
runs here are repeated and compared with it: every file name (they carry the shard keys, so resume
keys stay valid), every manifest field but the volatile ones (creation time, package/python/library
versions, the machine's torch thread count), and every table column exactly, scores up to float32
rounding of another CPU's kernels.

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
    from rmvalues.runs import RunSpec
    from rmvalues.scale import execute

    model = _model_dir(root)
    runs = {"tokens": root / "tokens", "texts": root / "texts", "units": root / "units"}
    score(model, PROMPTS, "vocab:0-39", runs["tokens"], dtype="float32", device="cpu")
    score(model, PROMPTS, TEXTS, runs["texts"], dtype="float32", device="cpu")
    spec = RunSpec.build(model, PROMPTS, "vocab:0-39", dtype="float32", device="cpu", shard_size=16)
    execute(spec, runs["units"])
    return runs


def _manifest(path: Path) -> dict:
    data = json.loads(path.read_text("utf-8"))
    for key in VOLATILE:
        data[key] = "<volatile>"
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
