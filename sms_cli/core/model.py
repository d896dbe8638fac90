"""The values that flow through a run: validated messages and per-row outcomes.

Everything here is a plain value so the reader, validator, batcher, adapters, journal and
failures writer can be tested on their own.
"""
from __future__ import annotations

import enum
import hashlib
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
    set_id: int = 0  # the ledger's working set this row belongs to (with seq: the row's identity)
    digest: int = 0  # message_key(): what the message is, for --dedupe and edited inputs
    # routes (routes.py): the row's route, the provider section it goes to now, and the copy of
    # it that provider's adapter sends (its template id and params); None without routes
    route: str | None = None
    provider: str | None = None
    wire: "Message | None" = None

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
    NOT_SENT = "not_sent"  # the request failed locally before it left: safe to send again


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
    opt_out: bool = False  # the number opted out or is blacklisted: the suppression list learns it

    @property
    def accepted(self) -> bool:
        return self.kind is Kind.ACCEPTED


ACCEPTED = Outcome(Kind.ACCEPTED)


def message_key(phone: str, template_id: str, params) -> int:
    """A 64-bit digest of what a message is (recipient, template, parameters), whatever the
    spelling of the row: two rows with equal keys would put the same text on the same handset."""
    # separators no row would contain: cheaper than JSON on the hot path; a clash could only
    # make two different messages look alike (one skipped by --dedupe), never send one twice
    if params.__class__ is list:
        body = "\x1f".join(params)
    elif isinstance(params, dict):
        body = "\x1e".join(f"{k}\x1d{v}" for k, v in sorted(params.items()))
    else:
        body = str(params)
    text = f"{phone}\x1c{template_id}\x1c{body}"
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest(),
                          "big", signed=True)  # SQLite integers are signed 64-bit


def mask_phone(phone: str) -> str:
    """All but the last four digits hidden, for logs."""
    if len(phone) <= 4:
        return "*" * len(phone)
    return "*" * (len(phone) - 4) + phone[-4:]
