"""Fig 2 analysis of log-probs: single-token filter, ranks, 216 units, Type-II ANOVA df, Welch + BH."""

from __future__ import annotations

import numpy as np
import pytest

from rmvalues.analysis.lm_values import lm_values, write_lm_values
from rmvalues.errors import InputError
from rmvalues.implicit import renormalize
from rmvalues.lexicons import load_lexicon, paper_normalize
from rmvalues.store.logprob_runs import LogprobRun


@pytest.fixture(scope="module")
def paper_prompt_ids():
    from rmvalues.prompts import load_prompt_set

    return [p.id for p in load_prompt_set("paper-54").prompts]


@pytest.fixture(scope="module")
def big_two():
    return load_lexicon("big-two-nouns")


def _run(model, tokens, prompt_ids, seed, boost=()):
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 2, (len(prompt_ids), len(tokens)))
    for j, t in enumerate(tokens):
        if t in boost:
            x[:, j] += 3.0
    return LogprobRun(model=model, prompt_ids=list(prompt_ids), token_ids=np.arange(len(tokens)),
                      tokens=list(tokens), normalized=[paper_normalize(t) for t in tokens],
                      logprobs=renormalize(x))


def test_fig2_units_and_anova_df_for_two_models(paper_prompt_ids, big_two):
    agency, communion = big_two.terms("Agency"), big_two.terms("Communion")
    # model A has every word; model B lacks a few and has others only with a leading space
    vocab_a = ["the", " the", *agency, *communion, "!", "\n"]
    vocab_b = ["x", *agency[:-3], *[" " + w for w in agency[-3:]], *communion[5:], communion[0]]
    a = _run("llama-like", vocab_a, paper_prompt_ids, 1, boost=set(communion))
    b = _run("gemma-like", vocab_b, paper_prompt_ids, 2, boost=set(agency))
    res = lm_values([a, b], big_two)
    n_words = len(agency) - 3 + (len(communion) - 5) + 1
    assert len(res.words) == n_words
    assert len(res.units) == 216
    assert res.residual_df == 208
    assert res.formula == "median_rank ~ C(category) * C(framing) * C(model)"
    assert len(res.anova) == 8
    assert len(res.posthoc) == 4
    assert set(res.posthoc["correction"]) == {"bh"}
    # the boosts show up: Communion ranks better (smaller) under A, Agency under B
    means = res.units.groupby(["model", "category"], observed=True)["median_rank"].mean()
    assert means["llama-like", "Communion"] < means["llama-like", "Agency"]
    assert means["gemma-like", "Agency"] < means["gemma-like", "Communion"]
    assert (res.posthoc["p_adj"] < 0.001).all()
    # ranks are per (model, prompt) over all kept words, 1 = highest log-prob
    one = res.ranks[(res.ranks.model == "llama-like") & (res.ranks.prompt_id == "best_ever_one")]
    assert sorted(one["rank"]) == list(range(1, n_words + 1))
    assert one.loc[one["score"].idxmax(), "rank"] == 1
    assert "216 units, ANOVA residual df 208" in res.summary()


@pytest.mark.filterwarnings("ignore:Precision loss")
def test_ties_are_averaged(paper_prompt_ids, big_two):
    words = big_two.terms("Agency")[:2] + big_two.terms("Communion")[:2]
    run = LogprobRun(model="m", prompt_ids=paper_prompt_ids, token_ids=np.arange(4), tokens=words,
                     normalized=words,
                     logprobs=np.tile(np.log([0.4, 0.2, 0.2, 0.2]), (len(paper_prompt_ids), 1)))
    res = lm_values([run], big_two)
    first = res.ranks[res.ranks.prompt_id == paper_prompt_ids[0]]
    assert list(first["rank"]) == [1.0, 3.0, 3.0, 3.0]
    assert len(res.units) == 54 * 2 and res.residual_df == 108 - 4


def test_runs_on_different_prompts_are_an_error(paper_prompt_ids, big_two):
    words = big_two.terms()[:10]
    a = _run("a", words, paper_prompt_ids, 1)
    b = _run("b", words, paper_prompt_ids[:-1], 2)
    with pytest.raises(InputError, match="different prompts"):
        lm_values([a, b], big_two)


def test_write_tables(paper_prompt_ids, big_two, tmp_path):
    words = big_two.terms()
    res = lm_values([_run("a", words, paper_prompt_ids, 1), _run("b", words, paper_prompt_ids, 2)],
                    big_two)
    paths = write_lm_values(res, tmp_path)
    assert {p.name for p in paths} >= {"lm_units.csv", "lm_anova.csv", "lm_tests.csv", "lm_summary.txt"}
    assert (tmp_path / "manifest.json").exists()
