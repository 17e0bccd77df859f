"""tuneall's vocabulary and configs, defined once and importable without torch, Ray or pandas.

Planning, the CLI's parser, the results directory and the reports need these names; they must not pay for torch
(``import tuneall``, ``tuneall --help``). Modules that train import them from here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Callable, Sequence

from tuneall.core.errors import ConfigError

# How a trial trains its k members (tuneall.training.vectorized implements them).
MEMBER_METHODS = ("sequential", "vectorized", "auto")
# Steps between training's finite-loss checks: where a diverged member stops, so the member store must know it too.
DIVERGENCE_CHECK_EVERY = 10
# How member predictions are combined into the ensemble's (tuneall.training.metrics implements them).
COMBINE_RULES = ("mean", "geometric", "vote")
SEARCHERS = ("tpe", "random", "grid", "nsga2", "halving")
OPTIMIZERS = ("sgd", "adamw")  # sgd: with momentum (seed 000); adamw: torch's AdamW with decoupled weight decay

# Metrics of one evaluated ensemble; the direction says which way is better (used for "worst case" over seeds).
ENSEMBLE_METRICS: dict[str, str] = {
    "ensemble_acc": "max",
    "ensemble_nll": "min",
    "ensemble_ece": "min",
    "member_acc_mean": "max",
    "disagreement": "max",  # more disagreement = more diversity; its "worst" is the least diverse seed
}
# Choose on validation, report on test. The unprefixed names are TEST metrics (the seed examples report test
# accuracy as the papers do); the same metrics on the validation split carry VAL_PREFIX. Searches, frontiers, "best"
# tables and ties use the validation ones (CHOICE_METRIC); tables carry both.
VAL_PREFIX = "val_"
SPLIT_METRICS: dict[str, str] = {**ENSEMBLE_METRICS, **{VAL_PREFIX + k: v for k, v in ENSEMBLE_METRICS.items()}}
CHOICE_METRIC = "val_ensemble_acc"  # per repeat; its mean over seeds chooses the best allocation
# Trial-level metrics an objective may name, with the direction that is better.
OBJECTIVES: dict[str, str] = {
    "val_ensemble_acc_mean": "max", "val_ensemble_acc_worst": "max", "val_ensemble_nll_mean": "min",
    "val_ensemble_ece_mean": "min",
    "ensemble_acc_mean": "max", "ensemble_acc_worst": "max", "ensemble_nll_mean": "min", "ensemble_ece_mean": "min",
    "total_params": "min", "inference_flops": "min", "train_time_s": "min",
}
DEFAULT_OBJECTIVE = "val_ensemble_acc_mean"

# The training recipe's fields a point may fix or sample (search-space axes): the fields of Recipe, in its order.
RECIPE_FIELDS = ("optimizer", "lr", "momentum", "weight_decay", "batch_size", "label_smoothing")
# The recipe fields a member step's cost reads (tuneall.planning.factory._member_cost: FLOPs at the batch size); the
# others never change which allocations a budget can train.
STEP_COST_RECIPE_FIELDS = ("batch_size",)
# The columns that identify an allocation in every table (plan, trials, frontier, sweep cells).
ALLOCATION_COLUMNS = ["family", "width", "depth", "k", "data_fraction", "design", *RECIPE_FIELDS]

HEARTBEAT_S = 60.0  # seconds between a long-running member's "step i/T" lines inside a search or sweep
# User attribute of an Optuna trial told without running: a duplicate point, answered ("answered") or being trained
# ("running"), and drawn again; the optimisation history hides such trials.
REDRAWN = "redrawn"


def check_rule(rule: str) -> str:
    """The one check of an ensemble combination rule, for every entry point."""
    if rule not in COMBINE_RULES:
        raise ConfigError(f"unknown combination rule {rule!r}; valid: {', '.join(COMBINE_RULES)}")
    return rule


def parse_objectives(text) -> tuple[tuple[str, str], ...]:
    """'ensemble_acc_mean,inference_flops' or 'a:max,b:min' (or a sequence of names/pairs) -> ((metric, mode), ...)."""
    parts = text.split(",") if isinstance(text, str) else list(text)
    out = []
    for part in parts:
        if isinstance(part, (tuple, list)):
            name, mode = part
        else:
            name, _, mode = str(part).strip().partition(":")
        if not name:
            continue
        if name not in OBJECTIVES:
            raise ConfigError(f"unknown objective {name!r}; valid: {', '.join(OBJECTIVES)}")
        mode = mode or OBJECTIVES[name]
        if mode not in ("min", "max"):
            raise ConfigError(f"objective {name!r}: mode must be min or max, got {mode!r}")
        if any(name == seen for seen, _ in out):
            raise ConfigError(f"objective {name!r} is given twice; name each metric once")
        out.append((name, mode))
    if not out:
        raise ConfigError("objectives needs at least one metric")
    return tuple(out)


def _check_recipe(values: dict) -> None:
    """The one check of recipe settings (``values``: some of RECIPE_FIELDS), for a Recipe and a TrainConfig."""
    for name in ("lr", "momentum", "weight_decay"):
        v = values.get(name, 1)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0 \
                or (name == "lr" and v == 0):
            raise ConfigError(f"{name} must be a finite number {'> 0' if name == 'lr' else '>= 0'}, got {v!r}")
    if "optimizer" in values and values["optimizer"] not in OPTIMIZERS:
        raise ConfigError(f"unknown optimizer {values['optimizer']!r}; valid: {', '.join(OPTIMIZERS)}")
    ls = values.get("label_smoothing", 0.0)
    if isinstance(ls, bool) or not isinstance(ls, (int, float)) or not 0 <= ls < 1:
        raise ConfigError(f"label_smoothing must be a number in [0, 1), got {ls!r}")
    _check_sizes({k: v for k, v in values.items() if k == "batch_size"})


def _check_sizes(values: dict) -> None:
    for name, v in values.items():
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ConfigError(f"{name} must be an integer >= 1, but got {v!r}")


# The type each recipe setting has in a TrainConfig: a point's YAML ``lr: 1`` is the float 1.0 there (member keys
# compare recipes as JSON, where 1 and 1.0 differ).
_RECIPE_TYPES = {"optimizer": str, "lr": float, "momentum": float, "weight_decay": float, "batch_size": int,
                 "label_smoothing": float}


@dataclass(frozen=True)
class Recipe:
    """The training recipe as one value: the six settings a trial's members share (RECIPE_FIELDS). ``None``: not
    given here, so the search space's value or TrainConfig's default applies. Built once where a user names the
    settings (the API's ``lr=...`` keywords, the CLI's ``--lr``) and carried whole: a space fixes its given settings
    (``planning.space.build_space``), a TrainConfig is made from it (``TrainConfig.from_recipe``) and gives it back
    (``TrainConfig.recipe``). A given value is checked here, by the same rule a TrainConfig applies."""

    # TrainConfig's order (the API's keywords, a recorded call, an ad-hoc space's YAML list them so); tables use
    # RECIPE_FIELDS' order.
    lr: float | None = None  # fixed learning rate, > 0
    momentum: float | None = None  # SGD only
    batch_size: int | None = None
    weight_decay: float | None = None
    optimizer: str | None = None  # one of OPTIMIZERS
    label_smoothing: float | None = None  # in [0, 1)

    def __post_init__(self):
        _check_recipe(self.given())

    def given(self) -> dict:
        """The settings given (not None), in field order: what a space fixes or a sweep's points take."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    @classmethod
    def of(cls, point: dict) -> "Recipe":
        """The recipe settings a search-space point (or a table row) holds, as the types a TrainConfig keeps."""
        return cls(**{k: _RECIPE_TYPES[k](point[k]) for k in RECIPE_FIELDS if point.get(k) is not None})


