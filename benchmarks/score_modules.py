"""How many rmvalues modules one `rmvalues score` run passes through (a structure measure, not a test).

Builds the tests' tiny random Llama RM on the real tokenizer, then runs the CLI's `score` command
in this process on 2 prompts x 48 vocabulary candidates and prints two counts:

- imported: rmvalues.* modules in ``sys.modules`` after the run (the model is built in a child
  process, so this process has imported nothing of rmvalues before the CLI);
- called: rmvalues.* modules one of whose functions ran during the run (``sys.setprofile``; module
  and class bodies executing on import do not count).

    PYTHONPATH=src python benchmarks/score_modules.py [--list] [--src OTHER/src]

``--src`` measures another checkout's package (e.g. ``git archive`` of an older commit).
"""

from __future__ import annotations

import argparse
import inspect
import subprocess
import sys
import tempfile
from pathlib import Path

# The tests' tiny RM, copied out of their temporary folder before the child exits.
BUILD = ("import shutil, sys; from tests._engine_models import tiny_rm_dir; "
         "shutil.copytree(tiny_rm_dir('llama'), sys.argv[1])")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", action="store_true", help="print the module names too")
    parser.add_argument("--executor", help="run through `--executor NAME` (e.g. local) instead")
    parser.add_argument("--src", help="the src/ folder whose rmvalues to measure (default: this one)")
    args = parser.parse_args()
    repo = Path(__file__).resolve().parents[1]
    if args.src:
        sys.path.insert(0, str(Path(args.src).resolve()))
    called: set[str] = set()

    def profile(frame, event, arg):
        if event == "call" and frame.f_code.co_flags & inspect.CO_OPTIMIZED:  # functions only
            name = frame.f_globals.get("__name__", "")
            if name.startswith("rmvalues"):
                called.add(name)

    from typer.testing import CliRunner

    from rmvalues.cli import app

    with tempfile.TemporaryDirectory() as out:
        model = Path(out) / "tiny-rm"
        subprocess.run([sys.executable, "-c", BUILD, str(model)], check=True, cwd=repo)
        prompts = Path(out) / "prompts.yaml"
        prompts.write_text("name: two\nprompts:\n  - {id: a, text: Describe a friend.}\n"
                           "  - {id: b, text: Describe a city.}\n", "utf-8")
        sys.setprofile(profile)
        try:
            result = CliRunner().invoke(app, [
                "score", "--model", str(model), "--out", str(Path(out) / "run"),
                "--prompts", str(prompts), "--candidates", "vocab:0-47", "--quiet",
                *(["--executor", args.executor] if args.executor else [])])
        finally:
            sys.setprofile(None)
    if result.exit_code != 0:
        print(result.output, file=sys.stderr)
        raise SystemExit(f"score failed: {result.exception!r}")
    imported = sorted(m for m in sys.modules if m.startswith("rmvalues"))
    print(f"imported rmvalues modules: {len(imported)}")
    print(f"rmvalues modules with a function called: {len(called)}")
    if args.list:
        print("imported:", " ".join(imported))
        print("called:", " ".join(sorted(called)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
