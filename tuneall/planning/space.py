"""Search spaces: YAML files (the packaged ones in ``tuneall/search_spaces/``) -> validated :class:`SearchSpace` -> points.

A point is a plain dict (family, width, depth, k, data_fraction, lr, momentum, batch_size); only the trial factory
(:mod:`tuneall.planning.factory`) turns a point into a trial plan. This module enumerates the grid of a space, and builds the
Optuna define-by-run function that samples the architecture first and then only the ensemble sizes that fit.

YAML schema (every key optional except ``families``)::

    name: paper
    description: text
    families: [cnn3]                  # or one name; user factories by import path, e.g. mypkg.nets:make_mlp
    width: [0.5, 1, 2]                # list = choice; scalar = fixed; {low, high, log} = range
    depth: null                       # null = each family's default depth
    k: {low: 1, high: 16}             # ints; only the feasible k are sampled
    data_fraction: 1.0
    optimizer: sgd                    # sgd (with momentum) | adamw; a list samples it
    lr: 0.05
    momentum: 0.9                     # SGD only
    weight_decay: 0.0
    batch_size: 128
    label_smoothing: 0.0
    per_family: {wrn: {width: [1, 2], depth: [16, 28]}}   # width/depth overrides per family
    design: [single, deq, weq]        # seed 001: width/depth are the single network's; deq/weq members derived
    grid_points: 5                    # how many points a range contributes to grid search / planning
"""

from __future__ import annotations

import itertools
import math
from importlib import resources
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Union

import yaml

from tuneall.core.errors import ConfigError
from tuneall.core.imports import is_import_path
from tuneall.core.call import space_name
from tuneall.core.config import OPTIMIZERS, Recipe, SpaceAxes
from tuneall.models import get_family, resolve_family, use_model

# Package data (found through importlib.resources, so a wheel install has them as an editable one does).
SPACES_DIR = Path(str(resources.files("tuneall") / "search_spaces"))
DEFAULT_SPACE = "paper"

AXES = ("width", "depth", "k", "data_fraction", "optimizer", "lr", "momentum", "weight_decay", "batch_size",
        "label_smoothing")
_INT_AXES = {"depth", "k", "batch_size"}
_TOP_KEYS = {"name", "description", "families", "per_family", "grid_points", "design", *AXES}
DESIGNS = ("single", "deq", "weq")  # seed 001's design classes (tuneall.planning.design_classes)


@dataclass(frozen=True)
class Choice:
    values: tuple

    def grid(self, n: int) -> list:
        return list(self.values)


@dataclass(frozen=True)
class Range:
    low: float
    high: float
    log: bool = False
    integer: bool = False

    def grid(self, n: int) -> list:
        if self.integer and (self.high - self.low + 1) <= n:
            return list(range(int(self.low), int(self.high) + 1))
        if self.log:
            vals = [self.low * (self.high / self.low) ** (i / max(1, n - 1)) for i in range(n)]
        else:
            vals = [self.low + (self.high - self.low) * i / max(1, n - 1) for i in range(n)]
        return sorted({int(round(v)) for v in vals}) if self.integer else [float(f"{v:.6g}") for v in vals]


Axis = Union[Choice, Range]


@dataclass(frozen=True)
class SearchSpace:
    name: str
    families: tuple[str, ...]
    axes: dict[str, Axis]  # AXES -> axis; depth Choice((None,)) means the family default
    per_family: dict[str, dict[str, Axis]] = field(default_factory=dict)
    description: str = ""
    grid_points: int = 5
    source: str = ""  # the YAML text it was loaded from, kept for the results directory
    # Seed 001's design classes to sample; then width/depth are the single network's and k the ensembles' size.
    designs: tuple[str, ...] = ()

    def axis(self, name: str, family: str) -> Axis:
        return self.per_family.get(family, {}).get(name, self.axes[name])

    def varying_recipe(self) -> tuple[str, ...]:
        """The recipe fields (lr, batch size, ...) that some family samples from more than one value: what a
        trial's line names besides its architecture (:func:`tuneall.core.progress.allocation_label`)."""
        from tuneall.core.config import RECIPE_FIELDS

        def varies(a: Axis) -> bool:
            return isinstance(a, Range) or len(set(map(str, a.values))) > 1

        return tuple(f for f in RECIPE_FIELDS if f in self.axes and any(varies(self.axis(f, fam))
                                                                          for fam in self.families))


_DEFAULTS: dict[str, Any] = {
    "width": 1.0, "depth": None, "k": 1, "data_fraction": 1.0, "optimizer": "sgd", "lr": 0.05, "momentum": 0.9,
    "weight_decay": 0.0, "batch_size": 128, "label_smoothing": 0.0,
}


