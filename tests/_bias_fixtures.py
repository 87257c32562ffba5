"""Synthetic score runs with a planted base-family bias, for the robustness and mitigation tests.

Two Gemma and two Llama "RMs" score 20 Agency words, 20 Communion words and 20 filler words. Gemma
RMs add ``bias`` to Communion words and Llama RMs to Agency words (the paper's direction), so the
tilt (median rank Agency - Communion) is positive for Gemma and negative for Llama. ``bias=0`` is
the no-bias control.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

AGENCY = [f"agent{i}" for i in range(20)]
COMMUNION = [f"commune{i}" for i in range(20)]
FILLER = [f"filler{i}" for i in range(20)]
LEXICON = pd.DataFrame({"term": AGENCY + COMMUNION,
                        "category": ["Agency"] * 20 + ["Communion"] * 20})
META = {"g1": {"base": "Gemma"}, "g2": {"base": "Gemma"},
        "l1": {"base": "Llama"}, "l2": {"base": "Llama"}}


def planted_scores(prompt_ids, bias=1.0, *, seed: int = 0, models=tuple(META),
                   prompt_bias=None, noise: float = 1.0) -> pd.DataFrame:
    """A long results table; ``prompt_bias(pid) -> float`` scales the bias per prompt (default 1)."""
    rng = np.random.default_rng(seed)
    words = AGENCY + COMMUNION + FILLER
    is_a = np.array([w in AGENCY for w in words])
    is_c = np.array([w in COMMUNION for w in words])
    # a word's shared "quality" makes the models agree on most of the ranking, as real RMs do
    quality = rng.normal(0, 1, len(words))
    for group in (is_a, is_c, ~(is_a | is_c)):  # no category differs in quality: bias=0 is unbiased
        quality[group] -= np.median(quality[group])
    frames = []
    for model in models:
        favoured = is_c if META[model]["base"] == "Gemma" else is_a
        for pid in prompt_ids:
            b = bias * (prompt_bias(pid) if prompt_bias else 1.0)
            s = quality + rng.normal(0, noise, len(words)) + b * favoured
            frames.append(pd.DataFrame({"model": model, "prompt_id": pid, "candidate_kind": "text",
                                        "token_id": pd.array([None] * len(words), dtype="Int64"),
                                        "candidate": words, "normalized": words,
                                        "score": s.astype(np.float32)}))
    return pd.concat(frames, ignore_index=True)


def planted_implicit(prompt_ids, base: str, bias=1.0, *, seed: int = 0, noise: float = 0.3) -> pd.DataFrame:
    """An MWLR table of a ``base`` family's pretrained->instruct shift carrying the family's bias."""
    rng = np.random.default_rng(seed)
    words = AGENCY + COMMUNION + FILLER
    favoured = np.array([w in (COMMUNION if base == "Gemma" else AGENCY) for w in words])
    frames = [pd.DataFrame({"prompt_id": pid, "key": words,
                            "score": bias * favoured + rng.normal(0, noise, len(words))})
              for pid in prompt_ids]
    return pd.concat(frames, ignore_index=True)
