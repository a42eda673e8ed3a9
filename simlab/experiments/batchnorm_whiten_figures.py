"""The four figures of ``simlab batchnorm whiten``: correlations kept and removed, rank against B,
PCA's axis swapping, and the time per batch against M.

They draw the point with the largest batch above M (the first batch of its run, its whitening
matrices, the rank and timing studies the experiment measured); nothing here draws a random
number.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from simlab.figure_layout import new_figure
from simlab.figures import FigureSpec
from simlab.plotting import (
    THEORY_STYLE,
    finish_axes,
    mark_off_scale,
    side_colorbar,
    simulated_points,
)
from simlab.theory.whitening import matrix_relative_change

if TYPE_CHECKING:
    from simlab.experiments.base import PointResult


@dataclass(frozen=True)
class RankStudy:
    """Batches of each size B (rows) through ZCA, 30 per B (columns)."""

    B: np.ndarray
    rank: np.ndarray  # rank of the batch covariance
    cond: np.ndarray  # its condition number (inf: singular)
    dev: np.ndarray  # ||white_cov - I||_2 (NaN: no whitening at eps = 0)
    dev_theory: np.ndarray  # eps / (lambda_min + eps)
    cond_population: float  # cond(C)


@dataclass(frozen=True)
class WallTimes:
    """Time of BN and of each whitening on one B x M batch, per M and round, and the
    log-log slope of each method's fastest round over ``M >= fit_from``."""

    M: np.ndarray
    B: int
    cpu_time: bool  # the measuring thread's CPU time (BLAS held to it), else wall time
    seconds: Mapping[str, np.ndarray]  # by method (bn, zca, pca, cholesky): rounds x M
    fit_from: int
    slope: Mapping[str, float]  # Theil-Sen slope of log(fastest time) on log M
    intercept: Mapping[str, float]
    slope_se: Mapping[str, float]  # bootstrap over the rounds

    @property
    def rounds(self) -> int:
        return len(next(iter(self.seconds.values())))

    def fastest(self, name: str) -> np.ndarray:
        """The fastest round's time per M: the undisturbed time the slope is fitted to."""
        return self.seconds[name].min(axis=0)


@dataclass(frozen=True)
class WhitenFigureData:
    """What one point of ``simlab batchnorm whiten`` contributes to its figures."""

    C: np.ndarray  # the population correlation
    bn_first: np.ndarray  # BN's output of the run's first batch (B x M)
    zca_first: np.ndarray  # ZCA's output of the same batch
    matrices: Mapping[str, np.ndarray]  # whitening matrix W of each kept batch, by method
    pca_axes: np.ndarray  # PCA's eigenvectors (columns) of each kept batch
    rank_study: RankStudy
    wall_times: WallTimes


_METHOD_LABELS = {"bn": "BN", "zca": "ZCA", "pca": "PCA", "cholesky": "Cholesky"}


def _shown(points: Sequence[PointResult]) -> PointResult:
    """The point the figures show: the largest batch above M (else the largest batch)."""
    return max(points, key=lambda p: (p.params["B"] > p.params["M"], p.params["B"]))


def _integer_ticks(ax) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))


def _output_corr(Yt: np.ndarray) -> np.ndarray:
    c = Yt.T @ Yt / len(Yt)  # white_cov of one batch
    d = np.sqrt(np.clip(np.diag(c), 1e-300, None))
    return c / d[:, None] / d[None, :]


