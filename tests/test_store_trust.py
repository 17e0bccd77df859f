"""A member record answers only the request it was made for, and a search remembers its inputs: swapped, foreign,
truncated and stale records, an edited model or data file and a resume from another working directory never change
a number (each compared exactly with a fresh run), and halving's single-member floor reads a planned horizon."""

from __future__ import annotations

import json
import shutil
import textwrap

import pytest
import torch

from tuneall.core.budget import Budget
from tuneall.store import records as S
from tuneall.store.keys import family_fingerprint, rejected_line, run_ids, warn_rejected
from tuneall.store.reuse import architecture_plans, horizons, keyed_trainer
from tuneall.training.trial import run_trial, train_sequential

MODEL = textwrap.dedent('''
    import math
    from torch import nn

    def make(width, depth, input_shape, num_classes):
        h = max(1, round(12 * width))
        return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), h), nn.ReLU(), nn.Linear(h, num_classes))
''')
DATA = textwrap.dedent('''
    import torch

    def load():
        g = torch.Generator().manual_seed(SEED)
        x = torch.randn(240, 6, generator=g)
        y = (x[:, 0] + 0.5 * x[:, 1] > 0).long() + (x[:, 2] > 1).long()
        return x, y
''')
BUDGET = Budget(3e4, "param-steps", 10)


@pytest.fixture
def user(tmp_path, monkeypatch):
    """A user model file and data loader in their own directory (the working directory), resolved by path."""
    from tuneall.core.imports import _PINNED
    from tuneall.data.user import to_dataset
    from tuneall.models import resolve_family

    torch.set_num_threads(1)
    monkeypatch.setattr("tuneall.core.imports._PINNED", dict(_PINNED))
    src = tmp_path / "src"
    src.mkdir()
    (src / "m.py").write_text(MODEL)
    (src / "d.py").write_text(DATA.replace("SEED", "0"))
    monkeypatch.chdir(src)
    from tuneall.core.imports import import_object

    data = to_dataset(import_object("d.py:load"), "d.py:load")
    return {"dir": src, "family": resolve_family("m.py:make"), "data": data, "root": tmp_path}


def _plans(u, ks=(1, 2)):
    point = {"family": u["family"], "width": 1.0, "depth": 1, "k": max(ks), "data_fraction": 1.0, "batch_size": 16,
             "optimizer": "sgd", "lr": 0.05}
    return architecture_plans(point, ks, BUDGET, u["data"].info, repeats=1)


def _trial(u, store_dir, k=2, plans=None, data=None):
    """One grid trial through the member store (the run's fingerprints as the driver computes them)."""
    plans = plans or _plans(u)
    data = data or u["data"]
    tr = keyed_trainer(store_dir, data, run_ids(data, [u["family"]]), 1, horizons(k, plans, "grid"))
    return run_trial(plans[k], data, trainer=tr), tr


def _same(a, b):
    assert a.summary == b.summary and a.repeats == b.repeats and a.curve == b.curve and a.status == b.status


def _fresh(u, k=2, plans=None, data=None):
    plans = plans or _plans(u)
    return run_trial(plans[k], data or u["data"], trainer=train_sequential)


def test_swapped_records_are_misses_and_the_numbers_are_a_fresh_runs(user, tmp_path, capsys):
    run, tr = _trial(user, tmp_path / "r")
    fresh = _fresh(user)
    _same(run, fresh)
    a, b = sorted((tmp_path / "r" / S.STORE_DIR).glob("*.pt"))
    ta, tb = a.read_bytes(), b.read_bytes()
    a.write_bytes(tb)
    b.write_bytes(ta)
    # The k = 1 trial first: before keys were checked it continued member 1's state as member 0's (the issue's
    # wrong k = 1 accuracy after a swap); the k = 2 ensemble is symmetric in its members, the curve is not.
    one, tr1 = _trial(user, tmp_path / "r", k=1)
    _same(one, _fresh(user, k=1))
    again, tr = _trial(user, tmp_path / "r")
    _same(again, fresh)
    assert tr1.counts["store_records_rejected"] + tr.counts["store_records_rejected"] == 2
    assert tr1.counts["members_trained"] + tr.counts["members_trained"] == 2
    # The run says so once (the driver sums its trials' counts), not once per trial process.
    warn_rejected([tr1.counts, tr.counts, {"store_records_rejected": 1}])
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "3 record(s) did not match" in err and rejected_line(0) is None


