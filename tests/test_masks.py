"""Laws and mechanics of the unit-by-unit keep-mask counters in ``simlab.masks``.

Statistical tests use fixed seeds; each tolerance is 5 standard errors (or a goodness-of-fit
p-value above 1e-6), so a correct implementation passes deterministically and a wrong law (an
off-by-one unit, a lost tie level, a swapped q) moves the statistic by many standard errors.
"""

from __future__ import annotations

import tracemalloc
from collections import Counter
from fractions import Fraction

import numpy as np
import pytest
from scipy import stats

from simlab import masks
from simlab.masks import bernoulli_mask, choose_method, count_kept, count_kept_thinning
from simlab.verdicts.gof import chi_square_gof, pool_bins

FAST_METHODS = ("bytes", "geometric", "geometric_dropped")
ALL_METHODS = ("plain", *FAST_METHODS, "auto")


# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------
class FakeRNG:
    """Hands out prescribed bytes, one list per draw, to test the tie logic deterministically.

    ``masks`` asks for ``ceil(n / 8)`` 64-bit words and uses the first ``n`` bytes; the rest of the
    last word is padded with 0xFF, which the code must ignore.
    """

    def __init__(self, draws: list[list[int]], poisson: list[int] | None = None) -> None:
        self.draws = list(draws)
        self.sizes: list[int] = []
        self._poisson = poisson

    def integers(self, low, high, size, dtype):  # noqa: ARG002 - mirrors Generator.integers
        assert (low, high, dtype) == (0, 1 << 64, np.uint64)
        data = self.draws.pop(0)
        self.sizes.append(len(data))
        assert (len(data) + 7) // 8 == size
        padded = bytes(data) + b"\xff" * (8 * size - len(data))
        return np.frombuffer(padded, dtype="<u8").copy()

    def poisson(self, lam, size):  # noqa: ARG002
        return np.array(self._poisson, dtype=np.int64)


class NoCountSamplers:
    """A Generator whose count samplers raise: the masks must decide units, not draw counts."""

    def __init__(self, rng: np.random.Generator, poisson_calls_allowed: int = 0) -> None:
        self._rng = rng
        self._poisson_left = poisson_calls_allowed

    def __getattr__(self, name):
        if name in ("binomial", "multinomial", "hypergeometric", "negative_binomial"):
            raise AssertionError(f"rng.{name} must not be used to draw kept counts")
        if name == "poisson":
            if self._poisson_left == 0:
                raise AssertionError("rng.poisson must not be used to draw kept counts")
            self._poisson_left -= 1
        return getattr(self._rng, name)


class CountingRNG:
    """A Generator that counts its draws (calls and numbers drawn, per method): the work of a
    sampler measured in random numbers, which no machine or load changes. It hides the bit
    generator, so masks draws its bytes through ``integers`` (counted)."""

    bit_generator = None

    def __init__(self, rng: np.random.Generator) -> None:
        self._rng = rng
        self.calls: Counter[str] = Counter()
        self.drawn: Counter[str] = Counter()

    def __getattr__(self, name):
        method = getattr(self._rng, name)

        def counted(*args, **kwargs):
            out = method(*args, **kwargs)
            self.calls[name] += 1
            self.drawn[name] += int(np.size(out))
            return out

        return counted


def binomial_moments(n_units: int, q: float) -> tuple[float, float, float]:
    """Mean, variance and fourth central moment of Binomial(n_units, q), from its pmf."""
    k = np.arange(n_units + 1)
    pmf = stats.binom.pmf(k, n_units, q)
    mean = float(np.sum(k * pmf))
    var = float(np.sum((k - mean) ** 2 * pmf))
    mu4 = float(np.sum((k - mean) ** 4 * pmf))
    return mean, var, mu4


def assert_moments(counts: np.ndarray, mean: float, var: float, mu4: float) -> None:
    """Sample mean and variance within 5 standard errors of the law's."""
    n = counts.size
    se_mean = np.sqrt(var / n)
    se_var = np.sqrt(max(mu4 - var**2, 1e-300) / n)
    assert abs(counts.mean() - mean) < 5 * se_mean, (counts.mean(), mean, se_mean)
    assert abs(counts.var(ddof=1) - var) < 5 * se_var, (counts.var(ddof=1), var, se_var)


