"""Training members and evaluating them: SGD with momentum (seed 000) or AdamW, fixed learning rate and batch size,
no schedule, optional weight decay and label smoothing (the recipe, :class:`tuneall.core.config.TrainConfig`).

Anytime exactness: a member is evaluated at several step counts of one run and each evaluation stands for a run of
that many steps. That holds because nothing here depends on the total number of steps: the learning rate is fixed,
the optimiser's state depends only on the steps taken, and the batches are a seeded sequence. A learning-rate
schedule tied to the total steps (cosine to T, warm-up fractions) would break it; so would an optimiser of your own
that reads the total.

Data are in-memory tensors; a batch is an index slice of a seeded permutation (no DataLoader, no per-item Python).
A member whose loss turns non-finite stops at once and is reported as diverged, never raised.

Continuation: for the same reason a run can stop at step s and go on later. ``keep_state=True`` returns the member's
state at its last step (weights, optimiser state, the batch sampler's generator and position, the global RNG and
the last losses that the final-loss tail mean reads); ``start=`` that state continues the run, and the result is bit
for bit the result of one uninterrupted run (at the same thread count and device; tests/test_member_store.py).
"""

from __future__ import annotations

import os
import time
from collections import deque
from dataclasses import dataclass, field

import torch
from torch.nn import functional as F

from tuneall.core.config import DIVERGENCE_CHECK_EVERY, TrainConfig
from tuneall.models import Architecture, create_model

# How often (in steps) the divergence flag is read back: reading forces a device sync, so not every step on a GPU.


@dataclass
class MemberResult:
    """One trained member: its test-set log-probabilities at each evaluation step, and how training went."""

    seed: int
    steps: int  # steps planned
    steps_done: int  # steps run (fewer if it diverged)
    diverged: bool
    final_loss: float  # mean training loss over the last steps run (nan if diverged)
    train_time_s: float
    test_logprobs: dict[int, torch.Tensor] = field(default_factory=dict)  # step -> (N, C) log_softmax, float32, CPU
    val_logprobs: dict[int, torch.Tensor] = field(default_factory=dict)  # the same on the validation split
    eval_time_s: float = 0.0  # time spent evaluating (not in train_time_s)
    peak_mem_bytes: int = 0  # see PeakMemory: CUDA peak allocation, or peak RSS increase on CPU
    mem_kind: str = ""
    latency_s_per_image: float = float("nan")  # inference at LATENCY_BATCH inputs per forward
    state: dict | None = None  # with keep_state: what continues this run (see the module docstring), CPU tensors
    weights: dict[int, dict] = field(default_factory=dict)  # step -> CPU state dict, at the run's snapshot_steps
    checkpoints: dict[int, dict] = field(default_factory=dict)  # step -> member_state, at the run's checkpoint_steps


LATENCY_BATCH = 256  # batch size at which inference latency per image is measured


class PeakMemory:
    """Peak training memory: CUDA's peak allocator statistic on a GPU; on CPU, the peak increase of the process's
    resident set size over its size at the start, sampled every 10 ms by a thread (PyTorch's CPU allocator has no
    peak statistic)."""

    def __init__(self, device: torch.device):
        self.device, self.peak, self._stop = device, 0, None
        self.kind = "cuda_max_allocated" if device.type == "cuda" else "cpu_rss_delta"

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
            return self
        import threading

        self._base = _rss_bytes()
        self._stop = threading.Event()

        def sample():
            while not self._stop.is_set():
                self.peak = max(self.peak, _rss_bytes() - self._base)
                self._stop.wait(0.01)

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            self.peak = torch.cuda.max_memory_allocated(self.device) - self._base
        else:
            self._stop.set()
            self._thread.join()
        return False


