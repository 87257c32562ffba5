"""Multi-token response search: planted optima found, fast path equal to the reference path, GCG's
best-so-far monotone, exactness flags, resume, CLI + report, and a short run on SmolLM2."""

from __future__ import annotations

import itertools
import json
import time

import numpy as np
import pandas as pd
import pytest

from _engine_models import tiny_rm, tiny_rm_dir
from _search_models import PROMPT, planted_rm
from rmvalues.engines.reference import reference_score
from rmvalues.engines.score import Engine
from rmvalues.engines.search import (
    Fluency,
    ResponseScorer,
    beam_search,
    gcg,
    rescore,
    token_space,
)
from rmvalues.errors import InputError
from rmvalues.models.chat import split_chat
from rmvalues.runs.search import search_responses

TOKENS = "alpha:3000-3400"


def _conversation(split, response):
    return [*split.prefix_ids, *response, *split.suffix_ids]


# -- token sets -----------------------------------------------------------------------------------


def test_token_space_kinds_and_errors() -> None:
    tok = tiny_rm("llama").tokenizer
    words = token_space(tok, "words:0-5000")
    decoded = {i: tok.decode([i]) for i in (*words.first, *words.rest)}
    assert all(decoded[i].isalpha() for i in words.first)
    assert all(decoded[i][0] == " " and decoded[i][1:].isalpha() for i in words.rest)
    assert max(words.rest) <= 5000
    vocab = token_space(tok, "vocab")
    assert tok.eos_token_id not in vocab.first and len(vocab.first) == 128_000  # 256 specials out
    assert tok.eos_token_id in token_space(tok, "vocab", include_special=True).first
    assert token_space(tok, [5, 9]).first == (5, 9)
    with pytest.raises(InputError, match="unknown token set"):
        token_space(tok, "bogus")
    with pytest.raises(InputError, match="only special tokens"):
        token_space(tok, [tok.eos_token_id])


# -- the cached path equals the reference path ---------------------------------------------------


@pytest.mark.parametrize("family", ["llama", "gemma"])
def test_extended_cache_scores_equal_reference(family) -> None:
    """Scores on a cache extended by a partial response (Gemma-2: past its sliding window)."""
    rm = tiny_rm(family)
    split = split_chat(rm.tokenizer, PROMPT)
    scorer = ResponseScorer(Engine(rm, batch_size=7), split)
    space = token_space(rm.tokenizer, TOKENS)
    tokens = space.first[:20]
    for response in [(), (space.first[0],), tuple(space.first[1:4])]:
        fast = scorer.next_token_scores(response, scorer.state(response), tokens)
        slow = reference_score(rm, [_conversation(split, (*response, t)) for t in tokens])
        assert np.abs(fast - slow).max() <= 1e-4
    whole = [tuple(space.first[i:i + 3]) for i in range(10)]
    assert np.abs(scorer.scores(whole) - reference_score(
        rm, [_conversation(split, r) for r in whole])).max() <= 1e-4
    assert scorer.evaluations == 3 * len(tokens) + len(whole)


def test_beam_on_the_full_path_equals_the_cached_path() -> None:
    """Heads that cannot use a cached prefix get whole conversations: same search, same result."""
    rm = tiny_rm("llama")
    split = split_chat(rm.tokenizer, PROMPT)
    space = token_space(rm.tokenizer, [*range(3000, 3040)])
    cached, full = (beam_search(ResponseScorer(Engine(rm, mode=mode), split), space, 3, "min",
                                width=3) for mode in ("prefix", "full"))
    assert [f.token_ids for f in cached.found] == [f.token_ids for f in full.found]
    assert np.allclose([f.score for f in cached.found], [f.score for f in full.found], atol=1e-4)
    assert cached.evaluations == full.evaluations == 40 + 2 * 3 * 40


# -- planted optimum --------------------------------------------------------------------------------


def test_planted_pair_is_the_brute_force_optimum() -> None:
    """The fixture's claim, checked with the reference path over every 1- and 2-token response."""
    planted = planted_rm()
    split, allowed = planted.split, planted.allowed
    pairs = [(x, y) for x in allowed for y in allowed]
    pair_scores = reference_score(planted.rm, [_conversation(split, p) for p in pairs])
    assert pairs[int(np.argmax(pair_scores))] == planted.pair
    single = reference_score(planted.rm, [_conversation(split, (x,)) for x in allowed])
    order = [allowed[i] for i in np.argsort(-single)]
    assert order[:2] == [planted.greedy_first, planted.pair[0]]


