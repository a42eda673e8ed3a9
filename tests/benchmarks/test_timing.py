"""The logic of benchmarks/timing.py, with injected fake clocks: no wall time is measured here.

Each fake contender advances a fake clock by prescribed seconds when it runs, so the rounds, the
per-round ratios, their median and quartiles, the verdicts and the exit status are known exactly.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def timing():
    # The benchmark scripts import ``timing`` from their own folder (it is not part of simlab).
    sys.path.insert(0, str(BENCHMARKS))
    try:
        yield importlib.import_module("timing")
    finally:
        sys.path.remove(str(BENCHMARKS))


class FakeClock:
    """A clock that only moves when a fake contender runs."""

    def __init__(self) -> None:
        self.now = 100.0
        self.log: list[str] = []

    def __call__(self) -> float:
        return self.now

    def contender(self, timing, name: str, seconds: list[float], work: float = 1.0):
        """A contender whose successive runs last ``seconds[0]``, ``seconds[1]``, ..."""
        durations = iter(seconds)

        def run() -> None:
            self.log.append(name)
            self.now += next(durations)

        return timing.Contender(name, run, work)


def test_rounds_rotate_the_order_and_warm_up_untimed(timing):
    clock = FakeClock()
    contenders = [
        clock.contender(timing, "a", [50.0, 1.0, 2.0, 3.0]),
        clock.contender(timing, "b", [50.0, 10.0, 20.0, 30.0]),
        clock.contender(timing, "c", [50.0, 5.0, 5.0, 5.0]),
    ]
    times = timing.time_rounds(contenders, 3, clock=clock)
    assert clock.log == ["a", "b", "c", "a", "b", "c", "b", "c", "a", "c", "a", "b"]
    assert {name: len(cores) for name, cores in times.cores.items()} == {"a": 3, "b": 3, "c": 3}
    # the 50 s warm-up runs are not in the timings
    assert times == {"a": [1.0, 2.0, 3.0], "b": [10.0, 20.0, 30.0], "c": [5.0, 5.0, 5.0]}


def test_no_warmup_and_times_per_unit_of_work(timing):
    clock = FakeClock()
    contenders = [
        clock.contender(timing, "slow", [8.0, 8.0], work=4),
        clock.contender(timing, "fast", [1.0, 3.0], work=10),
    ]
    times = timing.time_rounds(contenders, 2, warmup=False, clock=clock)
    assert times["slow"] == [2.0, 2.0]
    assert times["fast"] == pytest.approx([0.1, 0.3])
    ratio = timing.speedup(times, "fast", "slow")
    assert ratio.per_round == pytest.approx((20.0, 20.0 / 3))
    assert ratio.label == "fast / slow"


def test_load_that_slows_a_whole_round_cancels_in_its_ratio(timing):
    clock = FakeClock()
    # Round 2 is ten times slower on both sides (a burst of load): its ratio is still 4.
    contenders = [
        clock.contender(timing, "naive", [0, 4.0, 40.0, 4.0], work=1),
        clock.contender(timing, "simlab", [0, 1.0, 10.0, 1.0], work=1),
    ]
    times = timing.time_rounds(contenders, 3, clock=clock)
    ratio = timing.speedup(times, "simlab", "naive", target=3.0)
    assert ratio.per_round == (4.0, 4.0, 4.0)
    assert ratio.quartiles() == (4.0, 4.0, 4.0)
    assert ratio.meets is True


def test_median_and_interquartile_range_resist_one_outlier(timing):
    ratio = timing.Ratio("x", (3.0, 1.0, 2.0, 100.0, 4.0))
    q1, median, q3 = ratio.quartiles()
    # sorted 1, 2, 3, 4, 100: inclusive quartiles at positions 1 and 3 (0-based)
    assert (q1, median, q3) == (2.0, 3.0, 4.0)
    assert timing.Ratio("y", (1.0, 2.0, 3.0, 4.0)).quartiles() == (1.75, 2.5, 3.25)
    assert timing.Ratio("z", (7.0,)).quartiles() == (7.0, 7.0, 7.0)


def test_verdicts_and_exit_status(timing):
    met = timing.Ratio("met", (19.0, 21.0, 22.0), target=20.0)
    missed = timing.Ratio("missed", (25.0, 19.0, 18.0), target=20.0)  # median 19
    untargeted = timing.Ratio("info", (0.1, 0.2, 0.3))
    assert met.meets is True and missed.meets is False and untargeted.meets is None
    assert timing.exit_status([met, untargeted]) == 0
    assert timing.exit_status([met, missed, untargeted]) == timing.MISSED != 0
    assert timing.exit_status([]) == 0
    assert "MISSES" in missed.describe() and "target >= 20x" in missed.describe()
    assert "meets" in met.describe()
    assert "target" not in untargeted.describe()
    assert "IQR 0.15-0.25 over 3 rounds" in untargeted.describe()


def test_median_rate(timing):
    assert timing.median_rate([0.5, 0.1, 0.25]) == 4.0


def test_bad_arguments(timing):
    clock = FakeClock()
    with pytest.raises(ValueError, match="rounds"):
        timing.time_rounds([clock.contender(timing, "a", [])], 0, clock=clock)
    with pytest.raises(ValueError, match="distinct"):
        timing.time_rounds(
            [clock.contender(timing, "a", []), clock.contender(timing, "a", [])], 1, clock=clock
        )
    with pytest.raises(ValueError, match="work"):
        timing.time_rounds([clock.contender(timing, "a", [], work=0)], 1, clock=clock)
    with pytest.raises(ValueError, match="rounds"):
        timing.speedup({"a": [1.0], "b": [1.0, 2.0]}, "a", "b")


# --------------------------------------------------------------------------------------------------
# the benchmark scripts: targets reach the exit status (their timings are injected, not measured)
# --------------------------------------------------------------------------------------------------
def fake_rounds(timing, seconds: dict[str, float], cores: float, rounds: int = 3):
    """A stand-in for ``time_rounds``: runs each contender once (so the script's own code runs,
    on a tiny workload) and reports ``seconds[name]`` per unit of work in every round, on
    ``cores`` cores."""

    def time_rounds(contenders, n_rounds, **kwargs):  # noqa: ARG001 - same signature
        times = timing.Rounds(c.name for c in contenders)
        for contender in contenders:
            contender.run()
            times[contender.name] = [seconds[contender.name]] * rounds
            times.cores[contender.name] = [cores] * rounds
        return times

    return time_rounds


def script(monkeypatch, name: str):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    return importlib.import_module(name)


def run_script(
    timing, monkeypatch, name: str, argv: list[str], seconds: dict[str, float], cores: float = 1.0
) -> int:
    module = script(monkeypatch, name)
    monkeypatch.setattr(module, "time_rounds", fake_rounds(timing, seconds, cores))
    monkeypatch.setattr(sys, "argv", [name, *argv])
    return module.main()


@pytest.mark.parametrize(("naive_seconds", "status"), [(25.0, 0), (19.0, 1)])
def test_bench_masks_exit_status(timing, monkeypatch, capsys, naive_seconds, status):
    # simlab takes 1 s per unit, the naive loop 25 s (25x: meets) or 19 s (19x: misses 20x).
    bench_masks = script(monkeypatch, "bench_masks")
    monkeypatch.setattr(bench_masks, "CASES", [(50, 0.7, 100, 1), (1_000, 0.5, 10, 1)])
    monkeypatch.setattr(bench_masks, "NAIVE_UNITS", 1_000)
    got = run_script(
        timing, monkeypatch, "bench_masks", [], {"simlab": 1.0, "naive": naive_seconds}
    )
    assert got == status
    out = capsys.readouterr().out
    assert ("MISSES the 20x target" in out) == bool(status)


@pytest.mark.parametrize(
    ("floor_seconds", "cores", "status"), [(0.7, 2.0, 0), (0.5, 2.0, 1), (0.7, 0.5, 0)]
)
def test_bench_dropout_exit_status(timing, monkeypatch, capsys, floor_seconds, cores, status):
    # 4x the naive loop (meets 3x); 0.7x the floor meets 0.6x, 0.5x misses it.
    seconds = {"simlab": 1.0, "naive": 4.0, "floor": floor_seconds}
    args = ["--samples", "2000", "--chunk-size", "1000", "--workers", "2"]
    assert run_script(timing, monkeypatch, "bench_dropout", args, seconds, cores) == status
    out = capsys.readouterr().out
    assert "simlab / naive loop: 4.00x" in out and "var_after" in out
    # two workers that got half a core between them: the busy machine is named
    assert ("ran on 0.50 cores for its 2 workers" in out) == (cores < 1.5)


@pytest.mark.parametrize(
    ("target", "status"), [([], 0), (["--target", "2"], 0), (["--target", "4"], 1)]
)
def test_bench_propagation_exit_status(timing, monkeypatch, capsys, target, status):
    seconds = {"experiment": 1.0, "naive": 3.0, "draw": 0.5}
    args = ["--L", "3", "--width", "8", "--inputs", "2", "--networks", "1", *target]
    assert run_script(timing, monkeypatch, "bench_propagation", args, seconds) == status
    out = capsys.readouterr().out
    assert "speed-up (experiment / naive): 3.00x" in out
    assert "taken off both sides: x5.0" in out  # (3 - 0.5) / (1 - 0.5)
