"""The released ``rank_results_*.csv`` files mapped to (data size, data source, method) by explicit
data (the registry's ``released.toml`` runs, the authors' hand-set values, plus the analysis
choices in ``rank_results_runs.toml``), overridable with a user TOML."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rmvalues.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

FACT_COLUMNS = ("data_size", "data_source", "method")


def rank_results_map(override: str | Path | Mapping[str, Any] | None = None
                     ) -> dict[str, dict[str, Any]]:
    """File name -> facts: the built-in map, updated file by file from ``override``."""
    from rmvalues.analysis.datasets import get_dataset

    mapping = {name: dict(facts) for name, facts in get_dataset("rank-results").runs.items()}
    extra = tomllib.loads(files("rmvalues.analysis").joinpath("rank_results_runs.toml")
                          .read_text("utf-8"))["files"]
    for name, facts in extra.items():
        mapping[name] = {**mapping.get(name, {}), **facts}
    if override is None:
        return mapping
    if not isinstance(override, Mapping):
        path = Path(override)
        if not path.is_file():
            raise InputError(f"rank-results map {path} does not exist.")
        override = tomllib.loads(path.read_text("utf-8")).get("files", {})
    for name, facts in override.items():
        bad = set(facts) - {*FACT_COLUMNS, "checkpoint"}
        if bad:
            raise InputError(f"rank-results map entry {name!r} has unknown field(s) {sorted(bad)}; "
                             f"use {', '.join(FACT_COLUMNS)}, checkpoint.")
        mapping[name] = {**mapping.get(name, {}), **facts}
    return mapping


def with_run_facts(frame: pd.DataFrame, mapping: Mapping[str, Mapping[str, Any]] | None = None
                   ) -> pd.DataFrame:
    """Fill data_size/data_source/method (and a fixed checkpoint) from the map by ``source`` file.

    A file the map does not know is an error naming it (its x position in Fig 4b is unknown).
    """
    mapping = rank_results_map() if mapping is None else mapping
    if "source" not in frame.columns:
        raise InputError("rank results have no 'source' column; read them with read_rank_results.")
    unknown = sorted(set(frame["source"]) - set(mapping))
    if unknown:
        raise InputError(f"rank-results file(s) {unknown} are not in the rank-results map; add "
                         "their data_size, data_source and method in a TOML passed as "
                         "--rank-results-map.")
    out = frame.copy()
    for col in FACT_COLUMNS:
        out[col] = out["source"].map(lambda s, c=col: mapping[s].get(c))
    fixed = out["source"].map(lambda s: mapping[s].get("checkpoint"))
    out["checkpoint"] = fixed.where(fixed.notna(), out["checkpoint"])
    return out
