"""The tie set (one-sided paired t-test against the best) and the chance line, on constructed trials tables."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import pandas as pd
import pytest
from scipy import stats

from tuneall.reporting import ties
from tuneall.reporting.ties import TIE_COLUMNS, chance_threshold, degenerate_mask, tie_set


def table(per_trial: dict[str, list[float]], status: dict[str, str] | None = None,
          metric: str = "ensemble_acc") -> pd.DataFrame:
    """One row per trial and repeat, as report.write_trials_table builds it."""
    status = status or {}
    rows = [{"trial_id": tid, "repeat": r, "status": status.get(tid, "ok"), metric: v, "repeat_of": None}
            for tid, vals in per_trial.items() for r, v in enumerate(vals)]
    return pd.DataFrame(rows)


def row(t: pd.DataFrame, tid: str) -> pd.Series:
    return t.set_index("trial_id").loc[tid]


def test_module_imports_no_heavy_package_at_top():
    tree = ast.parse(Path(ties.__file__).read_text())
    top = {a.name.split(".")[0] for n in tree.body if isinstance(n, ast.Import) for a in n.names}
    top |= {n.module.split(".")[0] for n in tree.body if isinstance(n, ast.ImportFrom) and n.module}
    assert not top & {"torch", "numpy", "scipy", "pandas"}


def test_clearly_separated_is_not_tied():
    t, desc = tie_set(table({"a": [0.90, 0.91, 0.92], "b": [0.80, 0.805, 0.82]}))
    assert list(t.columns) == TIE_COLUMNS
    assert list(t["trial_id"]) == ["a", "b"]  # best first
    b = row(t, "b")
    assert not b["tied"] and b["n_seeds"] == 3
    d = [0.10, 0.105, 0.10]
    t_exp = (sum(d) / 3) / (pd.Series(d).std(ddof=1) / math.sqrt(3))
    assert b["t_stat"] == pytest.approx(t_exp)
    assert b["p_value"] == pytest.approx(stats.t.sf(t_exp, 2))
    assert b["p_value"] < 0.05
    assert b["diff_to_best"] == pytest.approx(0.8083333 - 0.91, abs=1e-6)
    assert row(t, "a")["tied"] and math.isnan(row(t, "a")["p_value"])
    assert desc == "one-sided paired t-test over 3 seeds, alpha 0.05"


def test_within_noise_is_tied():
    # b is better on one seed, worse on two: mean difference 0.003 against seed noise of ~0.01
    t, _ = tie_set(table({"a": [0.90, 0.92, 0.91], "b": [0.91, 0.905, 0.906]}))
    b = row(t, "b")
    assert b["tied"] and b["p_value"] > 0.05
    assert b["p_value"] == pytest.approx(stats.ttest_rel([0.90, 0.92, 0.91], [0.91, 0.905, 0.906],
                                                         alternative="greater").pvalue)


def test_pairing_separates_what_an_unpaired_view_would_not():
    # Seeds differ a lot (0.80 / 0.90 / 0.95) but b is 0.01 worse on every seed and not exactly constant:
    # paired, this is separated; the seed spread alone (std 0.075) would swamp a 0.01 difference.
    t, _ = tie_set(table({"a": [0.80, 0.90, 0.95], "b": [0.79, 0.8905, 0.9395]}))
    assert not row(t, "b")["tied"]
    assert stats.ttest_ind([0.80, 0.90, 0.95], [0.79, 0.8905, 0.9395], alternative="greater").pvalue > 0.4


def test_one_seed_everything_tied_with_a_reason():
    t, desc = tie_set(table({"a": [0.95], "b": [0.60], "c": [0.10]}))
    assert t["tied"].all()
    assert t["p_value"].isna().all()
    assert "1 seed" in desc and "needs at least 2" in desc and "all 3" in desc


def test_diverged_failed_infeasible_and_repeated_trials_are_excluded():
    tab = table({"a": [0.90, 0.91, 0.92], "b": [0.89, 0.91, 0.915], "x": [0.99, 0.99, 0.99], "y": [0.995] * 3,
                 "z": [0.999] * 3},
                status={"x": "diverged", "y": "infeasible", "z": "failed"})
    rep = table({"r": [0.999, 0.999, 0.999]})
    rep["repeat_of"] = "a"
    t, _ = tie_set(pd.concat([tab, rep], ignore_index=True))
    assert set(t["trial_id"]) == {"a", "b"}
    assert t["trial_id"].iloc[0] == "a"  # the diverged trial's high accuracy never makes it best


def test_exclude_takes_trials_out_of_the_comparison():
    t, _ = tie_set(table({"a": [0.90, 0.91, 0.92], "b": [0.5, 0.5, 0.5]}), exclude=["a"])
    assert list(t["trial_id"]) == ["b"] and t["tied"].all()


def test_minimised_metric_and_constant_differences():
    # NLL: lower is better. c equals the best on every seed (tied, p = 1); b is worse by exactly 0.2 on each seed
    # (sd 0): its noise comes from the pooled comparisons (n: differences 0.05 / 0.06 / 0.04, sd 0.01), so separated.
    t, _ = tie_set(table({"a": [0.3, 0.4, 0.5], "b": [0.5, 0.6, 0.7], "c": [0.3, 0.4, 0.5], "n": [0.35, 0.46, 0.54]},
                         metric="ensemble_nll"), metric="ensemble_nll", direction="min")
    assert t["trial_id"].iloc[0] == "a"
    b = row(t, "b")
    assert not b["tied"]
    assert b["t_stat"] == pytest.approx(0.2 / (0.01 / math.sqrt(3)))
    assert b["p_value"] == pytest.approx(stats.t.sf(b["t_stat"], 2))
    assert row(t, "c")["tied"] and row(t, "c")["p_value"] == 1.0
    assert b["diff_to_best"] == pytest.approx(0.2)


def test_constant_small_difference_is_not_separated_by_coincidence():
    # Seen on mnist1d with 2 seeds: a runner-up exactly 0.002 behind on both seeds has sd 0; against the seed noise
    # of the other comparisons (~0.03) it is within noise.
    t, _ = tie_set(table({"a": [0.975, 0.980], "b": [0.973, 0.978], "c": [0.92, 0.97], "d": [0.90, 0.93]}))
    assert row(t, "b")["tied"] and row(t, "b")["p_value"] > 0.05
    # With nothing to pool from, a constant difference cannot be judged: tied, p NaN.
    t, _ = tie_set(table({"a": [0.975, 0.980], "b": [0.973, 0.978]}))
    assert row(t, "b")["tied"] and math.isnan(row(t, "b")["p_value"])


def test_pairs_only_shared_seeds():
    # b has only repeat 0: one shared seed, so it cannot be separated even though a has three
    t, desc = tie_set(table({"a": [0.90, 0.91, 0.92], "b": [0.5], "c": [0.80, 0.805, 0.82]}))
    assert row(t, "b")["tied"] and row(t, "b")["n_seeds"] == 1
    assert not row(t, "c")["tied"]
    assert "fewer than 2 seeds" in desc


def test_no_successful_trial_and_bad_arguments():
    t, desc = tie_set(table({"a": [0.9]}, status={"a": "diverged"}))
    assert t.empty and "no successful trial" in desc
    with pytest.raises(ValueError, match="direction"):
        tie_set(table({"a": [0.9]}), direction="up")
    with pytest.raises(ValueError, match="alpha"):
        tie_set(table({"a": [0.9]}), alpha=1.5)


def test_chance_threshold_and_degenerate_mask():
    assert chance_threshold(10, 360) == pytest.approx(0.1 + 3 * math.sqrt(0.09 / 360))
    assert chance_threshold(10, 10000) == pytest.approx(0.109)
    assert chance_threshold(2) == pytest.approx(0.52)
    acc = pd.Series([0.09, 0.1, 0.14, 0.16, 0.9, float("nan")])
    assert degenerate_mask(acc, 10, 360).tolist() == [True, True, True, False, False, False]
    with pytest.raises(ValueError, match="num_classes"):
        chance_threshold(1)
