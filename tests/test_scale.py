"""Scale-out core: units share the engine's shard keys, plans, the local executor, resume after a
real SIGKILL, the streaming merge and lexicon join, executor config files, `rmvalues plan`."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys

import pandas as pd
import pytest

from _engine_models import tiny_rm, tiny_rm_dir
from rmvalues.analysis.lexicon_join import lexicon_join, reference_lexicon_join
from rmvalues.api import score
from rmvalues.cli import main
from rmvalues.runs import RunSpec, make_plan, probe_model
from rmvalues.runs.table import merge_shards
from rmvalues.scale import ExecutorError, execute, read_executor_config
from rmvalues.store.manifest import build_manifest, manifest_path, read_manifest, read_results

PROMPTS = {f"p{i}": f"Name the best quality number {i}, in one word." for i in range(3)}
CANDIDATES = "vocab:0-299"


def spec(**options):
    return RunSpec.build(str(tiny_rm_dir("llama")), PROMPTS, CANDIDATES, device="cpu",
                         dtype="float32", **options)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The plain engine's table for the same run (``rmvalues score``)."""
    out = tmp_path_factory.mktemp("reference")
    return read_results(score(tiny_rm("llama"), PROMPTS, CANDIDATES, out).path)


@pytest.mark.parametrize("family", ["llama", "gemma"])
def test_probe_records_what_loading_records(family):
    """Planning without weights must compute the workers' keys: provenance equal to a real load."""
    probed = probe_model(RunSpec.build(str(tiny_rm_dir(family)), PROMPTS, CANDIDATES,
                                       device="cpu", dtype="float32"))
    assert probed.provenance() == tiny_rm(family).provenance()


def test_one_unit_per_prompt_is_the_engine_shard(tmp_path, reference):
    """With no shard size, unit keys are score()'s shard keys: each resumes the other's shards."""
    score(tiny_rm("llama"), PROMPTS, CANDIDATES, tmp_path)
    plan = make_plan(spec(), tmp_path)
    assert [u.id for u in plan.units] == ["p0[0:300]", "p1[0:300]", "p2[0:300]"]
    assert plan.remaining() == [] and plan.estimate()["done"] == 3
    (tmp_path / "llama-0.parquet").unlink()
    result = execute(spec(), tmp_path, rm=tiny_rm("llama"))
    assert result.finished == []  # nothing recomputed: only merged
    pd.testing.assert_frame_equal(read_results(result.path), reference)


def test_plan_estimate_and_sharded_local_run(tmp_path, reference):
    plan = make_plan(spec(shard_size=128), tmp_path)
    assert [u.id for u in plan.units[:3]] == ["p0[0:128]", "p0[128:256]", "p0[256:300]"]
    assert len({u.key for u in plan.units}) == 9
    prefix = len(plan.context.splits["p0"].prefix_ids)
    suffix = len(plan.context.splits["p0"].suffix_ids)
    # Prefix path: the prefix once per unit plus (token + suffix) per candidate.
    assert plan.units[0].token_forwards == prefix + 128 * (1 + suffix)
    est = plan.estimate()
    assert (est["units"], est["done"], est["remaining"], est["scores"]) == (9, 0, 9, 900)
    assert est["token_forwards"] == est["token_forwards_remaining"] > 900
    result = execute(spec(shard_size=128), tmp_path)
    assert len(result.finished) == 9 and "9 run now by the local executor" in result.summary
    pd.testing.assert_frame_equal(read_results(result.path), reference)
    fields = read_manifest(manifest_path(result.path)).fields
    assert fields["executor"] == "local" and len(fields["shard_keys"]) == 9
    assert fields["engine"] == "prefix" and fields["weights_fingerprint"]
    assert make_plan(spec(shard_size=128), tmp_path).estimate()["remaining"] == 0


_KILLED_RUN = """
import os, signal, sys
from rmvalues.runs import RunSpec
from rmvalues.scale import execute
spec = RunSpec.from_json(open(sys.argv[1]).read())
seen = []
def die(unit):
    seen.append(unit.id)
    if len(seen) == 4:
        os.kill(os.getpid(), signal.SIGKILL)  # the worker dies mid-run, no clean-up of any kind
execute(spec, sys.argv[2], on_unit=die)
"""


def test_killed_worker_rerun_finishes_only_missing_units(tmp_path, reference):
    run_spec = spec(shard_size=64)
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(run_spec.to_json())
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-c", _KILLED_RUN, str(spec_file), str(out)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    plan = make_plan(run_spec, out)
    done = {u.id for u in plan.done()}
    missing = [u.id for u in plan.remaining()]
    assert len(done) == 4 and len(missing) == 11
    assert not plan.store.table_path.exists()
    assert not list(plan.store.shard_dir.glob(".*.tmp"))  # no partial shard left behind
    with pytest.raises(ExecutorError, match="11 of 15 unit"):
        from rmvalues.runs.table import merge_plan

        merge_plan(plan)
    result = execute(run_spec, out, rm=tiny_rm("llama"))
    assert result.finished == missing
    pd.testing.assert_frame_equal(read_results(result.path), reference)


