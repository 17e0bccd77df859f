"""Ensemble combination rules and evaluation metrics, defined once.

Probabilities are float tensors of shape (k, N, C) for k members (or (N, C) for one prediction).
"""

from __future__ import annotations

import itertools
import math

import torch

from tuneall.config import COMBINE_RULES, ENSEMBLE_METRICS  # noqa: F401  (re-exported)

ECE_BINS = 15
_EPS = 1e-12


def combine(probs: torch.Tensor, rule: str = "mean") -> torch.Tensor:
    """Combine member probabilities (k, N, C) into ensemble probabilities (N, C).

    - ``mean``: arithmetic mean of softmax outputs (seed 000, the default).
    - ``geometric``: normalised geometric mean, i.e. softmax of the mean log-probability (seed 002).
    - ``vote``: fraction of members voting for each class (majority vote); ties go to the class with the higher
      mean probability.
    """
    if probs.dim() != 3:
        raise ValueError(f"probs must have shape (k, N, C), but got {tuple(probs.shape)}")
    if rule == "mean":
        return probs.mean(0)
    if rule == "geometric":
        return torch.softmax(probs.clamp_min(_EPS).log().mean(0), dim=-1)
    if rule == "vote":
        k, _, c = probs.shape
        votes = torch.nn.functional.one_hot(probs.argmax(-1), c).to(probs.dtype).mean(0)
        # A tie-break far smaller than one vote (1/k) keeps vote counts exact where they are not tied.
        tiebreak = probs.mean(0) / (2 * k + 2)
        winner = (votes + tiebreak).argmax(-1)
        out = votes.clone()
        out[torch.arange(out.shape[0]), winner] += 1e-6  # make argmax of the result the tie-broken winner
        return out / out.sum(-1, keepdim=True)
    raise ValueError(f"unknown combination rule {rule!r}; valid: {', '.join(COMBINE_RULES)}")


def accuracy(probs: torch.Tensor, labels: torch.Tensor) -> float:
    return (probs.argmax(-1) == labels).double().mean().item()


def nll(probs: torch.Tensor, labels: torch.Tensor) -> float:
    """Cross-entropy of predicted probabilities (clamped away from 0 so a confident mistake stays finite)."""
    p = probs[torch.arange(labels.shape[0]), labels].clamp_min(_EPS)
    return (-p.double().log()).mean().item()


def ece(probs: torch.Tensor, labels: torch.Tensor, bins: int = ECE_BINS) -> float:
    """Expected calibration error with equal-width confidence bins (Guo et al. 2017)."""
    conf, pred = probs.max(-1)
    correct = (pred == labels).double()
    conf = conf.double()
    edges = torch.linspace(0, 1, bins + 1, dtype=torch.float64)
    total = 0.0
    n = labels.shape[0]
    for lo, hi in zip(edges[:-1], edges[1:]):
        mask = (conf > lo) & (conf <= hi)
        if mask.any():
            total += mask.sum().item() / n * abs(conf[mask].mean().item() - correct[mask].mean().item())
    return total


def disagreement(probs: torch.Tensor) -> float:
    """Mean over member pairs of the fraction of inputs on which their predicted classes differ (0 for k = 1)."""
    preds = probs.argmax(-1)
    pairs = list(itertools.combinations(range(preds.shape[0]), 2))
    if not pairs:
        return 0.0
    return sum((preds[i] != preds[j]).double().mean().item() for i, j in pairs) / len(pairs)


def member_metrics(probs: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    return {"acc": accuracy(probs, labels), "nll": nll(probs, labels), "ece": ece(probs, labels)}


def evaluate_ensemble(probs: torch.Tensor, labels: torch.Tensor, rule: str = "mean") -> dict[str, float]:
    """The ENSEMBLE_METRICS of members' test probabilities (k, N, C) under combination ``rule``."""
    ens = combine(probs, rule)
    return {
        "ensemble_acc": accuracy(ens, labels),
        "ensemble_nll": nll(ens, labels),
        "ensemble_ece": ece(ens, labels),
        "member_acc_mean": sum(accuracy(p, labels) for p in probs) / probs.shape[0],
        "disagreement": disagreement(probs),
    }


def aggregate(runs: list[dict[str, float]]) -> dict[str, float]:
    """Mean, standard deviation (sample, ddof=1; 0 for one run) and worst case of each metric over repeats."""
    out: dict[str, float] = {}
    for name in runs[0]:
        vals = [r[name] for r in runs]
        mean = sum(vals) / len(vals)
        std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) > 1 else 0.0
        worst = min(vals) if ENSEMBLE_METRICS.get(name, "max") == "max" else max(vals)
        out[f"{name}_mean"], out[f"{name}_std"], out[f"{name}_worst"] = mean, std, worst
    return out
