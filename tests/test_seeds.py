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


def test_counterbalance_swaps_words_so_every_preference_is_seen_both_ways():
    records = _records(6, 2)
    balanced, report = counterbalance_records(records, "big-two-nouns")
    assert report.signal_before == 8 and report.signal_after == 0
    assert report.added == 8 and len(balanced) == len(records) + 8  # one copy per signed pair
    lex = load_lexicon("big-two-nouns")
    agency = {t.lower() for t in lex.terms("Agency")}
    first = balanced[len(records)]
    assert first["prompt"] == records[0]["prompt"] and first["chosen"].startswith("The answer is ")
    assert first["chosen"].removeprefix("The answer is ").rstrip(".") not in agency
    assert first["rejected"].lower() in agency  # the Communion word became an Agency word
    with pytest.raises(InputError, match="mode"):
        counterbalance_records(records, "big-two-nouns", mode="drop")


def test_counterbalance_duplicates_minority_pairs_until_balanced():
    records = _records(6, 2)
    balanced, report = counterbalance_records(records, "big-two-nouns", mode="duplicate")
    assert report.signal_before == 2 * 6 - 2 * 2 == 8 and report.signal_after == 0
    assert report.added == 4 and len(balanced) == len(records) + 4
    lex = load_lexicon("big-two-nouns")
    words = [{t.lower() for t in lex.terms(c)} for c in ("Agency", "Communion")]
    extra = balanced[len(records):]
    assert all(r in records and pair_signal(r, *words) < 0 for r in extra)
    already, none = counterbalance_records(_records(2, 2), "big-two-nouns", mode="duplicate")
    assert none.added == 0 and len(already) == 5
    with pytest.raises(InputError, match="same side"):
        counterbalance_records(_records(3, 0), "big-two-nouns", mode="duplicate")


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
    assert all(f["data"]["pairs"] == 4 + 1 + 1 + 3 + 5 for f in fields)  # 5 swapped copies


@pytest.mark.slow
def test_counterbalanced_training_removes_the_data_imbalance_seen_by_the_unbalanced_run(tmp_path):
    """A tiny base that "knows" the Big Two (planted embeddings) trained on pairs that mostly prefer
    Communion over Agency words learns that preference; the same seed trained on counterbalanced
    data (swapped copies, or the reverse pairs duplicated) must add far less of it, measured on
    held-out words and prompts as the tilt's change from the shared step-0 head. (Observed: the
    unbalanced run moves the tilt by +21 median-rank places, swap by +0.9, duplicate by +0.7; the
    rank tilt of this toy saturates, so the step-0 baseline matters.)"""
    from _train_models import planted_base_dir
    from rmvalues.training.config import TrainConfig
    from rmvalues.training.injection import injection_records, injection_split
    from rmvalues.training.sweep import sweep
    from rmvalues.training.trainer import train_reward_model

    config = TrainConfig(per_device_train_batch_size=4, gradient_accumulation_steps=1,
                         num_train_epochs=1, learning_rate=5e-3, logging_steps=50, seed=3)
    split = injection_split("big-two-nouns", "Communion", "Agency", "paper-54", max_words=40, seed=3)
    majority = injection_records(split, 160, seed=3)  # chosen Communion, rejected Agency
    minority = [{**r, "chosen": r["rejected"], "rejected": r["chosen"]}
                for r in injection_records(split, 20, seed=4)]
    unbalanced = majority + minority
    runs = {"unbalanced": unbalanced}
    for mode in ("swap", "duplicate"):
        runs[mode], report = counterbalance_records(unbalanced, "big-two-nouns", mode=mode, seed=3)
        # (a word in both categories, or one the swap maps onto such a word, keeps a small residue)
        assert report.signal_before < 0 and abs(report.signal_after) <= abs(report.signal_before) / 20
    tables = []
    for name, records in runs.items():
        run = train_reward_model(planted_base_dir(), records, tmp_path / name, config, device="cpu")
        swept = sweep(tmp_path / name, split.test_prompts, [*split.test_a, *split.test_b],
                      tmp_path / f"sweep-{name}", steps=[run.steps[0], run.steps[-1]], name=name)
        table = swept.table
        table["model"] = name + "@" + table["checkpoint"].map({run.steps[0]: "start"}).fillna("end")
        tables.append(table.drop(columns="checkpoint"))
    from rmvalues.analysis.gap import tilts
    from rmvalues.analysis.ranks import ranked_items
    from rmvalues.analysis.units import median_rank_units

    lexicon = pd.DataFrame({"term": [*split.test_a, *split.test_b],  # the held-out words
                            "category": ["Communion"] * len(split.test_a) + ["Agency"] * len(split.test_b)})
    scores = pd.concat(tables)
    units = median_rank_units(ranked_items(scores, lexicon), require_base=False)
    t = tilts(units, ("Agency", "Communion")).groupby("model")["tilt"].mean()
    # what training added to the tilt (> 0: Agency ranked further below Communion), held-out
    # words and prompts; the same seed starts every run from the same head
    assert t["unbalanced@start"] == t["swap@start"] == t["duplicate@start"]
    change = {m: t[f"{m}@end"] - t[f"{m}@start"] for m in runs}
    assert change["unbalanced"] > 5
    # counterbalanced data (every preference also seen with the words swapped) adds far less
    assert abs(change["swap"]) < 0.25 * change["unbalanced"], change
    assert abs(change["duplicate"]) < 0.25 * change["unbalanced"], change  # re-weighting too