def test_exhaustive2_and_beam_find_the_planted_pair(tmp_path) -> None:
    from rmvalues.api import score

    planted = planted_rm()
    rm, allowed = planted.rm, list(planted.allowed)
    prompts = {"p": PROMPT}
    singles = score(rm, prompts, allowed, tmp_path / "ets")  # the stored single-token run
    exhaustive = search_responses(rm, prompts, tmp_path / "ex", method="exhaustive2", length=2,
                                  tokens=allowed, singles=tmp_path / "ets", first_tokens=2,
                                  keep=5)
    best = exhaustive.table.iloc[0]
    assert tuple(best["token_ids"]) == planted.pair and best["rank"] == 1
    # the first-token set: top-2 and bottom-2 single tokens of the stored run, nothing else
    assert best["evaluations"] == 4 * len(allowed)
    top2 = singles.table.sort_values("score", ascending=False)["token_id"].head(2).tolist()
    assert top2 == [planted.greedy_first, planted.pair[0]]

    beam = search_responses(rm, prompts, None, method="beam", length=2, beam_width=2,
                            tokens=allowed)
    final = beam.table[beam.table["length"] == 2].sort_values("rank")
    assert tuple(final.iloc[0]["token_ids"]) == planted.pair
    one = beam.table[beam.table["length"] == 1].iloc[0]  # the best single token, from step 1
    assert tuple(one["token_ids"]) == (planted.greedy_first,)
    # greedy (width 1) starts from the best single token and misses the planted pair
    greedy = search_responses(rm, prompts, None, method="beam", length=2, beam_width=1,
                              tokens=allowed)
    assert tuple(greedy.table.iloc[0]["token_ids"]) != planted.pair

    for result in (exhaustive, beam):  # every reported response re-scored through the reference
        table = result.table
        assert np.abs(table["score"] - table["reference_score"]).max() <= 1e-4
        assert table["retokenizes"].dtype == bool


def test_exhaustive2_minimum_is_exact_over_its_first_tokens() -> None:
    planted = planted_rm()
    rm, split, allowed = planted.rm, planted.split, list(planted.allowed)
    result = search_responses(rm, {"p": PROMPT}, None, method="exhaustive2", length=2,
                              tokens=allowed, first_tokens=3, direction="min", keep=3)
    single = reference_score(rm, [_conversation(split, (x,)) for x in allowed])
    order = np.argsort(-single)
    first = [allowed[i] for i in (*order[:3], *order[-3:])]
    pairs = [(x, y) for x in first for y in allowed]
    brute = reference_score(rm, [_conversation(split, p) for p in pairs])
    expected = [pairs[i] for i in np.argsort(brute)[:3]]
    assert [tuple(t) for t in result.table["token_ids"]] == expected
    assert np.allclose(result.table["score"], np.sort(brute)[:3], atol=1e-4)


# -- GCG ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("direction", ["max", "min"])
def test_gcg_best_so_far_improves_monotonically(direction) -> None:
    rm = tiny_rm("llama")
    split = split_chat(rm.tokenizer, PROMPT)
    scorer = ResponseScorer(Engine(rm, batch_size=64), split)
    space = token_space(rm.tokenizer, TOKENS)
    outcome = gcg(scorer, space, 3, direction, steps=8, topk=16, search_width=24, seed=1)
    best = [row["best_objective"] for row in outcome.trace]
    assert len(best) == 9 and outcome.complete
    assert all(b >= a for a, b in itertools.pairwise(best))
    assert best[-1] > best[0]  # it found something better than the random start
    found = outcome.found[0]
    assert all(t in space.first for t in found.token_ids)
    sign = 1 if direction == "max" else -1
    ref = reference_score(rm, [_conversation(split, found.token_ids)])[0]
    assert found.objective == pytest.approx(sign * ref, abs=1e-4) == best[-1]


def test_gcg_fluency_term_equals_reference_logprob() -> None:
    """The fluency term (batched and through one-hot embeddings) equals a plain log-softmax."""
    import torch
    from transformers import LlamaForCausalLM

    from _train_models import tiny_base_dir

    lm = LlamaForCausalLM.from_pretrained(tiny_base_dir()).eval()
    rm = tiny_rm("llama")
    split = split_chat(rm.tokenizer, PROMPT)
    fluency = Fluency(lm, weight=0.5)
    responses = [(3001, 3050, 3100), (3002, 3003, 3004)]
    batched = fluency.logprobs(split.prefix_ids, responses)
    for response, value in zip(responses, batched):
        ids = [*split.prefix_ids, *response]
        with torch.no_grad():
            logp = torch.log_softmax(lm(torch.tensor([ids])).logits[0].double(), -1)
        p = len(split.prefix_ids)
        expected = np.mean([logp[p - 1 + i, t].item() for i, t in enumerate(response)])
        assert value == pytest.approx(expected, abs=1e-6)
        one_hot = torch.zeros(len(response), lm.get_input_embeddings().weight.shape[0])
        one_hot[range(len(response)), list(response)] = 1
        with torch.no_grad():
            assert fluency.embeds_logprob(split.prefix_ids, one_hot, response).item() == \
                pytest.approx(expected, abs=1e-5)
    scorer = ResponseScorer(Engine(rm), split)
    outcome = gcg(scorer, token_space(rm.tokenizer, TOKENS), 3, "max", steps=3, topk=8,
                  search_width=8, fluency=fluency)
    best = [row["best_objective"] for row in outcome.trace]
    assert all(b >= a for a, b in itertools.pairwise(best))
    found = outcome.found[0]
    assert found.objective == pytest.approx(found.score + 0.5 * found.fluency, abs=1e-5)


