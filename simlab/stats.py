"""Mergeable sufficient statistics: what each chunk returns and the engine folds together.

Every class here has ``from_batch`` (statistics of one chunk of samples) and ``merge`` (the
statistics of the union), so that a run's numbers depend only on the samples and on the order of
merging, never on how many workers produced the chunks. Merging uses the pairwise updates of
Chan, Golub & LeVeque (1979) and Pebay (2008): exact in exact arithmetic, stable in floating
point.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Moments:
    """Count, mean and central moment sums M2..M4, vectorised over trailing axes.

    ``M_k = sum_i (x_i - mean)^k``; all arrays have the shape of one sample.
    """

    n: int
    mean: np.ndarray
    m2: np.ndarray
    m3: np.ndarray
    m4: np.ndarray

    @classmethod
    def from_batch(cls, x: np.ndarray) -> Moments:
        """Statistics of the samples along axis 0 of ``x`` (accumulated in float64)."""
        x = np.asarray(x, dtype=np.float64)
        n = x.shape[0]
        if n == 0:
            zeros = np.zeros(x.shape[1:])
            return cls(0, zeros, zeros.copy(), zeros.copy(), zeros.copy())
        mean = x.mean(axis=0)
        d = x - mean
        d2 = d * d
        return cls(n, mean, d2.sum(axis=0), (d2 * d).sum(axis=0), (d2 * d2).sum(axis=0))

    def merge(self, other: Moments) -> Moments:
        """The statistics of both sample sets together (Pebay's pairwise formulas)."""
        if other.n == 0:
            return self
        if self.n == 0:
            return other
        na, nb = self.n, other.n
        n = na + nb
        delta = other.mean - self.mean
        d_n = delta / n
        mean = self.mean + nb * d_n
        m2 = self.m2 + other.m2 + delta * d_n * na * nb
        m3 = (
            self.m3
            + other.m3
            + delta * d_n * d_n * na * nb * (na - nb)
            + 3.0 * d_n * (na * other.m2 - nb * self.m2)
        )
        m4 = (
            self.m4
            + other.m4
            + delta * d_n**3 * na * nb * (na * na - na * nb + nb * nb)
            + 6.0 * d_n * d_n * (na * na * other.m2 + nb * nb * self.m2)
            + 4.0 * d_n * (na * other.m3 - nb * self.m3)
        )
        return Moments(n, mean, m2, m3, m4)

    @property
    def var(self) -> np.ndarray:
        """Unbiased sample variance."""
        return self.m2 / max(self.n - 1, 1)

    @property
    def sem(self) -> np.ndarray:
        """Standard error of the mean."""
        return np.sqrt(self.var / max(self.n, 1))

    @property
    def excess_kurtosis(self) -> np.ndarray:
        """Sample excess kurtosis (0 for a normal law); large values flag heavy tails."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.n * self.m4 / (self.m2 * self.m2) - 3.0


@dataclass
class CoMoments:
    """Count, mean vector and co-moment matrix ``C = sum_i (x_i - mean)(x_i - mean)^T``.

    Used for per-sample aggregates of several quantities at once, so that estimators that are
    functions of several means (a variance is ``E[h^2] - E[h]^2``) get delta-method standard errors.
    """

    n: int
    mean: np.ndarray
    cross: np.ndarray

    @classmethod
    def from_batch(cls, x: np.ndarray) -> CoMoments:
        """Statistics of the rows of ``x`` (shape ``(n, k)``)."""
        x = np.asarray(x, dtype=np.float64)
        n, k = x.shape
        if n == 0:
            return cls(0, np.zeros(k), np.zeros((k, k)))
        mean = x.mean(axis=0)
        d = x - mean
        return cls(n, mean, d.T @ d)

    def merge(self, other: CoMoments) -> CoMoments:
        """The statistics of both sample sets together (Chan's update for co-moments)."""
        if other.n == 0:
            return self
        if self.n == 0:
            return other
        n = self.n + other.n
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.n / n)
        cross = self.cross + other.cross + np.outer(delta, delta) * (self.n * other.n / n)
        return CoMoments(n, mean, cross)

    @property
    def cov(self) -> np.ndarray:
        """Unbiased sample covariance matrix of one sample's vector."""
        return self.cross / max(self.n - 1, 1)

    def cov_of_mean(self) -> np.ndarray:
        """Covariance matrix of the sample mean vector."""
        return self.cov / max(self.n, 1)


@dataclass
class Histogram:
    """Integer counts over fixed bin edges, plus the counts that fall outside them."""

    edges: np.ndarray
    counts: np.ndarray
    below: int = 0
    above: int = 0

    @classmethod
    def empty(cls, edges: np.ndarray) -> Histogram:
        """A histogram with no samples yet."""
        return cls(np.asarray(edges, dtype=np.float64), np.zeros(len(edges) - 1, dtype=np.int64))

    @classmethod
    def from_batch(cls, x: np.ndarray, edges: np.ndarray) -> Histogram:
        """Counts of ``x`` (any shape) in the bins ``edges``."""
        x = np.ravel(x)
        counts, _ = np.histogram(x, bins=edges)
        below = int(np.count_nonzero(x < edges[0]))
        above = int(np.count_nonzero(x > edges[-1]))
        return cls(np.asarray(edges, dtype=np.float64), counts.astype(np.int64), below, above)

    def merge(self, other: Histogram) -> Histogram:
        """Counts of both sample sets (the bins must agree)."""
        if not np.array_equal(self.edges, other.edges):
            raise ValueError("cannot merge histograms with different bin edges")
        return Histogram(
            self.edges,
            self.counts + other.counts,
            self.below + other.below,
            self.above + other.above,
        )

    @property
    def total(self) -> int:
        """Every sample counted, inside the bins or not."""
        return int(self.counts.sum()) + self.below + self.above


class Collected:
    """Per-instance arrays kept whole, for checks that need every instance (finite differences).

    Merging only collects the chunks' arrays in chunk order; :attr:`arrays` joins them once, when
    the point is evaluated (concatenating at every merge would copy the growing arrays once per
    chunk: quadratic in the number of chunks).
    """

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        self._parts: list[dict[str, np.ndarray]] = [arrays]

    def merge(self, other: Collected) -> Collected:
        merged = type(self).__new__(type(self))
        merged.__dict__.update(self.__dict__)
        merged._parts = self._parts + other._parts
        return merged

    @property
    def arrays(self) -> dict[str, np.ndarray]:
        """Every instance's arrays, joined along axis 0 in chunk order."""
        if len(self._parts) > 1:
            keys = self._parts[0]
            self._parts = [{k: np.concatenate([p[k] for p in self._parts]) for k in keys}]
        return self._parts[0]

    @property
    def count(self) -> int:
        """Number of instances collected."""
        return sum(len(next(iter(p.values()))) for p in self._parts) if self._parts[0] else 0
