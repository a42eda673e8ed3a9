"""Bernoulli(q) keep-masks decided unit by unit, and the count of kept units, fast and exactly.

``simlab kept-units`` checks that the number of units dropout keeps is Binomial(M, q). Drawing that
count with ``rng.binomial`` would assume the result being checked, so every function here decides
each unit separately. Three exact ways to do so:

``plain``
    ``rng.random() < q``: the reference. One 8-byte double per unit; ``random()`` returns multiples
    of 2**-53, so the keep probability is ``q`` rounded up to that grid, not exactly ``q``.
``bytes``
    Each unit owns a uniform ``U`` in [0, 1) whose base-256 digits are fresh random bytes, and
    is kept when ``U < q``. Comparing ``U`` with the base-256 expansion of the double ``q``
    digit by digit decides the unit at the first digit where they differ; the first digit alone
    decides it with probability 255/256, so one random byte per unit is drawn in bulk and only
    the ties (1/256 of the units at each level) draw more bytes. A double's expansion is finite,
    so the recursion ends, and the law is exactly Bernoulli(q) for the double ``q`` (unlike
    quantising ``q`` to 8 bits).
``geometric`` / ``geometric_dropped``
    In a Bernoulli(r) sequence, the gaps between successes are iid Geometric(r). Drawing the
    gaps and taking cumulative sums gives the positions of the kept (``r = q``) or dropped
    (``r = 1 - q``) units without touching the others: work proportional to ``r * units``,
    which is what makes M = 1e5 units at q = 3e-5 cheap. The law is that of the Bernoulli
    sequence up to the double-precision rounding of NumPy's geometric sampler (inversion of an
    exponential), i.e. as exact as ``plain``.

None of them draws a count from ``rng.binomial`` or ``rng.poisson``. Working memory is bounded by
``chunk_units`` elements whatever the number of trials and units: trials and units are processed in
blocks, and only the per-trial counts (the output) scale with the number of trials.

With the same seed, results depend on the method and on the block sizes (they decide the order in
which random numbers are consumed), not on anything else.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterator
from functools import lru_cache

import numpy as np

__all__ = [
    "METHODS",
    "bernoulli_mask",
    "choose_method",
    "count_kept",
    "count_kept_thinning",
]

METHODS = ("auto", "plain", "bytes", "geometric", "geometric_dropped")

#: Internal working block, in units. Blocks of about a megabyte stay in cache between the draw of
#: the random bytes, the comparison and the sum; ``chunk_units`` can only lower it.
_WORK_UNITS = 1 << 20

#: Measured cost of one geometric gap (draw, cumulative sum, bin) over the cost of one unit decided
#: by ``bytes``, about 28 ns / 0.45 ns on the reference machine. ``auto`` skips with geometric gaps
#: when the expected number of gaps per unit, ``min(q, 1 - q)``, times this ratio is below 1.
_GEOMETRIC_COST_RATIO = 60.0

#: A ``uint8`` accumulator can add at most 255 zero-or-one flags without overflowing.
_MAX_UINT8_ROWS = 255


# --------------------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------------------
def _check_q(q: float) -> float:
    q = float(q)
    if not (0.0 <= q <= 1.0):  # also rejects NaN
        raise ValueError(f"keep probability q must lie in [0, 1], got {q!r}")
    return q


def _check_count(value: int, name: str) -> int:
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {value!r}") from None
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value


def _check_method(method: str) -> str:
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    return method


def choose_method(q: float) -> str:
    """The method ``auto`` uses for keep probability ``q``.

    Parameters
    ----------
    q : float
        Keep probability in [0, 1].

    Returns
    -------
    str
        ``"geometric"`` when kept units are rare enough that skipping between them is cheaper than
        deciding every unit with a byte, ``"geometric_dropped"`` in the mirror case (q near 1),
        ``"bytes"`` otherwise. The choice depends only on ``q``: the work of ``bytes`` and of the
        geometric skips both grow linearly with the number of units.
    """
    q = _check_q(q)
    rare = min(q, 1.0 - q)
    if rare * _GEOMETRIC_COST_RATIO < 1.0:
        return "geometric" if q <= 0.5 else "geometric_dropped"
    return "bytes"


# --------------------------------------------------------------------------------------------------
# random bytes and the base-256 expansion of q
# --------------------------------------------------------------------------------------------------
#: Bit generators whose raw output is a full uniform 64-bit word (MT19937's is 32 bits).
_RAW_64_BIT = (np.random.PCG64, np.random.PCG64DXSM, np.random.Philox, np.random.SFC64)


def _random_bytes(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` iid uniform bytes.

    64-bit words are the cheapest uniform bits a Generator has (one call of the bit generator per
    8 bytes). The raw words of a 64-bit bit generator are taken directly, which skips the fixed
    cost of ``Generator.integers`` (tens of microseconds; it matters for the many small draws of
    the tie levels); other bit generators go through ``integers``. Viewing the words
    little-endian makes the byte stream the same on every platform.
    """
    n_words = (n + 7) // 8
    bitgen = getattr(rng, "bit_generator", None)
    if type(bitgen) in _RAW_64_BIT:
        words = bitgen.random_raw(n_words)
    else:
        words = rng.integers(0, 1 << 64, size=n_words, dtype=np.uint64)
    return words.astype("<u8", copy=False).view(np.uint8)[:n]


