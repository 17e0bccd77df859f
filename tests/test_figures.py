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


# --- The defects a reviewer found (issue 23): the figure objects themselves are inspected. ---

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture
def figures(monkeypatch):
    """The figures the plotting functions build, kept open (plt.close captured) for inspection."""
    kept = []
    monkeypatch.setattr(plots.plt, "close", lambda fig=None: kept.append(fig))
    yield kept
    monkeypatch.undo()
    for fig in kept:
        plots.plt.close(fig)


def _legend(ax) -> list[str]:
    leg = ax.get_legend()
    return [t.get_text() for t in leg.get_texts()] if leg else []


def _search_table():
    return pd.DataFrame({"trial_id": list("abcd"), "status": "ok", "family": "cnn3", "width": [0.5, 1.0, 0.5, 1.0],
                         "depth": 3, "k": [1, 1, 2, 2], "ensemble_acc_mean": [0.9, 0.9, 0.95, 0.95],
                         "ensemble_acc_std": 0.01, "val_ensemble_acc_mean": [0.91, 0.90, 0.96, 0.95],
                         "inference_flops": [1_000, 2_000, 2_000, 4_000], "budget": 3e7, "unit": "param-steps"})


def test_accuracy_vs_k_has_integer_ticks_split_visible_series_and_the_choice(tmp_path, figures):
    s = _search_table()
    plots.accuracy_vs_k(s, tmp_path / "k.png", best=s.iloc[2])
    ax = figures[-1].axes[0]
    assert all(float(t).is_integer() for t in ax.get_xticks())  # k is a count: no 1.5 ticks
    assert "test" in ax.get_ylabel() and "param-steps" in ax.get_title()
    assert any(t.startswith("chosen: cnn3 w=0.5 d=3 k=2") for t in _legend(ax))
    # the two widths score the same at every k: nudged apart, both series visible
    xs = [np.asarray(line.get_xdata(), float) for line in ax.get_lines() if len(line.get_xdata()) == 2]
    assert len({tuple(x) for x in xs}) == 2  # two series, at two distinct sets of x positions


def test_pareto_names_axes_in_words_with_k_discrete_and_the_choice_marked(tmp_path, figures):
    s = _search_table()
    objs = frontier_objectives(None)
    plots.pareto_scatter(s, frontier(s, objs), tmp_path / "p.png", objs, best=s.iloc[2])
    fig = figures[-1]
    assert len(fig.axes) == 1  # no continuous colour bar for a discrete k
    ax = fig.axes[0]
    labels = _legend(ax)
    assert {"k=1", "k=2"} <= set(labels) and any(t.startswith("chosen:") for t in labels)
    assert "FLOPs" in ax.get_xlabel() and "validation" in ax.get_ylabel() and "validation split" in ax.get_title()
    assert "_" not in ax.get_xlabel() + ax.get_ylabel()  # no raw column names


def test_history_names_its_split(tmp_path, figures):
    t = pd.DataFrame({"number": [0, 1, 2], "value": [0.5, 0.7, 0.6]})
    plots.optimisation_history(t, tmp_path / "h.png", "val_ensemble_acc_mean", "max")
    ax = figures[-1].axes[0]
    assert "validation" in ax.get_ylabel() and "validation split" in ax.get_title()
    assert all(float(v).is_integer() for v in ax.get_xticks())


def _curves():
    b = [1e6, 3e6, 1e7]
    rows = [{"line": line, "budget": c, "mean": m, "std": 0.01, "worst": m - 0.02}
            for line, ms in (("k=1 best width", [0.8, 0.85, 0.9]), ("single w=0.5", [0.8, 0.85, 0.9]),
                             ("single w=1", [0.7, 0.84, 0.92])) for c, m in zip(b, ms)]
    cross = pd.DataFrame([{"comparison": "w=1 vs w=0.5", "larger": "w=1", "smaller": "w=0.5", "crossover": 5e6,
                           "lo": 4e6, "hi": 8e6, "p_cross": 0.9, "status": "crosses"}])
    return pd.DataFrame(rows), cross


def test_crossover_shows_every_series_names_the_unit_and_marks_the_crossover(tmp_path, figures):
    from tuneall.sweeping import plots as sweep_plots

    curves, cross = _curves()
    sweep_plots.crossover_figure(curves, cross, tmp_path / "c.png", unit="flops")
    ax = figures[-1].axes[0]
    assert "FLOPs" in ax.get_xlabel() and "test" in ax.get_title()
    mains = [line for line in ax.get_lines() if line.get_label() in set(curves["line"])]
    assert len(mains) == 3
    # the first two lines are identical: they must differ in width or marker so that both show
    a, b = mains[0], mains[1]
    assert a.get_linewidth() > b.get_linewidth() and a.get_marker() != b.get_marker()
    assert any("crossover w=1 > w=0.5" in t.get_text() for t in ax.texts)
    assert len(_legend(ax)) == 3
    sweep_plots.crossover_figure(curves, cross, tmp_path / "c2.png")
    assert "param-steps" in figures[-1].axes[0].get_xlabel()


def test_frontier_fit_keeps_best_visible_and_draws_no_legend_for_what_is_not_drawn(tmp_path, figures):
    from tuneall.sweeping import plots as sweep_plots

    budgets = [1e6, 3e6, 1e7]
    front = pd.DataFrame([{"class": c, "budget": b, "acc": a} for c in ("best", "ensemble")
                          for b, a in zip(budgets, [0.8, 0.85, 0.9])])
    extra = pd.DataFrame([{"class": c, "budget": b, "predicted_acc": 0.9, "acc_lo": 0.88, "acc_hi": 0.92}
                          for c in ("best", "ensemble") for b in (1e7, 1e8, 1e9)])
    sweep_plots.frontier_figure(front, extra, pd.DataFrame(), tmp_path / "f.png", unit="param-steps")
    ax = figures[-1].axes[0]
    labels = _legend(ax)
    assert not any("hold-out" in t for t in labels) and "hold-out" not in ax.get_xlabel()
    # 3 budgets for a 3-parameter law: no fit drawn (and so no 100x extrapolation), and it says why
    assert not any("(fit)" in t for t in labels) and any("fit not drawn" in t.get_text() for t in ax.texts)
    best, ens = (next(line for line in ax.get_lines() if line.get_label() == f"{c} (measured)")
                 for c in ("best", "ensemble"))
    assert best.get_markerfacecolor() == "none" and best.get_markersize() > ens.get_markersize()
    assert "param-steps" in ax.get_xlabel()
    front4 = pd.concat([front, pd.DataFrame([{"class": c, "budget": 3e7, "acc": 0.92} for c in ("best", "ensemble")])])
    sweep_plots.frontier_figure(front4, extra, pd.DataFrame(), tmp_path / "f4.png")
    ax = figures[-1].axes[0]
    fit = next(line for line in ax.get_lines() if line.get_label() == "best (fit)")
    assert max(fit.get_xdata()) <= 10 * 3e7  # drawn to 10x the largest budget at most
