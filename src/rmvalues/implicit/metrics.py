"""Implicit-reward metrics on two aligned next-token log-prob arrays, p = π₁(·|x) and q = π₂(·|x).

Every metric scores a token by how much more q likes it than p (positive = preferred by q):

- ``log_ratio``: r = log q − log p, the implicit reward up to c(x) and β;
- ``mwlr``: ½(p + q)(log q − log p), the paper's mixture-weighted log ratio. Summed over a shared
  vocabulary it equals ½[KL(q‖p) − KL(p‖q)];
- ``clip<c>`` (c ∈ {5, 10, 12, 15, 20, 30}): max(log q, −c) − max(log p, −c), the floor-clipped log
  ratio the authors compared;
- ``prob_diff``: q − p; ``ratio``: q / p; ``odds_ratio``: [q/(1−q)] / [p/(1−p)]. The last two are
  computed on probabilities — the authors' exploratory code divided log-probs, which is wrong.

:func:`reference_metric` is the scalar reference path the tests hold the arrays equal to. Only
numpy is needed here.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable

import numpy as np

from rmvalues.errors import InputError
from rmvalues.registry import Registry

#: Floors c of the clipped log ratio that the authors compared.
CLIP_FLOORS: tuple[int, ...] = (5, 10, 12, 15, 20, 30)


def _arrays(logp, logq) -> tuple[np.ndarray, np.ndarray]:
    lp = np.asarray(logp, dtype=np.float64)
    lq = np.asarray(logq, dtype=np.float64)
    if lp.shape != lq.shape:
        raise InputError(f"log-prob arrays differ in shape: {lp.shape} vs {lq.shape}; join them first")
    return lp, lq


def log_ratio(logp, logq) -> np.ndarray:
    """r = log q − log p."""
    lp, lq = _arrays(logp, logq)
    with np.errstate(invalid="ignore"):
        return lq - lp


def mwlr(logp, logq) -> np.ndarray:
    """½(p + q)(log q − log p); 0 where both probabilities are 0."""
    lp, lq = _arrays(logp, logq)
    weight = 0.5 * (np.exp(lp) + np.exp(lq))
    with np.errstate(invalid="ignore"):
        out = weight * (lq - lp)
    return np.where(weight == 0.0, 0.0, out)


def clipped_log_ratio(logp, logq, c: float) -> np.ndarray:
    """max(log q, −c) − max(log p, −c): a log ratio blind to differences below probability e^−c."""
    if not c > 0:
        raise InputError(f"clip floor c must be positive, got {c}")
    lp, lq = _arrays(logp, logq)
    return np.maximum(lq, -c) - np.maximum(lp, -c)


def prob_difference(logp, logq) -> np.ndarray:
    """q − p."""
    lp, lq = _arrays(logp, logq)
    return np.exp(lq) - np.exp(lp)


def prob_ratio(logp, logq) -> np.ndarray:
    """q / p on probabilities (computed as exp(log q − log p), which is the same number)."""
    lp, lq = _arrays(logp, logq)
    with np.errstate(invalid="ignore", over="ignore"):
        return np.exp(lq - lp)


def _log_odds(lp: np.ndarray) -> np.ndarray:
    # log(p / (1 − p)) = log p − log(1 − p); -expm1(log p) is 1 − p without cancellation near p = 1.
    with np.errstate(divide="ignore"):
        return lp - np.log(-np.expm1(lp))


def odds_ratio(logp, logq) -> np.ndarray:
    """[q/(1−q)] / [p/(1−p)] on probabilities."""
    lp, lq = _arrays(logp, logq)
    with np.errstate(invalid="ignore", over="ignore"):
        return np.exp(_log_odds(lq) - _log_odds(lp))


#: The implicit-reward metrics by name, as ``f(logp, logq) -> scores``, in the tables' order.
METRIC_FUNCTIONS: Registry[Callable[[np.ndarray, np.ndarray], np.ndarray]] = Registry(
    "implicit-reward metric", hint="clip<c> accepts any positive floor c")
METRIC_FUNCTIONS.register("mwlr", mwlr)
METRIC_FUNCTIONS.register("log_ratio", log_ratio)
for _c in CLIP_FLOORS:
    METRIC_FUNCTIONS.register(f"clip{_c}", functools.partial(clipped_log_ratio, c=float(_c)))
METRIC_FUNCTIONS.register("prob_diff", prob_difference)
METRIC_FUNCTIONS.register("ratio", prob_ratio)
METRIC_FUNCTIONS.register("odds_ratio", odds_ratio)
#: Every registered metric name (:func:`get_metric` also accepts ``clip<c>`` for any c > 0).
METRICS: tuple[str, ...] = METRIC_FUNCTIONS.names()
_CLIP = re.compile(r"^clip(\d+(?:\.\d+)?)$")


def get_metric(name: str) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """The metric ``name`` as ``f(logp, logq) -> scores``; ``clip<c>`` accepts any positive c."""
    m = _CLIP.match(name)
    if m and name not in METRIC_FUNCTIONS:
        return functools.partial(clipped_log_ratio, c=float(m.group(1)))
    return METRIC_FUNCTIONS.get(name)


def compute_metric(name: str, logp, logq) -> np.ndarray:
    """Scores of metric ``name`` for aligned log-prob arrays (positive = preferred by q)."""
    return get_metric(name)(logp, logq)


def reference_metric(name: str, logp: float, logq: float) -> float:
    """Obviously-correct scalar path: each metric written out on probabilities with :mod:`math`."""
    p, q = math.exp(logp), math.exp(logq)
    if name == "log_ratio":
        return logq - logp
    if name == "mwlr":
        return 0.5 * (p + q) * (logq - logp)
    if name == "prob_diff":
        return q - p
    if name == "ratio":
        return q / p
    if name == "odds_ratio":
        return (q / (1 - q)) / (p / (1 - p))
    m = _CLIP.match(name)
    if m:
        c = float(m.group(1))
        return max(logq, -c) - max(logp, -c)
    raise InputError(f"unknown implicit-reward metric {name!r}")


# --- distributions ----------------------------------------------------------------------------------


def logsumexp(x, axis: int = -1) -> np.ndarray:
    """log Σ exp(x) along ``axis``, stable; −inf for an all −inf slice."""
    x = np.asarray(x, dtype=np.float64)
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        return np.squeeze(m, axis=axis) + np.log(np.sum(np.exp(x - m), axis=axis))


def renormalize(logp, axis: int = -1) -> np.ndarray:
    """Log-probs renormalised to sum to one along ``axis`` (over the tokens present)."""
    x = np.asarray(logp, dtype=np.float64)
    return x - np.expand_dims(logsumexp(x, axis=axis), axis)


def kl_divergence(logp, logq) -> float:
    """KL(p‖q) = Σ p (log p − log q) for aligned log-prob vectors (terms with p = 0 are 0)."""
    lp, lq = _arrays(logp, logq)
    p = np.exp(lp)
    with np.errstate(invalid="ignore"):
        terms = p * (lp - lq)
    return float(np.sum(np.where(p == 0.0, 0.0, terms)))
