"""A short real search read back by the ecosystem's own tools: optuna.load_study, Ray Tune's Tuner.restore /
ResultGrid and ExperimentAnalysis; --time-budget ends early with a complete, honest report; the saved best ensemble
reloads and reproduces its recorded accuracy."""

from __future__ import annotations

import json

import optuna
import pandas as pd
import pytest

TINY = {"name": "tiny", "families": ["cnn3"], "width": [0.25, 0.5], "k": [1, 2, 3], "batch_size": 32}


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    ray = pytest.importorskip("ray")
    import tuneall
    from tuneall.planning.space import parse_space

    ray.init(address="local", num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.2", configure_logging=False)
    tmp = tmp_path_factory.mktemp("eco")
    try:
        # 40 trials cannot fit in 15 s of wall clock: the time budget stops the launches.
        front = tuneall.search(budget=2e6, dataset="digits", space=parse_space(TINY), trials=40, seeds=2,
                               min_steps=20, storage_path=str(tmp), name="eco", time_budget=15, verbose=0)
        yield tmp / "eco", front
    finally:
        ray.shutdown()


@pytest.mark.slow
def test_time_budget_ends_early_with_a_complete_honest_report(searched):
    out, front = searched
    meta = json.loads((out / "tuneall.json").read_text())
    assert meta["state"] == "complete" and meta["time_budget"]["stopped"]
    ran = meta["time_budget"]["trials_run"]
    assert 1 <= ran < 40 and front.attrs["time_budget_reached"]
    trials = pd.read_csv(out / "trials.csv", dtype={"trial_id": str})
    assert trials["trial_id"].nunique() == ran and (trials["status"] == "ok").all()  # none killed mid-training
    summary = (out / "summary.md").read_text()
    assert f"{ran} of 40 planned trials ran" in summary and "Best allocation" in summary
    assert "disagreed" not in summary  # a fresh search's first report has no trials.csv to disagree with


@pytest.mark.slow
def test_optuna_load_study_reads_params_attrs_and_names(searched):
    out, _ = searched
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(out / "optuna.journal")))
    study = optuna.load_study(study_name="eco", storage=storage)
    assert study.metric_names == ["val_ensemble_acc_mean"]  # the default objective: chosen on validation
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert done
    for t in done:
        assert t.params["k"] in (1, 2, 3) and t.params["width"] in (0.25, 0.5) and t.user_attrs["family"] == "cnn3"
        # The value is the answer rule's score (tuneall.choice): the objective, ties broken below 1e-9.
        assert t.user_attrs["val_ensemble_acc_mean"] == pytest.approx(t.value, abs=1e-9) and t.user_attrs["steps"] > 0
        assert 0 < t.user_attrs["ensemble_acc_mean"] <= 1  # test reported beside it
        assert t.system_attrs["constraints"] == [0.0] and t.constraints["budget_feasible"] == 0.0


@pytest.mark.slow
def test_ray_reads_the_directory_without_arguments(searched):
    from ray import tune

    import tuneall.runner

    out, front = searched
    grid = tune.Tuner.restore(str(out), trainable=tuneall.runner.trainable).get_results()
    best = grid.get_best_result()  # metric and mode come from the search's TuneConfig
    assert best.metrics["val_ensemble_acc_mean"] == pytest.approx(grid.get_dataframe()["val_ensemble_acc_mean"].max())
    analysis = tune.ExperimentAnalysis(str(out), default_metric="val_ensemble_acc_mean", default_mode="max")
    assert analysis.best_config["k"] == best.config["k"]


@pytest.mark.slow
def test_saved_best_ensemble_reproduces_its_recorded_accuracy(searched):
    import tuneall

    out, front = searched
    best = front.iloc[0]
    kept = [d.name for d in (out / "members").iterdir() if d.is_dir()]
    assert kept == [str(best["trial_id"])]  # save_members='best': only the chosen allocation's weights
    ens = tuneall.load_ensemble(out)
    assert len(ens.members) == int(best["k"])
    trials = pd.read_csv(out / "trials.csv", dtype={"trial_id": str})
    for repeat in (0, 1):
        rec = trials[(trials["trial_id"] == str(best["trial_id"])) & (trials["repeat"] == repeat)]
        got = tuneall.load_ensemble(out, repeat=repeat).evaluate()["ensemble_acc"]
        assert got == pytest.approx(float(rec["ensemble_acc"].iloc[0]), abs=1e-12)
