"""The look shared by every figure: family colours, a serif font that exists here, saving.

Figures are meant to drop into a paper, so every one is drawn inside :func:`figure_context`
(serif text, no grid, thin black frames) and written by :func:`save_figure` as PNG plus a vector
format. Nothing here imports pyplot at module level; matplotlib is loaded on first use.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rmvalues.errors import InputError
from rmvalues.io import atomic_path

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

#: The paper's base-family colours (Gemma red, Llama blue, Qwen purple).
DEFAULT_FAMILY_COLORS: dict[str, str] = {
    "gemma": "#DB4437",
    "llama": "#0064E0",
    "qwen": "#7C3AED",
}

#: Colours for lexicon categories where a figure colours by category rather than family.
DEFAULT_CATEGORY_COLORS: dict[str, str] = {
    "agency": "#3CB371",
    "communion": "#E0A800",
}

#: Serif fonts in order of preference. Times-like first (the paper's look); STIX and DejaVu ship
#: with matplotlib, so one of them always exists and no figure depends on Times New Roman.
SERIF_PREFERENCE: tuple[str, ...] = (
    "Times New Roman",
    "Nimbus Roman",
    "Nimbus Roman No9 L",
    "TeX Gyre Termes",
    "Liberation Serif",
    "STIXGeneral",
    "DejaVu Serif",
)

#: Fallback palette for families and categories without a configured colour.
_FALLBACK_COLORS: tuple[str, ...] = (
    "#2E7D32", "#F57C00", "#00838F", "#6D4C41", "#C2185B", "#546E7A", "#9E9D24",
)


@cache
def serif_font(preference: tuple[str, ...] = SERIF_PREFERENCE) -> str:
    """The first font of ``preference`` that matplotlib can find on this machine."""
    from matplotlib import font_manager

    available = {entry.name for entry in font_manager.fontManager.ttflist}
    for name in preference:
        if name in available:
            return name
    return "DejaVu Serif"


@dataclass(frozen=True)
class FigureStyle:
    """Everything about a figure's look that a user may want to change.

    ``family_colors`` and ``category_colors`` are keyed case-insensitively; unknown families get
    a stable fallback colour, so a new base family never breaks a figure.
    """

    family_colors: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_FAMILY_COLORS))
    category_colors: Mapping[str, str] = field(
        default_factory=lambda: dict(DEFAULT_CATEGORY_COLORS)
    )
    font: str | None = None  # None: the first available of SERIF_PREFERENCE
    font_size: float = 8.0
    dpi: int = 300
    formats: tuple[str, ...] = ("png", "pdf")

    def with_colors(self, **family_colors: str) -> FigureStyle:
        """A copy with some family colours replaced, e.g. ``style.with_colors(qwen="#333")``."""
        merged = {k.lower(): v for k, v in self.family_colors.items()}
        merged.update({k.lower(): v for k, v in family_colors.items()})
        return replace(self, family_colors=merged)

    def family_color(self, family: str) -> str:
        return _lookup_color(self.family_colors, family)

    def category_color(self, category: str) -> str:
        return _lookup_color(self.category_colors, category)

    def rc(self) -> dict[str, Any]:
        """matplotlib rcParams for this style: serif text, no grid, thin black frames."""
        font = self.font or serif_font()
        return {
            "font.family": "serif",
            "font.serif": [font, "DejaVu Serif"],
            "mathtext.fontset": "stix",
            "font.size": self.font_size,
            "axes.titlesize": self.font_size,
            "axes.labelsize": self.font_size,
            "xtick.labelsize": self.font_size - 1,
            "ytick.labelsize": self.font_size - 1,
            "legend.fontsize": self.font_size - 1,
            "axes.linewidth": 0.5,
            "axes.edgecolor": "black",
            "axes.grid": False,
            "xtick.major.width": 0.5,
            "ytick.major.width": 0.5,
            "xtick.major.size": 2.5,
            "ytick.major.size": 2.5,
            "lines.linewidth": 1.0,
            "savefig.dpi": self.dpi,
            "savefig.bbox": "tight",
            "savefig.pad_inches": 0.02,
            "pdf.fonttype": 42,  # embed TrueType so text stays editable in the PDF
            "svg.fonttype": "none",
            "figure.dpi": 100,
        }


def _lookup_color(colors: Mapping[str, str], key: str) -> str:
    lowered = {k.lower(): v for k, v in colors.items()}
    name = str(key).lower()
    if name in lowered:
        return lowered[name]
    # Stable per name (not per call order), so a family keeps its colour across figures.
    index = sum(name.encode("utf-8")) % len(_FALLBACK_COLORS)
    return _FALLBACK_COLORS[index]


DEFAULT_STYLE = FigureStyle()


def family_label(family: str) -> str:
    """Display name of a base family: ``"gemma"`` -> ``"Gemma"`` (already-cased names kept)."""
    text = str(family)
    return text[:1].upper() + text[1:] if text.islower() else text


def despine(ax: Axes) -> None:
    """Hide the top and right spines, as the paper's figures do."""
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def row_axis(ax: Axes, n: int) -> None:
    """Style a figure with one labelled row per ``y = 0 .. n-1`` (the lollipop figures): tight
    y limits, no y ticks, a dashed x grid behind the data, despined."""
    ax.set_ylim(-0.7, n - 0.3)
    ax.tick_params(axis="y", length=0)
    ax.grid(axis="x", linestyle="--", linewidth=0.4, alpha=0.4)
    ax.set_axisbelow(True)
    despine(ax)


