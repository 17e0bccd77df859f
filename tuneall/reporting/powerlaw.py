"""Compute-optimal frontier and extrapolation: a saturating power law err(C) = E + A x C^-alpha per design class.

The fit is a profile least squares: for a fixed exponent alpha the model is linear in (E, A), solved in closed form
with E, A >= 0; alpha is chosen on a log grid and refined by golden section. No SciPy, and a batch of bootstrap
curves is fitted at once. Bands are the 16-84% percentiles of fits to the paired seed bootstrap of
:func:`tuneall.reporting.analysis.resampled`.

What an extrapolation must pass before it is shown (issue 24):

- **Never an exactly determined fit**: three parameters need at least :data:`MIN_POINTS` (4) budgets, so at least
  one residual checks the curve; a law through 3 points fits anything and predicts nothing.
- **Progressive hold-outs**: for every budget from the fifth on, fit on the budgets below it and predict it
  (:func:`progressive_holdouts`). The bootstrap band's coverage on those hold-outs calibrates it: the band is widened
  by the factor that puts every hold-out inside (``band_scale``; 1 when it already does), and every extrapolated band
  is shown at that width.
- **The allocation choice checked out of sample** (:func:`allocation_holdout`): per-allocation laws fitted on the
  budgets below a held-out one name a predicted best; it passes only when that allocation is in the tie set
  *measured* at the held-out budget (seed bootstrap, best re-selected per resample, :mod:`tuneall.reporting.ties`).
  The predicted best allocation at 10x is shown only when every such check passed; otherwise the tables say why.
- "The fit beats persistence" is claimed only when it does so in at least :data:`BEATS_LEVEL` of the seed
  resamples, not on one run's win (51 % of resamples is a coin).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from tuneall.reporting.analysis import BAND, _keys, crossover_point, envelope, resampled

ALPHAS = np.geomspace(0.01, 3.0, 600)
EXTRAPOLATE = (3.0, 10.0, 100.0)  # target budgets as multiples of the largest budget run
MIN_POINTS = 4  # budgets per fit: 3 parameters and at least one residual
BEATS_LEVEL = 0.95  # share of seed resamples in which the fit must beat persistence to be called better


def _profile(c: np.ndarray, y: np.ndarray, alphas: np.ndarray):
    """E, A (at C / c0), rss for every (curve, alpha): y (B, n), alphas (m,) -> arrays (B, m)."""
    c0 = math.exp(float(np.mean(np.log(c))))
    x = (c / c0)[None, :] ** -alphas[:, None]  # (m, n)
    xm, ym = x.mean(1), y.mean(1)
    xv = ((x - xm[:, None]) ** 2).sum(1)
    a = ((y - ym[:, None]) @ (x - xm[:, None]).T) / xv  # (B, m)
    e = ym[:, None] - a * xm[None, :]
    neg_a = a < 0  # no decrease with C: the best constant
    a, e = np.where(neg_a, 0.0, a), np.where(neg_a, ym[:, None], e)
    neg_e = e < 0  # an error floor below 0 is meaningless: fit through 0
    a0 = np.clip((y @ x.T) / (x * x).sum(1), 0, None)
    a, e = np.where(neg_e, a0, a), np.where(neg_e, 0.0, e)
    rss = ((e[..., None] + a[..., None] * x[None] - y[:, None, :]) ** 2).sum(-1)
    return e, a, rss, c0


def fit_power_law(budgets, err, refine: bool = True) -> dict:
    """Least-squares fit of err = E + A x C^-alpha (E, A >= 0) to >= MIN_POINTS points (3 parameters through 3
    points would be exactly determined: nothing left to check it); returns E, A, alpha, rss, n."""
    c, y = np.asarray(budgets, float), np.asarray(err, float)
    if len(c) < MIN_POINTS or len(c) != len(y):
        raise ValueError(f"a 3-parameter power law needs >= {MIN_POINTS} points (one residual at least), "
                         f"got {len(c)}")
    e, a, rss, c0 = _profile(c, y[None, :], ALPHAS)
    i = int(np.argmin(rss[0]))
    alpha = ALPHAS[i]
    if refine:  # golden section on the bracket around the best grid point
        lo, hi = ALPHAS[max(0, i - 1)], ALPHAS[min(len(ALPHAS) - 1, i + 1)]
        g = (math.sqrt(5) - 1) / 2

        def f(al):
            return _profile(c, y[None, :], np.array([al]))[2][0, 0]

        for _ in range(60):
            m1, m2 = hi - g * (hi - lo), lo + g * (hi - lo)
            lo, hi = (lo, m2) if f(m1) < f(m2) else (m1, hi)
        alpha = (lo + hi) / 2
    e, a, rss, c0 = _profile(c, y[None, :], np.array([alpha]))
    return {"E": float(e[0, 0]), "A": float(a[0, 0] * c0 ** alpha), "alpha": float(alpha), "rss": float(rss[0, 0]),
            "n": len(c)}


def fit_many(budgets, errs: np.ndarray) -> list[dict]:
    """Grid-only fits of a batch of curves errs (B, n) sharing the budgets (for bootstrap bands)."""
    c = np.asarray(budgets, float)
    e, a, rss, c0 = _profile(c, np.asarray(errs, float), ALPHAS)
    i = np.argmin(rss, axis=1)
    r = np.arange(len(i))
    return [{"E": float(e[j, i[j]]), "A": float(a[j, i[j]] * c0 ** ALPHAS[i[j]]), "alpha": float(ALPHAS[i[j]])}
            for j in r]


def predict(fit: dict, budgets) -> np.ndarray:
    return fit["E"] + fit["A"] * np.asarray(budgets, float) ** -fit["alpha"]


def _band(fits: list[dict], budgets) -> tuple[np.ndarray, np.ndarray]:
    if not fits:
        n = len(np.atleast_1d(budgets))
        return np.full(n, np.nan), np.full(n, np.nan)
    p = np.array([predict(f, budgets) for f in fits])
    lo, hi = np.percentile(p, BAND, axis=0)
    return lo, hi


def design_classes(index: pd.DataFrame) -> dict[str, np.ndarray]:
    """Masks of the design classes compared on the frontier: every cell, singles, ensembles, each k."""
    k = index["k"].to_numpy()
    out = {"best": np.ones(len(index), bool), "single": k == 1, "ensemble": k > 1}
    for kk in sorted(set(k[k > 1])):
        out[f"k={kk}"] = k == kk
    return {name: m for name, m in out.items() if m.any()}


def frontier_study(cells: pd.DataFrame, rule: str = "mean", n_boot: int = 300,
                   seed: int = 0) -> dict[str, pd.DataFrame]:
    """Best accuracy per budget and design class, fits, extrapolation, hold-out, predicted switchover and best
    allocation. Returns tables: frontier, fits, extrapolation, holdout, switchover, best_allocation."""
    index, s = resampled(cells, rule, n_boot=n_boot, seed=seed)
    top = float(index["budget"].max())
    targets = [top * f for f in EXTRAPOLATE]
    front, fits, extra, hold = [], [], [], []
    curves: dict[str, tuple] = {}
    for name, mask in design_classes(index).items():
        budgets, acc, best = envelope(index, s, mask)
        for i, c in enumerate(budgets):
            row = index.iloc[best[i]]
            front.append({"class": name, "budget": c, "acc": acc[i, 0], "width": row["width"], "k": row["k"],
                          "data_fraction": row.get("data_fraction", 1.0), "steps": row["steps"]})
        if len(budgets) < MIN_POINTS:
            continue
        fit = fit_power_law(budgets, 1 - acc[:, 0])
        boot = fit_many(budgets, (1 - acc[:, 1:]).T)
        curves[name] = (budgets, fit, boot)
        alphas = [b["alpha"] for b in boot]
        rows = progressive_holdouts(budgets, acc)
        scale = band_scale(rows)
        for r in rows:
            hold.append({"class": name, **r, "band_scale": scale})
        fits.append({"class": name, **fit, "alpha_lo": np.percentile(alphas, BAND[0]) if boot else np.nan,
                     "alpha_hi": np.percentile(alphas, BAND[1]) if boot else np.nan,
                     "budgets_fitted": len(budgets), "band_scale": scale})
        grid = np.concatenate([budgets, targets])
        lo, hi = _scaled(_band(boot, grid), predict(fit, grid), scale)
        for j, c in enumerate(grid):
            extra.append({"class": name, "budget": c, "observed_acc": acc[j, 0] if j < len(budgets) else np.nan,
                          "predicted_acc": 1 - predict(fit, c), "acc_lo": 1 - hi[j], "acc_hi": 1 - lo[j],
                          "extrapolated": c > top, "band_scale": scale})
    choice = allocation_holdout(index, s)
    return {"frontier": pd.DataFrame(front), "fits": pd.DataFrame(fits), "extrapolation": pd.DataFrame(extra),
            "holdout": pd.DataFrame(hold), "switchover": predicted_switchover(curves, top),
            "allocation_holdout": choice,
            "best_allocation": predicted_best_allocation(index, s, targets[1]) if choice_passed(choice)
            else pd.DataFrame()}


def progressive_holdouts(budgets, acc: np.ndarray) -> list[dict]:
    """For every budget with >= MIN_POINTS budgets below it: fit on those, predict it (point and band), against
    persistence (the budget just below). ``acc``: (budgets, 1 + B) point and bootstrap columns."""
    rows = []
    for j in range(MIN_POINTS, len(budgets)):
        hfit = fit_power_law(budgets[:j], 1 - acc[:j, 0])
        hboot = fit_many(budgets[:j], (1 - acc[:j, 1:]).T)
        hlo, hhi = _band(hboot, [budgets[j]])
        pred, obs = 1 - float(predict(hfit, budgets[j])), acc[j, 0]
        # The same race on every seed resample: how often does the fit beat persistence? (one run's win can flip)
        wins = [abs(1 - predict(f, budgets[j]) - acc[j, b + 1]) < abs(acc[j - 1, b + 1] - acc[j, b + 1])
                for b, f in enumerate(hboot)]
        rows.append({"held_out_budget": budgets[j], "fitted_on": j, "predicted_acc": pred, "acc_lo": 1 - hhi[0],
                     "acc_hi": 1 - hlo[0], "observed_acc": obs, "abs_error": abs(pred - obs),
                     "inside_band": bool(1 - hhi[0] <= obs <= 1 - hlo[0]),
                     "persistence_abs_error": abs(acc[j - 1, 0] - obs),  # baseline: "no further gain"
                     "p_fit_beats_persistence": float(np.mean(wins)) if wins else np.nan})
    return rows


def band_scale(rows: list[dict]) -> float:
    """The factor by which the bootstrap band must widen (around the prediction) for every hold-out to fall inside
    it; 1 when they all do, NaN with no hold-out (the band is then uncalibrated)."""
    if not rows:
        return float("nan")
    need = []
    for r in rows:
        half = (r["acc_hi"] - r["predicted_acc"]) if r["observed_acc"] > r["predicted_acc"] else \
            (r["predicted_acc"] - r["acc_lo"])
        need.append(r["abs_error"] / half if half > 0 else (np.inf if r["abs_error"] > 0 else 1.0))
    return float(max(1.0, *need))


def _scaled(band, center, scale: float):
    """(lo, hi) error bands widened by ``scale`` around ``center`` (NaN scale: as they are)."""
    lo, hi = band
    if not np.isfinite(scale) or scale == 1.0:
        return lo, hi
    return center - scale * (center - lo), center + scale * (hi - center)


def allocation_holdout(index: pd.DataFrame, s: np.ndarray) -> pd.DataFrame:
    """The allocation choice out of sample: for each budget with >= MIN_POINTS budgets below it, per-allocation laws
    fitted on those name the predicted best there; ``in_tie_set``: whether it is in the tie set measured at that
    budget (seed bootstrap columns of ``s``, best re-selected per resample, family-wise; ties.bootstrap_best)."""
    from tuneall.reporting.ties import bootstrap_best

    keys = [c for c in _keys(index) if index[c].nunique(dropna=False) > 1] or ["k"]
    budgets = np.sort(index["budget"].unique())
    rows = []
    for j in range(MIN_POINTS, len(budgets)):
        held = budgets[j]
        at = index.index[index["budget"] == held].to_numpy()
        preds = {}
        for key, g in index.groupby(keys, dropna=False):
            below = g[g["budget"] < held].sort_values("budget")
            if len(below) < MIN_POINTS or not (g["budget"] == held).any():
                continue
            fit = fit_power_law(below["budget"], 1 - s[below.index.to_numpy(), 0])
            preds[g.index[g["budget"] == held][0]] = 1 - float(predict(fit, held))
        if len(preds) < 2:
            continue
        vals = index.attrs["per_seed"][at]
        vals = vals[:, np.isfinite(vals).all(axis=0)]  # the repeats every cell at this budget has
        if vals.shape[1] < 2:
            continue
        res = bootstrap_best(vals[:, :, None], n_boot=1000)
        pos = {r: i for i, r in enumerate(at)}
        chosen = max(preds, key=preds.get)
        rows.append({"held_out_budget": held, "fitted_on": j, "allocations": len(preds),
                     "predicted_best": _label(index.loc[chosen], keys),
                     "observed_best": _label(index.loc[at[res["best"]]], keys),
                     "in_tie_set": bool(res["tied"][pos[chosen]]),
                     "p_best_of_predicted": float(res["p_best"][pos[chosen]]),
                     "tie_set_size": int(res["tied"].sum())})
    return pd.DataFrame(rows)


def choice_passed(check: pd.DataFrame) -> bool:
    """Whether every out-of-sample check of the allocation choice found the predicted best in the measured tie set
    (False when there was none to make)."""
    return bool(len(check)) and bool(check["in_tie_set"].all())


def _label(row, keys) -> str:
    return ", ".join(f"{k}={row[k]:g}" if isinstance(row[k], (int, float, np.number)) else f"{k}={row[k]}"
                     for k in keys)


def predicted_switchover(curves: dict, top: float, span: float = 1e4) -> pd.DataFrame:
    """Where the fitted ensemble curve(s) cross below the single model's error, searched up to ``span`` x the
    largest budget; 'crosses' with C* > largest budget is an extrapolated switchover."""
    if "single" not in curves:
        return pd.DataFrame()
    b1, f1, boot1 = curves["single"]
    rows = []
    for name in [n for n in curves if n == "ensemble" or n.startswith("k=")]:
        bk, fk, bootk = curves[name]
        grid = np.geomspace(max(b1.min(), bk.min()), top * span, 400)
        point, status = crossover_point(grid, predict(f1, grid) - predict(fk, grid))
        vals = [crossover_point(grid, predict(a, grid) - predict(b, grid)) for a, b in zip(boot1, bootk)]
        got = np.array([v for v, st in vals if st == "crosses"])
        lo, hi = np.percentile(got, BAND) if len(got) else (np.nan, np.nan)
        rows.append({"ensemble": name, "predicted_switchover": point, "status": status, "lo": lo, "hi": hi,
                     "p_cross": len(got) / len(vals) if vals else np.nan, "beyond_largest": point > top,
                     "searched_up_to": top * span})
    return pd.DataFrame(rows)


def predicted_best_allocation(index: pd.DataFrame, s: np.ndarray, target: float) -> pd.DataFrame:
    """Per-allocation fits (>= 3 budgets) extrapolated to ``target``: predicted accuracy, band, and how often each
    allocation is the predicted best over the bootstrap; plus the same from the budgets below the largest, checked
    against the allocation that actually won at the largest budget (hold-out)."""
    keys = [c for c in _keys(index) if index[c].nunique(dropna=False) > 1] or ["k"]
    top = index["budget"].max()
    rows = []
    for key, g in index.groupby(keys, dropna=False):
        g = g.sort_values("budget")
        if len(g) < MIN_POINTS:
            continue
        rows_i = g.index.to_numpy()
        fit = fit_power_law(g["budget"], 1 - s[rows_i, 0])
        boot = fit_many(g["budget"], (1 - s[rows_i, 1:]).T)
        lo, hi = _band(boot, [target])
        at_top = g["budget"].iloc[-1] == top
        held = fit_power_law(g["budget"].iloc[:-1], 1 - s[rows_i[:-1], 0]) if at_top and len(g) > MIN_POINTS else None
        rows.append({**dict(zip(keys, key if isinstance(key, tuple) else (key,))), "target_budget": target,
                     "predicted_acc": 1 - float(predict(fit, target)), "acc_lo": 1 - hi[0], "acc_hi": 1 - lo[0],
                     "_boot": [1 - float(predict(b, target)) for b in boot],
                     "holdout_predicted_acc_at_largest": 1 - float(predict(held, top)) if held else np.nan,
                     "observed_acc_at_largest": s[rows_i[-1], 0] if at_top else np.nan})
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    boots = np.array([r for r in out.pop("_boot")])  # (allocations, B)
    out["p_best"] = (np.bincount(boots.argmax(0), minlength=len(out)) / boots.shape[1]) if boots.size else np.nan
    out["predicted_best"] = out["predicted_acc"] == out["predicted_acc"].max()
    h = out["holdout_predicted_acc_at_largest"]
    out["holdout_predicted_best"] = (h == h.max()) if h.notna().any() else False
    o = out["observed_acc_at_largest"]
    out["observed_best_at_largest"] = (o == o.max()) if o.notna().any() else False
    return out.sort_values("predicted_acc", ascending=False, ignore_index=True)


def _last(holdout: pd.DataFrame, cls: str):
    """The hold-out of ``cls`` at the largest held-out budget (the fit on the most budgets), or None."""
    if holdout is None or holdout.empty or "class" not in holdout or not (holdout["class"] == cls).any():
        return None
    return holdout[holdout["class"] == cls].sort_values("held_out_budget").iloc[-1]


def fit_beats_persistence(holdout: pd.DataFrame, cls: str = "best") -> bool | None:
    """Did the power law fitted without the largest budget predict it better than persistence ("no further gain":
    the second-largest budget's accuracy), and in at least BEATS_LEVEL of the seed resamples (one run's win is not
    evidence)? None when the sweep has no hold-out for ``cls`` (fewer than MIN_POINTS + 1 budgets)."""
    r = _last(holdout, cls)
    if r is None:
        return None
    p = r.get("p_fit_beats_persistence", float("nan"))
    return bool(r["abs_error"] < r["persistence_abs_error"] and (p != p or p >= BEATS_LEVEL))


def holdout_statement(holdout: pd.DataFrame, cls: str = "best", choice: pd.DataFrame | None = None) -> str:
    """One paragraph on the hold-outs of ``cls``: predicted vs observed at the largest held-out budget, the fit's error
    against persistence's and in how many seed resamples it wins, the band's calibration, and (``choice``) whether
    the allocation choice passed its out-of-sample check. Said before any extrapolated number is shown."""
    r = _last(holdout, cls)
    if r is None:
        return (f"No hold-out: fewer than {MIN_POINTS + 1} budgets, so no power law was fitted on at least "
                f"{MIN_POINTS} budgets and tested on one it did not see; nothing is extrapolated.")
    n = int((holdout["class"] == cls).sum())
    band = "inside" if bool(r["inside_band"]) else "outside"
    head = (f"Hold-out ({cls} allocation per budget): fitted on the {int(r['fitted_on'])} smaller budgets, the power "
            f"law predicted {r['predicted_acc']:.4f} at C = {r['held_out_budget']:.3g} (band {r['acc_lo']:.4f}-"
            f"{r['acc_hi']:.4f}) against {r['observed_acc']:.4f} observed, {band} the band: error "
            f"{r['abs_error']:.4f} against {r['persistence_abs_error']:.4f} for persistence (\"no further gain\" "
            "from the budget below)")
    p = r.get("p_fit_beats_persistence", float("nan"))
    head += (f"; the fit wins in {100 * p:.0f}% of seed resamples" if p == p else "")
    scale = r.get("band_scale", float("nan"))
    head += (f". Bands are widened x{scale:.2f} so that all {n} hold-out(s) fall inside them." if scale == scale
             and scale > 1 else f". All {n} hold-out(s) fell inside the bootstrap band (not widened)."
             if scale == scale else ".")
    if choice is not None:
        head += " " + choice_statement(choice)
    if fit_beats_persistence(holdout, cls):
        return head + f" The fit beats persistence in at least {100 * BEATS_LEVEL:.0f}% of resamples."
    return (head + " The fit does not beat persistence reliably: read the extrapolated accuracies and switchovers "
            "as untested curve-fitting, not forecasts.")


def choice_statement(choice: pd.DataFrame) -> str:
    """One sentence on the out-of-sample check of the allocation choice (:func:`allocation_holdout`)."""
    if choice is None or choice.empty:
        return (f"The allocation choice could not be checked out of sample (no allocation has {MIN_POINTS} budgets "
                "below a held-out one): no extrapolated best allocation is shown.")
    parts = "; ".join(f"at C = {r.held_out_budget:.3g} (fitted on {r.fitted_on}) the predicted best "
                      f"({r.predicted_best}) is {'in' if r.in_tie_set else 'NOT in'} the measured tie set of "
                      f"{r.tie_set_size} (P(best) {r.p_best_of_predicted:.2f})" for r in choice.itertuples())
    verdict = ("passed: the extrapolated best allocation is shown" if choice_passed(choice)
               else "failed: no extrapolated best allocation is shown")
    return f"Allocation choice out of sample: {parts}; {verdict}."
