"""The one vocabulary for how a row ends, how a run ends, and what each means everywhere else.

Every row of a run ends as exactly one `Fate`. The table below is the only place that says
what a fate writes to the failures file (its retryable flag), which summary counter it adds
to, and how it weighs on the exit code. What the journal keeps of a row is a `RowState`, what
it keeps of a run is a `RunEnd`, each stored as its own value; `exit_code` is the one rule
that turns a run end and its rows into the exit code (send, plan, status, validate, receipts).
"""
from __future__ import annotations

import enum
from collections.abc import Mapping

from .errors import ExitCode


class RowState(enum.StrEnum):
    """A row's state in the journal, stored as its value; rows absent from it were never sent.
    Only the ledger writes one."""

    ACCEPTED = "accepted"  # the provider took it: never sent again
    REJECTED = "rejected"  # the provider refused it for good: resent only from a failures file
    RETRYABLE = "retryable"  # not taken (transient failures outlasted the attempts, or the run
    #                          stopped first): a re-run of the input sends it again
    UNKNOWN = "unknown"  # may have been taken: never resent by itself (--retry-unknown)
    INFLIGHT = "inflight"  # its request left and no answer is recorded yet (a later run: unknown)
    # accepted, but its delivery receipt says it never reached the handset (`sms-cli receipts`):
    # like REJECTED, resent only from a failures file, never by a re-run of the input
    UNDELIVERED = "undelivered"

    @property
    def public(self) -> str:
        """The name JSON and text output give the state (`journal_states`, `previous`): the
        vocabulary of the first versions, kept stable for scripts that read it."""
        return _PUBLIC.get(self, self.value)

    __hash__ = str.__hash__  # in C: states are counted per row


_PUBLIC = {RowState.REJECTED: "failed", RowState.RETRYABLE: "retry"}
# what a stored value means, those of journals an earlier version wrote included (`failed` was
# the refused state, `retry` the one a re-run sends; store.journal migrates them on open)
STATE_OF: dict[str, RowState] = {**{s.value: s for s in RowState},
                                 "failed": RowState.REJECTED, "retry": RowState.RETRYABLE}


def public_counts(counts: Mapping[str, int]) -> dict[str, int]:
    """Rows per journal state, keyed by the states' public names (for JSON and text output)."""
    out: dict[str, int] = {}
    for state, n in counts.items():
        name = STATE_OF[state].public if state in STATE_OF else state
        out[name] = out.get(name, 0) + n
    return out


class RunEnd(enum.StrEnum):
    """How a run ended (or why it is stopping), stored in the journal's runs as its value."""

    RUNNING = "running"  # stored while a send goes (read with no send holding the journal: killed)
    FINISHED = "finished"  # went through its whole input
    PARTIAL = "partial"  # went through it, and deferred rows remain (--limit, quiet hours)
    FATAL = "fatal"  # stopped: credentials, account, provider unreachable, local disk or journal
    SIGINT = "SIGINT"  # stopped by a signal
    SIGTERM = "SIGTERM"
    KILLED = "killed"  # left running by a process that is gone (never stored: read as such)
    STOPPED = "stopped"  # ended without saying how (a run superseded while running, or stopped
    #                      under an earlier version, which stored one word for every stop)

    @property
    def stopped(self) -> bool:
        """The run did not go through its input."""
        return self in _EXIT_OF_STOP or self is RunEnd.STOPPED

    @property
    def public(self) -> str:
        """The name `status` gives a run: every stop is `stopped` there (the summary of the
        run itself says which)."""
        return RunEnd.STOPPED.value if self.stopped else self.value

    __hash__ = str.__hash__


_EXIT_OF_STOP = {RunEnd.FATAL: ExitCode.FATAL, RunEnd.SIGINT: ExitCode.SIGINT, RunEnd.SIGTERM: ExitCode.SIGTERM}


class Retryable(enum.StrEnum):
    """A failures-file row's `retryable` column: whether resending it is safe."""

    YES = "yes"  # never taken: resend it
    NO = "no"  # refused, or left out for what it carries: fix it first
    UNKNOWN = "unknown"  # may have been taken: resent only with --retry-unknown


