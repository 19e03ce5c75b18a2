"""The shared figure machinery: reading back what was drawn, writing PNGs atomically, the zoom window."""

import numpy as np
import pytest

from dancekit.errors import InputError
from dancekit.io.figure_files import read_plotted_data, write_png
from dancekit.plots.canvas import new_figure, plotted_data, style_axes
from dancekit.plots.sky_images import crowded_window, stack_images_figure


def small_figure():
    figure = new_figure(4, 3)
    ax = figure.subplots()
    ax.errorbar([1.0, 2.0, 3.0], [1.0, np.nan, 3.0], [0.1, 0.2, 0.3], fmt="o-", label="binned")
    ax.plot([0, 1], [5, 6], label="_hidden")
    ax.bar([0, 1], [2.5, 4.0], label="bars")
    ax.scatter([0.5], [0.25], label="point")
    style_axes(ax, "panel", "a title", "x [s]", "y [m]")
    return figure


def test_plotted_data_reads_the_drawn_artists_with_nan_as_null():
    data = plotted_data(small_figure())
    assert list(data) == ["panel"]
    assert data["panel"]["binned"]["y"] == [1.0, None, 3.0]
    low, missing, high = data["panel"]["binned"]["yerr"]  # half the drawn bar, none where y is NaN
    assert low == pytest.approx(0.1) and missing is None and high == pytest.approx(0.3)
    assert data["panel"]["bars"] == {"x": [0.0, 1.0], "y": [2.5, 4.0]}
    assert data["panel"]["point"] == {"x": [0.5], "y": [0.25]}
    assert "_hidden" not in data["panel"]


def test_png_is_written_atomically_carries_its_data_and_is_not_overwritten_silently(tmp_path):
    figure = small_figure()
    path = tmp_path / "figure.png"
    write_png(figure, str(path))
    assert read_plotted_data(str(path)) == plotted_data(figure)
    before = path.read_bytes()
    with pytest.raises(InputError, match="output exists; pass --overwrite"):
        write_png(figure, str(path))
    assert path.read_bytes() == before
    write_png(figure, str(path), overwrite=True)
    assert [p.name for p in tmp_path.iterdir()] == ["figure.png"]  # no temporary file left behind
    with pytest.raises(InputError, match="not to standard output"):
        write_png(figure, "-")


def test_zoom_window_lands_on_the_crowded_core():
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.normal(150, 4, 60), rng.uniform(0, 200, 20)])
    y = np.concatenate([rng.normal(40, 4, 60), rng.uniform(0, 160, 20)])
    x0, y0, side = crowded_window(x, y, (160, 200))
    assert side == 80  # half the smaller side
    assert x0 <= 150 - 10 and x0 + side >= 150 + 10 and y0 <= 40 - 10 and y0 + side >= 40 + 10
    assert 0 <= x0 <= 200 - side and 0 <= y0 <= 160 - side


def test_image_panel_counts_matched_and_false_detections():
    truth = np.zeros((64, 64))
    truth[32, 32] = truth[40, 20] = 1.0
    stack = {"name": "stack", "image": truth + 0.01,
             "detections": {"x": np.array([32.0, 10.0]), "y": np.array([32.0, 10.0]), "matched": np.array([True, False])}}
    figure = stack_images_figure(truth, {"x": np.array([32.0, 20.0]), "y": np.array([32.0, 40.0])}, [stack], "t", "s")
    titles = [ax.get_title() for ax in figure.axes if ax.get_title()]
    assert titles == ["truth\n2 true stars", "stack\n1 matched, 1 false of 2 found"]
