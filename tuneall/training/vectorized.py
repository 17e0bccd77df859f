"""Training the members of a trial together: one vectorised network for k members (``torch.func`` + ``vmap``).

Exactness. Member i's parameters and BatchNorm buffers are slice i of stacked tensors
(:func:`torch.func.stack_module_state`), built from the same ``torch.manual_seed(seed)`` initialisation as
:func:`tuneall.training.member.train_member`. Every step gathers member i's own batch from its own
:class:`~tuneall.training.member.BatchSampler` (same seed, so the same data order), runs the family's own module through
``vmap(functional_call)`` (convolutions become one grouped convolution, BatchNorm normalises each member's batch with
its own statistics and updates its own running-stat slice in place), and back-propagates the *sum* of the members'
mean losses, whose gradient with respect to member i's parameters is exactly member i's gradient. Momentum SGD is
elementwise, so one optimiser over the stacked tensors is k independent optimisers. Results therefore match k
sequential runs up to float rounding (different kernels sum in different orders: ~1e-7 per step).

A member whose loss turns non-finite is marked diverged at the same check step as in ``train_member`` and frozen
from then on (its later results are never read; NaNs stay in its own slice).

Whether vectorising pays depends on the machine: it removes per-op overhead k-fold (small models, GPUs), but CPU
grouped convolutions can be slower than k ordinary ones. :func:`choose_method` times a few steps of both and keeps
the faster; :func:`make_trainer` ("sequential" | "vectorized" | "auto") gives a trainer for
:func:`tuneall.training.trial.run_trial`.
"""

from __future__ import annotations

import copy
import time

import torch
from torch.nn import functional as F

from tuneall.core.config import DIVERGENCE_CHECK_EVERY, MEMBER_METHODS, TrainConfig
from tuneall.models import Architecture, create_model
from tuneall.training.member import (
    BatchSampler,
    Heartbeat,
    MemberResult,
    PeakMemory,
    channels_last_ok,
    inference_latency,
    make_optimizer,
    train_member,
)

METHODS = MEMBER_METHODS  # the names are vocabulary (tuneall.core.config); their implementations live here
MIN_STEPS_TO_PROBE = 300  # steps x repeats below which "auto" does not probe (the probe costs ~3 vectorised steps)


def _build(family, width, depth, info, seed: int, device) -> torch.nn.Module:
    torch.manual_seed(seed)  # exactly train_member's initialisation
    return create_model(Architecture.for_data(family, width, depth, info)).to(device)


def _autocast(device: torch.device, amp: bool):
    if not amp:
        import contextlib

        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.float16 if device.type == "cuda" else torch.bfloat16)


class StackedMembers:
    """k copies of one architecture as stacked parameters and buffers, run together with ``vmap``."""

    def __init__(self, models: list[torch.nn.Module], channels_last: bool = False):
        from torch.func import stack_module_state

        self.k = len(models)
        self.models = models  # kept to unstack into ordinary modules (latency, checkpoints)
        self.params, self.buffers = stack_module_state(models)  # params are fresh leaves with requires_grad
        self.base = copy.deepcopy(models[0]).to("meta")
        self.channels_last = channels_last

    def _fn(self, params, buffers, x):
        from torch.func import functional_call

        return functional_call(self.base, (params, buffers), (x,))

    def forward(self, x: torch.Tensor, shared_input: bool = False) -> torch.Tensor:
        """Logits (k, B, C) for per-member inputs x (k, B, ...) or one input (B, ...) shared by every member."""
        from torch.func import vmap

        return vmap(self._fn, in_dims=(0, 0, None if shared_input else 0))(self.params, self.buffers, x)

    def train(self, mode: bool = True):
        self.base.train(mode)
        return self

    def unstack(self, i: int) -> torch.nn.Module:
        """Member i as an ordinary module (its own parameters and buffers copied in)."""
        m = self.models[i]
        with torch.no_grad():
            for name, p in m.named_parameters():
                p.copy_(self.params[name][i])
            for name, b in m.named_buffers():
                b.copy_(self.buffers[name][i])
        return m

    @torch.inference_mode()
    def predict_log_proba(self, x: torch.Tensor, batch_size: int) -> torch.Tensor:
        """Log-probabilities (log_softmax, k x N x C) of every member in eval mode, batched; float32 on CPU."""
        was = self.base.training
        self.base.eval()
        out = torch.cat([torch.log_softmax(self.forward(x[i : i + batch_size], shared_input=True).float(), -1)
                         for i in range(0, len(x), batch_size)], dim=1)
        self.base.train(was)
        return out.cpu()