def histogram(counts: np.ndarray, size: int) -> np.ndarray:
    return np.bincount(counts, minlength=size)[:size]


# --------------------------------------------------------------------------------------------------
# the base-256 expansion and the tie logic
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("q", [0.5, 0.7, 0.3, 3e-5, 0.5 + 2**-20, 1 - 2**-53, 5e-324, 1 / 3])
def test_byte_digits_reconstruct_q_exactly(q):
    digits = masks._byte_digits(q)
    value = sum(Fraction(d, 256 ** (j + 1)) for j, d in enumerate(digits))
    assert value == Fraction(q)
    assert all(0 <= d <= 255 for d in digits) and digits[-1] != 0


def test_byte_digits_of_a_q_that_needs_three_levels():
    assert masks._byte_digits(0.5 + 2**-20) == (0x80, 0x00, 0x10)
    assert masks._byte_digits(0.5) == (0x80,)


# Units' byte sequences against q = 0.5 + 2**-20 = 0x.80 00 10 (each line: bytes, kept?).
TIE_CASES = [
    ([0x7F], True),  # below the first digit
    ([0x81], False),  # above it
    ([0x80, 0x00, 0x0F], True),  # tie, tie, below
    ([0x80, 0x00, 0x10], False),  # tied through the last digit: U >= q
    ([0x80, 0x01], False),  # tie, above
    ([0x80, 0x00, 0x11], False),  # tie, tie, above
    ([0x80, 0x00, 0x00], True),  # tie, tie, below
]


def tie_draws() -> list[list[int]]:
    """The bytes of TIE_CASES as the levels draw them: level j takes byte j of each tied unit."""
    levels: list[list[int]] = []
    for level in range(3):
        row = [seq[level] for seq, _ in TIE_CASES if len(seq) > level]
        if row:
            levels.append(row)
    return levels


def test_bernoulli_mask_tie_logic_with_prescribed_bytes():
    fake = FakeRNG(tie_draws())
    mask = bernoulli_mask(fake, len(TIE_CASES), 0.5 + 2**-20)
    assert mask.tolist() == [kept for _, kept in TIE_CASES]
    assert fake.sizes == [7, 5, 4]  # only tied units draw again
    assert fake.draws == []


def test_count_kept_tie_logic_with_prescribed_bytes():
    fake = FakeRNG(tie_draws())
    counts = count_kept(fake, 1, len(TIE_CASES), 0.5 + 2**-20, method="bytes")
    assert counts.tolist() == [sum(kept for _, kept in TIE_CASES)]
    assert fake.draws == []


def test_thinning_tie_logic_with_prescribed_bytes():
    # Trials of 3 and 4 units over the same byte stream: units 0-2, then units 3-6.
    fake = FakeRNG(tie_draws(), poisson=[3, 4])
    m, k = count_kept_thinning(fake, 2, 3.5, 0.5 + 2**-20, method="bytes")
    kept = [kept for _, kept in TIE_CASES]
    assert m.tolist() == [3, 4]
    assert k.tolist() == [sum(kept[:3]), sum(kept[3:])]
    assert fake.draws == []


# --------------------------------------------------------------------------------------------------
# laws
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ALL_METHODS)
@pytest.mark.parametrize(
    ("n_units", "q"), [(20, 0.3), (50, 0.7), (7, 0.5), (256, 0.5), (300, 0.02), (300, 0.985)]
)
def test_count_kept_law_is_binomial(method, n_units, q):
    rng = np.random.default_rng(12345)
    n_trials = 40_000
    counts = count_kept(rng, n_trials, n_units, q, method=method)
    assert counts.dtype == np.int64 and counts.shape == (n_trials,)
    assert counts.min() >= 0 and counts.max() <= n_units
    pmf = stats.binom.pmf(np.arange(n_units + 1), n_units, q)
    result = chi_square_gof(histogram(counts, n_units + 1), pmf)
    assert result.p_value > 1e-6, result
    assert_moments(counts, *binomial_moments(n_units, q))


