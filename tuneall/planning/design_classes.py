"""Seed 001's design classes: a single network S = (family, w, d) and its two k-member ensembles of equal budget.

- depth-equivalent (deq): every member keeps depth d; width is the LARGEST w' on the family's width grid with
  k x |E(w', d)| <= |S|.
- width-equivalent (weq): every member keeps width w; depth is the LARGEST valid d' with k x |E(w, d')| <= |S|.

|.| is the exact trainable parameter count of the real module (``tuneall.models.param_count``). The width grid is
the multiples of the family's ``width_unit`` (one channel of the first width-scaled layer: 1/16 for resnet and wrn),
so w' is never rounded up into the budget.

Where this differs from the paper's appendix tables (k = 4, CIFAR-10 counts; the rule is applied strictly, with no
tolerance):

- Table C (ResNet; the table's width factor is the base channel count, 16 x our ``width``). The weq depths agree on
  all 16 rows (8 for d = 26, 38; 14 for d = 50, 62). The deq widths in the table are w/2, which the rule cannot
  produce: the stem conv and the head's bias do not scale with w^2, so 4 x |E(w/2, d)| exceeds |S| and the strict
  rule gives w/2 - 1 channel on every row. ResNet-26 at 16 channels: |S| = 369,690, 4 x |E(8 ch)| = 372,808 > |S|,
  so deq = 7 channels (width 0.4375), 4 x 71,529 = 286,116 = 0.774 |S|. ResNet-62 at 48 channels: |S| = 8,542,138,
  4 x |E(24 ch)| = 8,559,496 > |S|, so deq = 23 channels (width 1.4375), total 7,862,452 = 0.920 |S|.
- Table D (WRN; deq widen factors 1, 3, 5 for w = 4, 8, 12): the strict rule on an integer grid (``width_unit=1``)
  reproduces all 9 rows, weq depths (10 for d = 28; 16 for d = 52, 58) included; 2 = w/2 does not fit, e.g.
  WRN-28-4: |S| = 5,849,050 < 4 x |E(2, 28)| = 5,870,440. On the default 1/16 grid the deq widen factor is finer:
  w/2 - 1/16, e.g. 1.9375 (31 channels in the first group) for WRN-28-4.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from tuneall.core.errors import ConfigError
from tuneall.models import Architecture, check_arch, get_family, param_count

CLASS_NAMES = ("single", "deq", "weq")


@dataclass(frozen=True)
class DesignClass:
    """One design of seed 001: k members of (family, width, depth), ``total_params = k x params_per_member``."""

    name: str  # 'single' | 'deq' | 'weq'
    family: str
    width: float
    depth: int
    k: int  # members; 1 for the single network
    params_per_member: int
    total_params: int


def _check_k(k: int) -> None:
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ConfigError(f"ensemble size k must be an integer >= 1, but got k={k!r}")


def _unit(family: str, width_unit: float | None) -> float:
    unit = get_family(family).width_unit if width_unit is None else width_unit
    if not isinstance(unit, (int, float)) or not math.isfinite(unit) or unit <= 0:
        raise ConfigError(f"width_unit must be a finite number > 0, but got width_unit={unit!r}")
    return float(unit)


def single_network(arch: Architecture) -> DesignClass:
    """The single network S itself (k = 1); a depth of None is the family's default depth."""
    d = check_arch(arch.family, arch.width, arch.depth)
    p = param_count(replace(arch, depth=d))
    return DesignClass("single", arch.family, float(arch.width), d, 1, p, p)


def depth_equivalent(arch: Architecture, k: int, width_unit: float | None = None) -> DesignClass:
    """deq: depth d kept, largest grid width w' with k x |E(w', d)| <= |S|; ConfigError if one grid step is too big."""
    _check_k(k)
    s = single_network(arch)
    unit = _unit(arch.family, width_unit)

    def count(i: int) -> int:
        return param_count(replace(arch, width=_grid(i, unit), depth=s.depth))

    def fits(i: int) -> bool:
        return k * count(i) <= s.total_params

    if not fits(1):
        raise ConfigError(
            f"no depth-equivalent ensemble for {arch.family} (width={arch.width:g}, depth={s.depth}, k={k}): even the "
            f"smallest width {unit:g} has k x |E| = {k * count(1):,} > |S| = {s.total_params:,}"
        )
    # Parameter counts never decrease with width, so the widths that fit form a prefix of the grid: bracket the
    # boundary (starting near w, the answer for k = 1) and bisect it.
    lo, hi = 1, max(2, math.ceil(arch.width / unit))
    while fits(hi):
        lo, hi = hi, 2 * hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return DesignClass("deq", arch.family, _grid(lo, unit), s.depth, k, count(lo), k * count(lo))


def width_equivalent(arch: Architecture, k: int) -> DesignClass:
    """weq: width w kept, largest valid depth d' with k x |E(w, d')| <= |S|; ConfigError when no valid depth fits."""
    _check_k(k)
    s = single_network(arch)
    fam = get_family(arch.family)
    # Adding layers adds parameters, so no depth above d can fit: walk the valid depths down from d.
    for d in range(s.depth, 0, -1):
        if not fam.valid_depth(d):
            continue
        p = param_count(replace(arch, depth=d))
        if k * p <= s.total_params:
            return DesignClass("weq", arch.family, float(arch.width), d, k, p, k * p)
    raise ConfigError(
        f"no width-equivalent ensemble for {arch.family} (width={arch.width:g}, depth={s.depth}, k={k}): no valid "
        f"depth <= {s.depth} ({fam.depth_rule}) has k x |E| <= |S| = {s.total_params:,}"
    )


def design_classes(arch: Architecture, k: int,
                   width_unit: float | None = None) -> tuple[DesignClass, DesignClass, DesignClass]:
    """(single, deq, weq) for S = ``arch`` (family, width, depth and the input it is built for) and k members;
    ConfigError if deq or weq does not exist."""
    return single_network(arch), depth_equivalent(arch, k, width_unit), width_equivalent(arch, k)


def format_design_classes(classes: tuple[DesignClass, ...] | list[DesignClass], budget: int | None = None) -> str:
    """Aligned text table of design classes; fractions are of ``budget`` (default: the 'single' class's |S|)."""
    classes = list(classes)
    if budget is None:
        singles = [c for c in classes if c.name == "single"]
        if not singles:
            raise ConfigError("format_design_classes needs a 'single' class or an explicit budget=|S|")
        budget = singles[0].total_params
    header = ("class", "width", "depth", "k", "params/member", "total params", "fraction of |S|")
    rows = [
        (c.name, f"{c.width:g}", str(c.depth), str(c.k), f"{c.params_per_member:,}", f"{c.total_params:,}",
         f"{c.total_params / budget:.4f}")
        for c in classes
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = []
    for r in [header, *rows]:
        # First column (a name) left-aligned, numbers right-aligned.
        cells = [r[0].ljust(widths[0])] + [cell.rjust(w) for cell, w in zip(r[1:], widths[1:])]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _grid(i: int, unit: float) -> float:
    # Rounded so that i x unit is the same float key for param_count's cache however it was computed.
    return round(i * unit, 12)