# -- exactness ---------------------------------------------------------------------------------------


def test_rescore_flags_text_that_does_not_retokenize() -> None:
    rm = tiny_rm("llama")
    tok = rm.tokenizer
    split = split_chat(tok, PROMPT)
    split_word = tuple(tok.convert_tokens_to_ids(["hel", "lo"]))  # "hello" is one token
    whole = tuple(tok.encode("hello world", add_special_tokens=False))
    bad, good = rescore(rm, split, [split_word, whole])
    assert bad["response"] == "hello" and not bad["retokenizes"]
    assert bad["reference_score"] == pytest.approx(
        reference_score(rm, [_conversation(split, split_word)])[0], abs=1e-6)
    assert bad["text_score"] == pytest.approx(
        reference_score(rm, [_conversation(split, tok.encode("hello", add_special_tokens=False))]
                        )[0], abs=1e-6)
    assert good["retokenizes"] and good["text_score"] == pytest.approx(good["reference_score"])
    assert good["pieces"] == ["hello", " world"]


# -- API: options, resume, manifest -----------------------------------------------------------------


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"method": "foo"}, "unknown search method"),
    ({"length": 9}, "length must be 1..8"),
    ({"method": "exhaustive2", "length": 3}, "exhaustive2 searches 2-token"),
    ({"direction": "up"}, "unknown direction"),
    ({"method": "gcg", "fluency_weight": 1.0}, "needs --fluency-model"),
])
def test_bad_options_fail_before_searching(kwargs, match, tmp_path) -> None:
    with pytest.raises(InputError, match=match):
        search_responses(tiny_rm("llama"), {"p": PROMPT}, tmp_path, tokens=TOKENS, **kwargs)
    assert not list(tmp_path.glob("*.parquet"))


def test_killed_gcg_resumes_to_the_same_result(tmp_path, monkeypatch) -> None:
    from rmvalues.runs.progress import Progress

    rm = tiny_rm("llama")
    options = {"method": "gcg", "length": 3, "steps": 6, "topk": 8, "search_width": 12,
               "tokens": TOKENS, "seed": 3, "direction": "both"}
    whole = search_responses(rm, {"p": PROMPT}, tmp_path / "whole", **options)

    calls = []

    def die_on_step_4(self, n):
        calls.append(n)
        if len(calls) == 4:
            raise KeyboardInterrupt

    monkeypatch.setattr(Progress, "advance", die_on_step_4)
    with pytest.raises(KeyboardInterrupt):
        search_responses(rm, {"p": PROMPT}, tmp_path / "killed", **options)
    states = list((tmp_path / "killed").glob("search-state/*/*.json"))
    assert len(states) == 1 and json.loads(states[0].read_text())["step"] == 4
    monkeypatch.undo()
    resumed = search_responses(rm, {"p": PROMPT}, tmp_path / "killed", **options)
    assert not list((tmp_path / "killed").glob("search-state/*/*.json"))
    columns = ["direction", "token_ids", "score", "steps", "evaluations"]
    pd.testing.assert_frame_equal(resumed.table[columns].astype(str), whole.table[columns]
                                  .astype(str))
    again = search_responses(rm, {"p": PROMPT}, tmp_path / "killed", **options)
    assert "2 resumed" in again.summary
    manifest = json.loads((tmp_path / "killed" / "llama-0_search.manifest.json").read_text())
    fields = manifest["fields"]
    assert manifest["kind"] == "rm-search" and fields["method"] == "gcg"
    assert fields["steps"] == 6 and fields["seed"] == 3 and fields["max_abs_diff"] <= 1e-4
    assert pd.read_parquet(tmp_path / "killed" / "llama-0_search_trace.parquet")[
        "step"].max() == 6


def test_time_budget_stops_and_reports_the_best_so_far() -> None:
    result = search_responses(tiny_rm("llama"), {"p": PROMPT}, None, method="gcg", length=2,
                              steps=10_000, topk=8, search_width=8, tokens=TOKENS,
                              time_budget=1.0)
    row = result.table.iloc[0]
    assert not row["complete"] and 0 < row["steps"] < 10_000


