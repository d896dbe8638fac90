"""The adapter interface every provider implements.

An adapter knows one provider API: which config keys it takes, how many numbers fit in one
request, which rows may share a request, how to render and sign a request, and how to read the
answer into one `Outcome` per row. It knows nothing about files, journals, retries or rate
limits: the run (send.py) owns those, so every adapter gets them for free.
"""
from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from collections.abc import Hashable, Iterator
from typing import ClassVar

from ..core.errors import ConfigError
from ..core.settings import ProviderSettings, Template
from ..core.model import Kind, Message, Outcome
from .ratebackend import limiter_for
from .ratelimit import RateLimiter
from .http import Http, RequestFailed

# --- delivery receipts: one vocabulary for every provider -------------------------------------
DELIVERED, FAILED, PENDING = "delivered", "failed", "pending"  # what a provider's report says


@dataclass(frozen=True)
class Sent:
    """A message the provider took (or may have taken, when the answer was lost), as the journal
    keeps it for its receipt."""
    id: tuple[int, int]  # (working set, seq): the journal row
    phone: str  # E.164
    ref: str  # SessionNo / SerialNo / BizId; "" when the answer carrying it was lost
    corr: str  # what went in UserId / SessionContext: the row's user_id, or its key
    key: str  # the row's stable key, <input hash[:12]>-<seq>
    template: str  # "" when the journal does not know it (written by an earlier version)
    sent: float  # unix time its request left


@dataclass(frozen=True)
class Report:
    """One delivery report as a provider's receipt API gave it, in sms-cli's vocabulary."""
    ref: str  # the submission id it belongs to ("" when the API does not say)
    phone: str  # E.164
    status: str  # DELIVERED, FAILED or PENDING
    code: str = ""  # the operator's status code (DELIVRD, UNDELIV, ...)
    message: str = ""  # its text, when the API has one
    received: float | None = None  # unix time of the receipt (the handset got it)
    parts: int | None = None  # billed parts, where the API gives them
    corr: str | None = None  # the correlation field echoed (UserId / SessionContext / OutId); None: absent
    template: str | None = None  # the template id, where the API gives it
    sent: float | None = None  # when the provider says the message was sent, where it does
    raw: str = ""  # the provider's own status value (Success, FAIL, 3, ...)


# --- how a provider's error code is handled: one table of these per adapter -------------------
# The classes, and what the run does with a row that gets one (README "Provider answers"):
ROW = "per row"  # this row refused for good: failures file, never resent by a re-run of the input
BISECT = "bisect"  # the whole request refused for one row in it: split until it stands alone
REQUEST = "request"  # the whole request refused for a reason every row of it shares: failures file
RETRY = "retry"  # nothing was taken: sent again after a backoff, up to max_attempts
FATAL = "fatal"  # the account or credentials: stop the run (exit 3), unsent rows stay pending
UNKNOWN = "unknown"  # may have been taken: unknown (exit 4), settled by receipts, never resent blindly
OPT_OUT = "opt-out"  # the number opted out: failures file and the suppression list (the only class that is)
CLASS_KIND = {ROW: Kind.PERMANENT, BISECT: Kind.PERMANENT, REQUEST: Kind.PERMANENT, RETRY: Kind.RETRYABLE,
              FATAL: Kind.FATAL, UNKNOWN: Kind.UNKNOWN, OPT_OUT: Kind.PERMANENT}


@dataclass(frozen=True)
class Code:
    """One documented error code: its class and, for the failures file, what it means."""
    cls: str
    meaning: str = ""
    say: bool = False  # the reason always carries the meaning (the provider's own text misleads)


class CodeTable:
    """A provider's documented codes -> Code. A key ending in "*" is a dotted family: "Auth*"
    matches Auth and Auth.Anything (the longest wins); a code no page lists gets `default`."""

    def __init__(self, codes: dict[str, Code], default: Code):
        self.exact = {k: v for k, v in codes.items() if not k.endswith("*")}
        self.prefixes = sorted(((k[:-1], v) for k, v in codes.items() if k.endswith("*")),
                               key=lambda kv: -len(kv[0]))
        self.default = default

    def __iter__(self):
        yield from self.exact.items()
        yield from ((k + "*", v) for k, v in self.prefixes)

    def lookup(self, code: str) -> Code:
        found = self.exact.get(code)
        if found is not None:
            return found
        return next((v for k, v in self.prefixes if code == k or code.startswith(k + ".")), self.default)

    def outcome(self, code: str, message: str, *, ref: str = "", request: bool = False) -> Outcome:
        """The Outcome of a row (or, `request`, a whole request) that got `code`; the failures
        file's reason is the provider's message, with what the code means where the page says
        more. A whole request refused with an opt-out code is split like a BISECT one: only the
        row it is about may touch the suppression list."""
        entry = self.lookup(code)
        text = message or entry.meaning
        if entry.meaning and message and (entry.say or entry.cls in (FATAL, UNKNOWN)):
            text = f"{message} ({entry.meaning})"
        return Outcome(CLASS_KIND[entry.cls], code, text, ref=ref,
                       per_number=entry.cls == BISECT or (request and entry.cls == OPT_OUT),
                       opt_out=entry.cls == OPT_OUT)


