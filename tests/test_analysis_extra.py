"""Type-II ANOVA and post hoc, top-k, checkpoint summaries, importers, and the null baseline."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from rmvalues.analysis.anova import type2_anova, welch_posthoc
from rmvalues.analysis.checkpoints import checkpoint_units, final_checkpoint_table, rank_change
from rmvalues.analysis.importers import (
    model_from_filename,
    read_checkpoint_scores,
    read_dictionary_scores,
    read_rank_results,
    read_vocabulary_scores,
)
from rmvalues.analysis.null import interaction_statistic, null_baseline
from rmvalues.analysis.ranks import MatchPolicy
from rmvalues.analysis.topk import topk_counts
from rmvalues.errors import AnalysisError, InputError
from rmvalues.store.schema import SCORE_COLUMNS

LEX = pd.DataFrame({"term": ["kind", "strong", "warm", "brave"],
                    "category": ["Communion", "Agency", "Communion", "Agency"]})


def test_type2_anova_residual_df_and_balanced_equivalence():
    rng = np.random.default_rng(0)
    rows = [{"rank": rng.normal() + (c == "A") * 2, "Category": c, "framing": f, "model": m}
            for c in "AB" for f in ("positive", "negative") for m in ("m1", "m2") for _ in range(27)]
    data = pd.DataFrame(rows)  # 216 units (2 models x 54 prompts x 2 categories), 8 cells
    table = type2_anova(data, "rank ~ C(Category) * C(framing) * C(model)").set_index("term")
    assert table.loc["Residual", "df"] == 208
    # Balanced design: type II equals the one-way F for a main effect's SS over the residual MS.
    assert table.loc["C(Category)", "p"] < 1e-10
    ss_cat = sum(len(g) * (g["rank"].mean() - data["rank"].mean()) ** 2 for _, g in data.groupby("Category"))
    assert table.loc["C(Category)", "sum_sq"] == pytest.approx(ss_cat)


def test_welch_posthoc_bh():
    data = pd.DataFrame({"v": [1.0, 2, 3, 4, 2, 3, 4, 5, 10, 11, 12, 13],
                         "g": ["a"] * 4 + ["b"] * 4 + ["c"] * 4})
    out = welch_posthoc(data, "v", "g")
    assert list(zip(out.group_a, out.group_b)) == [("a", "b"), ("a", "c"), ("b", "c")]
    p = out["p"].to_numpy()
    assert out.loc[0, "p"] == pytest.approx(stats.ttest_ind([1, 2, 3, 4], [2, 3, 4, 5], equal_var=False).pvalue)
    order = np.argsort(p)
    bh = np.minimum.accumulate((p[order] * 3 / np.arange(1, 4))[::-1])[::-1]
    assert out["p_adj"].to_numpy()[order] == pytest.approx(bh)


def scores(rows):
    frame = pd.DataFrame(rows, columns=["model", "prompt_id", "candidate", "score"])
    frame["normalized"] = frame["candidate"].str.strip().str.lower()
    return frame


def test_topk_counts_by_hand():
    s = scores([("m", "p", w, v) for w, v in [("kind", 5), ("zzz", 4), ("strong", 3), ("warm", 2), ("brave", 1)]])
    out = topk_counts(s, LEX, k=3).set_index("category")["count"].to_dict()
    assert out == {"Communion": 1, "Agency": 1}
    out = topk_counts(s, LEX, k=4).set_index("category")
    assert out["count"].to_dict() == {"Communion": 2, "Agency": 1} and out.loc["Communion", "share"] == 0.5


def test_checkpoint_units_and_fig5_rank_change():
    rows = []
    for step, vals in [(0, {" Kind": 4, "kind": 0, "strong": 3, "warm": 2, "brave": 1}),
                       (100, {" Kind": 0, "kind": 0, "strong": 1, "warm": 3, "brave": 4})]:
        rows += [("run", "greatest_ever_one", w, float(v), step) for w, v in vals.items()]
    s = scores([r[:4] for r in rows]).assign(checkpoint=[r[4] for r in rows])
    change = rank_change(s, LEX).set_index("item")
    # step 0 means: kind 2, strong 3, warm 2, brave 1 -> ranks strong 1, kind/warm 2.5, brave 4
    # step 100: kind 0, strong 1, warm 3, brave 4 -> brave 1, warm 2, strong 3, kind 4
    assert change.loc["brave", "change"] == 3 and change.loc["kind", "change"] == -1.5
    assert change.index[0] == "brave"
    units = checkpoint_units(s, LEX)
    assert set(units["checkpoint"]) == {0, 100} and set(units["n_items"]) == {2, 3}


def test_final_checkpoint_table(tmp_path):
    path = tmp_path / "rank_results_uf_13.csv"
    path.write_text('"X","model_id","Category","checkpoint","base_model","sum_value","data_size"\n'
                    'NA,"R-Lla-3B","Agency",1,"Llama",700,13\nNA,"R-Lla-3B","Agency",5,"Llama",650,13\n'
                    'NA,"R-Gem-2B","Agency",5,"Gemma",720.5,13\n')
    table = final_checkpoint_table(read_rank_results(path))
    assert table["checkpoint"].tolist() == [5, 5] and table["median_rank"].tolist() == [720.5, 650]


def test_importers_produce_the_store_columns(tmp_path):
    dic = tmp_path / "big2_rewards_Ray2333_GRM-Llama3-8B-rewardmodel-ft.csv"
    dic.write_text("response,best_ever_one,worst_ever_one\nkind,1.5,-1\nnull,0.5,2\n")
    table = read_dictionary_scores(dic)
    assert list(table.columns) == list(SCORE_COLUMNS) and len(table) == 4
    assert set(table["model"]) == {"grm-llama3-8b"} and "null" in set(table["candidate"])
    assert model_from_filename("MFD20_rewards_Some_Unknown-RM.csv") == "Some_Unknown-RM"
    vocab = tmp_path / "lp.csv"
    vocab.write_text("token_id,token_name,token_decoded,best_ever_one\n0,Ġkind,\" Kind\",0.1\n1,x,x,0.2\n")
    table = read_vocabulary_scores(vocab, model="lm")
    assert table["token_id"].tolist() == [0, 1] and table["normalized"].tolist() == ["kind", "x"]
    sweep = tmp_path / "sweep.parquet"
    pd.DataFrame({"token_decoded": [" kind", "warm"], "step-10": [1.0, 2.0], "step-0": [0.0, 3.0]}).to_parquet(sweep)
    table = read_checkpoint_scores(sweep, run="r")
    assert sorted(table["checkpoint"].unique()) == [0, 10] and len(table) == 4
    bad = tmp_path / "bad.csv"
    bad.write_text("word,best_ever_one\nkind,1\n")
    with pytest.raises(InputError, match="response"):
        read_dictionary_scores(bad)
    nan = tmp_path / "nan.csv"
    nan.write_text("response,best_ever_one\nkind,\n")
    with pytest.raises(InputError, match="kind"):
        read_dictionary_scores(nan, model="m")


def test_interaction_statistic_is_did_squared_over_four():
    # Two rows (bases 0 and 1), items a, b (cat 0) and c, d (cat 1).
    s = np.array([[4.0, 3, 2, 1], [1.0, 2, 3, 4]])
    membership = np.array([[1, 0], [1, 0], [0, 1], [0, 1]], dtype=bool)
    # row 0 medians: cat0 1.5, cat1 3.5; row 1: cat0 3.5, cat1 1.5 -> DiD = (-2) - 2 = -4
    assert interaction_statistic(s, membership, np.array([0, 1])) == pytest.approx(16 / 4)


def simulated_null_scores(rng, n_pool=40, n_models=4, n_prompts=4):
    rows = []
    for m in range(n_models):
        item_effect = rng.normal(0, 1, n_pool)  # each model has its own stable preferences
        for p in range(n_prompts):
            vals = item_effect + rng.normal(0, 0.5, n_pool)
            rows += [(f"m{m}", f"best_p{p}_one", f"w{i}", v) for i, v in enumerate(vals)]
    return scores(rows)


def test_null_baseline_is_calibrated_without_an_effect():
    """Under the null the observed statistic is exchangeable with the draws, so with n draws p is
    uniform on {1, ..., n+1}/(n+1). A p without the +1 (count/n) is 0 with probability 1/(n+1) and
    off that lattice otherwise: over 100 simulations it survives with probability < 0.9**100 = 3e-5.
    """
    rng = np.random.default_rng(12345)
    meta = {f"m{m}": {"base": "Gemma" if m < 2 else "Llama"} for m in range(4)}
    n_draws, pvals = 9, []
    for _ in range(100):
        s = simulated_null_scores(rng)
        words = rng.choice(40, size=12, replace=False)
        lex = pd.DataFrame({"term": [f"w{i}" for i in words], "category": ["A"] * 5 + ["B"] * 7})
        pvals.append(null_baseline(s, lex, model_meta=meta, n_draws=n_draws,
                                   seed=int(rng.integers(1 << 30))).p_value)
    steps = np.array(pvals) * (n_draws + 1)
    assert np.allclose(steps, np.round(steps)) and steps.min() >= 1 and steps.max() <= n_draws + 1
    counts = np.bincount(np.round(steps).astype(int), minlength=n_draws + 2)[1:]
    assert stats.chisquare(counts).pvalue > 0.001  # uniform over the n+1 values
    assert stats.binomtest(int(counts[0]), len(pvals), 1 / (n_draws + 1)).pvalue > 0.001


def test_null_baseline_detects_a_planted_interaction_and_checks_input():
    rng = np.random.default_rng(7)
    s = simulated_null_scores(rng, n_models=4, n_prompts=3)
    meta = {f"m{m}": {"base": "Gemma" if m < 2 else "Llama"} for m in range(4)}
    lex = pd.DataFrame({"term": [f"w{i}" for i in range(10)], "category": ["A"] * 5 + ["B"] * 5})
    # Gemma models love category A, Llama models love category B.
    gem = s["model"].isin(["m0", "m1"])
    in_a = s["candidate"].isin([f"w{i}" for i in range(5)])
    in_b = s["candidate"].isin([f"w{i}" for i in range(5, 10)])
    s.loc[gem & in_a, "score"] += 3
    s.loc[~gem & in_b, "score"] += 3
    for kind in ("random_words", "shuffled_labels"):
        res = null_baseline(s, lex, model_meta=meta, n_draws=99, seed=1, kind=kind)
        # p = (1 + draws at least as extreme) / (1 + draws): never 0, even when no draw reaches it
        at_least = int(np.sum(res.null >= res.observed))
        assert res.p_value == pytest.approx((1 + at_least) / 100)
        if kind == "random_words":  # the planted effect beats every random word set
            assert at_least == 0 and res.p_value == pytest.approx(0.01)
        assert res.percentile >= 95
        assert set(res.to_frame().columns) >= {"observed", "p_value", "percentile"}
    with pytest.raises(AnalysisError, match="only one"):
        null_baseline(s, lex, model_meta={m: {"base": "Gemma"} for m in meta}, n_draws=5)
    with pytest.raises(AnalysisError, match="two categories"):
        null_baseline(s, lex.assign(category="A"), model_meta=meta, n_draws=5)


def test_null_policy_is_explicit():
    s = scores([("m0", "p", "Kind", 1.0)])
    with pytest.raises(AnalysisError, match="match=exact"):
        null_baseline(s, LEX, policy=MatchPolicy(), n_draws=3)