def corr_figure(points: Sequence[PointResult]):
    from matplotlib.colors import TwoSlopeNorm

    pt = _shown(points)
    data: WhitenFigureData = pt.figure
    C = data.C
    fig, axes = new_figure(ncols=3, width=4.3, height=4.0)
    norm = TwoSlopeNorm(vmin=-1.0, vcenter=0.0, vmax=1.0)
    panels = (
        (C, "population correlation C"),
        (_output_corr(data.bn_first), "after BN (one batch): ≈ C, stays"),
        (_output_corr(data.zca_first), "after ZCA (same batch): I"),
    )
    image = None
    for ax, (mat, title) in zip(axes[0], panels, strict=True):
        image = ax.imshow(mat, cmap="RdBu_r", norm=norm)
        _integer_ticks(ax)
        ax.set_title(title)
        ax.set_xlabel("feature k")
        ax.set_ylabel("feature j")
    side_colorbar(fig, image, axes[0, -1], label="correlation (all three panels)", shrink=0.8)
    p = pt.params
    corr = f"rho = {p['rho']:g}" if p["corr"] == "equi" else "random correlation matrix"
    fig.suptitle(
        f"Batch-norm standardises each feature but keeps the correlations; ZCA removes them "
        f"(B = {p['B']}, M = {p['M']}, {corr}, eps = {p['eps']:g})",
        fontsize=10,
    )
    return fig


def _nanmean_rows(a: np.ndarray) -> np.ndarray:
    """Row means over the finite entries (NaN for a row without any), without warnings."""
    finite = np.isfinite(a)
    count = finite.sum(axis=1)
    total = np.where(finite, a, 0.0).sum(axis=1)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


_SINGULAR = "cond = ∞ (Σ singular), on the top edge"


def _rank_panel(ax, study: RankStudy, M: int) -> None:
    """(a) the rank of the batch covariance against min(B - 1, M)."""
    Bs = study.B
    ax.plot(Bs, np.minimum(Bs - 1, M), color="C3", **THEORY_STYLE, label="min(B − 1, M)")
    ax.plot(
        Bs, study.rank.mean(axis=1), "o", color="C0", ms=4, mfc="white", label="simulated (mean)"
    )
    ax.set_ylabel("rank of Σ")
    ax.set_title("rank of the batch covariance")


def _cond_panel(ax, study: RankStudy) -> None:
    """(b) cond(Sigma): median and 10-90% range of the batches; an infinite median (singular
    batches) is marked on the top edge, not at a made-up height."""
    Bs, cond = study.B, study.cond
    # order statistics, not interpolation: a quantile among infinite values stays infinite
    med = np.quantile(cond, 0.5, axis=1, method="inverted_cdf")
    low = np.quantile(cond, 0.1, axis=1, method="inverted_cdf")
    high = np.quantile(cond, 0.9, axis=1, method="inverted_cdf")
    finite = np.isfinite(med)
    capped = finite & ~np.isfinite(high)  # some singular batches above a finite median
    upper = np.zeros_like(med)
    upper[np.isfinite(high)] = high[np.isfinite(high)] - med[np.isfinite(high)]
    simulated_points(  # an interval of the batches, not a standard error
        ax,
        Bs[finite],
        med[finite],
        bars=[med[finite] - low[finite], upper[finite]],
        hollow=False,
        color="C0",
        label="median, 10–90% of batches",
    )
    ax.axhline(study.cond_population, color="C2", lw=1.2, ls="--", label="population cond(C)")
    ax.set_yscale("log")
    if np.any(~finite):
        mark_off_scale(ax, Bs[~finite], marker="^", color="C3", ms=7, label=_SINGULAR)
    if np.any(capped):
        mark_off_scale(
            ax,
            Bs[capped],
            marker="^",
            color="C0",
            mfc="white",
            ms=6,
            label="90% quantile infinite (some batches singular)",
        )
    ax.set_ylabel("cond(Σ) = λmax/λmin")
    ax.set_title("conditioning blows up as B → M", pad=9)  # clear of the top-edge marks
    # lower left: over the population line only, clear of the points and the top-edge marks
    finish_axes(ax, loc="lower left", keep_clear=True)