class ReceiptsUnsupported(Exception):
    """The provider has no receipt API (the outbox): its rows never get a receipt."""


def compact_json(value) -> str:
    """JSON as the providers' request bodies carry it: no spaces, non-ASCII kept as is."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class Provider(ABC):
    type: ClassVar[str]
    description: ClassVar[str] = ""
    config_keys: ClassVar[tuple[str, ...]] = ()  # keys beyond type/endpoint/rate_limit/timeout/max_attempts
    secret_keys: ClassVar[tuple[str, ...]] = ()  # never printed, logged or written
    env_defaults: ClassVar[dict[str, str]] = {}  # key -> conventional environment variable
    required_keys: ClassVar[tuple[str, ...]] = ()
    default_endpoint: ClassVar[str | None] = None
    default_rate_limit: ClassVar[float | None] = None  # requests per second; None = unlimited
    max_batch: ClassVar[int] = 100  # numbers per request
    uses_http: ClassVar[bool] = True
    codes: ClassVar[CodeTable | None] = None  # every documented error code and its class (one table)
    # delivery receipts (sms-cli receipts): whether a message whose answer was lost can be found
    # without its submission id, how far back the receipt API can look, and its documented rate
    has_receipts: ClassVar[bool] = False  # it has a receipt API (receipt_pages)
    finds_lost_answers: ClassVar[bool] = False
    receipt_lookback: ClassVar[float | None] = None  # seconds; None: no documented limit
    default_receipt_rate: ClassVar[float | None] = None  # requests per second; None: the send's rate_limit
    # how long after sending the provider may still be without a report of a message it took:
    # before that, "no record" does not mean "not taken" (config key report_delay overrides it)
    report_delay: ClassVar[float] = 0.0

    def __init__(self, settings: ProviderSettings, templates: dict[str, Template] | None = None,
                 *, concurrency: int = 4, transport=None):
        self.settings = settings
        self.templates = templates or {}
        self.endpoint = settings.endpoint or self.default_endpoint
        # one limiter per provider: the workers reserve slots with it, and Http paces the wire
        self.limiter = limiter_for(self.rate_limit, settings)  # shared through rate_backend, if set
        self.http = (Http(settings, pool_size=concurrency, secrets=settings.secrets, pace=self.limiter.pace,
                          transport=transport) if self.uses_http else None)
        self._receipt_limiter: RateLimiter | None = None  # made when receipts are first asked for
        self._receipt_requests = 0
        self.incomplete: set[str] = set()  # numbers (digits) whose reports could not all be read

    # --- configuration -------------------------------------------------------------------
    @classmethod
    def check_settings(cls, settings: ProviderSettings, where: str) -> None:
        """Reject bad values at config load time (called by config.py)."""

    def missing_settings(self) -> list[str]:
        """Required keys that are not set, each with its environment variable if it has one."""
        return [f"{k} (or ${self.env_defaults[k]})" if k in self.env_defaults else k
                for k in self.required_keys if not self.settings.get(k)]

    def require_settings(self) -> None:
        """Called before sending (validate and dry runs need no credentials)."""
        missing = self.missing_settings()
        if missing:
            raise ConfigError(f"provider {self.settings.name!r}: not set: {', '.join(missing)}")

    @property
    def rate_limit(self) -> float | None:
        rate = self.settings.rate_limit
        return self.default_rate_limit if rate is None else (rate or None)

    @property
    def action(self) -> str:
        return ""

    def describe(self) -> dict[str, object]:
        return {
            "name": self.settings.name, "type": self.type, "endpoint": self.endpoint or "-",
            "action": self.action or "-", "batch_limit": self.max_batch,
            "rate_limit": self.rate_limit or "unlimited",
            "timeout": f"connect {self.settings.connect_timeout:g}s, read {self.settings.read_timeout:g}s",
            "max_attempts": self.settings.max_attempts,
        }

    # --- per row -------------------------------------------------------------------------
    def prepare(self, msg: Message) -> str | None:
        """Provider-specific validation; return a reason to reject the row, or None.

        May normalise `msg` in place (for example named parameters for Aliyun).
        """
        return None

    def to_positional(self, msg: Message) -> str | None:
        """For APIs that take positional parameters: map named ones through the template's
        declared names (in place); return a reason when that is impossible."""
        if not isinstance(msg.params, dict):
            return None
        tpl = self.templates.get(msg.template_id)
        if not tpl or not tpl.names:
            return (f"{self.type} takes positional parameters; named parameters need the template's "
                    "parameter names in config (templates: ID: params: [names])")
        missing = [n for n in tpl.names if n not in msg.params]
        if missing:
            return f"parameter {missing[0]!r} of template {msg.template_id} missing"
        msg.params = [str(msg.params[n]) for n in tpl.names]
        return None

    def batch_key(self, msg: Message) -> Hashable:
        """Rows with equal keys may share one request."""
        return None

    # --- per request ---------------------------------------------------------------------
    def send(self, batch: list[Message]) -> list[Outcome]:
        """Send one request; one Outcome per row of `batch`, in order. Never raises for the
        provider's or the network's failures: they are outcomes."""
        if self.http is not None:
            self.http.local.left = False
        try:
            outcomes = self._send(batch)
        except RequestFailed as exc:
            o = exc.outcome
            return [replace(o, opt_out=self.is_opt_out(o)) if o.kind is Kind.PERMANENT else o] * len(batch)
        except Exception as exc:  # a row the request could not be built from, or an adapter bug
            if self.http is not None and self.http.local.left:
                return [Outcome(Kind.UNKNOWN, "Unknown", f"error after the request was sent: "
                                f"{type(exc).__name__}")] * len(batch)
            # nothing left: split the request so only the row that cannot be sent stays behind
            return [Outcome(Kind.NOT_SENT, "NotSent", f"not sent: the request could not be built "
                            f"({type(exc).__name__})", per_number=True)] * len(batch)
        if len(outcomes) != len(batch):  # a provider bug must not lose rows
            return [Outcome(Kind.UNKNOWN, "BadResponse", "answer did not cover every number")] * len(batch)
        return [replace(o, opt_out=self.is_opt_out(o)) if o.kind is Kind.PERMANENT else o for o in outcomes]

    def is_opt_out(self, outcome: Outcome) -> bool:
        """Does this refusal mean the number opted out? Only the table's opt-out codes say so:
        nothing else may touch the suppression list."""
        return self.codes is not None and self.codes.lookup(outcome.code).cls == OPT_OUT

    def receipt_report_delay(self) -> float:
        """Seconds after sending before a missing report may mean "not taken" (config
        `report_delay` overrides the provider's documented delay)."""
        value = self.settings.get("report_delay")
        if value is None:
            return self.report_delay
        try:
            return max(0.0, float(value))
        except ValueError:
            raise ConfigError(f"provider {self.settings.name!r}: report_delay must be a number of seconds "
                              f"(got {value!r})") from None

    @abstractmethod
    def _send(self, batch: list[Message]) -> list[Outcome]:
        """Build, sign and post one request for `batch`; raise RequestFailed for request-level
        failures."""

    # --- delivery receipts -------------------------------------------------------------------
    @property
    def receipt_rate(self) -> float | None:
        """Receipt queries per second: `receipt_rate_limit` in config (0: unlimited), else the
        API's documented limit, else the send's rate_limit."""
        value = self.settings.get("receipt_rate_limit")
        if value is not None:
            try:
                rate = float(value)
            except ValueError:
                raise ConfigError(f"provider {self.settings.name!r}: receipt_rate_limit must be a number "
                                  f"(got {value!r})") from None
            return rate if rate > 0 else None
        return self.default_receipt_rate if self.default_receipt_rate is not None else self.rate_limit

    @property
    def receipt_limiter(self) -> RateLimiter:
        if self._receipt_limiter is None:
            self._receipt_limiter = RateLimiter(self.receipt_rate)
        return self._receipt_limiter

    @property
    def receipt_requests(self) -> int:
        """Receipt queries this adapter has sent."""
        return self._receipt_requests

    @property
    def receipts_consumed(self) -> bool:
        """Whether a report, once read, cannot be read again (a pull-once queue): the caller must
        keep every report it is handed, its own or not."""
        return False

    def expected_corr(self, row: Sent) -> str | None:
        """What this provider's correlation field held for `row` (None: it carries none), to
        tell a number's messages apart in its reports."""
        return None

    def receipt_pages(self, rows: list[Sent], now: float) -> Iterator[tuple[list[Sent], list[Report]]]:
        """Ask the receipt API about `rows`, one request at a time: yields (the rows that request
        asked about, the reports it returned). A row asked about with no report of its own has
        none yet (or, without a submission id, was not found). Raises RequestFailed for a
        request-level failure (what was yielded before it stands), ReceiptsUnsupported when the
        provider has no receipt API."""
        raise ReceiptsUnsupported(f"{self.type} has no delivery receipts")

    def _receipt_request(self, method: str, url: str, *, body: bytes | None = None,
                         headers: dict[str, str] | None = None, action: str):
        """One receipt query: the receipt API's own rate limit, the send's timeouts, and the same
        reading of failures as a send (a query is safe to repeat, so the caller retries)."""
        self.receipt_limiter.acquire()
        self._receipt_requests += 1
        resp = self.http.request(method, url, body, headers or {}, action=action, count=0, receipts=True)
        if resp.status_code in (401, 403):
            raise RequestFailed(Outcome(Kind.FATAL, f"HTTP{resp.status_code}", "credentials refused"))
        return resp

    def close(self) -> None:
        if self.http is not None:
            self.http.close()
