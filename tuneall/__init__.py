"""tuneall: find the best way to spend a fixed training compute budget.

The verbs of the Python API (:mod:`tuneall.api`) are imported on first use, so that ``import tuneall`` and
``tuneall --help`` do not pay for torch, Ray or pandas.
"""

from tuneall.core.budget import Budget
from tuneall.core.errors import BudgetError, ConfigError, DataError, TuneallError

__version__ = "0.1.0"
_API = ("plan", "design", "train", "search", "resume", "sweep", "report", "load_ensemble", "make_space")
# Bringing your own model and data (torch is imported on first use of these, not by ``import tuneall``).
_USER = {"register_model": "tuneall.models", "register_data": "tuneall.data.user"}
__all__ = [*_API, *_USER, "Budget", "TuneallError", "BudgetError", "ConfigError", "DataError"]


def __getattr__(name: str):
    if name in _API:
        from tuneall import api

        return getattr(api, name)
    if name in _USER:
        import importlib

        return getattr(importlib.import_module(_USER[name]), name)
    raise AttributeError(f"module 'tuneall' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_API) | set(_USER))
