"""The adapter interface every provider implements.

An adapter knows one provider API: which config keys it takes, how many numbers fit in one
request, which rows may share a request, how to render and sign a request, and how to read the
answer into one `Outcome` per row. It knows nothing about files, journals, retries or rate
limits: the run (send.py) owns those, so every adapter gets them for free.
"""
from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import replace
from collections.abc import Hashable
from typing import ClassVar

from ..config import ConfigError, ProviderSettings, Template
from ..model import Kind, Message, Outcome
from ..ratelimit import RateLimiter
from .http import Http, RequestFailed


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
    opt_out_codes: ClassVar[frozenset[str]] = frozenset()  # codes that mean "opted out / blacklisted"

    def __init__(self, settings: ProviderSettings, templates: dict[str, Template] | None = None,
                 *, concurrency: int = 4):
        self.settings = settings
        self.templates = templates or {}
        self.endpoint = settings.endpoint or self.default_endpoint
        # one limiter per provider: the workers reserve slots with it, and Http paces the wire
        self.limiter = RateLimiter(self.rate_limit)
        self.http = (Http(settings, pool_size=concurrency, secrets=settings.secrets, pace=self.limiter.pace)
                     if self.uses_http else None)

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
            return [replace(o, opt_out=True) if o.kind is Kind.PERMANENT and self.is_opt_out(o) else o] * len(batch)
        except Exception as exc:  # a row the request could not be built from, or an adapter bug
            if self.http is not None and self.http.local.left:
                return [Outcome(Kind.UNKNOWN, "Unknown", f"error after the request was sent: "
                                f"{type(exc).__name__}")] * len(batch)
            # nothing left: split the request so only the row that cannot be sent stays behind
            return [Outcome(Kind.NOT_SENT, "NotSent", f"not sent: the request could not be built "
                            f"({type(exc).__name__})", per_number=True)] * len(batch)
        if len(outcomes) != len(batch):  # a provider bug must not lose rows
            return [Outcome(Kind.UNKNOWN, "BadResponse", "answer did not cover every number")] * len(batch)
        return [replace(o, opt_out=True) if o.kind is Kind.PERMANENT and self.is_opt_out(o) else o
                for o in outcomes]

    def is_opt_out(self, outcome: Outcome) -> bool:
        """Does this refusal mean the number opted out or is on the provider's black list?"""
        return outcome.code in self.opt_out_codes

    @abstractmethod
    def _send(self, batch: list[Message]) -> list[Outcome]:
        """Build, sign and post one request for `batch`; raise RequestFailed for request-level
        failures."""

    def close(self) -> None:
        if self.http is not None:
            self.http.close()
