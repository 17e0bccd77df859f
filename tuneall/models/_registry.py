"""Model registry in the style of timm: a register decorator plus one ``create_model``.

A built-in family is a builder ``fn(width, depth, in_channels, num_classes, spatial_dims) -> nn.Module``
(``register_builtin``). A family from user code (:func:`register_model`, or an import path ``mypkg.nets:make_mlp``
through :func:`resolve_family`) is a factory ``fn(width, depth, input_shape, num_classes) -> nn.Module``: it gets the
input shape per example, so any first layer can be sized. Each has a default depth, a rule for which depths are
valid and (user families) a width grid. Parameter counts always come from the real module (built on the ``meta``
device so that counting a 36M-parameter network allocates nothing); a module with lazy parameters is materialised
once on a dummy input when it is built.

Building, counting and checking take an :class:`~tuneall.core.architecture.Architecture` (family, width, depth and
the input it is built for); ``create_model`` and ``param_count`` also take the loose form (name, width, depth,
in_channels, num_classes, spatial_dims, input_shape) their callers have always used.
"""

from __future__ import annotations

import functools
import inspect
import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from tuneall.core.architecture import Architecture
from tuneall.core.errors import ConfigError


@dataclass(frozen=True)
class ModelFamily:
    name: str
    builder: Callable[..., nn.Module]
    default_depth: int
    valid_depth: Callable[[int], bool]  # which depths the family can build
    depth_rule: str  # human-readable form of valid_depth, for error messages
    description: str
    # Step of the width grid that design-class searches (deq widths) walk: one channel of the first layer whose
    # channel count scales with width, so every grid width builds integral channel counts without rounding.
    width_unit: float = 1.0
    user: bool = False  # a factory fn(width, depth, input_shape, num_classes) from user code
    widths: tuple[float, ...] = ()  # the width grid a space uses when it names none (user families)
    # Where the factory can be imported again (``pkg.mod:fn`` or ``/abs/file.py:fn``; "" when it cannot), recorded
    # with saved members so that tuneall.load_ensemble can rebuild them in a process that did not register it.
    source: str = ""

    @property
    def factory_name(self) -> str:
        fn = self.builder
        return f"{getattr(fn, '__module__', '?')}:{getattr(fn, '__qualname__', repr(fn))}"


_REGISTRY: dict[str, ModelFamily] = {}


def register_builtin(
    name: str,
    *,
    default_depth: int,
    valid_depth: Callable[[int], bool] = lambda d: d >= 1,
    depth_rule: str = "depth >= 1",
    description: str = "",
    width_unit: float = 1.0,
):
    """Decorator registering a built-in ``fn(width, depth, in_channels, num_classes, spatial_dims)`` as ``name``."""

    def deco(fn):
        if name in _REGISTRY:
            raise ValueError(f"model family {name!r} is registered twice")
        _REGISTRY[name] = ModelFamily(
            name, fn, default_depth, valid_depth, depth_rule, description or fn.__doc__ or "", width_unit=width_unit
        )
        return fn

    return deco


_CACHE_HOOKS: list = []  # cache_clear functions of counts derived from a family (flops.py adds its own)


def on_family_change(clear) -> None:
    """Register ``clear()`` to run when a family is replaced, so counts of an old factory are never served."""
    _CACHE_HOOKS.append(clear)


def _clear_caches() -> None:
    _count.cache_clear()
    for clear in _CACHE_HOOKS:
        clear()


def add_family(fam: ModelFamily) -> None:
    """Register ``fam`` (a user family, e.g. one shipped to a worker); a built-in name cannot be replaced."""
    old = _REGISTRY.get(fam.name)
    if old is not None and not old.user:
        raise ConfigError(f"model family {fam.name!r} is built in; register yours under another name")
    if old is not fam:
        _REGISTRY[fam.name] = fam
        _clear_caches()  # counts of an old factory under the same name must not be served


