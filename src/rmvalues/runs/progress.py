"""Feedback on long work: a progress bar on a terminal, periodic lines when output is redirected.

A redirected run (``> log 2>&1``, a batch job) gets one line when work starts, then one every
``RMVALUES_PROGRESS_SECONDS`` seconds (default 30) and one at the end, each with the count done,
the rate and the time left, so a log shows that a long run is alive and how long it will take.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any, TextIO

DEFAULT_INTERVAL = 30.0


def progress_interval() -> float:
    """Seconds between progress lines when output is not a terminal."""
    try:
        return max(0.0, float(os.environ.get("RMVALUES_PROGRESS_SECONDS", DEFAULT_INTERVAL)))
    except ValueError:
        return DEFAULT_INTERVAL


def format_seconds(seconds: float) -> str:
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class Progress:
    """``advance(n)`` as work is done, ``close()`` at the end; ``postfix`` adds e.g. a loss."""

    def __init__(self, enabled: bool, total: int, description: str, *, unit: str = "cand",
                 stream: TextIO | None = None, terminal: bool | None = None,
                 interval: float | None = None, announce: bool = True) -> None:
        self.total, self.description, self.unit = total, description, unit
        self.done, self.postfix = 0, ""
        self._bar: Any = None
        self._lines = False
        if not enabled:
            return
        self.stream = stream or sys.stderr
        is_tty = self.stream.isatty() if terminal is None else terminal
        if not is_tty:
            self._lines = True
            self.interval = progress_interval() if interval is None else interval
            self.started = self._last = time.monotonic()
            if announce:
                self._line("started")
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            ProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as RichProgress
        from rich.text import Text

        unit_name = unit

        class Rate(ProgressColumn):
            def render(self, task) -> Text:
                speed = task.finished_speed or task.speed
                return Text(f"{speed:,.1f} {unit_name}/s" if speed else f"? {unit_name}/s")

        self._bar = RichProgress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 Rate(), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                                 TextColumn("{task.fields[postfix]}"),
                                 console=Console(file=self.stream))
        self._task = self._bar.add_task(description, total=total, postfix="")
        self._bar.start()

    def _line(self, state: str) -> None:
        elapsed = time.monotonic() - self.started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        left = (self.total - self.done) / rate if rate > 0 else None
        pct = 100 * self.done / self.total if self.total else 100.0
        text = (f"{self.description}: {state} {self.done:,}/{self.total:,} {self.unit} ({pct:.0f}%)"
                + (f", {rate:,.1f} {self.unit}/s" if self.done else "")
                + (f", {format_seconds(elapsed)} elapsed" if self.done else "")
                + (f", ETA {format_seconds(left)}" if left is not None and state != "done" else "")
                + (f", {self.postfix}" if self.postfix else ""))
        print(text, file=self.stream, flush=True)

    def advance(self, n: int) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(self._task, advance=n, postfix=self.postfix)
        elif self._lines and time.monotonic() - self._last >= self.interval:
            self._last = time.monotonic()
            self._line("at")

    def restart(self, description: str, total: int) -> None:
        """Count the next piece of work (e.g. the next search) on the same bar, from zero."""
        if self._lines and self.done:
            self._line("done")
        self.description, self.total, self.done, self.postfix = description, total, 0, ""
        if self._bar is not None:
            self._bar.reset(self._task, total=total, description=description, postfix="")
        elif self._lines:
            self.started = self._last = time.monotonic()
            self._line("started")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        elif self._lines:
            self._lines = False
            self._line("done")


def training_callback(description: str = "training", **kwargs: Any) -> Any:
    """A ``transformers.TrainerCallback`` reporting optimizer steps (and the last loss)."""
    from transformers import TrainerCallback

    class ProgressCallback(TrainerCallback):
        bar: Progress | None = None

        def on_train_begin(self, args, state, control, **_):
            self.bar = Progress(True, int(state.max_steps), description, unit="step", **kwargs)
            self.bar.done = int(state.global_step)
            return control

        def on_log(self, args, state, control, logs=None, **_):
            if self.bar is not None and logs and "loss" in logs:
                self.bar.postfix = f"loss {logs['loss']:.4f}"
            return control

        def on_step_end(self, args, state, control, **_):
            if self.bar is not None:
                self.bar.advance(int(state.global_step) - self.bar.done)
            return control

        def on_train_end(self, args, state, control, **_):
            if self.bar is not None:
                self.bar.close()
            return control

    return ProgressCallback()
