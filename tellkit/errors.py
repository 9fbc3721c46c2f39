"""User-facing errors.

A `TellkitError` is a mistake the user can fix (bad config, bad data, missing
model). The CLI prints it as one line starting with ``error:`` and exits with
code 2; everything else is a bug and keeps its traceback.
"""


class TellkitError(Exception):
    """A user error: the message says what is wrong and how to fix it."""

    exit_code = 2


class DataError(TellkitError):
    """Malformed or missing data. Name the file (and line) in the message."""


class ConfigError(TellkitError):
    """Invalid configuration. Name the key, the value and what is allowed."""


class ModelError(TellkitError):
    """Model reference that cannot be resolved or loaded safely."""
