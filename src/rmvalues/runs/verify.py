"""``--verify``: re-score random (prompt, candidate) pairs through the reference path and compare."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from rmvalues.errors import ScoreError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from rmvalues.engines.candidates import CandidateSet
    from rmvalues.models.chat import ChatSplit
    from rmvalues.models.loading import RewardModel

#: Default ``--verify`` tolerance on max |Δ| per dtype, as a fraction of the standard deviation of
#: the run's scores. bf16/fp16: about twice the largest measured cost of reordered reductions
#: (0.076 x std in bf16; 0.0063 x std in fp16 on one Xeon, 0.0090 on another; tiny Gemma-2s,
#: tests/test_engine_low_precision.py), which kernels for other batch shapes or devices may incur;
#: the CPU engine itself measures <= 4e-6 x std.
VERIFY_TOLERANCE = {"float32": 1e-4, "float16": 0.02, "bfloat16": 0.16}


def default_verify_tolerance(dtype: str, scores: Sequence[float]) -> float:
    """``VERIFY_TOLERANCE[dtype]`` x the standard deviation of the run's scores (x 1 if they do not
    spread), so the check is as strict for an RM whose rewards span 0.1 as for one spanning 100."""
    spread = float(np.std(np.asarray(scores, dtype=np.float64))) if len(scores) > 1 else 0.0
    factor = VERIFY_TOLERANCE.get(dtype, VERIFY_TOLERANCE["bfloat16"])
    return factor * (spread if spread > 0 else 1.0)


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

    ``tolerance`` defaults by the model's dtype, times the scores' std
    (:func:`default_verify_tolerance`).
    """
    from rmvalues.engines.paper_compat import paper_pooling
    from rmvalues.engines.reference import reference_score
    from rmvalues.runs.worker import conversations

    if tolerance is None:
        tolerance = default_verify_tolerance(rm.provenance()["dtype"], table["score"])
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
