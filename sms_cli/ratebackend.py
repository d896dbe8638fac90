"""A rate limit shared through Redis by every process that sends through one account.

`rate_backend: redis://HOST:PORT/DB` in a provider section. The provider's limit (Tencent: 10
requests/s per account, /work/shared/specs/auth-and-limits.md) holds for the account, not for
one process: four shards on four machines must share it. The window lives in Redis through the
maintained `limits` library (its moving window: a list of the last `rate` request times per
key, checked and pushed in one server-side script), so no hand-written Lua here. A moving window
is the provider's own rule ("no more than N in any second"), where a fixed window would let 2N
through across a window's edge.

Each process still spaces its own requests 1/rate apart (the local RateLimiter), so the shared
window is filled evenly rather than in bursts of `rate` at once.

The window's timestamps are the senders' clocks (limits stamps each hit with time.time()):
processes on several machines need clocks kept in step (NTP); a skew of d seconds lets at most
the requests of d seconds' worth through early.

Redis unreachable at the start: `start()` raises ConfigError (exit 2, nothing sent). Lost
mid-run: `acquire()` raises RateBackendLost, the dispatcher stops the run as fatal (exit 3) and
settles the rows it did not send as not sent.
"""
from __future__ import annotations

import hashlib
import math
import threading
import time
from urllib.parse import urlsplit

from .errors import ConfigError, ExitCode, SmsCliError
from .ratelimit import RateLimiter

SOCKET_TIMEOUT = 2.0  # seconds: a Redis that does not answer in this is lost
MAX_POLL = 0.25  # seconds: longest wait between two tries for a slot


class RateBackendLost(SmsCliError):
    """The shared rate limit's Redis stopped answering: nothing more may be sent by this process."""

    exit_code = ExitCode.FATAL


def shown(url: str) -> str:
    """The URL without its password, for messages."""
    u = urlsplit(url)
    port = f":{u.port}" if u.port else ""
    return f"{u.scheme}://{u.hostname}{port}{u.path}"


def window(rate: float) -> tuple[int, int]:
    """(requests, seconds) of the moving window for `rate` requests/s, never above the rate:
    10.5/s -> 10 per second; 0.4/s -> 1 per 3 seconds."""
    if rate >= 1:
        return int(rate), 1
    return 1, math.ceil(1 / rate)


class SharedRateLimiter(RateLimiter):
    def __init__(self, rate: float, url: str, account: str):
        super().__init__(rate)
        self.url = url
        # the key names the account (type, endpoint, account id) without holding any of it in clear
        self.key = hashlib.blake2b(account.encode(), digest_size=12).hexdigest()
        self._strategy = self._item = None
        self._lock_start = threading.Lock()

    def start(self) -> None:
        """Connect and check Redis answers; refuse to start otherwise (exit 2)."""
        with self._lock_start:
            if self._strategy is not None:
                return
            try:
                from limits import RateLimitItemPerSecond, storage, strategies
            except ImportError:
                raise ConfigError("rate_backend needs the redis extra: pip install 'sms-cli[redis]'") from None
            try:
                store = storage.storage_from_string(
                    self.url, socket_timeout=SOCKET_TIMEOUT, socket_connect_timeout=SOCKET_TIMEOUT,
                    wrap_exceptions=True)
                ok = store.check()
            except Exception as exc:  # a bad URL for redis-py, a missing driver
                raise ConfigError(f"rate_backend {shown(self.url)}: {type(exc).__name__}: {exc}") from None
            if not ok:
                raise ConfigError(f"rate_backend {shown(self.url)}: Redis does not answer; nothing was sent")
            amount, seconds = window(1 / self.interval)
            self._item = RateLimitItemPerSecond(amount, seconds)
            self._strategy = strategies.MovingWindowRateLimiter(store)

    def acquire(self, stop: threading.Event | None = None) -> bool:
        if not super().acquire(stop):  # this process's own spacing first
            return False
        self.start()
        while True:
            try:
                if self._strategy.hit(self._item, "sms-cli", self.key):
                    return True
                reset = self._strategy.get_window_stats(self._item, "sms-cli", self.key).reset_time
            except Exception as exc:  # limits' StorageError, or the driver's own
                raise RateBackendLost(f"rate_backend {shown(self.url)} was lost mid-run "
                                      f"({type(exc).__name__}); this process stopped sending") from None
            # the oldest request in the window leaves it at `reset`: try again then
            wait = min(MAX_POLL, max(0.001, reset - time.time()))
            if stop is None:
                time.sleep(wait)
            elif stop.wait(wait):
                return False
