"""Shape of each RM's score distribution per prompt (FAccT 2025, Table 3, Fig 1).

Moments as the authors computed them: population variance (``ddof=0``), and scipy's biased
skewness and excess (Fisher) kurtosis.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd


def score_moments(runs: pd.DataFrame) -> pd.DataFrame:
    """model, prompt_id, n, mean, variance, skewness, kurtosis, min, median, max."""
    import numpy as np
    import pandas as pd
    from scipy.stats import kurtosis, skew

    rows = []
    for (model, prompt_id), sel in runs.groupby(["model", "prompt_id"], sort=True, observed=True):
        x = sel["score"].to_numpy(dtype=float)
        rows.append((model, prompt_id, len(x), float(x.mean()), float(np.var(x)), float(skew(x)),
                     float(kurtosis(x)), float(x.min()), float(np.median(x)), float(x.max())))
    return pd.DataFrame(rows, columns=["model", "prompt_id", "n", "mean", "variance", "skewness",
                                       "kurtosis", "min", "median", "max"])


def reference_moments(values: list[float]) -> tuple[float, float, float, float]:
    """Mean, population variance, biased skewness and excess kurtosis from their definitions."""
    n = len(values)
    mean = sum(values) / n
    m2 = sum((v - mean) ** 2 for v in values) / n
    m3 = sum((v - mean) ** 3 for v in values) / n
    m4 = sum((v - mean) ** 4 for v in values) / n
    return mean, m2, m3 / m2**1.5, m4 / m2**2 - 3.0
