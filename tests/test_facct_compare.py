"""FAccT 2025 analyses: importer, pinned fetch, agreement, covariates, human preferences, identity
terms and the `compare` command, on tiny synthetic runs and the shared EloEverything files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import kendalltau, spearmanr

from rmvalues.analysis import agreement as ag
from rmvalues.analysis import covariates as cov
from rmvalues.analysis import human_preference as hp
from rmvalues.analysis.distributions import reference_moments, score_moments
from rmvalues.analysis.facct_data import (
    ReleasedFile,
    fetch_released,
    git_blob_sha1,
    import_facct_scores,
    read_facct_scores,
    recorded_sha256,
    released_files,
    released_scores,
)
from rmvalues.analysis.identity import identity_ranks
from rmvalues.errors import ChecksumError, InputError
from rmvalues.store.manifest import manifest_path, read_manifest, read_results
from rmvalues.store.schema import SCORE_COLUMNS

HEADER = "token_id,token_name,token_decoded,greatest,best,worst\n"


@pytest.fixture
def facct_dir(shared_dir) -> Path:
    return shared_dir / "facct-data"


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("RMVALUES_CACHE", str(cache))
    return cache


def _write_csv(path: Path, rows: list[tuple]) -> Path:
    lines = [HEADER] + [",".join("" if v is None else str(v) for v in row) + "\n" for row in rows]
    path.write_text("".join(lines), encoding="utf-8")
    return path


# --- importer ------------------------------------------------------------------------------------

def test_import_synthetic_csv_as_score_run(tmp_path):
    csv = _write_csv(tmp_path / "grm-gemma2-2b.csv", [
        (0, "Ġlove", '" love"', 1.5, 2.0, -1.0),
        (1, "hate", "hate", -2.0, -2.5, None),  # an unscored cell: dropped and counted
        (2, "null", "null", 0.25, 0.5, 0.75),   # a word that pandas would read as missing
    ])
    runs = import_facct_scores(tmp_path / "runs", sources={"grm-gemma2-2b": csv})
    table = read_results(runs[0])
    assert list(table.columns) == list(SCORE_COLUMNS)
    assert set(table["prompt_id"]) == {"greatest_ever_one", "best_ever_one", "worst_ever_one"}
    assert len(table) == 8
    assert table.loc[table["candidate"] == "null", "score"].tolist() == [0.25, 0.5, 0.75]
    love = table[(table["candidate"] == " love") & (table["prompt_id"] == "best_ever_one")]
    assert love["score"].item() == 2.0 and love["token_id"].item() == 0
    assert love["normalized"].item() == "love"
    manifest = read_manifest(manifest_path(runs[0]))
    assert manifest.kind == "rm-scores"
    assert manifest.fields["prompt_set"] == "facct-3"
    assert manifest.fields["dropped_missing"] == {"worst": 1}
    assert manifest.fields["source"]["git_sha1"] == git_blob_sha1(csv)
    assert manifest.fields["hub_id"] == "Ray2333/GRM-gemma2-2B-rewardmodel-ft"


def test_a_release_csv_reads_like_its_imported_run(tmp_path):
    from rmvalues.analysis.compare import read_runs

    csv = _write_csv(tmp_path / "Ray2333--GRM-gemma2-2B-rewardmodel-ft.csv",
                     [(0, "a", "a", 1.0, 2.0, 3.0), (1, "b", " b", 4.0, 5.0, None)])
    run = import_facct_scores(tmp_path / "runs", sources={"grm-gemma2-2b": csv})[0]
    direct, imported = read_runs([csv]), read_runs([run])
    assert set(direct["model"]) == {"grm-gemma2-2b"}
    key = ["prompt_id", "token_id"]
    pd.testing.assert_frame_equal(direct.sort_values(key).reset_index(drop=True),
                                  imported.sort_values(key).reset_index(drop=True), check_dtype=False)
    manifest = read_manifest(manifest_path(run))
    assert manifest.fields["candidates"]["count"] == 2 and len(manifest.fields["candidates"]["hash"]) == 16


def test_import_refuses_other_columns(tmp_path):
    bad = tmp_path / "x.csv"
    bad.write_text("token_id,token_decoded,greatest\n0,a,1\n", encoding="utf-8")
    with pytest.raises(InputError, match="expected exactly"):
        read_facct_scores(bad, "x")


def test_registry_pins_every_release_file():
    scores = released_scores()
    assert len(scores) == 10
    from rmvalues.models.registry import known_models

    assert set(scores) <= set(known_models())
    for spec in [*scores.values(), *released_files().values()]:
        assert len(spec.git_sha1) == 40


# --- pinned fetch --------------------------------------------------------------------------------

def test_shared_files_match_the_pinned_tree(facct_dir, tmp_cache):
    for spec in released_files().values():
        path = fetch_released(spec, facct_dir)
        assert git_blob_sha1(path) == spec.git_sha1


def test_first_download_records_sha256_then_checks_it(tmp_path, tmp_cache):
    local = tmp_path / "copy" / "reward_model_scores"
    local.mkdir(parents=True)
    csv = _write_csv(local / "org--rm.csv", [(0, "a", "a", 1.0, 2.0, 3.0)])
    spec = ReleasedFile(name="rm", path="data/reward_model_scores/org--rm.csv",
                        git_sha1=git_blob_sha1(csv))
    got = fetch_released(spec, tmp_path / "copy")
    import hashlib

    digest = hashlib.sha256(csv.read_bytes()).hexdigest()
    assert recorded_sha256()[spec.path] == digest
    # A later copy with other content but a forged record is refused by the git pin first.
    got.unlink()
    csv.write_text(HEADER + "0,a,a,9,9,9\n", encoding="utf-8")
    with pytest.raises(ChecksumError, match="git blob id"):
        fetch_released(spec, tmp_path / "copy")
    assert not got.exists()


# --- distributions -------------------------------------------------------------------------------

def _runs(models: dict[str, np.ndarray], words: list[str], prompts=("greatest_ever_one",)) -> pd.DataFrame:
    rows = []
    for model, scores in models.items():
        for p_i, prompt in enumerate(prompts):
            for i, w in enumerate(words):
                rows.append((model, prompt, "token", i, w, w.strip().lower(), float(scores[i] + p_i)))
    return pd.DataFrame(rows, columns=list(SCORE_COLUMNS))


def test_moments_equal_their_definitions():
    rng = np.random.default_rng(0)
    x = rng.gamma(2.0, size=50)
    runs = _runs({"m": x}, [f"w{i}" for i in range(50)])
    row = score_moments(runs).iloc[0]
    mean, var, sk, ku = reference_moments(list(x))
    assert (row["mean"], row["variance"], row["skewness"], row["kurtosis"]) == pytest.approx(
        (mean, var, sk, ku))


# --- agreement -----------------------------------------------------------------------------------

def test_shared_vocabulary_join_and_duplicate_policy():
    a = _runs({"a": np.array([1.0, 2.0, 3.0, 4.0])}, ["x", "y", "y", "z"])
    b = _runs({"b": np.array([4.0, 3.0, 2.0])}, ["x", "y", "w"])
    dropped = ag.shared_vocabulary(pd.concat([a, b]))
    assert dropped.index.get_level_values("candidate").tolist() == ["x"]
    assert dropped.attrs["duplicates"] == ["y"]
    mean = ag.shared_vocabulary(pd.concat([a, b]), duplicates="mean")
    assert mean.loc[("greatest_ever_one", "y"), "a"] == 2.5
    with pytest.raises(InputError):
        ag.shared_vocabulary(a, duplicates="first")  # type: ignore[arg-type]
    # A run with an extra prompt is compared on the prompts both share.
    extra = _runs({"b": np.array([4.0, 3.0, 2.0])}, ["x", "y", "w"], prompts=("greatest_ever_one", "other"))
    both = ag.shared_vocabulary(pd.concat([a, extra]))
    assert set(both.index.get_level_values("prompt_id")) == {"greatest_ever_one"}


def test_pairwise_metrics_equal_scipy_and_definitions():
    rng = np.random.default_rng(1)
    words = [f"w{i}" for i in range(60)]
    x = rng.normal(size=60)
    y = x + rng.normal(scale=0.8, size=60)
    runs = _runs({"a": x, "b": y, "c": rng.normal(size=60)}, words)
    pairs = ag.pairwise_agreement(ag.shared_vocabulary(runs), k=10)

    def get(metric, segment, m1="a", m2="b"):
        sel = pairs[(pairs.metric == metric) & (pairs.segment == segment)
                    & (pairs.model_a == m1) & (pairs.model_b == m2)]
        return sel["value"].item()

    assert get("kendall_tau_b", "all") == pytest.approx(kendalltau(x, y).statistic)
    assert get("spearman_rho", "all") == pytest.approx(spearmanr(x, y).statistic)
    top = np.union1d(np.argsort(-x)[:10], np.argsort(-y)[:10])
    assert get("kendall_tau_b", "top") == pytest.approx(kendalltau(x[top], y[top]).statistic)
    footrule = 1 - np.abs(pd.Series(x).rank() - pd.Series(y).rank()).sum() / (60 * 60 // 2)
    assert get("footrule", "all") == pytest.approx(footrule)
    assert get("rbo_ext", "top", "a", "a") == pytest.approx(1.0)
    assert get("ndcg", "top", "a", "a") == pytest.approx(1.0)
    assert get("rbo_ext", "top") == pytest.approx(get("rbo_ext", "top", "b", "a"))
    # A reversed ranking is maximally far on the footrule.
    assert ag.footrule_similarity(np.arange(6.0), -np.arange(6.0)) == pytest.approx(0.0)


def test_ndcg_by_hand():
    # Gains from the reference's ranks rescaled to [0, 1]: c=1, b=0.5, a=0. The ranker puts a, b first.
    reference, ranker = np.array([1.0, 2.0, 3.0]), np.array([3.0, 2.0, 1.0])
    dcg = 0 / np.log2(2) + 0.5 / np.log2(3)
    idcg = 1 / np.log2(2) + 0.5 / np.log2(3)
    assert ag.ndcg_at_k(reference, ranker, 2) == pytest.approx(dcg / idcg)
    assert ag.ndcg_at_k(reference, reference, 3) == pytest.approx(1.0)


def test_rsa_permutation_detects_planted_structure():
    n = 8
    family = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    feature = (family[:, None] == family[None, :]).astype(float)
    sim = 0.2 + 0.6 * feature + np.random.default_rng(0).normal(scale=0.02, size=(n, n))
    rho, p = ag.rsa(sim, feature, n_perm=1999, seed=0)
    assert rho > 0.8
    # Only relabellings that keep the two groups of four apart are as extreme:
    # 4! * 4! * 2 of 8! = 0.0286 (Monte Carlo error ~0.004 at 1,999 draws).
    assert p == pytest.approx(1152 / 40320, abs=0.015)
    rho0, p0 = ag.rsa(np.random.default_rng(1).normal(size=(n, n)), feature, n_perm=199)
    assert p0 > 0.05 or abs(rho0) < 0.5


def test_rsa_fast_null_equals_reference():
    rng = np.random.default_rng(5)
    n = 7
    sim = rng.normal(size=(n, n))
    sizes = rng.integers(1, 30, n).astype(float)
    feature = 1 / (1 + np.abs(sizes[:, None] - sizes[None, :]))
    assert ag.rsa(sim, feature, n_perm=300, seed=2) == pytest.approx(
        ag.reference_rsa(sim, feature, n_perm=300, seed=2))


def test_asymmetry_sign_and_test():
    rows = []
    models = ["a", "b", "c", "d"]
    for i, m in enumerate(models):
        for n in models[i + 1:]:
            for seg, value in (("top", 0.8), ("bottom", 0.2)):
                rows.append(("p", seg, "rbo_ext", m, n, value + 0.01 * i))
    pairs = pd.DataFrame(rows, columns=["prompt_id", "segment", "metric", "model_a", "model_b", "value"])
    out = ag.asymmetry(pairs, metrics=["rbo_ext"], n_perm=999, n_boot=200).iloc[0]
    assert out["top_minus_bottom"] == pytest.approx(0.6)
    assert out["ci_low"] == pytest.approx(0.6) and out["ci_high"] == pytest.approx(0.6)
    assert out["p_perm"] < 0.05  # all 6 pair differences positive: 2/64 sign patterns as extreme


# --- covariates ----------------------------------------------------------------------------------

def test_bnc_reader_sums_word_forms(facct_dir):
    freq = cov.read_bnc_frequency(facct_dir / "corpora" / "1_1_all_alpha.txt").set_index("word")
    # lie: noun form 'lie' 9 + verb lie(/lay) form 'lie' 41 + verb lie(/lied) form 'lie' 2
    assert freq.loc["lie", "freq_per_million"] == 52
    assert freq.loc["lid", "freq_per_million"] == 11


def test_framing_and_frequency_slopes_equal_ols():
    afinn = pd.DataFrame({"word": [f"w{i}" for i in range(40)],
                          "sentiment": [(i % 5) + 1 if i < 20 else -((i % 5) + 1) for i in range(40)]})
    rng = np.random.default_rng(2)
    score = np.where(afinn.sentiment > 0, 0.5, 2.0) * afinn.sentiment + rng.normal(0, 0.1, 40)
    runs = _runs({"m": score.to_numpy()}, afinn.word.tolist())
    slopes = cov.framing_slopes(runs, afinn).set_index("valence")
    pos = afinn.sentiment > 0
    assert slopes.loc["positive", "slope"] == pytest.approx(np.polyfit(afinn.sentiment[pos], score[pos], 1)[0])
    assert slopes.loc["negative", "slope"] == pytest.approx(np.polyfit(afinn.sentiment[~pos], score[~pos], 1)[0])
    from scipy.stats import linregress
    from scipy.stats import t as student_t

    fit = linregress(afinn.sentiment[~pos], score[~pos])
    half = student_t.ppf(0.975, 18) * fit.stderr
    assert (slopes.loc["negative", "ci_low"], slopes.loc["negative", "ci_high"]) == pytest.approx(
        (fit.slope - half, fit.slope + half))
    freq = pd.DataFrame({"word": afinn.word, "freq_per_million": np.exp(rng.normal(size=40))})
    out = cov.frequency_slopes(runs, freq, afinn, min_words=5).iloc[0]
    design = np.column_stack([np.ones(40), np.log(freq.freq_per_million), afinn.sentiment])
    beta = np.linalg.lstsq(design, score, rcond=None)[0]
    assert out["slope"] == pytest.approx(beta[1])


def test_word_join_averages_encodings():
    runs = _runs({"m": np.array([1.0, 3.0, 10.0])}, ["good", " Good", "bad"])
    words = cov.word_scores(runs).set_index("word")
    assert words.loc["good", "score"] == 2.0 and words.loc["good", "n_encodings"] == 2


# --- human preferences (shared EloEverything files) -------------------------------------------

def test_human_tau_equals_scipy_on_raw_columns(facct_dir, tmp_cache):
    elo = hp.load_elo(facct_dir)
    assert len(elo) == 3 and all(len(f) == 7530 for f in elo.values())
    table = hp.human_agreement(hp.elo_runs(elo), hp.human_table(elo))
    assert len(table) == 30
    from rmvalues.models.registry import find_model

    for name, raw in elo.items():
        for column in [c for c in raw.columns if c not in hp.ELO_COLUMNS]:
            key = find_model(column).key
            got = table[(table.model == key) & (table.prompt_id == name)].iloc[0]
            want = kendalltau(raw[column], raw["elo_score"])
            assert got["kendall_tau_b"] == pytest.approx(want.statistic, abs=1e-12)
            assert got["n"] == 7530


def test_prompt_agreement_and_rank_gaps(facct_dir, tmp_cache):
    elo = hp.load_elo(facct_dir)
    runs = hp.elo_runs(elo)
    across = hp.prompt_agreement(runs)
    assert len(across) == 30  # ten RMs x three prompt pairs
    row = across.iloc[0]
    a, b = elo[row.prompt_a], elo[row.prompt_b]
    column = next(c for c in a.columns if c not in hp.ELO_COLUMNS and
                  hp._model_key(c) == row.model)
    merged = a[["name", column]].merge(b[["name", column]], on="name")
    assert row.kendall_tau_b == pytest.approx(kendalltau(merged[f"{column}_x"], merged[f"{column}_y"]).statistic)
    gaps = hp.rank_gaps(runs, hp.human_table(elo), n_show=5)
    first = next(iter(elo.values()))
    one = gaps[gaps.prompt_id == next(iter(elo))]
    top = one[one.direction == "humans rank higher"].iloc[0]
    ranks = first.set_index("name").drop(columns=["elo_rank", "elo_matches"]).rank(ascending=False)
    human_rank = ranks.loc[top.candidate, "elo_score"]
    model_rank = ranks.drop(columns="elo_score").loc[top.candidate].median()
    assert (top.human_rank, top.model_rank) == pytest.approx((human_rank, model_rank))
    assert top.gap == ranks.drop(columns="elo_score").median(axis=1).sub(ranks["elo_score"]).max()


def test_elo_candidate_source(facct_dir, monkeypatch, tmp_cache):
    monkeypatch.setenv("RMVALUES_FACCT_DATA", str(facct_dir))
    from rmvalues.engines.candidates import resolve_candidates

    cands = resolve_candidates("elo", tokenizer=None)
    assert cands.kind == "text" and len(cands) == 7530 and cands.texts[0] == "Universe"


def test_user_elo_run_joins_the_human_analysis(facct_dir, tmp_cache):
    elo = hp.load_elo(facct_dir)
    human = hp.human_table(elo)
    user = pd.DataFrame({"model": "mine", "prompt_id": "greatest_ever_one",
                         "candidate": human["candidate"], "score": -human["elo_score"].to_numpy()})
    row = hp.human_agreement(user, human).iloc[0]
    assert row["kendall_tau_b"] == pytest.approx(-1.0) and row["n_unmatched"] == 0


# --- identity terms ------------------------------------------------------------------------------

def test_identity_term_planted_at_the_top_is_flagged():
    rng = np.random.default_rng(4)
    words = [f"word{chr(97 + i % 26)}{chr(97 + i // 26)}" for i in range(400)] + ["woman", "man"]
    scores = rng.normal(size=len(words))
    scores[-2] = 100.0  # 'woman' at the very top
    runs = _runs({"m": scores}, words)
    freq = pd.DataFrame({"word": words, "freq_per_million": np.exp(rng.normal(size=len(words)))})
    terms = pd.DataFrame({"term": ["woman", "man"], "category": ["gender", "gender"]})
    out = identity_ranks(runs, terms, freq, n_null=999, seed=0).set_index("term")
    assert out.loc["woman", "percentile"] == 1.0 and out.loc["woman", "rank"] == 1.0
    assert out.loc["man", "rank"] == 1 + (scores[:-2] > scores[-1]).sum() + (scores[-2] > scores[-1])
    assert out.loc["woman", "flag"] == "high" and bool(out.loc["woman", "matched"])
    assert out.loc["man", "flag"] == ""


def test_identity_lexicon_is_builtin_and_cited():
    from rmvalues.lexicons import load_lexicon

    lexicon = load_lexicon("identity-terms")
    assert {"gender", "religion", "disability", "nationality", "ethnicity", "sexuality"} <= set(
        lexicon.categories)
    assert "Dixon" in lexicon.info.citation


# --- compare end to end --------------------------------------------------------------------------

@pytest.fixture
def tiny_runs(tmp_path, facct_dir) -> list[Path]:
    afinn = cov.read_afinn(facct_dir / "corpora" / "AFINN-111.txt")
    words = afinn.word[afinn.word.str.fullmatch("[a-z]+")].tolist()[:120] + [
        "the", "house", "water", "woman", "man", "muslim", "blind"]
    sentiment = dict(zip(afinn.word, afinn.sentiment, strict=True))
    rng = np.random.default_rng(0)
    sources = {}
    for model, noise in (("grm-gemma2-2b", 0.5), ("grm-llama3.2-3b", 1.0),
                         ("armorm-llama3-8b", 2.0), ("urm-llama3.1-8b", 3.0)):
        rows = []
        for i, w in enumerate(words):
            g = sentiment.get(w, 0) + rng.normal(0, noise)
            rows.append((i, w, w, g, g + rng.normal(0, 0.3), -g))
        sources[model] = _write_csv(tmp_path / f"{model}.csv", rows)
    return import_facct_scores(tmp_path / "runs", sources=sources)


def test_compare_command_writes_tables_manifest_and_report(tiny_runs, facct_dir, tmp_path, tmp_cache):
    from rmvalues.cli import main

    out = tmp_path / "cmp"
    code = main(["compare", *map(str, tiny_runs), "--out", str(out), "--facct-data", str(facct_dir),
                 "--resamples", "99", "--boot", "50", "--null-draws", "100", "--k", "20"])
    assert code == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == "compare"
    assert {"moments", "agreement", "mds", "rsa", "asymmetry", "framing", "frequency", "human",
            "human_prompts", "rank_gaps", "identity"} <= set(manifest["fields"]["tables"])
    for name in manifest["fields"]["tables"]:
        assert (out / f"{name}.parquet").exists() and (out / f"{name}.csv").exists()
    human = pd.read_parquet(out / "human.parquet")
    assert set(human["model"]) >= {"grm-gemma2-2b", "qrm-gemma2-27b"}  # the paper's ten via Elo
    html = (out / "report" / "report.html").read_text()
    assert 'id="facct"' in html and "FAccT Fig. 2a" in html and "data:image/png;base64" in html
    assert (out / "report" / "figures" / "facct_mds.png").exists()
    assert "<td>grm-gemma2-2b.parquet</td>" in html  # the input runs' provenance
    assert "identity-terms" in html and "Dixon" in html  # the lexicon, with its citation


def test_compare_bad_input_is_a_clean_error(tmp_path, tiny_runs, capsys):
    from rmvalues.cli import main

    code = main(["compare", str(tiny_runs[0]), str(tiny_runs[0]), "--out", str(tmp_path / "o")])
    assert code != 0
    assert "given twice" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_import_facct_refuses_a_copy_that_is_not_the_pinned_file(tmp_path, tmp_cache, capsys):
    from rmvalues.cli import main

    copy = tmp_path / "data" / "reward_model_scores"
    copy.mkdir(parents=True)
    _write_csv(copy / "Ray2333--GRM-gemma2-2B-rewardmodel-ft.csv", [(0, "a", "a", 1, 2, 3)])
    code = main(["import-facct", "--out", str(tmp_path / "runs"), "--model", "grm-gemma2-2b",
                 "--facct-data", str(tmp_path)])
    assert code != 0
    assert "git blob id" in capsys.readouterr().err
    assert not list((tmp_path / "runs").glob("*.parquet")) if (tmp_path / "runs").exists() else True


def test_score_elo_candidates_with_a_tiny_rm_joins_compare(facct_dir, tmp_path, monkeypatch):
    """`score --candidates elo` on any RM gives a run that `compare` places beside the ten."""
    monkeypatch.setenv("RMVALUES_FACCT_DATA", str(facct_dir))
    from _engine_models import tiny_rm
    from rmvalues.analysis.compare import compare
    from rmvalues.api import score

    result = score(tiny_rm("llama"), {"greatest_ever_one": "What, in one word, is the greatest thing ever?"},
                   "elo", tmp_path / "elo-run", batch_size=256)
    run = read_results(result.path)
    assert len(run) == 7530 and run["candidate_kind"].eq("text").all()
    out = compare([result.path], facct_data=facct_dir, n_perm=9, n_boot=9, n_null=9)
    human = out.tables["human"]
    mine = human[human["model"] == run["model"].iloc[0]].iloc[0]
    elo = hp.load_elo(facct_dir)
    raw = next(iter(elo.values())).set_index("name")["elo_score"]
    scores = run.set_index("candidate")["score"]
    assert mine["kendall_tau_b"] == pytest.approx(
        kendalltau(scores.to_numpy(), raw.loc[scores.index].to_numpy()).statistic)
    assert len(human) == 31  # the paper's ten under three prompts, and this run
    assert "moments" not in out.tables  # an Elo run is not a vocabulary run
