"""The member store: members, not trials, are the unit of compute.

A member is one network trained from one seed; under a fixed learning rate and a seeded batch sequence, a member
trained for T steps passes through the member of every T' < T (anytime exactness, :mod:`tuneall.training.member`). A trial
(k, C) is therefore a *view* over its k members evaluated at T(k, C) steps, and member j of a k-member ensemble is
a prefix of member j of any ensemble with fewer members (member seeds do not depend on k, :mod:`tuneall.planning.factory`).

The store keeps, in the results directory (``member_store/``), one file per member: its key and its anytime
evaluations (log-probabilities on the test and validation splits at each evaluated step), with steps trained,
divergence and timings. A member is identified by everything that changes its numbers: architecture, recipe, data
fraction, seed, the data itself (a fingerprint), the torch thread count and version, the member method and the
device (float reductions depend on the last three, so reuse is exact only when they match). A request (steps T',
evaluations E') is answered from a record iff the record's run passed T' with every finite-loss check passing and
evaluated at T' and at every step of E' below T': the answer is then bit for bit what a fresh T'-step run returns
(tests/test_member_store.py). Otherwise the member is trained (to its *horizon*: the most steps any trial of the
search will need of it) and the record replaced by the merge of both runs' evaluations (both are prefixes of one
trajectory). A record also keeps the member's state at its last step (weights, optimiser, batch sampler: at most
STATE_MAX_BYTES), so a request for more steps *continues* the stored run instead of starting over, when every
evaluation it needs up to the stored step was made: a continued run is bit for bit an uninterrupted one
(:mod:`tuneall.training.member`), so halving's rungs and a search's later, longer trials pay only the extra steps.
An evaluation another budget needs below the stored step is replayed from a state the record keeps on a
budget-independent grid of steps (:mod:`tuneall.store.replay`), so runs sharing a store across budgets
(:mod:`tuneall.store.shared`) continue each other's members too. One lock file per member key makes an in-flight
duplicate wait for the first trainer.

Files are written atomically and read with ``torch.load(weights_only=True)`` (no code runs). A record is used only
after its stored key is checked equal to the requested key: a damaged, swapped, foreign (other model code, data or
tuneall format: :mod:`tuneall.store.keys`) or stale record is a miss, never an error; the member is trained again
and its record replaced.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from dataclasses import asdict, dataclass, field, is_dataclass, replace
from pathlib import Path
from typing import Callable

from tuneall.core.config import DIVERGENCE_CHECK_EVERY
from tuneall.core.hardware import cpu_id

STORE_DIR = "member_store"
FORMAT = 2  # 2: keys hold the model factory's fingerprint and the format; a record is checked against its key
STATE_MAX_BYTES = 64 << 20  # a member state (weights + optimiser) larger than this is not kept: disk over compute
_NOT_KEY = ("heartbeat_s",)  # recipe fields that change nothing a member computes


def member_key(*, family: str, width: float, depth: int, train, data_fraction: float, seed: int, data_id: str,
               threads: int, method: str = "sequential", device: str = "cpu", torch_version: str = "",
               model_id: str = "") -> dict:
    """Everything that changes a member's numbers, as a JSON-able dict (``train``: a TrainConfig or a dict;
    ``model_id``, ``data_id``: fingerprints of the factory's code and of the data, :mod:`tuneall.store.keys`)."""
    recipe = asdict(train) if is_dataclass(train) else dict(train)
    recipe = {k: v for k, v in sorted(recipe.items()) if k not in _NOT_KEY}
    return {"family": family, "model": str(model_id), "width": float(width), "depth": int(depth), "recipe": recipe,
            "data_fraction": float(data_fraction), "seed": int(seed), "data": data_id, "threads": int(threads),
            "method": str(method), "device": str(device), "torch": str(torch_version), "format": FORMAT,
            "cpu": cpu_id()}  # another CPU model/ISA computes other last bits (tuneall.core.hardware)


def same_key(a: dict, b: dict) -> bool:
    """Whether two keys are equal as JSON (a stored key comes back through torch.load: tuples as lists)."""
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def key_id(key: dict) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:32]


_FINGERPRINTS: dict[tuple, str] = {}


