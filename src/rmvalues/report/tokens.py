"""Table 1: the top- and bottom-k tokens by an implicit-reward (or RM) score, as HTML and LaTeX.

Input contract — one row per token, any order:

===============  ===========================================================================
``candidate``    the decoded token, verbatim (leading spaces kept); ``token`` is accepted too
score column     ``score_column`` (default: the first of ``mwlr``, ``log_ratio``, ``score``)
``rank``         optional; 1 = highest score. Computed from the score when absent
===============  ===========================================================================

The output of :func:`rmvalues.implicit.top_bottom` (``side, rank, key, score, n``) is read as is:
its ranks and total ``n`` are kept.

Tokens are shown exactly: a leading or trailing space is drawn as a visible space (HTML
``␣``, LaTeX ``\\textvisiblespace``), control characters as their escapes (``\\n``), and every
character special to HTML or LaTeX is escaped.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rmvalues.errors import InputError
from rmvalues.io import atomic_write_text

if TYPE_CHECKING:
    import pandas as pd

VISIBLE_SPACE = "\u2423"  # ␣
_SCORE_COLUMNS = ("mwlr", "log_ratio", "implicit_reward", "score")
_TOKEN_COLUMNS = ("candidate", "token", "token_decoded", "key")
_CONTROL_ESCAPES = {"\n": "\\n", "\t": "\\t", "\r": "\\r", "\x00": "\\0"}
_LATEX_SPECIALS = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "|": r"\textbar{}",
    '"': r"\textquotedbl{}",
}


def _visible(token: str) -> list[tuple[str, str]]:
    """Split ``token`` into (kind, text) pieces: ``space`` for edge spaces, ``ctl`` for control
    characters, ``text`` for the rest; inner spaces stay as they are."""
    stripped = token.strip(" ")
    lead = len(token) - len(token.lstrip(" "))
    trail = len(token) - len(token.rstrip(" ")) if stripped else 0
    pieces: list[tuple[str, str]] = [("space", " ")] * lead
    body = token[lead:len(token) - trail] if stripped else ""
    for ch in body:
        if ch in _CONTROL_ESCAPES or (ord(ch) < 32 or 0x7F <= ord(ch) < 0xA0):
            pieces.append(("ctl", _CONTROL_ESCAPES.get(ch, f"\\x{ord(ch):02x}")))
        else:
            pieces.append(("text", ch))
    pieces += [("space", " ")] * trail
    return pieces


def token_html(token: str) -> str:
    """``token`` as HTML: escaped, edge spaces as a visible-space mark, control chars escaped."""
    out = []
    for kind, text in _visible(token):
        if kind == "space":
            out.append(f'<span class="ws" title="space">{VISIBLE_SPACE}</span>')
        elif kind == "ctl":
            out.append(f'<span class="ctl">{html.escape(text)}</span>')
        else:
            out.append(html.escape(text))
    return "".join(out) or '<span class="ctl">(empty)</span>'


def token_latex(token: str) -> str:
    """``token`` as LaTeX text for ``\\texttt{}``: specials escaped, edge spaces visible."""
    out = []
    for kind, text in _visible(token):
        if kind == "space":
            out.append(r"\textvisiblespace{}")
        elif kind == "ctl":
            out.append(r"\textbackslash{}" + text[1:])
        else:
            out.append(_LATEX_SPECIALS.get(text, text))
    return "".join(out)


@dataclass
class TokenTable:
    """Top and bottom ``k`` tokens of one score, with their ranks among ``n_total`` tokens."""

    top: pd.DataFrame  # columns: rank, token, score
    bottom: pd.DataFrame
    n_total: int
    score_label: str
    caption: str = ""

    def to_html(self) -> str:
        """Two side-by-side HTML tables (top / bottom), tokens in monospace."""
        parts = ['<div class="token-table">']
        for title, frame in (("Highest", self.top), ("Lowest", self.bottom)):
            parts.append(f'<table class="tokens"><caption>{title} {len(frame)} of '
                         f'{self.n_total:,} ({html.escape(self.score_label)})</caption>')
            parts.append("<thead><tr><th>Rank</th><th>Token</th>"
                         f"<th>{html.escape(self.score_label)}</th></tr></thead><tbody>")
            for row in frame.itertuples(index=False):
                parts.append(f"<tr><td>{int(row.rank):,}</td><td><code>{token_html(row.token)}"
                             f"</code></td><td>{row.score:.5g}</td></tr>")
            parts.append("</tbody></table>")
        parts.append("</div>")
        return "".join(parts)

    def to_latex(self, label: str = "tab:top-bottom-tokens") -> str:
        """A booktabs ``table*`` with the two panels in minipages, as in the paper's Table 1."""
        lines = [r"\begin{table*}", r"\centering\scriptsize"]
        caption = self.caption or (f"Highest- and lowest-ranked tokens by {self.score_label}.")
        lines.append(r"\caption{" + _latex_text(caption)
                     + r" \textvisiblespace{} marks a space.}")
        lines.append(r"\label{" + label + "}")
        for i, (frame, head_gap) in enumerate(((self.top, False), (self.bottom, True))):
            lines += [r"\begin{minipage}{0.48\textwidth}", r"\centering",
                      r"\begin{tabular}{rlr}", r"\toprule",
                      r"Rank & Token & " + _latex_text(self.score_label) + r" \\", r"\midrule"]
            if head_gap:
                lines.append(r"\ldots & \ldots & \ldots \\")
            for row in frame.itertuples(index=False):
                lines.append(f"{int(row.rank):,} & \\texttt{{{token_latex(row.token)}}} & "
                             f"{row.score:.5f} \\\\")
            if not head_gap:
                lines.append(r"\ldots & \ldots & \ldots \\")
            lines += [r"\bottomrule", r"\end{tabular}", r"\end{minipage}"]
            if i == 0:
                lines.append(r"\hfill")
        lines.append(r"\end{table*}")
        return "\n".join(lines) + "\n"

    def write(self, out_dir: str | Path, stem: str = "table1") -> dict[str, Path]:
        """Write ``stem.html`` (a fragment) and ``stem.tex``; returns their paths."""
        out = Path(out_dir)
        return {
            "html": atomic_write_text(out / f"{stem}.html", self.to_html() + "\n"),
            "tex": atomic_write_text(out / f"{stem}.tex", self.to_latex()),
        }


