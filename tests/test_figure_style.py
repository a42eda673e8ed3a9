"""How figures are typeset: log labels as plain text, titles at a fixed height lifted over an
offset text, the render style shared by layout, saving and lint."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest

from simlab.figure_layout import layout_figure, new_figure
from simlab.figure_style import decade_label, plain_power_label


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


@pytest.mark.parametrize("exponent", [-11, -3, 0, 2, 12])
def test_a_decade_is_written_as_log_axes_write_it(exponent):
    assert decade_label(exponent) == plain_power_label(f"$\\mathdefault{{10^{{{exponent}}}}}$")


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


def _tick_test_figure(shared: bool):
    """Panels whose locators reach past the view: log (minor and major), symlog, linear, a
    shared pair, an inverted axis."""
    import numpy as np

    fig, axes = plt.subplots(1, 4, figsize=(9, 2.5), sharey=shared, dpi=80)
    x = np.linspace(0.13, 0.87, 20)
    axes[0].loglog(np.geomspace(3e-3, 7e-1, 20), 2e3 * x**3 + 1e-2, "o-")
    axes[1].plot(x, np.sinh(8 * x) - 40, "s-")
    axes[1].set_yscale("symlog", linthresh=1.0)
    axes[2].plot(x * 7.3 - 1.1, x, "^-")
    axes[2].minorticks_on()
    axes[3].plot(x, -x)
    axes[3].invert_xaxis()
    axes[3].set_xlim(0.91, 0.07)
    return fig


def _png(fig) -> bytes:
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


@pytest.mark.parametrize("shared", [False, True])
def test_ticks_outside_the_view_are_not_made_and_the_figure_is_the_same(shared):
    from simlab.figure_style import ticks_in_view_only

    plain, trimmed = _tick_test_figure(shared), _tick_test_figure(shared)
    ticks_in_view_only(trimmed)
    assert _png(trimmed) == _png(plain)

    def extra_minor_ticks(fig) -> int:
        """Minor tick objects made beyond those drawn (and the first one matplotlib makes
        whatever the locator says), over the figure's log axes."""
        extra = 0
        for ax in fig.axes:
            for axis in (ax.xaxis, ax.yaxis):
                if axis.get_scale() == "log":
                    drawn = [t for t in axis._update_ticks() if t in axis.minorTicks]
                    extra += len(axis.minorTicks) - max(len(drawn), 1)
        return extra

    assert extra_minor_ticks(trimmed) == 0
    assert extra_minor_ticks(plain) > 0  # the figure does have minor ticks past its view
    # a default locator still follows a change of scale; a laid-out figure is not wrapped twice
    ax = trimmed.axes[0]
    assert ax.xaxis.isDefault_minloc
    ticks_in_view_only(trimmed)
    wrapper = ax.xaxis.get_minor_locator()
    assert not isinstance(wrapper.inner, type(wrapper))
    ax.set_xscale("linear")
    assert type(ax.xaxis.get_minor_locator()).__name__ == "NullLocator"


def _labelled_figure(kind: str):
    """Figures whose tick labels depend on the list of locations or on their positions: left
    as they are (a formatter that labels by position, one that takes its precision from every
    location), and a log axis whose locator's settings change after the layout."""
    from matplotlib.ticker import FixedFormatter, FixedLocator, LogLocator, MultipleLocator

    fig, ax = plt.subplots(figsize=(3, 2), dpi=80)
    if kind == "by position":
        ax.plot([0.5, 3.5], [0, 1])
        ax.xaxis.set_major_locator(FixedLocator([0, 1, 2, 3]))
        ax.xaxis.set_major_formatter(FixedFormatter(list("abcd")))
        ax.xaxis.set_minor_locator(FixedLocator([0.5, 1.5, 2.5, 3.5]))
        ax.xaxis.set_minor_formatter(FixedFormatter(list("wxyz")))
        ax.set_xlim(0.7, 3.6)
    elif kind == "precision":
        ax.plot([0.3, 0.6], [0, 1])
        ax.xaxis.set_major_locator(MultipleLocator(0.25))
        ax.xaxis.set_minor_locator(MultipleLocator(0.05))
        ax.set_xlim(0.3, 0.6)
    else:
        ax.loglog([2e-3, 7e2], [1, 2])
        ax.yaxis.set_minor_locator(LogLocator(subs=(2.0, 5.0)))
    return fig


