"""Engines: exhaustive token search over reward models (``score``), LM log-probabilities, candidate
sets, and the slow ``reference_*`` paths the fast ones are tested against."""
