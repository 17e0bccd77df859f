"""tuneall: find the best way to spend a fixed training compute budget."""

from tuneall.api import plan, search, train
from tuneall.budget import Budget
from tuneall.errors import BudgetError, ConfigError, DataError, TuneallError

__version__ = "0.1.0"
__all__ = ["plan", "search", "train", "Budget", "TuneallError", "BudgetError", "ConfigError", "DataError"]
