"""``tuneall train``'s checks before it trains, the same as ``plan`` and ``search`` make: a width that collapses a
built-in family to one channel is refused, and a run estimated above an hour prints its estimate and asks where a
person can answer (``-y`` / ``confirm=False`` skips the question; nothing is asked under CI or without a terminal).
"""

from __future__ import annotations

from tuneall.core.errors import ConfigError


def check_verbose(verbose) -> None:
    if isinstance(verbose, bool) or verbose not in (0, 1, 2):
        raise ConfigError(f"verbose must be 0, 1 or 2, but got {verbose!r}")


def check_val_fraction(name: str, val_fraction: float | None) -> None:
    """Refuse a ``val_fraction`` for user data that bring their own validation split (:mod:`tuneall.data.user`)."""
    from tuneall.data.user import check_val_fraction as check

    check(name, val_fraction)


def before_training(plan, info, seeds: int, confirm: bool = True, verbose: bool = True) -> None:
    """``tuneall train``'s checks once its plan is made: the width (:func:`tuneall.models.check_width_scales`, as
    a search space checks its widths), then the estimate and the question (:func:`estimate_and_confirm`)."""
    from tuneall.models import check_width_scales

    a = plan.allocation
    check_width_scales(a.family, a.width, plan.depth)
    estimate_and_confirm(plan, info, seeds, confirm, verbose)


def estimate_and_confirm(plan, info, seeds: int, confirm: bool = True, verbose: bool = True) -> None:
    """Print the estimated training time of ``plan`` (``seeds`` repeats) when it is long, and above an hour ask
    before starting where a person can answer. Raises NotStarted on a no. Estimates only on the CPU."""
    import pandas as pd

    from tuneall.core.progress import CONFIRM_ABOVE_S, confirm as ask_user, fmt_duration, interactive
    from tuneall.training.estimate import trial_seconds
    from tuneall.training.preflight import NotStarted

    import torch

    if plan.train.device != "cpu":
        return
    threads = torch.get_num_threads()  # what `tuneall train` runs with
    row = pd.DataFrame([{**plan.row(), "batch_size": plan.train.batch_size}])
    try:
        total = float(trial_seconds(row, info, seeds, threads).iloc[0])
    except Exception as e:  # noqa: BLE001 - an estimate must never stop a run
        if verbose:
            print(f"tuneall: no time estimate ({type(e).__name__}: {e})", flush=True)
        return
    if total <= CONFIRM_ABOVE_S:
        return
    line = (f"tuneall: training {plan.k} member(s) x {seeds} seed(s) for {plan.steps:,} steps each is estimated at "
            f"about {fmt_duration(total)} on this machine")
    if confirm and interactive():
        if not ask_user(f"{line}. Start it?"):
            raise NotStarted("not started; nothing was written")
    elif verbose:
        print(line, flush=True)


__all__ = ["check_verbose", "check_val_fraction", "before_training", "estimate_and_confirm"]
