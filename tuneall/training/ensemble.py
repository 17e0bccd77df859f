"""Members' weights on disk and back: the chosen allocation's trained ensemble as a predictor.

A trial directory ``members/<trial_id>/`` holds ``ensemble.json`` (architecture, recipe, dataset, seeds, rule and the
recorded metrics per repeat) and one ``r<repeat>_m<member>.pt`` per member: ``torch.save`` of the state dict only,
so loading runs no pickled code (``torch.load(weights_only=True)``). :func:`load_ensemble` rebuilds the members from
the registry and returns an :class:`Ensemble` whose accuracy on the dataset's test split is the recorded one.

The weights come with the trial's result (``TrialResult.weights``: every trainer keeps each member's weights at the
plan's steps, :mod:`tuneall.training.trainers`); a result without them is saved without weights, and
``ensemble.json`` says so.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tuneall.core.errors import ConfigError

MEMBERS = "members"  # in a results directory: one folder per trial whose members were kept
BEST = "best.json"  # members/best.json: which trial is the chosen allocation
MANIFEST = "ensemble.json"

def current_trial_id() -> str | None:
    try:
        from ray import tune

        return tune.get_context().get_trial_id()
    except Exception:  # noqa: BLE001  not inside a Ray Tune trial
        return None


def save(out: Path, plan, info, dataset: str, rule: str, result) -> Path | None:
    """Write a trial's members (if its result kept their weights) and its manifest to ``out``; returns ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    for name, data in files(plan, info, dataset, rule, result).items():
        (out / name).write_bytes(data)
    return out


def files(plan, info, dataset: str, rule: str, result) -> dict[str, bytes]:
    """A trial's saved members as file name -> bytes, the manifest last: what :func:`save` writes, or what a trial
    on a node without the results directory sends to the driver's store service (:mod:`tuneall.store.backend`)."""
    import io

    import torch

    seeds = [list(s) for s in plan.seeds]
    by_seed = dict(result.weights or ())
    out: dict[str, bytes] = {}
    files = None
    if all(s in by_seed for group in seeds for s in group):
        files = [[f"r{r}_m{i}.pt" for i in range(len(group))] for r, group in enumerate(seeds)]
        for r, group in enumerate(seeds):
            for i, s in enumerate(group):
                buf = io.BytesIO()
                torch.save(by_seed[s], buf)
                out[files[r][i]] = buf.getvalue()
    a = plan.allocation
    manifest = {
        "family": a.family, "width": a.width, "depth": plan.depth, "k": plan.k, "data_fraction": a.data_fraction,
        "dataset": dataset, "input_shape": list(info.input_shape), "in_channels": info.in_channels,
        "num_classes": info.num_classes, "spatial_dims": info.spatial_dims, "rule": rule,
        "train": {"steps": plan.steps, "optimizer": plan.train.optimizer, "lr": plan.train.lr,
                  "momentum": plan.train.momentum, "batch_size": plan.train.batch_size,
                  "weight_decay": plan.train.weight_decay, "label_smoothing": plan.train.label_smoothing},
        "factory": _factory_name(a.family),
        "seeds": seeds, "files": files, "status": result.status,
        "recorded": {"ensemble_acc": [r["ensemble_acc"] for r in result.repeats], **{
            k: v for k, v in result.summary.items() if isinstance(v, float)}},
        "note": None if files else "the trainer kept no weights for these members",
    }
    out[MANIFEST] = json.dumps(manifest, indent=1, default=float).encode()
    return out


def _factory_name(family: str) -> str | None:
    """A user family's factory as an import path (what :func:`load_ensemble` may import again), else None."""
    from tuneall.models import get_family

    fam = get_family(family)
    return (fam.source or None) if fam.user else None


def _rebuild(m: dict):
    """A member's network as the manifest describes it. A user family must be registered in this process (or its
    factory importable from where it was recorded)."""
    from tuneall.models import create_model, list_models

    if m["family"] not in list_models() and m.get("factory"):
        from tuneall.models import resolve_family

        try:
            resolve_family(m["factory"])
        except Exception:  # noqa: BLE001  not importable here: the line below says what to do
            pass
    if m["family"] not in list_models():
        raise ConfigError(f"the members are of model family {m['family']!r}, which is not registered in this "
                          f"process; register it first (tuneall.register_model({m['family']!r}, ...))")
    return create_model(m["family"], m["width"], m["depth"], m["in_channels"], m["num_classes"], m["spatial_dims"],
                        input_shape=tuple(m["input_shape"]) if m.get("input_shape") else None)


