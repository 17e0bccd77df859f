"""Running a trial plan: train its k members for every repeat, evaluate members and ensemble, aggregate over seeds."""

from __future__ import annotations

import math
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

from tuneall.training import metrics as M
from tuneall.core.bitvec import CORRECT_COLUMN, encode
from tuneall.core.config import VAL_PREFIX, check_rule
from tuneall.planning.factory import TrialPlan
from tuneall.training.member import MemberResult
from tuneall.training.trainers import Trainer, select_trainer, train_sequential

STATUSES = ("ok", "infeasible", "diverged", "failed")


CURVE_POINTS = 6  # anytime evaluations per member (log-spaced steps), for time-to-accuracy


@dataclass
class TrialResult:
    plan: TrialPlan
    status: str  # "ok" or "diverged" (infeasible points never train; failures are recorded by the search)
    summary: dict[str, float]  # M.aggregate over repeats: <metric>_mean / _std / _worst
    repeats: list[dict[str, float]]  # ensemble metrics per repeat
    members: list[dict] = field(default_factory=list)  # one row per (repeat, member)
    costs: dict[str, float | str] = field(default_factory=dict)  # seed 001's cost metrics, see cost_metrics()
    curve: list[tuple[int, float]] = field(default_factory=list)  # (step, ensemble accuracy mean over repeats)
    train_time_s: float = 0.0  # sum of member training times
    wall_time_s: float = 0.0
    # (seed, CPU state dict at the plan's steps) per member, in repeat order; None where the trainer kept none
    weights: list[tuple[int, dict]] | None = field(default=None, repr=False)

    def metrics(self) -> dict:
        """Flat metrics for reporting to Ray Tune and for the trials table."""
        return {
            "status": self.status,
            **self.summary,
            **self.costs,
            "n_diverged": sum(m["diverged"] for m in self.members),
            "train_time_s": self.train_time_s,
            "wall_time_s": self.wall_time_s,
        }


def curve_steps(steps: int, n: int = CURVE_POINTS) -> tuple[int, ...]:
    """The anytime curve's steps: the powers of two in [steps / 2^(n - 1), steps), and ``steps`` (``n`` in all).

    Powers of two rather than fractions of ``steps``: the same steps whatever the budget, so a member a run at one
    budget evaluated along its curve already holds another budget's curve (a member store shared across budgets
    then replays only the trials' own T: :mod:`tuneall.store.replay`)."""
    lo = steps / 2 ** max(0, n - 1)
    return tuple(sorted({1 << e for e in range(max(1, int(steps).bit_length())) if lo <= (1 << e) < steps}
                        | {int(steps)}))


