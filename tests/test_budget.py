"""Budget math (T = floor(C / (k x cost)), feasibility, smallest feasible budget, max k), the trial factory's use of it,
and the FLOP counts of the 'flops' unit checked against hand counts."""

from __future__ import annotations

import math
import random
from fractions import Fraction

import pytest

from tuneall.core import budget as B
from tuneall.core.budget import Budget, is_feasible, max_k, min_feasible_budget, parse_budget, spent, steps_per_member
from tuneall.data import dataset_info
from tuneall.core.errors import BudgetError, ConfigError, TuneallError
from tuneall.planning.factory import Allocation, Infeasible, make_trial_plan, max_feasible_k
from tuneall.models import param_count
from tuneall.models.flops import inference_flops, train_flops_per_step
from tuneall.models import Architecture
from tuneall.training.member import TrainConfig

P_CNN3_CIFAR10 = 94_986  # seed 000's count at w = 1


def _random_cases(n: int, seed: int):
    """(C, k, P, min_steps): C log-uniform in [1e3, 1e12] (half integral, half with a fraction), k in 1..32,
    P in 1..1e7."""
    rng = random.Random(seed)
    cases = []
    for i in range(n):
        c = 10 ** rng.uniform(3, 12)
        if i % 2 == 0:
            c = float(round(c))
        k = rng.randint(1, 32)
        p = int(10 ** rng.uniform(0, 7))
        m = rng.choice([1, 2, 10, 50, 100, rng.randint(1, 500)])
        cases.append((c, k, p, m))
    # Exact boundaries: C a multiple of k*P, and one below / above it.
    for _ in range(n // 5):
        k, p, t = rng.randint(1, 32), rng.randint(1, 10**7), rng.randint(1, 10**4)
        for c in (k * p * t, k * p * t - 1, k * p * t + 1):
            if c >= 1:
                cases.append((float(c), k, p, rng.randint(1, 200)))
    return cases


CASES = _random_cases(500, seed=0)


def test_steps_identity_random_allocations():
    n_checked = 0
    for c, k, p, m in CASES:
        b = Budget(c, min_steps=m)
        t = steps_per_member(b, k, p)
        exact = math.floor(Fraction(c) / (k * p))  # exact rational arithmetic, no float division
        assert t == exact, (c, k, p)
        assert isinstance(t, int)
        assert Fraction(spent(k, p, t)) <= Fraction(c), (c, k, p, t)
        assert Fraction(k * p * (t + 1)) > Fraction(c), (c, k, p, t)
        assert spent(k, p, t) == k * p * t
        assert is_feasible(b, k, p) == (t >= m), (c, k, p, m, t)
        n_checked += 1
    assert n_checked >= 500


def test_min_feasible_budget_is_the_smallest_feasible_budget():
    rng = random.Random(1)
    for _ in range(500):
        k, p, m = rng.randint(1, 32), rng.randint(1, 10**7), rng.randint(1, 500)
        need = min_feasible_budget(k, p, m)
        assert need == k * p * m
        assert is_feasible(Budget(need, min_steps=m), k, p)
        assert steps_per_member(Budget(need, min_steps=m), k, p) == m
        if need > 1:
            assert not is_feasible(Budget(need - 1, min_steps=m), k, p)
            assert steps_per_member(Budget(need - 1, min_steps=m), k, p) == m - 1


def test_max_k_is_feasible_and_max_k_plus_one_is_not():
    n_positive = 0
    for c, _, p, m in CASES:
        b = Budget(c, min_steps=m)
        kmax = max_k(b, p)
        # Exact: the largest k with floor(C / (k P)) >= m is floor(C / (P m)).
        assert kmax == math.floor(Fraction(c) / (p * m)), (c, p, m)
        if kmax >= 1:
            n_positive += 1
            assert is_feasible(b, kmax, p)
        assert not is_feasible(b, kmax + 1, p)
    assert n_positive > 100  # the sweep actually exercises feasible budgets


def test_max_k_zero_when_even_one_member_does_not_fit():
    b = Budget(999, min_steps=10)
    assert max_k(b, 100) == 0
    assert max_k(Budget(1000, min_steps=10), 100) == 1
    assert max_k(Budget(4000, min_steps=10), 100) == 4


@pytest.mark.parametrize("value", [0, -1, -1e10, 0.0, "0", "-1", float("nan"), "nan", float("inf"), "inf", "-inf",
                                   float("-inf"), "abc", "", None, "1e10x", [1e10]])
def test_parse_budget_rejects(value):
    with pytest.raises(BudgetError):
        parse_budget(value)
    with pytest.raises(BudgetError):
        Budget(value)


def test_budget_error_is_a_tuneall_error():
    assert issubclass(BudgetError, TuneallError)
    assert issubclass(Infeasible, BudgetError)


@pytest.mark.parametrize("value,expected", [("1e10", 1e10), (3e7, 3e7), ("3e7", 3e7), (5, 5.0), (" 2.5e3 ", 2500.0)])
def test_parse_budget_accepts(value, expected):
    assert parse_budget(value) == expected
    assert Budget(value).value == expected


def test_budget_rejects_unknown_unit_and_bad_min_steps():
    with pytest.raises(ConfigError, match="unit"):
        Budget(1e8, unit="joules")
    with pytest.raises(ConfigError, match="unit"):
        Budget(1e8, unit="FLOPS")
    for bad in (0, -5, 1.5, "10", True):
        with pytest.raises(ConfigError, match="min_steps"):
            Budget(1e8, min_steps=bad)
    assert Budget(1e8, unit="flops", min_steps=1).min_steps == 1


def test_bad_k_and_cost():
    b = Budget(1e8)
    for bad_k in (0, -1, 1.0, True):
        with pytest.raises(ConfigError, match="k"):
            steps_per_member(b, bad_k, 10)
        with pytest.raises(ConfigError):
            min_feasible_budget(bad_k, 10)
    with pytest.raises(ValueError):
        steps_per_member(b, 1, 0)


# ----------------------------------------------------------------------------------------------------------------
# Through the trial factory


def test_cnn3_cifar10_param_count():
    assert param_count("cnn3", 1.0, 3, 3, 10, 2) == P_CNN3_CIFAR10


@pytest.mark.parametrize("k", [1, 2, 3, 4, 8, 16])
def test_factory_steps_cnn3_cifar10(k):
    plan = make_trial_plan(Allocation("cnn3", 1.0, None, k), Budget(1e8), "cifar10")
    assert plan.params_per_member == P_CNN3_CIFAR10
    assert plan.step_cost == P_CNN3_CIFAR10
    assert plan.depth == 3
    assert plan.steps == 10**8 // (k * P_CNN3_CIFAR10)
    assert plan.spent == k * P_CNN3_CIFAR10 * plan.steps <= 1e8
    assert plan.total_params == k * P_CNN3_CIFAR10
    flops = train_flops_per_step(Architecture("cnn3", 1.0, 3, (3, 32, 32), 10), 128)
    assert plan.train_flops == k * plan.steps * flops
    assert plan.inference_flops == k * inference_flops(Architecture("cnn3", 1.0, 3, (3, 32, 32), 10))
    assert len(plan.seeds) == 1 and len(plan.seeds[0]) == k


def test_factory_k1_at_1e8_is_1052_steps():
    plan = make_trial_plan(Allocation("cnn3", 1.0, None, 1), Budget(1e8), "cifar10")
    assert plan.steps == 1052


@pytest.mark.parametrize("k,min_steps", [(1, 50), (3, 50), (2, 7)])
def test_factory_infeasible_below_min_steps(k, min_steps):
    need = k * P_CNN3_CIFAR10 * min_steps
    a = Allocation("cnn3", 1.0, None, k)
    with pytest.raises(Infeasible) as exc:
        make_trial_plan(a, Budget(need - 1, min_steps=min_steps), "cifar10")
    assert exc.value.min_budget == need
    assert "smallest feasible budget" in str(exc.value)
    assert f"{need:.4g}" in str(exc.value)
    # ... and exactly at that budget the plan exists with min_steps steps per member.
    plan = make_trial_plan(a, Budget(need, min_steps=min_steps), "cifar10")
    assert plan.steps == min_steps
    assert plan.spent == need


def test_factory_flops_unit_uses_train_flops_per_step():
    flops = train_flops_per_step(Architecture("cnn3", 1.0, 3, (3, 32, 32), 10), 128)
    for k in (1, 2, 5):
        plan = make_trial_plan(Allocation("cnn3", 1.0, None, k), Budget(1e14, unit="flops"), "cifar10")
        assert plan.step_cost == flops
        assert plan.steps == 10**14 // (k * flops)
        assert plan.spent == plan.train_flops == k * flops * plan.steps <= 1e14
    # The batch size changes the cost of a step in FLOPs (and not in param-steps).
    small = make_trial_plan(Allocation("cnn3", 1.0), Budget(1e14, unit="flops"), "cifar10", TrainConfig(batch_size=32))
    assert small.step_cost == train_flops_per_step(Architecture("cnn3", 1.0, 3, (3, 32, 32), 10), 32)
    assert small.step_cost * 4 == flops
    ps = make_trial_plan(Allocation("cnn3", 1.0), Budget(1e8), "cifar10", TrainConfig(batch_size=32))
    assert ps.step_cost == P_CNN3_CIFAR10


def test_factory_infeasible_flops_min_budget():
    flops = train_flops_per_step(Architecture("cnn3", 0.5, 3, (1, 8, 8), 10), 128)
    need = 3 * flops * 20
    with pytest.raises(Infeasible) as exc:
        make_trial_plan(Allocation("cnn3", 0.5, None, 3), Budget(need - 1, "flops", 20), "digits")
    assert exc.value.min_budget == need


_WIDTHS = (0.25, 0.5, 0.75, 1.3, 2.0)
_DATASETS = ("cifar10", "cifar100", "digits", "mnist1d")


def test_factory_never_over_budget_random_sweep():
    """Property: over random (family width, depth, k, dataset, unit, C), a plan is never over budget, always has
    T = floor(C / (k cost)) >= min_steps, and an Infeasible point's min_budget is k cost min_steps > C."""
    rng = random.Random(2)
    n_plans = n_infeasible = 0
    for _ in range(150):
        width = rng.choice(_WIDTHS)
        depth = rng.choice([None, 2])
        k = rng.randint(1, 16)
        ds = rng.choice(_DATASETS)
        unit = rng.choice(B.UNITS)
        m = rng.choice([1, 10, 50])
        c = 10 ** rng.uniform(4, 9) if unit == "param-steps" else 10 ** rng.uniform(8, 14)
        if rng.random() < 0.5:
            c = float(round(c))
        b = Budget(c, unit, m)
        info = dataset_info(ds)
        try:
            plan = make_trial_plan(Allocation("cnn3", width, depth, k), b, ds)
        except Infeasible as e:
            n_infeasible += 1
            assert e.min_budget > c
            assert e.min_budget % (k * m) == 0
            cost = e.min_budget // (k * m)
            assert math.floor(Fraction(c) / (k * cost)) < m
            continue
        n_plans += 1
        d = 3 if depth is None else depth
        p = param_count("cnn3", width, d, info.in_channels, info.num_classes, info.spatial_dims)
        f = train_flops_per_step(Architecture("cnn3", width, d, info.input_shape, info.num_classes), 128)
        cost = p if unit == "param-steps" else f
        assert plan.params_per_member == p
        assert plan.step_cost == cost
        assert plan.steps == math.floor(Fraction(c) / (k * cost))
        assert plan.steps >= m
        assert Fraction(plan.spent) <= Fraction(c)
        assert plan.spent == k * cost * plan.steps
        assert Fraction(k * cost * (plan.steps + 1)) > Fraction(c)
        assert plan.train_flops == k * plan.steps * f
    assert n_plans > 20 and n_infeasible > 20


def test_max_feasible_k_agrees_with_factory():
    rng = random.Random(3)
    for _ in range(40):
        width = rng.choice(_WIDTHS)
        ds = rng.choice(_DATASETS)
        b = Budget(float(round(10 ** rng.uniform(6, 9))), rng.choice(["param-steps"]), rng.choice([10, 50]))
        a = Allocation("cnn3", width, None, 1)
        kmax = max_feasible_k(a, b, ds)
        if kmax >= 1:
            assert make_trial_plan(Allocation("cnn3", width, None, kmax), b, ds).steps >= b.min_steps
        with pytest.raises(Infeasible):
            make_trial_plan(Allocation("cnn3", width, None, kmax + 1), b, ds)


def test_factory_rejects_bad_allocations():
    b = Budget(1e9)
    for bad in (Allocation("cnn3", 1.0, None, 0), Allocation("cnn3", 1.0, None, 2.0), Allocation("cnn3", 0.0),
                Allocation("cnn3", -1.0), Allocation("cnn3", float("nan")), Allocation("cnn3", 1.0, 0),
                Allocation("cnn3", 1.0, 9), Allocation("bogus"), Allocation("cnn3", data_fraction=0.0),
                Allocation("cnn3", data_fraction=1.5)):
        with pytest.raises(ConfigError):
            make_trial_plan(bad, b, "cifar10")
    with pytest.raises(ConfigError, match="repeats"):
        make_trial_plan(Allocation(), b, "cifar10", repeats=0)


def test_factory_seeds_distinct_across_repeats_and_members():
    plan = make_trial_plan(Allocation("cnn3", 1.0, None, 4), Budget(1e9), "cifar10", repeats=3, base_seed=7)
    flat = [s for rep in plan.seeds for s in rep]
    assert len(plan.seeds) == 3 and all(len(rep) == 4 for rep in plan.seeds)
    assert len(set(flat)) == 12
    assert plan.seeds[0] == (7, 8, 9, 10)


# ----------------------------------------------------------------------------------------------------------------
# FLOP counts against hand counts (FlopCounterMode: 2 FLOPs per multiply-add; convs and matmuls only, no bias,
# BatchNorm, ReLU or pooling).

CONV1 = 2 * 32 * 32 * 32 * 3 * 9  # 3 -> 32 channels, 3x3 kernel, 32x32 output (padding 1), per input
HEAD1 = 2 * 32 * 10  # linear 32 -> 10, per input
CONV2 = 2 * 64 * 16 * 16 * 32 * 9  # depth 2: 32 -> 64 channels on the 16x16 map after 2x2 pooling
HEAD2 = 2 * 64 * 10


def test_inference_flops_depth1_hand_count():
    assert CONV1 == 1_769_472
    assert inference_flops(Architecture("cnn3", 1.0, 1, (3, 32, 32), 10)) == CONV1 + HEAD1 == 1_770_112


def test_inference_flops_depth2_hand_count():
    assert inference_flops(Architecture("cnn3", 1.0, 2, (3, 32, 32), 10)) == CONV1 + CONV2 + HEAD2


@pytest.mark.parametrize("batch", [1, 7, 128])
def test_train_flops_per_step_depth1_hand_count(batch):
    # forward: B (conv + head). Backward: conv weight grad = its forward FLOPs; no conv input grad (the input needs
    # no grad); head: weight grad and input grad, each as many FLOPs as its forward.
    forward = batch * (CONV1 + HEAD1)
    backward = batch * CONV1 + 2 * batch * HEAD1
    assert train_flops_per_step(Architecture("cnn3", 1.0, 1, (3, 32, 32), 10), batch) == forward + backward


def test_train_flops_per_step_depth2_hand_count():
    batch = 16
    # The second conv's input is an activation, so its input grad is computed too.
    expected = batch * (2 * CONV1 + 3 * CONV2 + 3 * HEAD2)
    assert train_flops_per_step(Architecture("cnn3", 1.0, 2, (3, 32, 32), 10), batch) == expected


def test_flops_scale_with_width():
    # Half width: conv 3 -> 16 channels, head 16 -> 10.
    assert inference_flops(Architecture("cnn3", 0.5, 1, (3, 32, 32), 10)) == CONV1 // 2 + HEAD1 // 2


def test_a_trial_process_plans_with_the_drivers_flop_counts_without_counting(tmp_path):
    """The driver's counts (TrialContext.flops) reach a fresh process, which plans with them and never counts:
    counting imports torch._dynamo (seconds in every trial process). Registering a family forgets them."""
    import pickle
    import subprocess
    import sys

    from tuneall.models.flops import flop_table

    arch = Architecture("cnn3", 0.5, 3, (1, 40), 10)
    alloc, budget = Allocation(family="cnn3", width=0.5, k=2), Budget(1e10, unit="flops")
    plan = make_trial_plan(alloc, budget, "mnist1d", TrainConfig(batch_size=128))
    assert train_flops_per_step(arch, 128) and inference_flops(arch)
    (tmp_path / "table.pkl").write_bytes(pickle.dumps(flop_table()))
    code = f"""
import pickle, sys
from tuneall.core.budget import Budget
from tuneall.models.flops import preload_flops
from tuneall.planning.factory import Allocation, make_trial_plan
from tuneall.training.member import TrainConfig
preload_flops(pickle.loads(open({str(tmp_path / "table.pkl")!r}, "rb").read()))
plan = make_trial_plan(Allocation(family="cnn3", width=0.5, k=2), Budget(1e10, unit="flops"), "mnist1d",
                       TrainConfig(batch_size=128))
print(plan.steps, plan.train_flops, plan.inference_flops, "torch._dynamo" in sys.modules)
from tuneall.models import register_model
from tuneall.models.flops import _TRAIN
import torch
register_model("tiny_for_the_test", widths=[1.0])(lambda width, depth, input_shape, num_classes: torch.nn.Linear(1, 1))
print(len(_TRAIN))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == [str(plan.steps), str(plan.train_flops), str(plan.inference_flops), "False", "0"]