def _check_value(key: str, v: Any) -> Any:
    if key == "depth" and v is None:
        return None
    if key == "optimizer":
        if v not in OPTIMIZERS:
            raise ConfigError(f"search space key 'optimizer': unknown optimizer {v!r}; valid: {', '.join(OPTIMIZERS)}")
        return v
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ConfigError(f"search space key {key!r}: expected a number, got {v!r}")
    if key in _INT_AXES:
        if int(v) != v:
            raise ConfigError(f"search space key {key!r}: expected an integer, got {v!r}")
        v = int(v)
    lows = {"k": 1, "depth": 1, "batch_size": 1, "momentum": 0, "weight_decay": 0, "label_smoothing": 0}
    if key in lows and v < lows[key]:
        raise ConfigError(f"search space key {key!r}: must be >= {lows[key]}, got {v!r}")
    if key in ("width", "lr") and v <= 0:
        raise ConfigError(f"search space key {key!r}: must be > 0, got {v!r}")
    if key == "label_smoothing" and v >= 1:
        raise ConfigError(f"search space key {key!r}: must be < 1, got {v!r}")
    if key == "data_fraction" and not 0 < v <= 1:
        raise ConfigError(f"search space key {key!r}: must be in (0, 1], got {v!r}")
    return v


def _parse_axis(key: str, raw: Any) -> Axis:
    if isinstance(raw, dict):
        if key == "optimizer":
            raise ConfigError("search space key 'optimizer': a name or a list of names, not a range")
        unknown = set(raw) - {"low", "high", "log"}
        if unknown:
            raise ConfigError(f"search space key {key!r}: unknown field {sorted(unknown)[0]!r} (allowed: low, high, log)")
        if "low" not in raw or "high" not in raw:
            raise ConfigError(f"search space key {key!r}: a range needs both 'low' and 'high'")
        low, high = _check_value(key, raw["low"]), _check_value(key, raw["high"])
        if low is None or high is None:
            raise ConfigError(f"search space key {key!r}: range bounds must be numbers")
        if low > high:
            raise ConfigError(f"search space key {key!r}: empty range, `low <= high` must hold (low={low}, high={high})")
        log = raw.get("log", False)
        if not isinstance(log, bool):
            raise ConfigError(f"search space key {key!r}: 'log' must be true or false, got {log!r}")
        if log and low <= 0:
            raise ConfigError(f"search space key {key!r}: a log range needs low > 0, got {low}")
        return Range(low, high, log, key in _INT_AXES)
    values = raw if isinstance(raw, list) else [raw]
    if not values:
        raise ConfigError(f"search space key {key!r}: empty list")
    return Choice(tuple(dict.fromkeys(_check_value(key, v) for v in values)))


def parse_space(doc: Any, name: str = "space", source: str = "") -> SearchSpace:
    """Validate a loaded YAML document; every error names the offending key."""
    if not isinstance(doc, dict):
        raise ConfigError(f"search space {name!r}: expected a mapping of keys, got {type(doc).__name__}")
    unknown = set(doc) - _TOP_KEYS
    if unknown:
        raise ConfigError(f"search space {name!r}: unknown key {sorted(unknown)[0]!r} (allowed: {', '.join(sorted(_TOP_KEYS))})")
    fams = doc.get("families")
    if fams is None:
        raise ConfigError(f"search space {name!r}: missing key 'families'")
    fams = fams if isinstance(fams, list) else [fams]
    if not fams or not all(isinstance(f, str) for f in fams):
        raise ConfigError(f"search space key 'families': expected a non-empty list of family names, got {fams!r}")
    resolved = []
    for f in fams:
        try:
            resolved.append(resolve_family(f))  # an import path imports and registers the user's factory
        except ConfigError as e:  # an import path's own message names it (the space key is ours, not the user's)
            raise (e if is_import_path(f) else ConfigError(f"search space key 'families': {e}")) from None
    per_family_doc = doc.get("per_family") or {}
    if isinstance(per_family_doc, dict):  # keyed by what the YAML wrote (a name or an import path)
        per_family_doc = {resolved[fams.index(k)] if k in fams else k: v for k, v in per_family_doc.items()}
    fams = resolved
    axes = {key: _parse_axis(key, doc.get(key, _DEFAULTS[key])) for key in AXES}
    per_family: dict[str, dict[str, Axis]] = {}
    if not isinstance(per_family_doc, dict):
        raise ConfigError(f"search space key 'per_family': expected a mapping of family -> overrides, "
                          f"got {type(per_family_doc).__name__}")
    for fam, over in per_family_doc.items():
        if fam not in fams:
            raise ConfigError(f"search space key 'per_family': {fam!r} is not one of the space's families {fams}")
        if not isinstance(over, dict) or set(over) - {"width", "depth"}:
            raise ConfigError(f"search space key 'per_family.{fam}': only 'width' and 'depth' may be overridden")
        per_family[fam] = {key: _parse_axis(key, v) for key, v in over.items()}
    if "width" not in doc:  # a user family's own width grid, where the space names none
        for fam in fams:
            if get_family(fam).widths and "width" not in per_family.get(fam, {}):
                per_family.setdefault(fam, {})["width"] = Choice(get_family(fam).widths)
    for fam in fams:
        _check_family_axes(fam, per_family.get(fam, {}).get("depth", axes["depth"]),
                           per_family.get(fam, {}).get("width", axes["width"]))
    designs = doc.get("design", [])
    designs = designs if isinstance(designs, list) else [designs]
    bad = [d for d in designs if d not in DESIGNS]
    if bad:
        raise ConfigError(f"search space key 'design': unknown design class {bad[0]!r}; valid: {', '.join(DESIGNS)}")
    gp = doc.get("grid_points", 5)
    if isinstance(gp, bool) or not isinstance(gp, int) or gp < 1:
        raise ConfigError(f"search space key 'grid_points': expected an integer >= 1, got {gp!r}")
    return SearchSpace(
        name=str(doc.get("name", name)), families=tuple(fams), axes=axes, per_family=per_family,
        description=str(doc.get("description", "")), grid_points=gp, source=source, designs=tuple(designs),
    )