def test_merge_streams_shards_in_order(tmp_path, reference):
    parts = []
    for i, (_, frame) in enumerate(reference.groupby("prompt_id", sort=False)):
        path = tmp_path / f"part{i}.parquet"
        from rmvalues.store.manifest import write_results

        write_results(frame.reset_index(drop=True), path, build_manifest("rm-scores-shard"))
        parts.append(path)
    merged = merge_shards(parts, tmp_path / "all.parquet", build_manifest("rm-scores"),
                          batch_rows=50)
    pd.testing.assert_frame_equal(read_results(merged), reference)
    assert read_manifest(manifest_path(merged)).kind == "rm-scores"


@pytest.mark.parametrize("match", ["exact", "paper"])
def test_streaming_lexicon_join_equals_in_memory_join(tmp_path, reference, match):
    from rmvalues.analysis.ranks import MatchPolicy

    table = tmp_path / "t.parquet"
    from rmvalues.store.manifest import write_results

    write_results(reference, table, build_manifest("rm-scores"))
    words = reference["candidate"].drop_duplicates().iloc[::7].tolist()
    terms = words + [w.strip().upper() for w in words[:10]]
    lexicon = pd.DataFrame({"term": terms, "category": ["AB"[i % 2] for i in range(len(terms))]})
    policy = MatchPolicy(match=match)
    fast = lexicon_join([table, table], lexicon, policy, memory_limit="256MB",
                        temp_directory=tmp_path / "spill", threads=1)
    slow = reference_lexicon_join([table, table], lexicon, policy)
    assert len(fast) > 20
    pd.testing.assert_frame_equal(fast, slow)


def test_executor_config_files(tmp_path):
    toml = tmp_path / "ex.toml"
    toml.write_text('executor = "slurm"\n[slurm]\nunits_per_job = 4\n'
                    'parameters = {slurm_partition = "gpu", timeout_min = 60}\n'
                    '[ray]\nactors = 2\n')
    config = read_executor_config(toml)
    assert config["executor"] == "slurm" and config["slurm"]["units_per_job"] == 4
    yaml_file = tmp_path / "ex.yaml"
    yaml_file.write_text("accelerate:\n  nproc_per_node: 2\n  launcher: torchrun\n")
    assert read_executor_config(yaml_file)["accelerate"]["nproc_per_node"] == 2
    for text, message in [("[slurm]\nunits = 4\n", "has no option 'units'"),
                          ("[slrum]\n", "unknown section 'slrum'"),
                          ("[ray]\nactors = '2'\n", "wrong type"),
                          ('executor = "k8s"\n', "unknown executor 'k8s'"),
                          ("[ray\n", "not valid")]:
        toml.write_text(text)
        with pytest.raises(ExecutorError, match=message):
            read_executor_config(toml)
    (tmp_path / "ex.json").write_text("{}")
    with pytest.raises(ExecutorError, match="must be a .toml"):
        read_executor_config(tmp_path / "ex.json")


def test_bad_inputs_are_named(tmp_path):
    from rmvalues.errors import InputError, ModelError

    with pytest.raises(InputError, match="shard size"):
        spec(shard_size=0)
    with pytest.raises(ExecutorError, match="unknown executor"):
        execute(spec(), tmp_path, "spark")
    with pytest.raises(ExecutorError, match="only run on the local executor"):
        execute(spec(), tmp_path, "ray", rm=tiny_rm("llama"))
    with pytest.raises(ModelError, match="not both"):
        probe_model(RunSpec.build(str(tiny_rm_dir("llama")), PROMPTS, CANDIDATES, device="cpu",
                                  device_map="auto"))


def test_truncate_candidates_keys_units_apart_as_score_does(tmp_path):
    """--truncate-candidates (a ScoreOptions field): plan, executors and score() key its shards
    apart from a plain run's, and the same way; bad option values fail before any loading."""
    from rmvalues.errors import InputError

    plain = make_plan(spec(), None)
    cut = make_plan(spec(truncate_candidates=True), None)
    assert all(a.key != b.key for a, b in zip(plain.units, cut.units, strict=True))
    scored = score(tiny_rm("llama"), PROMPTS, CANDIDATES, tmp_path, truncate_candidates=True)
    assert scored.manifest["shard_keys"] == {u.prompt_id: u.key for u in cut.units}
    assert scored.manifest["truncated_candidates"] == 0  # nothing here is too long to score
    assert RunSpec.from_json(spec(truncate_candidates=True).to_json()).truncate_candidates
    with pytest.raises(InputError, match="--batch-size must be at least 1"):
        spec(batch_size=0)
    with pytest.raises(InputError, match="needs the engine backend"):
        spec(truncate_candidates=True, backend="vllm")


