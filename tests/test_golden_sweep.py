"""Checkpoint sweeps stay byte-compatible across the move onto the run plan (issue 11).

``tests/golden/sweep_runs.json`` was written by the sweep as it stood before it used
:mod:`rmvalues.runs` (main 536bdd7, ``RMVALUES_WRITE_GOLDEN=1``): a tiny random Llama trained two
steps (checkpoints 0, 1, 2) and swept with text candidates (every checkpoint) and token candidates
(steps 0 and 2). Compared here: the sweep's outputs (``sweep.parquet`` and its manifest; manifests
but their volatile fields, non-score columns exactly, scores up to float32 rounding), and the
resume files the old sweep left (``step-N-<settings key>.parquet``), which the old-format resume
test below rebuilds and hands to the current code.

Machine-dependent inputs are pinned as in ``test_golden_run.py``: the library versions entering
keys, and every path is relative to the test's folder.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from _train_models import preference_records, tiny_base_dir
from test_golden_run import _manifest, _table, pinned  # noqa: F401  (the fixture)

GOLDEN = Path(__file__).parent / "golden" / "sweep_runs.json"
PROMPTS = {"best": "What, in one word, is the best thing?", "worst": "Name the worst thing."}
TEXTS = ["good", "bad", "kind"]
#: The sweep's own outputs; everything else in its folder is resume state.
OUTPUTS = ("sweep.parquet", "sweep.manifest.json")


def _train(root: Path) -> str:
    from rmvalues.training.config import TrainConfig
    from rmvalues.training.trainer import train_reward_model

    shutil.copytree(tiny_base_dir(), root / "tiny-base")
    config = TrainConfig(per_device_train_batch_size=2, gradient_accumulation_steps=1,
                         max_steps=2, learning_rate=1e-2, lora_r=4, lora_alpha=8)
    train_reward_model("tiny-base", preference_records(4), "run", config, device="cpu")
    return "run"


def _sweeps(root: Path) -> dict[str, Path]:
    from rmvalues.training.sweep import sweep

    run = _train(root)
    folders = {"texts": root / "texts", "tokens": root / "tokens"}
    sweep(run, PROMPTS, TEXTS, "texts", device="cpu")
    sweep(run, PROMPTS, "vocab:0-7", "tokens", steps=[0, 2], batch_size=4, device="cpu")
    return folders


def _snapshot(folders: dict[str, Path]) -> dict:
    out = {}
    for name, folder in folders.items():
        files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
        out[name] = {
            "files": files,
            "manifests": {f: _manifest(folder / f) for f in files if f in OUTPUTS[1:]},
            "tables": {f: _table(folder / f) for f in files
                       if f == OUTPUTS[0] or f.startswith("step-")},
        }
    return out


def _assert_table(mine: dict, want: dict, label: object) -> None:
    assert {k: v for k, v in mine.items() if k != "score"} == {
        k: v for k, v in want.items() if k != "score"}, label
    np.testing.assert_allclose(mine["score"], want["score"], rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def golden() -> dict:
    return json.loads(GOLDEN.read_text("utf-8"))


def test_sweeps_match_the_golden_outputs(pinned):  # noqa: F811
    got = _snapshot(_sweeps(pinned))
    if os.environ.get("RMVALUES_WRITE_GOLDEN"):
        GOLDEN.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n", "utf-8")
    want = json.loads(GOLDEN.read_text("utf-8"))
    assert sorted(got) == sorted(want)
    for name in want:
        for file in OUTPUTS:
            assert file in got[name]["files"], (name, file)
        assert got[name]["manifests"] == want[name]["manifests"], name
        _assert_table(got[name]["tables"]["sweep.parquet"], want[name]["tables"]["sweep.parquet"],
                      name)
