"""The CLI: fast help without the ML stack, prompt-set commands, the demo end to end, clean errors."""

from __future__ import annotations

import re
import subprocess
import sys
import time

import pandas as pd
import pytest

from rmvalues.cli import main

HEAVY = ("torch", "transformers", "tokenizers", "trl", "peft", "datasets", "pandas", "scipy",
         "statsmodels", "matplotlib")


def test_help_is_fast_and_imports_no_heavy_library() -> None:
    code = (
        "import sys; from rmvalues.cli import main; rc = main(['--help']); "
        f"print('HEAVY=' + ','.join(m for m in {HEAVY!r} if m in sys.modules)); sys.exit(rc)"
    )
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=False)
    elapsed = time.perf_counter() - start
    assert proc.returncode == 0, proc.stderr
    assert "Usage" in proc.stdout and "prompts" in proc.stdout and "demo" in proc.stdout
    assert proc.stdout.strip().splitlines()[-1] == "HEAVY=", proc.stdout[-300:]
    assert elapsed < 10, f"`rmvalues --help` took {elapsed:.1f}s"


def test_commands_load_only_their_own_module() -> None:
    """A command imports its module alone: `prompts list` loads no training or scoring command."""
    code = ("import sys; from rmvalues.cli import main; rc = main(['prompts', 'list']); "
            "print('CLI=' + ','.join(sorted(m for m in sys.modules if m.startswith(('rmvalues.cli.', "
            "'rmvalues.training'))))); sys.exit(rc)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "CLI=rmvalues.cli.prompts", proc.stdout[-300:]


def test_every_registered_command_loads_under_its_name() -> None:
    """The command table names each command as its module registers it (a typo is a KeyError)."""
    from rmvalues.cli import COMMANDS, load_command

    for name in COMMANDS:
        assert load_command(name).name == name


def test_usage_errors_and_version_are_clean(capsys) -> None:
    from rmvalues import __version__

    assert main(["scor"]) == 2
    err = capsys.readouterr().err
    assert "No such command 'scor'" in err and "Did you mean 'score'" in err and "Traceback" not in err
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == __version__
    proc = subprocess.run([sys.executable, "-m", "rmvalues.cli", "--version"], capture_output=True,
                          text=True, timeout=60, check=False)
    assert (proc.returncode, proc.stdout.strip()) == (0, __version__), proc.stderr


def test_prompts_list(capsys) -> None:
    assert main(["prompts", "list"]) == 0
    out = capsys.readouterr().out
    assert "paper-54" in out and "facct-3" in out and "54" in out


def test_prompts_show_paper54(capsys) -> None:
    assert main(["prompts", "show", "paper-54"]) == 0
    out = capsys.readouterr().out
    assert "paper-54: 54 prompts" in out
    assert "greatest_ever_one" in out and "terrible_time_please" in out
    assert "framing: positive (27), negative (27)" in out
    assert "style: one (18), single (18), please (18)" in out


def test_prompts_show_user_file(tmp_path, capsys) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("prompts:\n  - {id: q1, text: Name a virtue., factors: {kind: virtue}}\n",
                    encoding="utf-8")
    assert main(["prompts", "show", str(path)]) == 0
    assert "mine: 1 prompts" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [["prompts", "show", "paper-55"], ["demo", "--out", "{file}"]],
)
def test_errors_are_one_clean_line(argv: list[str], tmp_path, capsys) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    assert main([a.format(file=target) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "Traceback" not in err


def test_demo_end_to_end(tmp_path, capsys, monkeypatch) -> None:
    """Coverage, reproduction and report for real; the LM step (minutes on a CPU, tested on its own) is
    stubbed."""
    import rmvalues.demo.lm

    lm_calls: list[object] = []
    monkeypatch.setattr(rmvalues.demo.lm, "run_lm_demo",
                        lambda out, console=None, **kw: lm_calls.append(out))
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out)]) == 0
    assert lm_calls == [out]
    printed = capsys.readouterr().out
    assert "Lexicon terms that are single tokens" in printed
    for word in ("big-two-nouns", "mfd2", "Llama-3", "Gemma-2", "Qwen"):
        assert word in printed
    assert f"Results in {out.resolve()}" in printed.replace("\n", "")
    table = pd.read_csv(out / "coverage.csv")
    assert len(table) == 6 and (out / "manifest.json").exists()
    # Fig 1 reproduced from the released scores (../shared/paper-data), then one report of it all.
    assert "-34.998" in printed  # the framing estimate of the paper's mixed model
    # nlme's sequential F tests (term, denominator df, F; tests/test_analysis_paper.py) are what
    # the demo prints and what its report shows (to nlme's 0.01)
    nlme_f = {"base": (8, 0.01), "category": (1064, 1963.79), "framing": (1064, 86.46),
              "category:framing": (1064, 1472.78), "base:category:framing": (1064, 63.10)}
    html = (out / "report" / "report.html").read_text("utf-8")
    number = r"(-?[\d,]+\.?\d*)"
    for term, (den, f) in nlme_f.items():
        line = re.search(rf"^\s*{term}\s+1\s+{den}\s+{number}\s", printed, re.MULTILINE)
        cells = re.search(rf'<tr><td>{term}</td><td class="num">1</td><td class="num">{den:,}</td>'
                          rf'<td class="num">{number}</td>', html)
        assert line and cells, term
        for shown in (line[1], cells[1]):
            rounding = 0.5 * 10.0 ** -len(shown.partition(".")[2])  # the report shows 5 digits
            assert float(shown.replace(",", "")) == pytest.approx(f, abs=0.01 + rounding), shown
    panels = pd.read_parquet(out / "reproduce" / "big2-nouns_corrected_panels.parquet")
    assert len(panels) == 4 and set(panels["category"]) == {"Agency", "Communion"}
    assert '<figure id="fig1a">' in html and "data:image/png;base64," in html
    assert "coverage" in html