@contextlib.contextmanager
def figure_context(style: FigureStyle = DEFAULT_STYLE) -> Iterator[None]:
    """Draw inside this block so the figure gets ``style``'s fonts and lines, and nothing leaks."""
    import matplotlib

    with matplotlib.rc_context(style.rc()):
        yield


@dataclass
class FigureResult:
    """A drawn figure: the matplotlib Figure, the files written, and the numbers it shows.

    ``data`` holds the plotted summary (e.g. panel grand means) so tests and reports can check a
    figure against the statistics tables without reading pixels.
    """

    name: str
    figure: Figure
    paths: dict[str, Path] = field(default_factory=dict)
    data: Any = None
    caption: str = ""
    title: str = ""  # e.g. "Fig. 1a (Big Two)", set when a report assembles the figure

    def close(self) -> None:
        import matplotlib.pyplot as plt

        plt.close(self.figure)


def save_figure(
    figure: Figure,
    out_dir: str | Path | None,
    stem: str,
    style: FigureStyle = DEFAULT_STYLE,
    formats: Sequence[str] | None = None,
) -> dict[str, Path]:
    """Write ``figure`` as ``out_dir/stem.<fmt>`` for each format, atomically; ``{}`` if no dir."""
    if out_dir is None:
        return {}
    formats = tuple(formats or style.formats)
    unknown = [f for f in formats if f not in {"png", "pdf", "svg"}]
    if unknown:
        raise InputError(f"unknown figure format(s) {unknown}; use png, pdf or svg")
    out = Path(out_dir)
    paths: dict[str, Path] = {}
    with figure_context(style):
        for fmt in formats:
            target = out / f"{stem}.{fmt}"
            with atomic_path(target) as tmp:
                figure.savefig(tmp, format=fmt, dpi=style.dpi, metadata=_metadata(fmt))
            paths[fmt] = target
    return paths


def _metadata(fmt: str) -> dict[str, Any]:
    # Fixed metadata keeps PDF/SVG output byte-stable across runs (no creation date).
    if fmt == "pdf":
        return {"Creator": "rmvalues", "Producer": "rmvalues", "CreationDate": None}
    if fmt == "svg":
        return {"Creator": "rmvalues", "Date": None}
    return {"Software": "rmvalues"}
