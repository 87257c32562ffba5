"""Shared test set-up: offline data from ../shared, a per-session cache, few CPU threads."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("RMVALUES_SHARED", REPO.parent / "shared"))

# Tests read the paper's lexicons and released data offline from ../shared (still sha256-checked).
os.environ.setdefault("RMVALUES_LEXICON_DIR", str(SHARED / "corpora"))
os.environ.setdefault("RMVALUES_PAPER_DATA", str(SHARED / "paper-data"))
# Fetched assets live in the repo-local cache that `make assets` fills.
os.environ.setdefault("RMVALUES_CACHE", str(REPO / ".cache" / "rmvalues"))
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.exists():
        pytest.fail(f"{SHARED} is missing: tests need the project's shared data beside the checkout")
    return SHARED

# Hypothesis: derandomized on CI (CI set), so a red build is reproducible and a green one is not
# luck; locally it searches randomly unless HYPOTHESIS_PROFILE=ci.
try:
    from hypothesis import settings as _hypothesis_settings
except ImportError:  # pragma: no cover - hypothesis is a test dependency
    pass
else:
    _hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
    _hypothesis_settings.load_profile(
        os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "default"))
