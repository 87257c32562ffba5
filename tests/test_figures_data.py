"""Small synthetic inputs for the figure and report tests (builders only; no tests here).

Each builder returns a tidy table in the column contract its figure documents, with a known
structure (counts, levels, an effect with a known sign) that the tests assert against.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

GEMMA_RMS = ("rm-g1", "rm-g2", "rm-g3")
LLAMA_RMS = ("rm-l1", "rm-l2", "rm-l3", "rm-l4")
PROMPTS_PER_FRAMING = 6


def units(categories: tuple[str, ...] = ("Agency", "Communion"), seed: int = 0) -> pd.DataFrame:
    """Median-rank units: 7 RMs x 12 prompts x categories; Gemma ranks Agency better."""
    rng = np.random.default_rng(seed)
    rows = []
    for family, models in (("gemma", GEMMA_RMS), ("llama", LLAMA_RMS)):
        for model in models:
            for framing in ("positive", "negative"):
                for p in range(PROMPTS_PER_FRAMING):
                    for c, category in enumerate(categories):
                        centre = 100 + 20 * c + (-25 if (family == "gemma") == (c == 0) else 25)
                        if framing == "negative":
                            centre = 265 - centre
                        rows.append({
                            "model": model, "base": family, "framing": framing,
                            "prompt_id": f"{framing}_{p}", "category": category,
                            "median_rank": float(np.clip(rng.normal(centre, 12), 1, 265)),
                        })
    return pd.DataFrame(rows)


def panel_tests(categories: tuple[str, ...] = ("Agency", "Communion")) -> pd.DataFrame:
    """Panel tests with a known star per panel."""
    ps = [0.0004, 0.004, 0.03, 0.4]
    rows = []
    i = 0
    for framing in ("positive", "negative"):
        for category in categories:
            p = ps[i % len(ps)]
            rows.append({"category": category, "framing": framing, "welch_p": p, "perm_p": p,
                         "p_corrected": min(1.0, p * 4), "estimate": -30.0 + 10 * i,
                         "ci_low": -40.0 + 10 * i, "ci_high": -20.0 + 10 * i})
            i += 1
    return pd.DataFrame(rows)


def lm_units(seed: int = 1) -> pd.DataFrame:
    """Fig. 2 units: two LMs x 10 prompts (5 per framing) x 2 categories."""
    rng = np.random.default_rng(seed)
    rows = []
    for model, family in (("google/gemma-2-2b", "gemma"), ("meta-llama/Llama-3.2-3B", "llama")):
        for framing in ("positive", "negative"):
            for p in range(5):
                for category in ("Agency", "Communion"):
                    centre = 90 if (family == "gemma") == (category == "Agency") else 140
                    rows.append({"model": model, "family": family, "framing": framing,
                                 "prompt_id": f"{framing}_{p}", "category": category,
                                 "median_rank": float(rng.normal(centre, 10))})
    return pd.DataFrame(rows)


LM_MODELS = (
    "google/gemma-2-2b-it", "google/gemma-2-9b-it",
    "meta-llama/Llama-3.2-1B-Instruct", "meta-llama/Llama-3.1-70B-Instruct",
    "meta-llama/Meta-Llama-3-8B-Instruct",
)


def mwlr_pairs() -> pd.DataFrame:
    """MWLR of two targets for every Gemma x Llama pair (2 x 3 = 6 pairs)."""
    rows = []
    gemmas = [m for m in LM_MODELS if "gemma" in m]
    llamas = [m for m in LM_MODELS if "llama" in m.lower()]
    for i, g in enumerate(gemmas):
        for j, lm in enumerate(llamas):
            for prompt in ("greatest_ever_one", "best_ever_one"):
                rows.append({"p_model": g, "q_model": lm, "prompt_id": prompt,
                             "target": "Freedom", "score": 0.01 * (i + j + 1)})
                rows.append({"p_model": g, "q_model": lm, "prompt_id": prompt, "target": "Love",
                             "score": -0.01 * (j + 1)})
    return pd.DataFrame(rows)


def token_scores(n: int = 40) -> pd.DataFrame:
    """Implicit-reward scores with awkward tokens (leading spaces, LaTeX/HTML specials)."""
    specials = [" Freedom", "&", "100%", "$x$", "#1", "a_b", "{x}", "~", "^", "\\n", "<b>",
                " love", "\n"]
    tokens = specials + [f"tok{i}" for i in range(n - len(specials))]
    scores = np.linspace(1.0, -1.0, n)
    return pd.DataFrame({"candidate": tokens, "token_id": np.arange(n), "mwlr": scores})


def checkpoints() -> pd.DataFrame:
    """Median rank over 6 checkpoints for 3 families x 2 categories."""
    rows = []
    for family, slope in (("gemma", -8.0), ("llama", 6.0), ("qwen", 1.0)):
        for c, category in enumerate(("Agency", "Communion")):
            for k, step in enumerate(range(0, 3000, 500)):
                rows.append({"base": family, "category": category, "checkpoint": step,
                             "median_rank": 600 + (slope if c == 0 else -slope) * k + 10 * c})
    return pd.DataFrame(rows)


def ablations() -> pd.DataFrame:
    """Final-checkpoint median ranks by data size and source, incl. a GRM row and Qwen."""
    rows = []
    specs = [(13, "uf", "BT"), (27, "uf", "BT"), (53, "uf", "BT"), (77, "skywork", "BT"),
             (632, "uf+skywork", "GRM")]
    for family, shift in (("gemma", -20.0), ("llama", 20.0), ("qwen", 0.0)):
        for size, source, method in specs:
            if family == "qwen" and method == "GRM":
                continue
            for category in ("Agency", "Communion"):
                for step in (100, 200):
                    rows.append({"base": family, "category": category, "data_size": size,
                                 "data_source": source, "method": method, "checkpoint": step,
                                 "median_rank": 650 + shift * (1 if category == "Agency" else -1)
                                 + size / 10 + step / 100})
    return pd.DataFrame(rows)


def rank_changes() -> pd.DataFrame:
    """Per-token ranks at the first and last checkpoint for two families (30 tokens each)."""
    rng = np.random.default_rng(3)
    rows = []
    for family in ("gemma", "llama", "qwen"):
        for i in range(30):
            rows.append({"base": family, "token": f"word{i}",
                         "category": "Agency" if i % 2 else "Communion",
                         "rank_first": float(i + 1), "rank_last": float(rng.permutation(30)[0] + 1)
                         + i * 0.001})
    return pd.DataFrame(rows)