@pytest.mark.parametrize("method", FAST_METHODS)
def test_fast_counters_match_plain(method):
    """Two-sample chi-square (homogeneity) between a fast counter and the plain reference."""
    n_units, q, n_trials = 40, 0.2, 40_000
    plain = count_kept(np.random.default_rng(1), n_trials, n_units, q, method="plain")
    fast = count_kept(np.random.default_rng(2), n_trials, n_units, q, method=method)
    labels = pool_bins(n_trials * stats.binom.pmf(np.arange(n_units + 1), n_units, q))
    table = np.vstack(
        [
            np.bincount(labels, weights=histogram(plain, n_units + 1)),
            np.bincount(labels, weights=histogram(fast, n_units + 1)),
        ]
    )
    _, p_value, _, _ = stats.chi2_contingency(table)
    assert p_value > 1e-6


# q with one base-256 digit (no ties), two, three, and a full double (0.7: seven digits).
EXACT_QS = [179 / 256, 0.5 + 2**-9, 0.5 + 2**-20, 0.7, 0.3]


@pytest.mark.parametrize("q", EXACT_QS)
@pytest.mark.parametrize("n_units", [1, 7, 255, 255 * 4])
def test_count_kept_equals_the_unit_by_unit_mask(q, n_units):
    """Exact equality, not a law: one trial whose units fit one block reads the same bytes, in
    the same order, as ``bernoulli_mask`` (the mask decided unit by unit), tie levels included."""
    counted = count_kept(np.random.default_rng(31), 1, n_units, q, method="bytes")
    mask = bernoulli_mask(np.random.default_rng(31), n_units, q)
    assert counted.tolist() == [int(mask.sum())]


@pytest.mark.parametrize("q", EXACT_QS)
def test_count_kept_over_trials_equals_the_mask(q):
    # Units laid out (units, trials) in one block, as bernoulli_mask((M, T)) lays them out: the
    # first bytes decide the same units. Tied units draw their next bytes grouped by trial in
    # count_kept and in flat order in the mask, so per-trial counts agree exactly only when q has
    # one digit (no ties); the total agrees exactly always (each level draws as many bytes).
    n_units, n_trials = 50, 2_000
    counted = count_kept(np.random.default_rng(32), n_trials, n_units, q, method="bytes")
    mask = bernoulli_mask(np.random.default_rng(32), (n_units, n_trials), q)
    assert int(counted.sum()) == int(mask.sum())
    if len(masks._byte_digits(q)) == 1:
        assert counted.tolist() == mask.sum(axis=0).tolist()


def test_bytes_resolves_second_level_ties():
    # q = 0x.80 80: treating first-byte ties as dropped would give exactly 1/2, 4.5 SE away.
    q = 0.5 + 2**-9
    n = 4_000_000
    kept = int(count_kept(np.random.default_rng(7), 1, n, q, method="bytes")[0])
    se = np.sqrt(n * q * (1 - q))
    assert abs(kept - n * q) < 5 * se
    assert abs(n * 0.5 - n * q) > 7 * se  # the test could tell the wrong law apart
    mask = bernoulli_mask(np.random.default_rng(8), n, q)
    assert abs(int(mask.sum()) - n * q) < 5 * se


@pytest.mark.parametrize("q", [3 * 2**-20, 1 - 3 * 2**-20])
def test_bytes_resolves_deep_ties(q):
    # 0x.00 00 30 (and its mirror 0x.ff ff d0): every unit is decided at the third byte or later,
    # so an error at any tie level changes the rate by orders of magnitude.
    n_trials, n_units = 100, 1_000_000
    counts = count_kept(np.random.default_rng(9), n_trials, n_units, q, method="bytes")
    rare = counts if q < 0.5 else n_units - counts
    r = min(q, 1 - q)
    total = rare.sum()
    expected = n_trials * n_units * r
    assert abs(total - expected) < 5 * np.sqrt(expected), (total, expected)


def test_bernoulli_mask_law_and_shape():
    rng = np.random.default_rng(3)
    mask = bernoulli_mask(rng, (400, 500), 0.3)
    assert mask.shape == (400, 500) and mask.dtype == bool
    n = mask.size
    assert abs(mask.mean() - 0.3) < 5 * np.sqrt(0.3 * 0.7 / n)
    # Independence between neighbours: the lag-1 correlation is within 5/sqrt(n) of 0.
    flat = mask.ravel().astype(float)
    corr = np.corrcoef(flat[:-1], flat[1:])[0, 1]
    assert abs(corr) < 5 / np.sqrt(n)