def test_a_foreign_record_other_data_or_other_model_is_a_miss(user, tmp_path):
    other = user["data"]
    x = other.x_train.clone()
    x[0, 0] += 1.0  # one value of the training split differs
    from dataclasses import replace

    foreign_data = replace(other, x_train=x)
    _trial(user, tmp_path / "foreign", data=foreign_data)
    ours = tmp_path / "ours" / S.STORE_DIR
    ours.mkdir(parents=True)
    plans = _plans(user)
    ids_ours, ids_theirs = run_ids(user["data"], [user["family"]]), run_ids(foreign_data, [user["family"]])
    assert ids_ours["data"] != ids_theirs["data"]
    t_ours = keyed_trainer(tmp_path / "ours", user["data"], ids_ours, 1)
    t_theirs = keyed_trainer(tmp_path / "foreign", foreign_data, ids_theirs, 1)
    for seed in plans[2].seeds[0]:  # their records put under the names our keys ask for
        shutil.copy(t_theirs.store.path(S.key_id(t_theirs.key(plans[2], seed))),
                    ours / f"{S.key_id(t_ours.key(plans[2], seed))}.pt")
    run, tr = _trial(user, tmp_path / "ours")
    _same(run, _fresh(user))
    assert tr.counts["store_records_rejected"] == 2
    # Another model's code under our key's name is refused the same way (the key holds the code's fingerprint).
    rec = S.MemberStore(ours).load(S.key_id(t_ours.key(plans[2], 0)))
    alien = S.Record(**{**rec.__dict__, "key": {**rec.key, "model": "other code"}})
    torch.save({"format": S.FORMAT, "record": alien.__dict__}, ours / f"{S.key_id(t_ours.key(plans[2], 0))}.pt")
    run, tr = _trial(user, tmp_path / "ours")
    _same(run, _fresh(user))
    assert tr.counts["store_records_rejected"] == 1 and tr.counts["members_trained"] == 1


def test_a_truncated_record_is_a_miss(user, tmp_path):
    _trial(user, tmp_path / "r")
    for p in (tmp_path / "r" / S.STORE_DIR).glob("*.pt"):
        p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    run, tr = _trial(user, tmp_path / "r")
    _same(run, _fresh(user))
    assert tr.counts["store_records_rejected"] == 2 and tr.counts["members_reused"] == 0


def test_a_record_of_the_model_before_an_edit_is_stale(user, tmp_path):
    """ReLU -> Tanh in the user's file, same parameter count: the old records answer nothing."""
    from tuneall.models import param_count, resolve_family

    before = _plans(user)[2].params_per_member
    relu_id = family_fingerprint(user["family"])
    _trial(user, tmp_path / "r")
    (user["dir"] / "m.py").write_text(MODEL.replace("nn.ReLU()", "nn.Tanh()"))
    assert resolve_family("m.py:make") == user["family"]  # re-registered under the same name
    assert family_fingerprint(user["family"]) != relu_id
    plans = _plans(user)
    assert plans[2].params_per_member == before == param_count(user["family"], 1.0, 1, num_classes=3, input_shape=(6,))
    run, tr = _trial(user, tmp_path / "r", plans=plans)
    _same(run, _fresh(user, plans=plans))
    assert tr.counts["members_reused"] == 0 and tr.counts["members_trained"] == 2
    # And the ReLU run's numbers were not these: the test can tell the models apart.
    (user["dir"] / "m.py").write_text(MODEL)
    resolve_family("m.py:make")
    assert _fresh(user).summary != run.summary


def _search_dir(u, name="s"):
    """A search's results directory as a run writes it at its start (config and inputs), left interrupted."""
    from tuneall import api
    from tuneall.rundir import results as R
    from tuneall.tuning.driver import SearchConfig
    from tuneall.tuning.inputs import KEY, record

    cfg = SearchConfig(budget=BUDGET, space=api.make_space(family="m.py:make", widths=[1.0], k=[1, 2],
                                                           batch_size=16), dataset="d.py:load", searcher="grid",
                       seeds=1, name=name, storage_path=str(u["root"] / "results"))
    out = cfg.results_dir
    out.mkdir(parents=True)
    meta = {**R.provenance(cfg.to_json(), ["search"]), KEY: record(cfg.space, cfg.dataset, u["data"])}
    R.write_meta(out, meta, "interrupted")
    return cfg, out


