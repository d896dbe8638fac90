"""HTTP for adapters: pooled connections, timeouts, and the one place that decides whether a
failed request may have reached the provider.

The rule that keeps sms-cli from sending twice: an error before the request left (connection
refused, connect timeout, DNS) is RETRYABLE, and so is HTTP 429 (the providers document it as
"nothing taken"); anything after it may have left (read timeout, connection dropped
mid-response, any HTTP 5xx) is UNKNOWN and is never resent automatically. auth-and-limits.md
(corrected): "A server error (215400, HTTP 5xx) or a lost answer after the request was sent does
NOT say whether the messages were taken"; Aliyun: "isp.SYSTEM_ERROR, HTTP 5xx ... outcome unknown".

The wire itself is a `transport`: a callable (method, url, body, headers, timeout) -> an answer
with `status_code`, `headers` and `content` (a requests.Response), raising a
requests.RequestException when the exchange fails. The default is a pooled requests session;
tests pass a scripted one to run the dispatcher in-process without a server or a sleep.
"""
from __future__ import annotations

import email.utils
import logging
import threading
import time

import requests
import urllib3.exceptions as u3

from ..core.model import Kind, Outcome

log = logging.getLogger("sms_cli.http")

_NEVER_LEFT = (u3.NewConnectionError, u3.ConnectTimeoutError, u3.NameResolutionError)


class RequestFailed(Exception):
    """A request-level failure; every row of the request gets `outcome`."""

    def __init__(self, outcome: Outcome):
        super().__init__(outcome.code)
        self.outcome = outcome


def retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _never_left(exc: BaseException) -> bool:
    seen: set[int] = set()
    stack: list[object] = [exc]
    while stack:
        e = stack.pop()
        if id(e) in seen or not isinstance(e, BaseException):
            continue
        seen.add(id(e))
        if isinstance(e, _NEVER_LEFT):
            return True
        stack.extend([getattr(e, "reason", None), e.__cause__, e.__context__, *e.args])
    return False


def classify_exception(exc: requests.RequestException) -> Outcome:
    if isinstance(exc, requests.ConnectTimeout) or _never_left(exc):
        return Outcome(Kind.RETRYABLE, "ConnectionFailed", "could not connect; request not sent")
    if isinstance(exc, requests.exceptions.SSLError):
        return Outcome(Kind.FATAL, "TLSError", "TLS handshake failed")
    if isinstance(exc, requests.ReadTimeout):
        return Outcome(Kind.UNKNOWN, "Unknown", "read timeout after the request was sent")
    return Outcome(Kind.UNKNOWN, "Unknown", f"connection lost after the request was sent ({type(exc).__name__})")


def classify_status(status: int, headers) -> Outcome | None:
    """Outcome for HTTP statuses that mean the same for every provider, else None."""
    if status == 429:  # throttled before anything was taken
        return Outcome(Kind.RETRYABLE, f"HTTP{status}", f"HTTP {status}",
                       retry_after=retry_after(headers.get("Retry-After")))
    if status == 504:
        return Outcome(Kind.UNKNOWN, "Unknown", "HTTP 504 gateway timeout: the request may have been taken")
    if status >= 500:  # a server error after the request arrived: it may have taken the messages
        return Outcome(Kind.UNKNOWN, f"HTTP{status}", f"HTTP {status} server error after the request was "
                       "sent: the provider may have taken it (settle with sms-cli receipts)")
    return None


class SessionTransport:
    """The default transport: one pooled requests session per adapter."""

    def __init__(self, pool_size: int):
        self.session = requests.Session()
        adapter = requests.adapters.HTTPAdapter(pool_connections=2, pool_maxsize=max(2, pool_size + 1),
                                                max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.trust_env = False  # proxies from the environment must not see message bodies

    def __call__(self, method: str, url: str, body: bytes | None, headers: dict[str, str], timeout):
        resp = self.session.request(method, url, data=body, headers=headers, timeout=timeout)
        _ = resp.content  # read the whole body here: a drop while reading is the caller's UNKNOWN
        return resp

    def close(self) -> None:
        self.session.close()


class Http:
    def __init__(self, settings, *, pool_size: int = 4, secrets=frozenset(), pace=None, transport=None):
        self.timeout = (settings.connect_timeout, settings.read_timeout)
        self.provider = settings.name
        self.transport = transport if transport is not None else SessionTransport(pool_size)
        self.pace = pace  # the rate limiter's last word before a request leaves
        self.local = threading.local()  # .left: this thread's request went on the wire

    def post(self, url: str, body: bytes, headers: dict[str, str], *, action: str, count: int):
        """POST; return the response for statuses the adapter should read, else raise
        RequestFailed with the classified outcome."""
        if self.pace is not None:
            self.pace()
        return self.request("POST", url, body, headers, action=action, count=count)

    def request(self, method: str, url: str, body: bytes | None, headers: dict[str, str], *, action: str,
                count: int, receipts: bool = False):
        """One exchange through the transport (a receipt query is paced by its own limiter)."""
        started = time.monotonic()
        if not receipts:
            self.local.left = True
        try:
            resp = self.transport(method, url, body, headers, self.timeout)
        except requests.RequestException as exc:
            outcome = classify_exception(exc)
            log.info("%s %s n=%d -> %s in %.0fms", self.provider, action, count, outcome.code,
                     (time.monotonic() - started) * 1000)
            raise RequestFailed(outcome) from None
        log.info("%s %s n=%d -> HTTP %d in %.0fms", self.provider, action, count, resp.status_code,
                 (time.monotonic() - started) * 1000)
        outcome = classify_status(resp.status_code, resp.headers)
        if outcome is not None:
            raise RequestFailed(outcome)
        return resp

    def close(self) -> None:
        close = getattr(self.transport, "close", None)
        if close is not None:
            close()
