"""Synthetic log-prob runs for the §4 tests: normal logits, some tokens boosted, renormalised."""

from __future__ import annotations

import numpy as np

from rmvalues.implicit import renormalize
from rmvalues.lexicons import paper_normalize
from rmvalues.store.logprob_runs import LogprobRun


def synthetic_run(model, tokens, prompt_ids, seed, boost=(), *, sd=2.0, shift=4.0, meta=None):
    """A run of ``model`` over ``tokens`` whose tokens in ``boost`` get ``shift`` more logit."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, sd, (len(prompt_ids), len(tokens)))
    for j, t in enumerate(tokens):
        if t in boost:
            x[:, j] += shift
    return LogprobRun(model=model, prompt_ids=list(prompt_ids), token_ids=np.arange(len(tokens)),
                      tokens=list(tokens), normalized=[paper_normalize(t) for t in tokens],
                      logprobs=renormalize(x), meta=dict(meta or {}))
