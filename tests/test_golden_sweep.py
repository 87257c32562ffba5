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
from test_golden_run import _snapshot, pinned  # noqa: F401  (the fixture)

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
        assert got[name]["manifests"][OUTPUTS[1]] == want[name]["manifests"][OUTPUTS[1]], name
        _assert_table(got[name]["tables"]["sweep.parquet"], want[name]["tables"]["sweep.parquet"],
                      name)


def _legacy_table(table: dict):
    """A ``step-N-<key>.parquet`` table as the old sweep wrote it, from its golden digest."""
    import pandas as pd

    frame = pd.DataFrame({**table["columns"], "score": table["score"]})
    return frame[list(table["dtypes"])].astype(table["dtypes"])


def test_an_old_format_partial_sweep_resumes(pinned, golden):  # noqa: F811
    """A folder left by the old sweep (checkpoints 0 and 1 done, killed before 2) is taken over:
    its step tables become unit shards (not rescored), the rest is scored, the output is the
    golden's, and a further run resumes every unit."""
    from rmvalues.training.sweep import sweep

    run = _train(pinned)
    want = golden["texts"]
    old = {f: t for f, t in want["tables"].items() if f.startswith(("step-0-", "step-1-"))}
    assert len(old) == 2
    folder = pinned / "texts"
    folder.mkdir()
    marked = {}
    for file, table in old.items():
        frame = _legacy_table(table)
        if file.startswith("step-0-"):  # distinctive scores: seen again only if taken over
            frame["score"] = (frame["score"] + 100).astype("float32")
            marked = dict(zip(zip(frame["prompt_id"], frame["candidate"]), frame["score"]))
        frame.to_parquet(folder / file, index=False)

    result = sweep(run, PROMPTS, TEXTS, "texts", device="cpu")
    assert "4 unit(s) resumed" in result.summary  # 2 checkpoints x 2 prompts
    step0 = result.table[result.table["checkpoint"] == 0]
    assert dict(zip(zip(step0["prompt_id"], step0["candidate"]), step0["score"])) == marked
    assert not list(folder.glob("step-*.parquet"))  # taken over into shards/
    assert len(list((folder / "shards").rglob("*.parquet"))) == 6
    got = _snapshot({"texts": folder})["texts"]
    assert got["manifests"][OUTPUTS[1]] == want["manifests"][OUTPUTS[1]]
    rest = result.table[result.table["checkpoint"] != 0]
    golden_table = _legacy_table(want["tables"]["sweep.parquet"])
    np.testing.assert_allclose(rest["score"], golden_table[golden_table["checkpoint"] != 0]["score"],
                               rtol=1e-5, atol=1e-6)

    again = sweep(run, PROMPTS, TEXTS, "texts", device="cpu")
    assert "6 unit(s) resumed" in again.summary
    import pandas as pd

    pd.testing.assert_frame_equal(again.table, result.table)


def test_an_old_table_of_other_rows_is_scored_again(pinned, golden, caplog):  # noqa: F811
    """A step table that does not hold the units' rows is left alone, with a warning, and scored."""
    from rmvalues.training.sweep import sweep

    run = _train(pinned)
    want = golden["texts"]
    file = next(f for f in want["tables"] if f.startswith("step-0-"))
    (pinned / "texts").mkdir()
    _legacy_table(want["tables"][file]).iloc[1:].to_parquet(pinned / "texts" / file, index=False)
    with caplog.at_level("WARNING", logger="rmvalues.training"):
        result = sweep(run, PROMPTS, TEXTS, "texts", steps=[0], device="cpu")
    assert "scored again" in caplog.text and (pinned / "texts" / file).is_file()
    assert "resumed" not in result.summary
    golden_table = _legacy_table(want["tables"][file])
    np.testing.assert_allclose(result.table["score"], golden_table["score"], rtol=1e-5, atol=1e-6)
