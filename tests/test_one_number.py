"""One number per allocation: `tuneall train` and a search train with the same thread count and give the same
metrics for the same allocation and seeds; the CPU is recorded in provenance, compared on resume and part of member
keys; a trial's per-example validation bits agree with its validation accuracy."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from tuneall.core import bitvec
from tuneall.core.hardware import cpu_fingerprint, cpu_id, cpu_mismatch

POINT = dict(family="cnn3", width=0.25, k=2)
BUDGET, MIN_STEPS, SEEDS = 2e6, 20, 2


@pytest.fixture(autouse=True)
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_train_uses_one_thread_by_default_and_restores(tmp_path, monkeypatch):
    import tuneall.training.trial as T
    from tuneall.api import train

    seen, real = [], T.run_trial

    def spy(*a, **kw):
        seen.append(torch.get_num_threads())
        return real(*a, **kw)

    monkeypatch.setattr(T, "run_trial", spy)
    torch.set_num_threads(2)
    res = train(dataset="digits", budget=4000, min_steps=5, width=0.25, depth=1, k=2, seeds=1, batch_size=32,
                storage_path=str(tmp_path), name="t")
    assert seen == [1] and torch.get_num_threads() == 2  # search's default, then put back
    doc = json.loads((tmp_path / "t" / "train.json").read_text())
    assert doc["config"]["torch_threads"] == 1 and doc["cpu"] == cpu_fingerprint()
    # the ensemble's per-example validation bits are the validation accuracy, repeat by repeat
    for rep in res.repeats:
        assert bitvec.decode(rep[bitvec.CORRECT_COLUMN]).mean() == pytest.approx(rep["val_ensemble_acc"], abs=1e-12)


def test_cpu_fingerprint_and_mismatch_line():
    fp = cpu_fingerprint()
    assert fp["machine"] and fp["model"] and isinstance(fp["kernel_flags"], list)
    assert cpu_id(fp) == cpu_id()
    assert cpu_mismatch(None) is None and cpu_mismatch(fp) is None
    other = {**fp, "model": "Other CPU", "kernel_flags": ["avx512f"], "flags_sha": "x"}
    line = cpu_mismatch(other, {**fp, "kernel_flags": ["avx2"]})
    assert "recorded on Other CPU" in line and "missing here: avx512f" in line and "new here: avx2" in line
    assert "\n" not in line


def test_member_keys_carry_the_cpu():
    from tuneall.store.records import key_id, member_key

    kw = dict(family="cnn3", width=0.5, depth=3, train={"lr": 0.05}, data_fraction=1.0, seed=0, data_id="d",
              threads=1)
    key = member_key(**kw)
    assert key["cpu"] == cpu_id()
    assert key_id(key) != key_id({**key, "cpu": "Other CPU|x86_64|abc"})


@pytest.mark.slow
def test_train_and_search_give_identical_metrics(tmp_path):
    """The same allocation and seeds through `tuneall train` (API) and a one-point grid search on Ray: the same
    validation and test accuracy, NLL, per-example bits, repeat by repeat."""
    ray = pytest.importorskip("ray")
    import tuneall
    from tuneall.api import train
    from tuneall.planning.space import parse_space

    res = train(dataset="digits", budget=BUDGET, min_steps=MIN_STEPS, seeds=SEEDS, batch_size=32, **POINT)
    space = parse_space({"families": ["cnn3"], "width": [POINT["width"]], "k": [POINT["k"]], "batch_size": 32})
    ray.init(address="local", num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.2",
             configure_logging=False)
    try:
        tuneall.search(budget=BUDGET, dataset="digits", space=space, searcher="grid", seeds=SEEDS,
                       min_steps=MIN_STEPS, storage_path=str(tmp_path), name="s", verbose=0)
    finally:
        ray.shutdown()
    trials = pd.read_csv(tmp_path / "s" / "trials.csv", dtype={"trial_id": str}).sort_values("repeat")
    assert len(trials) == SEEDS and (trials["status"] == "ok").all()
    assert int(trials["steps"].iloc[0]) == res.plan.steps
    for (_, row), rep in zip(trials.iterrows(), res.repeats):
        for m in ("val_ensemble_acc", "ensemble_acc", "ensemble_nll", "val_ensemble_nll"):
            assert row[m] == rep[m], m  # bit for bit, not approximately
        assert row[bitvec.CORRECT_COLUMN] == rep[bitvec.CORRECT_COLUMN]
