"""A results directory is owned by one process, and a damaged one gives one line or a report that says what it could
not read: never a traceback, never a complete-looking report of partial data. Built from constructed journal
records (no training, no Ray)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from tuneall.rundir import journal
from tuneall.rundir import results as R
from tuneall.cli import main

N = 17
PLAN = {"params_per_member": 1000, "total_params": 1000, "steps": 100, "train_flops": 1e9, "inference_flops": 1e4,
        "budget": 3e6, "unit": "param-steps", "spent": 3e6}


def record(i: int) -> dict:
    point = {"family": "cnn3", "width": 0.25 * (1 + i % 6), "depth": 3, "k": 1 + i // 6, "data_fraction": 1.0,
             "lr": 0.05, "momentum": 0.9, "batch_size": 32}
    accs = [0.5 + 0.02 * i, 0.51 + 0.02 * i]
    repeats = [{"ensemble_acc": a, "ensemble_nll": 1 - a, "ensemble_ece": 0.01, "member_acc_mean": a,
                "disagreement": 0.1} for a in accs]
    metrics = {**point, **PLAN, "status": "ok", "train_time_s": 1.0, "wall_time_s": 1.0, "n_diverged": 0,
               "repeats_json": json.dumps(repeats), "ensemble_acc_mean": sum(accs) / 2, "constraint": 0.0}
    return {"trial_id": f"{i:08x}", "config": {"point": point}, "metrics": metrics, "error": None}


def search_dir(tmp_path):
    """A finished search of N trials as `tuneall search` leaves it (config from a real SearchConfig)."""
    from tuneall.api import make_space
    from tuneall.core.budget import Budget
    from tuneall.tuning.driver import SearchConfig

    cfg = SearchConfig(budget=Budget(3e6, min_steps=20), space=make_space("paper"), dataset="digits", trials=N,
                       seeds=2, name="s", storage_path=str(tmp_path), searcher="random")
    d = tmp_path / "s"
    d.mkdir()
    for i in range(N):
        journal.append(d, record(i))
    R.write_meta(d, {**R.provenance(cfg.to_json(), ["tuneall", "search"]), "trials_finished": N}, "complete")
    assert main(["report", str(d)]) == 0
    return d


def _edit_meta(d, fn):
    doc = json.loads((d / R.META).read_text())
    fn(doc)
    (d / R.META).write_text(json.dumps(doc))


def _cut_half(path):
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])


def _space_yaml(text):
    def fn(doc):
        doc["config"]["space"]["yaml"] = text
    return fn


# (case, damage, report exit code, resume exit code): every exit 2 is one line naming the file
META_CASES = [
    ("cut in half", lambda d: _cut_half(d / R.META), 2, 2),
    ("{}", lambda d: (d / R.META).write_text("{}"), 2, 2),
    ("an array", lambda d: (d / R.META).write_text("[1, 2]"), 2, 2),
    ("binary", lambda d: (d / R.META).write_bytes(b"\x00\xff\xfe" * 40), 2, 2),
    ("config a string", lambda d: _edit_meta(d, lambda m: m.update(config="x")), 2, 2),
    ("budget value a string", lambda d: _edit_meta(d, lambda m: m["config"]["budget"].update(value="big")), 2, 2),
    ("seeds a list", lambda d: _edit_meta(d, lambda m: m["config"].update(seeds=[3])), 2, 2),
    ("state a number", lambda d: _edit_meta(d, lambda m: m.update(state=7)), 2, 2),
    ("state unknown", lambda d: _edit_meta(d, lambda m: m.update(state="done")), 2, 2),
    ("command an object", lambda d: _edit_meta(d, lambda m: m.update(command={})), 2, 2),
    ("no budget", lambda d: _edit_meta(d, lambda m: m["config"].pop("budget")), 0, 2),
    # the report needs no space; a resume does, and names what is wrong with it
    ("invalid space", lambda d: _edit_meta(d, _space_yaml("families: [nope]\n")), 0, 2),
    ("space not YAML", lambda d: _edit_meta(d, _space_yaml("{: [")), 0, 2),
    ("space a number", lambda d: _edit_meta(d, lambda m: m["config"].update(space=5)), 2, 2),
]


@pytest.mark.parametrize("case,damage,report_rc,resume_rc", META_CASES, ids=[c[0] for c in META_CASES])
def test_damaged_tuneall_json(tmp_path, capsys, case, damage, report_rc, resume_rc):
    d = search_dir(tmp_path)
    capsys.readouterr()
    damage(d)
    for argv, rc in ((["report", str(d)], report_rc), (["resume", str(d)], resume_rc)):
        assert main(argv) == rc, argv
        err = capsys.readouterr().err
        assert "Traceback" not in err
        if rc == 2:
            assert len(err.strip().splitlines()) == 1 and "tuneall.json" in err, err


def _append(d, data: bytes):
    with open(d / R.JOURNAL, "ab") as f:
        f.write(data)


def _keep_lines(path, n):
    path.write_bytes(b"".join(path.read_bytes().splitlines(keepends=True)[:n]))


def _trials_rows(d, n):
    df = pd.read_csv(d / R.TRIALS, dtype=str)
    df[df["trial_id"].isin(df["trial_id"].unique()[:n])].to_csv(d / R.TRIALS, index=False)


def _bad_contents(d):
    rec = record(99)
    rec["metrics"]["repeats_json"] = 5  # valid JSON, a record of the right shape, contents that are not
    journal.append(d, rec)


# (case, damage, words on stderr (one warning line), INCOMPLETE in summary.md, trials in the rebuilt table)
JOURNAL_CASES = [
    ("wrong shape lines", lambda d: _append(d, b'[1, 2]\n{"trial_id": 5, "config": {}, "metrics": {}}\n'),
     "skipped 2 damaged line(s)", True, N),
    ("binary appended", lambda d: _append(d, bytes(range(256)) * 4), "skipped", True, N),
    ("torn last line", lambda d: _append(d, b'{"trial_id": "ab'), "cut short by a kill", True, N),
    ("record contents unusable", _bad_contents, "unusable contents", True, N),
    ("journal cut to 3 of 17", lambda d: _keep_lines(d / R.JOURNAL, 3), "disagreed", True, 3),
    ("trials.csv truncated", lambda d: _cut_half(d / R.TRIALS), "rebuilt from the journal", False, N),
    ("trials.csv binary", lambda d: (d / R.TRIALS).write_bytes(b"\x00\x01\xff" * 100), "unreadable", False, N),
    ("trials.csv without trial_id", lambda d: pd.read_csv(d / R.TRIALS).drop(columns="trial_id").to_csv(
        d / R.TRIALS, index=False), "unreadable", False, N),
    ("trials.csv 3 of 17 trials", lambda d: _trials_rows(d, 3), "held 3 of the journal's 17", False, N),
    ("trials.csv deleted", lambda d: (d / R.TRIALS).unlink(), "unreadable", False, N),
]


@pytest.mark.parametrize("case,damage,words,incomplete,n", JOURNAL_CASES, ids=[c[0] for c in JOURNAL_CASES])
def test_report_rebuilds_from_the_journal_and_says_what_it_could_not_read(tmp_path, capsys, case, damage, words,
                                                                          incomplete, n):
    d = search_dir(tmp_path)
    capsys.readouterr()
    damage(d)
    assert main(["report", str(d)]) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and words in err, err
    assert all(line.startswith("tuneall: warning:") for line in err.strip().splitlines())
    trials = pd.read_csv(d / R.TRIALS, dtype={"trial_id": str})
    assert trials["trial_id"].nunique() == n  # rebuilt from the journal, not from the damaged table
    md = (d / R.SUMMARY).read_text()
    assert ("INCOMPLETE" in md) == incomplete
    assert f"Trials: {n} ok" in md
    if incomplete and n < N:
        assert f"{n} of the {N} trials" in md


@pytest.mark.parametrize("damage,words", [
    (lambda d: (d / R.JOURNAL).write_bytes(b"\x00\xff" * 50 + b"\n[]\n"), "no trial could be read"),
    (lambda d: ((d / R.JOURNAL).unlink(), (d / R.TRIALS).write_bytes(b"\x00" * 10)), "no journal to rebuild"),
    (lambda d: ((d / R.JOURNAL).unlink(), pd.read_csv(d / R.TRIALS).drop(columns="status").to_csv(
        d / R.TRIALS, index=False)), "no 'status' column"),
], ids=["journal all damaged", "no journal, binary trials.csv", "no journal, trials.csv without status"])
def test_report_with_nothing_readable_is_one_line(tmp_path, capsys, damage, words):
    d = search_dir(tmp_path)
    capsys.readouterr()
    damage(d)
    assert main(["report", str(d)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and words in err, err


# --- one process per directory ------------------------------------------------------------------------------------

def _hold_lock_in_another_process(d):
    code = ("import sys, time; from tuneall.rundir.lock import DirectoryLock; l = DirectoryLock(sys.argv[1]).acquire(); "
            "print('held', flush=True); time.sleep(60)")
    p = subprocess.Popen([sys.executable, "-c", code, str(d)], stdout=subprocess.PIPE, text=True,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert p.stdout.readline().strip() == "held"
    return p


@pytest.mark.parametrize("verb", ["resume", "search --resume", "report", "search (new name taken)"])
def test_a_directory_in_use_is_refused_naming_the_owner(tmp_path, capsys, verb):
    d = search_dir(tmp_path)
    capsys.readouterr()
    before = {p.name: p.read_bytes() for p in d.iterdir() if p.name != "tuneall.lock"}
    owner = _hold_lock_in_another_process(d)
    try:
        argv = {"resume": ["resume", str(d)], "report": ["report", str(d)],
                "search --resume": ["search", "--budget", "3e6", "--min-steps", "20", "--space", "paper", "--seeds",
                                    "2", "--trials", str(N), "--searcher", "random", "--storage-path", str(tmp_path),
                                    "--name", "s", "--resume"],
                "search (new name taken)": ["search", "--budget", "3e6", "--storage-path", str(tmp_path), "--name",
                                            "s"]}[verb]
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and f"pid {owner.pid}" in err and "in use" in err, err
    finally:
        owner.kill()
        owner.wait()
    assert {p.name: p.read_bytes() for p in d.iterdir() if p.name != "tuneall.lock"} == before


def test_owned_refuses_a_second_owner_and_cleans_up_a_refused_new_directory(tmp_path):
    from tuneall.core.errors import ConfigError

    new = tmp_path / "new"
    with pytest.raises(RuntimeError):
        with R.owned(new):
            assert (new / "tuneall.lock").exists()
            with pytest.raises(ConfigError, match=f"pid {os.getpid()}"):
                with R.owned(new, existing=True):
                    pass
            raise RuntimeError("refused later (e.g. the cluster cannot hold a trial)")
    assert not new.exists()  # nothing but the lock was written: the directory is removed again
    with R.owned(new):
        (new / R.META).write_text("{}")
    with pytest.raises(ConfigError, match="already exists"):  # made by another run between check and lock
        with R.owned(new):
            pass
    assert (new / R.META).exists()


# --- the sampler after a resume -----------------------------------------------------------------------------------

SAMPLER_SPACE = {"name": "s", "families": ["cnn3"], "width": [0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0],
                 "k": [1, 2, 3, 4], "batch_size": 32}


def _suggest(cfg, storage_path, n, answered, start):
    import optuna
    from optuna.storages.journal import JournalFileBackend

    from tuneall.tuning.define_by_run import DefineByRun
    from tuneall.tuning.study import make_searcher as _make_searcher

    storage = optuna.storages.JournalStorage(JournalFileBackend(str(storage_path)))
    searcher = _make_searcher(cfg, DefineByRun(cfg.space, cfg.budget, cfg.dataset), storage, answered=answered)
    points = []
    for i in range(start, start + n):
        config = searcher.suggest(f"t{i}")
        points.append(journal.point_key(config))
        searcher.on_trial_complete(f"t{i}", {"ensemble_acc_mean": 0.5 + 0.01 * i, "status": "ok",
                                             "constraint": 0.0})
    return points, searcher


@pytest.mark.parametrize("searcher", ["random", "tpe"])
def test_a_resumed_sampler_continues_instead_of_replaying_its_opening(tmp_path, monkeypatch, searcher):
    pytest.importorskip("ray")
    from tuneall.tuning import study, driver as tuner
    from tuneall.core.budget import Budget
    from tuneall.planning.space import parse_space

    cfg = tuner.SearchConfig(budget=Budget(3e7, min_steps=20), space=parse_space(SAMPLER_SPACE), dataset="digits",
                             searcher=searcher, seed=3, name="s", storage_path=str(tmp_path))
    opening, _ = _suggest(cfg, tmp_path / "a.journal", 4, {}, 0)
    answered = {k: {"ensemble_acc_mean": 0.5, "status": "ok", "constraint": 0.0} for k in opening}
    after, s = _suggest(cfg, tmp_path / "a.journal", 4, answered, 4)
    assert s.sampler_seed != 3  # derived from (seed, trials told)
    assert after != opening
    assert not set(after) & set(opening)  # no trial spent on a point already answered

    # What the test guards against: the same seed again replays the opening exactly.
    monkeypatch.setattr(study, "sampler_seed", lambda seed, told: seed)
    replay, _ = _suggest(cfg, tmp_path / "b.journal", 4, {}, 0)
    (tmp_path / "c.journal").write_bytes((tmp_path / "b.journal").read_bytes())
    again, _ = _suggest(cfg, tmp_path / "c.journal", 4, {}, 4)
    assert replay == opening
    if searcher == "random":
        assert again == opening


def test_sampler_seed_is_the_seed_for_a_fresh_search_and_differs_after_each_resume():
    from tuneall.tuning.study import sampler_seed

    assert sampler_seed(7, 0) == 7
    seeds = {sampler_seed(7, n) for n in range(1, 50)}
    assert len(seeds) == 49 and all(0 <= s < 2**31 for s in seeds)
    assert sampler_seed(7, 5) == sampler_seed(7, 5) != sampler_seed(8, 5)


def test_a_killed_run_warns_once_about_damaged_journal_lines(tmp_path, capsys):
    from tuneall.tuning.driver import _read_journal

    d = tmp_path
    journal.append(d, record(0))
    _append(d, b"\x00garbage\n")
    journal.append(d, record(1))
    assert [r["trial_id"] for r in _read_journal(d)] == [record(0)["trial_id"], record(1)["trial_id"]]
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "line 2" in err and "run again" in err


def test_a_point_being_trained_now_is_not_handed_to_a_second_trial(tmp_path):
    pytest.importorskip("ray")
    from tuneall.tuning import study, driver as tuner
    from tuneall.core.budget import Budget
    from tuneall.planning.space import parse_space

    space = parse_space({"name": "s", "families": ["cnn3"], "width": [0.25, 0.5], "k": [1, 2], "batch_size": 32})
    cfg = tuner.SearchConfig(budget=Budget(3e7, min_steps=20), space=space, dataset="digits", searcher="random",
                             seed=0, name="s", storage_path=str(tmp_path))
    import optuna

    from tuneall.tuning.define_by_run import DefineByRun

    s = study.make_searcher(cfg, DefineByRun(cfg.space, cfg.budget, cfg.dataset),
                             optuna.storages.InMemoryStorage())
    running = [journal.point_key(s.suggest(f"t{i}")) for i in range(4)]  # four at once, none finished
    assert len(set(running)) == 4  # the whole 4-point space, each point once
