"""``--searcher halving``: budget-aware successive halving over the feasible allocations.

Rungs are fractions of each allocation's *own* steps T (the trial factory's, never recomputed), snapped to the
grid {4, 5, 6, 7} x 2^i that every k of an architecture shares: every candidate's members are trained to about
f x T and evaluated along the way, one Ray trial per architecture per rung training each member once for all its
alive k (:mod:`tuneall.tuning.rungs`). Comparing allocations at equal spent compute would favour small models
(the size-compute crossover is exactly that), so each candidate is judged by its *predicted* accuracy at its full T:
a saturating power law acc(s) = 1 - (E + A s^-alpha) (:mod:`tuneall.reporting.powerlaw`) fitted to its own anytime curve, per
seed. The uncertainty of a prediction is the standard error over seeds plus an extrapolation term (a share of the
distance between the prediction and the last observation: the further a curve is extrapolated, the less it is
trusted). A rung's short curve for a large k is often still at chance, so the prediction is floored by the
single-member accuracy at the allocation's full T read from (or predicted by) member 0 of its architecture, which
the rung has run much further (:func:`predict_with_floor`). Everything that could still be tied with the leader
(its mean within z combined standard errors of the leader's) is promoted, and at least the top 1/eta, but at most
CAP x 1/eta of the candidates (on a plateau any tied candidate is an answer; the ones left out are marked
``possibly_tied`` in ``halving.csv``). Members carry over
between rungs exactly: each rung continues the previous rung's members from their stored state
(:mod:`tuneall.store.records`), and the last rung runs the promoted points as full trials, continued the same way,
through the search's ordinary journal and report.

Rung results are appended to ``halving.jsonl`` in the results directory, one record per point, as each
architecture's trial finishes, so a resume keeps every finished rung trial and reruns only the architectures not
logged.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

# Partial rungs as fractions of each allocation's own T; the last is the full trial. Not 1/27: there the curves of
# large-k allocations (tens of steps) are still in their first transient and the fit is noise (measured: it
# promoted by steps per member, not by promise).
RUNGS = (1 / 9, 1 / 3)
ETA = 3  # at least 1/ETA of a rung's candidates go on
Z = 1.0  # combined standard errors within which a candidate counts as possibly tied with the leader
EXTRAPOLATION_SHARE = 0.5  # share of (prediction - last observation) counted as the prediction's uncertainty
CAP = 1.25  # at most CAP x ceil(n / ETA) candidates go on (rounded up), however many are possibly tied
RUNG_MIN_STEPS = 10  # a rung trains at least this many steps (or the budget's minimum per member, if fewer)
HALVING_LOG = "halving.jsonl"


def predict_full(steps, acc_by_seed, target: int) -> tuple[float, float]:
    """(mean, standard error) of the accuracy at ``target`` steps predicted from anytime curves ``acc_by_seed``
    (one list of accuracies per seed, at ``steps``)."""
    import numpy as np

    from tuneall.reporting.powerlaw import MIN_POINTS, fit_power_law, predict

    steps = np.asarray(steps, float)
    preds, last = [], []
    for acc in acc_by_seed:
        acc = np.asarray(acc, float)
        last.append(acc[-1])
        if len(steps) >= MIN_POINTS and steps[-1] < target:  # never an exactly determined fit
            fit = fit_power_law(steps, 1 - acc)
            p = 1 - float(predict(fit, target))
            preds.append(min(1.0, max(p, acc[-1] - 0.0)))  # a fitted curve never falls below what was seen
        else:
            preds.append(acc[-1])
    preds = np.asarray(preds)
    mean = float(preds.mean())
    se_seed = float(preds.std(ddof=1) / math.sqrt(len(preds))) if len(preds) > 1 else 0.0
    se_extra = EXTRAPOLATION_SHARE * abs(mean - float(np.mean(last)))
    return mean, math.sqrt(se_seed ** 2 + se_extra ** 2)


def member_floor(steps, acc_by_seed, target: int) -> tuple[float, float] | None:
    """(mean, se) of one member's accuracy at ``target`` steps from member 0's curve (``acc_by_seed`` at ``steps``):
    read off where it was evaluated at or past ``target`` (the latest evaluation not after it), else predicted from
    the curve like an ensemble's. None without a usable curve."""
    if not steps or not acc_by_seed or not all(len(a) == len(steps) for a in acc_by_seed):
        return None
    if steps[0] > target:  # every evaluation is past the target: no reading at or below it
        return None
    if steps[-1] >= target:
        at = max(i for i, s in enumerate(steps) if s <= target)
        vals = [a[at] for a in acc_by_seed]
        mean = sum(vals) / len(vals)
        se = (math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1) / len(vals)) if len(vals) > 1
              else 0.0)
        return mean, se
    return predict_full(steps, acc_by_seed, target) if len(steps) >= 3 else None


