"""Bad input to `tuneall search` that concerns results directories and clusters: one line, exit code 2, and an
existing results directory is never touched unless it is being resumed."""

from __future__ import annotations

import json
import socket

import pytest

from tuneall.cli import main

ARGS = ["search", "--dataset", "digits", "--budget", "3e6", "--trials", "2", "--seeds", "1"]


def _snapshot(d):
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in d.iterdir()}


def _one_line_error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    return err


def _fake_search_dir(tmp_path, budget=3e6):
    d = tmp_path / "r"
    d.mkdir()
    (d / "tuneall.json").write_text(json.dumps({"config": {"budget": {"value": budget}}}))
    (d / "trials.csv").write_text("trial_id\nabc\n")
    return d


def test_existing_results_dir_is_refused_and_untouched(tmp_path, capsys):
    d = _fake_search_dir(tmp_path)
    before = _snapshot(d)
    err = _one_line_error(capsys, [*ARGS, "--storage-path", str(tmp_path), "--name", "r"])
    assert "already exists" in err and "tuneall resume" in err
    assert _snapshot(d) == before


def test_resume_of_a_different_search_is_refused_and_untouched(tmp_path, capsys):
    d = _fake_search_dir(tmp_path, budget=1e9)
    before = _snapshot(d)
    err = _one_line_error(capsys, [*ARGS, "--storage-path", str(tmp_path), "--name", "r", "--resume"])
    assert "different search" in err and "budget" in err
    assert _snapshot(d) == before


def test_resume_of_a_directory_that_is_not_a_search(tmp_path, capsys):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "notes.txt").write_text("mine")
    err = _one_line_error(capsys, [*ARGS, "--storage-path", str(tmp_path), "--name", "r", "--resume"])
    assert "not a tuneall" in err
    assert (tmp_path / "r" / "notes.txt").read_text() == "mine"
    err = _one_line_error(capsys, ["resume", str(tmp_path / "r")])
    assert "not a tuneall" in err


def test_resume_of_nothing(tmp_path, capsys):
    err = _one_line_error(capsys, [*ARGS, "--storage-path", str(tmp_path), "--name", "nope", "--resume"])
    assert "nothing to resume" in err


@pytest.mark.parametrize("address", ["127.0.0.2:{port}", "nonsense", "127.0.0.2:notaport"])
def test_unreachable_or_malformed_address(tmp_path, capsys, address):
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.2", 0))
        port = s.getsockname()[1]
    err = _one_line_error(capsys, [*ARGS, "--storage-path", str(tmp_path), "--address", address.format(port=port)])
    assert "address" in err
    assert not any(tmp_path.iterdir())  # nothing written


# ---------------------------------------------------------------------------------------------------------------
# The recipe is part of what a resume compares


def _made_by(monkeypatch, tmp_path, argv):
    """Make a search directory as `tuneall search argv` would, without training (its tuneall.json only)."""
    from tuneall.rundir import results as R
    from tuneall.tuning import driver as tuner

    def fake_run_search(cfg, argv=None, verbose=1, **_):
        cfg.results_dir.mkdir(parents=True)
        R.write_meta(cfg.results_dir, R.provenance(cfg.to_json(), argv), "interrupted")
        import pandas as pd

        return pd.DataFrame()

    monkeypatch.setattr(tuner, "run_search", fake_run_search)
    assert main([*argv, "--storage-path", str(tmp_path), "--name", "r"]) == 0
    monkeypatch.undo()


@pytest.mark.parametrize("change, field", [
    (["--lr", "0.1"], "lr"), (["--optimizer", "adamw"], "optimizer"), (["--weight-decay", "1e-4"], "weight_decay"),
    (["--label-smoothing", "0.1"], "label_smoothing"), (["--val-fraction", "0.2"], "val_fraction"),
])
def test_resume_with_a_changed_recipe_is_refused_naming_the_field(tmp_path, capsys, monkeypatch, change, field):
    _made_by(monkeypatch, tmp_path, [*ARGS, "--lr", "0.05"])
    capsys.readouterr()
    before = _snapshot(tmp_path / "r")
    err = _one_line_error(capsys, [*ARGS, "--lr", "0.05", *change, "--storage-path", str(tmp_path), "--name", "r",
                                   "--resume"])
    assert "different search" in err and field in err
    assert _snapshot(tmp_path / "r") == before


# ---------------------------------------------------------------------------------------------------------------
# Bad models and bad data from user code: one line naming the problem, exit 2, before any trial

