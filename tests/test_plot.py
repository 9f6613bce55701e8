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
    assert "D/N = 20" in ax.get_title()
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
