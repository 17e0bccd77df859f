"""The command line's options, each declared once: argument types, parent parsers (budget, data, recipe, space,
members, run) shared by the commands, and the help formatter that shows defaults."""

from __future__ import annotations

import argparse

from tuneall.core.budget import DEFAULT_MIN_STEPS, UNITS
from tuneall.core.config import MEMBER_METHODS, OPTIMIZERS
from tuneall.data.registry import DEFAULT_VAL_FRACTION

DATASETS = "cifar10 | cifar100 | digits | mnist1d | synthetic"


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own usage errors: one line, exit 2
        self.exit(2, f"tuneall: error: {message}\n")


class _Help(argparse.RawDescriptionHelpFormatter):
    """Each option's default after its help (unless the help says it, or there is none); epilogs kept as written."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text or action.default in (None, False, argparse.SUPPRESS) or not action.option_strings:
            return text
        return f"{text} (default: {action.default})"


def _seconds(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        v = float("nan")
    if not v > 0 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {text!r}")
    return v


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _ints(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _parent(*adders) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    for add in adders:
        add(p)
    return p


def _budget_opts(p, required: bool = True) -> None:
    g = p.add_argument_group("budget")
    g.add_argument("--budget", required=required, default=None, help="training compute budget C, e.g. 1e10")
    _unit_opts(g)


def _unit_opts(g) -> None:
    g.add_argument("--unit", default="param-steps", help=f"budget unit: {' | '.join(UNITS)}")
    g.add_argument("--min-steps", type=int, default=DEFAULT_MIN_STEPS, help="minimum SGD steps per member")


def _data_opts(p) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--dataset", "--data", dest="dataset", default="digits",
                   help=f"{DATASETS}, or your own data by import path: mypkg.data:load or path/to/file.py:load "
                        "(a function returning tensors; see tuneall.data.user)")
    g.add_argument("--data-dir", default=None, help="where datasets live (default: $TUNEALL_DATA or ~/.cache/tuneall)")
    g.add_argument("--val-fraction", type=float, default=DEFAULT_VAL_FRACTION,
                   help="share of the training split held out as validation, which chooses the best allocation")


def _recipe_opts(p) -> None:
    g = p.add_argument_group("training recipe (fixed learning rate: what keeps anytime evaluation exact)")
    g.add_argument("--optimizer", default=None, choices=OPTIMIZERS,
                   help="sgd (with momentum) or adamw (default: the space's, else sgd)")
    g.add_argument("--lr", type=float, default=None, help="learning rate (default: the space's, else 0.05)")
    g.add_argument("--momentum", type=float, default=None, help="SGD momentum (default: the space's, else 0.9)")
    g.add_argument("--weight-decay", type=float, default=None, help="weight decay (default: the space's, else 0)")
    g.add_argument("--batch-size", type=int, default=None, help="batch size (default: the space's, else 128)")
    g.add_argument("--label-smoothing", type=float, default=None,
                   help="cross-entropy label smoothing in [0, 1) (default: the space's, else 0)")


def _space_opts(p, plan: bool = False) -> None:
    g = p.add_argument_group("allocations (a space file, or an ad-hoc grid)")
    g.add_argument("--space", default=None,
                   help="search space: a packaged name (paper, wide, data, tuned, more_or_less) or a YAML file "
                        "(default: paper)")
    g.add_argument("--family", "--model", dest="family", default=None,
                   help="model family cnn3 | resnet | wrn, or your own factory fn(width, depth, input_shape, "
                        "num_classes) by import path: mypkg.nets:make_mlp or path/to/file.py:make_mlp (instead of "
                        "--space; without --widths, the family's own width grid)")
    g.add_argument("--widths", type=_floats, default=None, help="comma-separated width multipliers")
    g.add_argument("--depths", type=_ints, default=None, help="comma-separated depths")
    g.add_argument("--k", type=_ints, default=None, help="comma-separated ensemble sizes")


def _member_opts(g) -> None:
    g.add_argument("--members", default="sequential", choices=MEMBER_METHODS,
                   help="how a trial trains its k members: one after another, as one vmap-ed network, or "
                        "whichever a few timed steps show faster here")
    g.add_argument("--amp", action="store_true", help="mixed precision (with --members vectorized or auto)")


def _run_opts(p) -> None:
    g = p.add_argument_group("resources")
    g.add_argument("--cpus-per-trial", type=float, default=1.0, help="CPUs (= torch threads) of each trial")
    g.add_argument("--gpus-per-trial", type=float, default=0.0, help="GPUs of each trial; fractions share a GPU")
    g.add_argument("--concurrency", type=int, default=None, help="trials at a time (default: as the CPUs allow)")
    _member_opts(g)
    g.add_argument("--address", default=None, help="an existing Ray cluster HOST:PORT (default: start a local Ray)")
    g.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray (default: all)")
    g.add_argument("--max-failures", type=int, default=0, help="retries of a trial whose process dies")
    o = p.add_argument_group("output")
    o.add_argument("--name", default=None, help="results directory name (default: from dataset, budget, space)")
    o.add_argument("--storage-path", default="results", help="where results directories go")
    o.add_argument("--seeds", type=int, default=3, help="repeats of each allocation over seeds")
    o.add_argument("--seed", type=int, default=0, help="sampler seed and base seed of the members")
    o.add_argument("--verbose", type=int, default=1,
                   help="0: only the final answer and errors; 1: a line per finished trial, a heartbeat per running "
                        "trial and Ray's table of trials; 2: also Ray's result of every trial")
    o.add_argument("-q", "--quiet", dest="verbose", action="store_const", const=0,
                   help="the same as --verbose 0")