@pytest.mark.parametrize("method", ["plain", "bytes", "geometric", "geometric_dropped", "auto"])
@pytest.mark.parametrize("q", [0.3, 0.01, 0.995])
def test_thinning_law(method, q):
    rng = NoCountSamplers(np.random.default_rng(4), poisson_calls_allowed=1)
    lam, n_trials = 7.0, 60_000
    m, k = count_kept_thinning(rng, n_trials, lam, q, method=method)
    assert m.shape == k.shape == (n_trials,)
    assert np.all((k >= 0) & (k <= m))
    dropped = m - k
    for counts, mean in ((k, lam * q), (dropped, lam * (1 - q))):
        kmax = int(mean + 12 * np.sqrt(mean) + 12)
        result = chi_square_gof(
            histogram(counts, kmax + 1), stats.poisson.pmf(np.arange(kmax + 1), mean)
        )
        assert result.p_value > 1e-6, (mean, result)
        assert_moments(counts, mean, mean, mean + 3 * mean**2)  # Poisson: mu4 = lam + 3 lam^2
    # K and M - K are independent: their covariance is 0 within 5 SE (SE = sqrt(var K var D / n)).
    cov = np.cov(k, dropped)[0, 1]
    assert abs(cov) < 5 * np.sqrt(lam * q * lam * (1 - q) / n_trials)


# --------------------------------------------------------------------------------------------------
# edges, validation, the rule of never drawing counts
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ALL_METHODS)
def test_q_edges(method):
    rng = np.random.default_rng(5)
    assert count_kept(rng, 10, 30, 0.0, method=method).tolist() == [0] * 10
    assert count_kept(rng, 10, 30, 1.0, method=method).tolist() == [30] * 10
    m, k = count_kept_thinning(rng, 10, 5.0, 0.0, method=method)
    assert k.tolist() == [0] * 10
    m, k = count_kept_thinning(rng, 10, 5.0, 1.0, method=method)
    assert k.tolist() == m.tolist()
    assert count_kept(rng, 0, 30, 0.5, method=method).shape == (0,)
    assert count_kept(rng, 4, 0, 0.5, method=method).tolist() == [0] * 4


def test_bernoulli_mask_edges():
    rng = np.random.default_rng(6)
    assert not bernoulli_mask(rng, (3, 4), 0.0).any()
    assert bernoulli_mask(rng, (3, 4), 1.0).all()
    assert bernoulli_mask(rng, 0, 0.5).shape == (0,)


@pytest.mark.parametrize("q", [-0.1, 1.5, float("nan")])
def test_bad_q_is_rejected(q):
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="q must lie in"):
        count_kept(rng, 1, 10, q)
    with pytest.raises(ValueError, match="q must lie in"):
        bernoulli_mask(rng, 10, q)


def test_bad_arguments_are_rejected():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="unknown method"):
        count_kept(rng, 1, 10, 0.5, method="binomial")
    with pytest.raises(TypeError):
        count_kept(rng, 1, 10.5, 0.5)
    with pytest.raises(ValueError):
        count_kept(rng, -1, 10, 0.5)
    with pytest.raises(ValueError):
        count_kept_thinning(rng, 10, -1.0, 0.5)


@pytest.mark.parametrize("method", ALL_METHODS)
def test_counts_never_come_from_a_count_sampler(method):
    rng = NoCountSamplers(np.random.default_rng(0))
    count_kept(rng, 100, 50, 0.3, method=method)
    count_kept(rng, 100, 10_000, 1e-4, method=method)


def test_auto_choice():
    assert choose_method(3e-5) == "geometric"
    assert choose_method(1 - 3e-5) == "geometric_dropped"
    assert choose_method(0.5) == "bytes"
    assert choose_method(0.7) == "bytes"


def test_same_seed_same_counts():
    for method in ALL_METHODS:
        a = count_kept(np.random.default_rng(11), 50, 100, 0.2, method=method)
        b = count_kept(np.random.default_rng(11), 50, 100, 0.2, method=method)
        assert np.array_equal(a, b)


# --------------------------------------------------------------------------------------------------
# blocking and memory
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["plain", "bytes", "geometric", "geometric_dropped"])
def test_small_chunks_keep_the_law(method):
    # Units split across blocks (n_units > chunk) and more than 255 unit rows (uint8 sums).
    q = 0.999 if method != "geometric" else 0.001
    n_units, n_trials = 1_000, 1_500
    counts = count_kept(
        np.random.default_rng(21), n_trials, n_units, q, method=method, chunk_units=1_000
    )
    mean, var, mu4 = binomial_moments(n_units, q)
    assert_moments(counts, mean, var, mu4)


