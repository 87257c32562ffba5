"""`check-released`: compare scores with the paper's released ones, prompt by prompt (issue 13)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from _engine_models import tiny_rm, tiny_rm_dir
from rmvalues.analysis.importers import read_dictionary_scores
from rmvalues.analysis.released_check import (
    RELEASED_TOLERANCE,
    check_released,
    compare_with_released,
    released_wide,
)
from rmvalues.api import score
from rmvalues.cli import main

RELEASED = "paper-data/dict_big2_nouns/big2_rewards_nicolinho_QRM-Llama3.1-8B.csv"
PROMPTS = {"best_ever_one": "What, in one word, is the best thing ever?",
           "worst_ever_one": "What, in one word, is the worst thing ever?"}


@pytest.fixture(scope="module")
def released(shared_dir):
    return read_dictionary_scores(shared_dir / RELEASED, model="released")


def test_released_scores_agree_with_themselves(released):
    check = compare_with_released(released, released, tolerance=1e-6)
    assert check.passed and len(check.table) == 54
    assert (check.table["spearman"] > 0.999999).all() and (check.table["top10_agree"] == 10).all()
    assert "PASS" in check.summary()


def test_perturbed_shuffled_and_swapped_scores_fail_and_say_where(released):
    rng = np.random.default_rng(0)
    tol = RELEASED_TOLERANCE["bfloat16"]
    in_prompt = released["prompt_id"] == "good_world_please"

    perturbed = released.copy()
    perturbed.loc[in_prompt, "score"] += rng.normal(0, 0.5, in_prompt.sum())
    check = compare_with_released(perturbed, released, tolerance=tol)
    assert not check.passed and len(check.problems) == 1
    assert "'good_world_please'" in check.problems[0] and "max |Δ|" in check.problems[0]
    assert check.table.set_index("prompt_id")["passed"].sum() == 53

    shuffled = released.copy()
    shuffled.loc[in_prompt, "score"] = rng.permutation(shuffled.loc[in_prompt, "score"].to_numpy())
    check = compare_with_released(shuffled, released, tolerance=tol)
    assert [p.split(":")[0] for p in check.problems] == ["prompt 'good_world_please'"]
    assert "Spearman" in check.problems[0]

    swapped = released.copy()
    a, b = swapped["prompt_id"] == "best_ever_one", swapped["prompt_id"] == "worst_ever_one"
    swapped.loc[a, "prompt_id"], swapped.loc[b, "prompt_id"] = "worst_ever_one", "best_ever_one"
    check = compare_with_released(swapped, released, tolerance=tol)
    assert sorted(p.split(":")[0] for p in check.problems) == ["prompt 'best_ever_one'",
                                                               "prompt 'worst_ever_one'"]

    small = released.copy()  # a tiny uniform offset: ranks intact, but beyond a float32 tolerance
    small["score"] += 0.01
    assert compare_with_released(small, released, tolerance=tol).passed
    assert not compare_with_released(small, released, tolerance=RELEASED_TOLERANCE["float32"]).passed

    missing = released[released["candidate"] != "accuracy"]
    check = compare_with_released(missing, released, tolerance=tol)
    assert any("only in the released file" in p and "'accuracy'" in p for p in check.problems)


def test_a_tiny_models_own_scores_in_released_format_pass(tmp_path, released):
    rm = tiny_rm("gemma")  # (the tiny Llama's pad is eos, in its template: constant paper scores)
    words = list(dict.fromkeys(released["candidate"]))[:40]
    own = score(rm, PROMPTS, words, None, paper_compatible=True)
    csv = tmp_path / "big2_rewards_tiny.csv"
    released_wide(own.table).to_csv(csv, index=False)
    assert read_dictionary_scores(csv)["candidate"].nunique() == 40

    check = check_released(rm, released=csv, prompts=PROMPTS, out=tmp_path / "check")
    assert check.passed, check.summary()
    assert check.manifest["dtype"] == "float32" and check.manifest["tolerance"] == 1e-3
    assert (tmp_path / "check" / "released_check.csv").exists()
    # the score run under out/scores is carried into the swapped-in folder (and resumes from it)
    assert any((tmp_path / "check" / "scores").glob("*.manifest.json"))
    manifest = json.loads((tmp_path / "check" / "manifest.json").read_text())
    assert manifest["fields"]["passed"] is True and manifest["fields"]["released_file"] == csv.name

    bad = released_wide(own.table)
    bad["worst_ever_one"] = bad["worst_ever_one"].sample(frac=1, random_state=1).to_numpy()
    bad.to_csv(csv, index=False)
    prompts_file = tmp_path / "prompts.yaml"
    prompts_file.write_text("name: two\nprompts:\n" + "".join(
        f"  - id: {pid}\n    text: \"{text}\"\n" for pid, text in PROMPTS.items()))
    rc = main(["check-released", "--model", str(tiny_rm_dir("gemma")), "--released", str(csv),
               "--prompts", str(prompts_file), "--device", "cpu", "--dtype", "float32",
               "--out", str(tmp_path / "cli")])
    assert rc != 0
    summary = (tmp_path / "cli" / "summary.txt").read_text()
    assert "FAIL" in summary and "prompt 'worst_ever_one'" in summary
    assert "prompt 'best_ever_one'" not in summary.split("FAIL")[1]


def test_the_registry_names_each_models_released_file():
    from rmvalues.analysis.released_check import released_file
    from rmvalues.errors import InputError

    path = released_file("grm-llama3.2-3b", "big2-nouns")
    assert path.name == "big2_rewards_Ray2333_GRM-Llama3.2-3B-rewardmodel-ft.csv"
    assert released_file("skywork-gemma2-27b", "big2-nouns").name.endswith("Gemma-2-27B.csv")
    with pytest.raises(InputError, match="no released scores"):
        released_file("grm-llama3-8b-sftreg", "big2-nouns")