def test_resume_from_another_directory_uses_the_kept_copies(user, tmp_path, monkeypatch, capsys):
    """A relative --model m.py:make resumed elsewhere: neither 'damaged' nor the other directory's m.py."""
    from tuneall.models import _registry, get_family
    from tuneall.tuning.driver import config_from_dir
    from tuneall.tuning.inputs import check

    _, out = _search_dir(user)
    meta = json.loads((out / "tuneall.json").read_text())
    assert meta["inputs"]["models"][0]["file"] == str(user["dir"] / "m.py")  # resolved once, at the start
    assert "nn.ReLU()" in meta["inputs"]["models"][0]["source"] and "def load" in meta["inputs"]["data"]["source"]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "m.py").write_text(MODEL.replace("nn.ReLU()", "nn.Tanh()"))  # another m.py, found here
    monkeypatch.chdir(elsewhere)
    _registry._REGISTRY.pop(user["family"])  # a new process: nothing registered
    from tuneall.data import user as user_data

    user_data._USER.clear()
    cfg = config_from_dir(out)
    net = get_family(cfg.space.families[0]).builder(1.0, 1, (6,), 3)
    assert any(isinstance(m, torch.nn.ReLU) for m in net.modules())  # the kept copy, not ./m.py
    from tuneall.data import load_dataset

    data = load_dataset(cfg.dataset)
    assert torch.equal(data.x_train, user["data"].x_train)
    check(meta, cfg.space, cfg.dataset, data, out)  # same code, same data: resumable
    assert capsys.readouterr().out == ""  # nothing changed on disk: nothing said


def test_edited_files_before_resume_are_named_once_and_never_mixed_in(user, tmp_path, monkeypatch, capsys):
    from tuneall.data import load_dataset
    from tuneall.data import user as user_data
    from tuneall.models import _registry, get_family
    from tuneall.tuning.driver import config_from_dir
    from tuneall.tuning.inputs import check

    _, out = _search_dir(user)
    meta = json.loads((out / "tuneall.json").read_text())
    (user["dir"] / "m.py").write_text(MODEL.replace("nn.ReLU()", "nn.Tanh()"))
    (user["dir"] / "d.py").write_text(DATA.replace("SEED", "1"))
    _registry._REGISTRY.pop(user["family"])
    user_data._USER.clear()
    cfg = config_from_dir(out)
    said = capsys.readouterr().out.splitlines()
    assert len(said) == 2 and all("changed since the search started" in s for s in said)
    assert str(user["dir"] / "m.py") in said[0] + said[1] and str(user["dir"] / "d.py") in said[0] + said[1]
    net = get_family(cfg.space.families[0]).builder(1.0, 1, (6,), 3)
    assert any(isinstance(m, torch.nn.ReLU) for m in net.modules())
    data = load_dataset(cfg.dataset)
    assert torch.equal(data.x_train, user["data"].x_train)
    check(meta, cfg.space, cfg.dataset, data, out)
    # Members trained in the resumed run are the original model's on the original data, number for number.
    plans = _plans({**user, "family": cfg.space.families[0], "data": data})
    run, _ = _trial({**user, "family": cfg.space.families[0]}, tmp_path / "r", plans=plans, data=data)
    _same(run, _fresh(user, plans=_plans(user)))


def test_a_search_resume_with_an_edited_model_or_other_data_is_refused_in_one_line(user, tmp_path):
    from dataclasses import replace

    from tuneall.core.errors import ConfigError
    from tuneall.models import resolve_family
    from tuneall.tuning.inputs import check

    cfg, out = _search_dir(user)
    meta = json.loads((out / "tuneall.json").read_text())
    x = user["data"].x_test.clone()
    x[3, 1] = 7.0
    with pytest.raises(ConfigError) as err:  # e.g. a file the loader reads was replaced
        check(meta, cfg.space, cfg.dataset, replace(user["data"], x_test=x), out)
    assert "its tensors differ" in str(err.value) and "\n" not in str(err.value)
    (user["dir"] / "m.py").write_text(MODEL.replace("nn.ReLU()", "nn.Tanh()"))
    resolve_family("m.py:make")  # `tuneall search --resume` imports the file as it is now
    with pytest.raises(ConfigError) as err:
        check(meta, cfg.space, cfg.dataset, user["data"], out)
    assert str(user["dir"] / "m.py") in str(err.value) and "\n" not in str(err.value)