def register_model(name=None, fn=None, *, widths=None, default_depth: int = 1, depths=None, valid_depth=None,
                   description: str = ""):
    """Register a model family from user code: a factory ``fn(width, depth, input_shape, num_classes) -> nn.Module``.

    As a function, ``register_model("mlp", make_mlp, widths=[0.5, 1, 2], default_depth=2)``, or as a decorator,
    ``@register_model("mlp", widths=...)`` (also bare ``@register_model``: the name is the function's).
    ``widths``: the width grid a search uses when its space names none. Valid depths: ``depths`` (a list) or
    ``valid_depth`` (a predicate); default any depth >= 1. Registering a name again replaces the earlier factory.
    Returns the factory (decorator) or the family name (function call)."""
    if callable(name) and fn is None:  # bare @register_model
        return register_model(None, name, widths=widths, default_depth=default_depth, depths=depths,
                              valid_depth=valid_depth, description=description)

    def deco(f):
        if not callable(f):
            raise ConfigError(f"register_model: the factory must be callable, got {type(f).__name__}")
        fam_name = name or getattr(f, "__name__", None)
        if not isinstance(fam_name, str) or not fam_name or ":" in fam_name:
            raise ConfigError(f"register_model: a family name must be a non-empty string without ':', got "
                              f"{fam_name!r}")
        grid = tuple(float(w) for w in (widths or ()))
        if any(not math.isfinite(w) or w <= 0 for w in grid):
            raise ConfigError(f"register_model {fam_name!r}: widths must be numbers > 0, got {list(widths)}")
        if depths is not None:
            allowed = tuple(int(d) for d in depths)
            rule, pred = f"depth in {list(allowed)}", _InSet(allowed)
        else:
            rule, pred = ("depth >= 1", _AtLeastOne()) if valid_depth is None else ("the family's depth rule",
                                                                                     valid_depth)
        add_family(ModelFamily(fam_name, f, int(default_depth), pred, rule, description or (f.__doc__ or ""),
                               user=True, widths=grid, source=_source_of(f)))
        try:
            f.__tuneall_family__ = fam_name  # an import path to this factory finds the family registered for it
        except (AttributeError, TypeError):
            pass
        return f

    if fn is not None:
        deco(fn)
        return name or fn.__name__
    return deco


def _source_of(fn) -> str:
    """An import path that finds ``fn`` again from another process ("" when there is none)."""
    import sys

    mod, qual = getattr(fn, "__module__", None), getattr(fn, "__qualname__", "")
    if not mod or not qual or "<" in qual:  # a lambda or a function defined inside another one
        return ""
    if mod == "__main__" or mod.startswith("_tuneall_user_"):  # a script, or a file imported by path
        file = getattr(sys.modules.get(mod), "__file__", None)
        return f"{file}:{qual}" if file and str(file).endswith(".py") else ""
    return f"{mod}:{qual}"


class _AtLeastOne:  # picklable predicates (lambdas in a registry pickle by value too, but these read better)
    def __call__(self, d: int) -> bool:
        return d >= 1


@dataclass(frozen=True)
class _InSet:
    allowed: tuple[int, ...]

    def __call__(self, d: int) -> bool:
        return d in self.allowed


def use_model(model):
    """A family name for ``model``: a name or import path as given; a factory function registered under its name."""
    return model if model is None or isinstance(model, str) else register_model(None, model)


def resolve_family(spec: str) -> str:
    """A family name, or an import path to a factory (``mypkg.nets:make_mlp``, ``path/file.py:make_mlp``) that is
    imported and registered (under the name it registered itself with, else the function's name)."""
    from tuneall.core.imports import import_object, is_import_path

    if not is_import_path(spec):
        get_family(spec)
        return spec
    fn = import_object(spec, what="model")
    name = getattr(fn, "__tuneall_family__", None)
    if name and name in _REGISTRY and _REGISTRY[name].builder is fn:
        return name
    if not callable(fn):
        raise ConfigError(f"model {spec!r} is a {type(fn).__name__}, not a factory fn(width, depth, input_shape, "
                          "num_classes)")
    return register_model(None, fn)


