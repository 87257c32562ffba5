"""Test helper: point a released dataset's pins at synthetic stand-ins for the real files."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

from rmvalues.analysis.datasets import get_dataset, released_datasets


def pin_local_copy(monkeypatch, name: str, folder: Path) -> None:
    """Make ``folder``'s CSVs the pinned files of dataset ``name`` for this test (hashes, names)."""
    files = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.csv"))}
    monkeypatch.setitem(released_datasets(), name, dataclasses.replace(get_dataset(name), files=files))