@pytest.mark.parametrize("kind", ["by position", "precision", "set_params"])
def test_labels_that_depend_on_the_locations_are_kept(kind):
    from simlab.figure_style import ticks_in_view_only

    plain, trimmed = _labelled_figure(kind), _labelled_figure(kind)
    ticks_in_view_only(trimmed)
    if kind == "set_params":  # a setting changed after the layout reaches the locator
        for fig in (plain, trimmed):
            fig.axes[0].yaxis.get_minor_locator().set_params(subs=(3.0,))
    assert _png(trimmed) == _png(plain)


def _busy_axes_figure():
    """Every way matplotlib asks an axis for its ticks more than once: log and linear axes,
    labels aligned across panels (siblings), a twin axis, an inset, an offset text."""
    import numpy as np

    fig, axes = plt.subplots(1, 3, figsize=(8, 2.5), dpi=80)
    x = np.geomspace(2e-3, 5e1, 30)
    axes[0].loglog(x, 1 / x, "o-")
    axes[0].set_ylabel("decays")
    axes[1].plot(x, 1e-9 * np.sqrt(x))
    axes[1].set_ylabel("grows")
    axes[1].twinx().plot(x, -x, "r")
    axes[2].plot([0, 1], [1, 0])
    axes[2].inset_axes([0.55, 0.55, 0.4, 0.4]).semilogy([1, 2, 3], [1, 10, 1e3])
    fig.align_ylabels(axes)
    return fig


def test_ticks_computed_once_draws_the_same_figure(monkeypatch):
    import contextlib

    import simlab.figure_layout
    from simlab.figure_style import ticks_computed_once

    plain, memoized = _busy_axes_figure(), _busy_axes_figure()
    with monkeypatch.context() as patch:  # the plain figure laid out without the memo
        patch.setattr(simlab.figure_layout, "ticks_computed_once", contextlib.nullcontext)
        layout_figure(plain)
    layout_figure(memoized)  # which lays out with the memo, as save does
    with ticks_computed_once(memoized):
        drawn = _png(memoized)
    assert drawn == _png(plain)
    for ax in memoized.axes:  # matplotlib's own methods again after the context
        assert "_update_ticks" not in vars(ax.xaxis)
        assert "_get_ticklabel_bboxes" not in vars(ax.yaxis)


def test_ticks_computed_once_computes_each_axis_once_per_draw(monkeypatch):
    import matplotlib.axis

    from simlab.figure_style import ticks_computed_once

    calls = []
    update = matplotlib.axis.Axis._update_ticks

    def counted(self):
        calls.append(self)
        return update(self)

    monkeypatch.setattr(matplotlib.axis.Axis, "_update_ticks", counted)
    fig = _busy_axes_figure()
    _png(fig)  # the first draw places everything once
    calls.clear()
    _png(fig)
    plain_calls = len(calls)
    calls.clear()
    with ticks_computed_once(fig):
        _png(fig)
    axes = {id(axis) for axis in calls}
    assert len(calls) == len(axes)  # once per axis
    assert plain_calls > len(calls)  # where matplotlib asked more often


def test_ticks_computed_once_sees_a_new_locator_at_a_recycled_address():
    from simlab.figure_style import ticks_computed_once

    for _ in range(20):  # a freed locator's address is often the next-but-one's
        changed, reference = _busy_axes_figure(), _busy_axes_figure()
        reference.axes[2].set_xticks([0.3, 0.7])
        with ticks_computed_once(changed):
            _png(changed)  # memoized with the default locator
            changed.axes[2].set_xticks([0.1, 0.2])  # the default locator is freed
            changed.axes[2].set_xticks([0.3, 0.7])  # and its address free for this one
            drawn = _png(changed)
        assert drawn == _png(reference)
        plt.close("all")


def test_ticks_computed_once_sees_a_change_of_view_and_of_scale():
    from simlab.figure_style import ticks_computed_once

    changed, reference = _busy_axes_figure(), _busy_axes_figure()
    for ax in reference.axes[:1]:
        ax.set_xlim(1e-1, 1e1)
        ax.set_yscale("linear")
    with ticks_computed_once(changed):
        _png(changed)
        changed.axes[0].set_xlim(1e-1, 1e1)
        changed.axes[0].set_yscale("linear")
        drawn = _png(changed)
    assert drawn == _png(reference)