def save_train_dir(out: Path, result, data, rule: str, keep_weights: bool, argv) -> None:
    """``tuneall train``'s results directory: train.json (what ran and what it gave) and the members' weights."""
    from dataclasses import replace

    from tuneall.rundir import results as R

    out.mkdir(parents=True)
    doc = R.provenance({"plan": result.plan.row()}, argv, kind="train")
    doc.update(metrics=result.metrics(), repeats=result.repeats, members=result.members, state="complete")
    R.write_json(out / "train.json", json.loads(json.dumps(doc, default=str)))
    save(out, result.plan, data.info, data.info.name, rule, result if keep_weights else replace(result, weights=None))
    result.attrs = {"results_dir": str(out)}


def keep_only(results_dir: Path, trial_id: str | None) -> None:
    """``save_members='best'``: drop every trial's members but ``trial_id``'s, and record which one is kept."""
    root = Path(results_dir) / MEMBERS
    if not root.is_dir():
        return
    for d in root.iterdir():
        if d.is_dir() and d.name != trial_id:
            shutil.rmtree(d, ignore_errors=True)
    mark_best(results_dir, trial_id)


def mark_best(results_dir: Path, trial_id: str | None) -> None:
    root = Path(results_dir) / MEMBERS
    if root.is_dir() and trial_id and (root / trial_id / MANIFEST).exists():
        (root / BEST).write_text(json.dumps({"trial_id": trial_id}))


def _manifest_dir(path: Path) -> Path:
    path = Path(path)
    if (path / MANIFEST).exists():
        return path
    best = path / MEMBERS / BEST
    if best.exists():
        return path / MEMBERS / json.loads(best.read_text())["trial_id"]
    raise ConfigError(f"{path} holds no saved members (no {MANIFEST}, no {MEMBERS}/{BEST}); run the search with "
                      "save_members='best' or 'all'")


class Ensemble:
    """A trained ensemble: ``predict_log_proba(x)`` combines its members by the recorded rule (in log space)."""

    def __init__(self, members: list, manifest: dict, repeat: int, path: Path):
        self.members, self.manifest, self.repeat, self.path = members, manifest, repeat, path
        self.rule = manifest["rule"]

    def __repr__(self) -> str:
        m = self.manifest
        return (f"Ensemble({m['family']} w={m['width']:g} d={m['depth']} k={m['k']}, rule={self.rule!r}, "
                f"repeat {self.repeat}, from {self.path})")

    def member_log_proba(self, x, batch_size: int = 2048):
        import torch

        from tuneall.training.member import predict_log_proba

        return torch.stack([predict_log_proba(m, x, batch_size) for m in self.members])

    def predict_log_proba(self, x, batch_size: int = 2048):
        from tuneall.training.metrics import combine

        return combine(self.member_log_proba(x, batch_size), self.rule)

    def predict(self, x):
        return self.predict_log_proba(x).argmax(-1)

    def evaluate(self, data=None) -> dict[str, float]:
        """Ensemble metrics on ``data``'s test split (default: the dataset the members were trained on)."""
        from tuneall.data import load_dataset
        from tuneall.training.metrics import evaluate_ensemble

        data = data or load_dataset(self.manifest["dataset"])
        return evaluate_ensemble(self.member_log_proba(data.x_test), data.y_test, self.rule)

    @property
    def recorded_accuracy(self) -> float:
        return self.manifest["recorded"]["ensemble_acc"][self.repeat]


def load_ensemble(path: str | Path, repeat: int = 0) -> Ensemble:
    """The saved members of a search's chosen allocation (``path``: its results directory), or of one trial
    (``path``: a ``members/<trial_id>`` folder), or of a ``tuneall train`` directory; ``repeat``: which seed's
    ensemble (their recorded accuracies are ``manifest['recorded']['ensemble_acc']``)."""
    import torch

    d = _manifest_dir(Path(path))
    m = json.loads((d / MANIFEST).read_text())
    if not m.get("files"):
        raise ConfigError(f"{d} has no member weights ({m.get('note') or 'not saved'})")
    if not isinstance(repeat, int) or not 0 <= repeat < len(m["files"]):
        raise ConfigError(f"repeat must be an integer in [0, {len(m['files'])}), but got {repeat!r}")
    members = []
    for f in m["files"][repeat]:
        net = _rebuild(m)
        net.load_state_dict(torch.load(d / f, map_location="cpu", weights_only=True))
        members.append(net.eval())
    return Ensemble(members, m, repeat, d)


__all__ = ["save", "files", "save_train_dir", "keep_only", "mark_best", "load_ensemble", "Ensemble", "MEMBERS"]
