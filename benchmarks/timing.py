"""Paired, interleaved timings for the benchmarks: speed ratios that survive a busy machine.

A benchmark compares simlab (the candidate) with a baseline (a naive loop, a raw floor). Timing
each side once, one after the other, measures the machine's load as much as the code: another
process that wakes up during one side's run moves the ratio by any factor. So:

- every round times each contender once, back to back, and the order rotates from round to round
  (a contender is not always the one that runs right after another's warm caches or just before a
  load spike);
- a ratio is formed within each round (baseline time over candidate time, per unit of work), so
  load that lasts longer than a round slows both sides of the pair and cancels;
- the reported ratio is the median over rounds, with the interquartile range of the per-round
  ratios as its spread: one round hit by a burst of load moves neither;
- a target, where the issue states one, is met when the median ratio reaches it, and
  :func:`exit_status` turns any miss into a non-zero exit status.

The clock is a parameter so that tests can inject fake timings (``tests/benchmarks``).
"""

from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

#: Exit status of a benchmark whose median ratio misses a stated target (argparse uses 2).
MISSED = 1

#: Clocks a benchmark may time with. ``wall`` is elapsed time: the only fair clock when a side runs
#: on several threads (its speed-up is parallel). ``cpu`` is this process's CPU time: for code that
#: runs on one thread it equals the wall time on an idle machine, and other processes taking the
#: core away do not count in it (they still slow it down a little through shared caches and
#: memory bandwidth).
CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}


@dataclass(frozen=True)
class Contender:
    """One side of a comparison: ``run()`` does ``work`` units of work (samples, unit decisions,
    networks); times are compared per unit of work, so the two sides may do different amounts."""

    name: str
    run: Callable[[], object]
    work: float = 1.0


class Rounds(dict):
    """``{name: [seconds per unit of work in round 0, round 1, ...]}`` by the chosen clock, plus
    ``cores``: ``{name: [this process's CPU time over elapsed time, per round]}``, i.e. how many
    cores the process actually had while that contender ran (a busy machine gives a two-thread
    run less than two)."""

    def __init__(self, names: Iterable[str]) -> None:
        super().__init__({name: [] for name in names})
        self.cores: dict[str, list[float]] = {name: [] for name in self}


def time_rounds(
    contenders: Sequence[Contender],
    rounds: int,
    *,
    warmup: bool = True,
    clock: Callable[[], float] = time.perf_counter,
) -> Rounds:
    """Seconds per unit of work of each contender, one value per round, timed interleaved.

    Round ``k`` runs the contenders in their given order rotated by ``k`` places. With ``warmup``,
    each contender runs once untimed first (caches, page faults, thread pools, lazy imports).
    """
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    names = [c.name for c in contenders]
    if len(set(names)) != len(names):
        raise ValueError(f"contender names must be distinct, got {names}")
    for contender in contenders:
        if not contender.work > 0:
            raise ValueError(f"work of {contender.name!r} must be > 0, got {contender.work}")
    if warmup:
        for contender in contenders:
            contender.run()
    times = Rounds(names)
    n = len(contenders)
    for k in range(rounds):
        for j in range(n):
            contender = contenders[(j + k) % n]
            wall, cpu = time.perf_counter(), time.process_time()
            start = clock()
            contender.run()
            times[contender.name].append((clock() - start) / contender.work)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            times.cores[contender.name].append(cpu / wall if wall > 0 else math.nan)
    return times


@dataclass(frozen=True)
class Ratio:
    """A speed ratio measured round by round, its median and spread, and an optional target."""

    label: str
    per_round: tuple[float, ...]
    target: float | None = None

    def quartiles(self) -> tuple[float, float, float]:
        """First quartile, median and third quartile of the per-round ratios."""
        values = sorted(self.per_round)
        if len(values) == 1:
            return values[0], values[0], values[0]
        q1, median, q3 = statistics.quantiles(values, n=4, method="inclusive")
        return q1, median, q3

    @property
    def median(self) -> float:
        return self.quartiles()[1]

    @property
    def meets(self) -> bool | None:
        """Whether the median reaches the target (``None`` when no target is stated)."""
        if self.target is None:
            return None
        return self.median >= self.target

    def describe(self) -> str:
        """One line: median, interquartile range over the rounds, target and verdict."""
        q1, median, q3 = self.quartiles()
        text = (
            f"{self.label}: {median:.2f}x  (IQR {q1:.2f}-{q3:.2f} over "
            f"{len(self.per_round)} rounds)"
        )
        if self.target is not None:
            verdict = "meets" if self.meets else "MISSES"
            text += f"  target >= {self.target:g}x: {verdict}"
        return text


def speedup(
    times: Mapping[str, Sequence[float]],
    candidate: str,
    baseline: str,
    *,
    label: str | None = None,
    target: float | None = None,
) -> Ratio:
    """How many times faster ``candidate`` is than ``baseline``, per round.

    ``times`` is the output of :func:`time_rounds` (seconds per unit of work); the ratio of round
    ``k`` is ``times[baseline][k] / times[candidate][k]``, i.e. the candidate's rate over the
    baseline's, both measured in the same round.
    """
    slow, fast = times[baseline], times[candidate]
    if len(slow) != len(fast) or not slow:
        raise ValueError("both contenders need the same, non-zero number of rounds")
    ratios = tuple(s / f if f > 0 else math.inf for s, f in zip(slow, fast, strict=True))
    return Ratio(label or f"{candidate} / {baseline}", ratios, target)


def median_rate(times: Sequence[float]) -> float:
    """Units of work per second of the median round (the median of the per-round rates)."""
    return statistics.median(1.0 / t if t > 0 else math.inf for t in times)


def exit_status(ratios: Iterable[Ratio]) -> int:
    """0 when every stated target is met, :data:`MISSED` when any is missed."""
    return MISSED if any(r.meets is False for r in ratios) else 0


def load_average() -> str:
    """The 1-, 5- and 15-minute load averages, to print beside the timings."""
    try:
        return "/".join(f"{x:.1f}" for x in os.getloadavg())
    except (AttributeError, OSError):  # pragma: no cover - not Unix
        return "unknown"
