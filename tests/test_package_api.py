"""The top-level package: the Python API is reachable from `rmvalues` without importing torch."""

from __future__ import annotations

import subprocess
import sys

import rmvalues


def test_lazy_api_names_resolve_to_callables() -> None:
    for name in rmvalues._API:
        assert callable(getattr(rmvalues, name)), name


def test_import_is_light() -> None:
    code = "import sys, rmvalues; rmvalues.load_lexicon; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_unknown_attribute_is_an_attribute_error() -> None:
    import pytest

    with pytest.raises(AttributeError, match="no attribute"):
        rmvalues.not_a_function  # noqa: B018


def test_all_lists_every_lazy_name() -> None:
    assert set(rmvalues.__all__) == {"__version__", *rmvalues._API}
