"""`tuneall plan` for seed 001's design classes, and the more_or_less search space through the trial factory."""

from __future__ import annotations

import json

from tuneall.core.budget import Budget
from tuneall.cli import main
from tuneall.planning.points import plan_space
from tuneall.planning.space import load_space


def test_plan_prints_the_three_design_classes(capsys):
    assert main(["plan", "--family", "wrn", "--depth", "28", "--width", "4", "--k", "4", "--dataset", "cifar10"]) == 0
    out = capsys.readouterr().out
    assert "5849050" in out  # WRN-28-4 on CIFAR-10, the single network
    lines = [ln.split() for ln in out.splitlines() if ln.split()[:1] in (["single"], ["deq"], ["weq"])]
    assert [ln[0] for ln in lines] == ["single", "deq", "weq"]
    assert lines[1][3] == "28" and lines[2][2] == "4.0000"  # deq keeps the depth, weq keeps the width


def test_design_json_respects_the_budget_inequality(capsys):
    assert main(["plan", "--family", "resnet", "--depth", "56", "--width", "1", "--k", "4", "--dataset", "cifar10",
                 "--json"]) == 0
    rows = {r["class"]: r for r in json.loads(capsys.readouterr().out)}
    single = rows["single"]["total_params"]
    assert single == 855770
    for name in ("deq", "weq"):
        assert rows[name]["k"] == 4 and rows[name]["total_params"] <= single


def test_more_or_less_space_plans_every_class():
    feasible, _ = plan_space(load_space("more_or_less"), Budget(3e8), "mnist1d")
    assert set(feasible["design"]) == {"single", "deq", "weq"}
    single = feasible[feasible["design"] == "single"]
    assert (single["k"] == 1).all()
    # Every ensemble has at most the parameters of the single network it was derived from.
    for _, row in feasible[feasible["design"] != "single"].iterrows():
        base = single[(single["base_width"] == row["base_width"]) & (single["base_depth"] == row["base_depth"])]
        assert row["total_params"] <= base["total_params"].iloc[0]
        assert (row["depth"] == row["base_depth"]) if row["design"] == "deq" else (row["width"] == row["base_width"])
