"""Sampler hygiene: no proposal of an architecture that no ensemble size can train; TPE's start-up count."""

from __future__ import annotations

import optuna
import pytest

from tuneall.core.budget import Budget
from tuneall.data import dataset_info
from tuneall.tuning.sampling import restrict, sample, tpe_startup
from tuneall.planning.space import load_space, parse_space


def test_paper_space_at_1e7_on_mnist1d_never_offers_width_4():
    space = load_space("paper")
    fc = restrict(space, Budget(1e7), dataset_info("mnist1d"))["cnn3"]
    assert 4.0 not in fc.values["width"] and 2.0 in fc.values["width"] and not fc.indexed


def test_joint_infeasibility_is_sampled_by_index_and_never_proposed():
    space = parse_space({"name": "j", "families": ["cnn3"], "width": [0.5, 1, 2, 4], "depth": [1, 2, 3], "k": [1, 2],
                         "lr": [0.05, 0.1]})
    bad = {(4.0, 2), (4.0, 3), (2.0, 3)}

    def feasible(p):
        return (float(p["width"]), p["depth"]) not in bad

    fc = restrict(space, None, None, feasible_fn=feasible)["cnn3"]
    assert "depth" in fc.indexed and "width" not in fc.indexed
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0, n_startup_trials=5))
    seen = set()
    for _ in range(60):
        t = study.ask()
        p = sample(t, fc, lambda a: a)
        assert (float(p["width"]), p["depth"]) not in bad
        seen.add((float(p["width"]), p["depth"]))
        study.tell(t, float(p["width"]))
    assert len(seen) >= 6  # and it still explores the feasible ones (9 of them)


def test_a_family_with_nothing_feasible_is_left_out():
    space = parse_space({"name": "x", "families": ["cnn3", "resnet"], "width": [1, 2], "k": [1]})
    got = restrict(space, None, None, feasible_fn=lambda p: p["family"] == "cnn3")
    assert list(got) == ["cnn3"]


@pytest.mark.parametrize("trials,startup", [(4, 3), (12, 3), (20, 5), (40, 10), (200, 10)])
def test_tpe_startup_leaves_small_searches_mostly_to_tpe(trials, startup):
    assert tpe_startup(trials) == startup


def test_recipe_axes_are_part_of_the_architecture():
    """optimizer, weight_decay and label_smoothing given as lists are sampled among the feasible architectures, and
    two points that differ only in them are different architectures for the member store."""
    from tuneall.store.reuse import arch_key

    space = parse_space({"name": "r", "families": ["cnn3"], "width": [0.5, 1], "k": [1, 2],
                         "optimizer": ["sgd", "adamw"], "weight_decay": [0.0, 1e-4], "label_smoothing": [0.0, 0.1]})

    def feasible(p):  # adamw at width 1 cannot be trained (say): a joint infeasibility in a recipe axis
        return not (p["optimizer"] == "adamw" and float(p["width"]) == 1.0)

    fc = restrict(space, None, None, feasible_fn=feasible)["cnn3"]
    assert {"optimizer", "weight_decay", "label_smoothing"} <= set(fc.axes)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(80):
        p = sample(study.ask(), fc, lambda a: a)
        assert feasible(p)
        seen.add((p["optimizer"], p["weight_decay"], p["label_smoothing"]))
    assert len(seen) == 8
    base = {"family": "cnn3", "width": 0.5, "depth": 1, "k": 2, "data_fraction": 1.0, "optimizer": "sgd",
            "weight_decay": 0.0, "label_smoothing": 0.0}
    assert arch_key(base) == arch_key({**base, "k": 4})
    for field, v in (("optimizer", "adamw"), ("weight_decay", 1e-4), ("label_smoothing", 0.1)):
        assert arch_key({**base, field: v}) != arch_key(base)


def test_a_learning_rate_range_leaves_the_architectures_restricted_to_the_feasible_ones():
    """The `tuned` space samples lr from a range: the range changes no step's cost, so the architectures stay
    restricted to the trainable ones (at 3e6 on digits only width 0.5 is: widths 1 and 2 need more than C at k=1)
    and lr is still drawn from its range. Before, a continuous lr unrestricted the whole family and a 3-trial
    search spent two trials on cnn3 w=1 k=8 (infeasible)."""
    from tuneall.planning.factory import max_feasible_k
    from tuneall.planning.points import point_to_allocation
    from tuneall.tuning.define_by_run import DefineByRun

    space, budget, info = load_space("tuned"), Budget(3e6), dataset_info("digits")
    fc = restrict(space, budget, info)["cnn3"]
    assert fc.values["width"] == (0.5,) and "lr" not in fc.axes and "batch_size" in fc.axes
    run = DefineByRun(space, budget, info)
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0, n_startup_trials=3))
    lrs = set()
    for i in range(20):
        t = study.ask()
        p = run(t)
        alloc, train = point_to_allocation(p)
        assert max_feasible_k(alloc, budget, info, train) >= p["k"] >= 1, p
        assert 0.005 <= p["lr"] <= 0.5 and t.params["lr"] == p["lr"]
        lrs.add(p["lr"])
        study.tell(t, float(p["lr"]))
    assert len(lrs) == 20


def test_only_the_step_cost_recipe_fields_change_what_a_budget_trains():
    """STEP_COST_RECIPE_FIELDS is what the factory's step cost reads, in both units: every other recipe field leaves
    the largest feasible k alone, and the batch size moves it in FLOPs (what lets a sampler leave them out of the
    feasibility enumeration)."""
    from tuneall.core.config import RECIPE_FIELDS, STEP_COST_RECIPE_FIELDS, TrainConfig
    from tuneall.planning.factory import Allocation, max_feasible_k

    alloc, info = Allocation(width=0.5), dataset_info("digits")
    other = {"optimizer": "adamw", "lr": 0.3, "momentum": 0.5, "weight_decay": 1e-3, "batch_size": 256,
             "label_smoothing": 0.1}
    assert set(other) == set(RECIPE_FIELDS)
    for unit, value in (("param-steps", 3e6), ("flops", 3e11)):
        budget = Budget(value, unit)
        base = max_feasible_k(alloc, budget, info, TrainConfig())
        assert base > 1
        for field, v in other.items():
            k = max_feasible_k(alloc, budget, info, TrainConfig(**{field: v}))
            if field in STEP_COST_RECIPE_FIELDS and unit == "flops":
                assert k != base, field
            else:
                assert k == base, (unit, field)