def test_halvings_single_member_floor_reads_a_planned_horizon_not_whatever_is_stored(user, tmp_path):
    """The same rung trial, once on an empty store and once where member 0 was already trained to the full T (as a
    trial on another node might have left it): the floor's curve is the same, number for number."""
    from dataclasses import replace

    from tuneall.core.config import Resources
    from tuneall.runner import TrialContext
    from tuneall.store.reuse import arch_key
    from tuneall.tuning.rungs import rung_job, rung_points
    from tuneall.tuning.halving import RUNGS

    plans = _plans(user, ks=(1, 2, 4))
    point = {"family": user["family"], "width": 1.0, "depth": 1, "k": 4, "data_fraction": 1.0, "batch_size": 16,
             "optimizer": "sgd", "lr": 0.05}
    ids = run_ids(user["data"], [user["family"]])

    def rung(results_dir):
        ctx = TrialContext(job=rung_job, resources=Resources(), seeds=1, seed=0, budget=BUDGET, unit=BUDGET.unit,
                           min_steps=BUDGET.min_steps, results_dir=str(results_dir),
                           reuse={"mode": "grid", "ks": {arch_key(point): [1, 2, 4]}, "ids": ids})
        got = rung_job({"trial": {"points": [{**point, "k": k} for k in (1, 2, 4)]}, "fraction": RUNGS[0]}, ctx,
                       user["data"])
        return next(e["metrics"] for e in rung_points(got) if e["point"]["k"] == 4)

    empty = rung(tmp_path / "a")
    assert len(empty["member_steps_curve"]) >= 3  # a real curve: the floor is read from it
    # Member 0 already run to the k = 1 allocation's full T, evaluated at every step (another trial's doing).
    full = plans[1]
    longer = keyed_trainer(tmp_path / "b", user["data"], ids, torch.get_num_threads(),
                           [(full.steps, tuple(range(1, full.steps)))])
    longer(replace(full, seeds=((full.seeds[0][0],),)), user["data"], None, tuple(range(1, full.steps)))
    stored = rung(tmp_path / "b")
    assert max(stored["member_steps_curve"]) < full.steps
    assert stored["member_steps_curve"] == empty["member_steps_curve"]
    assert stored["member_curve"] == empty["member_curve"]


@pytest.mark.slow
def test_cli_resume_from_another_directory_after_edits_trains_the_recorded_model_on_the_recorded_data(
        user, tmp_path, monkeypatch, capsys):
    """A search started with a relative `--model m.py:make --data d.py:load` and interrupted before its first trial;
    m.py and d.py edited; `tuneall resume DIR` from a directory holding another m.py: exit 0, one line per edited
    file, and each trial has the numbers of a fresh run of the original model on the original data, exactly."""
    from tuneall import cli
    from tuneall.planning.points import plan_point
    from tuneall.rundir import journal

    cfg, out = _search_dir(user)
    plans = {p["k"]: plan_point(p, BUDGET, user["data"].info, repeats=1)
             for p in [{"family": user["family"], "width": 1.0, "depth": 1, "k": k, "data_fraction": 1.0,
                        "batch_size": 16} for k in (1, 2)]}
    fresh = {k: run_trial(p, user["data"], trainer=train_sequential).metrics() for k, p in plans.items()}
    (user["dir"] / "m.py").write_text(MODEL.replace("nn.ReLU()", "nn.Tanh()"))
    (user["dir"] / "d.py").write_text(DATA.replace("SEED", "1"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "m.py").write_text(MODEL.replace("nn.ReLU()", "nn.GELU()"))
    monkeypatch.chdir(elsewhere)
    from tuneall.data import user as user_data
    from tuneall.models import _registry

    _registry._REGISTRY.pop(user["family"], None)  # as a new process would start
    user_data._USER.clear()
    capsys.readouterr()
    assert cli.main(["resume", str(out), "--verbose", "0", "--num-cpus", "1"]) == 0
    said = [s for s in capsys.readouterr().out.splitlines() if "changed since the search started" in s]
    assert len(said) == 2
    got = {r["metrics"]["k"]: r["metrics"] for r in journal.read(out)}
    assert sorted(got) == [1, 2]
    for k, m in fresh.items():
        assert {n: got[k][n] for n in m if n.endswith(("_mean", "_std"))} == {
            n: v for n, v in m.items() if n.endswith(("_mean", "_std"))}
        assert got[k]["ensemble_acc_mean"] > 0.4
