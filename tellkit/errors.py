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


def check_count(value: int | None, what: str) -> int | None:
    """`value` when it is None or at least 1: a count the user set (--limit, --batch-size, ...) is never
    silently replaced by a default, so 0 or a negative number is an error naming `what`."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ConfigError(f"{what} must be a whole number of at least 1 (got {value!r})")
    return value
