"""benchmarks/gpu_ets.py end to end in its CPU smoke mode (tiny widths, the real vocabularies and
templates): the JSON it writes for the GPU run has every field, with consistent values."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
VOCAB = {"llama-3.1-8b": 128256, "gemma-2-27b": 256000}


@pytest.fixture
def gpu_ets(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import gpu_ets

    return gpu_ets


def test_gpu_ets_smoke_mode_writes_the_result_json(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path)}  # no --out: the result goes to $OUT/gpu_ets.json
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "gpu_ets.py"), "--device", "cpu", "--tiny",
         "--layers", "1", "--engine-candidates", "24", "--paper-candidates", "8", "--check", "4",
         "--warmup", "4", "--engine-batch-size", "16", "--peak-tflops", "0.5"],
        check=False, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_ets.json").read_text())
    assert report["tiny"] and report["device"] == "cpu" and report["peak_bf16_tflops"] == 0.5
    assert set(report["models"]) == set(VOCAB)
    for name, result in report["models"].items():
        assert result["layers_measured"] == 1 and result["layers_full"] == 2
        assert result["config"]["vocab_size"] == VOCAB[name]
        engines = [k for k in result if k.startswith("engine-") or k == "engine"]
        assert result["primary_engine"] in engines and engines
        for label in [*engines, "paper"]:
            run = result[label]
            assert run["candidates"] == (8 if label == "paper" else 24)
            assert run["candidates_per_s"] == pytest.approx(run["candidates"] / run["seconds"])
            assert run["scores_finite"]
            assert run["pct_of_peak"] == pytest.approx(100 * run["tflops"] / 0.5)
        assert result["ratio_engine_over_paper"] == pytest.approx(
            result[result["primary_engine"]]["candidates_per_s"]
            / result["paper"]["candidates_per_s"])
        flops = result["flops_per_candidate"]
        assert flops["paper"] > flops["engine"] > 0  # the paper runs the prefix per candidate
        assert all(delta < 0.05 for delta in result["max_abs_vs_reference"].values())  # bf16
        projection = result["projection"]
        assert projection["candidates"] == VOCAB[name] * 54 and projection["layer_scale"] == 2
        assert "scaled" in projection["note"] and "--tiny" in projection["note"]
        assert projection["engine_minutes"] == pytest.approx(
            VOCAB[name] * 54 / result[result["primary_engine"]]["candidates_per_s"] * 2 / 60)
        assert projection["goal_minutes"] is None  # no goal is judged on a tiny model
        assert projection["bound_engine_minutes"] == pytest.approx(
            VOCAB[name] * 54 * flops["engine"] * 2 / 0.5e12 / 60)
    assert report["models"]["gemma-2-27b"]["config"]["query_pre_attn_scalar"] == 144


def test_engine_keywords_follow_the_engine_signature(gpu_ets, monkeypatch):
    """Today's Engine gets batch_size only; one with ``attention``/``max_batch_tokens`` gets them,
    and both attention paths are measured."""
    from rmvalues.engines import score

    assert ("attention" in inspect.signature(score.Engine).parameters) == (
        len(gpu_ets.engine_variants(64, 4096)) == 2)

    class NewEngine:
        def __init__(self, rm, *, batch_size=64, mode="auto", attention="shared",
                     max_batch_tokens=None):
            pass

    monkeypatch.setattr(score, "Engine", NewEngine)
    assert gpu_ets.engine_variants(64, 4096) == {
        "engine-shared": {"batch_size": 64, "max_batch_tokens": 4096, "attention": "shared"},
        "engine-expand": {"batch_size": 64, "max_batch_tokens": 4096, "attention": "expand"}}
    assert gpu_ets.engine_variants(64, None)["engine-shared"] == {"batch_size": 64,
                                                                  "attention": "shared"}

    class OldEngine:
        def __init__(self, rm, *, batch_size=64, mode="auto", pool=None):
            pass

    monkeypatch.setattr(score, "Engine", OldEngine)
    assert gpu_ets.engine_variants(64, 4096) == {"engine": {"batch_size": 64}}


def test_peak_tflops_by_device_name(gpu_ets, monkeypatch):
    import torch

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert gpu_ets.device_peak_tflops(cpu, None) is None
    assert gpu_ets.device_peak_tflops(cpu, 123.0) == 123.0
    for name, peak in [("NVIDIA H100 80GB HBM3", 989.0), ("NVIDIA H100 PCIe", 756.0),
                       ("NVIDIA H200", 989.0), ("Tesla T4", None)]:
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda device, name=name: name)
        assert gpu_ets.device_peak_tflops(cuda, None) == peak
