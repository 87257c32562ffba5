"""Implicit reward models through the RM statistics: a pair's implicit-reward table (``rmvalues
implicit``: ``prompt_id, key, logp, logq, score``) read as a score run, so ``analyze`` ranks the
lexicon words by it, takes median-rank units and fits the mixed model / panel tests.

The model of a table is its direction ``p → q`` (scores: q's preference over p), and its ``base``
factor is the family of q, the model whose preference the scores express. With
``both_directions`` (the default) each pair also enters reversed, ``q → p`` with the metric
recomputed from the stored log-probs (``metric(logq, logp)``), so Gemma → Llama and Llama → Gemma
pairs are the two levels of the factor, as Gemma- and Llama-based RMs are in Fig 1.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rmvalues.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

IMPLICIT_COLUMNS = ("prompt_id", "key", "logp", "logq", "score")
ARROW = " \u2192 "


def implicit_tables(path: str | Path) -> list[Path]:
    """Implicit-reward tables at ``path``: the table itself, the one in a pair folder (beside a
    manifest of kind ``implicit-rewards``), or those of every pair folder below (``--pairs``)."""
    import json

    path = Path(path)

    def is_pair_folder(folder: Path) -> str | None:
        manifest = folder / "manifest.json"
        if not manifest.is_file():
            return None
        try:
            data = json.loads(manifest.read_text("utf-8"))
        except (OSError, json.JSONDecodeError):
            return None
        if data.get("kind") != "implicit-rewards":
            return None
        return str(data.get("fields", {}).get("metric", ""))

    if path.is_file():
        return [path] if path.suffix == ".parquet" and is_pair_folder(path.parent) else []
    if not path.is_dir():
        return []
    folders = [path] if is_pair_folder(path) else sorted(p for p in path.iterdir() if p.is_dir()
                                                         and is_pair_folder(p))
    found = []
    for folder in folders:
        table = folder / f"{is_pair_folder(folder)}.parquet"
        if table.is_file():
            found.append(table)
    return found


def _family(model: str) -> str:
    from rmvalues.models.lm_registry import find_lm

    spec = find_lm(model)
    if spec is None:
        raise InputError(f"implicit table of {model!r}: its family is unknown (not in the LM "
                         "registry); add it to rmvalues/models/lm_registry.toml.")
    return spec.family.capitalize()


def read_implicit_scores(table: str | Path, *, both_directions: bool = True) -> pd.DataFrame:
    """One pair's implicit-reward table as score rows (``model`` = ``p → q``, ``candidate`` = key).

    ``frame.attrs['model_meta']`` holds ``model, base, base_version, size_b`` for each direction
    (base = q's family), ``frame.attrs['prompt_set']`` the runs' prompt set.
    """
    import numpy as np
    import pandas as pd

    from rmvalues.implicit import compute_metric
    from rmvalues.lexicons import paper_normalize
    from rmvalues.models.lm_registry import find_lm
    from rmvalues.store.manifest import read_manifest

    table = Path(table)
    frame = pd.read_parquet(table)
    missing = [c for c in IMPLICIT_COLUMNS if c not in frame.columns]
    if missing:
        raise InputError(f"{table} lacks column(s) {missing}; expected an implicit-reward table "
                         "written by `rmvalues implicit`.")
    fields = read_manifest(table.parent / "manifest.json").fields
    p, q, metric = str(fields["p"]), str(fields["q"]), str(fields["metric"])
    directions = [(p, q, frame["score"].to_numpy(float))]
    if both_directions:
        directions.append((q, p, compute_metric(metric, frame["logq"].to_numpy(float),
                                                frame["logp"].to_numpy(float))))
    keys = frame["key"].astype(str)
    normalized = keys.map(paper_normalize)
    parts, meta = [], []
    for a, b, scores in directions:
        name = f"{a}{ARROW}{b}"
        spec = find_lm(b)
        meta.append({"model": name, "base": _family(b),
                     "base_version": spec.version if spec else None,
                     "size_b": spec.size_b if spec else np.nan})
        parts.append(pd.DataFrame({
            "model": name, "prompt_id": frame["prompt_id"].astype(str), "candidate_kind": "token",
            "token_id": pd.array([pd.NA] * len(frame), dtype="Int64"), "candidate": keys,
            "normalized": normalized, "score": scores}))
    out = pd.concat(parts, ignore_index=True)
    out.attrs["model_meta"] = meta
    p_meta = fields.get("p_meta") or {}
    out.attrs["prompt_set"] = fields.get("prompt_set") or (
        p_meta.get("prompt_set") if isinstance(p_meta, dict) else None)
    out.attrs["metric"] = metric
    return out