def _latex_text(text: str) -> str:
    return "".join(_LATEX_SPECIALS.get(ch, ch) for ch in text)


def table1(
    scores: pd.DataFrame,
    *,
    k: int = 15,
    score_column: str | None = None,
    score_label: str | None = None,
    caption: str = "",
    out_dir: str | Path | None = None,
    stem: str = "table1",
) -> TokenTable:
    """Table 1: the ``k`` highest- and lowest-scoring tokens, with ranks among all tokens."""
    if scores is None or len(scores) == 0:
        raise InputError("token score table is empty; compute implicit-reward scores first")
    token_col = next((c for c in _TOKEN_COLUMNS if c in scores.columns), None)
    score_col = score_column or next((c for c in _SCORE_COLUMNS if c in scores.columns), None)
    if token_col is None or score_col is None or score_col not in scores.columns:
        raise InputError(
            f"token score table needs a token column (one of {list(_TOKEN_COLUMNS)}) and a score "
            f"column (one of {list(_SCORE_COLUMNS)} or score_column=...); has {list(scores.columns)}"
        )
    if k < 1:
        raise InputError(f"k must be at least 1 (got {k})")
    default_label = "MWLR" if score_col == "mwlr" else score_col.replace("_", " ")
    frame = scores.rename(columns={token_col: "token", score_col: "score"})
    frame = frame.dropna(subset=["score"])
    frame["token"] = frame["token"].astype(str)
    if {"side", "rank", "n"} <= set(frame.columns):  # already cut by implicit.top_bottom
        ranked = frame.sort_values("rank", kind="stable")
        top = ranked[ranked["side"] == "top"].head(k)
        bottom = ranked[ranked["side"] == "bottom"].tail(k)
        n_total = int(frame["n"].max())
    else:
        if "rank" not in frame.columns:
            frame["rank"] = frame["score"].rank(ascending=False, method="first")
        ranked = frame.sort_values("rank", kind="stable")
        top, bottom, n_total = ranked.head(k), ranked.tail(min(k, len(ranked))), len(ranked)
    columns = ["rank", "token", "score"]
    result = TokenTable(top=top[columns].reset_index(drop=True),
                        bottom=bottom[columns].reset_index(drop=True), n_total=n_total,
                        score_label=score_label or default_label, caption=caption)
    if out_dir is not None:
        result.write(out_dir, stem)
    return result
