"""One search, one answer: the rule of tuneall.reporting.choice names the allocation that the final line, summary.md,
frontier.csv row 0, the saved ensemble, Optuna's best_trial and Ray's get_best_result all name."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout

import pandas as pd
import pytest

from tuneall.core import choice
from tuneall.reporting import choice as rule
from tuneall.reporting.frontier import best_allocation, best_per, frontier
from tuneall.core.progress import SearchProgress

OBJ = (("val_ensemble_acc_mean", "max"),)


def _tied_table():
    # Three allocations at validation 1.0 (saturated), the first trained the most expensive one.
    return pd.DataFrame({"trial_id": ["t_00000", "t_00001", "t_00002", "t_00003"], "status": "ok",
                         "family": "cnn3", "width": [2.0, 0.5, 0.5, 1.0], "k": [1, 2, 3, 1],
                         "val_ensemble_acc_mean": [1.0, 1.0, 1.0, 0.9], "ensemble_acc_mean": [0.9, 0.95, 0.96, 0.8],
                         "inference_flops": [4_000_000, 2_000_000, 3_000_000, 1_000_000]})  # ints, as read


def test_exact_ties_go_to_the_cheaper_allocation_and_the_answer_is_frontier_row_0():
    s = _tied_table()
    best = best_allocation(s, objectives=OBJ)
    front = frontier(s, (("val_ensemble_acc_mean", "max"), ("inference_flops", "min")))
    assert best["trial_id"] == "t_00001"  # the cheapest of the three at 1.0, not the first finished
    assert front.iloc[0]["trial_id"] == best["trial_id"]
    assert list(front["trial_id"]) == ["t_00001", "t_00003"]  # the expensive ties are dominated
    assert best_per(s, "k", objectives=OBJ).set_index("k").loc[1, "trial_id"] == "t_00000"


def test_score_orders_real_differences_first_and_breaks_only_exact_ties():
    # A real difference of one input in a million beats any cost; equal accuracies go to the cheaper.
    assert choice.score(0.900001, 1e15) > choice.score(0.9, 1.0)
    assert choice.score(0.9, 1e6) > choice.score(0.9, 2e6)
    assert choice.score(0.9, 1e6) == pytest.approx(0.9, abs=1e-9)
    # Float summation order (1e-16) is not a difference: the cheaper still wins.
    assert choice.score(0.9 + 1e-16, 2e6) < choice.score(0.9, 1e6)
    # Minimised objectives: lower is better, cheaper still wins ties.
    assert choice.score(0.3, 1e6, "min") < choice.score(0.3, 2e6, "min")
    # Costs read from a table are numpy integers: the same tie-break.
    import numpy as np

    assert choice.score(1.0, np.int64(250752)) > choice.score(1.0, np.int64(629248))
    # The last resort is Ray's trial order (its number), not string order.
    t = pd.DataFrame({"trial_id": ["a_00010", "a_00002"], "m": [0.5, 0.5], "inference_flops": [1.0, 1.0]})
    assert list(rule.order(t, "m")["trial_id"]) == ["a_00002", "a_00010"]


def test_saturated_or_crowded_validation_is_said_with_what_to_do():
    from tuneall.reporting.saturation import validation_warning

    s = _tied_table()
    w = validation_warning(s, "val_ensemble_acc_mean", 144)
    assert w.startswith("validation is saturated: 3 of 4 allocations score 1.0000 on 144 validation inputs")
    assert "--val-fraction" in w and "mnist1d" in w
    crowded = s.assign(val_ensemble_acc_mean=[0.95, 0.949, 0.9495, 0.90])  # 3 of 4 within 1/144 of the best
    assert validation_warning(crowded, "val_ensemble_acc_mean", 144).startswith("validation is too small to separate")
    spread = s.assign(val_ensemble_acc_mean=[0.95, 0.90, 0.85, 0.80])
    assert validation_warning(spread, "val_ensemble_acc_mean", 1000) is None


def test_live_best_follows_the_rule():
    lines: list[str] = []
    p = SearchProgress(3, OBJ, out=lines.append)
    base = {"status": "ok", "family": "cnn3", "val_ensemble_acc_mean_std": 0.0, "ensemble_acc_mean": 0.95}
    p.trial_finished({"family": "cnn3", "width": 2.0, "k": 1},
                     {**base, "width": 2.0, "k": 1, "val_ensemble_acc_mean": 1.0, "inference_flops": 4e6})
    p.trial_finished({"family": "cnn3", "width": 0.5, "k": 2},
                     {**base, "width": 0.5, "k": 2, "val_ensemble_acc_mean": 1.0, "inference_flops": 2e6})
    assert "best 1.0000 (cnn3 w=0.5 k=2)" in lines[-1]
    assert "(test 0.9500)" in lines[-1]  # test beside validation


TINY = {"name": "tiny", "families": ["cnn3"], "width": [0.25, 0.5], "k": [1, 2, 3], "batch_size": 32}


@pytest.mark.slow
def test_every_reader_names_the_same_allocation(tmp_path):
    ray = pytest.importorskip("ray")
    import optuna
    from optuna.storages.journal import JournalFileBackend
    from ray import tune

    import tuneall
    import tuneall.runner
    from tuneall.commands import _print_outcome
    from tuneall.rundir.journal import JOURNAL
    from tuneall.planning.space import parse_space

    ray.init(address="local", num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.2",
             configure_logging=False)
    try:
        front = tuneall.search(budget=2e6, dataset="digits", space=parse_space(TINY), trials=8, seeds=2,
                               min_steps=20, storage_path=str(tmp_path), name="one", verbose=0)
        out = tmp_path / "one"
        best = front.attrs["best"]
        alloc = (float(best["width"]), int(best["k"]))
        key = lambda r: (float(r["width"]), int(r["k"]))  # noqa: E731
        assert key(front.iloc[0]) == alloc and str(front.iloc[0]["trial_id"]) == str(best["trial_id"])
        assert key(pd.read_csv(out / "frontier.csv").iloc[0]) == alloc
        summary = (out / "summary.md").read_text()
        assert f"width {alloc[0]:g}, depth 3, k = {alloc[1]}**" in summary
        assert "Command: `tuneall.search(budget=2000000.0, " in summary  # the Python call, not the script
        buf = io.StringIO()
        with redirect_stdout(buf):
            _print_outcome(str(out), front)
        assert f"width {alloc[0]:g} depth 3 k={alloc[1]} " in buf.getvalue()
        ens = tuneall.load_ensemble(out)
        assert (float(ens.manifest["width"]), int(ens.manifest["k"])) == alloc
        storage = optuna.storages.JournalStorage(JournalFileBackend(str(out / "optuna.journal")))
        study = optuna.load_study(study_name="one", storage=storage)
        assert key(study.best_trial.params) == alloc
        assert study.metric_names == ["val_ensemble_acc_mean"]
        assert study.best_trial.value == pytest.approx(best["val_ensemble_acc_mean"], abs=1e-9)
        # The study's complete trials are the trials that ran; redrawn repeats are marked and not complete.
        records = [json.loads(line) for line in (out / JOURNAL).read_text().splitlines() if line.strip()]
        done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        assert len(done) == len(records)
        assert all(t.user_attrs.get("redrawn") for t in study.trials if t.state != optuna.trial.TrialState.COMPLETE)
        assert all("lr" not in t.params and "depth" not in t.params and "k" in t.params for t in done)
        grid = tune.Tuner.restore(str(out), trainable=tuneall.runner.trainable).get_results()
        assert key(grid.get_best_result().config.get("point", grid.get_best_result().config)) == alloc
    finally:
        ray.shutdown()


def test_exact_ties_go_to_the_trial_suggested_first_whatever_its_random_ray_id():
    """Ray 2.60's trial ids are 8 random hex digits (``Trial.generate_id``), so "the earlier trial" read from the
    id ordered exact ties by chance: two runs of `--space tuned --trials 3` on digits named different answers among
    allocations tied at validation 1.0 and equal inference cost. The journal now records each trial's suggestion
    order (Ray's trial counter after the records of earlier runs) and the rule breaks such ties by it."""
    from types import SimpleNamespace

    from tuneall.reporting.choice import order
    from tuneall.reporting.search_report import trial_rows
    from tuneall.tuning._callbacks import ORDER_STRIDE, trial_order

    def trial(tag):
        return SimpleNamespace(experiment_tag=tag)

    assert trial_order(0, trial("3_batch_size=64,lr=0.06")) == 3
    assert trial_order(5, trial("1_lr=0.1")) == 5 * ORDER_STRIDE + 1  # a resumed run: after every earlier record
    assert trial_order(0, trial("")) is None and trial_order(0, SimpleNamespace()) is None
    tied = {"status": "ok", "m": 1.0, "inference_flops": 314624.0}
    rows = [*trial_rows("1d6af6e5", {"lr": 0.0979}, tied, None, 2), *trial_rows("f01802e6", {"lr": 0.0626}, tied,
                                                                                 None, 1)]
    assert [r["trial_order"] for r in rows] == [2, 1]
    table = pd.DataFrame(rows).assign(m=1.0, inference_flops=314624.0)
    assert list(order(table, "m")["trial_id"]) == ["f01802e6", "1d6af6e5"]  # suggested first, not the lower hex id
    assert list(order(table.iloc[::-1], "m")["trial_id"]) == ["f01802e6", "1d6af6e5"]  # nor the first row
    # What the rule did before (no suggestion order): the lower random id won.
    assert list(order(table.drop(columns="trial_order"), "m")["trial_id"]) == ["1d6af6e5", "f01802e6"]