@lru_cache(maxsize=256)
def _byte_digits(q: float) -> tuple[int, ...]:
    """Base-256 digits of ``q`` in (0, 1), up to the last non-zero one, computed exactly.

    A double is an integer over a power of two, so the expansion is finite (at most 135 digits for
    the smallest subnormal) and integer arithmetic gives it without rounding.
    """
    num, den = q.as_integer_ratio()
    digits = []
    while num:
        num *= 256
        digit, num = divmod(num, den)
        digits.append(digit)
    return tuple(digits)


# --------------------------------------------------------------------------------------------------
# the mask itself
# --------------------------------------------------------------------------------------------------
def bernoulli_mask(rng: np.random.Generator, shape: int | tuple[int, ...], q: float) -> np.ndarray:
    """Independent Bernoulli(q) keep flags, exactly, from one random byte per unit (plus ties).

    The plain reference is ``rng.random(shape) < q``. Here unit ``i`` has a uniform
    ``U_i = 0.b_1 b_2 ...`` in base 256 and is kept when ``U_i < q``, decided lexicographically
    against the expansion ``q = 0.d_1 d_2 ... d_L``: ``b_1 < d_1`` keeps, ``b_1 > d_1`` drops, and a
    tie ``b_1 = d_1`` (probability 1/256) moves to the next digit with a fresh byte, for the tied
    units only. A tie at the last non-zero digit ``d_L`` means ``U_i >= q``: dropped.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness.
    shape : int or tuple of int
        Shape of the mask.
    q : float
        Keep probability in [0, 1]; ``P(mask) = q`` exactly for the double ``q``.

    Returns
    -------
    numpy.ndarray of bool
        The keep mask.
    """
    q = _check_q(q)
    n = math.prod(shape) if isinstance(shape, tuple) else _check_count(shape, "shape")
    if q == 0.0:
        return np.zeros(shape, dtype=bool)
    if q == 1.0:
        return np.ones(shape, dtype=bool)
    digits = _byte_digits(q)
    u = _random_bytes(rng, n)
    mask = u < digits[0]
    if len(digits) > 1:
        # Flat indices of the units still tied with q's expansion; each level shrinks them 256-fold.
        tied = np.flatnonzero(u == digits[0])
        for digit in digits[1:]:
            if tied.size == 0:
                break
            u = _random_bytes(rng, tied.size)
            mask[tied[u < digit]] = True
            tied = tied[u == digit]
        # Units tied through the last digit have U >= q: they stay dropped.
    return mask.reshape(shape)


