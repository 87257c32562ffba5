"""Statistics within one RM and across any grouping (issue 17, findings 1, 2, 5 and 8)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rmvalues.analysis.pipeline import analyze, write_analysis
from rmvalues.analysis.single_rm import (
    category_contrasts,
    group_comparison,
    paired_bootstrap,
    paired_tests,
    reference_paired_bootstrap,
    single_rm_nulls,
    verdict,
)
from rmvalues.cli import main
from rmvalues.errors import InputError
from rmvalues.lexicons import load_lexicon
from rmvalues.prompts import load_prompt_set

FAST = {"n_boot": 200, "n_resamples": 99}


def big_two():
    return load_lexicon("big-two-nouns")


def lexicon_scores(model: str = "rm1", shift: float = 0.0, seed: int = 0, lex=None,
                   word_effect: float = 0.0, **extra) -> pd.DataFrame:
    """Scores of every Big Two noun under the 54 prompts: noise (a per-word effect shared by all
    prompts, plus per-prompt noise) and Communion words shifted up by ``shift``."""
    lex = lex or big_two()
    rng = np.random.default_rng(seed)
    prompts = load_prompt_set("paper-54").to_frame()["prompt_id"]
    terms = [(t, c) for c in ("Agency", "Communion") for t in lex.terms(c)]
    word = rng.normal(size=len(terms)) * word_effect
    rows = []
    for pid in prompts:
        noise = rng.normal(size=len(terms))
        for (t, c), w, e in zip(terms, word, noise):
            rows.append({"model": model, "prompt_id": pid, "candidate": t,
                         "score": w + e + (shift if c == "Communion" else 0.0), **extra})
    return pd.DataFrame(rows)


def test_paired_bootstrap_equals_its_reference_and_tests_match_scipy():
    from scipy import stats

    diffs = np.random.default_rng(3).normal(1.0, 2.0, size=20)
    lo, hi, _, _ = paired_bootstrap(diffs, n_boot=300, seed=5)
    assert (lo, hi) == pytest.approx(reference_paired_bootstrap(diffs, n_boot=300, seed=5))
    t, p_t, p_w = paired_tests(diffs)
    assert t == pytest.approx(diffs.mean() / (diffs.std(ddof=1) / np.sqrt(len(diffs))))
    assert p_t == pytest.approx(stats.ttest_rel(diffs, np.zeros_like(diffs)).pvalue)
    assert p_w == pytest.approx(stats.wilcoxon(diffs).pvalue)
    assert paired_tests(np.zeros(5)) == (0.0, 1.0, 1.0)


def test_one_rm_gets_a_category_contrast_with_test_effect_size_and_nulls():
    """Finding 2: one RM had no answer to "Agency or Communion?" and --null-draws did nothing."""
    result = analyze([lexicon_scores(shift=1.0)], big_two(), null_draws=99, **FAST)
    c = result.contrasts.set_index("framing")
    assert list(c.index) == ["all", "positive", "negative"]
    # places_above = median rank(Communion) - median rank(Agency): Communion ranks higher -> < 0
    assert c.loc["all", "places_above"] < -30
    assert c.loc["all", "places_above_hi"] < 0 and c.loc["all", "p_t"] < 1e-10
    assert c.loc["all", "d_z"] < -2 and c.loc["all", "n_prompts"] == 54
    assert c.loc["positive", "n_prompts"] == c.loc["negative", "n_prompts"] == 27
    null = result.null.set_index("kind")
    assert set(null.index) == {"random_words", "shuffled_labels"}
    assert (null["p_value"] == 1 / 100).all()
    text = result.summary_text()
    assert "Communion ranks" in text and "places above Agency" in text and "Cohen's d_z" in text
    assert "null shuffled_labels" in text
    assert verdict(c.loc["all"].to_dict() | {"framing": "all"}, result.null)


def test_no_preference_control_is_not_a_verdict():
    """Words with their own (prompt-independent) effects: the paired test over prompts can fire on
    these particular words, the label-shuffle null does not, and the verdict follows the null."""
    scores = lexicon_scores(shift=0.0, word_effect=2.0, seed=11)
    result = analyze([scores], big_two(), null_draws=99, **FAST)
    row = result.contrasts.iloc[0]
    shuffled = result.null.set_index("kind").loc["shuffled_labels", "p_value"]
    assert shuffled > 0.05
    assert not verdict(row, result.null)


def test_a_sweep_is_analysed_per_checkpoint_never_dropping_one(tmp_path, capsys):
    """Finding 1: `analyze` of a sweep (steps 0 and 30) analysed step 0 only."""
    sweep = pd.concat([lexicon_scores(checkpoint=0, seed=1),
                       lexicon_scores(shift=1.5, checkpoint=30, seed=2)], ignore_index=True)
    path = tmp_path / "sweep.parquet"
    sweep.to_parquet(path)
    assert main(["analyze", str(path), "--boot", "100", "--resamples", "99",
                 "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "216 units: 1 model x 2 checkpoints x 54 prompts x 2 categories" in out
    assert "rm1 @ checkpoint 0:" in out and "rm1 @ checkpoint 30:" in out
    assert "Across checkpoint" in out and "0 -> 30" in out
    contrasts = pd.read_csv(tmp_path / "out" / "contrasts.csv")
    assert set(contrasts["checkpoint"]) == {0, 30}
    all_prompts = contrasts[contrasts["framing"] == "all"].set_index("checkpoint")
    assert abs(all_prompts.loc[0, "places_above"]) < 15 and all_prompts.loc[30, "places_above"] < -40
    groups = pd.read_csv(tmp_path / "out" / "groups.csv")
    assert groups.loc[0, "group_x"] == 0 and groups.loc[0, "group_y"] == 30 and groups.loc[0, "change"] < -40
    # the report of a sweep analysis: the contrast curve across steps, a panel per checkpoint
    assert main(["report", str(tmp_path / "out"), "--out", str(tmp_path / "report"), "--formats", "png"]) == 0
    page = (tmp_path / "report" / "report.html").read_text("utf-8")
    assert "Category contrast across checkpoints" in page
    for stem in ("contrast_by_checkpoint", "median_rank_by_category"):
        assert (tmp_path / "report" / "figures" / f"{stem}.png").is_file()


def test_the_same_model_twice_is_refused_with_both_names(tmp_path):
    """Never silently drop rows of another run: the same model in two inputs is refused."""
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    lexicon_scores(seed=1).to_parquet(a)
    lexicon_scores(seed=2).to_parquet(b)
    with pytest.raises(InputError, match=r"model rm1 is in two inputs \(.*a.parquet and .*b.parquet\)"):
        analyze([a, b], big_two(), **FAST)


def test_two_unregistered_models_are_compared_directly(tmp_path, capsys):
    """Finding 5: two unregistered models -> "no base-family metadata"; now a direct comparison."""
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    lexicon_scores("mine-a", seed=1).to_parquet(a)
    lexicon_scores("mine-b", shift=1.0, seed=2).to_parquet(b)
    assert main(["analyze", str(a), str(b), "--boot", "100", "--resamples", "99"]) == 0
    out = capsys.readouterr().out
    assert "no base-family metadata for model(s) ['mine-a', 'mine-b']" in out
    assert "Compared model by model instead" in out
    assert "Across model" in out and "mine-a -> mine-b" in out


def test_group_by_a_metadata_column_without_the_two_by_two_design(tmp_path):
    runs = [lexicon_scores(m, shift=s, seed=i) for i, (m, s) in
            enumerate((("a1", 0.0), ("a2", 0.2), ("b1", 1.0)))]
    meta = {"a1": {"base": "Alpha"}, "a2": {"base": "Alpha"}, "b1": {"base": "Beta"}}
    result = analyze(runs, big_two(), model_meta=meta, group_by="base", **FAST)
    assert result.mixed is None and any("models per base family" in n for n in result.notes)
    g = result.groups.iloc[0]
    assert (g["group_x"], g["group_y"]) == ("Alpha", "Beta") and g["change"] < -20
    # the group value is the mean of its models' contrasts under each prompt
    c = category_contrasts(result.units, by=["model"], n_boot=50).query("framing == 'all'").set_index("model")
    assert g["places_above_x"] == pytest.approx((c.loc["a1", "places_above"] + c.loc["a2", "places_above"]) / 2)
    with pytest.raises(InputError, match="--group-by 'size': the units have no such column"):
        group_comparison(result.units, "size", "Agency", "Communion")


def test_nulls_for_one_rm_are_calibrated_without_an_effect():
    """The label-shuffle p of a no-effect RM is roughly uniform (few small p-values)."""
    lex = big_two()
    small = pd.concat([lex.to_frame()[lex.to_frame()["category"] == c].head(15) for c in ("Agency", "Communion")])
    pvals = []
    for seed in range(12):
        s = lexicon_scores(seed=seed, word_effect=1.0)
        s = s[s["candidate"].isin(small["term"])]
        res = single_rm_nulls(s, small, "Agency", "Communion", n_draws=39, seed=seed)
        pvals.append(res.set_index("kind").loc["shuffled_labels", "p_value"])
    assert sum(p < 0.05 for p in pvals) <= 2


def test_exact_match_on_a_vocabulary_run_warns_about_coverage(tmp_path):
    """Finding 8: exact match matched 2 of 263 words with no warning (--match paper matched 31)."""
    lex = big_two()
    terms = list(lex.to_frame()["term"].drop_duplicates())
    # vocabulary tokens: leading space and capitals, as a tokenizer's pieces decode
    cands = [f" {t.capitalize()}" for t in terms[:31]] + terms[31:33] + ["xyz", " the"]
    prompts = load_prompt_set("paper-54").to_frame()["prompt_id"]
    rng = np.random.default_rng(0)
    table = pd.DataFrame([{"model": "rm1", "prompt_id": p, "candidate": c, "score": rng.normal()}
                          for p in prompts for c in cands])
    from rmvalues.lexicons import paper_normalize

    table["normalized"] = table["candidate"].map(paper_normalize)
    result = analyze([table], lex, **FAST)
    assert any("only 2 of 263 lexicon terms match a candidate under match=exact" in n
               and "--match paper (ASCII, stripped, lower-case) matches 33" in n for n in result.notes)
    cov = result.coverage.set_index("category")
    assert cov["n_matched"].sum() == 2 and cov["n_terms"].sum() == len(lex.to_frame())
    from rmvalues.analysis.ranks import MatchPolicy

    paper = analyze([table], lex, policy=MatchPolicy(match="paper"), **FAST)
    assert any("only 33 of 263" in n for n in paper.notes) and not any("--match paper" in n for n in paper.notes)
    write_analysis(paper, tmp_path / "out")
    assert (tmp_path / "out" / "coverage.csv").is_file()


def test_one_category_keeps_the_ranks_and_says_there_is_no_contrast():
    result = analyze([lexicon_scores()], big_two(), categories=["Communion"], **FAST)
    assert result.contrasts is None and "one category: no category contrast" in result.notes
    assert set(result.units["category"]) == {"Communion"}
