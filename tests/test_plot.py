"""Plot smoke tests on the Agg backend: what is drawn, not how it looks."""

import matplotlib.pyplot as plt
import numpy as np
import pytest

import bayescale as bs


def test_fit_plot_with_target(small_fit):
    ax = small_fit.plot(target={"N": 7e10, "D": 1.4e12})
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert len(ax.collections) >= 3  # two bands and the data
    x_line = ax.lines[0].get_xdata()
    assert x_line.max() == pytest.approx(7e10)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(label.startswith("target:") for label in labels)
    assert ax.get_title().startswith("loss = E + A N^-alpha + B D^-beta") and "D/N = 20" in ax.get_title()
    assert ax.get_xlabel() == "N [parameters]"  # the Chinchilla law's inputs have units
    assert "end of the data" in labels
    # the legend sits below the axes, off the data
    legend_box = ax.get_legend().get_window_extent(ax.figure.canvas.get_renderer())
    assert legend_box.y1 <= ax.get_window_extent().y0
    # beyond the data the band widens with the extrapolation risk
    band = ax.collections[0].get_paths()[0].vertices
    assert band[:, 1].max() / band[:, 1].min() > 1.0
    plt.close(ax.figure)


def test_units_label_the_axes(small_fit):
    ax = bs.plot.fit(small_fit, units={"loss": "nats", "N": "non-embedding parameters"})
    assert ax.get_ylabel() == "loss [nats]" and ax.get_xlabel() == "N [non-embedding parameters]"
    plt.close(ax.figure)


def test_fit_plot_on_given_axes_without_target(small_fit):
    fig, axes = plt.subplots(1, 2)
    ax = bs.plot.fit(small_fit, x="D", ax=axes[1])
    assert ax is axes[1]
    data_x = np.asarray(ax.collections[-1].get_offsets())[:, 0]
    np.testing.assert_allclose(np.sort(data_x), np.sort(small_fit.idata.constant_data["D"].values))
    plt.close(fig)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"x": "C"}, r"x must be one of the law's inputs \['N', 'D'\]"),
        ({"target": {"N": 1e10}}, r"missing \['D'\]"),
        ({"target": 1e10}, "target must be a mapping"),
        ({"target": {"N": -1.0, "D": 1e9}}, "target inputs must be finite and > 0"),
    ],
)
def test_plot_argument_errors(small_fit, kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        bs.plot.fit(small_fit, **kwargs)


def test_budget_plots(small_fit):
    import matplotlib.pyplot as plt

    fig = bs.plot.frontier(small_fit)
    left, right = fig.axes
    assert [t.get_text() for t in left.get_legend().get_texts()] == ["N*", "D*"]
    assert left.get_xscale() == "log" and right.get_ylabel() == "loss"
    plt.close(fig)
    ax = bs.plot.isoflop(small_fit, C=[1e19, 1e20, 1e21])
    assert len(ax.lines) >= 3 and [t.get_text() for t in ax.get_legend().get_texts()] == [
        "C = 1e+19",
        "C = 1e+20",
        "C = 1e+21",
    ]
    # each optimum's marker sits near the minimum of its median curve (the median of the draws' optima
    # and the optimum of the median curve differ a little; the grid spacing is a factor 1.09)
    lines = ax.get_lines()
    curves = [line for line in lines if line.get_marker() in ("None", "", None) and len(line.get_xdata()) > 2]
    markers = [line for line in lines if line.get_marker() == "o"]
    assert len(curves) == len(markers) == 3
    for curve, marker in zip(curves, markers, strict=True):
        n, loss = curve.get_data()
        best = n[np.argmin(loss)]
        assert 0 < np.argmin(loss) < len(n) - 1
        assert abs(np.log(marker.get_xdata()[0] / best)) < np.log(1.5)
    plt.close(ax.figure)