# --------------------------------------------------------------------------------------------------
# counting kept units: a fixed number of units per trial
# --------------------------------------------------------------------------------------------------
def count_kept(
    rng: np.random.Generator,
    n_trials: int,
    n_units: int,
    q: float,
    *,
    method: str = "auto",
    chunk_units: int = 1 << 22,
) -> np.ndarray:
    """For each trial, decide each of ``n_units`` units Bernoulli(q) and count the kept ones.

    The counts follow Binomial(n_units, q) because every unit is simulated, not because a
    binomial sampler was asked for one.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness.
    n_trials : int
        Number of independent trials (masks).
    n_units : int
        Units per trial (the layer width M).
    q : float
        Keep probability in [0, 1].
    method : {"auto", "plain", "bytes", "geometric", "geometric_dropped"}
        How units are decided (see the module docstring). ``auto`` takes
        :func:`choose_method` ``(q)``. ``bytes`` is exact for the double ``q``; ``plain`` and
        the geometric skips are exact up to double rounding (about 1e-16 in the keep
        probability); they differ in speed.
    chunk_units : int
        Upper bound on the number of elements of any working array (units, bytes or gaps);
        memory stays bounded whatever ``n_trials * n_units``.

    Returns
    -------
    numpy.ndarray of int64, shape (n_trials,)
        Number of kept units in each trial.
    """
    n_trials = _check_count(n_trials, "n_trials")
    n_units = _check_count(n_units, "n_units")
    q = _check_q(q)
    method = _check_method(method)
    work = _work_size(chunk_units)
    if n_trials == 0 or n_units == 0 or q == 0.0:
        return np.zeros(n_trials, dtype=np.int64)
    if q == 1.0:
        return np.full(n_trials, n_units, dtype=np.int64)
    if method == "auto":
        method = choose_method(q)
    if method == "plain":
        return _fixed_plain(rng, n_trials, n_units, q, work)
    if method == "bytes":
        return _fixed_bytes(rng, n_trials, n_units, _byte_digits(q), work)
    if method == "geometric":
        return _fixed_geometric(rng, n_trials, n_units, q, work)
    # geometric_dropped: count the dropped units, which are rare when q is near 1. 1 - q is exact
    # for q >= 1/2 (Sterbenz), the only case auto sends here.
    return n_units - _fixed_geometric(rng, n_trials, n_units, 1.0 - q, work)


def _work_size(chunk_units: int) -> int:
    chunk_units = _check_count(chunk_units, "chunk_units")
    if chunk_units < 1:
        raise ValueError("chunk_units must be >= 1")
    return min(chunk_units, _WORK_UNITS)