# -- analysis, CLI and report -----------------------------------------------------------------------


def test_margins_and_lexicon_composition() -> None:
    from rmvalues.analysis.search import response_composition, search_margins
    from rmvalues.lexicons import load_lexicon

    rows = [
        ("max", 1, 1, "Love", 2.0), ("max", 3, 1, "love and honesty", 3.5),
        ("max", 3, 2, "power power", 3.0), ("min", 1, 1, "war", -2.0),
        ("min", 3, 1, "cruel war", -2.5),
    ]
    results = pd.DataFrame(rows, columns=["direction", "length", "rank", "response", "score"]
                           ).assign(model="m", prompt_id="p", method="beam")
    margins = search_margins(results).set_index("direction")
    assert margins.loc["max", "margin"] == pytest.approx(1.5)
    assert margins.loc["min", "margin"] == pytest.approx(0.5)
    assert margins.loc["max", "single"] == "Love"
    singles = pd.DataFrame({"prompt_id": ["p", "p"], "candidate": [" good", " bad"],
                            "score": [3.0, -3.0]})
    with_singles = search_margins(results, singles).set_index("direction")
    assert with_singles.loc["max", "margin"] == pytest.approx(0.5)
    assert with_singles.loc["min", "margin"] == pytest.approx(-0.5)  # the single token is worse

    lexicon = load_lexicon("big-two-nouns")
    composition = response_composition(results, lexicon).set_index(["direction", "category"])
    words = {"max": ["love", "and", "honesty"], "min": ["cruel", "war"]}
    for direction, ws in words.items():
        for category in lexicon.categories:
            expected = sum(w in lexicon and category in lexicon.categories_of(w) for w in ws)
            got = composition.loc[(direction, category)]
            assert got["words"] == expected and got["total_words"] == len(ws)
            assert got["share"] == pytest.approx(expected / len(ws))
    assert composition["words"].sum() > 0


def test_cli_search_analysis_and_report(tmp_path) -> None:
    from rmvalues.cli import main
    from rmvalues.report import write_report

    out = tmp_path / "search"
    rc = main(["search", "--model", str(tiny_rm_dir("llama")), "--prompts", "facct-3",
               "--out", str(out), "--method", "beam", "--length", "2", "--beam-width", "2",
               "--tokens", "words:3000-3400", "--direction", "both", "--device", "cpu",
               "--quiet"])
    assert rc == 0
    table = pd.read_parquet(out / "llama-0_search.parquet")
    assert set(table["direction"]) == {"max", "min"} and table["prompt_id"].nunique() == 3
    assert (out / "llama-0_search.manifest.json").is_file()
    margins = pd.read_parquet(out / "search_margins.parquet")
    assert (margins["margin"] >= -1e-6).all()  # beam keeps the best; longer never loses here
    assert {"Agency", "Communion", "Care_Virtue"} <= set(
        pd.read_parquet(out / "search_composition.parquet")["category"])
    report = write_report(out, out_dir=tmp_path / "report").read_text("utf-8")
    assert "Response search" in report and "search margins" in report
    assert main(["search", "--model", str(tiny_rm_dir("llama")), "--prompts", "facct-3",
                 "--out", str(tmp_path / "bad"), "--method", "exhaustive2"]) == 2


# -- real weights --------------------------------------------------------------------------------


@pytest.mark.slow
def test_short_search_on_smollm2_finishes_within_a_minute(tmp_path) -> None:
    from rmvalues.assets import asset_path
    from rmvalues.models.heads.sequence_classification import SequenceClassificationHead
    from rmvalues.models.loading import load_reward_model

    # Loading (GGUF de-quantisation) is timed out: it is the same for every use of the model.
    rm = load_reward_model(asset_path("smollm2-135m-instruct"),
                           gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
                           head=SequenceClassificationHead.seeded(576), device="cpu",
                           dtype="float32")
    start = time.perf_counter()
    result = search_responses(rm, {"best": PROMPT}, tmp_path, method="beam", length=2,
                              beam_width=2, tokens="words:0-400", direction="both")
    steered = search_responses(rm, {"best": PROMPT}, None, method="gcg", length=3, steps=2,
                               topk=8, search_width=8, tokens="words:0-400", direction="max")
    elapsed = time.perf_counter() - start
    trace = steered.trace["best_objective"].tolist()
    assert len(trace) == 3 and trace == sorted(trace)
    print(result.summary)
    assert elapsed < 60, f"took {elapsed:.1f}s"
    table = result.table
    assert len(table) == 6 and np.abs(table["score"] - table["reference_score"]).max() <= 1e-4
    best = table.set_index(["direction", "length", "rank"])["score"]
    assert best[("max", 2, 1)] > best[("min", 2, 1)]
