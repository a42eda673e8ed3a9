"""A figure's layout: margins fitted to what each panel's labels, legends and colorbars need."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest

from simlab.figure_layout import layout_figure, new_figure
from simlab.plotting import side_colorbar


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_a_side_colorbar_gets_room_between_its_panel_and_the_next():
    fig, axes = new_figure(ncols=2, width=3.0)
    image = axes[0, 0].imshow(np.arange(16.0).reshape(4, 4))
    bar = side_colorbar(fig, image, axes[0, 0], label="a long colorbar label")
    layout_figure(fig)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    box = bar.ax.get_tightbbox(renderer)  # the bar, its ticks and its label
    assert box.x1 < axes[0, 1].get_tightbbox(renderer).x0
    assert box.x0 > axes[0, 0].bbox.x1
    assert 0 <= box.y0 and box.y1 <= fig.bbox.height
