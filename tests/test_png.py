"""simlab's PNG writer: what it writes decodes to the image given, and a figure's PNG is the one
matplotlib would write, pixel for pixel, with the same metadata."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
from PIL import Image

from simlab.figure_layout import PNG_DPI, figure_png, layout_figure, new_figure
from simlab.png import encode_png


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (5, 1), (37, 23)])
def test_an_image_decodes_to_itself_with_its_dpi_and_text(shape):
    rng = np.random.default_rng(sum(shape))
    rgba = rng.integers(0, 256, size=(*shape, 4), dtype=np.uint8)
    rgba[0, 0] = (0, 255, 1, 254)  # rows that differ by wrapping amounts: the filter is mod 256
    data = encode_png(rgba, 130, {"Software": "simlab test", "Title": "ü"})
    image = Image.open(io.BytesIO(data))
    image.load()  # checks every chunk's CRC and the data's length
    assert image.mode == "RGBA" and image.size == (shape[1], shape[0])
    np.testing.assert_array_equal(np.asarray(image), rgba)
    assert image.info["Software"] == "simlab test" and image.info["Title"] == "ü"
    assert image.info["dpi"] == pytest.approx((130, 130), abs=0.01)


@pytest.mark.parametrize(
    "bad", [np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4, 4)), np.zeros((0, 4, 4), np.uint8)]
)
def test_what_is_not_an_rgba_image_is_refused(bad):
    with pytest.raises(ValueError, match="RGBA|pixel"):
        encode_png(bad, 100)


@pytest.mark.parametrize(
    ("dpi", "text", "match"),
    [
        (0, {}, "dpi"),
        (float("nan"), {}, "dpi"),
        (100, {"": "x"}, "keyword"),
        (100, {"k" * 80: "x"}, "keyword"),
        (100, {"a\0b": "x"}, "keyword"),
        (100, {"Title": "日本"}, "Latin-1"),
    ],
)
def test_what_a_png_cannot_say_is_refused(dpi, text, match):
    with pytest.raises(ValueError, match=match):
        encode_png(np.zeros((2, 2, 4), np.uint8), dpi, text)


def test_a_large_image_is_split_into_several_data_chunks(monkeypatch):
    import simlab.png

    monkeypatch.setattr(simlab.png, "_IDAT_BYTES", 64)  # a tiny chunk: several of them
    rgba = np.random.default_rng(1).integers(0, 256, size=(20, 30, 4), dtype=np.uint8)
    data = encode_png(rgba, 96)
    assert data.count(b"IDAT") > 3
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(data))), rgba)


def test_a_figure_is_the_png_matplotlib_writes():
    fig, axes = new_figure(ncols=2, width=6.0)
    x = np.geomspace(1e-3, 1e2, 40)
    axes[0, 0].loglog(x, x**-0.5, "o-", label="falls")
    axes[0, 0].legend()
    axes[0, 1].errorbar([1, 2, 3], [2, 1, 3], yerr=0.3, fmt="s", alpha=0.6)
    axes[0, 1].set_title(r"$\sigma^2$ of a thing")
    layout_figure(fig)
    ours = Image.open(io.BytesIO(figure_png(fig, PNG_DPI)))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=PNG_DPI)
    theirs = Image.open(buffer)
    assert ours.size == theirs.size and ours.mode == theirs.mode == "RGBA"
    np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))
    assert ours.info == theirs.info  # Software and dpi
    plt.close(fig)


def test_a_matplotlibrc_asking_for_tight_boxes_does_not_break_the_png():
    fig, axes = new_figure()
    axes[0, 0].plot([0, 1], [0, 1])
    layout_figure(fig)
    with matplotlib.rc_context({"savefig.bbox": "tight"}):
        image = Image.open(io.BytesIO(figure_png(fig, PNG_DPI)))
    assert image.size == fig.canvas.get_width_height(physical=True)  # the laid-out canvas
    plt.close(fig)
