"""The demo's language-model step: paper §4 end to end on two small real models, on a CPU.

SmolLM2-135M-Instruct (instruct, its own ChatML template) and Gemma-3-270M (pretrained, BOS + raw
prompt), both from the fetched test assets (GGUF, dequantised to fp32):

1. full-vocabulary next-token log-probs on the 54 paper prompts (Parquet + manifest + vocabulary);
2. the Big Two analysis of the two models (Fig 2: shared single-token nouns, median-rank units,
   Type-II ANOVA, Welch + BH);
3. the implicit reward model between them — MWLR of the instruct model over the pretrained one —
   after the exact decoded-string join (losses reported): Table 1 top/bottom tokens and the
   Fig 3 "Freedom" vs "Love" scores;
4. a short text summary. Everything lands under ``<out>/lm/``.
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from rich.console import Console

    from rmvalues.analysis.lm_values import LMValuesResult
    from rmvalues.implicit import JoinReport


@dataclass(frozen=True)
class DemoModel:
    name: str
    asset: str
    gguf_file: str
    kind: str


#: q (instruct) first, then p (pretrained): MWLR > 0 means the instruct model prefers the token.
DEMO_MODELS: tuple[DemoModel, ...] = (
    DemoModel("SmolLM2-135M-Instruct", "smollm2-135m-instruct", "SmolLM2-135M-Instruct.Q4_1.gguf",
              "instruct"),
    DemoModel("gemma-3-270m", "gemma3-270m", "gemma-3-270m-q4_k_m.gguf", "pretrained"),
)
TABLE1_PROMPT = "greatest_ever_one"
TARGETS = ("Freedom", "Love")


@dataclass
class LMDemoSummary:
    """What the LM demo computed and where it wrote it."""

    out: Path
    run_dirs: dict[str, Path]
    values: LMValuesResult
    join: JoinReport
    top_bottom: pd.DataFrame
    targets: pd.DataFrame
    text: str
    seconds: dict[str, float] = field(default_factory=dict)


def _top_lines(tb: pd.DataFrame, side: str, n: int = 8) -> str:
    rows = tb[tb["side"] == side].head(n) if side == "top" else tb[tb["side"] == side].tail(n)
    return ", ".join(f"{k!r} ({s:+.4f})" for k, s in zip(rows["key"], rows["score"]))


def run_lm_demo(
    out_dir: str | Path,
    console: Console | None = None,
    *,
    prompts: Any = "paper-54",
    models: tuple[DemoModel, ...] = DEMO_MODELS,
    batch_size: int = 8,
) -> LMDemoSummary:
    """Run the LM pipeline on the two small real models; print a summary; write every table."""
    import pandas as pd
    from rich.console import Console

    from rmvalues.analysis.lm_values import lm_values, write_lm_values
    from rmvalues.assets import asset_path
    from rmvalues.engines.logprobs import run_logprobs
    from rmvalues.implicit import top_bottom, write_implicit
    from rmvalues.io import atomic_path, atomic_write_text

    console = console or Console()
    out = Path(out_dir) / "lm"
    out.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    runs, run_dirs = {}, {}
    for spec in models:
        folder = asset_path(spec.asset)
        t0 = time.perf_counter()
        console.print(f"Log-probs of {spec.name} ({spec.kind}) over the full vocabulary for "
                      f"{prompts if isinstance(prompts, str) else 'the prompts'} ...",
                      highlight=False)
        run_dirs[spec.name] = out / "logprobs" / spec.name
        runs[spec.name] = run_logprobs(folder, gguf_file=spec.gguf_file, kind=spec.kind,
                                       prompts=prompts, out_dir=run_dirs[spec.name],
                                       batch_size=batch_size, name=spec.name)
        gc.collect()  # the model is gone; free its weights before loading the next
        seconds[f"logprobs:{spec.name}"] = round(time.perf_counter() - t0, 1)
    q_name, p_name = models[0].name, models[1].name
    q, p = runs[q_name], runs[p_name]

    t0 = time.perf_counter()
    values = lm_values([q, p], "big-two-nouns", prompts=prompts)
    write_lm_values(values, out / "big_two")
    seconds["big_two"] = round(time.perf_counter() - t0, 1)

    t0 = time.perf_counter()
    implicit_dir = out / "implicit"
    res = write_implicit(p, q, implicit_dir, metric="mwlr", join="exact", k=15,
                         table1_prompt=TABLE1_PROMPT, targets=TARGETS)
    prompt_for_table = TABLE1_PROMPT if TABLE1_PROMPT in p.prompt_ids else None
    tb = top_bottom(res.table, k=15, prompt_id=prompt_for_table)
    tb_clean = top_bottom(res.table, k=15, drop_formatting=True)
    with atomic_path(implicit_dir / "top_bottom_filtered_mean.csv") as tmp:
        tb_clean.to_csv(tmp, index=False)
    targets = pd.read_csv(implicit_dir / "target_scores.csv")
    seconds["implicit"] = round(time.perf_counter() - t0, 1)
    where = repr(prompt_for_table) if prompt_for_table else "the mean over prompts"

    target_means = targets.groupby("target")["score"].mean()
    lines = [
        f"LM demo: {q_name} (instruct) vs {p_name} (pretrained), {len(p.prompt_ids)} prompts.",
        "",
        "Big Two nouns in next-token log-probs (Fig 2):",
        values.summary(),
        "",
        f"Implicit reward (MWLR of {q_name} over {p_name}; > 0 = preferred by the instruct model):",
        "  " + res.report.summary(),
        f"  top tokens on {where}: {_top_lines(tb, 'top')}",
        f"  bottom tokens on {where}: {_top_lines(tb, 'bottom')}",
        f"  top words, mean over prompts, formatting dropped: {_top_lines(tb_clean, 'top')}",
        "  target scores (mean over prompts): "
        + ", ".join(f"{t}: {target_means.get(t, float('nan')):+.2e}" for t in TARGETS),
    ]
    text = "\n".join(lines)
    atomic_write_text(out / "summary.txt", text + "\n")
    console.print(text, highlight=False, markup=False, soft_wrap=True)
    console.print(f"LM results in {out.resolve()}/: logprobs/<model>/ (Parquet, vocabulary, "
                  "manifest), big_two/ (Fig 2 units, ANOVA, Welch tests), implicit/ (MWLR, Table 1, "
                  "Fig 3 targets, join losses), summary.txt", highlight=False, soft_wrap=True)
    return LMDemoSummary(out=out, run_dirs=run_dirs, values=values, join=res.report,
                         top_bottom=tb, targets=targets, text=text, seconds=seconds)
