"""``--verify``: re-score random (prompt, candidate) pairs through the reference path and compare."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from rmvalues.errors import ScoreError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from rmvalues.engines.candidates import CandidateSet
    from rmvalues.models.chat import ChatSplit
    from rmvalues.models.loading import RewardModel

#: Default ``--verify`` tolerance on max |Δ| per dtype (bf16/fp16 batching reorders reductions).
VERIFY_TOLERANCE = {"float32": 1e-4, "float16": 2e-2, "bfloat16": 1e-1}


def verify_scores(
    rm: RewardModel,
    splits: Mapping[str, ChatSplit],
    candidates: CandidateSet,
    table: pd.DataFrame,
    n: int,
    *,
    tolerance: float | None = None,
    paper_compatible: bool = False,
    seed: int = 0,
) -> dict[str, Any]:
    """Re-score ``n`` random (prompt, candidate) pairs with the reference path; fail beyond tolerance.

    ``tolerance`` defaults by the model's dtype (:data:`VERIFY_TOLERANCE`).
    """
    from rmvalues.engines.paper_compat import paper_pooling
    from rmvalues.engines.reference import reference_score
    from rmvalues.runs.worker import conversations

    if tolerance is None:
        tolerance = VERIFY_TOLERANCE.get(rm.provenance()["dtype"], 1e-1)
    pool = paper_pooling(rm) if paper_compatible else None
    rng = np.random.default_rng(seed)
    prompt_ids = list(splits)
    rows = rng.choice(len(table), size=min(n, len(table)), replace=False)
    worst = (0.0, None)
    for row in sorted(rows):
        prompt_index, cand_index = divmod(int(row), len(candidates))
        prompt_id = prompt_ids[prompt_index]
        one = candidates.subset([cand_index])
        conversation = conversations(rm, splits[prompt_id], one, paper_compatible)
        ref = float(reference_score(rm, conversation, pool)[0])
        fast = float(table["score"].iloc[int(row)])
        delta = abs(ref - fast)
        if not delta <= worst[0]:
            worst = (delta, (prompt_id, one.texts[0], fast, ref))
    result = {"n": len(rows), "max_abs_diff": worst[0], "tolerance": tolerance}
    if worst[0] > tolerance:
        prompt_id, text, fast, ref = worst[1]
        raise ScoreError(
            f"--verify failed: max |fast - reference| = {worst[0]:.3g} > {tolerance:g} (prompt "
            f"{prompt_id!r}, candidate {text!r}: fast {fast:.6g}, reference {ref:.6g}). The fast "
            "path disagrees with one full forward per conversation; report this as a bug."
        )
    return result
