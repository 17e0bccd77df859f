"""How a run was called, for its results directory (core).

From the CLI the command line is recorded; from Python the call itself (``tuneall.search(budget=3e7, ...)``), not
the script's name. An ad-hoc space is named after its axes (``cnn3-w0.5_1-k1_2``), which also names the results
folder, so a folder says what was searched whichever way it was called.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import fields

from tuneall.core.config import Recipe, SpaceAxes


def python_call(verb: str, fn, given: dict) -> list[str]:
    """``["tuneall.<verb>(arg=value, ...)"]`` with the arguments of ``fn`` that differ from their defaults
    (``given``: the call's ``locals()`` at its start)."""
    parts = []
    for v in list(given.values()):  # a function of value_keywords: its values' fields as they were given
        if isinstance(v, tuple(KEYWORD_GROUPS.values())):
            given = {**given, **{f.name: getattr(v, f.name) for f in fields(v)}}
    for name, p in inspect.signature(fn).parameters.items():
        if name in ("argv",) or name not in given:
            continue
        v = given[name]
        if p.default is inspect.Parameter.empty or not _same(v, p.default):
            parts.append(f"{name}={_short(v)}")
    return [f"tuneall.{verb}({', '.join(parts)})"]


# The API's keyword groups: an inner function's parameter of this name stands for the value's fields as keywords.
KEYWORD_GROUPS = {"recipe": Recipe, "axes": SpaceAxes}


def value_keywords(fn):
    """``fn(..., recipe: Recipe, ..., axes: SpaceAxes, ...)`` called as users call it, with each value's fields as
    keyword arguments (``lr=0.1, optimizer="adamw"``, ``model=..., widths=[...]``; None: not given) where the value
    stands in its signature: they are gathered into one :class:`Recipe` (checked here, at the API's boundary) and
    one :class:`SpaceAxes`, and carried whole inward. Each group's keywords are declared once, by its dataclass, for
    every verb that takes them; ``inspect.signature`` and ``help`` show them in place."""
    inner = inspect.signature(fn)
    groups = {name: cls for name, cls in KEYWORD_GROUPS.items() if name in inner.parameters}
    params = []
    for p in inner.parameters.values():
        if p.name not in groups:
            params.append(p)
            continue
        # Field order = the order the verbs have always listed them, which a recorded call keeps.
        params += [inspect.Parameter(f.name, p.kind, default=None, annotation=f.type) for f in fields(groups[p.name])]
    public = inner.replace(parameters=params)

    @functools.wraps(fn)
    def call(*args, **kw):
        bound = public.bind(*args, **kw)
        named = {}
        for name, v in bound.arguments.items():
            named.update(v if public.parameters[name].kind is inspect.Parameter.VAR_KEYWORD else {name: v})
        values = {name: cls(**{f.name: named.pop(f.name) for f in fields(cls) if f.name in named})
                  for name, cls in groups.items()}
        return fn(**named, **values)

    call.__signature__ = public
    return call


def _same(a, b) -> bool:
    try:
        return bool(a == b) and type(a) is type(b)
    except Exception:  # noqa: BLE001  e.g. tensors: not a default
        return False


def _short(v) -> str:
    if isinstance(v, (str, int, float, bool, type(None))):
        return repr(v)
    if isinstance(v, (list, tuple)) and len(v) <= 12 and all(isinstance(x, (str, int, float)) for x in v):
        return repr(list(v))
    name = getattr(v, "name", None)
    if isinstance(name, str):  # a SearchSpace
        return f"<{type(v).__name__} {name!r}>"
    return f"<{type(v).__name__}>"


def space_name(family: str | None, flags: dict) -> str:
    """An ad-hoc space's name from its axes: ``cnn3-w0.5_1-k1_2`` (``w``: widths, ``d``: depths, ``k``)."""
    fam = str(family or "cnn3").rsplit(":", 1)[-1].rsplit(".", 1)[-1]
    parts = [fam]
    for key, short in (("width", "w"), ("depth", "d"), ("k", "k")):
        if flags.get(key) is not None:
            parts.append(short + "_".join(f"{v:g}" if isinstance(v, float) else str(v) for v in flags[key]))
    name = "-".join(parts)
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:80]


__all__ = ["python_call", "value_keywords", "KEYWORD_GROUPS", "space_name"]