def train_members_vectorized(
    family: str,
    width: float,
    depth: int | None,
    data,
    steps: int,
    seeds: tuple[int, ...] | list[int],
    cfg: TrainConfig = TrainConfig(),
    eval_steps: tuple[int, ...] = (),
    amp: bool = False,
) -> list[MemberResult]:
    """``[train_member(family, width, depth, data, steps, s, cfg, eval_steps) for s in seeds]``, trained together.

    Times are shared: each member's ``train_time_s`` / ``eval_time_s`` is the group's divided by k (so the sum over
    members is the wall time spent), and ``peak_mem_bytes`` is the group's joint peak.
    """
    info, device, k = data.info, torch.device(cfg.device), len(seeds)
    stack = StackedMembers([_build(family, width, depth, info, s, device) for s in seeds])
    opt = make_optimizer(list(stack.params.values()), cfg)
    x_train, y_train = data.x_train.to(device), data.y_train.to(device)
    x_test = data.x_test.to(device)
    x_val = data.x_val.to(device) if getattr(data, "x_val", None) is not None else None
    samplers = [BatchSampler(len(x_train), cfg.batch_size, seed=s + 7919, device=cfg.device) for s in seeds]
    evals = sorted({s for s in eval_steps if 0 < s < steps} | {steps})
    results = [MemberResult(s, steps, 0, False, float("nan"), 0.0) for s in seeds]
    scaler = torch.amp.GradScaler("cuda") if amp and device.type == "cuda" else None

    bad = torch.zeros(k, dtype=torch.bool, device=device)
    tail_sum, tail_n = torch.zeros(k, device=device), 0
    tail = max(1, min(50, steps // 10))
    active = list(range(k))  # members not yet found diverged
    eval_time = 0.0
    beat = Heartbeat(f"{family} w={width:g} seeds {', '.join(map(str, seeds))} (vectorised)", steps, cfg.heartbeat_s,
                     members=k, seed=seeds[0])
    t0 = time.perf_counter()
    stack.train()
    with PeakMemory(device) as mem:
        for step in range(1, steps + 1):
            idx = torch.stack([s.next() for s in samplers])  # (k, B): each member its own batch
            xb, yb = x_train[idx], y_train[idx]
            with _autocast(device, amp):
                logits = stack.forward(xb)  # (k, B, C)
                losses = F.cross_entropy(logits.flatten(0, 1).float(), yb.flatten(), reduction="none",
                                         label_smoothing=cfg.label_smoothing)
                losses = losses.view(k, -1).mean(1)  # member i's mean batch loss, as in train_member
            opt.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(losses.sum()).backward()
                scaler.step(opt)
                scaler.update()
            else:
                losses.sum().backward()
                opt.step()
            lossd = losses.detach()
            bad |= ~torch.isfinite(lossd)
            if step > steps - tail:
                tail_sum += lossd
                tail_n += 1
            if step % DIVERGENCE_CHECK_EVERY == 0:
                beat(step)
            if step % DIVERGENCE_CHECK_EVERY == 0 or step in evals:
                flags = bad.tolist()
                for i in [i for i in active if flags[i]]:
                    results[i].diverged = True
                    active.remove(i)
                if not active:
                    break
            for i in active:
                results[i].steps_done = step
            if step in evals:
                te = time.perf_counter()
                for split, x in (("test", x_test), ("val", x_val)):
                    if x is None:
                        continue
                    logp = stack.predict_log_proba(x, cfg.eval_batch_size)
                    for i in active:
                        getattr(results[i], f"{split}_logprobs")[step] = logp[i]
                eval_time += time.perf_counter() - te
    train_time = time.perf_counter() - t0 - eval_time
    tail_mean = (tail_sum / tail_n).tolist() if tail_n else [float("nan")] * k
    for i, r in enumerate(results):
        r.train_time_s, r.eval_time_s = train_time / k, eval_time / k
        r.peak_mem_bytes, r.mem_kind = int(mem.peak), mem.kind
        if not r.diverged:
            r.final_loss = tail_mean[i]
            member = stack.unstack(i)
            r.weights[steps] = {n: v.detach().to("cpu", copy=True).contiguous() for n, v in member.state_dict().items()}
            r.latency_s_per_image = inference_latency(member, x_test)
    return results


def _plan_groups(plan) -> list[tuple[int, tuple[int, ...]]]:
    return list(enumerate(plan.seeds))


def train_vectorized(plan, data, progress=None, eval_steps=(), amp: bool = False) -> list[list[MemberResult]]:
    """Trainer for :func:`tuneall.training.trial.run_trial`: each repeat's k members trained together (results[repeat][i])."""
    a = plan.allocation
    out = []
    for r, seeds in _plan_groups(plan):
        res = train_members_vectorized(a.family, a.width, plan.depth, data, plan.steps, seeds, plan.train,
                                       eval_steps, amp=amp)
        out.append(res)
        if progress:
            for i, m in enumerate(res):
                progress(r, i, m)
    return out


# ----------------------------------------------------------------------------------------------------------------
# Choosing by measurement

_CHOICE_CACHE: dict[tuple, dict] = {}


def _step_times(family, width, depth, data, k, cfg: TrainConfig, rounds: int = 2) -> tuple[float, float]:
    """Seconds per step of k members: sequentially (k x one member's step, as train_member runs it) and vectorised.

    Throwaway models; the two are interleaved ``rounds`` times so that a burst of load from elsewhere hits both, and
    the fastest step of each is kept (interference only ever slows a step down). Cost: about 2 + 2 x rounds
    single-member steps plus 1 + rounds vectorised steps.
    """
    info, device = data.info, torch.device(cfg.device)
    x, y = data.x_train.to(device), data.y_train.to(device)
    bs = min(cfg.batch_size, len(x))
    gen = torch.Generator().manual_seed(0)

    def timed(fn, n):
        best = float("inf")
        for _ in range(n):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t = time.perf_counter()
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            best = min(best, time.perf_counter() - t)
        return best

    model = _build(family, width, depth, info, 0, device).train()
    fmt = torch.contiguous_format
    if cfg.channels_last and info.spatial_dims == 2 and channels_last_ok(model):  # as train_member runs it
        model, fmt = model.to(memory_format=torch.channels_last), torch.channels_last
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum)

    def seq_step():
        idx = torch.randint(0, len(x), (bs,), generator=gen).to(device)
        loss = F.cross_entropy(model(x[idx].contiguous(memory_format=fmt)), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    stack = StackedMembers([_build(family, width, depth, info, s, device) for s in range(k)]).train()
    vopt = torch.optim.SGD(list(stack.params.values()), lr=cfg.lr, momentum=cfg.momentum)

    def vec_step():
        idx = torch.randint(0, len(x), (k, bs), generator=gen).to(device)
        logits = stack.forward(x[idx])
        loss = F.cross_entropy(logits.flatten(0, 1), y[idx].flatten(), reduction="none").view(k, -1).mean(1).sum()
        vopt.zero_grad(set_to_none=True)
        loss.backward()
        vopt.step()

    seq_step(), vec_step()  # warm-up: first-call allocations and kernel selection
    t_seq, t_vec = float("inf"), float("inf")
    for _ in range(rounds):
        t_seq = min(t_seq, timed(seq_step, 2) * k)
        t_vec = min(t_vec, timed(vec_step, 1))
    return t_seq, t_vec


def choose_method(family, width, depth, data, k: int, cfg: TrainConfig = TrainConfig(), rounds: int = 2) -> dict:
    """Time a few steps of k members sequentially and vectorised on this machine; cached per process.

    Returns ``{"method", "t_seq_s", "t_vec_s", "speedup", "probe_s"}`` (times are per step of all k members).
    """
    if k <= 1:
        return {"method": "sequential", "t_seq_s": float("nan"), "t_vec_s": float("nan"), "speedup": 1.0,
                "probe_s": 0.0}
    key = (family, float(width), depth, k, cfg.batch_size, cfg.channels_last, tuple(data.x_train.shape[1:]),
           cfg.device, torch.get_num_threads())
    if key not in _CHOICE_CACHE:
        t = time.perf_counter()
        t_seq, t_vec = _step_times(family, width, depth, data, k, cfg, rounds)
        _CHOICE_CACHE[key] = {"method": "vectorized" if t_vec < t_seq else "sequential", "t_seq_s": t_seq,
                              "t_vec_s": t_vec, "speedup": t_seq / t_vec, "probe_s": time.perf_counter() - t}
    return dict(_CHOICE_CACHE[key])


__all__ = ["METHODS", "StackedMembers", "train_members_vectorized", "train_vectorized", "choose_method",
           "train_member"]