def data_fingerprint(data) -> str:
    """A digest of a dataset's tensors (train, test and validation when present), cached per tensor object."""
    parts = [getattr(data, n, None) for n in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")]
    ident = tuple((id(t), t.data_ptr(), tuple(t.shape)) if t is not None else None for t in parts)
    if ident not in _FINGERPRINTS:
        h = hashlib.sha256(str(getattr(getattr(data, "info", None), "name", "")).encode())
        for t in parts:
            h.update(b"|" if t is None else t.detach().cpu().contiguous().numpy().tobytes())
        _FINGERPRINTS[ident] = h.hexdigest()[:32]
    return _FINGERPRINTS[ident]


def needed_evals(steps: int, eval_steps) -> set[int]:
    """The steps at which train_member(steps, eval_steps=...) evaluates (exactly its own rule)."""
    return {s for s in eval_steps if 0 < s < steps} | {steps}


@dataclass
class Record:
    """One member's stored run (see the module docstring)."""

    key: dict
    steps: int  # steps the run was planned for
    steps_done: int
    diverged: bool
    ok_through: int  # last step at which the finite-loss check passed (= steps when it never diverged)
    test: dict[int, object] = field(default_factory=dict)  # step -> (N, C) float32 log-probabilities
    val: dict[int, object] = field(default_factory=dict)
    final_loss: float = float("nan")  # of the planned run only (a tail mean over its last steps)
    train_time_s: float = 0.0
    eval_time_s: float = 0.0
    latency_s_per_image: float = float("nan")
    peak_mem_bytes: int = 0
    mem_kind: str = ""
    state: dict | None = None  # the member's state at steps_done (tuneall.training.member.member_state), or None
    weights: dict = field(default_factory=dict)  # step -> state dict at the trials' own steps (their saved members)
    checkpoints: dict = field(default_factory=dict)  # step -> packed member state on a fixed grid (replay.py)

    def covers(self, steps: int, eval_steps=()) -> bool:
        """Whether a fresh ``steps``-step run evaluated at ``eval_steps`` is answered bit for bit by this record."""
        return steps <= self.ok_through and needed_evals(steps, eval_steps) <= set(self.test)

    def continues_to(self, steps: int, eval_steps=()) -> bool:
        """Whether a ``steps``-step run evaluated at ``eval_steps`` can continue from this record's state: it stopped
        earlier, without diverging, and made every evaluation the longer run makes up to there."""
        if self.state is None or self.diverged or not self.state.get("step", 0) < steps:
            return False
        at = int(self.state["step"])
        return {s for s in needed_evals(steps, eval_steps) if s <= at} <= set(self.test)


def ok_through(steps: int, steps_done: int, diverged: bool, evals) -> int:
    """The last step at which training's finite-loss check passed: checks run every DIVERGENCE_CHECK_EVERY steps and at each
    evaluation step; a diverged run broke at the check of step steps_done + 1."""
    if not diverged:
        return steps
    d = steps_done + 1
    return max([(d - 1) // DIVERGENCE_CHECK_EVERY * DIVERGENCE_CHECK_EVERY] + [s for s in evals if s < d])


def record_of(key: dict, result, eval_steps=(), before: Record | None = None) -> Record:
    """A trained MemberResult as a record; ``before``: the record it continued (its times are added)."""
    from tuneall.store.replay import keep, pack
    from tuneall.training.member import state_bytes

    evals = needed_evals(result.steps, eval_steps)
    state = getattr(result, "state", None)
    ok = ok_through(result.steps, result.steps_done, result.diverged, evals)
    weights = {s: w for s, w in (getattr(result, "weights", None) or {}).items() if s <= ok}  # before any NaN
    t0, e0 = (before.train_time_s, before.eval_time_s) if before is not None else (0.0, 0.0)
    return Record(key=key, steps=result.steps, steps_done=result.steps_done, diverged=result.diverged,
                  ok_through=ok,
                  test=dict(result.test_logprobs), val=dict(getattr(result, "val_logprobs", {}) or {}),
                  final_loss=result.final_loss, train_time_s=t0 + result.train_time_s,
                  eval_time_s=e0 + result.eval_time_s, latency_s_per_image=result.latency_s_per_image,
                  peak_mem_bytes=result.peak_mem_bytes, mem_kind=result.mem_kind,
                  state=state if state_bytes(state) <= STATE_MAX_BYTES else None,
                  weights=weights if state_bytes(weights) <= STATE_MAX_BYTES else {},
                  checkpoints={} if result.diverged else {s: pack(v) for s, v in keep(
                      getattr(result, "checkpoints", None) or {}, result.steps_done, state_bytes,
                      STATE_MAX_BYTES).items()})


def merge(old: Record | None, new: Record) -> Record:
    """Both runs are prefixes of one trajectory: keep the longer one's facts and every evaluation of both (an
    evaluation is kept only below the longer run's ok_through, where both runs agree)."""
    from tuneall.store.replay import keep
    from tuneall.training.member import state_bytes

    if old is None:
        return new
    long, short = (new, old) if new.ok_through >= old.ok_through else (old, new)
    test = {**{s: v for s, v in short.test.items() if s <= long.ok_through}, **long.test}
    val = {**{s: v for s, v in short.val.items() if s <= long.ok_through}, **long.val}
    weights = {**{s: v for s, v in short.weights.items() if s <= long.ok_through}, **long.weights}
    states = {**{s: v for s, v in short.checkpoints.items() if s <= long.ok_through}, **long.checkpoints}
    return Record(**{**long.__dict__, "test": dict(sorted(test.items())), "val": dict(sorted(val.items())),
                     "weights": dict(sorted(weights.items())),
                     "checkpoints": keep(states, long.steps_done, state_bytes, STATE_MAX_BYTES)})


def view(rec: Record, result_cls, seed: int, steps: int, eval_steps=()):
    """The MemberResult a fresh ``steps``-step run evaluated at ``eval_steps`` would return (rec.covers it).

    Timings are the stored run's, scaled to the share of its steps (training) or evaluations; final_loss (a tail
    mean of training losses, which the store does not keep) is exact only when steps equals the stored run's."""
    wanted = sorted(needed_evals(steps, eval_steps))
    out = result_cls(seed, steps, steps, False, rec.final_loss if steps == rec.steps and not rec.diverged
                     else float("nan"), rec.train_time_s * steps / max(1, rec.steps_done or rec.steps))
    out.test_logprobs = {s: rec.test[s] for s in wanted}
    if hasattr(out, "val_logprobs"):
        out.val_logprobs = {s: rec.val[s] for s in wanted if s in rec.val}
    out.eval_time_s = rec.eval_time_s * len(wanted) / max(1, len(rec.test))
    out.latency_s_per_image, out.peak_mem_bytes, out.mem_kind = (rec.latency_s_per_image, rec.peak_mem_bytes,
                                                                 rec.mem_kind)
    if steps in rec.weights and hasattr(out, "weights"):  # the member's weights at exactly these steps
        out.weights = {steps: rec.weights[steps]}
    return out


class MemberStore:
    """The ``member_store/`` folder of a results directory: one ``<key id>.pt`` per member and its lock file."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.rejected = 0  # records refused by load (damaged, another format, or not the key asked for)

    def path(self, kid: str) -> Path:
        return self.root / f"{kid}.pt"

    @contextlib.contextmanager
    def lock(self, kid: str, blocking: bool = True):
        """Hold the member's lock (flock: released if the holder dies); yields False if not blocking and busy."""
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / f"{kid}.lock", os.O_RDWR | os.O_CREAT, 0o666)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)  # closing the descriptor releases the flock

    def load(self, kid: str, key: dict | None = None) -> Record | None:
        """The record stored under ``kid``, if it is one and (``key`` given) its own key is ``key``; else None, and
        the refusal counted in ``rejected`` (the run says so once: :func:`tuneall.store.keys.warn_rejected`)."""
        import torch

        p = self.path(kid)
        if not p.exists():
            return None
        try:
            doc = torch.load(p, map_location="cpu", weights_only=True)
            rec = Record(**doc["record"]) if doc.get("format") == FORMAT else None
        except Exception:  # noqa: BLE001 - a damaged file is a miss: the member is trained again
            rec = None
        if rec is None or (key is not None and not same_key(rec.key, key)):
            self.rejected += 1  # swapped, foreign, stale or truncated: trusting it would change a number
            return None
        return rec

    def save(self, rec: Record) -> None:
        import torch

        from tuneall.rundir.fsio import atomic_path

        self.root.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.path(key_id(rec.key))) as tmp:
            torch.save({"format": FORMAT, "record": rec.__dict__}, tmp)

    def record_files(self) -> list[Path]:
        """The stored records (not a killed writer's leftover ``.<id>.<random>.tmp.pt``)."""
        if not self.root.is_dir():
            return []
        return [p for p in self.root.glob("*.pt") if not p.name.startswith(".")]

    def __len__(self) -> int:
        return len(self.record_files())


