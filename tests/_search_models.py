"""A tiny random Llama RM with a planted best two-token response, for the search tests.

Starting from the tiny random RM of ``_engine_models``, the layers and head are trained for a few dozen
Adam steps with hinge losses over a small token set ``S`` so that, among every response of one or
two tokens from ``S``:

* the pair ``(a, b)`` scores highest of all ``|S|^2`` pairs, and
* ``a`` is only the SECOND-best single token (``c`` is the best), so greedy search (a beam of
  width 1) starts from ``c`` and misses the planted pair, while a beam of width 2 must find it.

The planting is checked by the tests themselves against brute force through the reference path.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

PROMPT = "What, in one word, is the greatest thing ever?"
MARGIN = 0.5


@dataclass(frozen=True)
class Planted:
    rm: object
    split: object
    allowed: tuple[int, ...]
    pair: tuple[int, int]
    greedy_first: int


def _scores(rm, split, responses):
    """Differentiable scores of whole responses (one batch per length, no cache)."""
    import torch

    ids = torch.tensor([[*split.prefix_ids, *r, *split.suffix_ids] for r in responses])
    hidden = rm.backbone(input_ids=ids, attention_mask=torch.ones_like(ids),
                         use_cache=False).last_hidden_state
    return rm.head(hidden[:, -1].float())


@functools.cache
def planted_rm(n_tokens: int = 16, steps: int = 150) -> Planted:
    import torch

    from _engine_models import tiny_rm_dir
    from rmvalues.engines.search import token_space
    from rmvalues.models.chat import split_chat
    from rmvalues.models.loading import load_reward_model

    rm = load_reward_model(tiny_rm_dir("llama"), device="cpu", dtype="float32")
    split = split_chat(rm.tokenizer, PROMPT)
    allowed = token_space(rm.tokenizer, "alpha:3000-3400").first[:n_tokens]
    a, b, c = allowed[3], allowed[9], allowed[12]
    pairs = [(x, y) for x in allowed for y in allowed]
    target = pairs.index((a, b))
    singles = [(x,) for x in allowed]
    ia, ic = allowed.index(a), allowed.index(c)
    embeddings = rm.backbone.get_input_embeddings().weight
    embeddings.requires_grad_(False)  # 128k rows: training the layers and head is enough
    params = [p for p in (*rm.backbone.parameters(), *rm.head.parameters()) if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=1e-2)
    torch.manual_seed(0)
    for _ in range(steps):
        pair_scores = _scores(rm, split, pairs)
        single_scores = _scores(rm, split, singles)
        others = torch.cat([pair_scores[:target], pair_scores[target + 1:]])
        not_ac = torch.tensor([i not in (ia, ic) for i in range(len(allowed))])
        loss = (torch.relu(others - pair_scores[target] + MARGIN).sum()
                + torch.relu(single_scores[ia] - single_scores[ic] + MARGIN)  # c first
                + torch.relu(single_scores[not_ac] - single_scores[ia] + MARGIN).sum()  # a second
                # no pair starting with c comes close, so greedy really misses (a, b)
                + torch.relu(pair_scores[ic * len(allowed):(ic + 1) * len(allowed)]
                             - pair_scores[target] + 4 * MARGIN).sum())
        if loss.item() == 0:
            break
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    for p in params:
        p.requires_grad_(False)
    rm.backbone.eval()
    return Planted(rm=rm, split=split, allowed=tuple(allowed), pair=(a, b), greedy_first=c)