def cost_metrics(plan: TrialPlan, members: list[dict], n_train: int) -> dict[str, float | str]:
    """Seed 001's costs: training time per step and per epoch, inference latency, peak training memory.

    Members of an ensemble run one after another, so the ensemble's inference latency is the sum of its members'.
    """
    ok = [m for m in members if not m["diverged"] and m["steps_done"]]
    if not ok:
        return {}
    per_step = sum(m["train_time_s"] / m["steps_done"] for m in ok) / len(ok)
    steps_per_epoch = max(1, n_train // min(plan.train.batch_size, n_train))
    repeats = {m["repeat"] for m in ok}
    latency = sum(m["latency_s_per_image"] for m in ok) / len(repeats)
    return {
        "time_per_step_s": per_step,
        "time_per_epoch_s": per_step * steps_per_epoch,
        "epochs": plan.steps / steps_per_epoch,
        "latency_ms_per_image": 1e3 * latency,
        "peak_mem_mb": max(m["peak_mem_bytes"] for m in ok) / 2**20,
        "mem_kind": ok[0]["mem_kind"],
    }


def _logprobs_or_uniform(r: MemberResult, step: int, n: int, c: int, split: str = "test") -> torch.Tensor:
    # A diverged member contributes no information: a uniform prediction keeps the ensemble metrics finite.
    p = (r.val_logprobs if split == "val" else r.test_logprobs).get(step)
    return p if p is not None and torch.isfinite(p).all() else torch.full((n, c), -math.log(c))


def evaluate_members(
    results: list[MemberResult], labels: torch.Tensor, num_classes: int, step: int, rule: str, split: str = "test"
) -> tuple[dict[str, float], list[dict]]:
    """Ensemble metrics and per-member rows of k members at ``step`` on ``split`` ('test' or 'val')."""
    n = labels.shape[0]
    logp = torch.stack([_logprobs_or_uniform(r, step, n, num_classes, split) for r in results])
    rows = [
        {"member": i, "seed": r.seed, **M.member_metrics(logp[i], labels), "steps_done": r.steps_done,
         "diverged": r.diverged, "final_loss": r.final_loss, "train_time_s": r.train_time_s,
         "latency_s_per_image": r.latency_s_per_image, "peak_mem_bytes": r.peak_mem_bytes, "mem_kind": r.mem_kind}
        for i, r in enumerate(results)
    ]
    return M.evaluate_ensemble(logp, labels, rule), rows


def evaluate_splits(results: list[MemberResult], data, step: int, rule: str) -> tuple[dict[str, float], list[dict]]:
    """Ensemble metrics on test (unprefixed) and validation (``val_``-prefixed), and per-member rows with both."""
    ens, rows = evaluate_members(results, data.y_test, data.info.num_classes, step, rule)
    if getattr(data, "y_val", None) is not None:
        val, val_rows = evaluate_members(results, data.y_val, data.info.num_classes, step, rule, split="val")
        ens.update({VAL_PREFIX + k: v for k, v in val.items()})
        for row, v in zip(rows, val_rows):
            row.update({VAL_PREFIX + k: v[k] for k in ("acc", "nll", "ece")})
    return ens, rows


@contextmanager
def with_threads(threads: int):
    """torch's intra-op threads set to ``threads`` for the block, restored after (a search's trial, ``tuneall train``
    and a sweep's job train with the same count: one allocation, one number)."""
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, int(threads)))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def val_correct(results: list[MemberResult], data, step: int, rule: str) -> str | None:
    """The ensemble's right/wrong per validation example at ``step``, encoded (:mod:`tuneall.core.bitvec`), for the
    tie set's resampling of examples; None without a validation split."""
    if getattr(data, "y_val", None) is None:
        return None
    n, c = data.y_val.shape[0], data.info.num_classes
    logp = torch.stack([_logprobs_or_uniform(r, step, n, c, "val") for r in results])
    return encode((M.combine(logp, rule).argmax(dim=1) == data.y_val.to(logp.device)).cpu().numpy())


def run_trial(plan: TrialPlan, data, rule: str = "mean", progress=None, trainer: Trainer = train_sequential,
              members: str | None = None) -> TrialResult:
    """Train and evaluate every member of ``plan`` on ``data`` (a :class:`tuneall.data.Dataset`).

    ``trainer(plan, data, progress, eval_steps)`` returns member results per repeat (it may train them in
    parallel); members are also evaluated at :func:`curve_steps` for the anytime accuracy curve. ``members``, if
    given, picks the trainer by name instead (see :func:`select_trainer`).
    """
    if members is not None:
        trainer = select_trainer(members)
    check_rule(rule)
    if abs(data.data_fraction - plan.allocation.data_fraction) > 1e-12:
        raise ValueError(f"data has data_fraction={data.data_fraction}, plan wants {plan.allocation.data_fraction}")
    t0 = time.perf_counter()
    steps_curve = curve_steps(plan.steps)
    repeats, members, curves, weights, correct = [], [], [], [], []
    for r, results in enumerate(trainer(plan, data, progress, steps_curve)):
        weights += [(m.seed, m.weights.get(plan.steps)) for m in results]
        ens, rows = evaluate_splits(results, data, plan.steps, rule)
        repeats.append(ens)
        correct.append(val_correct(results, data, plan.steps, rule))
        members += [{"repeat": r, **row} for row in rows]
        curves.append([evaluate_members(results, data.y_test, data.info.num_classes, s, rule)[0]["ensemble_acc"]
                       for s in steps_curve])
    diverged = any(m["diverged"] for m in members)
    summary = M.aggregate(repeats)  # numbers only: the correctness bits join the repeats after
    repeats = [{**ens, CORRECT_COLUMN: c} if c is not None else ens for ens, c in zip(repeats, correct)]
    return TrialResult(
        plan=plan,
        status="diverged" if diverged else "ok",
        summary=summary,
        repeats=repeats,
        members=members,
        costs=cost_metrics(plan, members, len(data.x_train)),
        curve=[(s, sum(c[i] for c in curves) / len(curves)) for i, s in enumerate(steps_curve)],
        train_time_s=sum(m["train_time_s"] for m in members),
        wall_time_s=time.perf_counter() - t0,
        weights=weights if all(w is not None for _, w in weights) else None,
    )
