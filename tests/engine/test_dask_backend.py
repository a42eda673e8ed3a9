"""The Dask backend gives the thread engine's bytes: in-process, on worker processes, faults too.

Skipped only without the optional extra (``.ci/run`` installs it). One two-process LocalCluster
is shared by the module: starting one costs seconds.
"""

import json
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")
cloudpickle = pytest.importorskip("cloudpickle")

from simlab.engine.dask_backend import (  # noqa: E402
    DaskRunner,
    _Batches,
    connect,
    run_batch,
)
from simlab.engine.executor import ChunkPlan, RunInterrupted, run_chunks  # noqa: E402
from simlab.experiments import REGISTRY  # noqa: E402
from simlab.runspec import build_spec  # noqa: E402
from simlab.simulate import decide_runs, simulate  # noqa: E402
from simlab.stats import Moments  # noqa: E402

# The fault-injecting samplers below live in this module, which the workers cannot import:
# they travel by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

#: one small run per experiment family (several chunks each, so tasks batch and complete out
#: of order); the same seed everywhere
FAMILIES = {
    "dropout": {"p": [0.3, 0.6], "samples": 24_000, "chunk_size": 1000},
    "kept-units thinning": {"samples": 20_000, "chunk_size": 1000},
    "batchnorm stats": {"samples": 4096, "chunk_size": 512},
    "propagation correlation": {"samples": 256, "chunk_size": 32, "L": 5, "width": 32},
}
SEED = 20261130


@pytest.fixture(scope="module")
def processes():
    """Two one-thread worker processes, started as ``--cluster local`` starts them."""
    with connect(cluster="local", workers=2) as runner:
        yield runner


@pytest.fixture(scope="module")
def local_cluster(processes):
    return processes.cluster


@pytest.fixture(scope="module")
def in_process():
    client = distributed.Client(
        processes=False, n_workers=2, threads_per_worker=1, dashboard_address=":0"
    )
    runner = DaskRunner(client, "in-process")
    runner.check_versions()
    yield runner
    client.close()


def _spec(name, **raw):
    return build_spec(REGISTRY[name], {"seed": SEED, "workers": 2, **raw}, [], lambda k: k)


def _checks(spec, runner=None) -> str:
    """The run's decided checks, as the bytes results.json would hold."""
    run = simulate(spec, None, runner)
    assert run.complete
    decide_runs([run], spec.alpha)
    return json.dumps([c.as_dict() for c in run.checks], sort_keys=True, default=repr)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_threads_in_process_and_worker_processes_give_the_same_checks(name, in_process, processes):
    spec = _spec(name, **FAMILIES[name])
    threads = _checks(spec)
    assert _checks(spec, in_process) == threads
    assert _checks(spec, processes) == threads


def test_target_se_stops_at_the_same_chunk(processes):
    spec = _spec("dropout", p=0.5, samples=200_000, chunk_size=1000, target_se=0.004)
    on_threads = simulate(spec)
    on_cluster = simulate(spec, None, processes)
    n = on_threads.points[0].n_samples
    assert 2000 <= n < spec.samples  # it did stop early, past the minimum
    assert on_cluster.points[0].n_samples == n
    decide_runs([on_threads], spec.alpha)
    decide_runs([on_cluster], spec.alpha)
    assert [c.as_dict() for c in on_cluster.checks] == [c.as_dict() for c in on_threads.checks]


class _Counted:
    """Delegates to a real sampler; once, on the ``at``-th call cluster-wide, does ``fault``."""

    def __init__(self, sampler, folder: Path, at: int, fault: str):
        self.sampler, self.folder, self.at, self.fault = sampler, str(folder), at, fault

    def __call__(self, rng, size):
        calls = Path(self.folder, "calls")
        with open(calls, "a") as fh:
            fh.write(".")
        fired = Path(self.folder, "fired")
        if calls.stat().st_size >= self.at and not fired.exists():
            fired.write_text(str(os.getpid()))
            if self.fault == "kill":
                os.kill(os.getpid(), signal.SIGKILL)  # the worker process dies mid-task
            raise RuntimeError("a transient failure")
        return self.sampler(rng, size)


def _dropout_run(sampler_wrap, runner):
    exp = REGISTRY["dropout"]
    spec = _spec("dropout", p=0.3, samples=40_000, chunk_size=1000)
    point = spec.points()[0]
    sampler = exp.sampler(point, exp.setup(point, np.random.default_rng(1)))
    plan = ChunkPlan(spec.samples, spec.chunk_size)
    wrapped = sampler_wrap(sampler)
    run = (runner or run_chunks)(wrapped, plan, entropy=SEED, point=0, workers=2)
    return repr(run.stats.estimates()), run.n_samples


@pytest.mark.parametrize("fault", ["kill", "raise"])
def test_a_killed_worker_or_a_task_that_raises_once_gives_the_same_bytes(
    fault, processes, tmp_path
):
    expected = _dropout_run(lambda s: s, None)
    pids = processes.client.run(os.getpid)  # worker address -> process id
    got = _dropout_run(lambda s: _Counted(s, tmp_path, at=12, fault=fault), processes)
    assert (tmp_path / "fired").exists()  # the fault did happen
    if fault == "kill":
        victim = int((tmp_path / "fired").read_text())
        with pytest.raises(ProcessLookupError):
            os.kill(victim, 0)
        (lost,) = [address for address, pid in pids.items() if pid == victim]
        _wait_for_a_replacement(processes.client, lost)  # the next tests want two workers
    assert got == expected


