"""Kill any worker mid-run, then re-run: only the missing units run and the table is identical.

test_scale.py and test_scale_executors.py kill the local worker and a torchrun rank; here a Ray
actor and a SLURM array task (submitit's local executor) SIGKILL their own process after their
first finished unit. The run fails naming the unfinished units, nothing partial is left on disk,
and the re-run (the local executor after the Ray kill, SLURM again after the SLURM kill) computes
exactly those units, leaves the finished shards alone and merges the uninterrupted run's table.
"""

from __future__ import annotations

import os
import signal
from types import SimpleNamespace

import pandas as pd
import pytest

from _engine_models import tiny_rm
from rmvalues.runs import make_plan
from rmvalues.scale import WorkersFailedError, execute
from rmvalues.store.manifest import read_results
from test_scale_executors import local_table, spec  # noqa: F401 - the uninterrupted run's table


def _interrupted_state(run_spec, out):
    """After the killed run: the units left, the finished shards' mtimes; nothing partial."""
    plan = make_plan(run_spec, out)
    assert not plan.store.table_path.exists()  # no merge of an unfinished run
    assert not list(plan.store.shard_dir.glob(".*.tmp"))  # no partial shard left behind
    done = {u.id: plan.shard_path(u).stat().st_mtime_ns for u in plan.done()}
    return [u.id for u in plan.remaining()], done


def _assert_resumed(result, missing, done, table):
    assert result.finished == missing  # exactly the missing units ran
    after = make_plan(result.plan.spec, result.plan.store.out)
    assert {u.id: after.shard_path(u).stat().st_mtime_ns for u in after.units
            if u.id in done} == done  # the shards finished before the kill were not rewritten
    pd.testing.assert_frame_equal(read_results(result.path), table)


def test_killed_ray_actor_rerun_finishes_only_missing_units(tmp_path, local_table,  # noqa: F811
                                                            monkeypatch):
    ray = pytest.importorskip("ray")
    from rmvalues.scale.executors import ray_actors

    marker = str(tmp_path / "one-actor-died")

    class DyingActor(ray_actors._UnitActor):
        """The first actor handed a second unit SIGKILLs its own process before scoring it."""

        def run(self, keys):
            self.calls = getattr(self, "calls", 0) + 1
            if self.calls == 2:
                try:
                    os.close(os.open(marker, os.O_CREAT | os.O_EXCL))  # only one actor dies
                except FileExistsError:
                    pass
                else:
                    os.kill(os.getpid(), signal.SIGKILL)
            return super().run(keys)

    run_spec, out = spec(), tmp_path / "out"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        with monkeypatch.context() as patch:
            patch.setattr(ray_actors, "_UnitActor", DyingActor)  # pickled by value to the actors
            with pytest.raises(WorkersFailedError) as failed:
                execute(run_spec, out, "ray", {"ray": {"actors": 2}})
        missing, done = _interrupted_state(run_spec, out)
        # The dead actor lost the unit it had started; the surviving actor ran all the others.
        assert len(missing) == 1 and len(done) == 5
        message = str(failed.value)
        assert "its actor died" in message and "ActorDiedError" in message
        assert f"Unfinished: 1 of 6 unit(s) ({missing[0]}); re-running the same command" in message
    finally:
        ray.shutdown()
    # Resumed on another executor (re-running on Ray takes the same path as the SLURM re-run
    # below: execute() hands the remote executor only the plan's remaining units).
    result = execute(run_spec, out, rm=tiny_rm("llama"))
    _assert_resumed(result, missing, done, local_table)


