"""The search report names the allocations tied with the best (with the test used) and flags degenerate trials
(at or below chance): built from constructed journal records, no training."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tuneall.reporting.search_report import build_report, write_trials_table

PLAN = {"params_per_member": 1000, "total_params": 1000, "steps": 100, "train_flops": 1e9, "inference_flops": 1e4,
        "budget": 1e5, "unit": "param-steps", "spent": 1e5}


def record(tid: str, width: float, k: int, accs: list[float], status: str = "ok") -> dict:
    point = {"family": "cnn3", "width": width, "depth": 3, "k": k, "data_fraction": 1.0, "lr": 0.05,
             "momentum": 0.9, "batch_size": 128}
    repeats = [{"ensemble_acc": a, "ensemble_nll": 1 - a, "ensemble_ece": 0.01, "member_acc_mean": a,
                "disagreement": 0.1} for a in accs]
    metrics = {**point, **PLAN, "total_params": 1000 * k * width, "status": status, "train_time_s": 10.0 * k,
               "wall_time_s": 1.0, "n_diverged": 0, "repeats_json": json.dumps(repeats)}
    return {"trial_id": tid, "config": {"point": point}, "metrics": metrics, "error": None}


def make(tmp_path, records, dataset="digits", seeds=3):
    (tmp_path / "tuneall.json").write_text(json.dumps({"config": {"dataset": dataset, "seeds": seeds},
                                                       "state": "complete"}))
    write_trials_table(records, tmp_path)
    build_report(tmp_path)
    summary = pd.read_csv(tmp_path / "trials_summary.csv", dtype={"trial_id": str})
    return summary.set_index("trial_id"), (tmp_path / "summary.md").read_text()


def test_best_tied_allocations_named_with_the_test(tmp_path):
    s, md = make(tmp_path, [
        record("best", 0.5, 4, [0.95, 0.96, 0.97]),
        record("close", 1.0, 2, [0.96, 0.95, 0.965]),  # within noise: tied
        record("far", 2.0, 1, [0.80, 0.81, 0.805]),  # clearly worse
    ])
    assert s["tied_with_best"].to_dict() == {"best": True, "close": True, "far": False}
    assert not s["degenerate"].any()
    assert "**cnn3 width 0.5, depth 3, k = 4**" in md
    assert ("**P(best) 0.68** for cnn3 w=0.5, depth 3, k = 4; not separated from it (paired bootstrap over 3 seeds "
            "only (no per-example predictions recorded), best re-selected per resample, family-wise alpha 0.05 over "
            "3 allocations): cnn3 w=1, depth 3, k = 2 (0.9583, -0.0017, P(best) 0.32).") in md
    assert s["p_best"].round(2).to_dict() == {"best": 0.68, "close": 0.32, "far": 0.0}
    assert "w=2" not in md.split("## Pareto")[0]  # the separated one is not named as tied


def test_allocations_that_differ_only_in_a_sampled_recipe_field_never_read_alike(tmp_path, capsys):
    """A space that samples lr: the best line, every tied allocation and the tables name lr. Unnamed, the two tied
    points read as one allocation (the CLI listed it once, or not at all where it read as the best's own name)."""
    from tuneall.commands import _print_outcome
    from tuneall.reporting.search_report import build_report

    recs = [record("best", 0.5, 4, [0.95, 0.96, 0.97]), record("other-lr", 0.5, 4, [0.96, 0.95, 0.965]),
            record("far", 2.0, 1, [0.80, 0.81, 0.805])]
    for r, lr in zip(recs, (0.2, 0.05, 0.05)):
        r["config"]["point"]["lr"] = r["metrics"]["lr"] = lr
    s, md = make(tmp_path, recs)
    assert s["tied_with_best"].to_dict() == {"best": True, "other-lr": True, "far": False}
    assert "**cnn3 width 0.5, depth 3, k = 4** (data fraction 1, lr=0.2)" in md
    assert "not separated from it" in md and "cnn3 w=0.5, depth 3, k = 4, lr=0.05 (0.9583" in md
    assert "| family | width | depth | k | lr | data_fraction |" in md
    front = build_report(tmp_path)
    assert front.attrs["tied"] == ["cnn3 w=0.5, depth 3, k = 4, lr=0.05"] and front.attrs["axes"] == ["lr"]
    _print_outcome(tmp_path, front)
    out = capsys.readouterr().out
    assert "Best allocation: cnn3 width 0.5 depth 3 k=4 lr=0.2 (100 steps per member)" in out
    assert "Tied with it (" in out and "): cnn3 w=0.5, depth 3, k = 4, lr=0.05" in out


def test_a_search_names_the_recipe_fields_its_space_samples_in_every_trial_line():
    from tuneall.core.progress import SearchProgress, allocation_label
    from tuneall.planning.space import parse_space

    space = parse_space({"name": "s", "families": ["cnn3"], "width": [0.5], "k": [1, 2], "lr": [0.01, 0.2],
                         "batch_size": 128, "weight_decay": {"low": 1e-5, "high": 1e-3, "log": True}})
    assert space.varying_recipe() == ("lr", "weight_decay")
    assert parse_space({"name": "f", "families": ["cnn3"], "lr": 0.05}).varying_recipe() == ()
    point = {"family": "cnn3", "width": 0.5, "depth": 3, "k": 2, "lr": 0.2, "weight_decay": 1e-4, "batch_size": 128}
    assert allocation_label(point) == "cnn3 w=0.5 d=3 k=2"
    assert allocation_label(point, space.varying_recipe()) == "cnn3 w=0.5 d=3 k=2 lr=0.2 weight_decay=0.0001"
    lines = []
    p = SearchProgress(2, [("val_ensemble_acc_mean", "max")], out=lines.append, axes=space.varying_recipe())
    p.trial_finished(point, {"status": "ok", "val_ensemble_acc_mean": 0.9})
    assert "cnn3 w=0.5 d=3 k=2 lr=0.2 weight_decay=0.0001" in lines[0]


def test_best_separated_from_everything(tmp_path):
    s, md = make(tmp_path, [record("best", 0.5, 4, [0.95, 0.96, 0.97]), record("far", 2.0, 1, [0.80, 0.81, 0.805])])
    assert s["tied_with_best"].to_dict() == {"best": True, "far": False}
    assert "**P(best) 1.00** for cnn3 w=0.5, depth 3, k = 4; separated from every other allocation (paired " in md


def test_one_seed_everything_tied(tmp_path):
    s, md = make(tmp_path, [record("a", 0.5, 4, [0.95]), record("b", 2.0, 1, [0.70])], seeds=1)
    assert s["tied_with_best"].all()
    assert "**Undetermined**: the data cannot choose one best allocation" in md
    assert "1 seed and no per-example predictions: nothing can be separated" in md


def test_degenerate_trial_flagged_and_never_best(tmp_path):
    # digits: 10 classes, 360 test inputs: the chance line is 0.1 + 3 SE = 0.147. "collapsed" has the fewest
    # parameters and the shortest training time, so without the flag it would sit on the Pareto frontier, and
    # "spiky" is at chance on average even though one seed looks better.
    s, md = make(tmp_path, [
        record("good", 1.0, 2, [0.90, 0.91, 0.92]),
        record("collapsed", 0.25, 1, [0.10, 0.10, 0.10]),
        record("spiky", 0.5, 1, [0.05, 0.08, 0.30]),
        record("weak", 0.5, 1, [0.20, 0.21, 0.19]),  # bad, but above chance: not degenerate
    ])
    assert s["degenerate"].to_dict() == {"good": False, "collapsed": True, "spiky": True, "weak": False}
    assert not s.loc[["collapsed", "spiky"], "tied_with_best"].any()
    assert "Degenerate (ensemble accuracy at or below chance plus noise, 0.1474; never presented as best): " \
           "cnn3 w=0.25, depth 3, k = 1 (0.1000); cnn3 w=0.5, depth 3, k = 1 (0.1433)." in md
    front = pd.read_csv(tmp_path / "frontier.csv", dtype={"trial_id": str})
    # The frontier is accuracy up, inference FLOPs down (equal here): "good" alone, never a degenerate trial.
    assert set(front["trial_id"]) == {"good"}
    per_k = pd.read_csv(tmp_path / "best_per_k.csv", dtype={"trial_id": str})
    assert per_k.set_index("k").loc[1, "trial_id"] == "weak"


def test_all_degenerate_no_best(tmp_path):
    s, md = make(tmp_path, [record("a", 1.0, 2, [0.10, 0.11, 0.09]), record("b", 0.5, 1, [0.12, 0.1, 0.1])])
    assert s["degenerate"].all()
    assert "No trial trained successfully above chance." in md
    assert "## Best allocation\n" not in md


@pytest.mark.parametrize("dataset", [None, "no-such-dataset"])
def test_unknown_dataset_flags_nothing(tmp_path, dataset):
    s, md = make(tmp_path, [record("a", 1.0, 2, [0.10, 0.11, 0.09])], dataset=dataset)
    assert not s["degenerate"].any()
    assert "Degenerate" not in md


def val_record(tid: str, width: float, k: int, val: list[float], test: list[float]) -> dict:
    rec = record(tid, width, k, test)
    repeats = json.loads(rec["metrics"]["repeats_json"])
    for rep, v in zip(repeats, val):
        rep.update({"val_ensemble_acc": v, "val_ensemble_nll": 1 - v, "val_ensemble_ece": 0.01,
                    "val_member_acc_mean": v, "val_disagreement": 0.1})
    rec["metrics"]["repeats_json"] = json.dumps(repeats)
    return rec


def test_best_is_chosen_on_validation_when_validation_and_test_disagree(tmp_path):
    """"val_wins" is best on validation, "test_wins" on test: every choice follows validation, test is reported."""
    from tuneall.reporting.frontier import best_allocation, best_per, frontier, summarize_trials
    from tuneall.reporting.search_report import load_trials

    s, md = make(tmp_path, [
        val_record("val_wins", 0.5, 4, val=[0.95, 0.96, 0.97], test=[0.80, 0.81, 0.82]),
        val_record("test_wins", 2.0, 1, val=[0.85, 0.87, 0.86], test=[0.99, 0.99, 0.98]),
    ])
    summary = summarize_trials(load_trials(tmp_path))
    assert best_allocation(summary)["trial_id"] == "val_wins"
    assert best_allocation(summary, "ensemble_acc_mean")["trial_id"] == "test_wins"  # what test would have chosen
    assert frontier(summary)["trial_id"].iloc[0] == "val_wins"
    assert best_per(summary, "k").set_index("k").loc[[1, 4], "trial_id"].tolist() == ["test_wins", "val_wins"]
    assert s["tied_with_best"].to_dict() == {"val_wins": True, "test_wins": False}  # ties on validation too
    best = md.split("## Best allocation")[1].split("##")[0]
    assert "**cnn3 width 0.5, depth 3, k = 4**" in best
    assert "validation accuracy 0.9600" in best and "test ensemble accuracy 0.8100" in best
    assert "Chosen on **validation**" in md
    front = pd.read_csv(tmp_path / "frontier.csv", dtype={"trial_id": str})
    assert front["trial_id"].iloc[0] == "val_wins"
    assert {"val_ensemble_acc_mean", "ensemble_acc_mean"} <= set(front.columns)  # tables carry both splits
    trials = pd.read_csv(tmp_path / "trials.csv")
    assert {"val_ensemble_acc", "ensemble_acc"} <= set(trials.columns)


@pytest.mark.parametrize("records,best,tied_line", [
    ([record("best", 0.5, 4, [0.95, 0.96, 0.97]), record("close", 1.0, 2, [0.96, 0.95, 0.965]),
      record("far", 2.0, 1, [0.80, 0.81, 0.805])], "best", "Tied with it (paired bootstrap over 3 seeds only"),
    ([record("best", 0.5, 4, [0.95, 0.96, 0.97]), record("far", 2.0, 1, [0.80, 0.81, 0.805])], "best",
     "Separated from every other allocation (paired bootstrap over 3 seeds only"),
])
def test_final_cli_line_names_the_summarys_best_and_its_ties(tmp_path, capsys, records, best, tied_line):
    """The CLI's last lines and the saved weights follow the report's one answer (front.attrs), not the frontier's
    first row: best allocation and the allocations tied with it, with the test used."""
    from tuneall.cli import _print_outcome

    (tmp_path / "tuneall.json").write_text(json.dumps({"config": {"dataset": "digits", "seeds": 3},
                                                       "state": "complete"}))
    write_trials_table(records, tmp_path)
    front = build_report(tmp_path)
    assert front.attrs["best"]["trial_id"] == best
    _print_outcome(str(tmp_path), front)
    out = capsys.readouterr().out
    assert "Best allocation: cnn3 width 0.5 depth 3 k=4" in out
    assert tied_line in out
    assert f"P(best) {front.attrs['p_best']:.2f}" in out  # the final line carries P(best)
    assert "w=2" not in out.split("Summary:")[0]


def test_member_steps_trained_and_reused_reach_the_tables_and_summary(tmp_path):
    """Search cost per trial (issue 13): what each trial trained and what the member store answered, in
    trials.csv, trials_summary.csv and a summary line with the totals."""
    a, b = record("a", 0.5, 4, [0.95, 0.96, 0.97]), record("b", 0.5, 2, [0.94, 0.95, 0.96])
    a["metrics"].update(member_steps_trained=1200, member_steps_reused=0)
    b["metrics"].update(member_steps_trained=0, member_steps_reused=600)  # its members: prefixes of a's
    s, md = make(tmp_path, [a, b])
    assert s.loc["a", "member_steps_trained"] == 1200 and s.loc["b", "member_steps_reused"] == 600
    trials = pd.read_csv(tmp_path / "trials.csv", dtype={"trial_id": str})
    assert trials.groupby("trial_id")["member_steps_trained"].first().to_dict() == {"a": 1200, "b": 0}
    assert "Member-steps: 1,200 trained, 600 answered from the member store" in md


def test_a_search_where_every_trial_failed_says_no_answer_first_and_exits_1(tmp_path, capsys):
    """No trial ok: the summary's first claim is that there is no answer (with the first error), the CLI says so
    and the exit status is 1, not the 0 of a search that answered."""
    from tuneall.cli import _exit_code, _print_outcome

    failed = []
    for tid, w in (("a", 1.0), ("b", 0.5)):
        r = record(tid, w, 2, [float("nan")] * 3, status="failed")
        r["metrics"]["repeats_json"] = "[]"
        r["error"] = "RuntimeError: mat1 and mat2 shapes cannot be multiplied (4x3 and 5x6)"
        failed.append(r)
    (tmp_path / "tuneall.json").write_text(json.dumps({"config": {"dataset": "digits", "seeds": 3},
                                                       "state": "complete"}))
    write_trials_table(failed, tmp_path)
    front = build_report(tmp_path)
    md = (tmp_path / "summary.md").read_text()
    head = md.split("\n\n")[1]  # the paragraph after the title
    assert head.startswith("**NO ANSWER: no trial trained successfully (2 failed)")
    assert "mat1 and mat2 shapes cannot be multiplied" in head
    front.attrs["complete"] = True
    _print_outcome(str(tmp_path), front)
    assert "No answer: no trial trained successfully" in capsys.readouterr().out
    assert _exit_code(front) == 1
    front.attrs["complete"] = False
    assert _exit_code(front) == 130
