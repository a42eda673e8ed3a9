"""Shared figure habits: the Agg back end, one style, saving in every requested format."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display

import matplotlib.pyplot as plt  # noqa: E402

SIM_STYLE = dict(fmt="o", ms=4, capsize=3, lw=1.2)  # simulated points with error bars
THEORY_STYLE = dict(lw=1.6, alpha=0.85)  # analytic curves


def new_figure(ncols: int = 1, nrows: int = 1, width: float = 5.2, height: float = 3.8):
    """A figure with ``nrows x ncols`` axes, sized per panel."""
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False, layout="constrained"
    )
    return fig, axes


def save(fig, folder: Path, stem: str, formats: tuple[str, ...]) -> list[Path]:
    """Save ``fig`` as ``folder/stem.<fmt>`` for each format and close it."""
    paths = []
    for fmt in formats:
        path = folder / f"{stem}.{fmt}"
        fig.savefig(path, dpi=130 if fmt == "png" else None)
        paths.append(path)
    plt.close(fig)
    return paths