def test_spec_round_trips_through_json():
    run_spec = RunSpec.build(str(tiny_rm_dir("llama")), PROMPTS, ["good", "kind"], shard_size=5)
    assert RunSpec.from_json(run_spec.to_json()) == run_spec
    assert json.loads(run_spec.to_json())["prompts"][0] == ["p0", PROMPTS["p0"]]


def test_device_map_auto_loads_and_scores_the_same(tmp_path, reference):
    """device_map='auto' goes through the loader (CPU only here: every layer lands on the CPU)."""
    result = execute(RunSpec.build(str(tiny_rm_dir("llama")), PROMPTS, CANDIDATES,
                                   dtype="float32", device_map="auto"), tmp_path)
    pd.testing.assert_frame_equal(read_results(result.path), reference)


def test_cli_plan_and_score_with_executor(tmp_path, capsys):
    model = str(tiny_rm_dir("llama"))
    prompts = tmp_path / "prompts.yaml"
    prompts.write_text("name: two\nprompts:\n"
                       "  - {id: a, text: 'Name the best quality, in one word.'}\n"
                       "  - {id: b, text: 'Name the worst quality, in one word.'}\n")
    common = ["--model", model, "--out", str(tmp_path / "out"), "--prompts", str(prompts),
              "--candidates", "vocab:0-99", "--shard-size", "40", "--device", "cpu",
              "--dtype", "float32"]
    assert main(["plan", *common, "--units"]) == 0
    text = capsys.readouterr().out
    assert "todo  a[0:40]" in text and "6 unit(s), 0 done, 6 remaining" in text
    assert main(["score", *common, "--executor", "local", "--quiet"]) == 0
    assert "6 run now by the local executor" in capsys.readouterr().out
    assert main(["plan", *common]) == 0
    assert "6 unit(s), 6 done, 0 remaining" in capsys.readouterr().out
    assert main(["score", *common, "--executor", "local", "--verify", "2"]) == 2


#: What only `rmvalues score`'s own manifest records (how this process ran), besides the fields
#: every run's table records (:func:`rmvalues.runs.keys.run_manifest_fields`).
SCORE_ONLY = {"batch_size", "max_batch_tokens", "attention", "determinism", "special_token_ids",
              "verify", "truncated_candidates"}
#: What only the executors' merge records.
MERGE_ONLY = {"executor", "paper_compatible", "shard_size", "token_forwards"}


@pytest.mark.parametrize("paper_compatible", [False, True])
def test_merged_manifest_records_what_a_local_run_records(tmp_path, paper_compatible):
    """The executors' merge writes the same run fields as `score` (score definition, head dtype,
    pooling, prompt file, ...), also when its coordinator holds only a probe of the model."""
    from rmvalues.runs.table import merge_plan

    prompts = tmp_path / "two.yaml"
    prompts.write_text("name: two\nprompts:\n  - {id: a, text: 'Name the best quality.'}\n"
                       "  - {id: b, text: 'Name the worst quality.'}\n")
    options = {"device": "cpu", "dtype": "bfloat16", "paper_compatible": paper_compatible}
    model = str(tiny_rm_dir("llama"))
    local = score(model, str(prompts), ["good", "bad"], tmp_path / "score", **options)
    run_spec = RunSpec.build(model, str(prompts), ["good", "bad"], **options)
    merged = {}
    for name in ("local", "probe"):  # the local executor holds the loaded model; a remote one's
        out = tmp_path / name        # coordinator only a probe (no weights)
        if name == "local":
            path = execute(run_spec, out).path
        else:
            shutil.copytree(tmp_path / "score" / "shards", out / "shards")
            plan = make_plan(run_spec, out)
            assert not hasattr(plan.context.rm, "backbone")
            path = merge_plan(plan, executor="ray")
        merged[name] = read_manifest(manifest_path(path)).fields
    want = {k: v for k, v in local.manifest.items() if k not in SCORE_ONLY}
    assert want["prompt_file"] == str(prompts.resolve())
    assert want["head_dtype"] == ("bfloat16" if paper_compatible else "float32")
    assert want["pooling"].startswith("before the first pad" if paper_compatible else "the last")
    for name, fields in merged.items():
        assert set(fields) - MERGE_ONLY - {"content_sha256", "rows"} == set(want), name
        assert {k: fields[k] for k in want if k != "shard_keys"} == {
            k: v for k, v in want.items() if k != "shard_keys"}, name


def test_a_probe_records_the_score_definition_a_load_records():
    """URM in paper mode reads logits[:, 0]: the head class says so without its weights."""
    from rmvalues.models.heads.urm import URMHead

    head = URMHead.__new__(URMHead)
    for first_logit_only in (False, True):
        head.first_logit_only = first_logit_only
        assert URMHead.definition(first_logit_only=first_logit_only) == head.score_definition
