"""Units of analysis: the median rank per (model, prompt, category), with prompt and model factors.

The paper's unit is the median rank of a category's items under one prompt for one model (10 RMs ×
54 prompts × 2 Big Two categories = 1,080 units). Factors attached here are what the mixed model and
the panel tests use: ``framing``/``adjective``/``context``/``style`` of the prompt and ``base``
(family), ``base_version`` and ``size_b`` of the model.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rmvalues.errors import AnalysisError, InputError

if TYPE_CHECKING:
    import pandas as pd

#: Columns of a units table, in order (factor columns follow).
UNIT_COLUMNS = ("model", "prompt_id", "category", "median_rank", "n_items")
#: Level order used by every model and test: the reference level comes first (as in the paper's R).
FRAMING_LEVELS = ("positive", "negative")
PROMPT_FACTORS = ("adjective", "context", "style", "framing")


def prompt_factors(prompt_ids: Iterable[str], prompts: Any = "paper-54") -> pd.DataFrame:
    """Factors of each prompt id: ``prompt_id, adjective, context, style, framing``.

    Taken from the prompt set (a name, YAML path or :class:`~rmvalues.prompts.PromptSet`; the
    paper's 54 by default). An id the set lacks is split as ``<adjective>_<context>_<style>`` (the
    authors' R code does the same) and its framing looked up from the set's adjectives; whatever
    cannot be found stays missing, and any model that needs it will say so.
    """
    import pandas as pd

    from rmvalues.prompts import PromptSet, load_prompt_set

    pset = prompts if isinstance(prompts, PromptSet) else load_prompt_set(prompts)
    known = pset.to_frame().drop(columns="text").set_index("prompt_id")
    # The set's own factors (a user's set may add factors or levels), after the paper's four.
    factors = list(dict.fromkeys([*PROMPT_FACTORS, *pset.factor_names]))
    framing_of = {}
    if {"adjective", "framing"} <= set(known.columns):
        framing_of = dict(zip(known["adjective"], known["framing"]))
    rows = []
    for pid in dict.fromkeys(prompt_ids):
        if pid in known.index:
            rows.append({"prompt_id": pid, **{f: known.loc[pid].get(f) for f in factors}})
            continue
        parts = (pid.split("_") + [None, None, None])[:3]
        rows.append({"prompt_id": pid, "adjective": parts[0], "context": parts[1], "style": parts[2],
                     "framing": framing_of.get(parts[0])})
    frame = pd.DataFrame(rows, columns=["prompt_id", *factors])
    extra = [lv for lv in (pset.levels("framing") if "framing" in pset.factor_names else [])
             if lv not in FRAMING_LEVELS]
    frame["framing"] = pd.Categorical(frame["framing"], categories=[*FRAMING_LEVELS, *extra])
    return frame


def read_model_meta(source: str | Path | pd.DataFrame | Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """User model metadata (CSV/TOML/JSON file, frame, or ``{model: {base: ...}}``) as a frame.

    Needs columns ``model`` and ``base``; ``base_version`` and ``size_b`` are optional.
    """
    import pandas as pd

    if isinstance(source, pd.DataFrame):
        frame = source.copy()
    elif isinstance(source, Mapping):
        frame = pd.DataFrame([{"model": m, **dict(v)} for m, v in source.items()])
    else:
        path = Path(source)
        if not path.exists():
            raise InputError(f"model metadata file {path} does not exist.")
        if path.suffix == ".toml":
            import tomllib

            data = tomllib.loads(path.read_text("utf-8"))
            return read_model_meta(data.get("models", data))
        if path.suffix == ".json":
            import json

            return read_model_meta(json.loads(path.read_text("utf-8")))
        frame = pd.read_csv(path)
    if "model" not in frame.columns or "base" not in frame.columns:
        raise InputError("model metadata needs columns 'model' and 'base' (the base family).")
    return frame


def model_factors(models: Iterable[str], meta: Any = None) -> pd.DataFrame:
    """``model, base, base_version, size_b`` per model: from ``meta`` first, then the RM registry.

    ``base`` is the capitalised base family ("Gemma", "Llama"). A model found in neither raises
    :class:`AnalysisError` naming it, since the base × category analysis needs every model's base.
    """
    import pandas as pd

    from rmvalues.models.registry import find_model
    from rmvalues.store.schema import ATTRIBUTE_SEP

    given = read_model_meta(meta).set_index("model") if meta is not None else None
    rows, missing = [], []
    for model in dict.fromkeys(models):
        # one attribute of a multi-objective RM (MODEL@ATTRIBUTE) has its model's base
        name = model if (given is not None and model in given.index) or find_model(model) \
            else model.split(ATTRIBUTE_SEP)[0]
        if given is not None and name in given.index:
            row = given.loc[name]
            rows.append({"model": model, "base": str(row["base"]),
                         "base_version": row.get("base_version"), "size_b": row.get("size_b")})
            continue
        spec = find_model(name)
        if spec is None:
            missing.append(model)
            continue
        rows.append({"model": model, "base": spec.base_family.capitalize(),
                     "base_version": spec.base_version, "size_b": spec.size_b})
    if missing:
        raise AnalysisError(
            f"no base-family metadata for model(s) {missing}: they are not in the RM registry. "
            "Pass --model-meta FILE (CSV with columns model, base[, base_version, size_b])."
        )
    frame = pd.DataFrame(rows, columns=["model", "base", "base_version", "size_b"])
    frame["size_b"] = pd.to_numeric(frame["size_b"], errors="coerce")
    return frame


def median_rank_units(
    ranked: pd.DataFrame, *, model_meta: Any = None, require_base: bool = True,
    prompts: Any = "paper-54", by: tuple[str, ...] = ("model",),
) -> pd.DataFrame:
    """Median rank per (model, prompt, category), with prompt and model factors attached.

    ``prompts`` is the prompt set whose factors are attached; ``by`` the run keys (add
    ``checkpoint`` for a sweep). ``require_base=False`` skips model metadata (for single-model runs); otherwise every model must
    have a base family (registry or ``model_meta``).
    """
    import pandas as pd

    units = (ranked.groupby([*by, "prompt_id", "category"], observed=True)["rank"]
             .agg(median_rank="median", n_items="size").reset_index())
    units = units.merge(prompt_factors(units["prompt_id"], prompts), on="prompt_id", how="left")
    if require_base:
        units = units.merge(model_factors(units["model"], model_meta), on="model", how="left")
        units["base"] = pd.Categorical(units["base"], categories=sorted(units["base"].unique()))
    if isinstance(ranked["category"].dtype, pd.CategoricalDtype):
        present = [c for c in ranked["category"].cat.categories if c in set(units["category"])]
        units["category"] = pd.Categorical(units["category"], categories=present)
    return units
