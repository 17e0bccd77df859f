"""The command line: user errors are one line on stderr and exit code 2 (no traceback); plan and train work."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from tuneall import cli
from tuneall.models import param_count


def run_main(capsys, argv):
    """cli.main in-process: (exit code, stdout, stderr). argparse's own errors exit through SystemExit."""
    try:
        rc = cli.main(argv)
    except SystemExit as e:
        rc = e.code
    out, err = capsys.readouterr()
    return rc, out, err


def run_proc(argv, cwd=None, timeout=300):
    p = subprocess.run([sys.executable, "-m", "tuneall.cli", *argv], capture_output=True, text=True, cwd=cwd,
                       timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def assert_user_error(rc, err, *needles):
    assert rc == 2, err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("tuneall: error: ")
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


# ----------------------------------------------------------------------------------------------------------------
# User errors, in-process

PLAN = ["plan", "--dataset", "cifar10"]
TRAIN = ["train", "--dataset", "digits", "--seeds", "1", "--min-steps", "5"]

ERRORS = [
    (PLAN + ["--budget", "0"], ["budget"]),
    (PLAN + ["--budget", "-1"], ["budget"]),
    (PLAN + ["--budget=-inf"], ["budget"]),
    (PLAN + ["--budget", "nan"], ["budget"]),
    (PLAN + ["--budget", "inf"], ["budget"]),
    (PLAN + ["--budget", "abc"], ["budget", "abc"]),
    (PLAN + ["--budget", ""], ["budget"]),
    (TRAIN + ["--budget", "nan"], ["budget"]),
    (TRAIN + ["--budget", "1e8", "--width", "0"], ["width"]),
    (TRAIN + ["--budget", "1e8", "--width", "nan"], ["width"]),
    (PLAN + ["--budget", "1e8", "--widths", "0"], ["width"]),
    (TRAIN + ["--budget", "1e8", "--k", "0"], ["k=0"]),
    (PLAN + ["--budget", "1e8", "--k", "0"], ["'k'"]),
    (TRAIN + ["--budget", "1e8", "--depth", "0"], ["depth"]),
    (TRAIN + ["--budget", "1e8", "--family", "bogusnet"], ["bogusnet", "cnn3"]),
    (PLAN + ["--budget", "1e8", "--family", "bogusnet"], ["bogusnet", "cnn3"]),
    (["plan", "--budget", "1e8", "--dataset", "imagenet"], ["imagenet", "cifar10", "digits", "mnist1d"]),
    (["train", "--budget", "1e8", "--dataset", "imagenet"], ["imagenet", "cifar10", "digits"]),
    (PLAN + ["--budget", "1e3"], ["smallest feasible budget"]),
    (TRAIN + ["--budget", "1e3"], ["smallest feasible budget"]),
    (PLAN + ["--budget", "1e8", "--space", "/nonexistent/space.yaml"], ["not found"]),
    (PLAN + ["--budget", "1e8", "--space", "no_such_space"], ["not found", "paper"]),
    (PLAN + ["--budget", "1e8", "--space", "paper", "--widths", "1"], ["space", "not both"]),
    (PLAN + ["--budget", "1e8", "--unit", "joules"], ["unit", "joules"]),
    (TRAIN + ["--budget", "1e8", "--unit", "FLOPS"], ["unit"]),
    (PLAN + ["--budget", "1e8", "--min-steps", "0"], ["min_steps"]),
    (TRAIN + ["--budget", "1e8", "--rule", "bogus"], ["bogus", "mean"]),
    (TRAIN + ["--budget", "1e8", "--seeds", "0"], ["seeds"]),
    (TRAIN + ["--budget", "1e8", "--lr", "0"], ["lr"]),
    (TRAIN + ["--budget", "1e8", "--batch-size", "0"], ["batch_size"]),
    (TRAIN + ["--budget", "1e8", "--data-fraction", "1.5"], ["data_fraction"]),
    (["report", "/nonexistent"], ["/nonexistent"]),
    (TRAIN + ["--budget", "1e8", "--members", "bogus"], ["--members", "bogus", "vectorized"]),
    (TRAIN + ["--budget", "1e8", "--amp"], ["amp", "vectorized"]),
    (["search", "--dataset", "digits", "--budget", "3e7", "--cpus-per-trial", "nan"], ["cpus per trial"]),
    (["sweep", "--dataset", "digits", "--budgets", "1e6,3e6", "--cpus-per-trial", "inf"], ["cpus per trial"]),
    (PLAN + ["--budget", "3e7", "--estimate", "--cpus-per-trial", "0"], ["cpus per trial"]),
    # argparse's own errors go through the same one-line path.
    (PLAN + ["--budget", "1e8", "--widths", "a,b"], ["widths"]),
    (PLAN, ["--budget"]),
    (["frobnicate"], ["frobnicate"]),
    (TRAIN + ["--budget", "1e8", "--k", "two"], ["--k"]),
]


@pytest.mark.parametrize("argv,needles", ERRORS, ids=[" ".join(a) for a, _ in ERRORS])
def test_user_errors_in_process(capsys, argv, needles):
    rc, out, err = run_main(capsys, argv)
    assert_user_error(rc, err, *needles)
    assert out == ""


def test_malformed_space_file(capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("families: [cnn3]\nwidth: {low: 4, high: 1}\n")
    rc, _, err = run_main(capsys, PLAN + ["--budget", "1e8", "--space", str(bad)])
    assert_user_error(rc, err, "width", "empty range")
    bad.write_text("families: [cnn3\n")
    rc, _, err = run_main(capsys, PLAN + ["--budget", "1e8", "--space", str(bad)])
    assert_user_error(rc, err, "invalid YAML")


def test_space_directory(capsys, tmp_path):
    # Regression: used to raise IsADirectoryError (traceback, exit 1).
    rc, _, err = run_main(capsys, PLAN + ["--budget", "1e8", "--space", str(tmp_path)])
    assert_user_error(rc, err)


def test_space_per_family_list(capsys, tmp_path):
    # Regression: used to raise AttributeError (traceback, exit 1).
    bad = tmp_path / "bad.yaml"
    bad.write_text("families: [cnn3]\nper_family: [cnn3]\n")
    rc, _, err = run_main(capsys, PLAN + ["--budget", "1e8", "--space", str(bad)])
    assert_user_error(rc, err, "per_family")


def test_train_bad_device(capsys):
    # Regression: used to reach torch.device() in train_member and raise RuntimeError (traceback).
    rc, _, err = run_main(capsys, TRAIN + ["--budget", "1e6", "--width", "0.25", "--device", "bogus"])
    assert_user_error(rc, err, "device", "bogus")


# ----------------------------------------------------------------------------------------------------------------
# search: bad arguments fail before Ray starts or anything is written


@pytest.fixture
def no_ray(monkeypatch):
    """A stand-in ``ray`` module whose every use fails the test: the search must reject bad input before Ray."""
    import types

    def boom(*a, **kw):
        raise AssertionError("Ray was started")

    fake = types.ModuleType("ray")
    fake.init = boom
    fake.is_initialized = boom
    fake.__getattr__ = lambda name: boom()
    monkeypatch.setitem(sys.modules, "ray", fake)


SEARCH_ERRORS = [
    (["--searcher", "bogus"], ["bogus", "tpe"]),
    (["--objectives", "bogus_metric"], ["bogus_metric", "ensemble_acc_mean"]),
    (["--objectives", "ensemble_acc_mean:up"], ["min or max"]),
    (["--objectives", ","], ["objectives"]),
    (["--searcher", "nsga2"], ["nsga2"]),
    (["--trials", "0"], ["trials"]),
    (["--rule", "bogus"], ["bogus"]),
    (["--dataset", "imagenet"], ["imagenet", "digits"]),
    (["--unit", "joules"], ["unit"]),
]


@pytest.mark.parametrize("extra,needles", SEARCH_ERRORS, ids=[" ".join(e) for e, _ in SEARCH_ERRORS])
def test_search_errors_before_ray(capsys, tmp_path, no_ray, extra, needles):
    argv = ["search", "--budget", "1e8", "--storage-path", str(tmp_path / "results"), *extra]
    rc, _, err = run_main(capsys, argv)
    assert_user_error(rc, err, *needles)
    assert not (tmp_path / "results").exists()


def test_search_budget_too_small_before_ray(capsys, tmp_path, no_ray):
    rc, _, err = run_main(capsys, ["search", "--budget", "1e3", "--storage-path", str(tmp_path)])
    assert_user_error(rc, err, "smallest feasible budget")


# ----------------------------------------------------------------------------------------------------------------
# The same through real processes (the installed entry point's module)

PROC_ERRORS = [
    (PLAN + ["--budget", "0"], ["budget"]),
    (PLAN + ["--budget", "1e3"], ["smallest feasible budget"]),
    (["search", "--budget", "1e8", "--searcher", "bogus"], ["bogus"]),
    (["report", "/nonexistent"], ["/nonexistent"]),
]


def test_user_errors_subprocess(tmp_path):
    """Real processes (started together: each one mostly imports torch): exit 2, one line, nothing written."""
    procs = []
    for i, (argv, needles) in enumerate(PROC_ERRORS):
        cwd = tmp_path / str(i)
        cwd.mkdir()
        p = subprocess.Popen([sys.executable, "-m", "tuneall.cli", *argv], cwd=cwd, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        procs.append((argv, needles, cwd, p))
    for argv, needles, cwd, p in procs:
        out, err = p.communicate(timeout=300)
        assert_user_error(p.returncode, err, *needles)
        assert out == "", argv
        assert list(cwd.iterdir()) == [], argv  # nothing written (no results/ directory)


# ----------------------------------------------------------------------------------------------------------------
# Positive paths


def test_plan_cifar10_1e8(capsys):
    rc, out, err = run_main(capsys, ["plan", "--budget", "1e8", "--dataset", "cifar10"])
    assert rc == 0, err
    assert err == ""
    assert "94986" in out
    # paper space at 1e8 on CIFAR-10: w<=1 fit every k (3 x 6), w=2 fits k<=4 (4), w=4 only k=1 (1).
    assert "23 feasible allocation(s) for C = 1e+08 param-steps on cifar10" in out
    assert "7 infeasible:" in out
    assert out.count("smallest feasible budget") == 7


def test_plan_json(capsys):
    rc, out, err = run_main(capsys, ["plan", "--budget", "1e8", "--dataset", "cifar10", "--json"])
    assert rc == 0, err
    doc = json.loads(out)
    assert len(doc["feasible"]) == 23 and len(doc["infeasible"]) == 7
    row = next(r for r in doc["feasible"] if r["width"] == 1.0 and r["k"] == 1)
    assert row["params_per_member"] == 94986
    assert row["steps"] == 1052
    assert all(r["spent"] <= 1e8 for r in doc["feasible"])
    expected_infeasible = {(2.0, 6), (2.0, 8), (4.0, 2), (4.0, 3), (4.0, 4), (4.0, 6), (4.0, 8)}
    assert {(r["width"], r["k"]) for r in doc["infeasible"]} == expected_infeasible


def test_plan_ad_hoc_flags(capsys):
    rc, out, err = run_main(capsys, ["plan", "--budget", "1e8", "--dataset", "cifar10", "--widths", "0.5,1",
                                     "--k", "1,2", "--json"])
    assert rc == 0, err
    doc = json.loads(out)
    assert sorted((r["width"], r["k"]) for r in doc["feasible"]) == [(0.5, 1), (0.5, 2), (1.0, 1), (1.0, 2)]


def _strict_json(text):
    def reject(name):
        raise ValueError(f"non-JSON constant {name}")

    return json.loads(text, parse_constant=reject)


def test_plan_json_is_strict_json(capsys):
    # Regression: NaN (min_budget of a point infeasible for a ConfigError) used to be printed as a bare NaN.
    rc, out, _ = run_main(capsys, ["plan", "--budget", "1e8", "--dataset", "cifar10", "--depths", "3,9", "--json"])
    assert rc == 0
    doc = _strict_json(out)
    (bad,) = [r for r in doc["infeasible"] if r["depth"] == 9]
    assert bad["min_budget"] is None
    assert "depth 9" in bad["reason"]


# Regression: a diverged member's NaN metrics were printed as bare NaN (not JSON).
def test_train_json_is_strict_json_when_diverged(capsys, tmp_path):
    rc, out, _ = run_main(capsys, ["train", "--dataset", "digits", "--budget", "3e5", "--width", "0.5", "--k", "1",
                                   "--seeds", "1", "--min-steps", "10", "--lr", "1e20", "--json",
                                   "--storage-path", str(tmp_path)])
    assert rc == 0
    assert json.loads(out)["metrics"]["status"] == "diverged"  # lenient parse: the run itself is fine
    _strict_json(out)


def test_plan_flops_unit(capsys):
    from tuneall.models.flops import train_flops_per_step
    from tuneall.models import Architecture

    rc, out, err = run_main(capsys, ["plan", "--budget", "1e14", "--unit", "flops", "--dataset", "cifar10",
                                     "--widths", "1", "--k", "1", "--json"])
    assert rc == 0, err
    (row,) = json.loads(out)["feasible"]
    f = train_flops_per_step(Architecture("cnn3", 1.0, 3, (3, 32, 32), 10), 128)
    assert row["unit"] == "flops" and row["steps"] == 10**14 // f and row["spent"] == f * row["steps"]


def test_train_digits_json(tmp_path):
    """`tuneall train ... --json` through a real process: exit 0, parseable, accurate; a results directory whose
    saved members reproduce the recorded accuracy."""
    rc, out, err = run_proc(["train", "--dataset", "digits", "--budget", "3e6", "--width", "0.5", "--k", "2",
                             "--seeds", "1", "--min-steps", "10", "--json", "--storage-path", str(tmp_path),
                             "--name", "t"])
    assert rc == 0, err
    doc = json.loads(out)
    p = param_count("cnn3", 0.5, 3, 1, 10, 2)
    assert doc["plan"]["params_per_member"] == p
    assert doc["plan"]["k"] == 2
    assert doc["plan"]["steps"] == 3_000_000 // (2 * p)
    m = doc["metrics"]
    assert m["status"] == "ok" and m["n_diverged"] == 0
    assert m["ensemble_acc_mean"] > 0.5
    assert m["ensemble_acc_std"] == 0.0  # one seed
    assert len(doc["members"]) == 2 and {r["seed"] for r in doc["members"]} == {0, 1}
    assert all(math.isfinite(r["final_loss"]) for r in doc["members"])
    assert doc["results_dir"] == str(tmp_path / "t") and (tmp_path / "t" / "train.json").exists()
    import tuneall

    ens = tuneall.load_ensemble(tmp_path / "t")
    assert len(ens.members) == 2 and ens.evaluate()["ensemble_acc"] == m["ensemble_acc_mean"]


def test_train_text_output(capsys, tmp_path):
    rc, out, err = run_main(capsys, ["train", "--dataset", "digits", "--budget", "5e5", "--width", "0.5", "--k", "2",
                                     "--seeds", "1", "--min-steps", "5", "--batch-size", "64",
                                     "--storage-path", str(tmp_path)])
    assert rc == 0, err
    steps = 500_000 // (2 * 24_170)
    assert f"{steps}/{steps} steps" in out
    assert "tuneall: training cnn3 w=0.5 d=3 k=2 on digits" in out.splitlines()[0]  # what it trains, first
    assert "tuneall: member 2 of 2, seed 1 of 1 done" in out  # in the user's terms
    assert "ensemble (mean) over 1 seed(s), on the test split:" in out and "validation split: ensemble_acc" in out
    assert "ensemble_acc" in out
    assert f"Results: {tmp_path}/train-digits-5e+05-cnn3-w0.5-k2" in out


def test_report_on_an_unfinished_sweep_is_a_user_error(capsys, tmp_path):
    (tmp_path / "sweep.json").write_text(json.dumps({"config": {}, "sweep": {}}))
    rc, _, err = run_main(capsys, ["report", str(tmp_path)])
    assert_user_error(rc, err, str(tmp_path), "never finished")


def test_plan_estimate_adds_each_allocations_training_time(capsys, monkeypatch):
    from tuneall.training import estimate

    monkeypatch.setattr(estimate, "step_seconds", lambda family, width, depth, info, batch, threads: 0.01 * threads)
    rc, out, _ = run_main(capsys, ["plan", "--dataset", "digits", "--budget", "3e7", "--widths", "0.5,1", "--k",
                                   "1,2", "--estimate", "--seeds", "2", "--cpus-per-trial", "2", "--json"])
    assert rc == 0
    rows = json.loads(out)["feasible"]
    assert len(rows) == 4
    for r in rows:
        assert r["est_train_s"] == pytest.approx(2 * r["k"] * r["steps"] * 0.02)
    rc, out, _ = run_main(capsys, ["plan", "--dataset", "digits", "--budget", "3e7", "--widths", "1", "--k", "1",
                                   "--estimate"])
    assert rc == 0 and "est_train" in out.splitlines()[1] and "3 seed(s), 1 thread(s)" in out.splitlines()[0]
    rc, _, err = run_main(capsys, ["plan", "--dataset", "digits", "--budget", "3e7", "--estimate", "--seeds", "0"])
    assert_user_error(rc, err, "seeds >= 1")


def test_train_holds_out_the_validation_fraction_it_is_given(capsys, tmp_path):
    """`tuneall train --val-fraction` carves that share of digits' training split (it was ignored before)."""
    from tuneall.data import dataset_info

    docs = {}
    for vf in (0.1, 0.5):
        rc, out, err = run_main(capsys, ["train", "--dataset", "digits", "--budget", "3e5", "--width", "0.25",
                                         "--k", "1", "--seeds", "1", "--min-steps", "10", "--val-fraction", str(vf),
                                         "--json", "--storage-path", str(tmp_path), "--name", f"v{vf}"])
        assert rc == 0, err
        docs[vf] = json.loads(out)
    for vf, doc in docs.items():
        n_val = dataset_info("digits", vf).n_val
        acc = doc["metrics"]["val_ensemble_acc_mean"]  # a count out of that split's size (one seed)
        assert 0 < acc < 1 and abs(acc * n_val - round(acc * n_val)) < 1e-6, (vf, acc, n_val)
    assert dataset_info("digits", 0.5).n_val > 4 * dataset_info("digits", 0.1).n_val
    assert docs[0.1]["metrics"]["val_ensemble_acc_mean"] != docs[0.5]["metrics"]["val_ensemble_acc_mean"]


def test_train_refuses_a_batch_larger_than_its_data_before_training(capsys, tmp_path):
    rc, _, err = run_main(capsys, ["train", "--dataset", "digits", "--budget", "3e6", "--width", "0.25", "--k", "1",
                                   "--seeds", "1", "--batch-size", "5000", "--storage-path", str(tmp_path)])
    assert rc == 2 and "batch_size 5000 is larger than the" in err and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []
