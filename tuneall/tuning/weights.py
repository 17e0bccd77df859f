"""The chosen allocation's weights at the end of a search: from the trial's own save, from the member store, or (where
neither holds them) its members trained again, deterministically, at the trials' thread count."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

def weights_of_chosen(cfg, data, out: Path, records: list[dict], best_id: str, verbose: int, ctx) -> None:
    """The chosen trial's member weights where the member store answered its members: read from the store (a member
    keeps its weights at every trial's T it passes while training), or, for records without them, the members
    trained again here, deterministically, at the trials' thread count; then saved."""
    import torch

    from tuneall.training import ensemble as ensemble_io
    from tuneall.data import with_fraction
    from tuneall.planning.points import plan_point
    from tuneall.core.progress import allocation_label
    from tuneall.training.trial import run_trial

    d = out / ensemble_io.MEMBERS / best_id
    try:
        if json.loads((d / ensemble_io.MANIFEST).read_text()).get("files"):
            return
    except (OSError, ValueError):
        pass
    rec = next((r for r in records if str(r.get("trial_id")) == best_id), None)
    if rec is None or not isinstance(rec.get("config"), dict):
        return
    point = rec["config"].get("point", rec["config"])
    try:
        plan = plan_point(point, cfg.budget, data.info, repeats=cfg.seeds, base_seed=cfg.seed)
    except Exception:  # noqa: BLE001 - weights are a convenience
        return
    plan = replace(plan, train=ctx.train_config(plan.train))
    part = with_fraction(data, plan.allocation.data_fraction)
    before = torch.get_num_threads()
    torch.set_num_threads(cfg.resources.threads)
    try:
        stored = stored_weights(out, plan, data, part, cfg.resources.threads, cfg.rule,
                                (ctx.reuse or {}).get("store"))
        if stored is not None:  # every member's weights at this T were kept when it was trained: no training
            result = stored
        else:
            if verbose > 0:
                print(f"tuneall: training the chosen allocation's members again for their weights (the member "
                      f"store lacks some at this trial's steps): {allocation_label(plan.row())}", flush=True)
            result = run_trial(plan, part, rule=cfg.rule)
        ensemble_io.save(d, plan, data.info, data.info.name, cfg.rule, result, transform=data.transform,
                         data_source=data.source)
    except OSError as e:
        print(f"tuneall: members of trial {best_id} not saved ({e})", flush=True)
    finally:
        torch.set_num_threads(before)


def stored_weights(out: Path, plan, data, part, threads: int, rule: str, root=None):
    """The trial's result (with its members' weights) answered from the member store without training, when every
    member's record holds its weights at the trial's steps (kept while it trained: tuneall.store.reuse); else None."""
    from tuneall.store import records as S
    from tuneall.store.reuse import keyed_trainer
    from tuneall.training.trial import curve_steps, run_trial

    # Keyed as the search's trials key them: the whole data's fingerprint (the key holds the data fraction).
    trainer = keyed_trainer(out, data, None, threads, root=root)
    for seeds in plan.seeds:
        for seed in seeds:
            key = trainer.key(plan, seed)
            rec = trainer.store.load(S.key_id(key), key)
            if rec is None or plan.steps not in rec.weights or not rec.covers(plan.steps, curve_steps(plan.steps)):
                return None
    return run_trial(plan, part, rule=rule, trainer=trainer)  # every record covers it: nothing trains


__all__ = ["weights_of_chosen", "stored_weights"]