def _rss_bytes() -> int:
    """Current resident set size (Linux /proc; elsewhere the lifetime peak, which only ever grows)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@torch.inference_mode()
def inference_latency(model: torch.nn.Module, x: torch.Tensor, repeats: int = 3) -> float:
    """Median seconds per input of an eval-mode forward pass over a batch of LATENCY_BATCH inputs."""
    model.eval()
    batch = x[:LATENCY_BATCH]
    times = []
    for _ in range(repeats + 1):  # the first pass warms up caches and is dropped
        t = time.perf_counter()
        model(batch)
        if batch.device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return sorted(times[1:])[len(times[1:]) // 2] / len(batch)


class BatchSampler:
    """Index batches from seeded per-epoch permutations; drops the ragged tail so every step sees ``batch_size``."""

    def __init__(self, n: int, batch_size: int, seed: int, device: str = "cpu"):
        self.n, self.bs = n, min(batch_size, n)
        self.gen = torch.Generator().manual_seed(seed)
        self.device = device
        self._perm = torch.empty(0, dtype=torch.long)
        self._pos = 0

    def next(self) -> torch.Tensor:
        if self._pos + self.bs > self._perm.numel():
            self._perm = torch.randperm(self.n, generator=self.gen).to(self.device)
            self._pos = 0
        idx = self._perm[self._pos : self._pos + self.bs]
        self._pos += self.bs
        return idx


@torch.inference_mode()
def predict_log_proba(model: torch.nn.Module, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Log-probabilities (log_softmax) of ``model`` on ``x`` in eval mode, batched, returned float32 on CPU.

    Log-probabilities, not probabilities: a confident member's small probabilities underflow to 0 in float32, their
    logs do not, and the ensemble rules in :mod:`tuneall.training.metrics` combine them exactly in log space."""
    was_training = model.training
    model.eval()
    out = torch.cat([torch.log_softmax(model(x[i : i + batch_size]).float(), -1)
                     for i in range(0, len(x), batch_size)])
    model.train(was_training)
    return out.cpu()


def train_member(
    family: str,
    width: float,
    depth: int | None,
    data,  # tuneall.data.Dataset
    steps: int,
    seed: int,
    cfg: TrainConfig = TrainConfig(),
    eval_steps: tuple[int, ...] = (),
    start: dict | None = None,
    keep_state: bool = False,
    snapshot_steps: tuple[int, ...] = (),
    checkpoint_steps: tuple[int, ...] = (),
) -> MemberResult:
    """Train one member for ``steps`` SGD steps from ``seed`` (init and data order) and evaluate it on the test set.

    The member is evaluated after ``steps`` and after every step count in ``eval_steps`` (anytime evaluation: under a
    fixed learning rate, the model at step T' < T is the model a T'-step run with the same seed would produce).
    ``start``: a state kept by an earlier run of this member (``keep_state``) to continue from; only evaluations
    after its step are made, and ``train_time_s`` counts only the steps run here. ``snapshot_steps``: steps at which
    the weights are kept (``result.weights``): the member store keeps them so a trial of those steps has its weights
    without training again. ``checkpoint_steps``: steps at which the whole state is kept (``result.checkpoints``,
    each what a run stopped there would keep): the store replays an evaluation another budget needs from them.
    """
    info = data.info
    device = torch.device(cfg.device)
    torch.manual_seed(seed)
    model = create_model(Architecture.for_data(family, width, depth, info)).to(device)
    use_cl = cfg.channels_last and info.spatial_dims == 2 and channels_last_ok(model)
    if use_cl:
        model = model.to(memory_format=torch.channels_last)
    opt = make_optimizer(model.parameters(), cfg)
    x_train, y_train = data.x_train.to(device), data.y_train.to(device)
    x_test = data.x_test.to(device)
    x_val = data.x_val.to(device) if getattr(data, "x_val", None) is not None else None
    sampler = BatchSampler(len(x_train), cfg.batch_size, seed=seed + 7919, device=cfg.device)
    first, losses = 1, deque(maxlen=_TAIL_MAX)  # the last losses: the final-loss tail, kept in the state
    if start is not None:
        first = restore_state(start, model, opt, sampler, device) + 1
        losses.extend(start["losses"].to(device))
        if first > steps:
            raise ValueError(f"a state at step {first - 1} cannot continue a run of {steps} steps")
    evals = sorted({s for s in eval_steps if first <= s < steps} | {steps})

    result = MemberResult(seed, steps, first - 1, False, float("nan"), 0.0)
    t0 = time.perf_counter()
    model.train()
    with PeakMemory(device) as mem:
        mean_tail_loss = _sgd_loop(model, opt, sampler, x_train, y_train, (x_test, x_val), evals, cfg, result,
                                   use_cl, label=f"{family} w={width:g}", first=first, losses=losses,
                                   snapshots=frozenset(snapshot_steps), checkpoints=frozenset(checkpoint_steps))
    result.peak_mem_bytes, result.mem_kind = int(mem.peak), mem.kind
    result.train_time_s = time.perf_counter() - t0 - result.eval_time_s
    if not result.diverged:
        result.final_loss = mean_tail_loss
        if keep_state:  # before the latency measurement, which runs the model (it changes no state, but be sure)
            result.state = member_state(result.steps_done, model, opt, sampler, losses)
        result.latency_s_per_image = inference_latency(model, x_test)
    return result


