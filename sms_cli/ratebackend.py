"""A rate limit shared through Redis by every process that sends through one account.

`rate_backend: redis://HOST:PORT/DB` in a provider section. The provider's limit (Tencent: 10
requests/s per account, /work/shared/specs/auth-and-limits.md) holds for the account, not for
one process: four shards on four machines must share it.

The rule is GCRA with no burst: the account's next free slot (its "theoretical arrival time")
lives in one Redis key, and a request takes the slot max(now, next) and moves next on by
1/rate, so the account's requests leave 1/rate apart whichever process sends them. The clock is
Redis's own (TIME), so senders on several machines need no agreement between their clocks.
The read-and-move is an optimistic transaction (WATCH/MULTI/EXEC, redis-py's pipeline): no
hand-written Lua, and a process that loses a race simply reads again.

Why not the `limits` library's moving window (tried first): it lets `rate` requests through at
once whenever the window has room, and a burst of ten requests that leave within milliseconds
of each other reaches the provider spread by the senders' scheduling jitter. Measured with four
shards on this 2-core machine, the emulator saw 14 and 15 requests in a 0.95 s window at a
limit of 10. Spaced slots keep every window at the limit unless jitter exceeds 1/rate.

A request waits for its slot in two steps: acquire() (before the journal records the request)
waits until the account's next slot is at most one interval away, then pace() (called by Http
just before the request goes on the wire) takes the slot and sleeps until it: the journal's
write never delays a counted request, and a kill rarely finds a journalled request still waiting.

Redis unreachable at the start: `start()` raises ConfigError (exit 2, nothing sent). Lost
mid-run: the request waiting for its slot is answered FATAL before it leaves, so the dispatcher
stops the run (exit 3) and every row it did not send is filed as not sent.
"""
from __future__ import annotations

import hashlib
import threading
import time
from urllib.parse import urlsplit

from .errors import ConfigError
from .ratelimit import RateLimiter

SOCKET_TIMEOUT = 2.0  # seconds: a Redis that does not answer in this is lost
MAX_POLL = 0.25  # seconds: longest wait before acquire() looks at the account's next slot again


def shown(url: str) -> str:
    """The URL without its password, for messages."""
    u = urlsplit(url)
    port = f":{u.port}" if u.port else ""
    return f"{u.scheme}://{u.hostname}{port}{u.path}"


class SharedRateLimiter(RateLimiter):
    def __init__(self, rate: float, url: str, account: str):
        super().__init__(rate)
        self.url = url
        # the key names the account (type and account id) without holding either in clear
        self.key = "sms-cli:next-slot:" + hashlib.blake2b(account.encode(), digest_size=12).hexdigest()
        self._redis = None
        self._lock_start = threading.Lock()
        self._waiting = threading.local()  # .stop: the run's stop event, seen by this worker's acquire

    def start(self) -> None:
        """Connect and check Redis answers; refuse to start otherwise (exit 2)."""
        with self._lock_start:
            if self._redis is not None:
                return
            try:
                import redis
            except ImportError:
                raise ConfigError("rate_backend needs the redis extra: pip install 'sms-cli[redis]'") from None
            try:
                client = redis.Redis.from_url(self.url, socket_timeout=SOCKET_TIMEOUT,
                                              socket_connect_timeout=SOCKET_TIMEOUT)
                client.ping()
            except Exception as exc:  # refused, timed out, a bad password, a bad URL for redis-py
                raise ConfigError(f"rate_backend {shown(self.url)}: Redis does not answer ({type(exc).__name__}); "
                                  "nothing was sent") from None
            self._redis = client

    def _slot(self, take: bool) -> float:
        """Seconds until the account's next free slot (0: free now). With `take`, the slot is
        taken (next moves on by one interval) and the caller must send when the wait is over."""
        import redis

        with self._redis.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(self.key)
                    sec, usec = pipe.time()
                    now = sec + usec / 1e6
                    value = pipe.get(self.key)
                    slot = max(now, float(value) if value else 0.0)
                    if not take:
                        pipe.unwatch()
                        return slot - now
                    pipe.multi()
                    # the key outlives its slot by a minute, so an idle account leaves nothing behind
                    pipe.set(self.key, repr(slot + self.interval), px=int((slot - now + self.interval) * 1000) + 60_000)
                    pipe.execute()
                    return slot - now
                except redis.WatchError:  # another process took a slot meanwhile: read again
                    continue

    def acquire(self, stop: threading.Event | None = None) -> bool:
        self._waiting.stop = stop
        if not super().acquire(stop):  # this process's own spacing first
            return False
        self.start()
        while True:
            try:
                ahead = self._slot(take=False)
            except Exception:  # Redis lost: pace() answers the request FATAL before it leaves
                return True
            if ahead <= self.interval:
                return True
            if self._sleep(min(MAX_POLL, ahead - self.interval), stop):
                return False

    def _sleep(self, wait: float, stop: threading.Event | None) -> bool:
        """True when the run was stopped meanwhile."""
        if stop is None:
            time.sleep(wait)
            return False
        return stop.wait(wait)

    def pace(self) -> None:
        """Take the account's next slot and wait for it; then the request leaves at once. Redis
        lost: the request is refused as FATAL (not sent: the dispatcher stops the run, exit 3,
        and the ledger files the rows as not sent, safe to send again)."""
        from .model import Kind, Outcome
        from .providers.http import RequestFailed

        self.start()
        try:
            wait = self._slot(take=True)
        except Exception as exc:  # the driver's ConnectionError, TimeoutError...
            raise RequestFailed(Outcome(Kind.FATAL, "RateBackendLost", (
                f"rate_backend {shown(self.url)} was lost mid-run ({type(exc).__name__}); this process "
                "stopped sending"))) from None
        if wait > 0:
            # a slot once taken is kept even when the run stops meanwhile: the provider has not
            # seen the request, so the rows are not sent, and the slot is only left unused
            if self._sleep(wait, getattr(self._waiting, "stop", None)):
                raise RequestFailed(Outcome(Kind.NOT_SENT, "NotSent", "not sent: the run stopped"))
