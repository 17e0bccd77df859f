"""What Optuna's own tools read from a tuneall study: parameter names (k, not only k_index), every allocation field,
metrics as user attributes, metric names, and constraints under the key optuna-dashboard 0.21 reads."""

from __future__ import annotations

import optuna
from tuneall.core.budget import Budget
from tuneall.tuning.define_by_run import DefineByRun
from tuneall.planning.space import parse_space


def _untrainable(width, budget) -> bool:
    from tuneall.planning.factory import Allocation, max_feasible_k

    return max_feasible_k(Allocation(width=width), budget, "digits") == 0


def _study_run(tmp_path, space_doc, budget, n=10, metric="ensemble_acc_mean", mode="max"):
    from optuna.storages.journal import JournalFileBackend

    from tuneall.tuning._optuna import ConstrainedOptunaSearch

    storage = optuna.storages.JournalStorage(JournalFileBackend(str(tmp_path / "optuna.journal")))
    s = ConstrainedOptunaSearch(space=DefineByRun(parse_space(space_doc), budget, "digits"), metric=metric,
                                mode=mode, sampler=optuna.samplers.RandomSampler(seed=0), storage=storage,
                                study_name="s")
    configs = []
    for i in range(n):
        cfg = s.suggest(f"t{i}")
        configs.append(cfg)
        bad = _untrainable(cfg["width"], budget)
        s.on_trial_complete(f"t{i}", result={metric: 0.0 if bad else 0.5 + i / 100, "ensemble_acc_std": 0.01,
                                             "status": "infeasible" if bad else "ok", "steps": 100 + i,
                                             "curve_json": "[[1, 0.5]]", "constraint": 1.0 if bad else 0.0,
                                             "trial_id": f"t{i}"})
    return configs, optuna.load_study(study_name="s", storage=storage)


def _runs(configs, study):
    """(config, study trial) of every run; a suggestion of an answered point is marked and failed, not complete."""
    by_id = {f"t{i}": c for i, c in enumerate(configs)}
    done = optuna.trial.TrialState.COMPLETE
    assert all(t.user_attrs.get("redrawn") and t.state == optuna.trial.TrialState.FAIL
               for t in study.trials if t.state != done)
    pairs = [(by_id[t.user_attrs["trial_id"]], t) for t in study.trials if t.state == done]
    assert len(pairs) == len(configs)  # the complete trials are exactly the trials that ran
    assert {id(c) for c, _ in pairs} == {id(c) for c in configs}
    return pairs


def test_load_study_shows_allocation_params_metrics_and_constraints(tmp_path):
    # A continuous width: not restricted to trainable architectures (tuneall.tuning.sampling), so some draws are infeasible.
    doc = {"families": ["cnn3"], "width": {"low": 0.25, "high": 4.0, "log": True}, "k": [1, 2, 3], "lr": 0.05,
           "batch_size": 32}
    budget = Budget(1e6, min_steps=50)
    configs, study = _study_run(tmp_path, doc, budget)
    assert study.metric_names == ["ensemble_acc_mean"]
    assert study.user_attrs["constraints"] == ["budget_feasible"]
    # A suggestion of a point already answered is marked, failed and drawn again (never trained twice): the study's
    # complete trials are the runs, matched by the trial id they carry.
    for cfg, t in _runs(configs, study):
        # k itself (the value trained) and the sampled fields as params; fields fixed in the space are user attributes.
        assert t.params["k"] == cfg["k"]
        assert t.params["width"] == cfg["width"]
        assert not {"family", "lr", "batch_size", "data_fraction"} & set(t.params)
        assert t.user_attrs["family"] == "cnn3" and t.user_attrs["lr"] == 0.05 and t.user_attrs["batch_size"] == 32
        assert t.user_attrs["data_fraction"] == 1.0
        # Metrics as user attributes, without the long JSON columns.
        assert t.user_attrs["status"] in ("ok", "infeasible") and t.user_attrs["steps"] >= 100
        assert t.user_attrs["ensemble_acc_std"] == 0.01 and "curve_json" not in t.user_attrs
        assert t.user_attrs["trial_id"].startswith("t")
        bad = 1.0 if _untrainable(cfg["width"], budget) else 0.0
        # Optuna's named constraint, and the list key optuna-dashboard 0.21 serialises.
        assert t.constraints["budget_feasible"] == bad
        assert t.system_attrs["constraints"] == [bad]
    assert any(_untrainable(c["width"], budget) for c in configs)
    assert not all(_untrainable(c["width"], budget) for c in configs)
    assert not any(_untrainable(t.params["width"], budget) for t in study.best_trials)
    df = study.trials_dataframe()
    assert {"params_k", "params_width", "user_attrs_steps", "value_ensemble_acc_mean"} <= set(df.columns)


def test_multi_family_width_recorded_under_its_own_name(tmp_path):
    doc = {"families": ["cnn3", "resnet"], "width": [0.25, 0.5], "k": [1, 2],
           "per_family": {"resnet": {"width": [0.5, 1.0], "depth": [8]}}}
    configs, study = _study_run(tmp_path, doc, Budget(1e7, min_steps=20), n=8)
    assert {c["family"] for c in configs} == {"cnn3", "resnet"}
    for cfg, t in _runs(configs, study):
        assert t.params["k"] == cfg["k"]
        assert t.params.get("width", t.user_attrs.get("width")) == cfg["width"]


def test_a_tpe_repeat_is_redrawn_at_random_and_every_trial_trains_a_new_point():
    """TPE that has found a clear best keeps proposing it; a failed redraw teaches it nothing. The redraw comes from
    a seeded RandomSampler instead, so a 6-point space is covered in 6 trials with one failed redraw per repeat
    at most, and the same seed redraws the same points. Before, TPE redrew the best point MAX_REDRAWS times and let
    the repeat through (a trial spent on a journal answer)."""
    from collections import Counter

    from tuneall.tuning._optuna import ConstrainedOptunaSearch, DRAWN_BY

    space = DefineByRun(parse_space({"families": ["cnn3"], "width": [0.25, 0.5, 1.0], "k": [1, 2], "lr": 0.05}),
                        Budget(1e7, min_steps=20), "digits")

    def run():
        s = ConstrainedOptunaSearch(space=space, metric="acc", mode="max",
                                    sampler=optuna.samplers.TPESampler(seed=3, n_startup_trials=2))
        points = []
        for i in range(6):
            cfg = s.suggest(f"t{i}")
            points.append((cfg["width"], cfg["k"]))
            # width 1, k 1 is far the best: TPE's proposals keep coming back to it
            acc = 0.99 if (cfg["width"], cfg["k"]) == (1.0, 1) else 0.5
            s.on_trial_complete(f"t{i}", result={"acc": acc, "status": "ok", "constraint": 0.0,
                                                 "trial_id": f"t{i}"})
        return points, s._ot_study.trials, s.redrawn

    points, trials, redrawn = run()
    assert len(set(points)) == 6, points  # every trial a new point: the space covered, nothing answered twice
    states = Counter(t.state.name for t in trials)
    assert states["COMPLETE"] == 6 and states["FAIL"] == redrawn
    assert redrawn <= 12, redrawn  # a handful of failed draws, not MAX_REDRAWS per trial
    assert redrawn >= 1  # TPE did propose the best again (the case this guards)
    assert any(t.user_attrs.get(DRAWN_BY) == "random" for t in trials if t.state.name == "COMPLETE")
    assert run()[0] == points  # seeded: the same search redraws the same points
