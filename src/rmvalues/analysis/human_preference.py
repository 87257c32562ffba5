"""RM scores against human preferences: EloEverything (FAccT 2025, Fig A5-A7).

The released files hold, per prompt, 7,530 entities with their human Elo (rank, score, matches)
and the paper's ten RMs' scores for each entity given as the answer. :func:`elo_runs` turns the RM
columns into ordinary long score rows, so those ten and any user run scored with
``--candidates elo`` go through the same functions. Entities are joined on their name verbatim.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from rmvalues.errors import AnalysisError, InputError

if TYPE_CHECKING:
    import pandas as pd

ELO_COLUMNS = ("elo_rank", "elo_score", "name", "elo_matches")


def read_elo(path: str | Path) -> pd.DataFrame:
    """One EloEverything file as it is (``elo_rank, elo_score, name, elo_matches, <hub ids>``)."""
    import pandas as pd

    try:
        frame = pd.read_csv(path, keep_default_na=False, na_values=[""], dtype={"name": str})
    except FileNotFoundError:
        raise InputError(f"{path}: no such EloEverything file.") from None
    missing = [c for c in ELO_COLUMNS if c not in frame.columns]
    if missing:
        raise InputError(f"{path} lacks column(s) {missing}; expected {list(ELO_COLUMNS)} + RM columns.")
    if frame["name"].duplicated().any():
        raise InputError(f"{path}: entity names repeat ({frame['name'][frame['name'].duplicated()].iloc[0]!r}).")
    return frame


def load_elo(data_dir: str | Path | None = None) -> dict[str, pd.DataFrame]:
    """The three released EloEverything files by name (``elo-greatest-one-word``, ...), verified."""
    from rmvalues.analysis.facct_data import elo_files, fetch_released

    return {name: read_elo(fetch_released(spec, data_dir)) for name, spec in elo_files().items()}


def _model_key(column: str) -> str:
    from rmvalues.models.registry import find_model

    spec = find_model(column)
    return spec.key if spec is not None else column


def elo_runs(elo: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """The RM columns of the Elo files as long score rows (model = registry key, prompt_id = file)."""
    import pandas as pd

    parts = []
    for prompt_id, frame in elo.items():
        models = [c for c in frame.columns if c not in ELO_COLUMNS]
        long = frame.melt(id_vars="name", value_vars=models, var_name="model", value_name="score")
        long["model"] = long["model"].map(_model_key)
        long["prompt_id"] = prompt_id
        parts.append(long.rename(columns={"name": "candidate"}).dropna(subset=["score"]))
    return pd.concat(parts, ignore_index=True)[["model", "prompt_id", "candidate", "score"]]


def human_table(elo: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """candidate, elo_score (the human Elo; the same entities under every prompt file)."""
    first = next(iter(elo.values()))
    return first[["name", "elo_score"]].rename(columns={"name": "candidate"})


def human_agreement(runs: pd.DataFrame, human: pd.DataFrame) -> pd.DataFrame:
    """Kendall's tau-b between each model's scores and the human Elo, per prompt.

    Columns: model, prompt_id, n, kendall_tau_b, p (scipy's), n_unmatched (run candidates with no
    Elo entity)."""
    import pandas as pd
    from scipy.stats import kendalltau

    rows = []
    elo = human.set_index("candidate")["elo_score"]
    for (model, prompt_id), sel in runs.groupby(["model", "prompt_id"], sort=True, observed=True):
        scores = sel.groupby("candidate")["score"].mean()
        common = scores.index.intersection(elo.index)
        if len(common) < 3:
            continue
        res = kendalltau(scores.loc[common].to_numpy(float), elo.loc[common].to_numpy(float))
        rows.append((model, prompt_id, len(common), float(res.statistic), float(res.pvalue),
                     len(scores) - len(common)))
    if not rows:
        raise AnalysisError("no run shares three or more candidates with the EloEverything entities; "
                            "score them with `--candidates elo`.")
    return pd.DataFrame(rows, columns=["model", "prompt_id", "n", "kendall_tau_b", "p", "n_unmatched"])


def prompt_agreement(runs: pd.DataFrame) -> pd.DataFrame:
    """Kendall's tau-b of each model's entity scores between every two prompts (Fig A6)."""
    import pandas as pd
    from scipy.stats import kendalltau

    wide = runs.pivot_table(index="candidate", columns=["model", "prompt_id"], values="score")
    rows = []
    for model in sorted(set(wide.columns.get_level_values(0))):
        prompts = sorted(wide[model].columns)
        for i, a in enumerate(prompts):
            for b in prompts[i + 1:]:
                pair = wide[model][[a, b]].dropna()
                tau = kendalltau(pair[a], pair[b]).statistic if len(pair) > 2 else float("nan")
                rows.append((model, a, b, len(pair), float(tau)))
    return pd.DataFrame(rows, columns=["model", "prompt_a", "prompt_b", "n", "kendall_tau_b"])


def rank_gaps(runs: pd.DataFrame, human: pd.DataFrame, *, n_show: int = 10) -> pd.DataFrame:
    """Entities whose median model rank is furthest from their human rank, per prompt (Fig A7).

    Ranks are descending with averaged ties (1 = most preferred); ``gap = model_rank - human_rank``
    (> 0: humans rank the entity better than the models do). The ``n_show`` largest gaps each way.
    """
    import pandas as pd

    out = []
    for prompt_id, sel in runs.groupby("prompt_id", sort=True):
        wide = sel.pivot_table(index="candidate", columns="model", values="score")
        wide = wide.join(human.set_index("candidate")["elo_score"], how="inner").dropna()
        ranks = wide.rank(ascending=False, method="average")
        models = [c for c in ranks.columns if c != "elo_score"]
        frame = pd.DataFrame({"candidate": ranks.index, "human_rank": ranks["elo_score"].to_numpy(),
                              "model_rank": ranks[models].median(axis=1).to_numpy()})
        frame["gap"] = frame["model_rank"] - frame["human_rank"]
        frame["prompt_id"] = prompt_id
        frame["n_models"] = len(models)
        top = frame.nlargest(n_show, "gap").assign(direction="humans rank higher")
        bottom = frame.nsmallest(n_show, "gap").assign(direction="models rank higher")
        out += [top, bottom]
    if not out:
        raise AnalysisError("no runs to compare with the human Elo ranks.")
    return pd.concat(out, ignore_index=True)[["prompt_id", "direction", "candidate", "human_rank",
                                              "model_rank", "gap", "n_models"]]


def elo_entities(data_dir: str | Path | None = None) -> list[str]:
    """The EloEverything entity names (the ``elo`` candidate source), in human-rank order."""
    from rmvalues.analysis.facct_data import elo_files, fetch_released

    spec = next(iter(elo_files().values()))
    frame = read_elo(fetch_released(spec, data_dir))
    return frame.sort_values("elo_rank", kind="stable")["name"].tolist()