def user_families() -> tuple[ModelFamily, ...]:
    """The families registered from user code in this process (what the runner ships to trial processes)."""
    return tuple(f for f in _REGISTRY.values() if f.user)


def list_models() -> list[str]:
    """Names of the registered model families, sorted."""
    return sorted(_REGISTRY)


def get_family(name: str) -> ModelFamily:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown model family {name!r}; valid: {', '.join(list_models())}") from None


def check_arch(name: str, width: float, depth: int | None) -> int:
    """Validate (family, width, depth); return the depth to use (the family default when None)."""
    fam = get_family(name)
    if not isinstance(width, (int, float)) or not math.isfinite(width) or width <= 0:
        raise ConfigError(f"width must be a finite number > 0, but got width={width!r}")
    d = fam.default_depth if depth is None else depth
    if not isinstance(d, int) or isinstance(d, bool) or not fam.valid_depth(d):
        raise ConfigError(f"depth {d!r} is not valid for family {name!r} ({fam.depth_rule})")
    return d


def as_architecture(
    name: "str | Architecture",
    width: float = 1.0,
    depth: int | None = None,
    in_channels: int = 3,
    num_classes: int = 10,
    spatial_dims: int = 2,
    input_shape: tuple[int, ...] | None = None,
) -> Architecture:
    """The loose form as an Architecture (an Architecture as itself). Without ``input_shape`` a built-in family gets
    a nominal input of ``in_channels`` and ``spatial_dims`` (all its builders read); a user family needs the shape."""
    if isinstance(name, Architecture):
        return name
    if input_shape is None:
        fam = get_family(name)
        if fam.user:
            raise ConfigError(f"model family {name!r} ({fam.factory_name}) needs the input shape of the data")
        input_shape = (in_channels, *(_NOMINAL_SIZE,) * spatial_dims)
    return Architecture(name, width, depth, tuple(int(v) for v in input_shape), num_classes)


_NOMINAL_SIZE = 32  # a built-in family's parameters do not depend on the input's height and width


def _loose(fn):
    """``fn(arch)`` also callable in the loose form :func:`as_architecture` takes (declared once, there)."""
    @functools.wraps(fn)
    def call(*args, **kw):
        return fn(as_architecture(*args, **kw))

    call.__signature__ = inspect.signature(as_architecture).replace(
        return_annotation=inspect.signature(fn).return_annotation)
    return call


@_loose
def create_model(arch: Architecture) -> nn.Module:
    """Build an :class:`Architecture`, or family ``name`` at width multiplier ``width`` and ``depth`` (family default
    when None).

    ``spatial_dims`` is 2 for images (N, C, H, W) and 1 for signals (N, C, L). ``input_shape`` (per example) is what
    a user family's factory receives; built-in families read ``in_channels`` and ``spatial_dims``.
    """
    d = check_arch(arch.family, arch.width, arch.depth)
    fam = get_family(arch.family)
    if fam.user:
        return _build_user(fam, float(arch.width), d, arch.input_shape, arch.num_classes)
    if arch.spatial_dims not in (1, 2):
        raise ConfigError(f"spatial_dims must be 1 or 2, but got {arch.spatial_dims!r}")
    return fam.builder(width=float(arch.width), depth=d, in_channels=arch.in_channels, num_classes=arch.num_classes,
                       spatial_dims=arch.spatial_dims)


