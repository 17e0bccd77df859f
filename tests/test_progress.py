"""The live lines of a search: per finished trial (objective mean ± std, best so far respecting min/max, done/left,
ETA from measured speed) and the trial-level heartbeat over all member-steps; and when the pre-run question is
asked."""

from __future__ import annotations

import io

from tuneall.core.progress import SearchProgress, TrialBeat, confirm, interactive, std_name, trial_heartbeat


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_trial_lines_best_so_far_and_eta():
    clock, lines = Clock(), []
    p = SearchProgress(4, (("ensemble_acc_mean", "max"),), out=lines.append, clock=clock)
    clock.t = 10.0
    p.trial_finished({"family": "cnn3", "width": 0.5, "k": 2}, {"status": "ok", "ensemble_acc_mean": 0.9,
                                                                "ensemble_acc_std": 0.01, "steps": 1234, "depth": 3})
    assert lines[-1] == ("tuneall: trial 1/4 cnn3 w=0.5 d=3 k=2: T=1,234: ensemble_acc_mean 0.9000 ± 0.0100 | "
                         "best 0.9000 (cnn3 w=0.5 d=3 k=2) | 1/4 done, 3 left, ETA 30 s")
    clock.t = 20.0
    p.trial_finished({"family": "cnn3", "width": 1.0, "k": 1}, {"status": "ok", "ensemble_acc_mean": 0.8})
    assert "best 0.9000 (cnn3 w=0.5 d=3 k=2)" in lines[-1] and lines[-1].endswith("2 left, ETA 20 s")
    p.trial_finished({"family": "cnn3", "width": 4.0, "k": 8}, {"status": "infeasible", "reason": "too big"})
    assert "infeasible: too big" in lines[-1]
    p.trial_finished({"family": "cnn3", "width": 2.0, "k": 1}, {}, error="Traceback\nRuntimeError: boom")
    assert "FAILED: RuntimeError: boom" in lines[-1] and lines[-1].endswith("4/4 done, 0 left")


def test_best_so_far_respects_min_and_resume_counts():
    lines = []
    p = SearchProgress(5, (("ensemble_nll_mean", "min"), ("inference_flops", "min")), done=2, out=lines.append)
    p.trial_finished({"family": "cnn3", "width": 1, "k": 1}, {"status": "ok", "ensemble_nll_mean": 0.5,
                                                               "inference_flops": 10})
    p.trial_finished({"family": "cnn3", "width": 1, "k": 2}, {"status": "ok", "ensemble_nll_mean": 0.3,
                                                               "inference_flops": 20})
    assert "best 0.3000" in lines[-1] and "4/5 done, 1 left" in lines[-1]
    assert "inference_flops 20" in lines[-1]
    assert std_name("val_ensemble_acc_mean") == "val_ensemble_acc_std" and std_name("inference_flops") is None


def test_trial_heartbeat_counts_all_member_steps():
    clock, lines = Clock(), []
    beat = TrialBeat("cnn3 w=1 k=2", total_member_steps=2 * 3 * 100, every_s=5, out=lines.append, clock=clock)
    for member in range(6):  # 2 members x 3 seeds, one after another
        step = beat.member(100)
        for s in range(10, 101, 10):
            clock.t += 0.5
            step(s)
    assert beat.done == 600
    assert len(lines) == 5  # 30 s of training, a line every 5 s, none at 100 % (it would follow "done", stale)
    assert lines[2] == ("tuneall: trial cnn3 w=1 k=2: 300/600 member-steps (50%), member 3 running, 15 s in, "
                        "trial ETA 15 s")
    assert not any("(100%)" in line for line in lines)
    # vectorised: k members per step
    beat = TrialBeat("x", 400, every_s=0, out=lines.append)
    beat.member(100, members=4)(50)
    assert beat.done == 200


def test_heartbeat_names_member_j_of_k_and_its_seed():
    clock, lines = Clock(), []
    seeds = [[0, 1, 2, 3, 4, 5, 6, 7], [1000, 1001, 1002, 1003, 1004, 1005, 1006, 1007]]  # k=8, 2 repeats
    beat = TrialBeat("t k=8", total_member_steps=16 * 100, every_s=1, out=lines.append, clock=clock, seeds=seeds)
    for seed in [s for rep in seeds for s in rep]:
        step = beat.member(100, seed=seed)
        clock.t += 2
        step(50)
    # the 9th member trained is member 1 of 8 of the second repeat, not "member 9"
    assert "member 1 of 8, seed 2 of 2" in lines[8] and "member 9" not in lines[8]
    assert "member 8 of 8, seed 2 of 2" in lines[-1]
    beat = TrialBeat("v", 800, every_s=1, out=lines.append, clock=clock, seeds=[[0, 1, 2, 3], [10, 11, 12, 13]])
    step = beat.member(100, members=4, seed=10)
    clock.t += 2
    step(10)
    assert "members 1-4 of 4, seed 2 of 2" in lines[-1]