@dataclass
class Request:
    """One member a trial needs: its key and seed, the steps and evaluations the trial reads, and its horizon (the
    steps and evaluations to train for when it must be trained, a superset that later trials will read)."""

    key: dict
    seed: int
    steps: int
    evals: tuple[int, ...]
    horizon: int
    horizon_evals: tuple[int, ...]


def fetch_or_train(store: MemberStore, requests: list[Request], train: Callable, result_cls,
                   cache: dict | None = None) -> tuple[list, dict]:
    """Answer every request from the store, training (``train(seed, steps, evals, start) -> MemberResult``, ``start``
    a stored state to continue from or None) what it lacks.

    Members another process is training right now are left for last (their lock is tried without waiting first),
    so a trial trains what it can while a duplicate finishes, then waits for it. Evaluations a record lacks below
    its last step (another budget's) are replayed from its grid states first (:mod:`tuneall.store.replay`). Returns
    (results in request order, counts: member-steps trained (replays included), replayed and reused, members trained
    and reused). ``cache`` (kid -> record without its states, filled here): a record read before answers a request
    it covers without being read again (checked against its key when read, it stays exact for what it covers); one
    it does not cover is read again under the lock (another trial may have grown it)."""
    out: list = [None] * len(requests)
    counts = {"member_steps_trained": 0, "member_steps_reused": 0, "members_trained": 0, "members_reused": 0,
              "member_steps_replayed": 0}
    rejected0 = store.rejected
    pending = list(range(len(requests)))
    for blocking in (False, True):
        later = []
        for i in pending:
            rq = requests[i]
            kid = key_id(rq.key)
            rec = (cache or {}).get(kid)
            if rec is not None and rec.covers(rq.steps, rq.evals):  # no lock: checked against its key, it stays exact
                counts["member_steps_reused"] += rq.steps
                counts["members_reused"] += 1
                out[i] = view(rec, result_cls, rq.seed, rq.steps, rq.evals)
                continue
            with store.lock(kid, blocking=blocking) as held:
                if not held:
                    later.append(i)
                    continue
                rec = store.load(kid, rq.key)
                target = max(rq.horizon, rq.steps)
                evals = tuple(sorted(set(rq.horizon_evals) | set(rq.evals) | {rq.steps}))
                if rec is not None and not rec.covers(rq.steps, rq.evals):
                    rec = _replayed(store, rq, rec, train, counts, target, evals)
                if rec is None or not rec.covers(rq.steps, rq.evals):
                    start = rec if rec is not None and rec.continues_to(target, evals) else None
                    s0 = int(start.state["step"]) if start else 0
                    res = train(rq.seed, target, evals, start.state if start else None)
                    rec = merge(rec, record_of(rq.key, res, evals, before=start))
                    store.save(rec)
                    counts["member_steps_trained"] += res.steps_done - s0
                    counts["members_trained"] += 1
                    if not rec.covers(rq.steps, rq.evals):  # diverged before the trial's steps: the fresh run's own
                        out[i] = res if res.steps == rq.steps and not start else train(rq.seed, rq.steps, rq.evals,
                                                                                         None)
                        continue
                else:
                    counts["member_steps_reused"] += rq.steps
                    counts["members_reused"] += 1
                out[i] = view(rec, result_cls, rq.seed, rq.steps, rq.evals)
                if cache is not None:
                    cache[kid] = _light(rec)
        pending = later
    counts["store_records_rejected"] = store.rejected - rejected0
    return out, counts


