"""A time estimate for a scoring run from a short measured probe: load the model, score a few
hundred candidates under the first prompt, and divide the work left by the measured rate.

The probe runs on this machine, now: an estimate for another device (a GPU node) needs the probe
run there. Model loading is timed separately, since a run pays it once per worker.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Estimate:
    load_seconds: float
    candidates_per_second: float
    probe_candidates: int
    scores_left: int

    @property
    def seconds(self) -> float:
        return self.load_seconds + self.scores_left / max(self.candidates_per_second, 1e-9)

    def summary(self) -> str:
        from rmvalues.runs.progress import format_seconds

        return (f"estimate: {format_seconds(self.seconds)} for {self.scores_left:,} scores left "
                f"(probe: {self.probe_candidates} candidates at {self.candidates_per_second:,.0f}/s "
                f"on this machine, model load {format_seconds(self.load_seconds)}).")


def estimate_run(model: Any, prompts: Any, candidates: Any, scores_left: int, *, probe: int = 256,
                 **load: Any) -> Estimate:
    """Measure ``probe`` candidates under the first prompt and extrapolate to ``scores_left``."""
    from rmvalues.api import score
    from rmvalues.engines.candidates import resolve_candidates
    from rmvalues.models.checkpoints import load_model_ref
    from rmvalues.prompts import prompt_pairs
    from rmvalues.runs import early_candidates

    _, pairs = prompt_pairs(prompts)
    started = time.perf_counter()
    rm = load_model_ref(model, **load)
    loaded = time.perf_counter() - started
    cands = resolve_candidates(early_candidates(candidates), rm.tokenizer)
    sample = cands.subset(range(min(probe, len(cands))))
    tick = time.perf_counter()
    score(rm, dict(pairs[:1]), sample)
    rate = len(sample) / max(time.perf_counter() - tick, 1e-9)
    return Estimate(load_seconds=loaded, candidates_per_second=rate, probe_candidates=len(sample),
                    scores_left=scores_left)
