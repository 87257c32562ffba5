"""Issue 19's prompt-sensitivity suites and system prompts carried from a prompt set to the RM."""

from __future__ import annotations

import pytest

from _engine_models import tiny_rm, tokenizer
from rmvalues.errors import InputError
from rmvalues.models.chat import render_conversation, split_chat
from rmvalues.prompts import load_prompt_set, prompt_set_from_dict

SYSTEM = "You are a terse assistant."


def test_paraphrase_set_holds_the_papers_54_with_their_ids_and_texts() -> None:
    para, paper = load_prompt_set("paraphrase-54"), load_prompt_set("paper-54")
    assert len(para) == 144 and len({p.text for p in para}) == 144
    originals = [p for p in para if p.factors["family"] == "paper"]
    assert {p.id: p.text for p in originals} == {p.id: p.text for p in paper}
    # every item (adjective x context) is asked in all 8 wordings, and framing follows the adjective
    items = {(p.factors["adjective"], p.factors["context"]) for p in para}
    assert len(items) == 18
    assert all(sum(1 for p in para if (p.factors["adjective"], p.factors["context"]) == i) == 8
               for i in items)
    assert {p.factors["framing"] for p in para if p.factors["adjective"] == "worst"} == {"negative"}


def test_in_distribution_set_pairs_each_question_with_and_without_a_system_prompt() -> None:
    pset = load_prompt_set("in-distribution")
    with_system = [p for p in pset if p.system]
    without = [p for p in pset if not p.system]
    assert len(with_system) == len(without) == 20
    assert {p.factors["family"] for p in with_system} == {"in-distribution-system"}
    assert sorted(p.text for p in with_system) == sorted(p.text for p in without)
    assert all(p.text.count(".") + p.text.count("?") >= 2 for p in pset)  # multi-sentence
    assert pset.systems == {p.id: p.system for p in with_system}


def test_neutral_controls_have_no_evaluative_adjective() -> None:
    pset = load_prompt_set("neutral-controls")
    assert {p.factors["framing"] for p in pset} == {"neutral"}
    assert not any(w in p.text.lower() for p in pset for w in ("best", "worst", "good", "bad"))


def test_explicit_prompt_with_system_and_refusals() -> None:
    pset = prompt_set_from_dict({"name": "s", "prompts": [
        {"id": "a", "text": "Name a word.", "system": SYSTEM}, {"id": "b", "text": "Name a word."}]})
    assert pset.systems == {"a": SYSTEM}
    with pytest.raises(InputError, match="optional system"):
        prompt_set_from_dict({"grid": {"id": "x", "text": "t", "factors": {"f": {"a": {}}},
                                       "sys": "y"}})
    # paths that cannot render system prompts refuse such a set instead of dropping them
    # (the one resolution of scoring, LM log-probs and training: rmvalues.prompts.prompt_pairs)
    from rmvalues.prompts import prompt_pairs

    with pytest.raises(InputError, match="system prompts"):
        prompt_pairs(pset)
    assert prompt_pairs(pset, allow_system=True)[1] == [("a", "Name a word."), ("b", "Name a word.")]


def test_system_prompt_goes_into_the_prefix_as_a_system_turn() -> None:
    tok = tokenizer("llama3")
    plain, sys = split_chat(tok, "Name a word."), split_chat(tok, "Name a word.", system=SYSTEM)
    assert sys.system_mode == "role" and SYSTEM in tok.decode(list(sys.prefix_ids))
    assert sys.suffix_ids == plain.suffix_ids and sys.prefix_ids != plain.prefix_ids
    (token_id,) = tok("good", add_special_tokens=False)["input_ids"]
    text = render_conversation(tok, "Name a word.", "good", template=sys.template, system=SYSTEM)
    assert sys.token_ids(token_id) == tok(text, add_special_tokens=False)["input_ids"]


def test_template_without_system_role_gets_it_in_the_user_turn() -> None:
    tok = tokenizer("gemma2")  # Gemma 2's template raises "System role not supported"
    split = split_chat(tok, "Name a word.", system=SYSTEM)
    assert split.system_mode == "user"
    assert f"<start_of_turn>user\n{SYSTEM}\n\nName a word." in tok.decode(list(split.prefix_ids))


def test_score_renders_the_sets_system_prompts_and_keys_them(tmp_path) -> None:
    from rmvalues.api import score

    pset = prompt_set_from_dict({"name": "s", "prompts": [
        {"id": "sys", "text": "Name a word.", "system": SYSTEM},
        {"id": "plain", "text": "Name a word."}]})
    res = score(tiny_rm("llama"), pset, ["good", "bad", "love"], tmp_path / "run")
    by = res.table.set_index(["prompt_id", "candidate"])["score"]
    assert not all(by["sys"].values == by["plain"].values)  # the system turn changes the scores
    assert res.manifest["shard_keys"]["sys"] != res.manifest["shard_keys"]["plain"]
    assert SYSTEM in tokenizer("llama3").decode(res.manifest["prefix_ids"]["sys"])
