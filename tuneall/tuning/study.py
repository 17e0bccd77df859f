"""A search's Optuna study: where it is stored, the sampler (seeded so that a resume continues rather than replays),
the searcher Ray Tune drives, and the trials a killed driver left running."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from tuneall.rundir import journal
from tuneall.rundir import results as R
from tuneall.core.errors import ConfigError

if TYPE_CHECKING:
    from tuneall.tuning.config import SearchConfig


def sampler_seed(seed: int, told: int) -> int:
    """The sampler's seed for a run that starts with ``told`` trials already in the study.

    A fresh search (told = 0) uses ``seed`` itself; a resumed one derives a new seed from (seed, told), so it
    continues with new draws instead of replaying the opening the first run already explored (the study keeps every
    trial, so TPE still learns from all of them). Deterministic: the same kill points give the same search."""
    if told <= 0:
        return seed
    import numpy as np

    return int(np.random.SeedSequence([seed, told]).generate_state(1)[0] % 2**31)


def told(storage, study_name: str) -> int:
    """How many trials the study already holds (0 if it does not exist yet)."""
    import optuna

    try:
        summaries = optuna.get_all_study_summaries(storage)
    except Exception:  # noqa: BLE001 - an empty or new storage
        return 0
    return next((s.n_trials for s in summaries if s.study_name == study_name), 0)


def make_searcher(cfg: "SearchConfig", space_fn, study_storage=None, answered: dict | None = None):
    import optuna

    from tuneall.tuning._optuna import ConstrainedOptunaSearch

    seed = sampler_seed(cfg.seed, told(study_storage, cfg.run_name) if study_storage is not None else 0)
    if cfg.searcher == "random":
        sampler = optuna.samplers.RandomSampler(seed=seed)
    elif cfg.searcher == "nsga2":
        sampler = optuna.samplers.NSGAIISampler(seed=seed)
    else:
        from tuneall.tuning.sampling import tpe_startup

        sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=tpe_startup(cfg.trials))
    metric, mode = (cfg.metric, cfg.mode) if len(cfg.objectives) > 1 else (cfg.metric[0], cfg.mode[0])
    searcher = ConstrainedOptunaSearch(space=space_fn, metric=metric, mode=mode, sampler=sampler,
                                       storage=study_storage, study_name=cfg.run_name, answered=answered)
    searcher.sampler_seed = seed
    return searcher


def study_storage(cfg: "SearchConfig", out: Path):
    """Optuna storage: ``study_storage`` URL, else a journal file in the results directory (survives a kill).
    The URL is checked here; a factory is returned, so that nothing (a SQLite file) is created before the run."""
    if cfg.study_storage:
        url = check_study_url(cfg.study_storage)

        def rdb_storage():
            import optuna

            try:
                return optuna.storages.RDBStorage(cfg.study_storage)
            except Exception as e:  # noqa: BLE001 - any URL or driver problem is the user's to fix
                raise ConfigError(f"study storage {cfg.study_storage!r} is not usable: "
                                  f"{str(e).splitlines()[0][:200]}") from None

        if url.get_backend_name() != "sqlite":
            rdb_storage()  # a database server: connect now, before anything is written (creates no local file)
        return rdb_storage

    def journal_storage():
        import optuna
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(str(out / R.OPTUNA_JOURNAL)))

    return journal_storage


def check_study_url(text: str):
    """An Optuna RDB URL that SQLAlchemy can parse, whose driver is installed, and (SQLite) whose directory exists."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        url = make_url(text)
        url.get_dialect()
    except (ArgumentError, ValueError) as e:
        raise ConfigError(f"study storage {text!r} is not a database URL such as sqlite:///study.db "
                          f"({str(e).splitlines()[0][:120]})") from None
    except (NoSuchModuleError, ImportError) as e:
        raise ConfigError(f"study storage {text!r}: no driver for {url.drivername!r} "
                          f"({str(e).splitlines()[0][:120]})") from None
    if url.get_backend_name() == "sqlite":
        db = url.database
        if not db or db == ":memory:":
            raise ConfigError(f"study storage {text!r} is an in-memory database: a resume could not find the study; "
                              "give a file, e.g. sqlite:///study.db")
        parent = Path(db).expanduser().resolve().parent
        if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
            raise ConfigError(f"study storage {text!r}: directory {parent} does not exist or is not writable")
        if Path(db).expanduser().is_dir():
            raise ConfigError(f"study storage {text!r}: {db} is a directory, not a database file")
    return url


def requeue_unfinished(searcher, finished_keys: set) -> int:
    """Optuna trials left RUNNING by a killed driver: mark them failed and enqueue their points to run again."""
    import optuna

    study = searcher._ot_study
    n = 0
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        study.tell(t.number, state=optuna.trial.TrialState.FAIL)
        if journal.point_key(t.params) not in finished_keys:
            study.enqueue_trial(t.params, skip_if_exists=False)
            n += 1
    return n


__all__ = ["sampler_seed", "told", "make_searcher", "study_storage", "check_study_url", "requeue_unfinished"]
