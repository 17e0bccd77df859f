"""Exception hierarchy. Every user-facing error derives from :class:`TuneallError`.

The CLI turns a ``TuneallError`` into one line on stderr and exit code 2; anything else is a bug and keeps its
traceback.
"""


class TuneallError(Exception):
    """Root of tuneall's errors: bad input or an unusable environment, never a bug."""


class BudgetError(TuneallError):
    """A budget that is not a positive finite number, or too small for any allocation."""


class ConfigError(TuneallError):
    """A bad configuration value: names the field, the value and what is allowed."""


class DataError(TuneallError):
    """A dataset that is unknown, missing, or corrupt."""


class NotStarted(TuneallError):
    """The user answered no to the pre-run question: nothing was started or written (exit 1, not an error)."""
