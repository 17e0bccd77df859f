"""A member store shared across runs (``--member-store DIR``): the option checked before anything is written, recorded
for resume, served by the driver's store service (its locks exclude trainers of other runs), nothing but member
records in the folder; a sweep after a search answers and continues the search's members bit for bit."""

from __future__ import annotations

import json
import os

import pandas as pd
import pytest

from tuneall.core.errors import ConfigError
from tuneall.store import records as S
from tuneall.store.shared import check_member_store, store_root

from test_cli import assert_user_error, run_main


def test_member_store_values_are_checked_before_anything_is_written(tmp_path, monkeypatch):
    assert check_member_store(True) is True and check_member_store(False) is False
    monkeypatch.chdir(tmp_path)
    assert check_member_store("shared/store") == str(tmp_path / "shared" / "store")  # absolute, not created
    assert not (tmp_path / "shared").exists()
    (tmp_path / "file").write_text("x")
    bad = {str(tmp_path / "file"): "is a file", str(tmp_path / "file" / "sub"): "cannot be created",
           "s3://bucket/store": "got the URI", "": "True, False or a directory", 3: "True, False or a directory"}
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "tuneall.json").write_text("{}")
    bad[str(tmp_path / "run")] = "is a results directory"
    for value, needle in bad.items():
        with pytest.raises(ConfigError, match=needle):
            check_member_store(value)
    (tmp_path / "ro").mkdir()
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: real(p, mode) and "ro" not in str(p))
    with pytest.raises(ConfigError, match="not writable"):
        check_member_store(tmp_path / "ro")
    with pytest.raises(ConfigError, match="cannot be created"):
        check_member_store(tmp_path / "ro" / "new")
    assert store_root(tmp_path / "r", True) == tmp_path / "r" / S.STORE_DIR
    assert store_root(tmp_path / "r", str(tmp_path / "s")) == tmp_path / "s"


@pytest.mark.parametrize("extra, needle", [
    (["--member-store", "FILE"], "is a file"),
    (["--member-store", "DIR", "--no-member-store"], "contradict"),
])
@pytest.mark.parametrize("verb", ["search", "sweep"])
def test_cli_refuses_a_bad_member_store_in_one_line_and_writes_nothing(capsys, tmp_path, verb, extra, needle):
    (tmp_path / "FILE").write_text("x")
    extra = [str(tmp_path / e) if e in ("FILE", "DIR") else e for e in extra]
    budget = ["--budget", "1e6", "--searcher", "grid"] if verb == "search" else ["--budgets", "1e6,3e6",
                                                                                "--executor", "local"]
    rc, _, err = run_main(capsys, [verb, "--dataset", "digits", *budget, "--widths", "0.25", "--k", "1",
                                   "--storage-path", str(tmp_path / "results"), "--verbose", "0", *extra])
    assert_user_error(rc, err, needle)
    assert not (tmp_path / "results").exists() and not (tmp_path / "DIR").exists()


def test_the_shared_store_is_recorded_and_a_resume_uses_it(tmp_path):
    from tuneall.api import make_space
    from tuneall.core.budget import Budget
    from tuneall.rundir import results as R
    from tuneall.sweeping.driver import SweepConfig
    from tuneall.tuning.config import SearchConfig, config_from_dir

    shared = tmp_path / "shared"
    cfg = SearchConfig(budget=Budget(1e6), space=make_space(None, family="cnn3", widths=[0.25], k=[1]),
                       dataset="digits", searcher="grid", storage_path=str(tmp_path / "results"), name="s",
                       member_store=str(shared))
    assert cfg.to_json()["member_store"] == str(shared)
    out = cfg.results_dir
    out.mkdir(parents=True)
    R.write_meta(out, R.provenance(cfg.to_json(), ["tuneall", "search"]), "interrupted")
    assert config_from_dir(out).member_store == str(shared)
    assert config_from_dir(out).resume
    sw = SweepConfig(budgets=(1e6, 3e6), space=cfg.space, dataset="digits", member_store=str(shared))
    assert sw.to_json()["member_store"] == str(shared)
    with pytest.raises(ConfigError, match="is a results directory"):
        SweepConfig(budgets=(1e6, 3e6), space=cfg.space, dataset="digits", member_store=str(out))


def test_the_service_serves_the_shared_folder_and_its_locks_exclude_other_runs(tmp_path):
    from tuneall.store.service import StoreService

    shared = tmp_path / "shared"
    svc = StoreService(str(tmp_path / "run"), 30.0, str(shared))
    assert svc.store.root == shared
    other = S.MemberStore(shared)  # another run's trainer on the same disk
    assert svc.try_lock("abc", "t1")
    with other.lock("abc", blocking=False) as held:
        assert held is False  # the service's lease holds the member's lock file
    assert not svc.try_lock("abc", "t2")
    svc.unlock("abc", "t1")
    with other.lock("abc", blocking=False) as held:
        assert held is True
        assert not svc.try_lock("abc", "t3")  # and the other way round
    assert svc.try_lock("abc", "t3")
    svc.unlock("abc", "t3")
    assert sorted(p.name for p in shared.iterdir()) == ["abc.lock"]
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_a_sweep_after_a_search_continues_its_members_bit_for_bit(tmp_path):
    """A grid search at C, then a sweep over {C/2, C, 2C} sharing its store: the sweep's cells equal the same sweep
    on a store of its own, and it trains only what the search did not (plus replays from grid states)."""
    from tuneall.api import search, sweep
    from tuneall.rundir import journal

    shared = tmp_path / "shared"
    common = dict(dataset="digits", widths=[0.25], k=[1, 2, 4], seeds=1, min_steps=10, verbose=0,
                  storage_path=str(tmp_path / "results"))
    front = search(2e6, searcher="grid", name="search", member_store=str(shared), num_cpus=1, confirm=False,
                   **common)
    out = tmp_path / "results" / "search"
    assert json.loads((out / "tuneall.json").read_text())["config"]["member_store"] == str(shared)
    assert not (out / S.STORE_DIR).exists()
    assert {p.suffix for p in shared.iterdir()} <= {".pt", ".lock"}
    searched = sum(r["metrics"]["member_steps_trained"] for r in journal.read(out))
    assert front.attrs["complete"]
    budgets = (1e6, 2e6, 4e6)
    a = sweep(budgets, name="shared", member_store=str(shared), executor="local", **common)
    b = sweep(budgets, name="own", executor="local", **common)
    key = ["width", "k", "budget", "rule", "repeat"]
    ca = pd.read_csv(a / "cells.csv").sort_values(key, ignore_index=True)
    cb = pd.read_csv(b / "cells.csv").sort_values(key, ignore_index=True)
    for col in ("ensemble_acc", "val_ensemble_acc", "ensemble_nll"):
        assert (ca[col].to_numpy() == cb[col].to_numpy()).all(), col
    ma = json.loads((a / "sweep.json").read_text())
    mb = json.loads((b / "sweep.json").read_text())["sweep"]
    assert ma["config"]["member_store"] == str(shared)
    replayed = ma["sweep"]["member_steps_replayed"]
    assert ma["sweep"]["member_steps_trained"] - replayed == mb["member_steps_trained"] - searched
    assert replayed <= 0.25 * searched
    assert {p.suffix for p in shared.iterdir()} <= {".pt", ".lock"}
