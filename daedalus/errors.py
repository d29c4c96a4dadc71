"""The errors a user can cause. Only the CLI catches them: one line, a non-zero exit code.

Every message names the cause, the file or key, and where possible the fix.
"""

from __future__ import annotations


class DaedalusError(Exception):
    """Base of every error Daedalus raises on purpose. `exit_code` is what the CLI returns."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        if not message:
            raise ValueError("a DaedalusError needs a message")
        super().__init__(message)


class ConfigError(DaedalusError):
    """Bad configuration: unknown key, wrong type, out-of-range value."""

    exit_code = 2


class CompileError(DaedalusError):
    """A model that does not compile: Jinja error, SQL parse error, unknown ref, cycle."""

    exit_code = 3


class BuildError(DaedalusError):
    """A model that compiled but failed while running, or a failing data test."""

    exit_code = 4


class StorageError(DaedalusError):
    """The lake cannot be read or written (permissions, credentials, disk full, corrupt state)."""

    exit_code = 5


class ExchangeError(DaedalusError):
    """An exchange, symbol or channel that does not exist, or an exchange that cannot be reached."""

    exit_code = 6


class SelectionError(ConfigError):
    """A `--select` / `--exclude` / `--start`/`--end` selection that matches nothing (exit code 2)."""


class QueryError(ConfigError):
    """SQL given to `daedalus query` that DuckDB refuses or that would write (exit code 2: usage)."""
