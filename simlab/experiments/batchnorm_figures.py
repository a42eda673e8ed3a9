"""Figures of ``simlab batchnorm stats | grads | whiten``.

Studies that only a figure needs (the eps sweep, rank against B, wall time against M) are simulated
here, from a generator seeded by the run's entropy and the point index (stream purpose 7), so a
replayed run draws the same figures and ``--no-plots`` costs nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import time
from pathlib import Path

import matplotlib.ticker
import numpy as np
import scipy.stats
from matplotlib.colors import TwoSlopeNorm

from simlab.experiments.base import PointResult
from simlab.experiments.batchnorm import batch_rank
from simlab.plotting import SIM_STYLE, THEORY_STYLE, new_figure, save
from simlab.theory import batchnorm as bn

_FIGURE_STREAM = 7


def _figure_rng(point: PointResult) -> np.random.Generator:
    seq = np.random.SeedSequence(
        point.extras["entropy"], spawn_key=(_FIGURE_STREAM, point.extras["point_index"])
    )
    return np.random.default_rng(seq)


def _setting(point: PointResult, swept: list[str]) -> str:
    parts = []
    for k in swept:
        v = point.params[k]
        parts.append(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}")
    return ", ".join(parts)


def _swept(points: list[PointResult]) -> list[str]:
    return [k for k in points[0].params if len({str(pt.params[k]) for pt in points}) > 1]


def _zero_axis(ax, x0: float, lo: float, hi: float, label: str = "0") -> None:
    """Log x axis from ``lo`` to ``hi`` with the position ``x0`` (left of ``lo``) standing for
    the exact value 0, behind a dotted break."""
    first, last = math.ceil(math.log10(lo)), math.floor(math.log10(hi))
    step = max(1, (last - first) // 5)
    decades = list(range(last, first - 1, -step))[::-1]
    ax.set_xlim(x0 / 5, hi * 5)
    ax.set_xticks([x0] + [10.0**d for d in decades])
    ax.set_xticklabels([label] + [f"$10^{{{d}}}$" for d in decades])
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.axvline(math.sqrt(x0 * lo), color="0.5", lw=0.8, ls=(0, (2, 2)))


# --------------------------------------------------------------------------------------------------
# stats
# --------------------------------------------------------------------------------------------------


def render_stats(points: list[PointResult], folder: Path, formats: tuple[str, ...]) -> list[Path]:
    """The statistics over batches, and the eps study."""
    return [*_stats_figure(points, folder, formats), *_eps_figure(points, folder, formats)]


def _stats_figure(points, folder, formats):
    fig, axes = new_figure(ncols=3, width=5.0, height=4.0)
    swept = _swept(points)
    live = [pt for pt in points if pt.params["sigma"] > 0]

    # (a) the law of v
    ax = axes[0, 0]
    if live:
        pt = live[0]
        hist = pt.extras["stats"].v_hist
        B = pt.params["B"]
        widths = np.diff(hist.edges)
        dens = hist.counts / (hist.total * widths)
        se = np.sqrt(hist.counts) / (hist.total * widths)
        centres = 0.5 * (hist.edges[:-1] + hist.edges[1:])
        ax.stairs(dens, hist.edges, color="C0", lw=1.2, label="simulated (all features)")
        ax.errorbar(centres, dens, yerr=2 * se, fmt="none", ecolor="C0", alpha=0.5)
        grid = np.linspace(hist.edges[0], hist.edges[-1], 400)
        gaussian = pt.params["input"] == "gaussian"
        ax.plot(
            grid,
            scipy.stats.chi2.pdf(grid, B - 1),
            color="C3",
            **THEORY_STYLE,
            label=r"$\chi^2_{B-1}$ (exact for Gaussian input)"
            if gaussian
            else r"$\chi^2_{B-1}$ (Gaussian reference only)",
        )
        ax.axvline(B - 1, color="k", lw=0.8, ls=":", label=r"mean $B-1$: $E[v] = (B-1)\sigma^2/B$")
        ax.set_xlim(0, min(hist.edges[-1], scipy.stats.chi2.ppf(0.9995, B - 1) * 1.6))
        ax.set_title(f"law of the batch variance (B = {B}, {pt.params['input']} input)")
        ax.set_xlabel(r"$B\,v/\sigma^2$")
        ax.set_ylabel("density")
        ax.legend(fontsize=7)
    else:
        ax.text(0.5, 0.5, "sigma = 0: v = 0 in every batch", ha="center", transform=ax.transAxes)
    ax.grid(alpha=0.3)

    # (b) every statistical check as a deviation in standard units
    ax = axes[0, 1]
    names = (("mean_v", r"$E[v]$"), ("mean_out", r"$E[\hat Y]$"), ("var_out", r"Var$(\hat Y)$"))
    xs = np.arange(len(points))
    for i, (name, label) in enumerate(names):
        dev, err, pos = [], [], []
        for j, pt in enumerate(points):
            est = pt.estimates.get(name)
            pred = pt.predictions.get(name)
            if pred is None or not hasattr(est, "se") or not est.se or not np.isfinite(est.value):
                continue
            scale = abs(float(pred.value)) or 1.0
            dev.append((est.value - float(pred.value)) / scale)
            err.append(2 * est.se / scale)
            pos.append(j + (i - 1) * 0.12)
        ax.errorbar(pos, dev, yerr=err, color=f"C{i}", **SIM_STYLE, label=label)
    if not any(pt.params["sigma"] > 0 for pt in points):
        ax.text(
            0.5,
            0.6,
            "sigma = 0: every batch is the same,\nso these quantities are checked exactly",
            ha="center",
            transform=ax.transAxes,
        )
    ax.axhline(0.0, color="k", lw=1)
    ax.set_xlim(-0.5, len(points) - 0.5)
    ax.set_xticks(xs)
    ax.set_xticklabels(
        [_setting(pt, swept).replace(", ", "\n") or "defaults" for pt in points],
        fontsize=7 if len(points) < 8 else 5,
        rotation=0 if len(points) < 8 else 90,
    )
    ax.set_ylabel("(simulated − predicted) / |predicted|")
    ax.set_title(
        "statistical checks, ±2 SE over independent batches\n"
        "(mean_out: absolute deviation, the prediction beta may be 0)",
        fontsize=9,
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)

    # (c) Var(Yhat) / gamma^2 = E[v/(v+eps)] against sigma^2/eps
    ax = axes[0, 2]
    Bs = sorted({pt.params["B"] for pt in points})
    xs_live = [pt.params["sigma"] ** 2 / pt.params["eps"] for pt in live if pt.params["eps"] > 0]
    grid = np.logspace(-3, max(4.0, math.log10(max(xs_live, default=1.0)) + 0.5), 200)
    for k, B in enumerate(Bs):
        curve = [bn.expected_v_ratio(B, 1.0, float(x)) for x in grid]
        ax.plot(grid, curve, color=f"C{k}", **THEORY_STYLE, label=f"quadrature, B = {B}")
    plotted_estimated = False
    for pt in live:
        eps, sigma, gamma = pt.params["eps"], pt.params["sigma"], pt.params["gamma"]
        if eps <= 0 or gamma == 0:
            continue
        x = sigma * sigma / eps
        k = Bs.index(pt.params["B"])
        est = pt.estimates["var_out"]
        g2 = gamma * gamma
        if pt.params["input"] == "gaussian":
            ax.errorbar(x, est.value / g2, yerr=2 * est.se / g2, color=f"C{k}", **SIM_STYLE)
        else:
            ratio = pt.extras["ratio"]
            x *= 1.6  # beside the Gaussian point of the same setting
            ax.errorbar(
                x,
                est.value / g2,
                yerr=2 * est.se / g2,
                color=f"C{k}",
                fmt="s",
                mfc="white",
                ms=5,
                capsize=3,
                label=None if plotted_estimated else "non-Gaussian input: simulated ±2 SE",
            )
            ax.plot(
                x,
                ratio.value / g2,
                "x",
                color="k",
                ms=8,
                zorder=5,
                label=None if plotted_estimated else "its E[v/(v+eps)], estimated (no closed form)",
            )
            plotted_estimated = True
    ax.axhline(1.0, color="0.5", lw=0.8, ls=":")
    ax.set_xscale("log")
    ax.set_xlabel(r"feature variance / eps  ($\sigma^2/\varepsilon$)")
    ax.set_ylabel(r"Var$(\hat Y)/\gamma^2 = E[v/(v+\varepsilon)]$")
    ax.set_title("eps shrinks the output variance when σ² ≲ eps")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, title="Gaussian input: dots, ±2 SE", title_fontsize=7, loc="lower right")
    n = points[0].n_samples
    fig.suptitle(f"Batch norm over random batches ({n:,} batches per point)")
    return save(fig, folder, "batchnorm_stats", formats)


def eps_study(B: int, gamma: float, eps_run: float, rng: np.random.Generator, batches: int = 2000):
    """Gaussian features of variance falling to exactly 0, normalised with several eps.

    Returns a dict with the variance grid, the eps grid, and per (eps, variance): Var(Yhat)/gamma^2
    from row 0 (mean and SE over batches), the max |xhat| over the batches, and per-batch (v, ||J||)
    pairs for the first batches (40 at most, fewer for large B).
    """
    eps_grid = sorted({0.0, 1e-8, 1e-2, float(eps_run)})
    variances = np.concatenate([np.logspace(-12, 1, 27), [0.0]])
    Z = rng.standard_normal((batches, B, 1))  # common random numbers across the grid
    n_jac = int(max(2, min(40, (1 << 20) // (B * B))))  # B x B Jacobians per dot
    out = {"eps": eps_grid, "variances": variances, "B": B, "gamma": gamma}
    for eps in eps_grid:
        rows = []
        for var in variances:
            fwd = bn.bn_forward(math.sqrt(var) * Z, gamma, 0.0, eps)
            with np.errstate(invalid="ignore"):
                # per batch, mean_i xhat^2 = v/(v+eps): Var(Yhat)/gamma^2 is its mean
                per_batch = np.mean(fwd.xhat[:, :, 0] ** 2, axis=1)
                ratio = float(np.mean(per_batch))
                ratio_se = float(np.std(per_batch, ddof=1) / math.sqrt(batches))
                xmax = float(np.max(np.abs(fwd.xhat)))
            sub = fwd.Y[:n_jac, :, 0]
            jac = np.atleast_1d(bn.jacobian_norm(sub, gamma, eps))
            rows.append((ratio, ratio_se, xmax, fwd.v[:n_jac, 0, 0], jac))
        out[eps] = rows
    return out


def _eps_figure(points, folder, formats):
    pt = next((p for p in points if p.params["sigma"] > 0), points[0])
    B, gamma, eps_run = pt.params["B"], pt.params["gamma"], pt.params["eps"]
    gamma = gamma if gamma != 0 else 1.0
    study = eps_study(B, gamma, eps_run, _figure_rng(pt))
    variances = study["variances"]
    positive = variances[variances > 0]
    x0 = positive.min() / 100.0  # where the exact 0 is drawn
    xs = np.where(variances > 0, variances, x0)
    fine = np.logspace(math.log10(positive.min()), math.log10(positive.max()), 300)
    fig, axes = new_figure(ncols=3, width=5.0, height=4.2)
    colours = {eps: f"C{i}" for i, eps in enumerate(study["eps"])}

    def eps_label(eps: float) -> str:
        tag = " (this run)" if eps == eps_run else ""
        return f"eps = {eps:g}{tag}"

    bound = bn.samuelson_bound(B)
    for eps in study["eps"]:
        c = colours[eps]
        rows = study[eps]
        ratio = np.array([r[0] for r in rows])
        ratio_se = np.array([r[1] for r in rows])
        xmax = np.array([r[2] for r in rows])
        finite = np.isfinite(ratio)
        # (a) Var(Yhat)/gamma^2
        ax = axes[0, 0]
        theory = [bn.expected_v_ratio(B, eps, float(v)) for v in fine]
        ax.plot(fine, theory, color=c, **THEORY_STYLE)
        ax.errorbar(
            xs[finite],
            ratio[finite],
            yerr=2 * ratio_se[finite],
            color=c,
            mfc="white",
            **SIM_STYLE,
            label=eps_label(eps),
        )
        # (b) max |xhat|
        ax = axes[0, 1]
        with np.errstate(invalid="ignore", divide="ignore"):
            spike = bound * np.sqrt(fine / (fine + eps)) if eps > 0 else np.full_like(fine, bound)
        ax.plot(fine, spike, color=c, **THEORY_STYLE)
        ax.plot(xs[finite], xmax[finite], "o", color=c, ms=4, mfc="white", label=eps_label(eps))
        for ax_nan in (axes[0, 0], axes[0, 1]):
            if not np.all(finite):
                ax_nan.plot(
                    xs[~finite],
                    np.full((~finite).sum(), 0.5 if ax_nan is axes[0, 0] else bound / 2),
                    "X",
                    color=c,
                    ms=10,
                    mec="k",
                    label="NaN: 0/0 (constant feature, eps = 0)",
                )
        # (c) ||J|| against the batch's own v
        ax = axes[0, 2]
        vs = np.concatenate([r[3] for r in rows])
        js = np.concatenate([r[4] for r in rows])
        ok = np.isfinite(js)
        xv = np.where(vs > 0, vs, x0)
        ax.plot(xv[ok], js[ok], ".", color=c, ms=3, alpha=0.5)
        with np.errstate(divide="ignore", invalid="ignore"):
            closed = bn.jacobian_norm_prediction(B, fine, gamma, eps)
        ax.plot(fine, closed, color=c, **THEORY_STYLE, label=eps_label(eps))
        if eps > 0:
            ax.plot(
                [x0],
                [bn.jacobian_norm_prediction(B, 0.0, gamma, eps)],
                "D",
                color=c,
                ms=6,
                label=r"v = 0: capped at $|\gamma|/\sqrt{\varepsilon}$"
                if eps == max(study["eps"])
                else None,
            )
        if np.any(~ok):
            ax.plot(
                [x0],
                [abs(gamma) / math.sqrt(positive.min())],
                "X",
                color=c,
                ms=10,
                mec="k",
                label="NaN at v = 0, eps = 0",
            )

    ax = axes[0, 0]
    ax.set_xscale("log")
    ax.set_ylim(-0.05, 1.1)
    ax.set_xlabel(r"feature variance $\sigma^2$")
    ax.set_ylabel(r"Var$(\hat Y)/\gamma^2 = E[v/(v+\varepsilon)]$")
    ax.set_title(
        "forward: output variance shrinks when σ² ≲ eps\n"
        "(dots: mean over batches ±2 SE; curves: quadrature)",
        fontsize=9,
    )
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(0.08, 0.5))
    ax = axes[0, 1]
    ax.axhline(bound, color="k", lw=1.2, ls="--", label=r"Samuelson: $\sqrt{B-1}$")
    ax.set_xscale("log")
    ax.set_ylim(0, bound * 1.15)
    ax.set_xlabel(r"feature variance $\sigma^2$")
    ax.set_ylabel(r"max $|\hat x|$")
    ax.set_title(
        "forward stays bounded: max |x̂| (dots: random batches;\n"
        "curves: one outlier, where the bound is attained)",
        fontsize=9,
    )
    ax.legend(fontsize=7, loc="lower right")
    ax = axes[0, 2]
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(r"batch variance $v$ of the feature")
    ax.set_ylabel(r"$\|\partial \hat Y/\partial Y\|_2$ (one feature column)")
    closed_text = (
        r"$|\gamma|/\sqrt{v+\varepsilon}$"
        if B >= 3
        else r"$|\gamma|\,\varepsilon/(v+\varepsilon)^{3/2}$ (B = 2)"
    )
    if B >= 3:
        ax.set_title(f"backward blows up without eps: curves {closed_text}", fontsize=9)
    else:
        ax.set_title(
            f"B = 2: curves {closed_text}; at eps = 0 the Jacobian is exactly 0\n"
            "(two points always normalise to ±1; eps = 0 dots are round-off)",
            fontsize=9,
        )
    ax.legend(fontsize=7, loc="upper right")
    for ax in axes[0]:
        ax.grid(alpha=0.3, which="both")
        _zero_axis(ax, x0, positive.min(), positive.max())
    fig.suptitle(
        f"Why eps exists (B = {B}, |γ| = {abs(gamma):g}, Gaussian features, "
        f"{2000:,} batches per dot; the leftmost tick is a feature of variance exactly 0)"
    )
    return save(fig, folder, "batchnorm_eps", formats)


# --------------------------------------------------------------------------------------------------
# grads
# --------------------------------------------------------------------------------------------------


def render_grads(points: list[PointResult], folder: Path, formats: tuple[str, ...]) -> list[Path]:
    fig, axes = new_figure(ncols=3, nrows=2, width=4.4, height=3.3)
    tol = points[0].extras["tol"]
    lo = -17.0
    bins = np.linspace(lo - 0.5, 1.0, 75)
    for ax, q in zip(axes.ravel(), bn.GRAD_QUANTITIES, strict=True):
        errors = np.concatenate([pt.extras["rel_errors"][q] for pt in points])
        finite = errors[np.isfinite(errors)]
        logs = np.log10(np.maximum(finite, 10.0**lo))
        ax.hist(logs, bins=bins, color="C0", alpha=0.75, label="analytic backward vs FD")
        for i, (label, (wq, werr)) in enumerate(
            (k, v) for pt in points[:1] for k, v in pt.extras["wrong"].items()
        ):
            if wq != q:
                continue
            allw = np.concatenate([pt.extras["wrong"][label][1] for pt in points])
            allw = allw[np.isfinite(allw)]
            ax.hist(
                np.log10(np.maximum(allw, 10.0**lo)),
                bins=bins,
                histtype="step",
                color="C3",
                lw=1.5,
                label=f"wrong: {label}",
            )
            del werr, i
        ax.axvline(math.log10(tol), color="k", ls="--", lw=1.2, label=f"tolerance {tol:.1e}")
        skipped = np.mean([pt.extras["skipped"][q] for pt in points])
        worst = float(finite.max()) if finite.size else float("nan")
        ax.set_title(f"{q}: max {worst:.1e}, {skipped:.1%} skipped (kink)", fontsize=9)
        ax.set_xlabel("log10 relative error (left bar: exactly 0)")
        ax.set_ylabel("entries")
        ax.set_yscale("log")
        ax.set_ylim(0.5, ax.get_ylim()[1] * 60)  # head room for the legend
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, loc="upper left")
    swept = _swept(points)
    over = f" over {'; '.join(_setting(pt, swept) for pt in points)}" if swept else ""
    fig.suptitle(
        f"Backward pass against central finite differences (float64, step 1e-5){over}; "
        f"{sum(pt.n_samples for pt in points):,} instances",
        fontsize=10,
    )
    return save(fig, folder, "batchnorm_grad_errors", formats)


# --------------------------------------------------------------------------------------------------
# whiten
# --------------------------------------------------------------------------------------------------


def render_whiten(points: list[PointResult], folder: Path, formats: tuple[str, ...]) -> list[Path]:
    pt = max(points, key=lambda p: (p.params["B"] > p.params["M"], p.params["B"]))
    return [
        *_corr_figure(pt, folder, formats),
        *_rank_figure(pt, folder, formats),
        *_swap_figure(pt, folder, formats),
        *_time_figure(pt, folder, formats),
    ]


def _output_corr(Yt: np.ndarray) -> np.ndarray:
    c = bn.white_cov(Yt)
    d = np.sqrt(np.clip(np.diag(c), 1e-300, None))
    return c / d[:, None] / d[None, :]


def _corr_figure(pt, folder, formats):
    w = pt.extras["kept"]
    methods = w["methods"]
    C = pt.extras["C"]
    fig, axes = new_figure(ncols=3, width=4.3, height=4.0)
    norm = TwoSlopeNorm(vmin=-1.0, vcenter=0.0, vmax=1.0)
    panels = (
        (C, "population correlation C"),
        (_output_corr(methods["bn"].Ytilde[0]), "after BN (one batch): ≈ C, stays"),
        (_output_corr(methods["zca"].Ytilde[0]), "after ZCA (same batch): I"),
    )
    image = None
    for ax, (mat, title) in zip(axes[0], panels, strict=True):
        image = ax.imshow(mat, cmap="RdBu_r", norm=norm)
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
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
    return save(fig, folder, "batchnorm_whiten_corr", formats)


def _nanmean_rows(a: np.ndarray) -> np.ndarray:
    """Row means over the finite entries (NaN for a row without any), without warnings."""
    finite = np.isfinite(a)
    count = finite.sum(axis=1)
    total = np.where(finite, a, 0.0).sum(axis=1)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _rank_figure(pt, folder, formats):
    p = pt.params
    M, eps = p["M"], p["eps"]
    C = pt.extras["C"]
    L = np.linalg.cholesky(C)
    rng = _figure_rng(pt)
    Bs = np.unique(np.round(np.geomspace(2, 8 * M, 24)).astype(int))
    Bs = np.unique(np.concatenate([Bs, [M - 1, M, M + 1, M + 2]]))
    Bs = Bs[Bs >= 2]
    reps = 30
    rank = np.zeros((len(Bs), reps))
    cond = np.zeros((len(Bs), reps))
    dev = np.zeros((len(Bs), reps))
    dev_theory = np.zeros((len(Bs), reps))
    for i, B in enumerate(Bs):
        Y = rng.standard_normal((reps, B, M)) @ L.T
        z = bn.zca_whiten(Y, eps)
        rank[i] = batch_rank(z.Yc)
        cond[i] = bn.condition_number(z.Sigma)
        wc = bn.white_cov(z.Ytilde)
        ok = np.all(np.isfinite(wc), axis=(1, 2))  # eps = 0 and B <= M: NaN, not a number
        dev[i] = np.nan
        if ok.any():
            dev[i, ok] = np.linalg.norm(wc[ok] - np.eye(M), ord=2, axis=(1, 2))
        dev_theory[i] = bn.whitening_eps_deviation(z.Sigma, eps)["white_cov"]
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
    ax.axhline(np.linalg.cond(C), color="C2", lw=1.2, ls="--", label="population cond(C)")
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
    th = _nanmean_rows(dev_theory)
    ax.plot(Bs, th, color="C3", **THEORY_STYLE, label="ε/(λmin+ε) (mean over batches)")
    ax.set_yscale("log")
    ax.set_ylim(max(np.nanmin(np.where(dev > 0, dev, np.nan)) / 3, 1e-17), 3)
    ax.set_ylabel("deviation from I (spectral norm)")
    ax.set_title(f"whitening identity: exact only for B > M (eps = {eps:g})", fontsize=9)
    for ax in axes[0]:
        ax.axvline(M, color="k", lw=0.8, ls=":")
        ax.axvspan(Bs.min() * 0.9, M, color="0.9", zorder=0)
        ax.set_xscale("log")
        ax.set_xlabel(f"batch size B (shaded: B ≤ M = {M})")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    fig.suptitle(
        f"As B falls through M the batch covariance becomes singular ({reps} batches per B)"
    )
    return save(fig, folder, "batchnorm_whiten_rank", formats)


def _swap_figure(pt, folder, formats):
    methods = pt.extras["kept"]["methods"]
    fig, axes = new_figure(ncols=2, width=5.4, height=3.9)
    ax = axes[0, 0]
    for i, name in enumerate(("pca", "zca", "cholesky")):
        W = methods[name].W
        if len(W) < 2:
            continue
        change = bn.matrix_relative_change(W[:-1], W[1:])
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
    if not np.isfinite(methods["zca"].W).any():
        ax.text(
            0.5,
            0.5,
            "eps = 0 and B ≤ M: Σ is singular,\nno whitening matrix exists (NaN)",
            ha="center",
            transform=ax.transAxes,
        )
    ax.set_yscale("log")
    ax.set_xlabel("batch t")
    ax.set_ylabel(r"$\|W_t - W_{t-1}\|_F / \|W_t\|_F$")
    ax.set_title("whitening matrix from one batch to the next")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    ax = axes[0, 1]
    U = methods["pca"].eigvecs
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
    ax.set_xlabel("batch t")
    ax.set_ylabel(r"$|\cos|$ between axis k of batches t−1 and t")
    ax.set_title("PCA's output axes swap and rotate (ZCA has no axes to swap)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    p = pt.params
    corr = f"rho = {p['rho']:g}" if p["corr"] == "equi" else "random correlation"
    fig.suptitle(
        f"Stochastic axis swapping: consecutive batches (B = {p['B']}, M = {p['M']}, {corr})",
        fontsize=10,
    )
    return save(fig, folder, "batchnorm_whiten_swap", formats)


def _bn_train(Y: np.ndarray, eps: float):
    """Standard BN as a network runs it: per-feature mean and variance only, O(BM)."""
    return bn.bn_forward(Y, 1.0, 0.0, eps)


_TIMED = {
    "bn": _bn_train,
    "zca": bn.zca_whiten,
    "pca": bn.pca_whiten,
    "cholesky": bn.cholesky_whiten,
}


_BLAS_PREFIXES = ("openblas", "scipy_openblas")
_BLAS_SUFFIXES = ("", "64_")


@contextlib.contextmanager
def single_blas_thread():
    """Run the body with every loaded OpenBLAS on one thread, then restore their settings.

    A multi-threaded BLAS on a busy machine turns every matrix product above its threading
    threshold into a wait for a time slice (tens of ms), which would hide the O(BM) vs
    O(BM^2 + M^3) scaling the timing figure is about. This is what ``threadpoolctl`` does
    (not a dependency here). Yields whether a limit is in force; never raises.
    """
    controls = []
    try:
        with open("/proc/self/maps") as maps:
            paths = sorted({w for w in maps.read().split() if "openblas" in w and ".so" in w})
        for path in paths:
            lib = ctypes.CDLL(path)
            for prefix in _BLAS_PREFIXES:
                for suffix in _BLAS_SUFFIXES:
                    setter = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
                    getter = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
                    if setter is not None and getter is not None:
                        controls.append((setter, int(getter())))
    except OSError:
        controls = []
    for setter, _ in controls:
        setter(1)
    try:
        yield bool(controls)
    finally:
        for setter, before in controls:
            setter(before)


def wall_times(
    eps: float,
    rng: np.random.Generator,
    B: int = 512,
    Ms=None,
    rounds: int = 7,
    budget: float = 2.0,
) -> dict:
    """Wall time of BN and of each whitening on one batch, per M: the best of the rounds.

    Rounds are interleaved (every method and M once per round), so a burst of load from other
    processes spoils one round of everything rather than every run of one M; the minimum keeps
    the undisturbed time. At least 2 rounds, then more while under ``budget`` seconds.
    """
    Ms = np.array(Ms if Ms is not None else [4, 8, 16, 32, 64, 128, 256])
    eps = max(eps, 1e-5)
    batches = [rng.standard_normal((B, M)) for M in Ms]
    best = {name: np.full(len(Ms), np.inf) for name in _TIMED}
    start = time.perf_counter()
    done = 0
    with single_blas_thread() as one_thread:
        while done < 2 or (done < rounds and time.perf_counter() - start < budget):
            done += 1
            for i, Y in enumerate(batches):
                for name, fn in _TIMED.items():
                    t0 = time.perf_counter()
                    fn(Y, eps)
                    best[name][i] = min(best[name][i], time.perf_counter() - t0)
    return {"M": Ms, "B": B, "rounds": done, "one_thread": one_thread, **best}


def _time_figure(pt, folder, formats):
    times = wall_times(pt.params["eps"], _figure_rng(pt))
    Ms = times["M"]
    fig, axes = new_figure(width=6.0, height=4.4)
    ax = axes[0, 0]
    fit = Ms >= 32
    for i, name in enumerate(("bn", "zca", "pca", "cholesky")):
        t = times[name]
        slope, icpt = np.polyfit(np.log(Ms[fit]), np.log(t[fit]), 1)
        label = {"bn": "BN", "zca": "ZCA", "pca": "PCA", "cholesky": "Cholesky"}[name]
        ax.loglog(Ms, t, "o", color=f"C{i}", ms=5, label=f"{label}: fitted slope {slope:.2f}")
        ax.loglog(Ms[fit], np.exp(icpt) * Ms[fit] ** slope, "-", color=f"C{i}", lw=1.2)
    anchor = float(times["bn"][fit][0])
    for k, style in ((1, ":"), (2, "--"), (3, "-.")):
        guide = anchor * (Ms[fit] / Ms[fit][0]) ** k
        ax.loglog(
            Ms[fit], guide, style, color="0.6", lw=0.9, label=f"guide: slope {k}" if k else None
        )
    ax.set_xlabel("features M")
    ax.set_ylabel(f"wall time per batch (s, best of {times['rounds']} rounds)")
    threads = "one BLAS thread" if times["one_thread"] else "BLAS threads as configured"
    ax.set_title(
        f"BN is O(BM); whitening pays O(BM²) for Σ and O(M³) for its eigh\n"
        f"(B = {times['B']}, {threads}; slopes fitted for M ≥ 32)",
        fontsize=9,
    )
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return save(fig, folder, "batchnorm_whiten_time", formats)
