"""The optional vLLM backend. vLLM cannot run here (no GPU, not installed): these tests cover its
refusals and the engine configuration it builds, and run its plumbing with a stand-in for
``vllm.LLM`` that scores through our reference path. Real vLLM numbers are NOT tested here."""

from __future__ import annotations

import re
import sys
from types import SimpleNamespace

import pandas as pd
import pytest

from _engine_models import tiny_rm, tiny_rm_dir
from rmvalues.api import score
from rmvalues.engines.vllm import (
    VllmEngine,
    VllmOptions,
    build_llm,
    check_supported,
    llm_kwargs,
    make_vllm_engine,
    verify_against_engine,
)
from rmvalues.errors import InputError, ModelError, ScoreError
from rmvalues.runs import RunSpec, make_plan
from rmvalues.runs.worker import UnitWorker
from rmvalues.store.manifest import read_results

PROMPTS = {"p0": "Name the best quality, in one word.", "p1": "Name the worst quality, in one word."}


class ReferenceLLM:
    """Stands in for ``vllm.LLM``: ``classify`` on token-id prompts, one raw score each."""

    def __init__(self, rm):
        self.rm = rm
        self.calls = 0

    def classify(self, prompts, use_tqdm=True):
        from rmvalues.engines.reference import reference_score

        self.calls += 1
        scores = reference_score(self.rm, [p["prompt_token_ids"] for p in prompts])
        return [SimpleNamespace(outputs=SimpleNamespace(probs=[float(s)])) for s in scores]


def test_configuration_is_pooling_classify_raw_scores_with_prefix_caching():
    kwargs = llm_kwargs("/models/rm", dtype="bfloat16", revision="abc",
                        options=VllmOptions(tensor_parallel_size=4, max_model_len=512))
    assert kwargs["runner"] == "pooling" and kwargs["convert"] == "classify"
    assert kwargs["enable_prefix_caching"] is True
    assert kwargs["pooler"] == {"pooling_type": "LAST", "use_activation": False}
    assert (kwargs["tensor_parallel_size"], kwargs["max_model_len"]) == (4, 512)
    assert kwargs["dtype"] == "bfloat16" and kwargs["revision"] == "abc"
    assert llm_kwargs("/m", dtype=None)["dtype"] == "auto"


def test_refusals():
    with pytest.raises(ModelError, match="only plain sequence-classification"):
        check_supported("armorm")
    with pytest.raises(ModelError, match="num_labels = 19"):
        check_supported("sequence_classification", SimpleNamespace(num_labels=19))
    with pytest.raises(ModelError, match="GGUF"):
        check_supported("sequence_classification", gguf=True)
    urm = SimpleNamespace(head=SimpleNamespace(head_type="urm"), name="x")
    with pytest.raises(ModelError, match="'urm' head"):
        VllmEngine(urm, llm=None)
    with pytest.raises(InputError, match="unknown backend"):
        RunSpec.build("m", PROMPTS, "vocab", backend="tensorrt")
    with pytest.raises(InputError, match=r"unknown vLLM option\(s\) \['tp'\]"):
        RunSpec.build("m", PROMPTS, "vocab", backend="vllm", vllm={"tp": 2})
    spec = RunSpec.build("m", PROMPTS, "vocab", backend="vllm", vllm={"tensor_parallel_size": 2})
    assert RunSpec.from_json(spec.to_json()).vllm == {"tensor_parallel_size": 2}


def test_missing_vllm_is_named(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm -> ImportError
    with pytest.raises(ModelError, match="vLLM is not installed"):
        build_llm(llm_kwargs("/m", dtype=None))
    spec = RunSpec.build(str(tiny_rm_dir("llama")), PROMPTS, "vocab:0-49", backend="vllm")
    with pytest.raises(ModelError, match="vLLM is not installed"):
        make_vllm_engine(spec, tiny_rm("llama"))


def test_plumbing_with_a_stand_in_equals_the_engine(tmp_path):
    """Same conversations, same row order as the engine; shards keyed apart from the engine's."""
    spec = RunSpec.build(str(tiny_rm_dir("llama")), PROMPTS, "vocab:0-49", device="cpu",
                         dtype="float32", backend="vllm")
    llm = ReferenceLLM(tiny_rm("llama"))
    worker = UnitWorker(spec, tmp_path / "vllm", rm=tiny_rm("llama"), llm=llm)
    assert worker.run() and llm.calls == 2
    from rmvalues.runs.table import merge_plan

    table = read_results(merge_plan(worker.plan, executor="local"))
    engine = score(tiny_rm("llama"), PROMPTS, "vocab:0-49", tmp_path / "engine")
    pd.testing.assert_frame_equal(table.drop(columns="score"), engine.table.drop(columns="score"))
    assert verify_against_engine(table["score"], engine.table["score"], tolerance=1e-4) < 1e-4
    engine_plan = make_plan(RunSpec.build(str(tiny_rm_dir("llama")), PROMPTS, "vocab:0-49",
                                          device="cpu", dtype="float32"), tmp_path / "engine")
    assert not {u.key for u in engine_plan.units} & {u.key for u in worker.plan.units}


def test_verify_against_engine_fails_loudly():
    with pytest.raises(ScoreError, match=re.escape("max |Δ| = 0.5 > 0.01")):
        verify_against_engine([1.0, 2.0], [1.0, 2.5], tolerance=1e-2)
    with pytest.raises(ScoreError, match="cannot compare"):
        verify_against_engine([1.0], [1.0, 2.0], tolerance=1)


def test_score_with_the_vllm_backend_writes_its_table(tmp_path, monkeypatch):
    """`score(backend="vllm")` in one process: the run's manifest records no engine batching (vLLM
    batches for itself) instead of failing after every shard was scored."""
    from rmvalues.engines.vllm import VllmScorer, make_vllm_engine

    llm = ReferenceLLM(tiny_rm("llama"))
    monkeypatch.setattr(VllmScorer, "build", staticmethod(
        lambda spec, rm, llm_=None: make_vllm_engine(spec, rm, llm=llm)))
    result = score(str(tiny_rm_dir("llama")), PROMPTS, "vocab:0-49", tmp_path / "vllm",
                   device="cpu", dtype="float32", backend="vllm")
    engine = score(tiny_rm("llama"), PROMPTS, "vocab:0-49", tmp_path / "engine")
    assert verify_against_engine(result.table["score"], engine.table["score"], tolerance=1e-4) < 1e-4
    assert {k: result.manifest[k] for k in ("engine", "batch_size", "max_batch_tokens",
                                            "attention")} == {
        "engine": "vllm", "batch_size": None, "max_batch_tokens": None, "attention": None}
