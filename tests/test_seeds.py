"""Seed sweeps of training, seed-to-seed spread beside the family gap, and counterbalanced data."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from _bias_fixtures import LEXICON, planted_scores
from _train_models import preference_records, tiny_base_dir
from rmvalues.errors import InputError
from rmvalues.lexicons import load_lexicon
from rmvalues.prompts import load_prompt_set
from rmvalues.training.seeds import counterbalance_records, pair_signal


def _records(n_a: int, n_c: int) -> list[dict]:
    """n_a pairs preferring an Agency word over a Communion word, n_c the other way."""
    lex = load_lexicon("big-two-nouns")
    a, c = sorted(lex.terms("Agency"))[:3], sorted(lex.terms("Communion"))[:3]
    out = [{"prompt": f"q{i}", "chosen": f"The answer is {a[i % 3]}.", "rejected": f"{c[i % 3]}"}
           for i in range(n_a)]
    out += [{"prompt": f"r{i}", "chosen": c[i % 3], "rejected": a[i % 3]} for i in range(n_c)]
    return out + [{"prompt": "z", "chosen": "good", "rejected": "bad"}]


def test_counterbalance_duplicates_minority_pairs_until_balanced():
    records = _records(6, 2)
    balanced, report = counterbalance_records(records, "big-two-nouns")
    assert report.signal_before == 2 * 6 - 2 * 2 == 8 and report.signal_after == 0
    assert report.duplicated == 4 and len(balanced) == len(records) + 4
    lex = load_lexicon("big-two-nouns")
    words = [{t.lower() for t in lex.terms(c)} for c in ("Agency", "Communion")]
    extra = balanced[len(records):]
    assert all(r in records and pair_signal(r, *words) < 0 for r in extra)
    already, none = counterbalance_records(_records(2, 2), "big-two-nouns")
    assert none.duplicated == 0 and len(already) == 5
    with pytest.raises(InputError, match="same side"):
        counterbalance_records(_records(3, 0), "big-two-nouns")


def test_seed_spread_beside_the_family_gap():
    from rmvalues.analysis.pipeline import analyze

    ids = [p.id for p in load_prompt_set("paper-54") if p.factors["style"] == "one"]
    frames, meta = [], []
    for s in (1, 2, 3):
        run = planted_scores(ids, bias=2.0, seed=s, models=("g1", "l1"))
        run["model"] = run["model"] + f"-s{s}"
        frames.append(run)
        meta += [{"model": f"g1-s{s}", "base": "Gemma", "seed": s},
                 {"model": f"l1-s{s}", "base": "Llama", "seed": s}]
    res = analyze([pd.concat(frames)], LEXICON, model_meta=pd.DataFrame(meta), n_boot=300,
                  n_resamples=99)
    t = res.seeds[res.seeds["framing"] == "positive"].set_index("row")
    gap, per_seed = t.loc["family gap"], t.loc["gap per seed"]
    assert gap.hi < 0 and per_seed.n_seeds == 3
    assert abs(per_seed.value - gap.value) < 1e-9  # mean of per-seed gaps = the family gap
    assert abs(gap.value) > 3 * per_seed.sd  # the planted base effect dwarfs the seed spread
    assert "Seed-to-seed" in res.summary_text() and "seed_spread" in res.tables()


def test_train_seeds_and_counterbalance_from_the_cli(tmp_path):
    from typer.testing import CliRunner

    from rmvalues.cli import app

    data = tmp_path / "pairs.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in _records(4, 1) + preference_records(3)))
    out = tmp_path / "runs"
    result = CliRunner().invoke(app, [
        "train", "--base", str(tiny_base_dir()), "--data", str(data), "--out", str(out),
        "--seeds", "1,2", "--counterbalance", "big-two-nouns", "--max-steps", "1",
        "--device", "cpu", "--set", "per_device_train_batch_size=2",
        "--set", "gradient_accumulation_steps=1"])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "seeds.json").read_text())["seeds"] == [1, 2]
    report = json.loads((out / "counterbalance.json").read_text())
    assert report["signal_before"] == 6 and report["signal_after"] == 0
    from rmvalues.store.manifest import read_manifest

    fields = [read_manifest(out / f"seed-{s}" / "manifest.json").fields for s in (1, 2)]
    assert [f["config"]["seed"] for f in fields] == [1, 2]
    assert all(f["data"]["pairs"] == 4 + 1 + 1 + 3 + 3 for f in fields)  # 3 duplicated pairs
