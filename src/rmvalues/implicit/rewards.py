"""Implicit rewards of one model pair: q's preference over p for every shared token and prompt.

The metrics are in :mod:`rmvalues.implicit.metrics`; two models with different tokenizers are
compared after an explicit join (:mod:`rmvalues.implicit.joins`) that reports how many tokens each
side loses. Only numpy and pandas are needed here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from rmvalues.errors import AnalysisError, InputError
from rmvalues.finite import finite_rows
from rmvalues.implicit.joins import (
    Aggregate,
    JoinPolicy,
    JoinReport,
    VocabularyJoin,
    join_vocabularies,
)
from rmvalues.implicit.metrics import get_metric, renormalize
from rmvalues.store.logprob_runs import as_run

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

def check_same_prompts(p, q) -> list[str]:
    """The shared prompt ids of two runs, in p's order; a clear error when the prompt sets differ."""
    p_ids, q_ids = list(p.prompt_ids), list(q.prompt_ids)
    if set(p_ids) != set(q_ids):
        only_p = sorted(set(p_ids) - set(q_ids))
        only_q = sorted(set(q_ids) - set(p_ids))
        raise InputError(
            f"runs {p.model!r} and {q.model!r} cover different prompts "
            f"(only in p: {only_p[:5]}{'…' if len(only_p) > 5 else ''}; only in q: "
            f"{only_q[:5]}{'…' if len(only_q) > 5 else ''}); compute both log-prob runs on the same "
            "prompt set, or pass --prompts with ids both runs contain."
        )
    return p_ids


@dataclass(frozen=True)
class ImplicitResult:
    """Implicit-reward scores of one model pair: a long table and the join that produced it."""

    p_model: str
    q_model: str
    metric: str
    join: VocabularyJoin
    table: pd.DataFrame  # prompt_id, key, logp, logq, score
    nonfinite_dropped: int = 0  # (prompt, key) rows left out for a NaN/inf score

    @property
    def report(self) -> JoinReport:
        return self.join.report


def implicit_rewards(
    p,
    q,
    *,
    metric: str = "mwlr",
    join: JoinPolicy = "exact",
    aggregate: Aggregate | None = None,
    renormalize_shared: bool = False,
    prompt_ids: Iterable[str] | None = None,
    drop_nonfinite: bool = False,
) -> ImplicitResult:
    """Implicit reward of q over p for every shared token and prompt (positive = preferred by q).

    An empty join, or a NaN/inf score (unless ``drop_nonfinite`` leaves those rows out), is refused.

    ``p`` and ``q`` are :class:`~rmvalues.store.logprob_runs.LogprobRun` objects or long log-prob
    tables (the results schema). With ``renormalize_shared`` both distributions are renormalised over
    the joint vocabulary first, so they are proper distributions on the same support.
    """
    import pandas as pd

    p, q = as_run(p), as_run(q)
    shared = check_same_prompts(p, q)
    if prompt_ids is not None:
        wanted = list(prompt_ids)
        missing = [i for i in wanted if i not in set(shared)]
        if missing:
            raise InputError(f"prompt id(s) {missing[:5]} are not in the runs; choose from {shared[:5]}…")
        shared = wanted
    fn = get_metric(metric)
    vj = join_vocabularies(p.tokens, q.tokens, policy=join, aggregate=aggregate)
    if not vj.keys:
        raise AnalysisError(
            f"empty join: the runs of {p.model!r} and {q.model!r} have no token string in common "
            f"under the {join!r} join, so there is nothing to compare. Try --join normalized, or "
            "check that both runs hold decoded vocabularies.")
    lp, lq = vj.apply(p.matrix(shared), q.matrix(shared))
    if renormalize_shared:
        lp, lq = renormalize(lp), renormalize(lq)
    scores = fn(lp, lq)
    n = len(vj.keys)
    table = pd.DataFrame({
        "prompt_id": pd.Categorical(np.repeat(shared, n), categories=shared),
        "key": np.tile(np.asarray(vj.keys, dtype=object), len(shared)),
        "logp": lp.ravel(),
        "logq": lq.ravel(),
        "score": scores.ravel(),
    })
    keep = finite_rows(table["score"], what=f"{metric} of {q.model} over {p.model}",
                       label=lambda i: f"prompt {table['prompt_id'].iat[i]!r} token "
                                       f"{table['key'].iat[i]!r}",
                       drop=drop_nonfinite, error=AnalysisError,
                       fix="A log-prob run holds NaN/inf (a model with broken weights); recompute "
                           "it with `rmvalues logprobs`.")
    dropped = int((~keep).sum())
    if dropped == len(table):
        raise AnalysisError(f"{metric} of {q.model} over {p.model} is non-finite for every row; "
                            "nothing is left to write. Recompute the log-prob runs.")
    if dropped:
        table = table[keep].reset_index(drop=True)
    return ImplicitResult(p_model=p.model, q_model=q.model, metric=metric, join=vj, table=table,
                          nonfinite_dropped=dropped)
