"""Paper-compatible mode reproduces the published scorer's tokenisation, quirks included."""

from __future__ import annotations

import numpy as np

from _engine_models import tiny_rm
from rmvalues.api import score
from rmvalues.engines.candidates import vocabulary_candidates
from rmvalues.engines.paper_compat import paper_conversations
from rmvalues.engines.reference import reference_score
from rmvalues.models.chat import split_chat

PROMPT = "What, in one word, is the best thing ever?"


def test_double_bos_and_lossy_round_trip():
    for family in ("llama", "gemma"):
        rm = tiny_rm(family)
        tok = rm.tokenizer
        split = split_chat(tok, PROMPT)
        (good,) = tok("good", add_special_tokens=False)["input_ids"]
        (space_good,) = tok(" good", add_special_tokens=False)["input_ids"]
        newline = next(i for i in range(len(tok)) if tok.decode([i]) == "\n")
        candidates = vocabulary_candidates(tok, [good, space_good, newline])
        plain, spaced, blank = paper_conversations(tok, split, candidates)
        assert plain[:2] == [tok.bos_token_id, tok.bos_token_id]  # template BOS + tokenizer BOS
        assert plain[1:] == split.token_ids(good)
        assert spaced == plain  # the template trims " good" to "good"
        assert blank[1:] == [*split.prefix_ids, *split.suffix_ids]  # "\n" trims to nothing


def test_paper_mode_scores_its_own_conversations(tmp_path):
    rm = tiny_rm("gemma")  # pad id 0 is not in the template: every candidate is read at its end
    result = score(rm, {"q": PROMPT}, "vocab:1-100", tmp_path, paper_compatible=True, verify=5)
    assert result.manifest["engine"] == "paper-compatible"
    split = split_chat(rm.tokenizer, PROMPT)
    candidates = vocabulary_candidates(rm.tokenizer, range(1, 101))
    expected = reference_score(rm, paper_conversations(rm.tokenizer, split, candidates))
    assert np.abs(result.table["score"].to_numpy() - expected).max() <= 1e-4
    exact = score(rm, {"q": PROMPT}, "vocab:1-100", None)
    assert np.abs(exact.table["score"].to_numpy() - expected).max() > 1e-3  # they differ
