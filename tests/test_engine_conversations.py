"""The engine's conversation ids equal transformers' ``apply_chat_template(tokenize=True)``.

On every bundled tokenizer and its official template. The reference path (and ``--verify``) builds
its input that way (``reference_conversations``), so the fast path and its check no longer share
the prefix/suffix split. Where the two legitimately differ, the exact rule is tested:

* date: Llama-3.1/3.2 templates render "Today Date"; the engine pins ``date_string`` and the
  reference passes the same one. Without it Llama-3.2 renders the wall-clock date (differs).
* BOS: the templates write their own BOS; ``apply_chat_template(tokenize=True)`` and the engine
  both tokenise without adding special tokens, so there is exactly one BOS (paper mode adds a
  second one on purpose, see paper_compat.py).
* token candidates are ids: the engine's conversation equals ``apply_chat_template`` with the
  decoded token as the response whenever that string survives the template and the tokenizer
  unchanged: it has no leading/trailing whitespace (Llama/Gemma templates trim it, Qwen's newline
  merges with the header's) and re-tokenises to that single id. Otherwise only the engine scores
  the token that is reported; the reference splices the id into the whole-conversation ids.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from _engine_models import token_slice
from rmvalues.engines.candidates import text_candidates, vocabulary_candidates
from rmvalues.engines.reference import reference_chat_ids, reference_conversations
from rmvalues.engines.score import conversation_ids
from rmvalues.models.chat import split_chat
from rmvalues.models.tokenizers import BUNDLED, bundled_tokenizer

PROMPT = "In one word, what is the single most important quality in a person?"


@pytest.fixture(scope="module", params=sorted(BUNDLED))
def case(request):
    tok = bundled_tokenizer(request.param)
    return request.param, tok, split_chat(tok, PROMPT)


def test_text_candidates_equal_apply_chat_template(case):
    from rmvalues.lexicons import load_lexicon

    _, tok, split = case
    candidates = text_candidates(load_lexicon("big-two-nouns").terms() + [" leading", "x y z"])
    engine = conversation_ids(SimpleNamespace(tokenizer=tok), split, candidates)
    messages = [[{"role": "user", "content": PROMPT}, {"role": "assistant", "content": text}]
                for text in candidates.texts]
    want = [tok.apply_chat_template(m, tokenize=True, return_dict=False,
                                    date_string=split.date_string) for m in messages]
    assert engine == want
    assert reference_conversations(tok, split, candidates) == want


def _survives(tok, token_id: int, text: str) -> bool:
    return (bool(text) and text == text.strip()
            and tok(text, add_special_tokens=False)["input_ids"] == [token_id])


def test_token_candidates_equal_apply_chat_template_by_the_rule(case):
    name, tok, split = case
    hard = [i for i in token_slice(tok, 600) if i is not None]  # Qwen has no BOS
    candidates = vocabulary_candidates(tok, hard + [i for i in range(20000, 20400) if i not in hard])
    engine = conversation_ids(SimpleNamespace(tokenizer=tok), split, candidates)
    # the reference splices the id into the whole conversation: equal for every token
    assert engine == reference_conversations(tok, split, candidates)
    survives = [_survives(tok, t, s) for t, s in zip(candidates.token_ids, candidates.texts)]
    assert sum(survives) >= 300 and not all(survives)  # both sides of the rule are exercised
    for token_id, text, conv, ok in zip(candidates.token_ids, candidates.texts, engine, survives):
        as_text = reference_chat_ids(tok, split, text)
        if ok:
            assert conv == as_text, (name, token_id, text)
        # the engine's response is always exactly the one id, between the template's ids
        assert conv[len(split.prefix_ids)] == token_id
        assert len(conv) == len(split.prefix_ids) + 1 + len(split.suffix_ids)


def test_one_bos_and_the_template_end(case):
    name, tok, split = case
    (conv,) = conversation_ids(SimpleNamespace(tokenizer=tok), split,
                               text_candidates(["good"]))
    if tok.bos_token_id is not None and name != "qwen":
        assert conv[0] == tok.bos_token_id and conv[1] != tok.bos_token_id
    end = {"llama3": "<|eot_id|>", "llama3.2": "<|eot_id|>", "gemma2": "<end_of_turn>\n",
           "qwen": "<|im_end|>\n"}[name]
    assert tok.decode(conv).endswith("good" + end)


@pytest.mark.parametrize("name", ["llama3", "llama3.2"])
def test_date_string_rule(name):
    tok = bundled_tokenizer(name)
    split = split_chat(tok, PROMPT, date_string="01 Jan 2025")
    (conv,) = reference_conversations(tok, split, text_candidates(["good"]))
    assert "Today Date: 01 Jan 2025" in tok.decode(conv)
    assert conv == conversation_ids(SimpleNamespace(tokenizer=tok), split,
                                    text_candidates(["good"]))[0]
    messages = [{"role": "user", "content": PROMPT}, {"role": "assistant", "content": "good"}]
    unpinned = tok.apply_chat_template(messages, tokenize=True, return_dict=False)
    if name == "llama3.2":  # the 3.2 template falls back to today's date: the engine pins one
        assert unpinned != conv
    else:  # the 3.1 template's own default is the engine's default date
        assert tok.decode(unpinned).count("26 Jul 2024") == 1


def test_verify_catches_a_fast_path_that_loses_the_suffix(monkeypatch, tmp_path):
    """--verify's reference input is built apart from the split, so a wrong split fails it."""
    import rmvalues.engines.score as score_module
    from _engine_models import tiny_rm
    from rmvalues.api import score
    from rmvalues.errors import ScoreError

    def no_suffix(rm, split, candidates):
        return [[t] for t in candidates.token_ids]

    monkeypatch.setattr(score_module, "continuation_ids", no_suffix)
    with pytest.raises(ScoreError, match=r"--verify failed: max \|fast - reference\|"):
        score(tiny_rm("llama"), {"p": PROMPT}, "vocab:0-39", tmp_path, verify=40)