assert {f.name for f in fields(Recipe)} == set(RECIPE_FIELDS)


@dataclass(frozen=True)
class SpaceAxes:
    """An ad-hoc search space's axes as one value, as a user names them (the API's ``model=``, ``widths=``,
    ``depths=``, ``k=`` keywords; None: not given): a model family (a registered name, an import path or a factory
    function) and lists of widths, depths and ensemble sizes. ``planning.space.build_space`` turns it, with a
    Recipe, into a SearchSpace."""

    model: str | Callable | None = None
    widths: Sequence[float] | None = None
    depths: Sequence[int] | None = None
    k: Sequence[int] | None = None


@dataclass(frozen=True)
class TrainConfig:
    """The training recipe shared by every member of a trial (see tuneall.training.member on anytime exactness)."""

    lr: float = 0.05  # fixed learning rate, no schedule (what makes anytime evaluation exact)
    momentum: float = 0.9  # SGD only
    batch_size: int = 128
    weight_decay: float = 0.0  # SGD: L2 added to the gradient; AdamW: decoupled decay
    optimizer: str = "sgd"  # one of OPTIMIZERS
    label_smoothing: float = 0.0  # cross-entropy label smoothing in [0, 1)
    device: str = "cpu"
    eval_batch_size: int = 2048  # test-set batch for inference-mode evaluation
    # 2-D image members train in channels_last (NHWC) memory format: measured 1.1-1.5x faster steps on CPU
    # (benchmarks/step_efficiency.py). Changes results only at float-rounding level; False restores NCHW.
    channels_last: bool = True
    # > 0: a member prints "step i/T" at most this often (seconds), so a long trial in a search shows it is alive.
    heartbeat_s: float = 0.0

    @property
    def anytime_exact(self) -> bool:
        """The learning rate is fixed (no schedule tied to the total steps), so the model at step T' of a T-step run
        is the T'-step model: what makes anytime evaluation and member reuse exact."""
        return True

    def __post_init__(self):
        _check_recipe(self.optimiser_fields())
        _check_sizes({"eval_batch_size": self.eval_batch_size})
        if self.device != "cpu":  # only a non-default device needs torch to be checked
            _check_device(self.device)

    @classmethod
    def from_recipe(cls, recipe: Recipe = Recipe(), **kw) -> "TrainConfig":
        """The defaults with the recipe's given settings (``kw``: the runtime fields, e.g. ``device``): one place for
        the defaults."""
        return cls(**recipe.given(), **kw)

    @property
    def recipe(self) -> Recipe:
        """The six recipe settings of this config, every one given."""
        return Recipe(**self.optimiser_fields())

    def optimiser_fields(self) -> dict:
        """The settings a search space may fix or sample (the keys of a point that are not the allocation)."""
        return {k: getattr(self, k) for k in RECIPE_FIELDS}


