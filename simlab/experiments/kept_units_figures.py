"""Figures of ``simlab kept-units``: pmfs against their laws, the Poisson limit, the joint table.

- ``kept_units_binomial_pmf`` / ``_moments``: the law of K against Binomial(M, q); E[K]/M and
  Var(K)/M against the drop probability.
- ``kept_units_poisson_limit_tv``: TV against M on log-log axes (exact, empirical with its noise
  floor, Le Cam's bound and the Barbour-Hall band); ``kept_units_poisson_limit_pmf``: the law of K
  at a few M against Binomial(M, lam/M) and Poisson(lam).
- ``kept_units_thinning_pmf`` / ``_joint``: the law of K against Poisson(lam q); the table of
  (K, M - K) against the product of Poisson(lam q) and Poisson(lam p).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullLocator

from simlab.experiments.base import PointResult
from simlab.plotting import SIM_STYLE, THEORY_STYLE, new_figure, save
from simlab.theory.counts import (
    barbour_hall_bounds,
    le_cam_bound,
    poisson_pmf,
    tv_binomial_poisson,
)
from simlab.verdicts.gof import chi_square_gof

_MAX_PANELS = 4
_EXPECT_STYLE = {
    "fail": ("C3", "resolved: not yet Poisson (check fails)"),
    "either": ("C1", "at the edge of resolution"),
    "pass": ("C2", "below resolution (check passes)"),
}


def render(
    name: str, points: list[PointResult], folder: Path, formats: tuple[str, ...]
) -> list[Path]:
    """Write the figures of experiment ``name``; return the paths."""
    if name.endswith("binomial"):
        return [
            *_pmf_figure(points, folder, formats, "kept_units_binomial_pmf", _binomial_laws),
            *_binomial_moments_figure(points, folder, formats),
        ]
    if name.endswith("poisson-limit"):
        return [
            *_tv_figure(points, folder, formats),
            *_pmf_figure(points, folder, formats, "kept_units_poisson_limit_pmf", _limit_laws),
        ]
    return [
        *_pmf_figure(points, folder, formats, "kept_units_thinning_pmf", _thinning_laws),
        *_joint_figure(points, folder, formats),
    ]


# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------
def _value(estimate) -> tuple[float, float]:
    """Value and standard error of a scalar estimate (an exact one has no error)."""
    if hasattr(estimate, "se"):
        return float(estimate.value), float(estimate.se)
    return float(estimate.reference[0]), 0.0


def _setting(pt: PointResult) -> str:
    return ", ".join(
        f"{k} = {v:g}" if isinstance(v, float) else f"{k} = {v}" for k, v in pt.params.items()
    )


def _pick(points: list[PointResult], most: int = _MAX_PANELS) -> list[PointResult]:
    """Up to ``most`` points spread evenly over the sweep (first and last included)."""
    if len(points) <= most:
        return list(points)
    idx = np.unique(np.round(np.linspace(0, len(points) - 1, most)).astype(int))
    return [points[i] for i in idx]


def _window(probs: np.ndarray, counts: np.ndarray, n: int) -> tuple[int, int]:
    """The range of k worth showing: where any law expects or the sample holds a count."""
    last = probs.size - 1
    seen = np.flatnonzero((n * probs >= 0.5) | (counts > 0))
    lo, hi = (int(seen[0]), int(seen[-1])) if seen.size else (0, last)
    while hi - lo < 8 and (lo > 0 or hi < last):  # a point mass still gets some context
        lo, hi = max(0, lo - 1), min(last, hi + 1)
    return lo, hi


def _binomial_laws(pt: PointResult) -> list[tuple[str, str, np.ndarray]]:
    label = f"Binomial(M = {pt.params['M']}, q = {pt.extras['q']:.3g})"
    return [(label, "Binomial(M, q)", pt.extras["law"])]


def _limit_laws(pt: PointResult) -> list[tuple[str, str, np.ndarray]]:
    lam, M = pt.params["lam"], pt.params["M"]
    return [
        (f"Binomial(M, lam/M), lam/M = {lam / M:.3g}", "Binomial(M, lam/M)", pt.extras["law"]),
        (f"Poisson(lam = {lam:g})", "Poisson(lam)", pt.extras["poisson"]),
    ]


def _thinning_laws(pt: PointResult) -> list[tuple[str, str, np.ndarray]]:
    lam = pt.params["lam"]
    k = np.arange(pt.extras["law"].size)
    return [
        (f"Poisson(lam q = {lam * pt.extras['q']:.3g})", "Poisson(lam q)", pt.extras["law"]),
        (f"Poisson(lam = {lam:g}): thinning forgotten", "Poisson(lam)", poisson_pmf(k, lam)),
    ]


# --------------------------------------------------------------------------------------------------
# pmf against analytic laws, with standardized residuals
# --------------------------------------------------------------------------------------------------
def _pmf_figure(points, folder, formats, stem, laws_of):
    shown = _pick(points)
    fig, axes = new_figure(
        ncols=len(shown), nrows=2, width=max(4.6, 6.0 - 0.6 * len(shown)), height=3.4
    )
    colors = ("C3", "0.35")
    markers = ("o", "s")
    for col, pt in enumerate(shown):
        est = pt.estimates["pmf"]
        counts = est.counts.astype(float)
        n = est.n
        freq = counts / n
        se = np.sqrt(freq * (1.0 - freq) / n)
        laws = laws_of(pt)
        lo, hi = _window(np.max([law for _, _, law in laws], axis=0), est.counts, n)
        k = np.arange(lo, hi + 1)
        ax = axes[0, col]
        ax.bar(k, freq[k], width=0.8, color="C0", alpha=0.45, label="simulated")
        ax.errorbar(
            k, freq[k], yerr=2 * se[k], fmt="none", ecolor="C0", capsize=2, lw=1, label="±2 SE"
        )
        for i, (label, _, law) in enumerate(laws):
            ax.plot(
                k,
                law[k],
                marker=markers[i],
                ms=3.5 if i == 0 else 3,
                ls="-" if i == 0 else "--",
                color=colors[i],
                mfc=colors[i] if i == 0 else "none",
                **{**THEORY_STYLE, "lw": 1.0},
                label=label,
            )
        ax.set_title(_setting(pt), fontsize=9)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("k kept units")
        ax.set_ylabel("P(K = k)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)

        ax = axes[1, col]
        ax.axhspan(-2, 2, color="0.85", zorder=0, label="±2: sampling noise")
        largest = 2.0
        for i, (_, short, law) in enumerate(laws):
            expected = n * law[k]
            ok = (expected >= 5) & (law[k] < 1.0)  # a certain outcome has no spread
            z = (counts[k][ok] - expected[ok]) / np.sqrt(expected[ok] * (1.0 - law[k][ok]))
            largest = max(largest, float(np.abs(z).max(initial=0.0)))
            ax.plot(
                k[ok],
                z,
                marker=markers[i],
                ms=3.5,
                ls="none",
                color=colors[i],
                mfc=colors[i] if i == 0 else "none",
                label=f"vs {short}",
            )
        ax.axhline(0.0, color="k", lw=0.8)
        _residual_axis(ax, largest)
        ax.set_xlim(axes[0, col].get_xlim())
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("k kept units")
        ax.set_ylabel("(observed − expected) / SD")
        ax.set_title("standardized residuals (bins expecting ≥ 5)", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    subset = "" if len(shown) == len(points) else f", {len(shown)} of {len(points)} points"
    what = {
        "kept_units_binomial_pmf": "Kept units out of M against Binomial(M, q)",
        "kept_units_poisson_limit_pmf": "Kept units at q = lam/M: Binomial(M, lam/M) and its "
        "Poisson(lam) limit",
        "kept_units_thinning_pmf": "Kept units of a Poisson(lam) layer: Poisson(lam q)",
    }[stem]
    fig.suptitle(f"{what}\n({shown[0].n_samples:,} trials per point{subset})", fontsize=11)
    return save(fig, folder, stem, formats)


def _residual_axis(ax, largest: float) -> None:
    """Linear within ±4, logarithmic beyond (so gross misfits and noise share one axis)."""
    top = max(4.0, 1.4 * largest)
    ax.set_yscale("symlog", linthresh=4.0, linscale=1.5)
    ax.set_ylim(-top, top)
    steps = (2, 4) if top < 10 else (2, 10, 100, 1e3, 1e4)
    ticks = sorted({0.0, *(sign * t for t in steps for sign in (-1, 1) if t <= top)})
    ax.set_yticks(ticks)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_locator(NullLocator())


# --------------------------------------------------------------------------------------------------
# binomial: moments against p
# --------------------------------------------------------------------------------------------------
def _binomial_moments_figure(points, folder, formats):
    fig, axes = new_figure(ncols=2, nrows=2, width=5.0, height=3.3)
    grid = np.linspace(0.0, 1.0, 201)
    panels = (
        ("mean", r"$E[K]/M$", 1.0 - grid, r"$q = 1 - p$", "mean of the kept count"),
        ("var", r"$Var(K)/M$", grid * (1.0 - grid), r"$p\,q$", "variance of the kept count"),
    )
    Ms = sorted({pt.params["M"] for pt in points})
    for col, (name, ylabel, curve, curve_label, title) in enumerate(panels):
        top, bottom = axes[0, col], axes[1, col]
        top.plot(grid, curve, color="C3", **THEORY_STYLE, label=f"theory {curve_label}")
        for i, M in enumerate(Ms):
            pts = sorted((pt for pt in points if pt.params["M"] == M), key=lambda p: p.params["p"])
            ps = np.array([pt.params["p"] for pt in pts])
            vals = np.array([_value(pt.estimates[name]) for pt in pts])
            pred = np.array([float(pt.predictions[name].value) for pt in pts])
            color = f"C{i % 3}"
            label = f"simulated ±2 SE, M = {M}"
            top.errorbar(ps, vals[:, 0] / M, yerr=2 * vals[:, 1] / M, color=color, mfc="white",
                         **SIM_STYLE, label=label)  # fmt: skip
            scale = np.where(pred != 0, np.abs(pred), 1.0)
            offset = 0.004 * (i - (len(Ms) - 1) / 2)  # side by side when several M share a p
            bottom.errorbar(ps + offset, (vals[:, 0] - pred) / scale, yerr=2 * vals[:, 1] / scale,
                            color=color, **SIM_STYLE, label=label)  # fmt: skip
        top.set_title(title)
        top.set_ylabel(ylabel)
        bottom.axhline(0.0, color="C3", lw=1.2)
        bottom.set_title("relative deviation from theory", fontsize=10)
        bottom.set_ylabel("(simulated − theory) / theory")
        for ax in (top, bottom):
            ax.set_xlabel("drop probability p")
            ax.set_xlim(-0.02, 1.0)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
    fig.suptitle(
        f"K ~ Binomial(M, 1 − p): E K = M q, Var K = M q p "
        f"({points[0].n_samples:,} trials per point)"
    )
    return save(fig, folder, "kept_units_binomial_moments", formats)


# --------------------------------------------------------------------------------------------------
# poisson-limit: TV against M
# --------------------------------------------------------------------------------------------------
def _tv_figure(points, folder, formats):
    lams = sorted({pt.params["lam"] for pt in points})
    fig, axes = new_figure(ncols=len(lams), width=8.0, height=6.4)
    for ax, lam in zip(axes[0], lams, strict=True):
        pts = sorted((pt for pt in points if pt.params["lam"] == lam), key=lambda p: p.params["M"])
        Ms = np.array([pt.params["M"] for pt in pts], dtype=float)
        lo_M = max(math.ceil(lam), int(Ms.min() / 1.5))
        hi_M = int(Ms.max() * 1.5)
        grid = np.unique(np.geomspace(lo_M, hi_M, 80).astype(int))
        exact = np.array([tv_binomial_poisson(int(m), lam) for m in grid])
        bounds = np.array([barbour_hall_bounds(int(m), lam) for m in grid])
        ax.fill_between(
            grid,
            bounds[:, 0],
            bounds[:, 1],
            color="C0",
            alpha=0.15,
            label=r"Barbour–Hall: $\frac{1}{32}\min(1,\frac{1}{\lambda})\frac{\lambda^2}{M}"
            r" \leq TV \leq (1-e^{-\lambda})\frac{\lambda}{M}$",
        )
        ax.plot(
            grid,
            [le_cam_bound(int(m), lam) for m in grid],
            color="C0",
            ls="--",
            lw=1.2,
            label=r"Le Cam bound $\lambda^2/M$",
        )
        ax.plot(grid, exact, color="k", **THEORY_STYLE, label=r"exact $TV_M$ (theory)")
        floor = np.array([pt.extras["floor_poisson"] for pt in pts])
        # The floor barely depends on M: extend it flat to the edges of the axes.
        floor_M = np.concatenate([[grid[0]], Ms, [grid[-1]]])
        floor = np.concatenate([[floor[0]], floor, [floor[-1]]])
        ax.plot(
            floor_M,
            floor,
            color="0.4",
            ls=":",
            lw=1.8,
            label="noise floor: E[empirical TV] if the law were Poisson",
        )
        ax.fill_between(floor_M, 1e-300, floor, color="0.6", alpha=0.15, lw=0)
        emp = np.array([pt.extras["tv_empirical"] for pt in pts])
        se = np.array([pt.extras["tv_se"] for pt in pts])
        lower = np.minimum(se, emp * 0.9)  # keep the bars on a log axis
        for expect, (color, label) in _EXPECT_STYLE.items():
            sel = np.array([pt.extras["poisson_expect"] == expect for pt in pts])
            if not sel.any():
                continue
            ax.errorbar(
                Ms[sel],
                emp[sel],
                yerr=[lower[sel], se[sel]],
                color=color,
                **{**SIM_STYLE, "ms": 6},
                label=f"empirical TV to Poisson ±1 RMS error — {label}",
            )
        ax.set_xscale("log")
        ax.set_yscale("log")
        top = max(float(exact.max()), float(emp.max()), float(le_cam_bound(lo_M, lam)))
        bottom = min(float(exact.min()), float(bounds[:, 0].min()))
        ax.set_ylim(bottom / 2, min(1.5, top * 2))
        ax.set_xlim(grid[0] / 1.1, grid[-1] * 1.1)
        ax.set_xlabel("number of units M (q = lam/M)")
        ax.set_ylabel("total variation distance to Poisson(lam)")
        n = pts[0].n_samples
        ax.set_title(f"lam = {lam:g}, {n:,} trials per M", fontsize=10)
        ax.grid(alpha=0.3, which="major")
        ax.grid(alpha=0.08, which="minor")
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncols=2)
    fig.suptitle(
        "Binomial(M, lam/M) → Poisson(lam): the distance falls like 1/M;\n"
        "a sample resolves it only above its noise floor (grey)",
        fontsize=11,
    )
    return save(fig, folder, "kept_units_poisson_limit_tv", formats)


# --------------------------------------------------------------------------------------------------
# thinning: the joint table of (K, M - K)
# --------------------------------------------------------------------------------------------------
def _joint_figure(points, folder, formats):
    # A point with both kept and dropped units (p near 1/2) shows the independence best.
    pt = min(points, key=lambda r: abs(r.params["p"] - 0.5))
    lam, q = pt.params["lam"], pt.extras["q"]
    p = 1.0 - q
    table = pt.extras["joint"].astype(float)
    side = table.shape[0]  # 0..jmax and one last row/column for "more"
    n = float(table.sum())
    j = np.arange(side - 1)

    def with_tail(probs: np.ndarray) -> np.ndarray:
        return np.append(probs, max(0.0, 1.0 - float(probs.sum())))

    product = np.outer(with_tail(poisson_pmf(j, lam * q)), with_tail(poisson_pmf(j, lam * p)))
    expected = n * product
    gof = chi_square_gof(table.ravel(), product.ravel())
    keep_k = np.flatnonzero((expected.sum(axis=1) >= 0.5) | (table.sum(axis=1) > 0))
    keep_d = np.flatnonzero((expected.sum(axis=0) >= 0.5) | (table.sum(axis=0) > 0))
    rk, rd = max(int(keep_k.max()) + 1, 6), max(int(keep_d.max()) + 1, 6)
    obs, exp_ = table[:rk, :rd] / n, product[:rk, :rd]
    positive = np.concatenate([obs[obs > 0], exp_[exp_ > 0]])
    norm = LogNorm(vmin=max(positive.min(), 0.5 / n), vmax=positive.max())
    fig, axes = new_figure(ncols=3, width=4.6, height=4.3)
    extent = (-0.5, rd - 0.5, -0.5, rk - 0.5)
    for ax, data, title in (
        (
            axes[0, 0],
            np.ma.masked_equal(obs, 0.0),
            "simulated frequency of (K, M − K)\n(white: none observed)",
        ),
        (axes[0, 1], exp_, f"product law\nPoisson({lam * q:.3g}) × Poisson({lam * p:.3g})"),
    ):
        im = ax.imshow(
            data, origin="lower", norm=norm, cmap="viridis", extent=extent, aspect="auto"
        )
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("M − K dropped units")
        ax.set_ylabel("K kept units")
        _integer_ticks(ax)
    fig.colorbar(im, ax=axes[0, :2], shrink=0.85, label="probability")
    with np.errstate(divide="ignore", invalid="ignore"):
        resid = (table[:rk, :rd] - expected[:rk, :rd]) / np.sqrt(expected[:rk, :rd])
    resid = np.ma.masked_where(expected[:rk, :rd] < 5, resid)
    ax = axes[0, 2]
    ax.set_facecolor("0.9")
    im = ax.imshow(
        resid, origin="lower", cmap="RdBu_r", vmin=-4, vmax=4, extent=extent, aspect="auto"
    )
    fig.colorbar(im, ax=ax, shrink=0.85, label="(observed − expected) / √expected")
    ax.set_title("standardized residuals (cells expecting ≥ 5;\ngrey: fewer)", fontsize=10)
    ax.set_xlabel("M − K dropped units")
    ax.set_ylabel("K kept units")
    _integer_ticks(ax)
    fig.suptitle(
        f"Thinning at lam = {lam:g}, p = {p:g}: K and M − K are independent Poissons "
        f"({int(n):,} trials)\njoint table against the product law: χ² = {gof.statistic:.1f} "
        f"on {gof.dof} dof, p = {gof.p_value:.2g} (descriptive, not one of the run's verdicts)",
        fontsize=10,
    )
    return save(fig, folder, "kept_units_thinning_joint", formats)


def _integer_ticks(ax) -> None:
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))


__all__ = ["render"]
