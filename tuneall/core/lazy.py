"""Lazy re-exports for a package ``__init__``: the public names resolve on first use, so importing the package
(``tuneall.data``, ``tuneall.runner``) loads none of the heavy modules behind it until a name is asked for."""

from __future__ import annotations

import importlib


def exports(package: str, where: dict[str, str]):
    """``(__getattr__, __dir__)`` for ``package``: ``where`` maps each public name to its submodule."""

    def __getattr__(name: str):
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{module}"), name)

    def __dir__():
        return sorted({*vars(importlib.import_module(package)), *where})

    return __getattr__, __dir__
