"""Before a search runs: --dry-run trains and writes nothing; --time-budget and --save-members are validated at the
boundary with the Python argument's name; the pre-run question is never asked without a terminal."""

from __future__ import annotations

import pytest

import tuneall
from tuneall.cli import main
from tuneall.core.errors import ConfigError

TINY = {"name": "tiny", "families": ["cnn3"], "width": [0.25, 0.5], "k": [1, 2], "batch_size": 32}


@pytest.fixture
def no_training(monkeypatch):
    """Any attempt to start Ray or train fails the test."""
    import tuneall.runner
    import tuneall.training.trial

    def boom(*a, **k):
        raise AssertionError("a dry run must not start Ray or train")

    monkeypatch.setattr(tuneall.runner, "ray_session", boom)
    monkeypatch.setattr(tuneall.training.trial, "run_trial", boom)


def test_dry_run_trains_and_writes_nothing(tmp_path, capsys, no_training):
    from tuneall.planning.space import parse_space

    plan = tuneall.search(budget=2e6, min_steps=20, space=parse_space(TINY), trials=3, seeds=1,
                          storage_path=str(tmp_path / "results"), name="dry", dry_run=True)
    out = capsys.readouterr().out
    assert plan.attrs["dry_run"] and len(plan) == 4 and plan.attrs["estimate_s"] > 0
    assert "Nothing is trained or written" in out and "estimated training time on this machine" in out
    assert not (tmp_path / "results").exists()


def test_dry_run_cli(tmp_path, capsys, no_training):
    rc = main(["search", "--budget", "2e6", "--min-steps", "20", "--widths", "0.25,0.5", "--k", "1,2",
               "--storage-path", str(tmp_path / "r"), "--dry-run"])
    out = capsys.readouterr().out
    assert rc == 0 and "dry run of" in out and "Best allocation" not in out
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("kw, needle", [({"time_budget": -1}, "time_budget must be"),
                                        ({"save_members": "some"}, "save_members must be one of")])
def test_api_errors_name_python_arguments(tmp_path, kw, needle, no_training):
    with pytest.raises(ConfigError, match=needle):
        tuneall.search(budget=2e6, storage_path=str(tmp_path), **kw)


def test_cli_time_budget_is_checked_by_the_parser(capsys):
    with pytest.raises(SystemExit) as e:
        main(["search", "--budget", "2e6", "--time-budget", "0"])
    assert e.value.code == 2 and "expected a number of seconds > 0" in capsys.readouterr().err


def test_no_question_without_a_terminal(tmp_path, monkeypatch, capsys):
    """A long estimate asks only on a TTY: with stdin not a terminal the search goes on (here: to a dry run's end,
    and the real preflight, which would raise NotStarted if it had asked and read 'no')."""
    import io

    from tuneall.training import preflight as P
    from tuneall.planning.space import parse_space

    monkeypatch.setattr(P, "CONFIRM_ABOVE_S", 0.0)
    monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))
    from tuneall.core.budget import Budget
    from tuneall.planning.points import plan_space
    from tuneall.tuning.driver import SearchConfig

    c = SearchConfig(budget=Budget(2e6, min_steps=20), space=parse_space(TINY), trials=2, seeds=1,
                     storage_path=str(tmp_path))
    feasible, _ = plan_space(c.space, c.budget, c.dataset)
    pf = P.preflight(c, feasible, 2, verbose=0)
    assert pf.total_s > 0  # estimated, above the (zero) threshold, and not asked: no terminal

    class Tty(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setattr("sys.stdin", Tty("n\n"))
    with pytest.raises(P.NotStarted):
        P.preflight(c, feasible, 2, verbose=0)
    monkeypatch.setattr("sys.stdin", Tty("y\n"))
    assert P.preflight(c, feasible, 2, verbose=0).total_s > 0
    monkeypatch.setattr("sys.stdin", Tty("n\n"))
    P.preflight(c, feasible, 2, verbose=0, confirm=False)  # --yes: not asked


@pytest.mark.parametrize("trials, says", [(2, "(all 2 random: TPE models from trial 4 on)"),
                                          (20, "(5 random start-up trials)")])
def test_the_start_line_says_how_many_tpe_trials_are_random(tmp_path, capsys, trials, says):
    from tuneall.core.budget import Budget
    from tuneall.planning.space import parse_space
    from tuneall.tuning.driver import SearchConfig, _announce

    c = SearchConfig(budget=Budget(2e6, min_steps=20), space=parse_space(TINY), trials=trials, seeds=1,
                     storage_path=str(tmp_path))
    _announce(c, trials, 1, tmp_path / "s")
    assert f"tpe {says}, {trials} trials" in capsys.readouterr().out
