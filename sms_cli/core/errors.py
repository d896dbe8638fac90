"""The one root exception the CLI catches, and the exit codes it maps to (a contract with cron)."""
from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    OK = 0  # every row accepted
    NOT_ALL_ACCEPTED = 1  # run finished, some rows not accepted (failures file written)
    USAGE = 2  # usage, input or config error before sending
    FATAL = 3  # run stopped: credentials, account, provider unreachable, or a local disk/journal failure
    UNKNOWN_ONLY = 4  # only unknown outcomes remain
    DEFERRED_ONLY = 5  # only deferred rows remain (a later run sends them)
    SIGINT = 130
    SIGTERM = 143


class SmsCliError(Exception):
    """An error the user can act on: printed as one line, never as a traceback."""

    exit_code = ExitCode.USAGE


class ConfigError(SmsCliError):
    pass


class InputError(SmsCliError):
    """The input cannot be read at all (not a bad row: bad rows are reported per row)."""

    def __init__(self, source: str, message: str, line: int | None = None):
        self.source, self.line, self.reason = source, line, message
        where = f"{source}:{line}" if line else source
        super().__init__(f"{where}: {message}")


class JournalLocked(SmsCliError):
    pass
