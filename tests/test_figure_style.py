"""How figures are typeset: log labels as plain text, titles at a fixed height lifted over an
offset text, the render style shared by layout, saving and lint."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest

from simlab.figure_style import plain_power_label
from simlab.plotting import layout_figure, new_figure


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.mark.parametrize(
    ("mathtext", "plain"),
    [
        (r"$\mathdefault{10^{-3}}$", "10⁻³"),
        (r"$\mathdefault{10^{12}}$", "10¹²"),
        (r"$\mathdefault{3\times10^{-1}}$", "3×10⁻¹"),
        (r"$\mathdefault{-10^{2}}$", "\u221210²"),
        (r"$\mathdefault{0}$", "0"),
        (r"$x^{2}$", r"$x^{2}$"),  # not a log label: untouched
        (r"$\mathdefault{10^{\alpha}}$", r"$\mathdefault{10^{\alpha}}$"),
        ("", ""),
    ],
)
def test_log_labels_are_written_as_plain_text(mathtext, plain):
    assert plain_power_label(mathtext) == plain


def test_a_laid_out_log_axis_has_plain_labels_and_keeps_its_settings():
    fig, axes = new_figure()
    ax = axes[0, 0]
    ax.plot([1e-4, 1e2], [1e-3, 1e5])
    ax.set_xscale("log")
    ax.set_yscale("symlog", linthresh=1.0)
    thresholds = ax.xaxis.get_minor_formatter().minor_thresholds
    layout_figure(fig)
    fig.canvas.draw()
    labels = [t.get_text() for t in ax.get_xticklabels() + ax.get_yticklabels() if t.get_text()]
    assert labels and not any("$" in label for label in labels)
    assert "10⁻²" in labels and "10⁴" in labels
    assert ax.xaxis.get_minor_formatter().minor_thresholds == thresholds


def test_a_title_is_lifted_over_the_offset_text_it_would_cover():
    fig, axes = new_figure(width=3.0)
    ax = axes[0, 0]
    ax.plot([0, 1], [1e-9, 3e-9])  # the y axis shows its scale as an offset text, "1e-9"
    ax.set_title("a title long enough to reach over the top left corner of this panel")
    layout_figure(fig)
    fig.canvas.draw()  # as savefig does: the offset text takes its place
    renderer = fig.canvas.get_renderer()
    offset = ax.yaxis.offsetText
    assert offset.get_text()
    title, scale = ax.title.get_window_extent(renderer), offset.get_window_extent(renderer)
    assert title.x0 < scale.x1 and title.y0 >= scale.y1 - 0.5  # above it, not beside it
