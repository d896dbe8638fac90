"""The one vocabulary for how a row ends, and what each ending means everywhere else.

Every row of a run ends as exactly one `Fate`. The table below is the only place that says
what a fate writes to the failures file (its retryable flag), which summary counter it adds
to, and how it weighs on the exit code; the journal states live beside it. Nothing else in the
code spells "yes"/"no"/"unknown" or picks an exit code.
"""
from __future__ import annotations

import enum

from .errors import ExitCode

# journal states of a row (the ledger's record; rows absent from it were never sent)
INFLIGHT, ACCEPTED, FAILED, RETRY, UNKNOWN = "inflight", "accepted", "failed", "retry", "unknown"
# a row the provider accepted whose delivery receipt says it never reached the handset (set by
# `sms-cli receipts`): like FAILED, resent only from a failures file, never by a re-run of the input
UNDELIVERED = "undelivered"


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
    INVALID = ("invalid", "no", Weight.NOT_ACCEPTED)  # failed validation, never sent
    REJECTED = ("rejected", "no", Weight.NOT_ACCEPTED)  # the provider refused it for good
    FAILED = ("failed", "yes", Weight.NOT_ACCEPTED)  # transient failures outlasted max_attempts
    NOT_SENT = ("not_sent", "yes", Weight.NOT_ACCEPTED)  # the run stopped, or it failed before leaving
    SKIPPED = ("skipped", "no", Weight.NOT_ACCEPTED)  # --only-retryable left a non-retryable row
    SUPPRESSED = ("suppressed", "no", Weight.NOT_ACCEPTED)  # on the suppression list (opted out)
    COUNTRY = ("country_not_allowed", "no", Weight.NOT_ACCEPTED)  # outside the allowed countries
    EXPIRED = ("expired", "no", Weight.NOT_ACCEPTED)  # not sent within --valid-for
    UNKNOWN = ("unknown", "unknown", Weight.UNKNOWN)  # may have been taken; never resent by itself
    DEFERRED = ("deferred", "yes", Weight.DEFERRED)  # --limit reached: a later run sends it
    QUIET = ("quiet_hours", "yes", Weight.DEFERRED)  # quiet hours where the recipient is

    def __init__(self, counter: str, retryable: str | None, weight: Weight):
        self.counter, self.retryable, self.weight = counter, retryable, weight

    # Members are singletons: identity hashing is exact, and in C (Enum's own __hash__ is
    # Python code, paid for every row the ledger counts)
    __hash__ = object.__hash__

    @property
    def to_failures_file(self) -> bool:
        return self.retryable is not None


# what a row's final fate is recorded as in the journal (fates absent here write nothing)
JOURNAL_STATE = {Fate.ACCEPTED: ACCEPTED, Fate.REJECTED: FAILED, Fate.FAILED: RETRY,
                 Fate.NOT_SENT: RETRY, Fate.UNKNOWN: UNKNOWN}


def exit_code(counts, stopped: str | None) -> ExitCode:
    """`counts`: fate -> rows. A stop outranks every row: the run did not finish."""
    if stopped == "fatal":
        return ExitCode.FATAL
    if stopped == "SIGINT":
        return ExitCode.SIGINT
    if stopped == "SIGTERM":
        return ExitCode.SIGTERM
    present = [f.weight for f, n in counts.items() if n]
    for weight in (Weight.NOT_ACCEPTED, Weight.UNKNOWN, Weight.DEFERRED):
        if weight in present:
            return ExitCode(int(weight))
    return ExitCode.OK