def _build_user(fam: ModelFamily, width: float, depth: int, input_shape: tuple[int, ...], num_classes: int):
    where = f"model factory {fam.factory_name} (family {fam.name!r}) at width={width:g}, depth={depth}"
    try:
        model = fam.builder(width, depth, input_shape, num_classes)
    except ConfigError:
        raise
    except SystemExit as e:  # sys.exit() in user code must not end tuneall silently
        raise ConfigError(f"{where} called sys.exit({e.code!r}) while building; a factory must return a "
                          "torch.nn.Module") from None
    except Exception as e:  # noqa: BLE001  the user's factory failed: one line naming it
        raise ConfigError(f"{where} failed to build: {type(e).__name__}: {_short(e)}") from None
    if not isinstance(model, nn.Module):
        raise ConfigError(f"{where} returned a {type(model).__name__}, not a torch.nn.Module")
    if any(isinstance(p, nn.parameter.UninitializedParameter) for p in model.parameters()):
        # Lazy modules get their shapes from one dummy forward in eval mode (no BatchNorm statistics updated).
        was = model.training
        try:
            with torch.no_grad():
                model.eval()(torch.zeros(2, *input_shape))
        except Exception as e:  # noqa: BLE001
            raise ConfigError(f"{where} has lazy parameters, and materialising them on a dummy input of shape "
                              f"{(2, *input_shape)} failed: {type(e).__name__}: {_short(e)}") from None
        model.train(was)
    return model


def _short(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return text if len(text) <= 200 else text[:197] + "..."


def check_family(arch: Architecture) -> None:
    """Build a user family once and run a dummy batch through it (on the meta device: no memory, no compute):
    ConfigError naming the factory when it fails to build, returns a non-module or outputs the wrong shape."""
    fam = get_family(arch.family)
    if not fam.user:
        return
    d = check_arch(arch.family, arch.width, arch.depth)
    where = f"model factory {fam.factory_name} (family {arch.family!r}) at width={arch.width:g}, depth={d}"
    batch = (2, *arch.input_shape)

    def build_and_run():
        model = create_model(arch)
        try:
            with torch.no_grad():
                return model, model.eval()(torch.zeros(batch))
        except Exception as e:  # noqa: BLE001
            raise ConfigError(f"{where}: a forward pass on inputs of shape {batch} failed: "
                              f"{type(e).__name__}: {_short(e)}") from None

    from tuneall.models.devices import meta_or_cpu

    # Meta first (no memory, no compute); whatever fails there (ops meta lacks, a factory calling .item()) is
    # checked again on the CPU, whose error is the factory's.
    model, out = meta_or_cpu(build_and_run)
    if not any(p.requires_grad for p in model.parameters()):
        raise ConfigError(f"{where} has no trainable parameters ("
                          + ("every parameter is frozen: requires_grad=False" if any(True for _ in model.parameters())
                             else "it holds none") + "); nothing could be trained")
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, arch.num_classes):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ConfigError(f"{where} outputs {got} for a batch of inputs of shape {batch}; expected "
                          f"logits of shape (2, {arch.num_classes})")


def check_width_scales(family: str, width: float, depth: int | None) -> None:
    """Refuse a width at which a built-in family is the same network as at half that width (one channel per
    layer): everything below it spends the budget on steps of a network that no longer shrinks. A user factory's
    shapes are checked on the data instead (:func:`check_family`)."""
    if get_family(family).user:
        return
    p = param_count(family, float(width), depth)
    if p == param_count(family, float(width) / 2, depth):
        raise ConfigError(f"width {width:g} collapses {family} to one channel per layer ({p} parameters, the same "
                          "network as any smaller width); use a larger width")


def scaled(channels: int, width: float) -> int:
    """Channel count ``channels x width`` rounded to the nearest integer, at least 1."""
    return max(1, int(round(channels * width)))


def count_params(model: nn.Module) -> int:
    """Number of trainable parameters (BatchNorm running statistics are buffers, so they are not counted)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@functools.lru_cache(maxsize=4096)
def _count(arch: Architecture) -> int:
    from tuneall.models.devices import meta_or_cpu

    return count_params(meta_or_cpu(lambda: create_model(arch)))


@_loose
def param_count(arch: Architecture) -> int:
    """P for an :class:`Architecture` (or the loose form of :func:`create_model`), counted on the real module built
    on the meta device, or the CPU where it cannot be built on meta (cached per architecture)."""
    return _count(arch)
