"""What every dialect of the emulator shares: a request as read off the socket, the reply it
gets, the `Dialect` interface, phone number readings, the delivery simulation's record and the
emulator's default credentials. server.py serves the dialects; each dialect module builds on
this one, so the server can list the dialects without a circle.
"""
from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Any
from urllib.parse import parse_qsl

import phonenumbers

from ..core.errors import SmsCliError


DEFAULT_KEY_ID = "emulator-key"
DEFAULT_KEY_SECRET = "emulator-secret"
FORM = "application/x-www-form-urlencoded"
MAX_BODY = 16 * 1024 * 1024  # bytes; far above any API's request limit
MAX_DEPTH = 32  # nesting of a JSON body or a flattened parameter name; the APIs need 4


class BadRequest(ValueError):
    """The request cannot be read as the API's format: answered HTTP 400 in the API's shape."""


def digits(phone: str) -> str:
    """Any spelling of a number (+852.., (852).., 00852..) -> country code + national digits."""
    phone = phone.strip()
    d = re.sub(r"\D", "", phone)
    if phone.startswith("(00") or phone.startswith("00"):
        d = d[2:]
    return d


@lru_cache(maxsize=None)
def _possible_lengths(cc: int) -> frozenset[int] | None:
    """Lengths a national number of calling code `cc` may have; None for an unknown code."""
    region = phonenumbers.region_code_for_country_code(cc)
    if region == "ZZ":
        return None
    meta = (phonenumbers.PhoneMetadata.metadata_for_nongeo_region(cc) if region == "001"
            else phonenumbers.PhoneMetadata.metadata_for_region(region))
    return frozenset(meta.general_desc.possible_length) if meta and meta.general_desc else None


def possible_e164(e164: str) -> bool:
    """parse_e164(e164) is not None, in a microsecond for the usual number (a 1000-number
    request must not cost the emulator more than the client): a national number of a length
    its country has is possible; anything else takes phonenumbers' full parse."""
    if not isinstance(e164, str) or not re.fullmatch(r"\+[1-9]\d{1,14}", e164):
        return False
    for size in (1, 2, 3):
        lengths = _possible_lengths(int(e164[1:1 + size]))
        if lengths is not None:
            if len(e164) - 1 - size in lengths:
                return True
            break
    return parse_e164(e164) is not None


def parse_e164(e164: str) -> phonenumbers.PhoneNumber | None:
    """`+digits` -> the number when it has a known country code and a length that country's
    numbers can have (phonenumbers' "possible number": the format check the APIs make), else None."""
    if not isinstance(e164, str) or not re.fullmatch(r"\+[1-9]\d{1,14}", e164):
        return None
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return None
    return number if phonenumbers.is_possible_number(number) else None


def load_blacklist(values, flag: str = "--blacklist") -> set[str]:
    """--blacklist values: numbers, comma-separated lists, or @file with one number a line."""
    out: set[str] = set()
    for value in values:
        if value.startswith("@"):
            try:
                with open(value[1:], encoding="utf-8") as fh:
                    out.update(line.strip() for line in fh if line.strip() and not line.startswith("#"))
            except (OSError, UnicodeDecodeError) as exc:
                reason = getattr(exc, "strerror", None) or str(exc)
                raise SmsCliError(f"{flag} {value}: cannot read {value[1:]}: {reason}") from None
        else:
            out.update(v.strip() for v in value.split(",") if v.strip())
    return out


def load_undeliverable(values) -> dict[str, str]:
    """--undeliverable values: NUMBER or NUMBER:CODE (the operator code its receipt carries,
    UNDELIV by default), repeated, comma-separated, or @file with one a line -> digits -> code."""
    out: dict[str, str] = {}
    for value in load_blacklist(values, "--undeliverable"):
        number, _, code = value.partition(":")
        key = digits(number)
        if not key:
            raise SmsCliError(f"--undeliverable {value}: not a phone number")
        out[key] = code.strip() or UNDELIVERABLE_CODE
    return out


# the operator codes of the simulated delivery reports, with their text
DELIVERED_CODE = "DELIVRD"
UNDELIVERABLE_CODE = "UNDELIV"  # --undeliverable without a code
UNDELIVERED_RATE_CODE = "EXPIRED"  # --undelivered-rate
OPTED_OUT_CODE = "BLACKLIST"  # a --blacklist number an API took anyway (Aliyun): its receipt fails
CODE_TEXT = {DELIVERED_CODE: "delivered", UNDELIVERABLE_CODE: "undeliverable: the handset could not be reached",
             UNDELIVERED_RATE_CODE: "expired: not delivered within the validity period",
             "REJECTD": "rejected by the operator: the number is barred"}


