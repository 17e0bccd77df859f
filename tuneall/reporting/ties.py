"""Which allocations are statistically tied with the best, and which trials are degenerate (at chance).

Torch-free: numpy, scipy and pandas are imported inside the functions, so importing this module costs nothing.

The tie set
-----------
A search names the allocation with the best mean over a few seeds (3 by default). With so few seeds the
runner-up is often within noise, and naming one winner overstates what the numbers show. :func:`tie_set` reports
every allocation that the best is *not* separated from.

Test: a one-sided paired t-test of the best against each other allocation, over the seeds they share, at
alpha = 0.05 (:data:`ALPHA`). For allocation j and repeat r, d_r = x_best,r - x_j,r (sign-flipped when the metric is
minimised, so that d_r > 0 means the best did better); H0: E[d] <= 0, H1: E[d] > 0; t = mean(d) / (sd(d) / sqrt(n))
with n - 1 degrees of freedom. j is tied with the best when p >= alpha.

Why paired, and why this test for few seeds:

- Pairing is valid because repeat r of *every* allocation uses the same seeds: member i of repeat r has seed
  ``base + r * SEED_STRIDE + i`` (:mod:`tuneall.planning.factory`), which fixes its initialisation stream and its data order.
  Repeat r of two allocations therefore shares its randomness (common random numbers), and the paired difference
  removes the part of seed-to-seed variation the two share, which an unpaired test would count as noise.
- The t-test is exact under normal differences and needs only 2 seeds; rank tests (Wilcoxon, sign) cannot reach
  p < 0.05 one-sided with fewer than 5 pairs (the smallest p with n pairs is 2^-n), so with 3 seeds they would tie
  everything whatever the data. The t-test's normality assumption is the price; with 3 seeds it cannot be checked.
- With 1 shared seed there is no estimate of the noise at all: nothing can be separated, every allocation is
  reported tied and the description says why. With 2 seeds the test has 1 degree of freedom and separates only
  differences that are large and consistent.
- If every paired difference is the same (sd = 0), the comparison has no noise estimate of its own; with 2-3 seeds
  and accuracies quantised at 1/n_test this happens by coincidence (mnist1d, 2 seeds: a runner-up 0.002 behind on
  both seeds). Calling that separated would be wrong, so the noise is then taken from the other comparisons: the
  pooled standard deviation of their paired differences (degrees of freedom summed). With no other comparison to
  pool from, a nonzero constant difference is reported tied with p NaN; a zero difference is tied with p = 1.

Caveats, said plainly: each comparison is at alpha with no multiplicity correction (more comparisons, more
chance one runner-up is called separated by luck; a correction would only make the tie set larger); and the best is
chosen as the maximum of noisy means (winner's curse), which biases its differences upwards, so the tie set is if
anything too small, never too large. Diverged, infeasible and failed trials, repeated points (``repeat_of``) and
trials passed in ``exclude`` (e.g. degenerate ones) never enter the comparison.

Degenerate trials
-----------------
A trial whose ensemble accuracy is at or below chance is not a way to spend the budget (it learned nothing, or
collapsed to one class), whatever its cost: :func:`degenerate_mask` flags it, and the report never presents it as
best. The line is chance 1/C plus a margin of :data:`CHANCE_MARGIN_SE` binomial standard errors of an at-chance
classifier on the test set, sqrt(p0 (1 - p0) / n_test): a classifier that ignores its input scores Binomial(n_test,
p0) / n_test (3 SE above p0 about once in 700), and a constant predictor scores its class's frequency in the test
set, which is 1/C in a stratified split (digits) and, for a random split into 10 classes, at most about 2 SE above
it (the largest of 10 class frequencies). For digits (360 test inputs, 10 classes) the line is
0.100 + 0.047; mnist1d (1,000): 0.128; CIFAR-10 (10,000): 0.109. Without a test-set size the margin is
:data:`CHANCE_MARGIN_ABS` (0.02).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

ALPHA = 0.05
CHANCE_MARGIN_SE = 3.0  # binomial standard errors of an at-chance classifier above 1/C
CHANCE_MARGIN_ABS = 0.02  # margin when the test-set size is unknown

TIE_COLUMNS = ["trial_id", "mean", "diff_to_best", "n_seeds", "t_stat", "p_value", "tied"]


def tie_set(trials, metric: str = "ensemble_acc", direction: str = "max", alpha: float = ALPHA,
            exclude: Iterable[str] = ()):
    """Allocations statistically tied with the best, from the per-repeat trials table.

    ``trials`` has one row per trial and repeat (columns ``trial_id``, ``repeat``, ``status``, ``metric``; optional
    ``repeat_of``). ``direction`` is "max" or "min" for ``metric``. Returns ``(table, description)``: one row per
    compared trial, best first, with columns :data:`TIE_COLUMNS` (``diff_to_best`` = mean - best's mean, in the
    metric's units; ``n_seeds`` = seeds shared with the best; the best's own row has tied True and p NaN), and a
    one-line description of the test (or of why nothing could be tested). See the module docstring for the test.
    """
    import numpy as np
    import pandas as pd
    from scipy import stats

    if direction not in ("max", "min"):
        raise ValueError(f"direction must be 'max' or 'min', but got {direction!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), but got {alpha!r}")
    ok = trials[trials["status"] == "ok"] if "status" in trials else trials
    if "repeat_of" in ok:  # a re-proposed point is the same allocation: counted once
        ok = ok[ok["repeat_of"].isna()]
    ok = ok[~ok["trial_id"].astype(str).isin({str(t) for t in exclude})]
    ok = ok[np.isfinite(pd.to_numeric(ok[metric], errors="coerce").to_numpy(float))] if metric in ok else ok.iloc[:0]
    empty = pd.DataFrame(columns=TIE_COLUMNS)
    if ok.empty:
        return empty, "no successful trial to compare"
    ok = ok.assign(trial_id=ok["trial_id"].astype(str), repeat=ok["repeat"].fillna(0).astype(int))
    wide = ok.pivot_table(index="trial_id", columns="repeat", values=metric, aggfunc="first", sort=False)
    means = ok.groupby("trial_id", sort=False)[metric].mean()
    sign = 1.0 if direction == "max" else -1.0
    best = (sign * means).idxmax()
    diffs = {tid: (sign * (wide.loc[best] - wide.loc[tid])).dropna().to_numpy(float) for tid in means.index
             if tid != best}
    varying = [d for d in diffs.values() if len(d) >= 2 and d.std(ddof=1) > 1e-12]
    pooled_df = sum(len(d) - 1 for d in varying)
    pooled_sd = math.sqrt(sum((len(d) - 1) * d.var(ddof=1) for d in varying) / pooled_df) if pooled_df else np.nan
    rows = []
    for tid, mean in means.items():
        row = {"trial_id": tid, "mean": float(mean), "diff_to_best": float(mean - means[best])}
        if tid == best:
            rows.append({**row, "n_seeds": int(wide.loc[tid].notna().sum()), "t_stat": np.nan, "p_value": np.nan,
                         "tied": True})
            continue
        d = diffs[tid]
        n = len(d)
        if n < 2:
            t, p = np.nan, np.nan
        elif d.std(ddof=1) <= 1e-12:  # constant difference: no noise estimate of its own (module docstring)
            if abs(d.mean()) <= 1e-12:
                t, p = np.nan, 1.0
            elif pooled_df:
                t = float(d.mean() / (pooled_sd / math.sqrt(n)))
                p = float(stats.t.sf(t, df=pooled_df))
            else:
                t, p = np.nan, np.nan
        else:
            t = float(d.mean() / (d.std(ddof=1) / math.sqrt(n)))
            p = float(stats.t.sf(t, df=n - 1))
        rows.append({**row, "n_seeds": n, "t_stat": t, "p_value": p, "tied": bool(np.isnan(p) or p >= alpha)})
    table = pd.DataFrame(rows, columns=TIE_COLUMNS)
    table = table.sort_values("mean", ascending=direction == "min", kind="stable", ignore_index=True)
    others = table[table["trial_id"] != best]
    seeds = sorted(set(others["n_seeds"])) if len(others) else [int(table["n_seeds"].iloc[0])]
    return table, _describe(seeds, alpha, len(table))


def _describe(seeds: list[int], alpha: float, n_trials: int) -> str:
    if max(seeds) < 2:
        return (f"{max(seeds)} seed per allocation: a paired test needs at least 2, so no allocation can be "
                f"separated from the best (all {n_trials} reported tied)")
    over = f"{seeds[0]} seeds" if len(seeds) == 1 else f"{seeds[0]}-{seeds[-1]} shared seeds"
    note = "; allocations sharing fewer than 2 seeds with the best are reported tied" if min(seeds) < 2 else ""
    return f"one-sided paired t-test over {over}, alpha {alpha:g}{note}"


def chance_threshold(num_classes: int, n_test: int | None = None) -> float:
    """Accuracy at or below which a trial is degenerate: 1/C plus CHANCE_MARGIN_SE binomial standard errors of an
    at-chance classifier on ``n_test`` inputs (CHANCE_MARGIN_ABS when ``n_test`` is unknown). See module docstring."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2, but got {num_classes!r}")
    p0 = 1.0 / num_classes
    if n_test is None:
        return p0 + CHANCE_MARGIN_ABS
    if n_test < 1:
        raise ValueError(f"n_test must be >= 1, but got {n_test!r}")
    return p0 + CHANCE_MARGIN_SE * math.sqrt(p0 * (1 - p0) / n_test)


def degenerate_mask(accuracy, num_classes: int, n_test: int | None = None):
    """True where ``accuracy`` (a pandas Series, e.g. ``ensemble_acc_mean``) is at or below
    :func:`chance_threshold`; False where it is NaN (a trial that never trained is not called degenerate)."""
    import pandas as pd

    acc = pd.to_numeric(accuracy, errors="coerce")
    return (acc <= chance_threshold(num_classes, n_test)).fillna(False).astype(bool)
