"""The values that flow through a run: validated messages and per-row outcomes.

Everything here is a plain value so the reader, validator, batcher, adapters, journal and
failures writer can be tested on their own.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Message:
    """A row that passed validation and may be sent.

    `seq` is the row's 0-based position among the input's rows; with the input's content hash it
    identifies the row across re-runs (the journal's key). `record` is the row as it was read,
    kept so a failure can be written back in the input's own shape.
    """

    seq: int
    line: int
    phone: str  # E.164, e.g. "+85255311111"
    country_code: int  # 852
    national: str  # "55311111"
    template_id: str
    params: list[str] | dict[str, str]
    sender_id: str | None = None
    extend_code: str | None = None
    user_id: str | None = None
    key: str = ""  # stable correlation key, used as UserId / SessionContext when user_id is empty
    record: dict[str, Any] = field(default_factory=dict)

    @property
    def correlation(self) -> str:
        return self.user_id or self.key


class Kind(str, enum.Enum):
    """How a provider answered for one row."""

    ACCEPTED = "accepted"
    PERMANENT = "permanent"  # rejected; sending it again will not help
    RETRYABLE = "retryable"  # not taken, safe to send again (never reached, throttled, busy)
    FATAL = "fatal"  # credentials/account problem: the whole run must stop
    UNKNOWN = "unknown"  # the request may have been taken but no answer was read


@dataclass(frozen=True, slots=True)
class Outcome:
    kind: Kind
    code: str = ""
    message: str = ""
    ref: str = ""  # provider submission id: SessionNo, SerialNo, BizId
    retry_after: float | None = None  # seconds, from Retry-After or the provider
    # A refusal of the whole request whose cause is one number in it (a blacklisted or
    # malformed number, a per-number cap): nothing was sent, so the dispatcher splits the
    # request until the culprits stand alone and the other numbers go through.
    per_number: bool = False

    @property
    def accepted(self) -> bool:
        return self.kind is Kind.ACCEPTED


ACCEPTED = Outcome(Kind.ACCEPTED)


def mask_phone(phone: str) -> str:
    """All but the last four digits hidden, for logs."""
    if len(phone) <= 4:
        return "*" * len(phone)
    return "*" * (len(phone) - 4) + phone[-4:]