def _check_family_axes(family: str, depth: Axis, width: Axis) -> None:
    """A family must be able to build at least one of its depths, and a built-in family's widths must be real
    networks: a width at which every layer is clamped to one channel (the same network as at half that width) is
    refused."""
    from tuneall.models import check_width_scales

    fam = get_family(family)
    depths = depth.grid(64) if isinstance(depth, Range) else list(depth.values)
    valid = [d for d in depths if d is None or fam.valid_depth(int(d))]
    if not valid:
        shown = ", ".join(str(d) for d in depths[:5]) + (", ..." if len(depths) > 5 else "")
        raise ConfigError(f"search space key 'depth': family {family!r} cannot build depth {shown} "
                          f"({fam.depth_rule}; null = its default {fam.default_depth})")
    if fam.user:  # a user factory needs the data's input shape: built and checked on the data before any trial
        return  # (tuneall.planning.points.check_space_families)
    for w in [width.low] if isinstance(width, Range) else list(width.values):
        try:
            check_width_scales(family, float(w), valid[0])
        except ConfigError as e:
            raise ConfigError(f"search space key 'width': {e}") from None


def load_space(spec: str | Path | None = None) -> SearchSpace:
    """Load a space from a YAML path, or by name from the packaged spaces (default: ``paper``)."""
    spec = spec or DEFAULT_SPACE
    path = Path(spec)
    if not path.exists() and path.suffix == "" and (SPACES_DIR / f"{spec}.yaml").exists():
        path = SPACES_DIR / f"{spec}.yaml"
    if not path.is_file():
        names = sorted(p.stem for p in SPACES_DIR.glob("*.yaml"))
        raise ConfigError(f"search space {str(spec)!r} not found (a YAML file, or one of: {', '.join(names)})")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"search space {str(path)!r} cannot be read as UTF-8 text: {e}") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"search space {str(path)!r}: invalid YAML{where}: {getattr(e, 'problem', e)}") from None
    return parse_space(doc, name=path.stem, source=text)


def grid(space: SearchSpace) -> list[dict]:
    """Every point of the space's grid (ranges contribute ``grid_points`` values), feasible or not."""
    points = []
    for fam in space.families:
        axes = {key: space.axis(key, fam).grid(space.grid_points) for key in AXES}
        for combo in itertools.product(*axes.values()):
            point = {"family": fam, **dict(zip(AXES, combo))}
            if not space.designs:
                points.append(point)
            for design in space.designs:
                # The single network is one member whatever k the ensembles have: list it once.
                if design != "single" or point["k"] == min(axes["k"]):
                    points.append({**point, "design": design, "k": 1 if design == "single" else point["k"]})
    return points


def build_space(space: "SearchSpace | str | None" = None, axes: SpaceAxes = SpaceAxes(),
                recipe: Recipe = Recipe()) -> SearchSpace:
    """A packaged or YAML space (default ``paper``), or an ad-hoc one from the axes (a family, lists of widths,
    depths and ensemble sizes), with the recipe's given settings fixed in it (:func:`tuneall.make_space`)."""
    family = use_model(axes.model)  # a factory function: registered under its name
    flags = {"width": axes.widths, "depth": axes.depths, "k": axes.k}
    adhoc = bool(family) or any(v is not None for v in flags.values())
    if space is not None and adhoc:
        raise ConfigError("give either space or family/widths/depths/k, not both")
    if not adhoc:
        return with_fixed(space if isinstance(space, SearchSpace) else load_space(space), **recipe.given())
    doc = {"name": space_name(family, flags), "families": [family or "cnn3"], **recipe.given()}
    doc.update({key: list(v) for key, v in flags.items() if v is not None})
    return parse_space(doc, source=yaml.safe_dump(doc, sort_keys=False))  # the YAML a resume rebuilds it from


def with_fixed(space: SearchSpace, **values: Any) -> SearchSpace:
    """A copy of ``space`` with the given axes fixed to one value each (e.g. an ``--lr`` given on the command line)."""
    unknown = set(values) - set(AXES)
    if unknown:
        raise ConfigError(f"cannot fix unknown axis {sorted(unknown)[0]!r}")
    axes = {**space.axes, **{key: _parse_axis(key, v) for key, v in values.items()}}
    return replace(space, axes=axes)
