"""plots.truth_concentration: one histogram and one dashed median line per setting, the
median (hand-computed) in the legend."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np

from oneranker import plots


def test_truth_concentration_marks_each_median():
    fig = plots.truth_concentration({"affinity 8": np.array([10.0, 20.0, 90.0]),
                                     "affinity 4": np.array([100.0, 300.0, 400.0, 500.0])}, n_items=600)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["affinity 8 (median 20)", "affinity 4 (median 350)"]   # (300 + 400) / 2
    medians = [line.get_xdata()[0] for line in ax.get_lines()]
    assert medians == [20.0, 350.0]
    assert ax.get_xlim() == (0.0, 600.0)
    plt.close(fig)