def _light(rec: Record) -> Record:
    """``rec`` without its member states (what :func:`view` reads; a trial that trains reads the whole record)."""
    return replace(rec, state=None, checkpoints={})


def _replayed(store: MemberStore, rq: Request, rec: Record, train: Callable, counts: dict, target: int,
              evals) -> Record:
    """``rec`` with the evaluations it lacks at or below its last step replayed from its grid states (saved): the
    request's own where the record reaches its steps, else every one the run to ``target`` needs."""
    from tuneall.store.replay import plan, unpack

    at = int(rec.state["step"]) if rec.state is not None else rec.ok_through
    replays = plan(rec, *((rq.steps, rq.evals) if rq.steps <= at else (target, evals)))
    for start, end, seg in replays:
        res = train(rq.seed, end, seg, unpack(rec.checkpoints[start]) if start else None)
        rec = merge(rec, record_of(rq.key, res, seg))
        counts["member_steps_trained"] += res.steps_done - start
        counts["member_steps_replayed"] += res.steps_done - start
    if replays:
        store.save(rec)
    return rec


__all__ = ["STORE_DIR", "STATE_MAX_BYTES", "MemberStore", "Record", "Request", "member_key", "same_key", "key_id",
           "data_fingerprint", "needed_evals", "record_of", "merge", "view", "fetch_or_train"]
