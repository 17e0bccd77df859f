"""Which allocations are statistically tied with the best, how likely each is the best, and which trials are degenerate.

Torch-free: numpy and pandas are imported inside the functions, so importing this module costs nothing.

The tie set
-----------
A search names the allocation with the best mean over a few seeds. With so few seeds the runner-up is often within
noise, and naming one winner overstates what the numbers show. :func:`tie_set` answers two questions a user can act
on: how likely is each allocation the best (P(best)), and which allocations can the data not separate from the best.

Why not the paired t-test over seeds it replaces (numbers from the audit, issue 24):

- a one-sided paired t over 3 seeds has 32 % power at a difference of one SD;
- it ignores the validation examples, which add as much noise as the seeds (the SD of a difference between two
  allocations is 0.42-1.01 points from examples vs 0.12-0.92 from seeds on mnist1d);
- each runner-up was tested at alpha with no multiplicity correction and against a best picked as the maximum of
  noisy means: with 12 truly equal allocations it wrongly separated at least one in 79 % of searches;
- with 2 seeds a runner-up 34.6 points behind was "tied" (p = 0.053) while digits runs tied everything and still
  named a "best".

The method: a two-way paired bootstrap over seeds x validation examples (:func:`bootstrap_best`).

- Each resample draws seeds with replacement *and* validation examples with replacement, the same draw for every
  allocation (repeat r of every allocation shares its seeds, and every allocation is scored on the same examples:
  both pairings remove shared noise). The allocation's score in a resample is its mean per-example metric over the
  drawn seeds and examples. A trial reports its ensemble's right/wrong per validation example per repeat
  (``val_correct``, :mod:`tuneall.core.bitvec`); without those (old tables, a metric other than validation
  accuracy) the resampling is over seeds only and the description says so.
- **P(best)**: the share of :data:`N_BOOT` resamples in which the allocation has the best score, the best
  re-selected in each resample (exact ties share the resample). On a 9-cell mnist1d grid this gave 0.89 / 0.07 /
  0.03 for the top three, agreeing with the t-test's order: that is the answer a user can act on.
- **Separated from the best** (multiplicity and the pick handled): for allocation j the gap to the observed best,
  studentised by the bootstrap SD of that paired difference, must exceed a critical value c taken from the
  resamples themselves: in each resample the best is re-selected, and c is the 1 - alpha quantile (alpha =
  :data:`ALPHA`) of the *largest* centred, studentised gap from that resample's best to any other allocation. The
  maximum covers every comparison at once (family-wise, not per runner-up) and the re-selection reproduces the
  winner's curse of picking the best by the same numbers, so with all allocations truly equal the chance that any is
  called separated stays near alpha (tests/test_ties.py simulates 12 equal allocations). Everything not separated is
  **tied**.
- **Undetermined**: when the top allocation is best in fewer than :data:`P_DETERMINED` (half) of the resamples,
  the data cannot choose; the summary and the final line say "undetermined" and list the tie set with P(best)
  instead of presenting one best. Saturated metrics (every allocation right on every example) share P(best)
  equally and are undetermined.
- One seed: seeds cannot be resampled, so only the examples' noise is measured; the description says that the
  seed-to-seed noise is unmeasured (it is as large as the examples' on mnist1d), so separations then lean optimistic.
- The seed bootstrap with 2-5 seeds under-states the seeds' variance by (n - 1) / n; the family-wise critical value
  (about 3 SD with 12 allocations) more than pays for it in the simulation.

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
N_BOOT = 2000  # resamples: P(best) to +-0.011 at 0.5, the critical value's 95 % quantile from 100 resamples above it
P_DETERMINED = 0.5  # the top allocation must be best in at least half of the resamples to be named the best
CHANCE_MARGIN_SE = 3.0  # binomial standard errors of an at-chance classifier above 1/C
CHANCE_MARGIN_ABS = 0.02  # margin when the test-set size is unknown

TIE_COLUMNS = ["trial_id", "mean", "diff_to_best", "n_seeds", "n_examples", "p_best", "z_gap", "tied"]


def bootstrap_best(x, direction: str = "max", alpha: float = ALPHA, n_boot: int = N_BOOT, seed: int = 0) -> dict:
    """P(best) and separation from the best for ``x`` of shape (allocations, seeds, examples): per-example metric
    values (1/0 for right/wrong), paired on both axes; examples axis of length 1 for per-seed means only.

    Returns {"mean", "p_best", "z_gap", "tied"} (arrays over allocations), "best" (index of the best mean), "critical"
    (the family-wise critical value of the studentised gap) and "determined" (P(best) of the best >= P_DETERMINED).
    See the module docstring for the method.
    """
    import numpy as np

    if direction not in ("max", "min"):
        raise ValueError(f"direction must be 'max' or 'min', but got {direction!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), but got {alpha!r}")
    sign = 1.0 if direction == "max" else -1.0
    x = sign * np.asarray(x, dtype=float)
    if x.ndim != 3 or not x.size or not np.isfinite(x).all():
        raise ValueError(f"x must be a finite (allocations, seeds, examples) array, but got shape {x.shape}")
    m, n, big_n = x.shape
    rng = np.random.default_rng(seed)
    w = rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(float)  # seed weights per resample
    v = rng.multinomial(big_n, np.full(big_n, 1.0 / big_n), size=n_boot).astype(float)  # example weights
    per_seed = (x.reshape(m * n, big_n) @ v.T).reshape(m, n, n_boot)
    boot = np.einsum("asb,bs->ab", per_seed, w) / (n * big_n)  # (m, B): each allocation's score per resample
    mean = x.mean(axis=(1, 2))
    top = np.isclose(boot, boot.max(axis=0), rtol=0, atol=1e-12)
    p_best = (top / top.sum(axis=0)).sum(axis=1) / n_boot  # exact ties share the resample
    best = int(np.argmax(mean))
    cov = np.atleast_2d(np.cov(boot))  # the SD of every paired difference, without an (m, m, B) array
    var = np.diag(cov)[:, None] + np.diag(cov)[None, :] - 2 * cov
    sd = np.sqrt(np.clip(var, 0, None))
    sd = np.where(sd > 1e-12, sd, np.inf)  # a difference that never varies is never separated
    cols = np.arange(n_boot)
    pick = boot.argmax(axis=0)  # the best, re-selected in each resample
    centred = (boot[pick, cols][:, None] - boot.T) - (mean[pick][:, None] - mean[None, :])  # (B, m)
    z = centred / sd[pick]
    z[cols, pick] = -np.inf
    critical = float(np.quantile(z.max(axis=1), 1 - alpha)) if m > 1 else math.inf
    z_gap = (mean[best] - mean) / sd[best]
    z_gap[best] = np.nan
    tied = ~(z_gap > critical)
    if n * big_n == 1:  # one seed, one number per allocation: nothing to resample, no probability to give
        p_best = np.full(m, np.nan)
    return {"mean": sign * mean, "p_best": p_best, "z_gap": z_gap, "tied": tied, "best": best,
            "critical": critical, "determined": bool(p_best[best] >= P_DETERMINED)}  # NaN >= 0.5 is False


def _values(ok, metric: str, ids: list, repeats: list):
    """(array (m, n, N), per-example?): the validation right/wrong bits when every compared cell has them and the
    metric is validation accuracy, else the per-repeat metric (N = 1)."""
    import numpy as np

    from tuneall.core.bitvec import CORRECT_COLUMN, decode

    cell = ok.set_index(["trial_id", "repeat"])
    if metric == "val_ensemble_acc" and CORRECT_COLUMN in ok:
        try:
            bits = [[decode(cell.loc[(t, r), CORRECT_COLUMN]) for r in repeats] for t in ids]
            if len({b.size for row in bits for b in row}) == 1:
                return np.asarray(bits, dtype=float), True
        except (ValueError, KeyError, TypeError):
            pass
    vals = [[float(cell.loc[(t, r), metric]) for r in repeats] for t in ids]
    return np.asarray(vals, dtype=float)[..., None], False


def tie_set(trials, metric: str = "val_ensemble_acc", direction: str = "max", alpha: float = ALPHA,
            exclude: Iterable[str] = (), n_boot: int = N_BOOT, seed: int = 0):
    """Allocations tied with the best and each one's P(best), from the per-repeat trials table.

    ``trials`` has one row per trial and repeat (``trial_id``, ``repeat``, ``status``, ``metric``; optional
    ``repeat_of`` and ``val_correct``). Returns ``(table, description)``: one row per compared trial, best first,
    columns :data:`TIE_COLUMNS` (``diff_to_best`` in the metric's units; ``z_gap``: the gap in bootstrap SDs; a
    trial lacking one of the best's seeds is not compared: tied, P(best) NaN); ``table.attrs`` has ``determined``,
    ``critical`` and ``p_best`` of the best. See the module docstring for the method.
    """
    import numpy as np
    import pandas as pd

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
        empty.attrs.update(determined=False, critical=math.nan, p_best=math.nan)
        return empty, "no successful trial to compare"
    ok = ok.assign(trial_id=ok["trial_id"].astype(str), repeat=ok["repeat"].fillna(0).astype(int))
    ok = ok.drop_duplicates(["trial_id", "repeat"])
    means = ok.groupby("trial_id", sort=False)[metric].mean()
    first = (means if direction == "max" else -means).idxmax()
    repeats = sorted(ok.loc[ok["trial_id"] == first, "repeat"])
    has = ok.groupby("trial_id", sort=False)["repeat"].agg(lambda r: set(repeats) <= set(r))
    ids = [t for t in means.index if has[t]]
    x, per_example = _values(ok, metric, ids, repeats)
    res = bootstrap_best(x, direction, alpha, n_boot, seed)
    best = ids[res["best"]]
    rows = [{"trial_id": t, "mean": float(means[t]), "diff_to_best": float(means[t] - means[best]),
             "n_seeds": len(repeats), "n_examples": x.shape[2] if per_example else 0,
             "p_best": float(res["p_best"][i]), "z_gap": float(res["z_gap"][i]), "tied": bool(res["tied"][i])}
            for i, t in enumerate(ids)]
    rows += [{"trial_id": t, "mean": float(means[t]), "diff_to_best": float(means[t] - means[best]),
              "n_seeds": int((ok["trial_id"] == t).sum()), "n_examples": 0, "p_best": math.nan, "z_gap": math.nan,
              "tied": True} for t in means.index if not has[t]]
    table = pd.DataFrame(rows, columns=TIE_COLUMNS)
    table = table.sort_values(["mean", "p_best"], ascending=[direction == "min", False], kind="stable",
                              ignore_index=True)
    table.attrs.update(determined=res["determined"], critical=res["critical"], p_best=float(res["p_best"][res["best"]]))
    return table, _describe(len(repeats), x.shape[2] if per_example else 0, alpha, len(ids), len(means) - len(ids))


def _describe(seeds: int, examples: int, alpha: float, compared: int, left_out: int) -> str:
    over = (f"{seeds} seed{'s' if seeds != 1 else ''} x {examples} validation examples" if examples
            else f"{seeds} seed{'s' if seeds != 1 else ''} only (no per-example predictions recorded)")
    note = "; 1 seed: the seed-to-seed noise is unmeasured, separations lean optimistic" if seeds < 2 else ""
    if seeds < 2 and not examples:
        note = "; 1 seed and no per-example predictions: nothing can be separated"
    rest = f"; {left_out} allocation(s) lacking the best's seeds reported tied" if left_out else ""
    return (f"paired bootstrap over {over}, best re-selected per resample, family-wise alpha {alpha:g} over "
            f"{compared} allocations{note}{rest}")

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
