"""Linear mixed models that read like R's ``summary(lme)`` and ``anova(lme)`` (nlme).

The fit is statsmodels' ``MixedLM`` (REML, random intercept per group), whose estimates and fixed-
effect covariance equal nlme's. What statsmodels lacks, and this module adds, is nlme's inference:

* **denominator degrees of freedom** (Pinheiro & Bates 2000, §2.4.2; nlme's ``getFixDF``): a fixed-
  effect column that is constant within every group is estimated *between* groups and gets
  ``n_groups - (number of between columns, intercept included)``; every other column, and the
  intercept itself, gets the within-group df ``N - n_groups - (number of within columns)``.
  A term takes the df of the innermost stratum any of its columns belongs to.
* **sequential (type I) F tests**: with ``U`` the upper Cholesky factor of the inverse fixed-effect
  covariance (``U'U = V⁻¹``), ``c = U β`` splits the Wald statistic into one orthogonal piece per
  column in model order; a term's F is the mean of its columns' ``c²`` (nlme's ``anova.lme``).
  ``type="marginal"`` gives each term's Wald F adjusted for all others (``anova(..., type="m")``).
* **R's term order and names**: terms are ordered as R's ``terms()`` does (by degree, then as
  written; patsy would move numeric covariates last) and printed as R prints them (``baseLlama``).
* **boundary fits**: when the REML profile of the random-intercept variance falls from 0
  (:func:`reml_slope_at_boundary`), the optimum is σ²_b = 0, where statsmodels stops short or fails;
  the fit is then the closed-form one at 0 (:func:`reml_profile`, = ``nlme::gls``; nlme's ``lme``
  converges to it from inside), flagged ``boundary`` and named so in the summary.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from rmvalues.errors import AnalysisError, InputError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

#: The paper's model of Fig 1 (units from :func:`rmvalues.analysis.units.median_rank_units`).
PAPER_FORMULA = "median_rank ~ base * category * framing"


@dataclass
class MixedModelResult:
    """A fitted random-intercept model: nlme-style tables plus the fit's bookkeeping.

    ``fixed``: term, estimate, se, df, t, p (one row per fixed-effect column, R's names);
    ``anova``: term, num_df, den_df, F, p; ``variance``: group and residual variance and SD.
    """

    formula: str
    group: str
    fixed: pd.DataFrame
    anova: pd.DataFrame
    variance: pd.DataFrame
    n_obs: int
    n_groups: int
    loglik: float
    converged: bool
    anova_type: str = "sequential"
    levels: dict[str, list[str]] = field(default_factory=dict)
    boundary: bool = False

    def summary_text(self) -> str:
        """Fixed effects and F table as aligned text (like ``summary(lme)`` + ``anova(lme)``)."""
        lines = [f"Linear mixed model (REML): {self.formula} + (1 | {self.group})",
                 (f"  {self.n_obs} observations, {self.n_groups} groups; log-likelihood "
                 f"{self.loglik:.2f}; converged: {self.converged}")]
        if self.boundary:
            lines.append(f"  random-intercept variance at the boundary (0): the REML optimum has no "
                         f"between-{self.group} variance; fitted as the fixed-effects model at 0")
        if self.levels:
            lines.append("  levels (reference first): " + "; ".join(
                f"{k}: {' < '.join(map(str, v))}" for k, v in self.levels.items()))
        lines.append("Fixed effects:")
        lines.append(f"  {'term':<44}{'estimate':>10}{'SE':>9}{'df':>7}{'t':>9}{'p':>11}")
        for r in self.fixed.itertuples():
            lines.append(f"  {r.term:<44}{r.estimate:>10.3f}{r.se:>9.3f}{r.df:>7.0f}{r.t:>9.2f}"
                         f"{r.p:>11.3g}")
        lines.append(f"F tests ({self.anova_type}, nlme denominator df):")
        lines.append(f"  {'term':<44}{'numDF':>6}{'denDF':>7}{'F':>11}{'p':>11}")
        for r in self.anova.itertuples():
            lines.append(f"  {r.term:<44}{r.num_df:>6d}{r.den_df:>7d}{r.F:>11.2f}{r.p:>11.3g}")
        v = self.variance.set_index("component")
        lines.append(f"Random intercept SD {v.loc['group', 'sd']:.3f}; residual SD "
                     f"{v.loc['residual', 'sd']:.3f}")
        return "\n".join(lines)


def r_term_name(name: str) -> str:
    """patsy names in R's style: ``C(base, Treatment('Llama'))[T.Gemma]`` → ``baseGemma``,
    ``category[T.Communion]:framing[positive]`` → ``categoryCommunion:framingpositive``,
    ``C(base, Treatment('Llama'))`` (a term) → ``base``, ``Intercept`` → ``(Intercept)``."""
    import re

    if name == "Intercept":
        return "(Intercept)"
    # C(x, ...) with at most one level of nested parentheses (Treatment('Llama'), Sum) → x
    name = re.sub(r"C\(\s*([A-Za-z_][\w.]*)\s*(?:,(?:[^()]|\([^()]*\))*)?\)", r"\1", name)
    return re.sub(r"([A-Za-z_][\w.]*)\[(?:T\.)?([^\]]+)\]", r"\1\2", name)


def r_term_order(formula: str, term_names: list[str]) -> list[int]:
    """Positions of patsy's terms in R's order: by degree (interaction order), then as written.

    patsy groups terms by their numeric factors (``y ~ size_b + base`` puts ``size_b`` last), R's
    ``terms()`` sorts by degree only, keeping the written order (``size_b``, ``base``); sequential F
    tests depend on it.
    """
    import patsy

    written = patsy.ModelDesc.from_formula(formula).rhs_termlist
    degree = {t.name(): len(t.factors) for t in written}
    first = {t.name(): i for i, t in enumerate(written)}
    return sorted(range(len(term_names)),
                  key=lambda i: (degree.get(term_names[i], 0), first.get(term_names[i], i)))


def reml_profile(
    exog: np.ndarray, endog: np.ndarray, codes: np.ndarray, gamma: float
) -> tuple[float, np.ndarray, np.ndarray, float]:
    """REML log-likelihood of a random-intercept model at variance ratio ``gamma`` = σ²_b / σ²,
    with β and σ² profiled out: (loglik, β, cov(β), σ²), nlme's and statsmodels' REML constant.

    ``V = σ² (I + γ Z Z')`` is block-diagonal; each group's inverse is ``I - γ/(1 + γ n_g) 1 1'``, so
    nothing of size N × N is formed. At ``gamma = 0`` this is ``nlme::gls(method = "REML")``.
    """
    import numpy as np

    n, p = exog.shape
    n_g = np.bincount(codes).astype(float)
    w = gamma / (1 + gamma * n_g)
    sx = np.zeros((len(n_g), p))
    np.add.at(sx, codes, exog)
    sy = np.bincount(codes, weights=endog, minlength=len(n_g))
    info = exog.T @ exog - (sx * w[:, None]).T @ sx
    beta = np.linalg.solve(info, exog.T @ endog - sx.T @ (w * sy))
    r = endog - exog @ beta
    sr = np.bincount(codes, weights=r, minlength=len(n_g))
    q = float(r @ r - np.sum(w * sr**2))
    sigma2 = q / (n - p)
    logdet_v = float(np.sum(np.log1p(gamma * n_g)))
    loglik = -0.5 * ((n - p) * np.log(2 * np.pi * sigma2) + (n - p) + logdet_v
                     + np.linalg.slogdet(info)[1])
    return float(loglik), beta, sigma2 * np.linalg.inv(info), sigma2


def reml_slope_at_boundary(exog: np.ndarray, endog: np.ndarray, codes: np.ndarray) -> float:
    """d loglik / dγ of :func:`reml_profile` at γ = 0 (closed form). ``<= 0``: the REML optimum
    of the random-intercept variance is the boundary 0 (the profile falls as soon as it leaves 0).
    """
    import numpy as np

    n, p = exog.shape
    xtx = exog.T @ exog
    beta = np.linalg.solve(xtx, exog.T @ endog)
    r = endog - exog @ beta
    n_groups = int(codes.max()) + 1
    sx = np.zeros((n_groups, p))
    np.add.at(sx, codes, exog)
    sr = np.bincount(codes, weights=r, minlength=n_groups)
    trace = float(np.trace(np.linalg.solve(xtx, sx.T @ sx)))
    return float(-0.5 * (n - trace - (n - p) * np.sum(sr**2) / float(r @ r)))


def nlme_denominator_df(
    exog: np.ndarray, groups: np.ndarray, term_columns: list[list[int]]
) -> tuple[np.ndarray, np.ndarray]:
    """nlme's denominator df for each column and each term (one grouping level).

    A column is "between" when constant within every group, else "within"; the intercept (constant
    everywhere) is counted as a between-group parameter but reported with the within df.
    """
    import numpy as np

    n, p = exog.shape
    codes, _ = _group_codes(groups)
    n_groups = int(codes.max()) + 1
    constant = np.all(np.isclose(exog, exog[0]), axis=0)
    within = np.zeros(p, dtype=bool)
    for j in range(p):
        if constant[j]:
            continue
        col = exog[:, j]
        lo = np.full(n_groups, np.inf)
        hi = np.full(n_groups, -np.inf)
        np.minimum.at(lo, codes, col)
        np.maximum.at(hi, codes, col)
        within[j] = bool(np.any(~np.isclose(lo, hi)))
    has_intercept = bool(constant.any())
    n_between = int((~within & ~constant).sum()) + int(has_intercept)
    n_within = int(within.sum())
    df_between = n_groups - n_between
    df_within = n - n_groups - n_within
    col_df = np.where(within | constant, df_within, df_between).astype(int)
    term_df = np.array([df_within if any(within[c] or constant[c] for c in cols) else df_between
                        for cols in term_columns], dtype=int)
    return col_df, term_df


def _group_codes(groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    import numpy as np

    uniques, codes = np.unique(np.asarray(groups).astype(str), return_inverse=True)
    return codes, uniques


def wald_f_tests(
    beta: np.ndarray,
    cov: np.ndarray,
    term_columns: list[list[int]],
    kind: Literal["sequential", "marginal"] = "sequential",
) -> np.ndarray:
    """Wald F per term: sequential (Cholesky of ``cov⁻¹``, model order) or marginal."""
    import numpy as np

    if kind == "sequential":
        upper = np.linalg.cholesky(np.linalg.inv(cov)).T
        c = upper @ beta
        return np.array([float(np.sum(c[cols] ** 2)) / len(cols) for cols in term_columns])
    if kind == "marginal":
        out = []
        for cols in term_columns:
            b = beta[cols]
            out.append(float(b @ np.linalg.solve(cov[np.ix_(cols, cols)], b)) / len(cols))
        return np.array(out)
    raise InputError(f"F test type {kind!r}: choose 'sequential' or 'marginal'.")


def reference_sequential_f(
    exog: np.ndarray, endog: np.ndarray, cov_obs: np.ndarray, term_columns: list[list[int]]
) -> np.ndarray:
    """Sequential F by definition: for each term, the GLS fit of the terms up to it (observation
    covariance ``cov_obs`` fixed) and the Wald F of its last block. Slow; tests hold
    :func:`wald_f_tests` to it.
    """
    import numpy as np

    weight = np.linalg.inv(cov_obs)
    out = []
    for j, cols in enumerate(term_columns):
        upto = [c for block in term_columns[: j + 1] for c in block]
        x = exog[:, upto]
        info = x.T @ weight @ x
        beta = np.linalg.solve(info, x.T @ weight @ endog)
        cov = np.linalg.inv(info)
        last = list(range(len(upto) - len(cols), len(upto)))
        b = beta[last]
        out.append(float(b @ np.linalg.solve(cov[np.ix_(last, last)], b)) / len(cols))
    return np.array(out)


def fit_mixed_model(
    units: pd.DataFrame,
    formula: str = PAPER_FORMULA,
    group: str = "model",
    *,
    anova_type: Literal["sequential", "marginal"] = "sequential",
    reml: bool = True,
) -> MixedModelResult:
    """Fit ``formula`` with a random intercept per ``group`` (REML); nlme-style t and F tables.

    Factor levels follow the units' categorical order (reference level first); string columns are
    ordered alphabetically, as R does.
    """
    import re

    import numpy as np
    import pandas as pd
    import statsmodels.formula.api as smf
    from scipy import stats

    if group not in units.columns:
        raise InputError(f"units have no column {group!r} to group the random intercept by.")
    data = units.reset_index(drop=True).copy()
    n_groups = data[group].nunique()
    if n_groups < 2:
        raise AnalysisError(f"a mixed model needs at least two {group}s; the data have {n_groups}.")
    used = [c for c in dict.fromkeys(re.findall(r"[A-Za-z_][\w.]*", formula)) if c in data.columns]
    levels = {c: [str(x) for x in data[c].cat.categories] for c in used
              if isinstance(data[c].dtype, pd.CategoricalDtype)}
    missing = data[used].isna().any(axis=1)
    if missing.any():
        raise AnalysisError(
            f"{int(missing.sum())} of {len(data)} units have a missing value in {used} (e.g. no "
            "framing for prompt ids outside the prompt set); fill or drop them."
        )
    try:
        model = smf.mixedlm(formula, data, groups=data[group])
    except Exception as exc:  # patsy raises several types for unknown columns or bad syntax
        raise InputError(f"cannot build {formula!r} from the units ({exc}); columns: "
                         f"{', '.join(map(str, data.columns))}.") from exc
    info = model.data.design_info if hasattr(model.data, "design_info") else model.data.orig_exog.design_info
    patsy_terms = [(term.name(), list(range(sl.start, sl.stop))) for term, sl in info.term_slices.items()]
    order = r_term_order(formula, [name for name, _ in patsy_terms])
    term_names = [patsy_terms[i][0] for i in order]
    perm = [c for i in order for c in patsy_terms[i][1]]  # patsy column → R column order
    term_columns, start = [], 0
    for i in order:
        term_columns.append(list(range(start, start + len(patsy_terms[i][1]))))
        start += len(patsy_terms[i][1])
    names = [model.exog_names[c] for c in perm]
    exog = np.asarray(model.exog, dtype=float)[:, perm]
    endog = np.asarray(model.endog, dtype=float)
    rank = np.linalg.matrix_rank(exog)
    if rank < exog.shape[1]:
        raise AnalysisError(
            f"the design of {formula!r} has {exog.shape[1]} columns but rank {rank}: some columns "
            f"are linear combinations of others ({', '.join(map(r_term_name, names))}); drop a term "
            "or a level with no data.")
    codes, _ = _group_codes(data[group].to_numpy())
    col_df, term_df = nlme_denominator_df(exog, data[group].to_numpy(), term_columns)
    if (col_df <= 0).any():
        between = [r_term_name(n) for n, d in zip(names, col_df) if d <= 0]
        raise AnalysisError(
            f"{between} vary only between {group}s and leave no between-{group} degrees of freedom "
            f"({n_groups} {group}s): each level needs more than one {group} (e.g. at least two "
            "models per base family)."
        )
    k = len(names)
    try:
        # The REML profile falling at σ²_b = 0 means the optimum is on the boundary, where
        # statsmodels' optimiser stops short (log-likelihood below nlme's) or fails outright.
        # (The check is REML's; an ML fit is left to statsmodels.)
        boundary = reml and reml_slope_at_boundary(exog, endog, codes) <= 1e-9 * len(endog)
        if not boundary:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fit = model.fit(reml=reml)
            beta = np.asarray(fit.fe_params, dtype=float)[perm]
            cov = np.asarray(fit.cov_params(), dtype=float)[:k, :k][np.ix_(perm, perm)]
            group_var, scale, loglik = float(np.asarray(fit.cov_re)[0, 0]), float(fit.scale), float(fit.llf)
            converged = bool(getattr(fit, "converged", True))
            boundary = reml and reml_profile(exog, endog, codes, 0.0)[0] >= loglik
        if boundary:
            loglik, beta, cov, scale = reml_profile(exog, endog, codes, 0.0)
            group_var, converged = 0.0, True
    except np.linalg.LinAlgError as exc:
        raise AnalysisError(f"fitting {formula!r} failed in linear algebra ({exc}): the design is "
                            f"degenerate or nearly so; simplify the formula.") from None
    if not np.all(np.isfinite(cov)):
        raise AnalysisError(f"the fixed-effect covariance of {formula!r} is not finite: the design is "
                            "degenerate (a factor level with no data, or a term confounded with "
                            f"{group}).")
    se = np.sqrt(np.diag(cov))
    t = beta / se
    fixed = pd.DataFrame({
        "term": [r_term_name(n) for n in names],
        "estimate": beta, "se": se, "df": col_df, "t": t,
        "p": 2 * stats.t.sf(np.abs(t), col_df),
    })
    fvals = wald_f_tests(beta, cov, term_columns, anova_type)
    num_df = np.array([len(c) for c in term_columns])
    anova = pd.DataFrame({
        "term": [r_term_name(n) for n in term_names],
        "num_df": num_df, "den_df": term_df, "F": fvals,
        "p": stats.f.sf(fvals, num_df, term_df),
    })
    variance = pd.DataFrame({
        "component": ["group", "residual"],
        "variance": [group_var, scale],
        "sd": [np.sqrt(group_var), np.sqrt(scale)],
    })
    return MixedModelResult(
        formula=formula, group=group, fixed=fixed, anova=anova, variance=variance,
        n_obs=int(model.nobs), n_groups=int(n_groups), loglik=loglik, converged=converged,
        anova_type=anova_type, levels=levels, boundary=bool(boundary),
    )
