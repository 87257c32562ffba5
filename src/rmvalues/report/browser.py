"""Open a report in headless Chromium: console messages, the rendered DOM, a screenshot.

Used by the report's browser test and by ``rmvalues report --screenshot`` (for the docs). Chromium
runs with a throw-away profile and no network features; every console message is returned, since
a self-contained report should log none.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from rmvalues.errors import InputError

CHROMIUM_NAMES: tuple[str, ...] = ("chromium", "chromium-browser", "google-chrome")
_FLAGS: tuple[str, ...] = (
    "--headless", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--enable-logging=stderr", "--v=0",
)


def find_chromium() -> str | None:
    """Path of a Chromium/Chrome binary on PATH, or ``None``."""
    for name in CHROMIUM_NAMES:
        if path := shutil.which(name):
            return path
    return None


#: Set to 1 to run Chromium without its sandbox (containers without user namespaces).
NO_SANDBOX_ENV = "RMVALUES_CHROMIUM_NO_SANDBOX"


def sandbox_reason() -> str | None:
    """Why Chromium must run with ``--no-sandbox`` here, or ``None`` (keep the sandbox)."""
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return "running as root, where Chromium refuses its sandbox"
    if os.environ.get(NO_SANDBOX_ENV) == "1":
        return f"{NO_SANDBOX_ENV}=1 is set"
    return None


def _sandbox_failed(stderr: str) -> bool:
    return "No usable sandbox" in stderr or ("sandbox" in stderr.lower() and "FATAL" in stderr)


@dataclass
class BrowserRun:
    returncode: int
    stdout: str
    stderr: str
    notes: list[str] = field(default_factory=list)

    @property
    def console(self) -> list[str]:
        """Console messages and uncaught errors Chromium logged for the page."""
        return [line for line in self.stderr.splitlines()
                if ":CONSOLE" in line or "Uncaught" in line]


def run_chromium(page: str | Path, *args: str, timeout: float = 120.0) -> BrowserRun:
    """Load ``page`` (a file) in headless Chromium with extra ``args`` (``--dump-dom``, ...)."""
    binary = find_chromium()
    if binary is None:
        raise InputError("headless Chromium is not installed; install the Debian packages "
                         "`chromium chromium-driver` (or put chromium on PATH)")
    page = Path(page).resolve()
    if not page.exists():
        raise InputError(f"{page} does not exist; write the report first")
    reason = sandbox_reason()
    notes = []
    while True:
        flags = [*_FLAGS, "--no-sandbox"] if reason else list(_FLAGS)
        with tempfile.TemporaryDirectory(prefix="rmvalues-chromium-") as profile:
            try:
                done = subprocess.run([binary, *flags, f"--user-data-dir={profile}", *args,
                                       page.as_uri()], capture_output=True, text=True,
                                      timeout=timeout, check=False)
            except subprocess.TimeoutExpired:
                raise InputError(f"Chromium did not finish loading {page} in {timeout:.0f} s") from None
        if reason is None and done.returncode != 0 and _sandbox_failed(done.stderr):
            reason = "Chromium's sandbox is not usable here (no user namespaces)"
            continue
        break
    if reason:
        notes.append(f"Chromium ran with --no-sandbox: {reason}")
    return BrowserRun(done.returncode, done.stdout, done.stderr, notes)


def screenshot(page: str | Path, png: str | Path, width: int = 1280, height: int = 4000
               ) -> BrowserRun:
    """Save a ``width`` x ``height`` screenshot of ``page`` to ``png``."""
    png = Path(png).resolve()
    png.parent.mkdir(parents=True, exist_ok=True)
    run = run_chromium(page, f"--screenshot={png}", f"--window-size={width},{height}",
                       "--hide-scrollbars")
    if run.returncode != 0 or not png.exists():
        raise InputError(f"Chromium could not screenshot {page}: {run.stderr[-500:]}")
    return run