def _check_device(device: str) -> None:
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"device must be a torch device such as 'cpu' or 'cuda:0', but got {device!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} asked for, but no CUDA device is available")


@dataclass(frozen=True)
class Resources:
    """What a trial asks Ray for and how it runs its members. With ``parallel_members`` each member gets its own
    bundle of this size; otherwise ``members`` says how the trial's process trains them: "sequential" (one after
    another), "vectorized" (a repeat's k members as one ``vmap``-ed network) or "auto" (whichever a few timed steps
    show faster here; :mod:`tuneall.training.vectorized`). ``amp``: mixed precision, vectorised members only."""

    cpus: float = 1.0
    gpus: float = 0.0
    parallel_members: bool = False
    members: str = "sequential"
    amp: bool = False

    def __post_init__(self):
        # One check for every entry point (CLI, API, search, sweep); "not >" also refuses NaN.
        try:
            ok = math.isfinite(self.cpus) and self.cpus > 0 and math.isfinite(self.gpus) and self.gpus >= 0
        except TypeError:
            ok = False
        if not ok:
            raise ConfigError(f"cpus per trial must be > 0 and gpus per trial >= 0, got cpus={self.cpus!r}, "
                              f"gpus={self.gpus!r}")
        if self.members not in MEMBER_METHODS:
            raise ConfigError(f"unknown members method {self.members!r}; valid: {', '.join(MEMBER_METHODS)}")
        if self.parallel_members and self.members != "sequential":
            raise ConfigError("parallel members train each member as its own Ray task: they cannot be combined "
                              f"with members={self.members!r}")
        if self.amp and self.members == "sequential":
            raise ConfigError("amp (mixed precision) applies to vectorised members: use members='vectorized'")

    @property
    def threads(self) -> int:
        """torch threads of a trial: its whole CPUs, at least one (no oversubscription of a shared machine)."""
        return max(1, int(self.cpus))

    @property
    def device(self) -> str:
        """Where a trial's members train: the GPU when the trial holds (a fraction of) one."""
        return "cuda" if self.gpus > 0 else "cpu"

    def bundles(self, k: int) -> list[dict[str, float]]:
        def bundle(cpus: float, gpus: float) -> dict[str, float]:
            return {"CPU": cpus, **({"GPU": gpus} if gpus else {})}

        if not self.parallel_members:
            return [bundle(self.cpus, self.gpus)]
        # The trial's own driver needs almost nothing; the members do the work in bundles 1..k.
        return [{"CPU": 0.01}] + [bundle(self.cpus, self.gpus) for _ in range(k)]


__all__ = ["MEMBER_METHODS", "COMBINE_RULES", "SEARCHERS", "OPTIMIZERS", "ENSEMBLE_METRICS", "VAL_PREFIX",
           "SPLIT_METRICS", "CHOICE_METRIC", "RECIPE_FIELDS", "OBJECTIVES", "DEFAULT_OBJECTIVE",
           "ALLOCATION_COLUMNS", "HEARTBEAT_S", "REDRAWN", "check_rule", "parse_objectives", "Recipe", "SpaceAxes", "TrainConfig",
           "Resources"]
