"""User code that misbehaves: one line naming the factory or loader, exit 2, nothing left on disk; and a factory
that is valid on the CPU but cannot be built on the meta device works (meta is an optimisation, not a contract)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from tuneall.cli import main

USER = str(Path(__file__).parent / "user_code" / "misbehaving.py")
ARGS = ["search", "--dataset", "digits", "--budget", "3e6", "--trials", "2", "--seeds", "1"]


def _one_line_error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("factory, words", [
    ("no_parameters", ["no_parameters", "no trainable parameters", "holds none"]),
    ("all_frozen", ["all_frozen", "no trainable parameters", "frozen"]),
    ("exits", ["exits", "sys.exit('bye from the factory')"]),
    ("exits_zero", ["exits_zero", "sys.exit(0)"]),
])
@pytest.mark.parametrize("command", ["search", "train", "plan"])
def test_a_misbehaving_factory_is_one_line_naming_it(tmp_path, capsys, factory, words, command):
    argv = {"search": [*ARGS, "--storage-path", str(tmp_path)],
            "train": ["train", "--budget", "3e6", "--seeds", "1", "--storage-path", str(tmp_path)],
            "plan": ["plan", "--budget", "3e6"]}[command]
    err = _one_line_error(capsys, [*argv, "--model", f"{USER}:{factory}"])
    assert all(w in err for w in words), err
    assert not any(tmp_path.iterdir())


def test_a_module_that_exits_at_import(tmp_path, capsys):
    path = Path(__file__).parent / "user_code" / "exits_at_import.py"
    for flag in ("--model", "--data"):
        err = _one_line_error(capsys, [*ARGS, flag, f"{path}:make", "--storage-path", str(tmp_path)])
        assert "exits_at_import" in err and "sys.exit('this module exits at import')" in err, err
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("loader, words", [
    ("loader_exits", ["loader_exits", "sys.exit(3)"]),
    ("string_inputs", ["x of the train split", "strings", "expected numbers"]),
    ("string_labels", ["y of the train split", "strings", "integer class labels"]),
])
def test_a_misbehaving_loader_is_one_line_naming_it(tmp_path, capsys, loader, words):
    err = _one_line_error(capsys, [*ARGS, "--data", f"{USER}:{loader}", "--model",
                                   f"{Path(USER).parent / 'bad_things.py'}:good_mlp", "--storage-path", str(tmp_path)])
    assert all(w in err for w in words), err
    assert not any(tmp_path.iterdir())


def test_val_fraction_with_data_that_bring_their_own_validation_is_refused(tmp_path, capsys):
    data = ["--data", f"{USER}:with_own_val", "--model", f"{Path(USER).parent / 'bad_things.py'}:good_mlp"]
    for cmd in ([*ARGS, "--storage-path", str(tmp_path)], ["train", "--budget", "3e6", "--seeds", "1"]):
        err = _one_line_error(capsys, [*cmd, *data, "--val-fraction", "0.2"])
        assert "own validation split" in err and "--val-fraction" in err, err
    assert not any(tmp_path.iterdir())


def test_a_factory_computing_with_tensors_builds_counts_and_trains():
    """`.item()` has no value on the meta device: the check, parameter and FLOP counts fall back to the CPU."""
    from tuneall.api import train
    from tuneall.models import param_count, resolve_family

    fam = resolve_family(f"{USER}:computes_with_tensors")
    assert param_count(fam, 1.0, None, input_shape=(1, 8, 8), num_classes=10) == 64 * 8 + 8 + 8 * 10 + 10
    result = train(dataset="digits", budget=3e5, family=f"{USER}:computes_with_tensors", width=1.0, k=1,
                   seeds=1, min_steps=10)
    assert result.status == "ok" and result.plan.params_per_member == 64 * 8 + 8 + 8 * 10 + 10


def test_model_from_a_package_in_the_working_directory(tmp_path, capsys, monkeypatch):
    """`--model mypkg.nets:make` from the folder holding mypkg, as `python -m` finds it; a missing package is one
    line naming the model, not the internal space key."""
    shutil.copytree(Path(__file__).parent / "user_code" / "mypkg", tmp_path / "mypkg")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    assert main(["plan", "--budget", "3e6", "--model", "mypkg.nets:make", "--widths", "1", "--k", "1,2"]) == 0
    assert "feasible allocation" in capsys.readouterr().out
    err = _one_line_error(capsys, ["plan", "--budget", "3e6", "--model", "nopkg_tuneall.nets:make"])
    assert err.startswith("tuneall: error: model 'nopkg_tuneall.nets:make'") and "families" not in err, err
