"""The engine: chunk plans, per-chunk seeding, in-order folding, worker-independence, stopping."""

import threading
import time

import numpy as np
import pytest

from simlab.engine.executor import ChunkPlan, RunInterrupted, run_chunks
from simlab.engine.seeding import chunk_rng, setup_rng
from simlab.stats import Moments


def test_plan_sizes_cover_all_samples():
    plan = ChunkPlan(10_001, 1000)
    assert plan.n_chunks == 11
    assert sum(plan.size(i) for i in range(plan.n_chunks)) == 10_001
    assert plan.size(10) == 1


def test_streams_are_distinct_and_reproducible():
    a = chunk_rng(42, 0, 0).random(4)
    assert np.array_equal(a, chunk_rng(42, 0, 0).random(4))
    others = [chunk_rng(42, 0, 1), chunk_rng(42, 1, 0), chunk_rng(43, 0, 0), setup_rng(42, 0)]
    for rng in others:
        assert not np.array_equal(a, rng.random(4))


def _task(rng, size):
    # Finish out of order on purpose: later chunks sometimes finish first.
    time.sleep(rng.random() * 0.002)
    return Moments.from_batch(rng.standard_normal((size, 3)))


@pytest.mark.parametrize("workers", [2, 3])
def test_results_do_not_depend_on_workers(workers):
    plan = ChunkPlan(5000, 300)
    one = run_chunks(_task, plan, entropy=9, point=0, workers=1)
    many = run_chunks(_task, plan, entropy=9, point=0, workers=workers)
    assert one.n_samples == many.n_samples == 5000
    for field in ("mean", "m2", "m3", "m4"):
        assert np.array_equal(getattr(one.stats, field), getattr(many.stats, field))


def test_fold_is_in_chunk_order():
    seen = []
    plan = ChunkPlan(100, 10)
    run_chunks(
        lambda rng, n: [n],
        plan,
        entropy=1,
        point=0,
        workers=3,
        fold=lambda acc, new: acc + new,
        on_fold=lambda acc, n: seen.append(n),
    )
    assert seen == list(range(10, 101, 10))


def test_should_stop_is_deterministic_across_workers():
    plan = ChunkPlan(100_000, 1000)

    def stop(acc, n):
        return float(acc.sem.max()) < 0.02

    runs = [
        run_chunks(_task, plan, entropy=4, point=0, workers=w, should_stop=stop) for w in (1, 2)
    ]
    assert runs[0].stopped_early and runs[0].n_samples < 100_000
    assert runs[0].n_samples == runs[1].n_samples
    assert np.array_equal(runs[0].stats.mean, runs[1].stats.mean)


def test_in_flight_chunks_are_bounded():
    live = []
    lock = threading.Lock()
    peak = [0]

    def task(rng, size):
        with lock:
            live.append(1)
            peak[0] = max(peak[0], len(live))
        time.sleep(0.001)
        with lock:
            live.pop()
        return [size]

    run_chunks(task, ChunkPlan(200, 1), entropy=1, point=0, workers=2, fold=lambda a, b: a + b)
    assert peak[0] <= 2


def test_keyboard_interrupt_carries_partial_statistics():
    def task(rng, size):
        if task.calls == 3:
            raise KeyboardInterrupt
        task.calls += 1
        return Moments.from_batch(np.ones((size, 1)))

    task.calls = 0
    with pytest.raises(RunInterrupted) as info:
        run_chunks(task, ChunkPlan(100, 10), entropy=1, point=0, workers=1)
    assert info.value.partial.n_samples == 30


def _blas_threads() -> list[int]:
    from threadpoolctl import threadpool_info

    return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]


@pytest.mark.parametrize("workers", [1, 2])
def test_blas_is_single_threaded_inside_chunks_and_restored_after(workers):
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=2, user_api="blas"):
        before = _blas_threads()
        seen = run_chunks(
            lambda rng, size: _blas_threads(),
            ChunkPlan(4, 1),
            entropy=0,
            point=0,
            workers=workers,
            fold=lambda a, b: a + b,
        ).stats
        assert seen and set(seen) == {1}
        assert _blas_threads() == before == [2] * len(before)


# -- resuming from a saved state -----------------------------------------------------------


def _stats_equal(a, b) -> bool:
    return a.n == b.n and all(
        np.array_equal(getattr(a, f), getattr(b, f)) for f in ("mean", "m2", "m3", "m4")
    )


@pytest.mark.parametrize("workers", [1, 2])
def test_a_run_resumed_from_any_checkpoint_folds_the_same_bytes(workers):
    plan = ChunkPlan(2300, 300)  # 8 chunks, the last one shorter
    saved = []
    whole = run_chunks(_task, plan, entropy=5, point=1, workers=workers, checkpoint=saved.append)
    # handed out after every fold but the last, each a state of its own (not one shared object)
    assert [s.n_chunks for s in saved] == list(range(1, plan.n_chunks))
    assert [s.n_samples for s in saved] == [300 * k for k in range(1, plan.n_chunks)]
    for state in saved:
        resumed = run_chunks(_task, plan, entropy=5, point=1, workers=workers, start=state)
        assert resumed.n_chunks == whole.n_chunks and resumed.n_samples == 2300
        assert _stats_equal(resumed.stats, whole.stats)


def test_a_resumed_run_does_not_run_the_chunks_it_has():
    plan = ChunkPlan(100, 10)
    ran = []

    def task(rng, size):
        ran.append(size)
        return [size]

    states = []
    run_chunks(task, plan, entropy=1, point=0, fold=lambda a, b: a + b, checkpoint=states.append)
    ran.clear()
    run_chunks(task, plan, entropy=1, point=0, fold=lambda a, b: a + b, start=states[3])
    assert len(ran) == 6  # 4 chunks were folded in the state


def test_a_start_that_does_not_fit_the_plan_is_refused():
    state = run_chunks(_task, ChunkPlan(600, 300), entropy=1, point=0)
    with pytest.raises(ValueError, match="does not fit"):
        run_chunks(_task, ChunkPlan(600, 200), entropy=1, point=0, start=state)


def test_an_interruption_between_a_fold_and_the_stop_rule_resumes_to_the_same_stop():
    plan = ChunkPlan(100_000, 1000)

    def stop(acc, n):
        return float(acc.sem.max()) < 0.02

    whole = run_chunks(_task, plan, entropy=4, point=0, should_stop=stop)
    assert whole.stopped_early

    def stop_interrupted_where_it_would_stop(acc, n):
        if n == whole.n_samples:  # the fold is done; Ctrl-C comes as the rule is asked
            raise KeyboardInterrupt
        return stop(acc, n)

    with pytest.raises(RunInterrupted) as info:
        run_chunks(
            _task, plan, entropy=4, point=0, should_stop=stop_interrupted_where_it_would_stop
        )
    assert info.value.partial.n_samples == whole.n_samples
    resumed = run_chunks(
        _task, plan, entropy=4, point=0, should_stop=stop, start=info.value.partial
    )
    assert resumed.n_samples == whole.n_samples and resumed.stopped_early
    assert _stats_equal(resumed.stats, whole.stats)


def test_an_interruption_mid_fold_leaves_the_state_before_that_chunk():
    plan = ChunkPlan(100, 10)
    calls = [0]

    def fold(acc, new):
        calls[0] += 1
        if calls[0] == 4:  # Ctrl-C while the 5th chunk is being folded
            raise KeyboardInterrupt
        return acc + new

    with pytest.raises(RunInterrupted) as info:
        run_chunks(lambda rng, n: [n], plan, entropy=1, point=0, fold=fold)
    partial = info.value.partial
    assert (partial.n_chunks, partial.n_samples, len(partial.stats)) == (4, 40, 4)
