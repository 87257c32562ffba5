"""Report tables as files: CSV for tools, LaTeX for papers."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd


def write_table(frame: pd.DataFrame, folder: Path, name: str) -> list[Path]:
    """``NAME.csv`` and ``NAME.tex`` (booktabs-free LaTeX, 3 decimals)."""
    from rmvalues.io import atomic_write_text

    folder.mkdir(parents=True, exist_ok=True)
    frame = frame.copy()
    for col in frame.columns:
        if str(frame[col].dtype) == "category":
            frame[col] = frame[col].astype(str)
    csv = atomic_write_text(folder / f"{name}.csv", frame.to_csv(index=False))
    tex = atomic_write_text(folder / f"{name}.tex",
                            frame.to_latex(index=False, float_format="%.3f", escape=True))
    return [csv, tex]