def test_member_heartbeats_report_to_the_trial():
    from tuneall.training.member import Heartbeat

    with trial_heartbeat("t", 300, every_s=1e9) as beat:
        for _ in range(3):
            h = Heartbeat("m", 100, every_s=60)
            h(100)
        assert beat.done == 300
    with trial_heartbeat("t", 300, every_s=0) as beat:
        assert beat is None  # quiet


def test_confirm_only_on_a_tty_outside_ci(monkeypatch):
    class Tty(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("TUNEALL_NO_CONFIRM", raising=False)
    assert interactive(Tty("y\n")) and not interactive(io.StringIO("y\n"))
    monkeypatch.setenv("CI", "true")
    assert not interactive(Tty("y\n"))
    out = io.StringIO()
    assert confirm("Start?", Tty("y\n"), out) and not confirm("Start?", Tty("\n"), out)
    assert out.getvalue().startswith("Start? [y/N]")


def test_a_sweep_line_names_the_recipe_fields_its_points_vary():
    from tuneall.sweeping.progress import SweepLines

    jobs = [{"point": {"family": "cnn3", "width": 1.0, "depth": 3, "k": 2, "lr": lr, "batch_size": 128},
             "budgets": [1e6]} for lr in (0.05, 0.2)]
    lines = []
    p = SweepLines(2, out=lines.append, clock=Clock(), points=[j["point"] for j in jobs])
    for j in jobs:
        p.finished(j, {}, error="x")
    assert [line.split(": FAILED")[0] for line in lines] == ["tuneall: sweep trial 1/2 cnn3 w=1 d=3 k=2 lr=0.05",
                                                             "tuneall: sweep trial 2/2 cnn3 w=1 d=3 k=2 lr=0.2"]


def test_sweep_prints_a_line_per_trial_and_a_final_answer():
    import json

    import pandas as pd

    from tuneall.sweeping.progress import SweepLines, answer_lines

    clock, lines = Clock(), []
    p = SweepLines(2, out=lines.append, clock=clock)
    job = {"point": {"family": "cnn3", "width": 1.0, "depth": 3, "k": 2}, "budgets": [1e6, 3e6]}
    clock.t += 30
    p.finished(job, {"cells_json": json.dumps([{"ensemble_acc": 0.8}, {"ensemble_acc": 0.9}]), "member_steps": 1200,
                     "train_time_s": 30.0})
    assert lines[-1] == ("tuneall: sweep trial 1/2 cnn3 w=1 d=3 k=2: 2 budget(s), 1,200 member-steps trained in 30 s, "
                         "test accuracy 0.8000-0.9000 over its cells | 1/2 done, 1 left, ETA 30 s")
    p.finished(job, {}, error="RuntimeError: boom")
    assert "FAILED (RuntimeError: boom)" in lines[-1] and lines[-1].endswith("2/2 done, 0 left")
    ok = pd.DataFrame({"rule": "mean", "budget": [1e6, 3e6], "best_k": [1, 4], "best_width": [1.0, 0.5],
                       "mean": [0.8, 0.93], "best_single": [0.8, 0.9]})
    assert answer_lines({"optimal_k": ok}, "param-steps") == [
        "tuneall: answer (mean rule) at the largest budget C = 3e+06 param-steps: k = 4, width 0.5 (test accuracy "
        "0.9300; best single network 0.9000); per budget: optimal_k.csv"]
    assert answer_lines({}, "param-steps")[0].startswith("tuneall: no answer")


def test_ray_prints_its_tables_only_at_a_higher_verbosity():
    from tuneall.core.progress import ray_verbosity

    assert [ray_verbosity(v) for v in (0, 1, 2, 3, 4, 9)] == [0, 0, 1, 2, 3, 3]


def test_the_live_best_breaks_exact_ties_as_the_answer_rule_does():
    """Two allocations tied on the score: the live "best" names the one suggested first (the final answer's rule),
    whichever finished first; a strictly better score still wins at once, and without an order the first stays."""
    from tuneall.core.progress import SearchProgress

    lines = []
    p = SearchProgress(3, [("val_ensemble_acc_mean", "max")], out=lines.append, clock=Clock())
    tied = {"status": "ok", "val_ensemble_acc_mean": 1.0, "inference_flops": 314624}
    p.trial_finished({"family": "cnn3", "width": 0.5, "k": 1, "lr": 0.0979}, tied, order=2)
    p.trial_finished({"family": "cnn3", "width": 0.25, "k": 1, "lr": 0.0626}, tied, order=1)
    assert "| best 1.0000 (cnn3 w=0.25 k=1) |" in lines[-1]
    p.trial_finished({"family": "cnn3", "width": 1.0, "k": 1}, tied)  # no order known: the best stays
    assert "| best 1.0000 (cnn3 w=0.25 k=1) |" in lines[-1]