def predict_with_floor(m: dict) -> tuple[float, float]:
    """A rung trial's prediction at its full T: from its own ensemble curve, or the single-member floor from member
    0's longer curve (an ensemble of k members at T(k) is at least about as accurate as one of them), whichever is
    higher. Without the floor, allocations whose rung is still in the first transient (large k: few steps per
    member) are predicted near chance and dropped: measured on mnist1d, every k >= 6 was, with the best among
    them."""
    own = predict_full(m["steps"], m["curve"], m["full_steps"])
    floor = member_floor(m.get("member_steps_curve") or [], m.get("member_curve") or [], m["full_steps"])
    return floor if floor is not None and floor[0] > own[0] else own


def possibly_tied(preds: dict, z: float = Z) -> list:
    """Candidates whose predicted accuracy is within z combined standard errors of the leader's, best first.
    ``preds``: id -> (mean, se)."""
    if not preds:
        return []
    order = sorted(preds, key=lambda i: -preds[i][0])
    lead_mean, lead_se = preds[order[0]]
    return [i for i in order if preds[i][0] + z * math.sqrt(preds[i][1] ** 2 + lead_se ** 2) >= lead_mean]


def promote(preds: dict, eta: int = ETA, z: float = Z, cap: float = CAP) -> list:
    """Candidates that go on, best first: at least the top ceil(n / eta), and everything possibly tied with the
    leader up to ``cap`` x that many. The cap is what keeps a plateau affordable: where most candidates tie (a
    saturated task), any of them is an answer, and training them all to the full budget would cost a grid."""
    if not preds:
        return []
    order = sorted(preds, key=lambda i: -preds[i][0])
    keep = max(1, math.ceil(len(order) / eta))
    tied = set(possibly_tied(preds, z))
    return [i for n, i in enumerate(order) if n < keep or i in tied][:cap_of(len(order), eta, cap)]


def cap_of(n: int, eta: int = ETA, cap: float = CAP) -> int:
    """The most candidates out of ``n`` that a rung promotes: ceil(cap x ceil(n / eta))."""
    return max(1, math.ceil(cap * math.ceil(n / eta))) if n else 0


def rung_steps(full_steps: int, fraction: float, min_steps: int = 1) -> int:
    """A rung's steps: the fraction of the factory's T on the grid {4, 5, 6, 7} x 2^i (the nearest step, ratio at
    most 1.25 apart: :func:`tuneall.store.replay.nearest_grid_step`), but at least RUNG_MIN_STEPS (or the budget's
    minimum steps per member, if fewer) and never above T. On the grid, the rungs of every k of an architecture
    read its members at the same few steps, so a member is evaluated about four times an octave however many k
    read it (:mod:`tuneall.tuning.rungs`). Not the budget's minimum itself: at 50 steps, say, every allocation with
    T < 50/fraction would run most of its trial at the first rung, and large models at tight budgets (the ones
    halving should drop cheaply) are exactly those."""
    from tuneall.store.replay import nearest_grid_step

    return min(full_steps, max(min(min_steps, RUNG_MIN_STEPS), 1,
                               nearest_grid_step(int(round(full_steps * fraction)))))


def read_log(results_dir) -> list[dict]:
    """Finished rung trials recorded in ``halving.jsonl`` (damaged lines skipped)."""
    path = Path(results_dir) / HALVING_LOG
    if not path.exists():
        return []
    out = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict) and "rung" in rec and "point" in rec:
            out.append(rec)
    return out