USER = "tests/user_code/bad_things.py"


@pytest.mark.parametrize("factory, words", [
    ("raises", ["bad_things", "raises", "failed to build", "my factory is broken"]),
    ("not_a_module", ["not_a_module", "returned a str", "not a torch.nn.Module"]),
    ("wrong_shape", ["wrong_shape", "outputs (2, 11)", "expected logits of shape (2, 10)"]),
    ("forward_fails", ["forward_fails", "forward pass"]),
    ("NOT_CALLABLE", ["NOT_CALLABLE", "not a factory"]),
    ("missing", ["has no attribute 'missing'"]),
])
def test_bad_model_factory_is_refused_in_one_line(tmp_path, capsys, factory, words):
    err = _one_line_error(capsys, [*ARGS, "--model", f"{USER}:{factory}", "--storage-path", str(tmp_path)])
    assert all(w in err for w in words), err
    assert not any(tmp_path.iterdir())  # refused before anything was written or trained


def test_bad_model_in_plan_and_train_too(capsys):
    for cmd in (["plan", "--budget", "3e6"], ["train", "--budget", "3e6", "--seeds", "1"]):
        err = _one_line_error(capsys, [*cmd, "--model", f"{USER}:wrong_shape"])
        assert "wrong_shape" in err and "expected logits" in err


@pytest.mark.parametrize("loader, words", [
    ("mismatched", ["train split", "60 inputs but 59 labels"]),
    ("float_labels", ["labels of the train split", "float32", "integer"]),
    ("nan_inputs", ["inputs of the train split", "NaN"]),
    ("labels_out_of_range", ["labels of the test split", "out of range"]),
    ("negative_labels", ["labels of the train split", "out of range"]),
    ("empty_test", ["test split is empty"]),
    ("loader_raises", ["loader_raises", "OSError", "disk on fire"]),
    ("unknown_key", ["unknown key 'x_tset'"]),
    ("big_tensor_bad", ["float32"]),
])
def test_bad_data_is_refused_in_one_line(tmp_path, capsys, loader, words):
    err = _one_line_error(capsys, [*ARGS, "--data", f"{USER}:{loader}", "--model", f"{USER}:good_mlp",
                                   "--storage-path", str(tmp_path)])
    assert "DataError" not in err and all(w in err for w in words), err
    assert len(err) < 400 and "tensor(" not in err and "array(" not in err  # never the values
    assert not any(tmp_path.iterdir())


# --- refused before anything is created: (extra arguments, words the one-line error must contain) -----------------
SPACE_BAD_DEPTH = "name: d\nfamilies: [wrn]\ndepth: [15]\nk: [1]\n"
SPACE_TINY_WIDTH = "name: w\nfamilies: [cnn3]\nwidth: 0.000000001\nk: [1]\n"

REFUSED = [
    (["--num-cpus", "0"], "num_cpus"),
    (["--num-cpus", "-1"], "num_cpus"),
    (["--cpus-per-trial", "1000"], "1000 CPUs"),
    (["--cpus-per-trial", "2", "--num-cpus", "1"], "--num-cpus"),
    (["--seed", "-1"], "seed"),
    (["--seed", "8589934592"], "seed"),
    (["--max-failures", "-5"], "max_failures"),
    (["--name", "../x"], "plain directory name"),
    (["--name", "a/b"], "plain directory name"),
    (["--name", "/abs"], "plain directory name"),
    (["--storage-path", "{file}"], "is a file"),
    (["--storage-path", "{file}/sub"], "which is a file"),
    (["--storage-path", "/proc/tuneall"], "/proc"),
    (["--storage-path", "/sys"], "/sys"),
    (["--study-storage", "not a url"], "study storage"),
    (["--study-storage", "nosuchdb://u@h/x"], "study storage"),
    (["--study-storage", "sqlite:////nonexistent-tuneall-dir/x.db"], "does not exist"),
    (["--study-storage", "sqlite://"], "in-memory"),
    (["--space", "{bad_depth}"], "cannot build depth 15"),
    (["--space", "{tiny_width}"], "collapses cnn3 to one channel"),
    (["--batch-size", "100000"], "training examples"),
]


