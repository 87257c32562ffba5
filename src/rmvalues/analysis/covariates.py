"""Scores against word-level covariates: sentiment (framing) and corpus frequency (FAccT 2025,
Fig 3, A3, A4).

Word join: a candidate counts as word ``w`` when its ``normalized`` form (ASCII only, stripped,
lower-case) is ``w``; the encodings of one word (" good", "good", "Good") are averaged, so each word
is one observation per model x prompt. The authors joined ``tolower(token_decoded)`` verbatim, so a
token with a leading space never matched; here it does.

* Framing: OLS ``score ~ sentiment`` per model x prompt, separately over positive (AFINN > 0) and
  negative (AFINN < 0) words; slope, SE and t-based 95% CI. :func:`framing_contrasts` turns the
  claim "negative words are penalised more under *worst* than positive ones are rewarded under
  *best*" into a difference of slopes with a CI.
* Frequency: OLS ``score ~ log(freq) + sentiment`` per model x prompt over the words with both a
  BNC frequency and an AFINN value (the authors' sample); the log-frequency slope with its CI.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rmvalues.errors import InputError

if TYPE_CHECKING:
    import pandas as pd


def read_afinn(path: str | Path) -> pd.DataFrame:
    """AFINN-111 (word TAB integer -5..+5) as ``word, sentiment``."""
    import pandas as pd

    rows = []
    for i, line in enumerate(Path(path).read_text("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        word, sep, value = line.rpartition("\t")
        try:
            rows.append((word.strip().lower(), int(value)))
        except ValueError:
            raise InputError(f"{path}:{i}: expected 'word<TAB>integer', got {line!r}.") from None
        if not sep:
            raise InputError(f"{path}:{i}: no TAB in {line!r}.")
    return pd.DataFrame(rows, columns=["word", "sentiment"]).drop_duplicates("word")


def read_bnc_frequency(path: str | Path) -> pd.DataFrame:
    """The BNC list 1.1 (Leech, Rayson & Wilson 2001) as ``word, freq_per_million``.

    The file lists lemmas (PoS marker ``%``) followed by their word forms on ``@`` rows, and words
    with one form (marker ``:``) directly. A form's frequency is the sum over its ``:`` and ``@``
    rows across parts of speech; ``%`` lemma rows are skipped (they total their forms, so counting
    them would double-count). ``#`` flags (unreliable dispersion) are dropped. Latin-1 encoded.
    """
    import pandas as pd

    freq: dict[str, float] = {}
    lines = Path(path).read_text("latin-1").splitlines()
    for i, line in enumerate(lines[1:], start=2):
        fields = [f.strip() for f in line.lstrip("\t").split("\t")]
        if len(fields) < 4:
            continue
        if fields[0] == "@":
            word, value = fields[2], fields[3]
        elif len(fields) >= 4 and fields[2] == ":":
            word, value = fields[0], fields[3]
        else:
            continue
        try:
            count = float(value.rstrip("#"))
        except ValueError:
            raise InputError(f"{path}:{i}: frequency {value!r} is not a number.") from None
        word = word.lower()
        freq[word] = freq.get(word, 0.0) + count
    if not freq:
        raise InputError(f"{path} has no BNC frequency rows; is it 1_1_all_alpha.txt?")
    return pd.DataFrame({"word": list(freq), "freq_per_million": list(freq.values())})


def word_scores(runs: pd.DataFrame) -> pd.DataFrame:
    """model, prompt_id, word, score (mean over the encodings of each normalised word), n_encodings."""
    frame = runs[runs["normalized"] != ""]
    out = (frame.groupby(["model", "prompt_id", "normalized"], observed=True)["score"]
           .agg(score="mean", n_encodings="size").reset_index()
           .rename(columns={"normalized": "word"}))
    return out


def _ols(y, x):
    """Slope, SE, 95% CI, n of a simple or multiple OLS (statsmodels), for the first regressor."""
    import numpy as np
    import statsmodels.api as sm

    x = np.asarray(x, dtype=float)
    design = sm.add_constant(x, has_constant="add")
    fit = sm.OLS(np.asarray(y, dtype=float), design).fit()
    lo, hi = fit.conf_int(0.05)[1]
    return float(fit.params[1]), float(fit.bse[1]), float(lo), float(hi), int(fit.df_resid)


def framing_slopes(runs: pd.DataFrame, afinn: pd.DataFrame, *, min_words: int = 5) -> pd.DataFrame:
    """model, prompt_id, valence (positive|negative), n, slope, se, ci_low, ci_high, df."""
    import pandas as pd

    words = word_scores(runs).merge(afinn, on="word", how="inner")
    words = words[words["sentiment"] != 0]
    words["valence"] = words["sentiment"].gt(0).map({True: "positive", False: "negative"})
    rows = []
    for (model, prompt_id, valence), sel in words.groupby(["model", "prompt_id", "valence"], sort=True):
        if len(sel) < min_words or sel["sentiment"].nunique() < 2:
            continue
        slope, se, lo, hi, df = _ols(sel["score"], sel["sentiment"])
        rows.append((model, prompt_id, valence, len(sel), slope, se, lo, hi, df))
    return pd.DataFrame(rows, columns=["model", "prompt_id", "valence", "n", "slope", "se",
                                       "ci_low", "ci_high", "df"])


def framing_contrasts(slopes: pd.DataFrame, *, negative_prompt: str = "worst_ever_one",
                      positive_prompt: str = "best_ever_one") -> pd.DataFrame:
    """Per model: negative-word slope under ``negative_prompt`` minus positive-word slope under
    ``positive_prompt``, with a normal 95% CI from the two independent fits' SEs (disjoint word
    sets); ``abs_difference`` compares the slopes' sizes (|neg| - |pos|; its CI is valid while
    neither interval crosses 0): > 0 means a unit of sentiment moves the score more for negative
    words under the negative framing than for positive words under the positive one."""
    import numpy as np
    import pandas as pd

    neg = slopes[(slopes["prompt_id"] == negative_prompt) & (slopes["valence"] == "negative")]
    pos = slopes[(slopes["prompt_id"] == positive_prompt) & (slopes["valence"] == "positive")]
    both = neg.merge(pos, on="model", suffixes=("_neg", "_pos"))
    diff = both["slope_neg"] - both["slope_pos"]
    magnitude = both["slope_neg"].abs() - both["slope_pos"].abs()
    se = np.sqrt(both["se_neg"] ** 2 + both["se_pos"] ** 2)
    z = 1.959963984540054
    return pd.DataFrame({"model": both["model"], "negative_prompt": negative_prompt,
                         "positive_prompt": positive_prompt, "slope_negative": both["slope_neg"],
                         "slope_positive": both["slope_pos"], "difference": diff,
                         "ci_low": diff - z * se, "ci_high": diff + z * se,
                         "abs_difference": magnitude, "abs_ci_low": magnitude - z * se,
                         "abs_ci_high": magnitude + z * se})


def frequency_slopes(runs: pd.DataFrame, frequency: pd.DataFrame, afinn: pd.DataFrame | None,
                     *, min_words: int = 10) -> pd.DataFrame:
    """model, prompt_id, n, slope (per unit log frequency), se, ci_low, ci_high, df, controls."""
    import numpy as np
    import pandas as pd

    words = word_scores(runs).merge(frequency, on="word", how="inner")
    words = words[words["freq_per_million"] > 0]
    if afinn is not None:
        words = words.merge(afinn, on="word", how="inner")
    words["log_freq"] = np.log(words["freq_per_million"])
    rows = []
    for (model, prompt_id), sel in words.groupby(["model", "prompt_id"], sort=True):
        if len(sel) < min_words:
            continue
        x = sel[["log_freq"] + (["sentiment"] if afinn is not None else [])].to_numpy(dtype=float)
        slope, se, lo, hi, df = _ols(sel["score"], x)
        rows.append((model, prompt_id, len(sel), slope, se, lo, hi, df,
                     "sentiment" if afinn is not None else ""))
    return pd.DataFrame(rows, columns=["model", "prompt_id", "n", "slope", "se", "ci_low", "ci_high",
                                       "df", "controls"])
