"""Importers for the paper's released formats into the long results table of :mod:`rmvalues.store`.

Every importer returns the columns of :data:`~rmvalues.store.schema.SCORE_COLUMNS`, so an analysis
cannot tell an imported file from a re-scored run. Formats (as released by the authors):

* dictionary-word scores: ``response`` + one column per prompt (``big2_rewards_<org>_<model>.csv``);
* full-vocabulary scores / log-probs: ``token_id, token_name, token_decoded, <prompt columns>``;
* checkpoint sweeps (Parquet): ``token_decoded, step-N, ...`` for one prompt;
* ``rank_results_*.csv``: median ranks per (model, category, checkpoint), already summarised.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from rmvalues.errors import InputError

if TYPE_CHECKING:
    import pandas as pd

#: Columns of the released vocabulary CSVs that are not prompts.
VOCAB_ID_COLUMNS = ("token_id", "token_name", "token_decoded")
#: File-name prefixes of the released dictionary-score CSVs, stripped to get "<org>_<model>".
RELEASED_PREFIXES = ("big2_rewards_", "MFD20_rewards_")
_STEP = re.compile(r"^step-(\d+)$")


def model_from_filename(path: str | Path, prefixes: Iterable[str] = RELEASED_PREFIXES) -> str:
    """The model key for a released file: the registry key whose hub id is ``<org>_<model>``.

    Unknown models keep the stripped stem, so files of RMs outside the registry still import
    (their base family then has to come from ``--model-meta``).
    """
    from rmvalues.models.registry import known_models

    stem = Path(path).stem
    for prefix in prefixes:
        if stem.startswith(prefix):
            stem = stem[len(prefix) :]
            break
    for spec in known_models().values():
        if spec.hub_id.replace("/", "_").lower() == stem.lower():
            return spec.key
    return stem


def _read_csv(path: str | Path) -> pd.DataFrame:
    import pandas as pd

    try:
        # keep_default_na=False: words such as "null" or "nan" are candidates, not missing values.
        return pd.read_csv(path, keep_default_na=False, na_values=[""], dtype={"response": str,
                           "token_decoded": str, "token_name": str})
    except FileNotFoundError:
        raise InputError(f"{path}: no such file.") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise InputError(f"{path} is not a readable CSV ({exc}).") from None


def _finish(long: pd.DataFrame, kind: str) -> pd.DataFrame:
    """Attach the normalised form, check the scores, and order the columns as the store does."""
    import numpy as np
    import pandas as pd

    from rmvalues.lexicons import paper_normalize
    from rmvalues.store.schema import SCORE_COLUMNS

    long["candidate_kind"] = kind
    long["candidate"] = long["candidate"].astype(str)
    long["normalized"] = long["candidate"].map(paper_normalize)
    long["score"] = pd.to_numeric(long["score"], errors="coerce")
    if "token_id" not in long:
        long["token_id"] = pd.array([pd.NA] * len(long), dtype="Int64")
    else:
        long["token_id"] = long["token_id"].astype("Int64")
    extra = [c for c in long.columns if c not in SCORE_COLUMNS]
    out = long[list(SCORE_COLUMNS) + extra].reset_index(drop=True)
    if not np.isfinite(out["score"].to_numpy(dtype=float)).all():
        bad = out.loc[~np.isfinite(out["score"].to_numpy(dtype=float))].iloc[0]
        raise InputError(
            f"non-numeric or missing score for {bad['candidate']!r} under {bad['prompt_id']!r} "
            f"(model {bad['model']!r}); fix or drop that cell."
        )
    return out


def read_dictionary_scores(path: str | Path, model: str | None = None) -> pd.DataFrame:
    """A released dictionary-word CSV (``response`` + prompt columns) as a long results table."""
    frame = _read_csv(path)
    if "response" not in frame.columns:
        raise InputError(
            f"{path} has no 'response' column; a dictionary-score CSV has 'response' and one "
            "column per prompt."
        )
    prompts = [c for c in frame.columns if c != "response"]
    if not prompts:
        raise InputError(f"{path} has no prompt columns beside 'response'.")
    long = frame.melt(id_vars="response", value_vars=prompts, var_name="prompt_id", value_name="score")
    long = long.rename(columns={"response": "candidate"})
    long["model"] = model or model_from_filename(path)
    return _finish(long, "text")


def read_vocabulary_scores(
    path: str | Path, model: str | None = None, *, missing: Literal["error", "drop"] = "error"
) -> pd.DataFrame:
    """A released full-vocabulary CSV (``token_id, token_name, token_decoded, <prompts>``).

    ``missing="drop"`` drops empty score cells (counted per prompt in ``attrs['dropped']``) instead
    of refusing them: the FAccT release leaves cells of unscored tokens empty.
    """
    frame = _read_csv(path)
    absent = [c for c in ("token_id", "token_decoded") if c not in frame.columns]
    if absent:
        raise InputError(f"{path} lacks column(s) {absent}; expected {list(VOCAB_ID_COLUMNS)} + prompts.")
    prompts = [c for c in frame.columns if c not in VOCAB_ID_COLUMNS]
    long = frame.melt(id_vars=["token_id", "token_decoded"], value_vars=prompts,
                      var_name="prompt_id", value_name="score")
    long = long.rename(columns={"token_decoded": "candidate"})
    long["candidate"] = long["candidate"].fillna("")
    long["model"] = model or model_from_filename(path)
    dropped = {}
    if missing == "drop":
        empty = long["score"].isna()
        dropped = {str(k): int(v) for k, v in long.loc[empty, "prompt_id"].value_counts().items()}
        long = long.loc[~empty]
    out = _finish(long, "token")
    out.attrs["dropped"] = dropped
    return out


def read_checkpoint_scores(
    path: str | Path, run: str | None = None, prompt_id: str = "greatest_ever_one"
) -> pd.DataFrame:
    """A released checkpoint sweep (Parquet: ``token_decoded, step-N, ...``) as a long table.

    Adds an integer ``checkpoint`` column (the N of ``step-N``); ``model`` is the run name. The
    authors swept one prompt per file (``greatest_ever_one``), so the prompt id is a parameter.
    """
    import pandas as pd

    try:
        frame = pd.read_parquet(path)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file.") from None
    steps = [c for c in frame.columns if _STEP.match(str(c))]
    if "token_decoded" not in frame.columns or not steps:
        raise InputError(f"{path} needs a 'token_decoded' column and 'step-N' columns.")
    ids = ["token_decoded"] + (["token_id"] if "token_id" in frame.columns else [])
    long = frame.melt(id_vars=ids, value_vars=steps, var_name="step", value_name="score")
    long["checkpoint"] = long["step"].str.extract(_STEP, expand=False).astype(int)
    long = long.drop(columns="step").rename(columns={"token_decoded": "candidate"})
    long["candidate"] = long["candidate"].fillna("")
    long["model"] = run or Path(path).stem
    long["prompt_id"] = prompt_id
    return _finish(long, "token")


#: rank_results_*.csv column -> our name.
_RANK_RESULTS_COLUMNS = {"model_id": "model", "Category": "category", "base_model": "base",
                         "sum_value": "median_rank"}
#: Row-index columns R's write.csv adds (named "X" when re-read by R, "" when written by R).
_INDEX_COLUMNS = ("X", "", "Unnamed: 0")
#: Model-id fragments -> base family, as the authors' figure script infers it (``grepl``).
_FAMILY_FRAGMENTS = (("gem", "Gemma"), ("lla", "Llama"), ("lam", "Llama"), ("qwe", "Qwen"))


def family_from_model_id(model_id: str) -> str | None:
    """Base family of a trained RM from its id (``"R-Lla-3B"`` -> ``"Llama"``), else ``None``."""
    lowered = str(model_id).lower()
    return next((family for frag, family in _FAMILY_FRAGMENTS if frag in lowered), None)


def read_rank_results(path: str | Path) -> pd.DataFrame:
    """A released ``rank_results_*.csv`` (already median ranks) as a tidy table, rows as in the file.

    Columns: model, category, checkpoint, base, median_rank, plus data_size, data_source, method,
    prompt where the file has them, and ``source`` (the file name). The row-index column is dropped;
    a missing ``base_model`` (``NA``) is inferred from the model id, else the id is its own level.
    """
    import pandas as pd

    frame = _read_csv(path)
    missing = [c for c in ("model_id", "Category", "checkpoint", "sum_value") if c not in frame.columns]
    if missing:
        raise InputError(f"{path} lacks column(s) {missing}; is it a rank_results_*.csv?")
    frame = frame.drop(columns=[c for c in frame.columns if c in _INDEX_COLUMNS])
    frame = frame.rename(columns=_RANK_RESULTS_COLUMNS)
    frame["model"] = frame["model"].astype(str)
    if "base" not in frame.columns:
        frame["base"] = pd.NA
    base = frame["base"].astype("string").replace({"NA": pd.NA})
    frame.attrs["base_inferred"] = sorted(frame.loc[base.isna().to_numpy(), "model"].unique())
    inferred = frame["model"].map(lambda m: family_from_model_id(m) or m)
    frame["base"] = base.fillna(inferred.astype("string")).astype(str)
    frame["checkpoint"] = pd.to_numeric(frame["checkpoint"], errors="coerce")
    frame["median_rank"] = pd.to_numeric(frame["median_rank"], errors="coerce")
    bad = frame[frame["checkpoint"].isna() | frame["median_rank"].isna()]
    if len(bad):
        raise InputError(f"{path}: non-numeric checkpoint or sum_value in {len(bad)} row(s) (first: "
                         f"{bad.iloc[0].to_dict()}); fix or drop those rows.")
    frame["source"] = Path(path).name
    return frame


def read_released_folder(folder: str | Path, prefixes: Iterable[str] = RELEASED_PREFIXES) -> pd.DataFrame:
    """Every dictionary-score CSV in ``folder`` as one long table (models from the file names)."""
    import pandas as pd

    files = sorted(Path(folder).glob("*.csv"))
    if not files:
        raise InputError(f"{folder} holds no .csv files; point it at a folder of released scores.")
    prefixes = tuple(prefixes)
    return pd.concat(
        [read_dictionary_scores(f, model_from_filename(f, prefixes)) for f in files],
        ignore_index=True,
    )
