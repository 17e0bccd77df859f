"""summary.md's lines on the tie set (:mod:`tuneall.reporting.ties`) around the answer
(:mod:`tuneall.reporting.choice`): P(best) of the answer and of every allocation not separated from it, or
"undetermined"."""

from __future__ import annotations

from typing import Callable

import pandas as pd


def tie_lines(out: pd.DataFrame, ties: pd.DataFrame, test: str, chosen_id: str | None = None,
              alloc: Callable = str) -> list[str]:
    """summary.md's lines on the tie set: P(best) of the answer (``chosen_id``, :mod:`tuneall.reporting.choice`;
    default the tie set's top) and of every allocation not separated from it, and "undetermined" when the best is
    the best in fewer than half the resamples (:mod:`tuneall.reporting.ties`)."""
    from tuneall.reporting.ties import P_DETERMINED

    by_id = out.assign(trial_id=out["trial_id"].astype(str)).set_index("trial_id")
    top = ties.iloc[0]
    if chosen_id is not None and chosen_id in set(ties["trial_id"].astype(str)):
        top = ties[ties["trial_id"].astype(str) == chosen_id].iloc[0]  # the answer: exact ties broken by cost
    best_alloc = alloc(by_id.loc[str(top["trial_id"])])
    others = ties[ties["tied"].astype(bool) & (ties["trial_id"].astype(str) != str(top["trial_id"]))]
    # The same allocation trained twice (two trials of one point) is one allocation: named once.
    others = others[~others["trial_id"].map(lambda t: alloc(by_id.loc[t])).duplicated()]
    others = others[others["trial_id"].map(lambda t: alloc(by_id.loc[t])) != best_alloc]
    named = "; ".join(f"{alloc(by_id.loc[r.trial_id])} ({r.mean:.4f}, {r.diff_to_best:+.4f}, P(best) "
                      + ("n/a" if pd.isna(r.p_best) else f"{r.p_best:.2f}") + ")" for r in others.itertuples())
    pb = "n/a" if pd.isna(top["p_best"]) else f"{top['p_best']:.2f}"
    if not ties.attrs.get("determined", False):
        return [f"**Undetermined**: the data cannot choose one best allocation: the answer ({best_alloc}) is "
                f"the best in only {pb} of the resamples (below {P_DETERMINED:g}; {test}). Not separated from it: "
                + (named or "none") + ". Any of them is as good an answer as these seeds can tell.", ""]
    if len(others):
        return [f"**P(best) {pb}** for {best_alloc}; not separated from it ({test}): {named}.", ""]
    return [f"**P(best) {pb}** for {best_alloc}; separated from every other allocation ({test}).", ""]


__all__ = ["tie_lines"]