def _identity_panel(ax, study: RankStudy, eps: float) -> None:
    """(c) ||white_cov - I||_2 of ZCA per batch, against eps/(lambda_min + eps)."""
    Bs, dev = study.B, study.dev
    reps = dev.shape[1]
    ok = np.isfinite(dev)
    ax.plot(
        np.repeat(Bs, reps)[ok.ravel()],
        dev.ravel()[ok.ravel()],
        ".",
        color="C0",
        ms=3,
        alpha=0.4,
        label="simulated ‖Ỹᵀ Ỹ/B − I‖₂ (ZCA)",
    )
    ax.plot(
        Bs,
        _nanmean_rows(study.dev_theory),
        color="C3",
        **THEORY_STYLE,
        label="ε/(λmin+ε) (mean over batches)",
    )
    ax.set_yscale("log")
    positive = dev[ok & (dev > 0)]
    if positive.size:
        ax.set_ylim(max(positive.min() / 3, 1e-17), 3)
    undefined = ~ok.any(axis=1)
    if undefined.any():  # eps = 0 and B <= M: no whitening matrix exists
        mark_off_scale(
            ax,
            Bs[undefined],
            marker="X",
            color="C0",
            mec="k",
            ms=7,
            label="undefined (NaN): eps = 0, Σ singular",
        )
    ax.set_ylabel("deviation from I (spectral norm)")
    ax.set_title(f"whitening identity: exact only for B > M (eps = {eps:g})", fontsize=9, pad=9)
    # clear of the points: at eps > 0 those of B <= M are at 1 (top left), at eps = 0 the
    # top edge marks them undefined and the points of B > M lie at the rounding floor
    finish_axes(ax, loc="lower left" if eps > 0 else "center left", keep_clear=True)


