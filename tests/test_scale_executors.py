"""The same run on every executor gives the same table: local, 2 ranks under torchrun (gloo),
SLURM job arrays through submitit's local executor, Ray in local mode; runs resume across them."""

from __future__ import annotations

import pandas as pd
import pytest

from _engine_models import tiny_rm, tiny_rm_dir
from rmvalues.runs import RunSpec, make_plan
from rmvalues.scale import ExecutorError, execute
from rmvalues.scale.executors.distributed import launch_command
from rmvalues.store.manifest import manifest_path, read_manifest, read_results

PROMPTS = {f"p{i}": f"Name the best quality number {i}, in one word." for i in range(2)}
CANDIDATES = "vocab:0-299"


def spec() -> RunSpec:
    return RunSpec.build(str(tiny_rm_dir("llama")), PROMPTS, CANDIDATES, device="cpu",
                         dtype="float32", shard_size=100)


@pytest.fixture(scope="module")
def local_table(tmp_path_factory):
    out = tmp_path_factory.mktemp("local")
    result = execute(spec(), out, rm=tiny_rm("llama"))
    assert len(result.finished) == 6
    return read_results(result.path)


def test_torchrun_two_ranks_equal_local(tmp_path, local_table):
    config = {"accelerate": {"nproc_per_node": 2, "launcher": "torchrun",
                             "env": {"OMP_NUM_THREADS": "1"}}}
    result = execute(spec(), tmp_path, "accelerate", config)
    pd.testing.assert_frame_equal(read_results(result.path), local_table)
    assert len(result.finished) == 6
    ranks = sorted({read_manifest(manifest_path(p)).fields["rank"]
                    for p in result.plan.store.shard_dir.glob("*.parquet")})
    assert ranks == ["0", "1"]  # both ranks wrote units
    assert read_manifest(manifest_path(result.path)).fields["executor"] == "accelerate"


def test_launch_commands():
    cmd = launch_command("s.json", "out", nproc_per_node=8)
    assert cmd[1:5] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=8"]
    assert cmd[-5:] == ["-m", "rmvalues.runs.worker", "s.json", "out", "--no-merge"]
    acc = launch_command("s.json", "out", nproc_per_node=2, launcher="accelerate",
                         extra_args=["--multi_gpu"])
    assert acc[1:5] == ["-m", "accelerate.commands.launch", "--num_processes=2", "--multi_gpu"]
    with pytest.raises(ExecutorError, match="unknown launcher"):
        launch_command("s.json", "out", nproc_per_node=2, launcher="mpirun")
    with pytest.raises(ExecutorError, match="device_map"):
        execute(RunSpec.build(str(tiny_rm_dir("llama")), PROMPTS, CANDIDATES, dtype="float32",
                              device_map="auto"), "unused-out", "accelerate",
                {"accelerate": {"nproc_per_node": 2}})


def test_remote_gpu_workers_are_planned_for_cuda():
    from rmvalues.scale import _for_workers

    cpu = RunSpec.build("m", PROMPTS, CANDIDATES)
    gpu_slurm = {"parameters": {"gpus_per_node": 1}}
    assert _for_workers(cpu, "slurm", gpu_slurm).device == "cuda"
    assert _for_workers(cpu, "ray", {"num_gpus_per_actor": 1}).device == "cuda"
    assert _for_workers(cpu, "slurm", {"parameters": {"timeout_min": 5}}).device is None
    assert _for_workers(spec(), "slurm", gpu_slurm).device == "cpu"  # an explicit device stays


def test_ranks_refuse_device_map(tmp_path, monkeypatch):
    from rmvalues.runs.worker import distributed_main
    from rmvalues.scale.executors.distributed import write_spec

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    path = write_spec(RunSpec.build("m", PROMPTS, CANDIDATES, device_map="auto"), tmp_path)
    with pytest.raises(ExecutorError, match="one process per node"):
        distributed_main(path, tmp_path)


def test_slurm_array_through_submitit_local_equals_local(tmp_path, local_table):
    pytest.importorskip("submitit")
    run_spec = spec()
    # Half the units are already done (e.g. by an earlier run on another executor).
    execute(run_spec, tmp_path, rm=tiny_rm("llama"), merge=False)
    plan = make_plan(run_spec, tmp_path)
    for unit in plan.units[::2]:
        plan.shard_path(unit).unlink()
    missing = [u.id for u in plan.remaining()]
    config = {"slurm": {"cluster": "local", "units_per_job": 2,
                        "parameters": {"timeout_min": 10}}}
    result = execute(run_spec, tmp_path, "slurm", config)
    assert result.finished == missing  # only the missing units ran, as 2 array tasks
    pd.testing.assert_frame_equal(read_results(result.path), local_table)
    logs = list((tmp_path / ".scale" / "submitit").glob("*_0_log.out"))
    assert len(logs) == 2  # two array tasks (the _0 suffix is the task's rank)


def test_slurm_failed_task_is_reported(tmp_path):
    pytest.importorskip("submitit")
    bad = RunSpec.build(str(tiny_rm_dir("llama")), PROMPTS, CANDIDATES, device="cpu",
                        dtype="bfloat16", shard_size=100)  # planned as bf16 ...
    plan = make_plan(bad, tmp_path)
    from rmvalues.scale.executors.slurm import execute_slurm

    float_spec = spec()  # ... but the tasks load float32: their keys are not the plan's
    with pytest.raises(ExecutorError, match="array task"):
        execute_slurm(float_spec, tmp_path, [u.key for u in plan.units[:1]],
                      {"cluster": "local", "parameters": {"timeout_min": 10}})


def test_ray_local_mode_equals_local(tmp_path, local_table):
    pytest.importorskip("ray")
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        result = execute(spec(), tmp_path, "ray", {"ray": {"actors": 2}})
    finally:
        ray.shutdown()
    assert len(result.finished) == 6
    pd.testing.assert_frame_equal(read_results(result.path), local_table)


_DYING_RANK = """
import os, signal, sys
from rmvalues.runs import worker

original = worker.UnitWorker.run

def run(self, keys=None, on_unit=None):
    def die(unit):
        if os.environ["RANK"] == "1":
            os.kill(os.getpid(), signal.SIGKILL)  # rank 1 dies after its first unit
    return original(self, keys, on_unit=die)

worker.UnitWorker.run = run
sys.exit(worker.main(sys.argv[1:]))
"""


def test_killed_rank_rerun_elsewhere_finishes_only_missing_units(tmp_path, local_table):
    import subprocess
    import sys

    from rmvalues.scale.executors.distributed import write_spec

    run_spec = spec()
    out = tmp_path / "out"
    script = tmp_path / "dying_rank.py"
    script.write_text(_DYING_RANK)
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         str(script), str(write_spec(run_spec, out)), str(out), "--no-merge"],
        capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode != 0
    plan = make_plan(run_spec, out)
    missing = [u.id for u in plan.remaining()]
    assert 2 <= len(missing) <= 5, missing  # rank 1 wrote one of its three units, then died
    result = execute(run_spec, out, rm=tiny_rm("llama"))  # resumed on another executor
    assert result.finished == missing
    pd.testing.assert_frame_equal(read_results(result.path), local_table)
