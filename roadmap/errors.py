"""The two ways a run's inputs can be wrong, each with a message that names the key or file and the fix.

run.py prints such an error as its message alone and exits non-zero: the message says what to change, and a
traceback would only bury it. Any other exception is a bug, and keeps its traceback.
"""

from __future__ import annotations


class ConfigError(ValueError):
    """A config value the run cannot use: the message names the key, the value given, what it must be, and the fix
    where there is one."""


class DataError(ConfigError):
    """A data set missing, or damaged, where the config points: the message names the file and what is wrong."""


def need(ok: bool, key: str, value: object, must: str, fix: str = "") -> None:
    """Raise a ConfigError saying that `key={value}` is invalid and what it must be, unless `ok`."""
    if not ok:
        raise ConfigError(f"{key}={value!r} is invalid: it must be {must}.{f' {fix}' if fix else ''}")