@pytest.mark.parametrize("method", ["geometric", "geometric_dropped"])
def test_geometric_skipping_continues_exactly_across_batches(method):
    # A cap of 8 gaps per batch forces about 75 continuations per trial; losing or double-counting
    # one unit at each would shift the mean by about 22, i.e. 11 SE.
    q = 0.3 if method == "geometric" else 0.7
    n_units, n_trials = 2_000, 100
    counts = count_kept(
        np.random.default_rng(25), n_trials, n_units, q, method=method, chunk_units=8
    )
    assert_moments(counts, *binomial_moments(n_units, q))
    m, k = count_kept_thinning(
        np.random.default_rng(26), n_trials, 2_000.0, q, method=method, chunk_units=8
    )
    assert abs((k - q * m).mean()) < 5 * np.sqrt(2_000 * q * (1 - q) / n_trials)


def test_bytes_wide_blocks_and_remainders():
    # Each trial's units go in 4 columns of 255 rows per block (5 full blocks), then 2 columns,
    # then a last short column of 103 rows: every branch of the block layout is used.
    n_trials, n_units = 4_000, 255 * 22 + 103
    counts = count_kept(
        np.random.default_rng(27),
        n_trials,
        n_units,
        0.3,
        method="bytes",
        chunk_units=n_trials * 255 * 4,
    )
    assert_moments(counts, *binomial_moments(n_units, 0.3))


def test_few_trials_many_units_uses_wide_blocks():
    # Wide blocks, not 10**5 blocks of 255 x 2: counted in random draws, not timed (a wall-clock
    # limit depends on the machine and its load; benchmarks/bench_masks.py prints the speed).
    rng = CountingRNG(np.random.default_rng(28))
    n = 3 * 10**7 + 17
    counts = count_kept(rng, 2, n, 0.3, method="bytes")
    assert np.all(np.abs(counts - 0.3 * n) < 5 * np.sqrt(n * 0.21))
    # blocks of 255 x 2 would need 2n / 510 > 10**5 draws; wide ones (at least 2**19 units each,
    # plus a few tie levels per block) about 2n / 2**19 * (1 + levels) ~ 200
    assert rng.calls["integers"] < 2_000, rng.calls
    # one byte per unit plus the ties (1/256 of them per level), not 8 bytes per unit
    assert 8 * rng.drawn["integers"] < 2 * n * (1 + 2 / 255) + 8 * rng.calls["integers"]


def test_thinning_small_chunks_cut_trials():
    rng = np.random.default_rng(22)
    m, k = count_kept_thinning(rng, 5_000, 40.0, 0.4, method="bytes", chunk_units=97)
    assert np.all(k <= m)
    assert_moments(k, 16.0, 16.0, 16.0 + 3 * 16.0**2)


def test_huge_sparse_problem_draws_only_the_gaps():
    # 1e9 unit decisions at q = 3e-5: geometric skipping draws one gap per kept unit (about
    # 3e4), not one number per unit. Counted, not timed (see benchmarks/bench_masks.py).
    rng = CountingRNG(np.random.default_rng(23))
    counts = count_kept(rng, 10**4, 10**5, 3e-5)
    expected_gaps = 10**4 * 10**5 * 3e-5
    assert sum(rng.drawn.values()) < 2 * expected_gaps, rng.drawn  # 1e9 for plain or bytes
    assert_moments(counts, *binomial_moments(10**5, 3e-5))


@pytest.mark.parametrize(
    ("method", "n_trials", "n_units", "q"),
    [("bytes", 1_000, 20_000, 0.3), ("plain", 200, 20_000, 0.3), ("geometric", 500, 10**6, 0.01)],
)
def test_memory_is_bounded_by_chunk(method, n_trials, n_units, q):
    chunk = 1 << 14
    tracemalloc.start()
    try:
        count_kept(
            np.random.default_rng(24), n_trials, n_units, q, method=method, chunk_units=chunk
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # At most a few arrays of chunk elements of 8 bytes, plus the per-trial outputs; the full
    # problem would need n_trials * n_units bytes (40 MB to 500 MB here).
    assert peak < 48 * chunk + 64 * n_trials, peak
