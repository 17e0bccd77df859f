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


def save(out: Path, plan, info, dataset: str, rule: str, result, transform: dict | None = None,
         data_source: str | None = None) -> Path | None:
    """Write a trial's members (if its result kept their weights) and its manifest to ``out``; returns ``out``.

    ``transform``: raw inputs -> what the members read (:mod:`tuneall.data.inputs`; the data's ``transform``);
    ``data_source``: for user data, how a new process finds it again (an import path), if known."""
    out.mkdir(parents=True, exist_ok=True)
    for name, data in files(plan, info, dataset, rule, result, transform, data_source).items():
        (out / name).write_bytes(data)
    return out


def files(plan, info, dataset: str, rule: str, result, transform: dict | None = None,
          data_source: str | None = None) -> dict[str, bytes]:
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
        "transform": transform or {"kind": "none"}, "data_source": data_source,
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


def save_train_dir(out: Path, result, data, rule: str, keep_weights: bool, argv, threads: int = 1) -> None:
    """``tuneall train``'s results directory: train.json (what ran and what it gave) and the members' weights."""
    from dataclasses import replace

    from tuneall.rundir import results as R

    out.mkdir(parents=True)
    doc = R.provenance({"plan": result.plan.row(), "torch_threads": threads}, argv, kind="train")
    doc.update(metrics=result.metrics(), repeats=result.repeats, members=result.members, state="complete")
    R.write_json(out / "train.json", json.loads(json.dumps(doc, default=str)))
    save(out, result.plan, data.info, data.info.name, rule, result if keep_weights else replace(result, weights=None),
         transform=data.transform, data_source=data.source)
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

    @property
    def transform(self) -> dict:
        """Raw inputs -> what the members read (:mod:`tuneall.data.inputs`); applied by predict and evaluate((x, y))."""
        if "transform" not in self.manifest:  # saved before it was recorded: a built-in dataset's is known
            from tuneall.data import list_datasets, load_dataset

            name = self.manifest.get("dataset")
            self.manifest["transform"] = load_dataset(name).transform if name in list_datasets() else None
        return self.manifest["transform"] or {"kind": "none"}

    def prepare(self, x):
        """Raw inputs (tensor, numpy array or list; one example or a batch) as the members' input batch, and whether
        ``x`` was one example."""
        from tuneall.data.inputs import apply, as_batch

        try:
            batch, single = as_batch(x, self.manifest["input_shape"])
        except ValueError as e:
            raise ConfigError(f"predict: {e}") from None
        return apply(self.transform, batch), single

    def member_log_proba(self, x, batch_size: int = 2048, raw: bool = True):
        """Each member's log-probabilities (members, N, classes); ``raw=False``: ``x`` is already transformed (a
        tuneall Dataset's tensors)."""
        import torch

        from tuneall.training.member import predict_log_proba

        if raw:
            x, _ = self.prepare(x)
        return torch.stack([predict_log_proba(m, x, batch_size) for m in self.members])

    def predict_log_proba(self, x, batch_size: int = 2048, raw: bool = True):
        """The ensemble's log-probabilities of raw inputs ``x`` (N, classes); (classes,) for one example."""
        from tuneall.training.metrics import combine

        batch, single = self.prepare(x) if raw else (x, False)
        out = combine(self.member_log_proba(batch, batch_size, raw=False), self.rule)
        return out[0] if single else out

    def predict(self, x, raw: bool = True):
        """Class labels of raw inputs ``x``: a tensor for a tensor batch, a numpy array for a numpy / list batch, an
        int for one example."""
        import torch

        labels = self.predict_log_proba(x, raw=raw).argmax(-1)
        if labels.dim() == 0:
            return int(labels)
        return labels if isinstance(x, torch.Tensor) else labels.numpy()

    def evaluate(self, data=None) -> dict[str, float]:
        """Ensemble metrics on ``data``: ``(x, y)`` raw inputs and labels, a tuneall Dataset (its test split), or
        by default the test split of the dataset the members were trained on."""
        import torch

        from tuneall.data import Dataset
        from tuneall.training.metrics import evaluate_ensemble

        if data is None:
            data = self._own_data()
        if isinstance(data, Dataset):
            return evaluate_ensemble(self.member_log_proba(data.x_test, raw=False), data.y_test, self.rule)
        if isinstance(data, (tuple, list)) and len(data) == 2:
            x, y = data
            y = torch.as_tensor(y).to(torch.int64).reshape(-1)
            return evaluate_ensemble(self.member_log_proba(x), y, self.rule)
        raise ConfigError(f"evaluate: data must be (x, y) raw inputs and labels or a tuneall Dataset, not "
                          f"{type(data).__name__}")

    def _own_data(self):
        """The dataset the members were trained on, found again in this process, or one line saying how."""
        from tuneall.data import load_dataset
        from tuneall.core.errors import DataError

        name = self.manifest.get("data_source") or self.manifest["dataset"]
        try:
            return load_dataset(name)
        except DataError:
            raise ConfigError(
                f"evaluate: the members were trained on user data {self.manifest['dataset']!r}, which is not "
                "registered in this process; pass it: ensemble.evaluate((x_test, y_test)), or "
                f"tuneall.register_data(data, name={self.manifest['dataset']!r}) first") from None

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
