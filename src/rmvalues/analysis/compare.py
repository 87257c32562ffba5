"""``rmvalues compare``: the FAccT 2025 analyses on any set of stored score runs.

Each analysis runs where its input allows (two or more RMs for agreement, AFINN words for framing,
Elo entities for human preferences, broad runs for identity terms); one that cannot run is listed
in ``notes`` with the reason, never an error for the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rmvalues.errors import AnalysisError, ChecksumError, FetchError, InputError

if TYPE_CHECKING:
    import pandas as pd

#: Table name -> what it holds (the manifest and report list them in this order).
TABLES = {
    "moments": "score distribution per RM x prompt: mean, variance, skewness, kurtosis",
    "agreement": "pairwise agreement (tau-b, rho, footrule, NDCG@k, RBO_ext) on all/top/bottom",
    "mds": "MDS coordinates of the RMs on 1 - Kendall tau-b",
    "rsa": "RSA: RM similarity vs same family / developer / size, Mantel permutation p",
    "asymmetry": "agreement at the top minus at the bottom, permutation p and model-bootstrap CI",
    "framing": "score ~ AFINN sentiment slopes per RM x prompt x valence, 95% CI",
    "framing_contrast": "negative slope under 'worst' minus positive slope under 'best', 95% CI",
    "frequency": "score ~ log BNC frequency + sentiment: frequency slope per RM x prompt, 95% CI",
    "human": "Kendall tau-b between RM scores and EloEverything human Elo per prompt",
    "human_prompts": "each RM's Elo-entity scores: tau-b between prompts",
    "rank_gaps": "entities with the largest median-model-rank minus human-rank gaps",
    "identity": "identity-term percentile ranks vs frequency-matched random words",
}


@dataclass
class CompareResult:
    """The tables of :func:`compare` (absent ones are ``None``), the settings and the notes."""

    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    runs: pd.DataFrame | None = None  # the input scores (for figures such as violins)

    def summary_text(self) -> str:
        lines = ["rmvalues compare (FAccT 2025 analyses)"]
        for name, table in self.tables.items():
            lines.append(f"  {name}: {len(table):,} rows  ({TABLES.get(name, '')})")
        if "human" in self.tables:
            h = self.tables["human"]
            for row in h.sort_values(["prompt_id", "model"]).itertuples():
                lines.append(f"    tau(human Elo, {row.model}) under {row.prompt_id}: "
                             f"{row.kendall_tau_b:+.3f} (n={row.n:,})")
        if "asymmetry" in self.tables:
            for row in self.tables["asymmetry"].itertuples():
                lines.append(f"    {row.metric} {row.prompt_id}: top - bottom = "
                             f"{row.top_minus_bottom:+.3f} [{row.ci_low:+.3f}, {row.ci_high:+.3f}], "
                             f"p = {row.p_perm:.3g}")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def read_runs(runs: Sequence[str | Path | pd.DataFrame]) -> pd.DataFrame:
    """Stored score runs (Parquet files/folders, released CSVs or frames) as one long table."""
    import pandas as pd

    from rmvalues.analysis.facct_data import (
        is_facct_csv,
        model_from_facct_filename,
        read_facct_scores,
    )
    from rmvalues.analysis.pipeline import read_run

    if not runs:
        raise InputError("no runs given; pass score runs (.parquet) or imported FAccT runs.")
    frame = pd.concat([read_facct_scores(r, model_from_facct_filename(r))
                       if not isinstance(r, pd.DataFrame) and is_facct_csv(r) else read_run(r)
                       for r in runs], ignore_index=True)
    dup = frame.duplicated(["model", "prompt_id", "candidate_kind", "token_id", "candidate"])
    if dup.any():
        row = frame[dup].iloc[0]
        raise InputError(f"model {row['model']!r} is given twice for prompt {row['prompt_id']!r}; "
                         "pass each run once (or rename one model).")
    return frame


def _read_model_meta(path: str | Path | None) -> pd.DataFrame | None:
    if path is None:
        return None
    import pandas as pd

    frame = pd.read_csv(path)
    need = {"model", "base", "size_b"}
    if not need <= set(frame.columns):
        raise InputError(f"{path}: model meta needs columns {sorted(need)} (+ developer).")
    return frame


def compare(
    runs: Sequence[str | Path | pd.DataFrame],
    *,
    facct_data: str | Path | None = None,
    released_elo: bool = True,
    prompts: Sequence[str] | None = None,
    k: int = 100,
    p: float = 0.9,
    duplicates: str = "drop",
    model_meta: str | Path | None = None,
    identity_lexicon: str | Path = "identity-terms",
    n_perm: int = 9999,
    n_boot: int = 2000,
    n_null: int = 1000,
    seed: int = 0,
) -> CompareResult:
    """Run every FAccT analysis the inputs allow (see the module docstring)."""
    from rmvalues.analysis import agreement as ag
    from rmvalues.analysis import covariates as cov
    from rmvalues.analysis import human_preference as hp
    from rmvalues.analysis.distributions import score_moments
    from rmvalues.analysis.facct_data import fetch_data_file

    result = CompareResult(settings={
        "k": k, "rbo_p": p, "duplicates": duplicates, "prompts": list(prompts or []),
        "n_perm": n_perm, "n_boot": n_boot, "n_null": n_null, "seed": seed,
        "identity_lexicon": str(identity_lexicon), "released_elo": released_elo,
        "join": "decoded candidate string, verbatim (agreement); normalised word (framing, "
                "frequency, identity); entity name (human preferences)"})
    frame = read_runs(runs) if runs else None
    if frame is not None and prompts:
        frame = frame[frame["prompt_id"].isin(list(prompts))]
        if frame.empty:
            raise InputError(f"no run has prompt(s) {list(prompts)}.")
    result.runs = frame
    tables = result.tables

    def attempt(name: str, fn) -> None:
        try:
            fn()
        except AnalysisError as exc:
            result.notes.append(f"{name} skipped: {exc}")

    elo = None
    if released_elo or frame is not None:
        try:
            elo = hp.load_elo(facct_data)
        except ChecksumError:
            raise  # a file that is not the pinned one is an error, not a skipped analysis
        except (FetchError, InputError, OSError) as exc:
            result.notes.append(f"EloEverything files unavailable ({exc}); human preferences skipped.")
    human_names = set(hp.human_table(elo)["candidate"]) if elo else set()
    is_elo_run = None
    if frame is not None:
        share = frame.groupby("model")["candidate"].apply(lambda c: c.isin(human_names).mean())
        is_elo_run = frame["model"].map(share).ge(0.5) if human_names else frame["model"].map(lambda _: False)
        vocab = frame[~is_elo_run]
    else:
        vocab = None

    if vocab is not None and not vocab.empty:
        tables["moments"] = score_moments(vocab)

        def heterogeneity() -> None:
            if vocab["model"].nunique() < 2:
                raise AnalysisError("agreement needs at least two RMs.")
            shared = ag.shared_vocabulary(vocab, duplicates=duplicates)  # type: ignore[arg-type]
            result.settings["n_shared"] = len(shared.index.get_level_values("candidate").unique())
            result.settings["duplicate_strings_dropped" if duplicates == "drop" else
                            "duplicate_strings_averaged"] = len(shared.attrs["duplicates"])
            pairs = ag.pairwise_agreement(shared, k=k, p=p)
            tables["agreement"] = pairs
            first = sorted(pairs["prompt_id"].unique())
            mds = []
            for prompt_id in first:
                mat = ag.similarity_matrix(pairs, prompt_id, "all", "kendall_tau_b")
                if len(mat) >= 3:
                    mds.append(ag.mds_embedding(mat, seed=seed).assign(prompt_id=prompt_id))
            if mds:
                import pandas as pd

                tables["mds"] = pd.concat(mds, ignore_index=True)
            models = sorted(vocab["model"].unique())
            if len(models) >= 4:
                features = ag.model_features(models, _read_model_meta(model_meta))
                tables["rsa"] = ag.rsa_table(pairs, features, n_perm=n_perm, seed=seed)
            if len(models) >= 3:
                tables["asymmetry"] = ag.asymmetry(pairs, n_perm=n_perm, n_boot=n_boot, seed=seed)

        attempt("heterogeneity", heterogeneity)
        try:
            afinn = cov.read_afinn(fetch_data_file("afinn", facct_data))
            bnc = cov.read_bnc_frequency(fetch_data_file("bnc", facct_data))
        except ChecksumError:
            raise
        except (FetchError, InputError, OSError) as exc:
            result.notes.append(f"AFINN/BNC unavailable ({exc}); framing, frequency and identity skipped.")
            afinn = bnc = None

        def framing() -> None:
            slopes = cov.framing_slopes(vocab, afinn)
            if slopes.empty:
                raise AnalysisError("too few AFINN words among the candidates.")
            tables["framing"] = slopes
            contrast = cov.framing_contrasts(slopes)
            if len(contrast):
                tables["framing_contrast"] = contrast

        def frequency() -> None:
            slopes = cov.frequency_slopes(vocab, bnc, afinn)
            if slopes.empty:
                raise AnalysisError("too few words with both a BNC frequency and an AFINN value.")
            tables["frequency"] = slopes

        def identity() -> None:
            from rmvalues.analysis.identity import identity_ranks
            from rmvalues.analysis.ranks import lexicon_frame
            from rmvalues.lexicons import load_lexicon

            terms = lexicon_frame(load_lexicon(identity_lexicon))
            tables["identity"] = identity_ranks(vocab, terms, bnc,
                                                n_null=n_null, seed=seed)

        if afinn is not None:
            attempt("framing", framing)
            attempt("frequency", frequency)
            attempt("identity terms", identity)

    if elo:
        import pandas as pd

        human = hp.human_table(elo)
        parts = [hp.elo_runs(elo)] if released_elo else []
        if frame is not None and is_elo_run is not None and is_elo_run.any():
            parts.append(frame.loc[is_elo_run, ["model", "prompt_id", "candidate", "score"]])
        if parts:
            scored = pd.concat(parts, ignore_index=True)
            attempt("human preferences", lambda: tables.update(
                human=hp.human_agreement(scored, human), human_prompts=hp.prompt_agreement(scored),
                rank_gaps=hp.rank_gaps(scored, human)))
    if not tables:
        raise AnalysisError("nothing to compare: " + "; ".join(result.notes or ["no runs given"]))
    return result


def write_compare(result: CompareResult, out_dir: str | Path, **fields: Any) -> list[Path]:
    """Tables (Parquet + CSV), ``summary.txt`` and ``manifest.json`` into ``out_dir``."""
    from rmvalues.analysis.pipeline import write_tables

    return write_tables(out_dir, result.tables, result.summary_text(), "compare",
                        settings=result.settings, notes=result.notes,
                        descriptions={k: TABLES[k] for k in result.tables}, **fields)
