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
    """(config, study trial) of every run and of every answered repeat told for it."""
    by_id = {f"t{i}": c for i, c in enumerate(configs)}
    pairs = [(by_id[t.user_attrs["trial_id"]], t) for t in study.trials]
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
    # A suggestion of a point already answered is told at once with that answer and drawn again (never trained twice),
    # so the study can hold more trials than were run: match them to the runs by the trial id they carry.
    for cfg, t in _runs(configs, study):
        # k itself (the value trained), and every allocation field, fixed ones included.
        assert t.params["k"] == cfg["k"]
        assert t.params["width"] == cfg["width"]
        assert t.params["family"] == "cnn3" and t.params["lr"] == 0.05 and t.params["batch_size"] == 32
        assert t.params["data_fraction"] == 1.0
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