@pytest.mark.parametrize("extra,words", REFUSED, ids=[" ".join(a) for a, _ in REFUSED])
def test_refused_in_one_line_before_anything_is_created(tmp_path, capsys, monkeypatch, extra, words):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "file").write_text("not a directory")
    (tmp_path / "bad_depth.yaml").write_text(SPACE_BAD_DEPTH)
    (tmp_path / "tiny_width.yaml").write_text(SPACE_TINY_WIDTH)
    subs = {"file": tmp_path / "file", "bad_depth": tmp_path / "bad_depth.yaml",
            "tiny_width": tmp_path / "tiny_width.yaml"}
    extra = [a.format(**subs) for a in extra]
    before = sorted(p.name for p in tmp_path.iterdir())
    storage = [] if "--storage-path" in extra else ["--storage-path", str(tmp_path / "res")]
    err = _one_line_error(capsys, [*ARGS, *storage, *extra])
    assert words in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no results dir, no study database


def test_gpus_per_trial_without_a_gpu(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    err = _one_line_error(capsys, [*ARGS, "--storage-path", str(tmp_path), "--gpus-per-trial", "1"])
    assert "GPU" in err
    assert not any(tmp_path.iterdir())


def test_unwritable_storage_path(tmp_path, capsys, monkeypatch):
    """Root can write anywhere, so the refusal is checked by making the access check say no."""
    import tuneall.rundir.results as R

    ro = tmp_path / "ro"
    ro.mkdir()
    real = R.os.access
    monkeypatch.setattr(R.os, "access", lambda p, mode: False if str(p) == str(ro) else real(p, mode))
    err = _one_line_error(capsys, [*ARGS, "--storage-path", str(ro / "results")])
    assert "not writable" in err
    assert not any(ro.iterdir())


def test_estimate_of_centuries_warns(capsys):
    from tuneall.training.estimate import announce

    announce(lambda: __import__("pandas").Series([3.2e9]), lambda s: float(s.sum()), "1 trial")
    err = capsys.readouterr().err
    assert "warning" in err and "years" in err and len(err.strip().splitlines()) == 1


def test_batch_size_within_a_data_fraction():
    from tuneall.data import check_batch_sizes, load_dataset
    from tuneall.core.errors import DataError

    data = load_dataset("digits")
    n = data.x_train.shape[0]
    for given in (data, data.info):  # the loaded data, or its facts before anything loads (the same limits)
        check_batch_sizes([{"batch_size": n, "data_fraction": 1.0}], given)
        with pytest.raises(DataError, match=f"larger than the {n} training"):
            check_batch_sizes([{"batch_size": n + 1}], given)
        with pytest.raises(DataError, match="data fraction 0.1"):
            check_batch_sizes([{"batch_size": n // 2, "data_fraction": 0.1}], given)


# ---------------------------------------------------------------------------------------------------------------
# Sanity bounds before expensive work (issue 22): refused in one line before any estimate, Ray or directory

@pytest.mark.parametrize("argv, words", [
    (["plan", "--budget", "1e300"], "more than the 1e+12"),
    (["search", "--budget", "1e300", "--seeds", "1"], "more than the 1e+12"),
    (["train", "--budget", "1e300", "--width", "0.25", "--seeds", "1"], "more than the 1e+12"),
    (["train", "--budget", "3e6", "--width", "1e-9", "--seeds", "1"], "collapses cnn3 to one channel"),
    ([*ARGS, "--verbose", "99"], "invalid choice: 99"),
    (["resume", "somewhere", "--verbose", "7"], "invalid choice: 7"),
    ([*ARGS, "--name", ""], "plain directory name"),
    ([*ARGS, "--name", "  "], "plain directory name"),
    ([*ARGS, "--objectives", "val_ensemble_acc_mean,val_ensemble_acc_mean"], "given twice"),
    (["plan", "--budget", "3e6", "--estimate", "--cpus-per-trial", "1000"], "more than this machine's"),
])
def test_absurd_values_are_refused_before_anything_runs(tmp_path, capsys, monkeypatch, argv, words):
    import tuneall.training.estimate as E

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(E, "step_seconds", lambda *a, **k: (_ for _ in ()).throw(AssertionError("estimated")))
    full = [*argv, "--storage-path", str(tmp_path / "res")] if argv[0] in ("search", "train") else argv
    try:
        rc = main(full)
    except SystemExit as e:  # argparse's own usage errors exit 2 from the parser
        rc = e.code
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert words in err, err
    assert not (tmp_path / "res").exists()


def test_resources_are_checked_before_the_estimate(tmp_path, capsys, monkeypatch):
    """--cpus-per-trial 1000 on a small machine: refused before the estimate would start 1,000 torch threads."""
    import tuneall.training.estimate as E

    monkeypatch.setattr(E, "step_seconds", lambda *a, **k: (_ for _ in ()).throw(AssertionError("estimated")))
    err = _one_line_error(capsys, [*ARGS, "--cpus-per-trial", "1000", "--storage-path", str(tmp_path)])
    assert "1000 CPUs" in err
    assert not any(tmp_path.iterdir())


def test_a_time_budget_shorter_than_any_trial_is_refused(tmp_path, capsys):
    for searcher in ("random", "halving"):
        err = _one_line_error(capsys, [*ARGS, "--time-budget", "0.001", "--searcher", searcher, "--storage-path",
                                       str(tmp_path)])
        assert "shorter than the quickest trial" in err, err
    assert not any(tmp_path.iterdir())


def test_a_long_train_run_asks_first_on_a_terminal(tmp_path, capsys, monkeypatch):
    import tuneall.core.progress as P

    monkeypatch.setattr(P, "interactive", lambda stdin=None: True)
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("n\n"))
    assert main(["train", "--budget", "1e14", "--width", "0.25", "--seeds", "1", "--storage-path",
                 str(tmp_path)]) == 1
    out = capsys.readouterr()
    assert "estimated at about" in out.out and "years" in out.out and "not started" in out.err
    assert not any(tmp_path.iterdir())


# ---------------------------------------------------------------------------------------------------------------
# Recovery messages that lead somewhere

def test_a_directory_killed_before_its_provenance_is_adopted_or_explained(tmp_path, capsys):
    d = tmp_path / "r"
    d.mkdir()
    (d / "tuneall.lock").write_text("")  # what a SIGKILL between taking the directory and tuneall.json leaves
    err = _one_line_error(capsys, ["resume", str(d)])
    assert "stopped before it recorded its settings" in err and "run the same command again" in err
    from tuneall.rundir.results import check_new

    check_new(d)  # the same command again adopts it: not "already exists"


def test_report_on_a_train_directory_or_a_symlink_loop_is_one_helpful_line(tmp_path, capsys):
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "train.json").write_text("{}")
    err = _one_line_error(capsys, ["report", str(tmp_path / "t")])
    assert "`tuneall train` directory" in err and "load_ensemble" in err
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    err = _one_line_error(capsys, ["report", str(tmp_path / "loop")])
    assert "symbolic link that leads nowhere" in err


def test_halving_starts_no_rung_once_the_time_budget_is_spent(tmp_path):
    from tuneall.tuning import halving as H

    points = [{"family": "cnn3", "width": w, "depth": 3, "k": 1} for w in (0.25, 0.5, 1.0, 2.0)]
    ran, lines = [], []

    def run_rung(fraction, pts):
        ran.append(fraction)
        return [{"status": "ok", "steps": [1, 2, 3], "full_steps": 9,
                 "curve": [[0.2, 0.3, 0.4 + p["width"] / 10]]} for p in pts]

    alive, _ = H.select(points, run_rung, tmp_path, log=lines.append, out_of_time=lambda: bool(ran))
    assert ran == [H.RUNGS[0]]  # the first rung ran; the time budget stopped the second before it started
    assert "not started: the time budget is spent" in lines[-1]
    assert alive and alive[0]["width"] == 2.0  # best first


def test_report_on_a_search_stopped_before_any_trial_finished(tmp_path, capsys):
    d = tmp_path / "s"
    d.mkdir()
    (d / "tuneall.json").write_text(json.dumps({"kind": "search", "config": {}, "state": "interrupted"}))
    (d / "halving.jsonl").write_text("")
    err = _one_line_error(capsys, ["report", str(d)])
    assert "no finished trial to report yet" in err and f"tuneall resume {d}" in err, err


def test_trial_processes_do_not_repeat_the_journal_warning(tmp_path, caplog):
    """Each trial looks its point up in the journal; a damaged line is named once by the driver, not per trial."""
    import logging

    from tuneall.rundir import journal
    from tuneall.tuning.job import _repeat_of

    journal.append(tmp_path, {"trial_id": "a", "config": {"point": {"k": 1}}, "metrics": {"status": "ok"},
                              "error": None})
    with open(tmp_path / "journal.jsonl", "ab") as f:
        f.write(b"{damaged\n")
    with caplog.at_level(logging.WARNING):
        assert _repeat_of({"k": 2}, str(tmp_path)) is None
    assert not caplog.records
