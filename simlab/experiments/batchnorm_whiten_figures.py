"""The four figures of ``simlab batchnorm whiten``: correlations kept and removed, rank against B,
PCA's axis swapping, and wall time against M.

They draw the point with the largest batch above M (the first batch of its run, its whitening
matrices, the rank and timing studies the experiment measured); nothing here draws a random
number.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from simlab.figures import FigureSpec
from simlab.plotting import SIM_STYLE, THEORY_STYLE, finish_axes, new_figure
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
    """Best wall time of BN and of each whitening on one B x M batch, per M."""

    M: np.ndarray
    B: int
    rounds: int
    one_thread: bool  # BLAS limited to one thread while measuring
    seconds: Mapping[str, np.ndarray]  # by method: bn, zca, pca, cholesky


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
    fig, axes = new_figure(ncols=3, width=4.3, height=4.0, layout="constrained")
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
    fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8, label="correlation")
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


def rank_figure(points: Sequence[PointResult]):
    pt = _shown(points)
    M, eps = pt.params["M"], pt.params["eps"]
    study: RankStudy = pt.figure.rank_study
    Bs, rank, cond, dev = study.B, study.rank, study.cond, study.dev
    reps = rank.shape[1]
    fig, axes = new_figure(ncols=3, width=4.6, height=3.9)
    ax = axes[0, 0]
    ax.plot(Bs, np.minimum(Bs - 1, M), color="C3", **THEORY_STYLE, label="min(B − 1, M)")
    ax.plot(Bs, rank.mean(axis=1), "o", color="C0", ms=4, mfc="white", label="simulated (mean)")
    ax.set_ylabel("rank of Σ")
    ax.set_title("rank of the batch covariance")
    ax = axes[0, 1]
    with np.errstate(invalid="ignore"):
        med = np.median(cond, axis=1)  # inf when most batches are singular
        q1, q3 = np.quantile(np.where(np.isfinite(cond), cond, 1e300), [0.1, 0.9], axis=1)
    finite = np.isfinite(med)
    ax.errorbar(
        Bs[finite],
        med[finite],
        yerr=[med[finite] - q1[finite], np.minimum(q3[finite], 1e19) - med[finite]],
        color="C0",
        **SIM_STYLE,
        label="simulated: median, 10–90%",
    )
    ax.axhline(study.cond_population, color="C2", lw=1.2, ls="--", label="population cond(C)")
    if np.any(~finite):
        top = np.nanmax(np.where(np.isfinite(cond), cond, np.nan)) * 3
        ax.plot(
            Bs[~finite],
            np.full((~finite).sum(), top),
            "^",
            color="C3",
            ms=6,
            label="∞ (singular, B ≤ M)",
        )
    ax.set_yscale("log")
    ax.set_ylabel("cond(Σ) = λmax/λmin")
    ax.set_title("conditioning blows up as B → M")
    ax = axes[0, 2]
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
    th = _nanmean_rows(study.dev_theory)
    ax.plot(Bs, th, color="C3", **THEORY_STYLE, label="ε/(λmin+ε) (mean over batches)")
    ax.set_yscale("log")
    ax.set_ylim(max(np.nanmin(np.where(dev > 0, dev, np.nan)) / 3, 1e-17), 3)
    ax.set_ylabel("deviation from I (spectral norm)")
    ax.set_title(f"whitening identity: exact only for B > M (eps = {eps:g})", fontsize=9)
    for ax in axes[0]:
        ax.axvline(M, color="k", lw=0.8, ls=":")
        ax.axvspan(Bs.min() * 0.9, M, color="0.9", zorder=0)
        ax.set_xscale("log")
        finish_axes(ax, xlabel=f"batch size B (shaded: B ≤ M = {M})", which="both")
    fig.suptitle(
        f"As B falls through M the batch covariance becomes singular ({reps} batches per B)"
    )
    return fig


def swap_figure(points: Sequence[PointResult]):
    pt = _shown(points)
    data: WhitenFigureData = pt.figure
    fig, axes = new_figure(ncols=2, width=5.4, height=3.9)
    ax = axes[0, 0]
    for i, name in enumerate(("pca", "zca", "cholesky")):
        W = data.matrices[name]
        if len(W) < 2:
            continue
        change = matrix_relative_change(W[:-1], W[1:])
        finite = change[np.isfinite(change)]
        median = f"{np.median(finite):.2g}" if finite.size else "NaN (eps = 0, B <= M)"
        ax.plot(
            np.arange(1, len(W)),
            change,
            "o-",
            ms=3,
            lw=1,
            color=f"C{i}",
            label=f"{name.upper() if name != 'cholesky' else 'Cholesky'}: median {median}",
        )
    if not np.isfinite(data.matrices["zca"]).any():
        ax.text(
            0.5,
            0.5,
            "eps = 0 and B ≤ M: Σ is singular,\nno whitening matrix exists (NaN)",
            ha="center",
            transform=ax.transAxes,
        )
    ax.set_yscale("log")
    finish_axes(
        ax,
        xlabel="batch t",
        ylabel=r"$\|W_t - W_{t-1}\|_F / \|W_t\|_F$",
        title="whitening matrix from one batch to the next",
        which="both",
    )
    ax = axes[0, 1]
    U = data.pca_axes
    M = U.shape[-1]
    if len(U) >= 2:
        cos = np.abs(np.einsum("tik,tik->tk", U[:-1], U[1:]))
        for k in range(min(3, M)):
            ax.plot(
                np.arange(1, len(U)),
                cos[:, k],
                "o-",
                ms=3,
                lw=1,
                color=f"C{k + 3}",
                label=f"PCA axis {k + 1}",
            )
    ax.set_ylim(-0.03, 1.05)
    finish_axes(ax, xlabel="batch t", ylabel=r"$|\cos|$ between axis k of batches t−1 and t")
    ax.set_title("PCA's output axes swap and rotate (ZCA has no axes to swap)", fontsize=9)
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
    fig, axes = new_figure(width=6.0, height=4.4)
    ax = axes[0, 0]
    fit = Ms >= 32
    for i, name in enumerate(("bn", "zca", "pca", "cholesky")):
        t = times.seconds[name]
        slope, icpt = np.polyfit(np.log(Ms[fit]), np.log(t[fit]), 1)
        label = {"bn": "BN", "zca": "ZCA", "pca": "PCA", "cholesky": "Cholesky"}[name]
        ax.loglog(Ms, t, "o", color=f"C{i}", ms=5, label=f"{label}: fitted slope {slope:.2f}")
        ax.loglog(Ms[fit], np.exp(icpt) * Ms[fit] ** slope, "-", color=f"C{i}", lw=1.2)
    anchor = float(times.seconds["bn"][fit][0])
    for k, style in ((1, ":"), (2, "--"), (3, "-.")):
        guide = anchor * (Ms[fit] / Ms[fit][0]) ** k
        ax.loglog(
            Ms[fit], guide, style, color="0.6", lw=0.9, label=f"guide: slope {k}" if k else None
        )
    finish_axes(
        ax,
        xlabel="features M",
        ylabel=f"wall time per batch (s, best of {times.rounds} rounds)",
        which="both",
        legend_size=8,
    )
    threads = "one BLAS thread" if times.one_thread else "BLAS threads as configured"
    ax.set_title(
        f"BN is O(BM); whitening pays O(BM²) for Σ and O(M³) for its eigh\n"
        f"(B = {times.B}, {threads}; slopes fitted for M ≥ 32)",
        fontsize=9,
    )
    return fig


FIGURES = (
    FigureSpec(
        "batchnorm_whiten_corr",
        "Batch norm standardises each feature, W = diag(Σ_jj + ε)^(−1/2), but keeps the "
        "correlations: its output correlation is the sample correlation of C; ZCA whitening, "
        "W = (Σ + εI)^(−1/2), makes Ỹᵀ Ỹ/B = I (up to ε/(λmin + ε)) when B > M",
        corr_figure,
    ),
    FigureSpec(
        "batchnorm_whiten_rank",
        "As B falls through M the batch covariance Σ = Ycᵀ Yc/B loses rank: rank(Σ) = "
        "min(B − 1, M), cond(Σ) blows up as B → M + 1 and is infinite for B ≤ M, and the "
        "whitening identity Ỹᵀ Ỹ/B = I holds only for B > M, up to ε/(λmin + ε)",
        rank_figure,
    ),
    FigureSpec(
        "batchnorm_whiten_swap",
        "Stochastic axis swapping: from one batch to the next PCA's whitening matrix "
        "W = U (Λ + ε)^(−1/2) jumps by O(1) in ‖W_t − W_(t−1)‖_F/‖W_t‖_F as its axes swap and "
        "rotate, while ZCA's symmetric (Σ + εI)^(−1/2) changes little",
        swap_figure,
    ),
    FigureSpec(
        "batchnorm_whiten_time",
        "Wall time per batch against M (a measurement of this machine, not a check): BN is "
        "O(BM), t ∝ M; whitening pays O(BM²) to form Σ = Ycᵀ Yc/B and O(M³) for its "
        "eigendecomposition, t ∝ M² to M³: the fitted log-log slopes",
        time_figure,
    ),
)