def append_log(results_dir, record: dict) -> None:
    """One finished rung trial, appended on a fresh line and fsynced (as the journal does)."""
    path = Path(results_dir) / HALVING_LOG
    payload = (json.dumps(record, default=str) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        if os.fstat(fd).st_size:
            with open(path, "rb") as f:
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    payload = b"\n" + payload
        os.write(fd, payload)
        os.fsync(fd)
    finally:
        os.close(fd)


def is_rung(config: dict) -> bool:
    """Whether a trial's config is a rung trial's (``{"trial", "fraction"}``), not a full trial's (``{"point"}``)."""
    return "fraction" in config and "trial" in config


def point_id(point: dict) -> str:
    return json.dumps({k: point[k] for k in sorted(point) if not k.endswith("_index")}, sort_keys=True, default=str)


def select(points: list[dict], run_rung, results_dir, log=print, rungs=RUNGS,
           out_of_time=lambda: False) -> tuple[list[dict], list[dict]]:
    """Successive halving over ``points``, each rung run by ``run_rung(fraction, points) -> list of metrics`` (one
    per point) before the next starts: :func:`selection` driven to its end. Returns what it returns."""
    steps = selection(points, results_dir, log, rungs, out_of_time)
    try:
        _, f, todo = next(steps)
        while True:
            _, f, todo = steps.send(run_rung(f, todo))
    except StopIteration as end:
        return end.value


def selection(points: list[dict], results_dir, log=print, rungs=RUNGS, out_of_time=lambda: False):
    """Successive halving over ``points`` as a generator: it yields ``(rung, fraction, todo)`` for each rung with points
    left to run and is sent their metrics (one per ``todo`` point: ``steps``, ``full_steps``, ``curve`` = per-seed
    accuracy lists at ``steps``, member-step counts); it returns (the points promoted to full trials, best first;
    one row per rung trial). A generator, so one Ray Tune run can hold the rungs and the full trials alike
    (:class:`tuneall.tuning._searchers.Halving`). Finished rung trials found in ``halving.jsonl`` are not asked
    for again. ``out_of_time()`` true before a rung (a time budget spent): no further rung starts, and the
    candidates left go on best-first."""
    done = {(r["rung"], point_id(r["point"])): r for r in read_log(results_dir)}
    alive, rows = list(points), []
    for i, f in enumerate(rungs):
        todo = [p for p in alive if (i, point_id(p)) not in done]
        if todo and out_of_time():
            log(f"tuneall: halving rung {i + 1}/{len(rungs) + 1} not started: the time budget is spent; "
                f"{len(alive)} candidate(s) go on, best first")
            break
        results = (yield i, f, todo) if todo else []
        logged = {(r["rung"], point_id(r["point"])) for r in read_log(results_dir)}  # the runner logs as they end
        for p, m in zip(todo, results):
            rec = {"rung": i, "fraction": f, "point": p, "metrics": m}
            if (i, point_id(p)) not in logged:
                append_log(results_dir, rec)
            done[(i, point_id(p))] = rec
        preds = {}
        for p in alive:
            m = done[(i, point_id(p))]["metrics"]
            if m.get("status") == "ok":
                preds[point_id(p)] = predict_with_floor(m)
            rows.append({"rung": i, "fraction": f, **p, **{k: m.get(k) for k in (
                "status", "member_steps_trained", "member_steps_reused")},
                "predicted": preds.get(point_id(p), (math.nan, math.nan))[0],
                "predicted_se": preds.get(point_id(p), (math.nan, math.nan))[1]})
        keep, tied = set(promote(preds)), set(possibly_tied(preds))
        n_before = len(alive)
        for p, r in zip(alive, rows[-n_before:]):
            r["possibly_tied"], r["promoted"] = point_id(p) in tied, point_id(p) in keep
        alive = sorted([p for p in alive if point_id(p) in keep], key=lambda p: -preds[point_id(p)][0])
        over = len(tied - keep)
        log(f"tuneall: halving rung {i + 1}/{len(rungs) + 1} ({f:.3g} of each allocation's steps): "
            f"{len(alive)} of {n_before} promoted (the top 1/{ETA} and those possibly tied with the leader at the "
            f"full budget" + (f"; {over} more possibly tied, beyond the cap of {cap_of(n_before)}"
                              if over else "") + ")")
    return alive, rows


__all__ = ["RUNGS", "ETA", "CAP", "predict_full", "member_floor", "predict_with_floor", "possibly_tied", "promote",
           "cap_of", "rung_steps", "select", "selection", "is_rung", "point_id", "read_log", "append_log", "HALVING_LOG"]
