"""The search's configuration: :class:`SearchConfig`, what a resume may change, and the config a results
directory was made with."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

from tuneall.core.budget import Budget
from tuneall.core.config import DEFAULT_OBJECTIVE, SEARCHERS, check_rule
from tuneall.core.errors import ConfigError
from tuneall.planning.space import SearchSpace
from tuneall.rundir import results as R
from tuneall.runner import RunOptions
from tuneall.tuning.auto import AUTO

# Fields that say where and how fast a search runs, not what its trials compute: a resume may change them.
OPERATIONAL = ("name", "storage_path", "address", "num_cpus", "dashboard", "max_failures", "concurrency", "trials",
               "resume", "study_storage", "data_dir", "executor", "time_budget_s", "save_members", "member_store")
SAVE_MEMBERS = ("all", "best", "none")


@dataclass(frozen=True, kw_only=True)
class SearchConfig(RunOptions):
    budget: Budget
    space: SearchSpace
    searcher: str = "tpe"
    trials: int = 20  # ignored by grid search, which runs every feasible point
    rule: str = "mean"  # ensemble combination
    objectives: tuple[tuple[str, str], ...] = ((DEFAULT_OBJECTIVE, "max"),)
    resume: bool = False  # continue the search in an existing results directory
    study_storage: str | None = None  # Optuna RDB URL (e.g. sqlite:///study.db); default: a journal file in the dir
    time_budget_s: float | None = None  # wall clock: no trial is started that would end after it (None: no limit)
    save_members: str = "best"  # members' weights kept: of every trial, of the chosen allocation, or none
    # Members answered from / recorded in a member store (exact reuse, tuneall.store.records): True the results
    # directory's member_store/, False none, or a folder shared across runs (tuneall.store.shared).
    member_store: bool | str = True

    def __post_init__(self):
        super().__post_init__()
        from tuneall.store.shared import check_member_store

        object.__setattr__(self, "member_store", check_member_store(self.member_store))
        if self.searcher == AUTO:  # resolved once, here: the directory records (and a resume runs) what it chose
            from tuneall.tuning.auto import choose

            searcher, reason = choose(self.space)
            object.__setattr__(self, "searcher", searcher)
            object.__setattr__(self, "auto_reason", reason)  # not a field: printed at the start by run_search
        if self.searcher not in SEARCHERS:
            raise ConfigError(f"unknown searcher {self.searcher!r}; valid: {', '.join((*SEARCHERS, AUTO))}")
        if isinstance(self.trials, bool) or not isinstance(self.trials, int) or self.trials < 1:
            raise ConfigError(f"trials must be an integer >= 1, but got {self.trials!r}")
        check_rule(self.rule)
        if self.searcher == "nsga2" and len(self.objectives) < 2:
            raise ConfigError("searcher 'nsga2' is multi-objective: give at least two objectives")
        if self.time_budget_s is not None and (isinstance(self.time_budget_s, bool) or not isinstance(
                self.time_budget_s, (int, float)) or not math.isfinite(self.time_budget_s) or self.time_budget_s <= 0):
            raise ConfigError(f"time_budget must be a number of seconds > 0, but got {self.time_budget_s!r}")
        if self.save_members not in SAVE_MEMBERS:
            raise ConfigError(f"save_members must be one of {', '.join(SAVE_MEMBERS)}, but got {self.save_members!r}")
        if self.executor != "ray":
            raise ConfigError("a search runs its trials as Ray Tune trials: executor must be 'ray'")

    @property
    def metric(self) -> list[str]:
        return [m for m, _ in self.objectives]

    @property
    def mode(self) -> list[str]:
        return [d for _, d in self.objectives]

    def default_name(self) -> str:
        return f"{self.dataset_label}-{self.budget.value:.3g}-{self.space.name}-{self.searcher}"

    def to_json(self) -> dict:
        """The config as ``tuneall.json`` records it (the space as its name, YAML and resolved axes)."""
        conf = json.loads(json.dumps(asdict(self), default=str))
        conf["space"] = {"name": self.space.name, "yaml": self.space.source,
                         "resolved": json.loads(json.dumps(asdict(self.space), default=str))}
        return conf


def check_resumable(cfg: SearchConfig, out: Path) -> dict:
    """The directory's ``tuneall.json`` if ``cfg`` is the search that made it; else ConfigError naming the field."""
    meta = R.read_meta(out)
    if not meta:
        R.kind(out)  # a train directory or one killed before its provenance: the line that says what to do
        raise ConfigError(f"{out} is not a tuneall search directory (no {R.META}); refusing to touch it")
    old, new = meta["config"], cfg.to_json()
    if isinstance(old.get("space"), dict) and "resolved" not in old["space"]:
        new["space"].pop("resolved")  # made before resolved spaces were recorded: compare the YAML
    R.check_same_run(out, old, new, ignore=OPERATIONAL)
    return meta


def config_from_dir(results_dir: str | Path, **overrides) -> SearchConfig:
    """The SearchConfig a results directory was made with (for ``tuneall resume DIR``)."""
    import yaml

    from tuneall.core.config import Resources
    from tuneall.planning.space import parse_space

    out = R.resolve_dir(results_dir)  # a URI: its working copy, pulled
    if R.kind(out) != "search":
        raise ConfigError(f"{out} is a sweep; sweeps cannot be resumed (run the sweep again with another name)")
    meta = R.read_meta(out)
    if not meta:
        raise ConfigError(f"{out} is not a tuneall search directory (no {R.META})")
    conf = dict(meta["config"])
    from tuneall.tuning.inputs import pin

    pin(meta)  # the factories and loader from the copies the search kept, from any working directory
    try:
        space_src = conf.pop("space")["yaml"]
        conf.update(
            budget=Budget(**conf["budget"]),
            space=parse_space(yaml.safe_load(space_src), source=space_src),
            objectives=tuple(tuple(o) for o in conf["objectives"]),
            resources=Resources(**conf["resources"]),
        )
        if "resolved" in (meta["config"]["space"] or {}):  # fixed axes (e.g. an --lr) as the search ran them
            from tuneall.planning.space import with_fixed

            fixed = {k: v["values"][0] for k, v in meta["config"]["space"]["resolved"]["axes"].items()
                     if isinstance(v, dict) and len(v.get("values") or ()) == 1}
            conf["space"] = with_fixed(conf["space"], **fixed)
        conf.update(name=out.name, storage_path=R.storage.ray_storage_path(out), resume=True, **overrides)
        return SearchConfig(**{k: v for k, v in conf.items() if k in SearchConfig.__dataclass_fields__})
    except ConfigError as e:  # e.g. an invalid space or budget recorded in it
        raise ConfigError(f"{out / R.META} is damaged ({e}); it cannot be resumed") from None
    except (KeyError, TypeError, ValueError, AttributeError, yaml.YAMLError) as e:
        what = f"missing key {e}" if isinstance(e, KeyError) else f"{type(e).__name__}: {' '.join(str(e).split())}"
        raise ConfigError(f"{out / R.META} is damaged ({what[:200]}); it cannot be resumed") from None


__all__ = ["SearchConfig", "OPERATIONAL", "SAVE_MEMBERS", "SEARCHERS", "check_resumable", "config_from_dir"]
