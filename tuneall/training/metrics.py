"""Ensemble combination rules and evaluation metrics, defined once.

Members' predictions are *log*-probabilities (log_softmax of their logits): float tensors of shape (k, N, C) for k
members (or (N, C) for one prediction). Combining in log space is exact where probabilities are not: a member sure
of one class (logit gaps of 100 or more) has other classes' probabilities underflow to 0 in float32, and the old
floor at 1e-12 before the log then tied classes that are not tied and flipped the geometric mean's argmax. Every
metric here reads log-probabilities; nothing is clamped (a log_softmax of finite logits is finite).
"""

from __future__ import annotations

import itertools
import math

import torch

from tuneall.core.config import COMBINE_RULES, ENSEMBLE_METRICS, SPLIT_METRICS  # noqa: F401  (re-exported)

ECE_BINS = 15
_EPS = 1e-12  # floor of the vote rule's distribution only (a class nobody voted for has vote share 0)


def combine(logp: torch.Tensor, rule: str = "mean") -> torch.Tensor:
    """Combine member log-probabilities (k, N, C) into ensemble log-probabilities (N, C).

    - ``mean``: arithmetic mean of softmax outputs (seed 000, the default): logsumexp over members - log k.
    - ``geometric``: normalised geometric mean, i.e. softmax of the mean log-probability (seed 002), computed as
      m - logsumexp(m) with m the members' mean log-probability: exact, whatever the logits' scale.
    - ``vote``: fraction of members voting for each class (majority vote); ties go to the class with the higher
      mean probability. A class nobody voted for gets share 0, floored at 1e-12 so the vote's NLL stays finite.
    """
    if logp.dim() != 3:
        raise ValueError(f"log-probabilities must have shape (k, N, C), but got {tuple(logp.shape)}")
    k = logp.shape[0]
    if rule == "mean":
        return torch.logsumexp(logp, 0) - math.log(k)
    if rule == "geometric":
        m = logp.mean(0)
        return m - torch.logsumexp(m, -1, keepdim=True)
    if rule == "vote":
        _, _, c = logp.shape
        votes = torch.nn.functional.one_hot(logp.argmax(-1), c).to(logp.dtype).mean(0)
        # A tie-break far smaller than one vote (1/k) keeps vote counts exact where they are not tied.
        tiebreak = (torch.logsumexp(logp, 0) - math.log(k)).exp() / (2 * k + 2)
        winner = (votes + tiebreak).argmax(-1)
        out = votes.clone()
        out[torch.arange(out.shape[0]), winner] += 1e-6  # make argmax of the result the tie-broken winner
        return (out / out.sum(-1, keepdim=True)).clamp_min(_EPS).log()
    raise ValueError(f"unknown combination rule {rule!r}; valid: {', '.join(COMBINE_RULES)}")


def accuracy(logp: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of inputs whose most probable class (argmax of log-probabilities, or of probabilities) is the label."""
    return (logp.argmax(-1) == labels).double().mean().item()


def nll(logp: torch.Tensor, labels: torch.Tensor) -> float:
    """Cross-entropy: minus the mean log-probability of the true class, read directly (no clamping)."""
    return (-logp[torch.arange(labels.shape[0]), labels].double()).mean().item()


def ece(logp: torch.Tensor, labels: torch.Tensor, bins: int = ECE_BINS) -> float:
    """Expected calibration error with equal-width confidence bins (Guo et al. 2017); confidence = exp(max log-prob)."""
    top, pred = logp.max(-1)
    correct = (pred == labels).double()
    conf = top.double().exp()
    edges = torch.linspace(0, 1, bins + 1, dtype=torch.float64)
    total = 0.0
    n = labels.shape[0]
    for lo, hi in zip(edges[:-1], edges[1:]):
        mask = (conf > lo) & (conf <= hi)
        if mask.any():
            total += mask.sum().item() / n * abs(conf[mask].mean().item() - correct[mask].mean().item())
    return total


def disagreement(logp: torch.Tensor) -> float:
    """Mean over member pairs of the fraction of inputs on which their predicted classes differ (0 for k = 1)."""
    preds = logp.argmax(-1)
    pairs = list(itertools.combinations(range(preds.shape[0]), 2))
    if not pairs:
        return 0.0
    return sum((preds[i] != preds[j]).double().mean().item() for i, j in pairs) / len(pairs)


def member_metrics(logp: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Accuracy, NLL and ECE of one member's log-probabilities (N, C)."""
    return {"acc": accuracy(logp, labels), "nll": nll(logp, labels), "ece": ece(logp, labels)}


def evaluate_ensemble(logp: torch.Tensor, labels: torch.Tensor, rule: str = "mean") -> dict[str, float]:
    """The ENSEMBLE_METRICS of members' test log-probabilities (k, N, C) under combination ``rule``."""
    ens = combine(logp, rule)
    return {
        "ensemble_acc": accuracy(ens, labels),
        "ensemble_nll": nll(ens, labels),
        "ensemble_ece": ece(ens, labels),
        "member_acc_mean": sum(accuracy(p, labels) for p in logp) / logp.shape[0],
        "disagreement": disagreement(logp),
    }


def aggregate(runs: list[dict[str, float]]) -> dict[str, float]:
    """Mean, standard deviation (sample, ddof=1; 0 for one run) and worst case of each metric over repeats."""
    out: dict[str, float] = {}
    for name in runs[0]:
        vals = [r[name] for r in runs]
        mean = sum(vals) / len(vals)
        std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) > 1 else 0.0
        worst = min(vals) if SPLIT_METRICS.get(name, "max") == "max" else max(vals)
        out[f"{name}_mean"], out[f"{name}_std"], out[f"{name}_worst"] = mean, std, worst
    return out