def _wait_for_a_replacement(client, lost: str, timeout: float = 300.0) -> None:
    """Until the scheduler has dropped the killed worker and its nanny's new one has joined.

    ``wait_for_workers(2)`` alone can return while the scheduler still lists the dead worker,
    and the restart (a new process importing NumPy, Dask and simlab) takes seconds on an idle
    machine but more than a minute at load 26: the next test then waited 60 s in vain.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        workers = client.scheduler_info(n_workers=-1)["workers"]
        if lost not in workers and len(workers) == 2:
            return
        time.sleep(0.2)
    raise AssertionError(f"the killed worker {lost} was not replaced within {timeout:g} s")


def test_two_runs_with_one_seed_and_different_parameters_differ(processes):
    """Even at once on one scheduler (two users' point 0, say): task keys are per run."""
    from concurrent.futures import ThreadPoolExecutor

    specs = [_spec("dropout", p=p, samples=8000, chunk_size=1000) for p in (0.2, 0.7)]
    with ThreadPoolExecutor(2) as pool:
        low, high = pool.map(lambda spec: _checks(spec, processes), specs)
    assert low != high
    assert (low, high) == (_checks(specs[0]), _checks(specs[1]))


def test_ctrl_c_keeps_the_partial_fold_and_cancels_the_rest(in_process):
    exp = REGISTRY["dropout"]
    point = {p.name: p.default for p in exp.params} | {"p": 0.3}
    sampler = exp.sampler(point, exp.setup(point, np.random.default_rng(1)))
    plan = ChunkPlan(60_000, 1000)

    def interrupt_at_fifth(acc, n):
        if n == 5000:
            raise KeyboardInterrupt

    with pytest.raises(RunInterrupted) as caught:
        in_process(sampler, plan, entropy=SEED, point=0, on_fold=interrupt_at_fifth)
    partial = caught.value.partial
    assert partial.n_chunks == 5 and partial.n_samples == 5000
    first_five = run_chunks(sampler, ChunkPlan(5000, 1000), entropy=SEED, point=0)
    assert repr(partial.stats.estimates()) == repr(first_five.stats.estimates())

    def simlab_tasks(dask_scheduler):
        return [k for k in dask_scheduler.tasks if str(k).startswith(("simlab", "Dropout"))]

    for _ in range(100):  # cancellation reaches the scheduler asynchronously
        if not in_process.client.run_on_scheduler(simlab_tasks):
            break
        time.sleep(0.05)
    assert in_process.client.run_on_scheduler(simlab_tasks) == []


def test_batches_last_the_target_from_the_first_chunk():
    batches = _Batches(ChunkPlan(10_000, 10), target_seconds=0.2)
    assert list(batches.indices(0)) == [0] and not batches.defined(1)
    batches.size_from(0.001, window=4)  # 1 ms chunks: 200 to a task
    assert batches.batch == 200
    covered = [i for b in range(1000) if batches.defined(b) for i in batches.indices(b)]
    assert covered == list(range(1000))
    few = _Batches(ChunkPlan(100, 10), target_seconds=0.2)
    few.size_from(0.001, window=4)  # but never so large that worker slots go idle
    assert few.batch == 2


def test_the_cli_runs_on_a_scheduler_and_records_it_outside_config(
    simlab, processes, local_cluster
):
    # both workers, before results.json counts them (seen once at load ~22: one still missing)
    processes.client.wait_for_workers(2, timeout=300)
    args = ["dropout", "--p", "0.4", "--samples", "6000", "--chunk-size", "1000"]
    args += ["--seed", "3", "--no-plots", "--quiet"]
    threads = simlab.json(*args, "--out", "threads")
    cluster = simlab.json(*args, "--out", "cluster", "--scheduler", local_cluster.scheduler_address)
    assert cluster["checks"] == threads["checks"]
    assert threads["engine"]["backend"] == "threads"
    engine = cluster["engine"]
    assert engine["backend"] == "dask" and engine["workers"] == 2
    assert engine["worker_versions"][0]["simlab"] == threads["versions"]["simlab"]
    config = (simlab.folder / "cluster" / "config.yaml").read_text()
    assert config == (simlab.folder / "threads" / "config.yaml").read_text()
    assert "scheduler" not in config


def test_a_worker_with_other_versions_or_without_simlab_is_refused_in_one_line(
    simlab, processes, local_cluster
):
    def pretend(version):
        import simlab as worker_simlab

        worker_simlab.__version__ = version

    def hide_simlab(hidden):
        if hidden:
            sys.modules["simlab_hidden"] = sys.modules["simlab"]
            sys.modules["simlab"] = None
        else:
            sys.modules["simlab"] = sys.modules.pop("simlab_hidden")

    from simlab import __version__ as simlab_version

    args = ["dropout", "--samples", "1000", "--no-plots"]
    address = local_cluster.scheduler_address
    try:
        processes.client.run(pretend, "0.0.1")
        result = simlab(*args, "--scheduler", address)
        assert result.exit_code == 2
        assert result.stderr.count("\n") == 1, result.stderr
        assert "simlab 0.0.1" in result.stderr and result.stderr.startswith("simlab: error:")
    finally:
        processes.client.run(pretend, simlab_version)
    try:
        processes.client.run(hide_simlab, True)
        result = simlab(*args, "--scheduler", address)
        assert result.exit_code == 2 and result.stderr.count("\n") == 1, result.stderr
        assert "cannot import simlab" in result.stderr
    finally:
        processes.client.run(hide_simlab, False)
    assert not list(simlab.folder.glob("outputs/*/*"))  # refused before any run folder


def test_an_unreachable_scheduler_is_one_line(simlab, monkeypatch):
    monkeypatch.setattr("simlab.engine.dask_backend.CONNECT_TIMEOUT", 0.5)
    result = simlab("dropout", "--samples", "1000", "--scheduler", "tcp://127.0.0.1:9")
    assert result.exit_code == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "could not reach the Dask scheduler" in result.stderr


def test_calibrate_spreads_seeds_to_the_same_result(in_process, monkeypatch):
    """Each seed one task; the result is the threads' to the byte (tiny budget: in-process, the
    patched library reaches the workers too)."""
    import simlab.calibrate as cal

    tiny = {"p": [0.3], "samples": 4000, "chunk_size": 1000}
    monkeypatch.setattr(cal, "budget_raw", lambda exp, budget: dict(tiny))
    real = cal._wrong_groups  # fresh records each call, as the library builds them
    monkeypatch.setattr(cal, "_wrong_groups", lambda: [g for g in real() if g[0].name == "dropout"])
    seeds = [5, 6, 7]
    threads = cal.calibrate("quick", seeds, parts=("wrong",))
    cluster = cal.calibrate("quick", seeds, parts=("wrong",), runner=in_process)
    assert cluster.complete and cluster.seeds == seeds
    assert json.dumps(cluster.as_dict(), default=repr) == json.dumps(
        threads.as_dict(), default=repr
    )


def test_a_point_resumed_on_the_cluster_folds_the_bytes_of_a_whole_one(in_process):
    def task(rng, size):
        return Moments.from_batch(rng.standard_normal((size, 2)))

    plan = ChunkPlan(9_000, 500)
    saved = []
    whole = run_chunks(task, plan, entropy=SEED, point=2, checkpoint=saved.append)
    on_cluster = []
    in_process(task, plan, entropy=SEED, point=2, checkpoint=on_cluster.append)
    assert [s.n_chunks for s in on_cluster] == [s.n_chunks for s in saved]  # saved as often
    for state in (saved[0], saved[7], saved[-1]):
        resumed = in_process(task, plan, entropy=SEED, point=2, start=state)
        assert (resumed.n_chunks, resumed.n_samples) == (whole.n_chunks, whole.n_samples)
        for field in ("mean", "m2", "m3", "m4"):
            assert np.array_equal(getattr(resumed.stats, field), getattr(whole.stats, field))


def test_batches_start_where_a_resumed_point_goes_on():
    batches = _Batches(ChunkPlan(1000, 10), target_seconds=0.2, first=37)
    assert list(batches.indices(0)) == [37]
    batches.size_from(0.001, window=4)
    covered = [i for b in range(1000) if batches.defined(b) for i in batches.indices(b)]
    assert covered == list(range(37, 100))


def test_the_local_cluster_runs_with_the_settings_it_states(processes):
    """The workers allocate as a plain process does (no MALLOC_TRIM_THRESHOLD_ from the nanny:
    it made every chunk's arrays fault in anew), skip the profiler and check their event loop
    less often."""

    def worker_settings():
        import os

        import dask

        return (
            os.environ.get("MALLOC_TRIM_THRESHOLD_"),
            dask.config.get("distributed.worker.profile.enabled"),
            dask.config.get("distributed.admin.tick.interval"),
        )

    expected = {(None, False, "200ms")}
    assert set(processes.client.run(worker_settings).values()) == expected
    # a worker its nanny starts again (after a crash, say) too
    restarted = sorted(processes.client.scheduler_info(n_workers=-1)["workers"])[0]
    processes.client.restart_workers([restarted])
    processes.client.wait_for_workers(2, timeout=300)
    found = processes.client.run(worker_settings)
    assert len(found) == 2 and set(found.values()) == expected


def test_a_batch_reports_its_cpu_time_not_the_time_it_waited():
    """Batches are sized from it: on a busy machine the wall clock of the first chunk grew with
    the load and shrank the tasks. A chunk that sleeps spends almost no CPU."""

    def sleepy(rng, size):
        time.sleep(0.3)
        return Moments.from_batch(rng.standard_normal((size, 1)))

    results, seconds = run_batch(sleepy, SEED, 0, [(0, 10), (1, 10)])
    assert len(results) == 2
    assert seconds < 0.25  # two 0.3 s waits, a few milliseconds of work
