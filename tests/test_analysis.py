"""Cross-budget analyses on hand-made tables with known answers: crossover, switchover map and EST, optimal k,
power-law fits and their hold-out."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tuneall.reporting import analysis as A
from tuneall.reporting.powerlaw import band_scale, fit_many, fit_power_law, frontier_study, predict
from tuneall.sweeping.report import analyse


def cells_table(spec, rules=("mean",)) -> pd.DataFrame:
    """spec: (width, k, budget, accs per repeat[, params per member]) -> a cells table like a sweep writes."""
    rows = []
    for item in spec:
        width, k, c, accs = item[:4]
        ppm = item[4] if len(item) > 4 else int(1000 * width ** 2)
        steps = int(c // (k * ppm))
        for rule in rules:
            for r, acc in enumerate(accs):
                rows.append({"family": "cnn3", "width": width, "depth": 3, "k": k, "data_fraction": 1.0,
                             "design": None, "lr": 0.05, "momentum": 0.9, "batch_size": 128,
                             "params_per_member": ppm, "total_params": k * ppm, "steps": steps, "epochs": steps / 10,
                             "train_flops": 6 * k * ppm * steps, "inference_flops": 2 * k * ppm,
                             "spent": k * ppm * steps,
                             "budget": c, "rule": rule, "repeat": r, "status": "ok", "ensemble_acc": acc})
    return pd.DataFrame(rows)


def test_crossover_point_interpolates_in_log_budget():
    # diff linear in log10 C, zero at C = 10^6.5: linear interpolation in log C is exact
    c = [1e5, 1e6, 1e7, 1e8]
    d = [0.05 * (np.log10(x) - 6.5) for x in c]
    point, status = A.crossover_point(c, d)
    assert status == "crosses" and point == pytest.approx(10 ** 6.5, rel=1e-9)
    assert A.crossover_point(c, [0.1, 0.1, 0.1, 0.1]) == (pytest.approx(np.nan, nan_ok=True), "below range")
    assert A.crossover_point(c, [-0.1, -0.1, 0.1, -0.01])[1] == "above range"
    # A win followed by a loss does not count: the crossover is where the larger model wins from then on.
    assert A.crossover_point(c, [-0.1, 0.1, -0.1, 0.1])[0] == pytest.approx(10 ** 7.5)


def test_crossover_table_known_budget_and_tight_band():
    budgets = [1e6, 1e7, 3e8, 1e9]
    small = [(0.5, 1, c, [0.90, 0.90, 0.90]) for c in budgets]
    large = [(1.0, 1, c, [0.8 + 0.05 * np.log10(c / 1e6)] * 3) for c in budgets]  # equals 0.9 at C = 1e8
    table = A.crossover_table(cells_table(small + large), n_boot=50)
    row = table[table["comparison"] == "single w=1 vs w=0.5"].iloc[0]
    assert row["status"] == "crosses" and row["crossover"] == pytest.approx(1e8, rel=1e-9)
    assert row["lo"] == pytest.approx(1e8, rel=1e-9) and row["hi"] == pytest.approx(1e8, rel=1e-9)
    assert row["p_cross"] == 1.0


def test_crossover_band_widens_with_seed_noise():
    budgets = [1e6, 1e7, 1e8, 1e9]
    rng = np.random.default_rng(0)
    small = [(0.5, 1, c, list(0.9 + 0.01 * rng.standard_normal(3))) for c in budgets]
    large = [(1.0, 1, c, list(0.8 + 0.05 * np.log10(c / 1e6) + 0.01 * rng.standard_normal(3))) for c in budgets]
    row = A.crossover_table(cells_table(small + large), n_boot=200).iloc[0]
    assert row["status"] == "crosses" and 1e7 < row["crossover"] < 1e9
    assert row["lo"] < row["crossover"] < row["hi"]


def test_ensemble_vs_single_crossover_and_optimal_k():
    budgets = [1e6, 1e7, 1e8]
    spec = [(1.0, 1, c, [a] * 2) for c, a in zip(budgets, [0.80, 0.85, 0.90])]
    spec += [(0.5, 2, c, [a] * 2) for c, a in zip(budgets, [0.70, 0.86, 0.93])]  # k=2 wins from between 1e6-1e7
    cells = cells_table(spec, rules=("mean", "geometric"))
    row = A.crossover_table(cells, n_boot=20).set_index("comparison").loc["best k=2 ensemble vs best single"]
    # diff = -0.10 at 1e6, +0.01 at 1e7: crossing at 10^(6 + 10/11)
    assert row["crossover"] == pytest.approx(10 ** (6 + 10 / 11), rel=1e-9)
    best = A.optimal_k(A.summarize_cells(cells))
    got = best[best["rule"] == "mean"].set_index("budget")["best_k"].to_dict()
    assert got == {1e6: 1, 1e7: 2, 1e8: 2}


def test_the_best_k_per_budget_names_every_other_field_the_sweep_varies():
    """A sweep over two learning rates: the best cell at each budget reads with its lr (optimal_k's column and the
    sweep's answer line), not as a bare "k = 2, width 0.5" that no single cell of the sweep is. Before, the lr of
    the best cell was dropped, and a sweep that varies nothing else keeps the table as it was."""
    from tuneall.sweeping.progress import answer_lines

    budgets = [1e6, 1e7]
    spec = [(1.0, 1, c, [a] * 2) for c, a in zip(budgets, [0.80, 0.85])]
    spec += [(0.5, 2, c, [a] * 2) for c, a in zip(budgets, [0.70, 0.90])]
    slow = cells_table(spec).assign(lr=0.01, ensemble_acc=lambda d: d["ensemble_acc"] - 0.05)
    cells = pd.concat([cells_table(spec).assign(lr=0.2), slow], ignore_index=True)
    best = A.optimal_k(A.summarize_cells(cells))
    assert best[["budget", "best_k", "best_width", "lr"]].values.tolist() == [[1e6, 1, 1.0, 0.2],
                                                                              [1e7, 2, 0.5, 0.2]]
    assert "family" not in best and "depth" not in best  # one value in the whole sweep: not a column
    assert answer_lines({"optimal_k": best}, "param-steps") == [
        "tuneall: answer (mean rule) at the largest budget C = 1e+07 param-steps: k = 2, width 0.5, lr=0.2 (test "
        "accuracy 0.9000; best single network 0.8500); per budget: optimal_k.csv"]
    plain = A.optimal_k(A.summarize_cells(cells_table(spec)))
    assert list(plain.columns) == ["rule", "budget", "best_k", "best_width", "train_flops", "mean", "std", "worst",
                                   "best_single"]


def _design_summary(k, wins) -> pd.DataFrame:
    """Singles at three parameter counts, a k-member ensemble of 90% of each single's parameters; ``wins(P, T)``
    says where the ensemble is better."""
    rows = []
    for p in (1e4, 4e4, 1.6e5):
        for c in (1e6, 1e7, 1e8, 1e9):
            t = int(c // p)
            single = {"family": "cnn3", "depth": 3, "budget": c, "rule": "mean", "data_fraction": 1.0,
                      "std": 0.0, "worst": 0.0, "n": 3}
            rows.append({**single, "width": p, "k": 1, "total_params": p, "steps": t, "epochs": t / 10, "mean": 0.9})
            rows.append({**single, "width": p / 10, "k": k, "total_params": 0.9 * p, "steps": int(c // (0.9 * p)),
                         "epochs": np.nan, "mean": 0.9 + (0.01 if wins(p, t) else -0.01)})
    return pd.DataFrame(rows)


def test_switchover_map_and_est_known_thresholds():
    # k = 2 wins from 4e4 parameters and 1000 steps; k = 4 only from 1.6e5 parameters: the EST moves right.
    maps = {}
    for k, p0 in ((2, 4e4), (4, 1.6e5)):
        m = A.switchover_map(_design_summary(k, lambda p, t, p0=p0: p >= p0 and t >= 1000), k)
        assert len(m) == 12 and np.allclose(m["param_ratio"], 0.9)
        maps[k] = m
    est = A.ensemble_switchover_threshold(pd.concat(maps.values()))
    by_p = est[(est["axis"] == "steps at params") & (est["k"] == 2)].set_index("params")["est_steps"]
    assert np.isnan(by_p[1e4]) and by_p[4e4] == 2500 and by_p[1.6e5] == 6250  # first T >= 1000 at each P
    by_c = est[est["axis"] == "params at budget"].set_index(["k", "budget"])["est_params"]
    assert by_c[(2, 1e9)] == 4e4 and by_c[(4, 1e9)] == 1.6e5 and np.isnan(by_c[(2, 1e6)])
    # An ensemble with too few parameters (no equivalent in the grid) is not compared.
    s = _design_summary(2, lambda p, t: True)
    s.loc[s["k"] == 2, "total_params"] *= 0.5
    assert A.switchover_map(s, 2).empty


@pytest.mark.parametrize("e,a,alpha", [(0.03, 50.0, 0.4), (0.0, 2e3, 0.7), (0.1, 5.0, 0.25)])
def test_power_law_fit_recovers_synthetic_parameters(e, a, alpha):
    c = np.geomspace(1e5, 1e9, 8)
    fit = fit_power_law(c, e + a * c ** -alpha)
    assert fit["alpha"] == pytest.approx(alpha, rel=1e-3)
    assert fit["E"] == pytest.approx(e, abs=1e-4)
    assert fit["A"] == pytest.approx(a, rel=1e-2)
    # With 1% multiplicative noise the exponent is still recovered to ~10%, and the batch fit agrees.
    rng = np.random.default_rng(1)
    noisy = (e + a * c ** -alpha) * (1 + 0.01 * rng.standard_normal(len(c)))
    assert fit_power_law(c, noisy)["alpha"] == pytest.approx(alpha, rel=0.1)
    batch = fit_many(c, np.stack([e + a * c ** -alpha] * 2))
    assert batch[0]["alpha"] == pytest.approx(alpha, rel=0.02)


def test_frontier_study_holdout_and_predicted_switchover():
    budgets = np.geomspace(1e6, 1e8, 5)
    single = lambda c: 0.06 + 30 * c ** -0.4  # noqa: E731
    ens = lambda c: 0.02 + 300 * c ** -0.5  # noqa: E731
    spec = [(1.0, 1, c, [1 - single(c)] * 3) for c in budgets] + [(0.5, 2, c, [1 - ens(c)] * 3) for c in budgets]
    study = frontier_study(cells_table(spec), n_boot=20)
    hold = study["holdout"].set_index("class")
    assert hold.loc["single", "abs_error"] < 1e-3 and hold.loc["k=2", "abs_error"] < 1e-3
    grid = np.geomspace(1e6, 1e12, 200001)
    true = grid[np.argmax(single(grid) - ens(grid) > 0)]
    sw = study["switchover"].set_index("ensemble").loc["k=2"]
    assert sw["status"] == "crosses" and sw["predicted_switchover"] == pytest.approx(true, rel=0.02)
    assert sw["beyond_largest"] == (true > budgets[-1])
    fits = study["fits"].set_index("class")
    assert fits.loc["single", "alpha"] == pytest.approx(0.4, rel=1e-2)
    assert predict(fits.loc["k=2"].to_dict(), 1e10) == pytest.approx(ens(1e10), rel=1e-2)


def test_analyse_every_table_on_a_small_table():
    spec = [(w, k, c, [0.8 + 0.01 * k + 0.02 * np.log10(c / 1e5) - 0.01 * w, 0.81]) for w in (0.5, 1.0)
            for k in (1, 2) for c in (1e5, 1e6, 1e7, 1e8, 1e9)]
    tables = analyse(cells_table(spec, rules=("mean", "geometric")), ["mean", "geometric"], n_boot=20)
    for name in ("crossover_budgets", "crossover_curves", "flops_curves", "optimal_k", "compute_frontier",
                 "powerlaw_fits", "holdout", "allocation_holdout"):
        assert not tables[name].empty, name
    # the extrapolated best allocation is shown exactly when the allocation choice passed out of sample
    assert tables["predicted_best_allocation"].empty != bool(tables["allocation_holdout"]["in_tie_set"].all())
    curves = tables["crossover_curves"]
    assert set(curves["line"]) == {"single w=0.5", "single w=1", "k=1 best width", "k=2 best width"}


def test_no_exactly_determined_fit():
    with pytest.raises(ValueError, match=">= 4 points"):
        fit_power_law([1e6, 1e7, 1e8], [0.3, 0.2, 0.15])
    # a sweep of 4 budgets: fits (one residual) but no hold-out, so no allocation check and nothing extrapolated
    spec = [(1.0, 1, c, [0.7 + 0.05 * np.log10(c / 1e6)] * 3) for c in np.geomspace(1e6, 1e8, 4)]
    study = frontier_study(cells_table(spec), n_boot=10)
    assert study["holdout"].empty and study["best_allocation"].empty and not study["fits"].empty


def test_band_scale_widens_to_cover_every_holdout():
    rows = [{"predicted_acc": 0.90, "acc_lo": 0.89, "acc_hi": 0.91, "observed_acc": 0.93, "abs_error": 0.03},
            {"predicted_acc": 0.95, "acc_lo": 0.94, "acc_hi": 0.96, "observed_acc": 0.945, "abs_error": 0.005}]
    assert band_scale(rows) == pytest.approx(3.0)
    assert band_scale(rows[1:]) == 1.0 and np.isnan(band_scale([]))


def _allocation_spec(flip: bool):
    """Two allocations over 6 budgets: a = slow starter that keeps improving, b = fast starter that flattens; with
    ``flip`` b jumps ahead at the largest budget (a law fitted below it cannot see that coming)."""
    budgets = np.geomspace(1e6, 1e9, 6)
    rng = np.random.default_rng(0)
    spec = []
    for i, c in enumerate(budgets):
        a = 1 - (0.01 + 20 * c ** -0.3)
        b = 1 - (0.05 + 5 * c ** -0.3) + (0.2 if flip and i == 5 else 0)
        spec += [(1.0, 1, c, list(a + 0.002 * rng.standard_normal(4))),
                 (0.5, 2, c, list(b + 0.002 * rng.standard_normal(4)))]
    return spec


@pytest.mark.parametrize("flip", [False, True])
def test_allocation_choice_checked_out_of_sample(flip):
    study = frontier_study(cells_table(_allocation_spec(flip)), n_boot=20)
    check = study["allocation_holdout"]
    assert list(check["fitted_on"]) == [4, 5]
    last = check.iloc[-1]
    assert last["in_tie_set"] == (not flip)
    assert study["best_allocation"].empty == flip  # the 10x prediction is shown only when the check passed


def test_fit_beats_persistence_needs_most_resamples():
    from tuneall.reporting.powerlaw import fit_beats_persistence

    row = {"class": "best", "held_out_budget": 1e9, "fitted_on": 4, "predicted_acc": 0.97, "acc_lo": 0.96,
           "acc_hi": 0.98, "observed_acc": 0.971, "abs_error": 0.001, "inside_band": True,
           "persistence_abs_error": 0.01}
    assert fit_beats_persistence(pd.DataFrame([{**row, "p_fit_beats_persistence": 0.97}])) is True
    assert fit_beats_persistence(pd.DataFrame([{**row, "p_fit_beats_persistence": 0.51}])) is False