def test_killed_slurm_task_rerun_submits_only_missing_units(tmp_path, local_table,  # noqa: F811
                                                            monkeypatch):
    submitit = pytest.importorskip("submitit")
    from rmvalues.runs import worker
    from rmvalues.scale.executors import slurm

    run_spec, out = spec(), tmp_path / "out"
    config = {"slurm": {"cluster": "local", "units_per_job": 3, "parameters": {"timeout_min": 10}}}
    units = make_plan(run_spec, out).units
    victim = units[0].key

    def run_units_job(spec_json, out, keys):
        """An array task; the one holding the run's first unit is SIGKILLed right after it."""

        def die(unit):
            if unit.key == victim:
                os.kill(os.getpid(), signal.SIGKILL)

        return worker.UnitWorker(spec_json, out).run(keys, on_unit=die)

    # submitit waits 15 s for a dead task's result file to show up on NFS; none does locally.
    monkeypatch.setattr(submitit.core.core.Job, "_results_timeout_s", 0)
    with monkeypatch.context() as patch:
        patch.setattr(worker, "run_units_job", run_units_job)  # pickled by value to the tasks
        with pytest.raises(WorkersFailedError) as failed:
            execute(run_spec, out, "slurm", config)
    missing, done = _interrupted_state(run_spec, out)
    assert missing == [u.id for u in units[1:3]]  # the rest of the killed task's chunk
    message = str(failed.value)
    assert "1 of 2 array task(s) failed" in message and "the task died before returning" in message
    assert f"units {', '.join(u.id for u in units[:3])}:" in message  # the dead task's units
    assert f"Unfinished: 2 of 6 unit(s) ({', '.join(missing)})" in message

    submitted = []
    original = slurm.execute_slurm

    def spy(spec, out, keys, *args):
        submitted.append(list(keys))
        return original(spec, out, keys, *args)

    monkeypatch.setattr(slurm, "execute_slurm", spy)
    result = execute(run_spec, out, "slurm", config)
    assert submitted == [[u.key for u in units[1:3]]]  # only the missing units were submitted
    _assert_resumed(result, missing, done, local_table)


class _Died(Exception):
    pass


class _Raised(_Died):
    def __init__(self, cause):
        super().__init__(str(cause))
        self.cause = cause


class _Ref:
    def __init__(self, keys, outcome):
        self.keys, self.outcome = keys, outcome


class _FakeActor:
    """Scripted outcomes per call: True (the unit is written) or the exception its call raises."""

    def __init__(self, outcomes):
        self.outcomes = list(outcomes)
        self.run = SimpleNamespace(remote=lambda keys: _Ref(keys, self.outcomes.pop(0)))


def _fake_ray():
    def get(ref):
        if isinstance(ref.outcome, Exception):
            raise ref.outcome
        return ref.keys

    return SimpleNamespace(wait=lambda refs, num_returns: (refs[:1], refs[1:]), get=get,
                           exceptions=SimpleNamespace(RayTaskError=_Raised, RayError=_Died))


def test_ray_scheduling_keeps_going_on_surviving_actors():
    """A dead actor leaves the pool, a raising unit does not kill its actor, and when every actor
    is dead the units never started are returned (no hang, no unit silently dropped)."""
    from rmvalues.scale.executors.ray_actors import _run_on_actors

    keys = [f"k{i}" for i in range(6)]
    dies = _FakeActor([True, _Died("SIGKILL")])
    lives = _FakeActor([True, _Raised(ValueError("bad unit")), True, True])
    written, failures, unstarted = _run_on_actors(_fake_ray(), [dies, lives], keys)
    assert sorted(written) == ["k0", "k1", "k4", "k5"] and unstarted == []
    assert [k for k, _ in failures] == ["k2", "k3"]
    reasons = dict(failures)
    assert reasons["k2"] == "ValueError: bad unit"  # the actor lived on and took k4, k5
    assert reasons["k3"] == "its actor died (_Died: SIGKILL)"

    all_die = [_FakeActor([_Died("x")]), _FakeActor([True, _Died("y")])]
    written, failures, unstarted = _run_on_actors(_fake_ray(), all_die, keys)
    assert written == ["k0"] and [k for k, _ in failures] == ["k1", "k2"]
    assert unstarted == ["k3", "k4", "k5"]


def test_failed_launch_names_unfinished_units_and_a_complete_run_still_merges(
        tmp_path, local_table, monkeypatch, caplog):  # noqa: F811
    from rmvalues.scale.executors import ray_actors

    run_spec = spec()
    bad_launch = {"accelerate": {"nproc_per_node": 1, "extra_args": ["--no-such-flag"]}}
    with pytest.raises(WorkersFailedError, match=r"torchrun with 1 process\(es\) exited with .*"
                       r"Unfinished: 6 of 6 unit\(s\) \(p0\[0:100\], .*p1\[200:300\]\); "
                       "re-running the same command runs only those"):
        execute(run_spec, tmp_path, "accelerate", bad_launch)

    # A worker that dies after writing its last unit (the others finished the rest) fails the
    # executor, yet every unit is on disk: the run merges, with a warning instead of an error.
    execute(run_spec, tmp_path, rm=tiny_rm("llama"), merge=False)

    def died_late(spec, out, keys, options=None, names=None):
        raise WorkersFailedError("a Ray actor died after writing its unit")

    monkeypatch.setattr(ray_actors, "execute_ray", died_late)
    result = execute(run_spec, tmp_path, "ray")
    assert result.finished == [] and "every unit is written nonetheless" in caplog.text
    pd.testing.assert_frame_equal(read_results(result.path), local_table)