def _batch_size_ticks(ax, Bs: np.ndarray) -> None:
    """Batch sizes 1, 2, 5, 10, 20, 50... as plain numbers on the log x axis, no minor labels
    (a span of under two decades would otherwise label crowded minor ticks)."""
    from matplotlib.ticker import FixedLocator, NullFormatter, StrMethodFormatter

    decades = range(int(np.floor(np.log10(Bs.min()))), int(np.ceil(np.log10(Bs.max()))) + 1)
    ticks = [m * 10**k for k in decades for m in (1, 2, 5) if Bs.min() <= m * 10**k <= Bs.max()]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(StrMethodFormatter("{x:.0f}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def rank_figure(points: Sequence[PointResult]):
    pt = _shown(points)
    M, eps = pt.params["M"], pt.params["eps"]
    study: RankStudy = pt.figure.rank_study
    fig, axes = new_figure(ncols=3, width=4.6, height=3.9)
    _rank_panel(axes[0, 0], study, M)
    _cond_panel(axes[0, 1], study)
    _identity_panel(axes[0, 2], study, eps)
    for ax in axes[0]:
        ax.axvline(M, color="k", lw=0.8, ls=":")
        ax.axvspan(study.B.min() * 0.9, M, color="0.9", zorder=0)
        ax.set_xscale("log")
        _batch_size_ticks(ax, study.B)
        finish_axes(
            ax,
            xlabel=f"batch size B (shaded: B ≤ M = {M})",
            which="both",
            legend=ax.get_legend() is None,  # the panels that placed their own keep it
            keep_clear=True,
        )
    fig.suptitle(
        f"As B falls through M the batch covariance becomes singular "
        f"({study.rank.shape[1]} batches per B)"
    )
    return fig


#: the share of a swap panel's height kept free above the data for its one-row legend
_LEGEND_BAND = 0.16


def _band_above(ax, lo: float, hi: float, log: bool) -> None:
    """y limits from ``lo`` to ``hi`` (a small margin) plus an empty band on top for the legend,
    so that it covers no point whatever the data."""
    if log:
        a, b = math.log10(lo), math.log10(hi)
        pad = 0.05 * max(b - a, 0.1)
        a, b = a - pad, b + pad
        ax.set_ylim(10**a, 10 ** (b + _LEGEND_BAND / (1 - _LEGEND_BAND) * (b - a)))
    else:
        pad = 0.03 * (hi - lo)
        a, b = lo - pad, hi + pad
        ax.set_ylim(a, b + _LEGEND_BAND / (1 - _LEGEND_BAND) * (b - a))


def _matrix_change_panel(ax, data: WhitenFigureData) -> None:
    """(a) ||W_t - W_(t-1)||_F / ||W_t||_F of each whitening, batch after batch."""
    shown = []
    for i, name in enumerate(("pca", "zca", "cholesky")):
        W = data.matrices[name]
        if len(W) < 2:
            continue
        change = matrix_relative_change(W[:-1], W[1:])
        finite = change[np.isfinite(change)]
        if not finite.size:  # eps = 0 and B <= M: no matrix, said in the panel
            continue
        ax.plot(
            np.arange(1, len(W)),
            change,
            "o-",
            ms=3,
            lw=1,
            color=f"C{i}",
            label=f"{_METHOD_LABELS[name]}: median {np.median(finite):.2g}",
        )
        shown.append(finite[finite > 0])
    ax.set_yscale("log")
    values = np.concatenate(shown) if shown else np.array([])
    if values.size:
        _band_above(ax, float(values.min()), float(values.max()), log=True)
    else:
        ax.set_xlim(0, len(data.matrices["zca"]))
        ax.set_yticks([])
    if not np.isfinite(data.matrices["zca"]).any():
        ax.text(
            0.5,
            0.5,
            "eps = 0 and B ≤ M: Σ is singular,\nno whitening matrix exists (NaN)",
            ha="center",
            transform=ax.transAxes,
        )
    finish_axes(
        ax,
        xlabel="batch t",
        ylabel=r"$\|W_t - W_{t-1}\|_F / \|W_t\|_F$",
        which="both",
        loc="upper center",
        ncols=3,
        keep_clear=True,
    )
    ax.set_title("whitening matrix from one batch to the next", fontsize=10)


def _axis_cosine_panel(ax, data: WhitenFigureData) -> None:
    """(b) |cos| between PCA's axis k of consecutive batches (1: the same axis)."""
    U = data.pca_axes
    if len(U) >= 2:
        cos = np.abs(np.einsum("tik,tik->tk", U[:-1], U[1:]))
        for k in range(min(3, U.shape[-1])):
            ax.plot(
                np.arange(1, len(U)),
                cos[:, k],
                "o-",
                ms=3,
                lw=1,
                color=f"C{k + 3}",
                label=f"PCA axis {k + 1}",
            )
    _band_above(ax, 0.0, 1.0, log=False)  # a cosine's size is at most 1
    ax.set_yticks(np.linspace(0.0, 1.0, 6))
    finish_axes(
        ax,
        xlabel="batch t",
        ylabel=r"$|\cos|$ between axis k of batches t−1 and t",
        loc="upper center",
        ncols=3,
        keep_clear=True,
    )
    ax.set_title("PCA's output axes swap and rotate (ZCA has no axes to swap)", fontsize=9)


def swap_figure(points: Sequence[PointResult]):
    pt = _shown(points)
    fig, axes = new_figure(ncols=2, width=5.4, height=3.9)
    _matrix_change_panel(axes[0, 0], pt.figure)
    _axis_cosine_panel(axes[0, 1], pt.figure)
    p = pt.params
    corr = f"rho = {p['rho']:g}" if p["corr"] == "equi" else "random correlation"
    fig.suptitle(
        f"Stochastic axis swapping: consecutive batches (B = {p['B']}, M = {p['M']}, {corr})",
        fontsize=10,
    )
    return fig


def time_figure(points: Sequence[PointResult]):
    times: WallTimes = _shown(points).figure.wall_times
    Ms = times.M
    fit = Ms >= times.fit_from
    fig, axes = new_figure(width=6.2, height=4.6)
    ax = axes[0, 0]
    for i, name in enumerate(_METHOD_LABELS):
        every = times.seconds[name]
        ax.plot(
            np.broadcast_to(Ms, every.shape).ravel(),
            every.ravel(),
            ".",
            color=f"C{i}",
            ms=2.5,
            alpha=0.3,
        )
        slope, se = times.slope[name], times.slope_se[name]
        ax.loglog(
            Ms,
            times.fastest(name),
            "o",
            color=f"C{i}",
            ms=5,
            label=f"{_METHOD_LABELS[name]}: slope {slope:.2f} ± {2 * se:.2f}",
        )
        line = np.exp(times.intercept[name]) * Ms[fit] ** slope
        ax.loglog(Ms[fit], line, "-", color=f"C{i}", lw=1.2)
    anchor = float(times.fastest("bn")[fit][0])
    for k, style in ((1, ":"), (2, "--"), (3, "-.")):
        guide = anchor * (Ms[fit] / Ms[fit][0]) ** k
        ax.loglog(Ms[fit], guide, style, color="0.6", lw=0.9, label=f"reference: slope {k}")
    ax.plot([], [], ".", color="0.4", ms=2.5, alpha=0.5, label="every round (faint)")
    finish_axes(
        ax,
        xlabel="features M",
        ylabel=f"{'CPU' if times.cpu_time else 'wall'} time per batch (s)",
        which="both",
        legend_size=8,
        loc="upper left",
        keep_clear=True,
    )
    clock = "CPU time (one BLAS thread)" if times.cpu_time else "wall time"
    ax.set_title(
        f"Measured {clock} per B = {times.B} batch, {times.rounds} interleaved rounds\n"
        f"dots: fastest round per M; lines: Theil–Sen log-log slopes over M ≥ "
        f"{times.fit_from},\n±2 SE from a bootstrap over the rounds",
        fontsize=9,
    )
    return fig


FIGURES = (
    FigureSpec(
        "batchnorm_whiten_corr",
        "Batch norm standardises each feature, W = diag(Σ_jj + ε)^(−1/2), but keeps the "
        "correlations: its output correlation is the sample correlation of C; ZCA whitening, "
        "W = (Σ + εI)^(−1/2), makes Ỹᵀ Ỹ/B = I (up to ε/(λmin + ε)) when B > M. One batch's "
        "matrices: no error bars",
        corr_figure,
    ),
    FigureSpec(
        "batchnorm_whiten_rank",
        "As B falls through M the batch covariance Σ = Ycᵀ Yc/B loses rank: rank(Σ) = "
        "min(B − 1, M), cond(Σ) blows up as B → M + 1 and is infinite for B ≤ M, and the "
        "whitening identity Ỹᵀ Ỹ/B = I holds only for B > M, up to ε/(λmin + ε). An infinite "
        "condition number (singular Σ) or an undefined deviation (NaN: ε = 0) is a mark on the "
        "top edge. The bars of cond are the 10–90% range of the batches, not ±2 SE: the mean "
        "of cond need not exist near B = M + 1, so its median is drawn",
        rank_figure,
    ),
    FigureSpec(
        "batchnorm_whiten_swap",
        "Stochastic axis swapping: from one batch to the next PCA's whitening matrix "
        "W = U (Λ + ε)^(−1/2) jumps by O(1) in ‖W_t − W_(t−1)‖_F/‖W_t‖_F as its axes swap and "
        "rotate, while ZCA's symmetric (Σ + εI)^(−1/2) changes little. Each batch's value: no "
        "error bars",
        swap_figure,
    ),
    FigureSpec(
        "batchnorm_whiten_time",
        "Time per batch against M, measured on this machine (a measurement, not a check): the "
        "measuring thread's CPU time when BLAS is held to that thread (a busy machine inflates "
        "wall time, not this), else wall time. Every round of the interleaved, shuffled timings "
        "(faint) and the fastest round per M (dots); each method's log-log slope is a Theil–Sen "
        "fit to the fastest times over the larger M, ±2 SE from a bootstrap over the rounds: "
        "the spread within this run; another run, on a machine whose caches and memory other "
        "processes share differently, can differ by more (memory-bound BN most: its slope "
        "measured 0.8 in one run and 1.5 in others on this 2-core machine at loads of 10-22). For "
        "reference, BN's work grows as BM and whitening's as BM² (forming Σ = Ycᵀ Yc/B) plus M³ "
        "(its eigendecomposition or Cholesky factor); the measured slopes say how far these "
        "sizes, with their fixed overheads and cache effects, are from those counts",
        time_figure,
    ),
)