_TAIL_MAX = 50  # the most training losses final_loss averages (see _sgd_loop)


def _cpu(obj):
    """A detached CPU copy of every tensor in a nest of dicts, lists and tuples."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: _cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_cpu(v) for v in obj)
    return obj


def member_state(step: int, model, opt, sampler: BatchSampler, losses) -> dict:
    """Everything a run at ``step`` continues from (plain tensors, ints and floats: ``torch.load(weights_only=True)``
    reads it back)."""
    return {"step": int(step), "model": _cpu(model.state_dict()), "opt": _cpu(opt.state_dict()),
            "sampler": {"gen": sampler.gen.get_state(), "perm": sampler._perm.cpu(), "pos": int(sampler._pos)},
            "rng": torch.get_rng_state(),
            "losses": torch.stack(list(losses)).cpu() if losses else torch.empty(0)}


def restore_state(state: dict, model, opt, sampler: BatchSampler, device) -> int:
    """Load a :func:`member_state` into a freshly built member; returns the step it continues after."""
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["opt"])
    sampler.gen.set_state(state["sampler"]["gen"])
    sampler._perm, sampler._pos = state["sampler"]["perm"].to(sampler.device), int(state["sampler"]["pos"])
    torch.set_rng_state(state["rng"])
    return int(state["step"])


def state_bytes(state: dict | None) -> int:
    """Bytes of tensor data in a member state."""
    if state is None:
        return 0
    if isinstance(state, torch.Tensor):
        return state.numel() * state.element_size()
    if isinstance(state, dict):
        return sum(state_bytes(v) for v in state.values())
    if isinstance(state, (list, tuple)):
        return sum(state_bytes(v) for v in state)
    return 0


def make_optimizer(params, cfg: TrainConfig) -> torch.optim.Optimizer:
    """The recipe's optimiser: SGD with momentum, or AdamW (torch's default betas and eps); both elementwise, so a
    vectorised group of members is k independent optimisers."""
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def evaluate_into(result: MemberResult, step: int, predict, x_test, x_val) -> None:
    """Log-probabilities of the test and (when there is one) validation split at ``step``, into ``result``."""
    result.test_logprobs[step] = predict(x_test)
    if x_val is not None:
        result.val_logprobs[step] = predict(x_val)


def channels_last_ok(model: torch.nn.Module) -> bool:
    """Whether ``model`` may train in channels_last: not if it has a strided 1x1 convolution with fewer than 16 input
    channels, whose NHWC backward in oneDNN writes past its workspace (heap corruption with 1 thread, silently wrong
    gradients with 2; measured on this AVX2 CPU with torch 2.13: uxlfoundation/oneDNN#6035, IC below the ISA's
    channel block of 8, or 16 with AVX-512). ResNet / WRN projection shortcuts at small widths are such convs."""
    return not any(isinstance(m, torch.nn.Conv2d) and m.kernel_size == (1, 1) and m.stride != (1, 1)
                   and m.in_channels < 16 for m in model.modules())


class Heartbeat:
    """``beat(step)`` prints "tuneall: <label>: step i/T (x%) after N s" at most every ``every_s`` seconds (0: never),
    so that a long member in a search shows it is alive. Inside a trial's heartbeat
    (:func:`tuneall.core.progress.trial_heartbeat`) it reports there instead: one line for all of the trial's member-steps.
    ``members``: networks trained in lockstep by this loop (vectorised members)."""

    def __init__(self, label: str, steps: int, every_s: float, members: int = 1, seed: int | None = None):
        from tuneall.core.progress import active_trial

        self.label, self.steps, self.every_s = label, steps, every_s
        self.start = self.last = time.perf_counter()
        trial = active_trial() if every_s > 0 else None
        self._trial_beat = trial.member(steps, members, seed) if trial is not None else None

    def __call__(self, step: int) -> None:
        if self._trial_beat is not None:
            self._trial_beat(step)
        elif self.every_s > 0 and time.perf_counter() - self.last >= self.every_s:
            self.last = time.perf_counter()
            print(f"tuneall: {self.label}: step {step:,}/{self.steps:,} ({step / self.steps:.0%}) after "
                  f"{self.last - self.start:.0f} s", flush=True)


def _sgd_loop(model, opt, sampler, x_train, y_train, x_eval, evals, cfg, result: MemberResult,
              channels_last: bool = False, label: str = "member", first: int = 1, losses: deque | None = None,
              snapshots: frozenset = frozenset(), checkpoints: frozenset = frozenset()) -> float:
    """Run optimiser steps ``first``..result.steps, evaluating on ``x_eval`` = (test, validation or None) at
    ``evals`` and keeping the weights at ``snapshots``; fills ``result``; returns the mean loss of the last steps.
    ``losses``: the last losses so far (a continued run's), extended in place with this run's last ones."""
    steps = result.steps
    losses = deque(maxlen=_TAIL_MAX) if losses is None else losses
    beat = Heartbeat(f"{label} seed {result.seed}", steps, cfg.heartbeat_s, seed=result.seed)
    bad = torch.zeros((), dtype=torch.bool, device=x_train.device)
    # Only the batch is converted to channels_last (a copy of the whole training set would double its memory).
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    for step in range(first, steps + 1):
        idx = sampler.next()
        loss = F.cross_entropy(model(x_train[idx].contiguous(memory_format=fmt)), y_train[idx],
                               label_smoothing=cfg.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        bad |= ~torch.isfinite(loss.detach())
        losses.append(loss.detach())  # a bounded deque: O(1) on the hot path
        if (step % DIVERGENCE_CHECK_EVERY == 0 or step in evals) and bool(bad):
            result.diverged = True
            break
        result.steps_done = step
        if step % DIVERGENCE_CHECK_EVERY == 0:
            beat(step)
        if step in snapshots:
            result.weights[step] = _cpu(model.state_dict())
        if step in checkpoints:  # the state a run stopped at this step keeps (evaluating changes none of it)
            result.checkpoints[step] = member_state(step, model, opt, sampler, losses)
        if step in evals:
            te = time.perf_counter()
            evaluate_into(result, step, lambda x: predict_log_proba(model, x, cfg.eval_batch_size), *x_eval)
            result.eval_time_s += time.perf_counter() - te
    # final_loss: the mean of the last `tail` losses, summed in step order (so a continued run sums the same floats
    # in the same order as an uninterrupted one).
    tail = max(1, min(_TAIL_MAX, steps // 10))
    if result.diverged or len(losses) < tail:
        return float("nan")
    tail_sum = torch.zeros((), device=x_train.device)
    for loss in list(losses)[-tail:]:
        tail_sum += loss
    return float(tail_sum / tail)