def _fixed_plain(
    rng: np.random.Generator, n_trials: int, n_units: int, q: float, work: int
) -> np.ndarray:
    counts = np.zeros(n_trials, dtype=np.int64)
    unit_block = min(n_units, work)
    trial_block = max(1, min(n_trials, work // unit_block))
    for t0 in range(0, n_trials, trial_block):
        t1 = min(n_trials, t0 + trial_block)
        for u0 in range(0, n_units, unit_block):
            width = min(unit_block, n_units - u0)
            counts[t0:t1] += (rng.random((t1 - t0, width)) < q).sum(axis=1)
    return counts


def _fixed_bytes(
    rng: np.random.Generator,
    n_trials: int,
    n_units: int,
    digits: tuple[int, ...],
    work: int,
) -> np.ndarray:
    """Byte comparison, laid out units x trials so that the per-trial sum is a few vector adds.

    A block is ``rows`` (at most 255, so that a ``uint8`` accumulator cannot overflow) by
    ``trials * cols``: each trial owns ``cols`` adjacent columns, i.e. ``rows * cols`` of its
    units. Summing over axis 0 adds whole rows with SIMD (summing short rows of the transposed
    layout costs a reduction call per trial, several times slower); the ``cols`` partial sums of a
    trial are then added. Many trials give ``cols = 1``; few trials with many units get wide
    blocks instead of many tiny ones.
    """
    first, rest = digits[0], digits[1:]
    counts = np.zeros(n_trials, dtype=np.int64)
    rows = min(n_units, _MAX_UINT8_ROWS, work)
    trial_block = max(1, min(n_trials, work // rows))
    cols = max(1, min(n_units // rows, work // (rows * trial_block)))
    flags = np.empty(rows * trial_block * cols, dtype=bool)
    for t0 in range(0, n_trials, trial_block):
        t1 = min(n_trials, t0 + trial_block)
        n_block = t1 - t0
        done = 0
        while done < n_units:
            left = n_units - done
            # Full blocks, then whole columns of the remainder, then a last short column.
            r, c = (rows, cols) if left >= rows * cols else (rows, left // rows)
            if left < rows:
                r, c = left, 1
            shape = (r, n_block * c)
            u = _random_bytes(rng, r * n_block * c).reshape(shape)
            block = flags[: u.size].reshape(shape)
            np.less(u, first, out=block)
            counts[t0:t1] += _per_trial(block, n_block, c)
            if rest:
                # Units whose byte equals q's first digit are still undecided (1/256 of them).
                np.equal(u, first, out=block)
                counts[t0:t1] += _resolve_ties(rng, _per_trial(block, n_block, c), rest)
            done += r * c
    return counts


def _per_trial(block: np.ndarray, n_block: int, cols: int) -> np.ndarray:
    """Flags of a (rows <= 255, trials * cols) block summed per trial."""
    sums = np.add.reduce(block.view(np.uint8), axis=0, dtype=np.uint8)
    if cols == 1:
        return sums
    return sums.reshape(n_block, cols).sum(axis=1, dtype=np.int64)


def _fixed_geometric(
    rng: np.random.Generator, n_trials: int, n_units: int, r: float, work: int
) -> np.ndarray:
    """Number of successes per trial of ``n_units`` Bernoulli(r) units, by geometric skips.

    A block of trials is one Bernoulli stream of ``trials * n_units`` units (the units are iid, so
    concatenating trials changes nothing); success at stream position ``s`` belongs to trial
    ``s // n_units``.
    """
    counts = np.zeros(n_trials, dtype=np.int64)
    expected_per_trial = r * n_units
    trial_block = int(max(1, min(n_trials, work / (expected_per_trial + 1.0))))
    for t0 in range(0, n_trials, trial_block):
        t1 = min(n_trials, t0 + trial_block)
        for pos in _geometric_events(rng, (t1 - t0) * n_units, r, work):
            _bin_sorted(counts, t0, pos // n_units)
    return counts


# --------------------------------------------------------------------------------------------------
# counting kept units: a varying number of units per trial
# --------------------------------------------------------------------------------------------------
def count_kept_thinning(
    rng: np.random.Generator,
    n_trials: int,
    lam: float,
    q: float,
    *,
    method: str = "auto",
    chunk_units: int = 1 << 22,
) -> tuple[np.ndarray, np.ndarray]:
    """Poisson thinning: ``M_t ~ Poisson(lam)`` units per trial, each kept with probability ``q``.

    ``M_t`` is drawn with ``rng.poisson``: the number of units is the setup of the experiment, not
    the result under test. The kept count ``K_t`` is then simulated unit by unit, as in
    :func:`count_kept`, over the concatenation of all trials' units.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness.
    n_trials : int
        Number of trials.
    lam : float
        Mean number of units per trial, ``lam >= 0``.
    q : float
        Keep probability in [0, 1].
    method : {"auto", "plain", "bytes", "geometric", "geometric_dropped"}
        As in :func:`count_kept`.
    chunk_units : int
        Upper bound on the elements of any working array (except the two outputs).

    Returns
    -------
    M : numpy.ndarray of int64, shape (n_trials,)
        Units per trial.
    K : numpy.ndarray of int64, shape (n_trials,)
        Kept units per trial, ``0 <= K <= M``.
    """
    n_trials = _check_count(n_trials, "n_trials")
    lam = float(lam)
    if not (lam >= 0.0 and math.isfinite(lam)):
        raise ValueError(f"lam must be finite and >= 0, got {lam!r}")
    q = _check_q(q)
    method = _check_method(method)
    work = _work_size(chunk_units)
    m = rng.poisson(lam, size=n_trials).astype(np.int64, copy=False)
    return m, _count_segments(rng, m, q, method, work)


def _count_segments(
    rng: np.random.Generator, lengths: np.ndarray, q: float, method: str, work: int
) -> np.ndarray:
    """Kept units in each of a sequence of segments with the given numbers of units."""
    counts = np.zeros(lengths.size, dtype=np.int64)
    if q == 0.0 or int(lengths.sum()) == 0:
        return counts
    if q == 1.0:
        return lengths.astype(np.int64, copy=True)
    if method == "auto":
        method = choose_method(q)
    if method == "plain":
        for s0, s1, (kept,) in _piece_sums(lengths, work, lambda n: (rng.random(n) < q,)):
            counts[s0:s1] += kept
    elif method == "bytes":
        digits = _byte_digits(q)
        first, rest = digits[0], digits[1:]

        def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
            u = _random_bytes(rng, n)
            return u < first, u == first

        for s0, s1, (kept, ties) in _piece_sums(lengths, work, draw):
            counts[s0:s1] += kept
            if rest:
                counts[s0:s1] += _resolve_ties(rng, ties, rest)
    elif method == "geometric":
        counts = _segments_geometric(rng, lengths, q, work)
    else:
        counts = lengths - _segments_geometric(rng, lengths, 1.0 - q, work)
    return counts


def _piece_sums(
    lengths: np.ndarray, work: int, draw: Callable[[int], tuple[np.ndarray, ...]]
) -> Iterator[tuple[int, int, list[np.ndarray]]]:
    """Per-segment sums of flags drawn piece by piece along the concatenated segments.

    ``draw(n)`` returns one or more flag arrays for the next ``n`` units. For each piece of at
    most ``work`` units, yields ``(s0, s1, sums)``: the segments ``s0:s1`` overlapping the piece
    and, for each flag array, the sum of its flags over each segment's part of the piece. Pieces
    cut segments anywhere; a running sum within the piece, read at the segment bounds clipped to
    the piece, credits each segment with its part.
    """
    ends = np.cumsum(lengths, dtype=np.int64)
    starts = ends - lengths
    total = int(ends[-1])
    running = np.empty(min(work, total) + 1, dtype=np.int64)
    running[0] = 0
    for a in range(0, total, work):
        b = min(total, a + work)
        flag_arrays = draw(b - a)
        # Segments that overlap [a, b): the first whose end is past a, through the one holding b-1.
        s0 = int(np.searchsorted(ends, a, side="right"))
        s1 = int(np.searchsorted(ends, b - 1, side="right")) + 1
        lo = np.clip(starts[s0:s1], a, b) - a
        hi = np.clip(ends[s0:s1], a, b) - a
        sums = []
        for flags in flag_arrays:
            np.cumsum(flags, dtype=np.int64, out=running[1 : b - a + 1])
            sums.append(running[hi] - running[lo])
        yield s0, s1, sums


def _resolve_ties(
    rng: np.random.Generator, tie_counts: np.ndarray, digits: tuple[int, ...]
) -> np.ndarray:
    """Kept units among the tied units of each group, decided by the remaining ``digits`` of q.

    A tied unit's outcome depends only on its own further bytes, so the tied units of all groups
    are laid end to end, labelled by group, and decided together digit by digit; each digit
    leaves 1/256 of them tied. Ties left after the last digit have ``U >= q``: dropped.
    """
    n_groups = tie_counts.size
    which = np.flatnonzero(tie_counts != 0)  # nonzero on a bool array is several times faster
    if which.size == 0:
        return np.zeros(n_groups, dtype=np.int64)
    labels = np.repeat(which, tie_counts[which])  # one group label per tied unit
    extra = np.zeros(n_groups, dtype=np.int64)
    for digit in digits:
        u = _random_bytes(rng, labels.size)
        extra += np.bincount(labels[u < digit], minlength=n_groups)
        labels = labels[u == digit]
        if labels.size == 0:
            break
    return extra


def _segments_geometric(
    rng: np.random.Generator, lengths: np.ndarray, r: float, work: int
) -> np.ndarray:
    counts = np.zeros(lengths.size, dtype=np.int64)
    ends = np.cumsum(lengths, dtype=np.int64)
    for pos in _geometric_events(rng, int(ends[-1]), r, work):
        _bin_sorted(counts, 0, np.searchsorted(ends, pos, side="right"))
    return counts


# --------------------------------------------------------------------------------------------------
# geometric skipping
# --------------------------------------------------------------------------------------------------
def _geometric_events(
    rng: np.random.Generator, total: int, r: float, cap: int
) -> Iterator[np.ndarray]:
    """Sorted 0-based positions of the successes in a Bernoulli(r) sequence of ``total`` units.

    Yields them in batches of at most ``cap`` positions. Each batch draws enough Geometric(r) gaps
    to reach the end with high probability (mean + 6 sd); if it falls short, the next batch goes on
    from the last success, which is exact because the sequence has no memory.
    """
    last = -1
    while True:
        remaining = total - 1 - last  # units after the last success, still undecided
        if remaining <= 0:
            return
        mean = r * remaining
        size = int(min(cap, mean + 6.0 * math.sqrt(mean) + 16.0))
        # Keep the running sum below 2**62: gaps are clipped to remaining + 1 just below.
        size = max(1, min(size, (1 << 62) // (remaining + 1)))
        gaps = rng.geometric(r, size=size)
        # A gap past the end is as good as any longer one, and clipping keeps cumsum from wrapping
        # when r is tiny and the sampler returns huge gaps.
        np.minimum(gaps, remaining + 1, out=gaps)
        pos = np.cumsum(gaps)
        pos += last
        if pos[-1] >= total:
            yield pos[: np.searchsorted(pos, total)]
            return
        yield pos
        last = int(pos[-1])


def _bin_sorted(counts: np.ndarray, offset: int, labels: np.ndarray) -> None:
    """``counts[offset + label] += 1`` for each of the sorted ``labels``.

    Binning only the span the labels cover keeps the cost proportional to the batch, not to the
    number of trials.
    """
    if labels.size == 0:
        return
    lo = int(labels[0])
    binned = np.bincount(labels - lo)
    counts[offset + lo : offset + lo + binned.size] += binned