class Weight(enum.IntEnum):
    """How a fate bears on the exit code; the heaviest one present decides."""

    DONE = 0  # nothing left to do for this row
    DEFERRED = 5  # a later run sends it
    UNKNOWN = 4  # check delivery before resending
    NOT_ACCEPTED = 1  # read the failures file


class Fate(enum.Enum):
    # value: (summary counter, retryable flag in the failures file or None when not written,
    #         exit weight)
    ACCEPTED = ("accepted", None, Weight.DONE)  # the provider took it in this invocation
    ACCEPTED_EARLIER = ("accepted_earlier", None, Weight.DONE)  # the ledger says it was taken before
    DUPLICATE = ("duplicates", None, Weight.DONE)  # --dedupe: the same message as another row
    INVALID = ("invalid", Retryable.NO, Weight.NOT_ACCEPTED)  # failed validation, never sent
    REJECTED = ("rejected", Retryable.NO, Weight.NOT_ACCEPTED)  # the provider refused it for good
    FAILED = ("failed", Retryable.YES, Weight.NOT_ACCEPTED)  # transient failures outlasted max_attempts
    NOT_SENT = ("not_sent", Retryable.YES, Weight.NOT_ACCEPTED)  # the run stopped, or it failed before leaving
    SKIPPED = ("skipped", Retryable.NO, Weight.NOT_ACCEPTED)  # --only-retryable left a non-retryable row
    SUPPRESSED = ("suppressed", Retryable.NO, Weight.NOT_ACCEPTED)  # on the suppression list (opted out)
    COUNTRY = ("country_not_allowed", Retryable.NO, Weight.NOT_ACCEPTED)  # outside the allowed countries
    EXPIRED = ("expired", Retryable.NO, Weight.NOT_ACCEPTED)  # not sent within --valid-for
    UNKNOWN = ("unknown", Retryable.UNKNOWN, Weight.UNKNOWN)  # may have been taken; never resent by itself
    DEFERRED = ("deferred", Retryable.YES, Weight.DEFERRED)  # --limit reached: a later run sends it
    QUIET = ("quiet_hours", Retryable.YES, Weight.DEFERRED)  # quiet hours where the recipient is
    # not accepted, and another failures file of the working set holds it (store/held.py): it
    # stays there alone, so this run neither sends it nor writes it to its own failures file
    ELSEWHERE = ("in_other_failures_file", None, Weight.NOT_ACCEPTED)
    # the same, for a row whose outcome is unknown: it keeps the weight of an unknown (exit 4
    # says "check delivery before resending" wherever the row is filed)
    ELSEWHERE_UNKNOWN = ("unknown_in_other_failures_file", None, Weight.UNKNOWN)

    def __init__(self, counter: str, retryable: Retryable | None, weight: Weight):
        self.counter, self.retryable, self.weight = counter, retryable, weight

    # Members are singletons: identity hashing is exact, and in C (Enum's own __hash__ is
    # Python code, paid for every row the ledger counts)
    __hash__ = object.__hash__

    @property
    def to_failures_file(self) -> bool:
        return self.retryable is not None


# what a row's final fate is recorded as in the journal (fates absent here write nothing)
JOURNAL_STATE = {Fate.ACCEPTED: RowState.ACCEPTED, Fate.REJECTED: RowState.REJECTED,
                 Fate.FAILED: RowState.RETRYABLE, Fate.NOT_SENT: RowState.RETRYABLE, Fate.UNKNOWN: RowState.UNKNOWN}


def exit_code(counts: Mapping, end: RunEnd | str | None = None) -> ExitCode:
    """The exit code of every command that judges rows. `end`: how the run ended; a stop
    (fatal, a signal) outranks every row, for the run did not finish. `counts`: rows per `Fate`
    (or per `Weight`, for a command whose rows are not a send's: receipts); the heaviest weight
    present decides: not accepted (1), then unknown (4), then deferred (5), else 0."""
    if end is not None:
        stop = _EXIT_OF_STOP.get(RunEnd(end))
        if stop is not None:
            return stop
    present = {getattr(k, "weight", k) for k, n in counts.items() if n}
    for weight in (Weight.NOT_ACCEPTED, Weight.UNKNOWN, Weight.DEFERRED):
        if weight in present:
            return ExitCode(int(weight))
    return ExitCode.OK
