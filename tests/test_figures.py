"""Figures a person reads: x tick labels on short log spans, best-so-far respecting min/max, the frontier following
the chosen objectives."""

from __future__ import annotations

import pandas as pd

from tuneall.reporting import plots
from tuneall.reporting.frontier import frontier, frontier_objectives


def _labels(values):
    fig, ax = plots.plt.subplots()
    ax.scatter(values, [1] * len(values))
    plots._log_ticks(ax, values)
    fig.canvas.draw()
    lo, hi = ax.get_xlim()
    shown = [t.get_text() for t in ax.get_xticklabels() if t.get_text() and lo <= t.get_position()[0] <= hi]
    plots.plt.close(fig)
    return shown


def test_short_log_spans_have_tick_labels():
    assert len(_labels([1.67e5, 9.4e5])) >= 3  # under one decade: matplotlib alone labels none
    assert len(_labels([2.0e5, 2.6e5])) >= 1
    assert "200k" in _labels([1.5e5, 8e5])


def test_history_best_so_far_respects_min(tmp_path):
    t = pd.DataFrame({"number": [0, 1, 2, 3], "value": [0.5, 0.3, 0.4, 0.2]})
    p = plots.optimisation_history(t, tmp_path / "h.png", "ensemble_nll_mean", "min")
    assert p.exists() and p.stat().st_size > 10_000


def _summary():
    return pd.DataFrame({"trial_id": list("abcd"), "status": "ok", "k": [1, 2, 4, 8],
                         "ensemble_acc_mean": [0.90, 0.95, 0.96, 0.94], "ensemble_nll_mean": [0.4, 0.2, 0.25, 0.1],
                         "inference_flops": [1, 2, 4, 8], "total_params": [1, 2, 4, 8],
                         "train_time_s": [9, 1, 5, 3]})


def test_frontier_follows_the_chosen_objectives():
    s = _summary()
    # The default chooses on validation; a table without val_ columns (made before validation) falls back to test.
    assert frontier_objectives(None) == (("val_ensemble_acc_mean", "max"), ("inference_flops", "min"))
    assert frontier_objectives([("val_ensemble_acc_mean", "max")])[-1] == ("inference_flops", "min")
    assert frontier_objectives([("ensemble_acc_mean", "max"), ("total_params", "min")])[-1][0] == "total_params"
    # Time is not an objective by default: d (slow but dominated on accuracy/cost) stays off.
    assert list(frontier(s, frontier_objectives(None))["trial_id"]) == ["c", "b", "a"]
    # A min objective ranks first and sorts ascending.
    f = frontier(s, frontier_objectives([("ensemble_nll_mean", "min")]))
    assert list(f["trial_id"]) == ["d", "b", "a"]


def test_default_frontier_chooses_on_validation():
    # Validation disagrees with test: c is best on test, b on validation; the default frontier follows validation.
    s = _summary().assign(val_ensemble_acc_mean=[0.90, 0.97, 0.93, 0.94])
    assert list(frontier(s, frontier_objectives(None))["trial_id"]) == ["b", "a"]
    # An objective that names the test column still chooses on its validation twin: a choice never reads test.
    assert list(frontier(s, frontier_objectives([("ensemble_acc_mean", "max")]))["trial_id"]) == ["b", "a"]
    # Tables made before validation existed: the test column is all there is.
    old = _summary()
    assert list(frontier(old, frontier_objectives([("val_ensemble_acc_mean", "max")]))["trial_id"]) == ["c", "b", "a"]


def test_pareto_figure_renders(tmp_path):
    s = _summary().assign(budget=1e6)
    objs = frontier_objectives(None)
    p = plots.pareto_scatter(s, frontier(s, objs), tmp_path / "p.png", objs)
    assert p.exists() and p.stat().st_size > 10_000


def test_history_hides_redrawn_duplicates_and_plots_trials_in_order(tmp_path, monkeypatch):
    """Duplicates told to Optuna without running (and drawn again) are not trials: hidden, and the x axis is the
    order drawn (no gaps where their numbers were)."""
    import matplotlib.axes

    seen = {}
    real = matplotlib.axes.Axes.scatter
    monkeypatch.setattr(matplotlib.axes.Axes, "scatter",
                        lambda self, x, y, **kw: seen.update(x=list(x), y=list(y)) or real(self, x, y, **kw))
    t = pd.DataFrame({"number": [0, 1, 2, 3, 4, 5], "value": [0.5, 0.5, None, 0.7, 0.7, 0.6],
                      "user_attrs_redrawn": [None, "answered", "running", None, "answered", None]})
    p = plots.optimisation_history(t, tmp_path / "h.png", "val_ensemble_acc_mean", "max", study=object())
    assert p.exists() and seen == {"x": [0, 1, 2], "y": [0.5, 0.7, 0.6]}