@dataclass(frozen=True)
class Delivery:
    """What became of one accepted message (an entry of `Emulator.accepted`)."""
    entry: dict[str, Any]
    delivered: bool
    code: str  # operator code: DELIVRD, or why it failed
    text: str
    at: float  # unix time its delivery report exists from
    parts: int  # billed parts

    @property
    def phone(self) -> str:
        return self.entry["phone"]

    def ready(self, now: float) -> bool:
        return now >= self.at


def _too_deep(value: Any) -> bool:
    """Is parsed JSON nested deeper than MAX_DEPTH? (Without recursion; leaves are not visited.)"""
    stack = [(value, 1)] if isinstance(value, (list, dict)) else []
    while stack:
        node, level = stack.pop()
        if level > MAX_DEPTH:
            return True
        stack.extend((child, level + 1) for child in (node.values() if isinstance(node, dict) else node)
                     if isinstance(child, (list, dict)))
    return False


def _pairs(text: str, where: str) -> dict[str, str]:
    """Percent-encoded `k=v&...` -> dict; an escape that is not UTF-8 is a BadRequest (it
    could never have been signed as the same text)."""
    try:
        return dict(parse_qsl(text, keep_blank_values=True, errors="strict"))
    except UnicodeDecodeError:
        raise BadRequest(f"{where} holds a percent-escape that is not UTF-8") from None


@dataclass
class Request:
    method: str
    target: str  # as on the request line: path and query
    headers: dict[str, str]  # lower-case names
    body: bytes

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    @property
    def raw_query(self) -> str:
        return self.target.partition("?")[2]

    @cached_property
    def query(self) -> dict[str, str]:
        return _pairs(self.raw_query, "query")

    @cached_property
    def form(self) -> dict[str, str]:
        """The body's parameters when it is form-encoded, else {}."""
        if not self.headers.get("content-type", "").lower().startswith(FORM) or not self.body:
            return {}
        try:
            text = self.body.decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest("form body is not UTF-8") from None
        return _pairs(text, "form body")

    @cached_property
    def params(self) -> dict[str, str]:
        """Query and form parameters together (the body wins, as the SDKs sign them)."""
        try:
            form = self.form
        except BadRequest:
            form = {}
        return {**self.query, **form}

    def json(self) -> Any:
        try:
            value = json.loads(self.body.decode("utf-8"))
        except RecursionError:
            raise BadRequest(f"JSON body nested deeper than {MAX_DEPTH} levels") from None
        except (UnicodeDecodeError, ValueError) as exc:
            raise BadRequest(f"body is not JSON: {exc}") from None
        if _too_deep(value):
            raise BadRequest(f"JSON body nested deeper than {MAX_DEPTH} levels")
        return value


@dataclass
class Reply:
    status: int
    body: bytes
    content_type: str = "application/json"
    accepted: list[dict[str, Any]] = field(default_factory=list)  # log entries
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, obj: Any, accepted=None, headers=None) -> "Reply":
        return cls(status, json.dumps(obj, ensure_ascii=False).encode("utf-8"),
                   accepted=accepted or [], headers=headers or {})


class Dialect(ABC):
    """One provider API. Adding one is a module with a Dialect subclass and a line in
    server.py's DIALECTS."""

    name = "base"

    def __init__(self, emulator):  # server.Emulator: its options, log, deliveries and lock
        self.emu = emulator

    @abstractmethod
    def matches(self, req: Request) -> bool:
        """Is this request for this dialect? (Cheap: headers, path, parameter names.)"""

    @abstractmethod
    def handle(self, req: Request) -> Reply:
        """Verify and answer the request; accepted messages go in Reply.accepted. May raise
        BadRequest for a body it cannot read."""

    def throttled(self, req: Request) -> Reply:
        return Reply.json(429, {"Message": "throttled"}, headers={"Retry-After": "0"})

    def malformed(self, req: Request, message: str) -> Reply:
        """HTTP 400 for a request that cannot be read, in this API's error shape."""
        return Reply.json(400, {"Message": message})

    def server_error(self, req: Request) -> Reply:
        """The provider's own server error (given after the request was processed)."""
        return Reply.json(500, {"Message": "internal error"})
