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

A worker takes its slot (one interval ahead at least) in acquire() and sleeps until LEAD before it, so
the journal's write and the request's building happen before the slot, and pace() (just before
the wire) releases it on the slot: a killed process leaves as unknown only the requests truly in
flight or within LEAD of leaving, never the ones still waiting for a slot.

Redis unreachable at the start: `start()` raises ConfigError (exit 2, nothing sent). Lost
mid-run: the request waiting for its slot is answered FATAL before it leaves, so the dispatcher
stops the run (exit 3) and every row it did not send is filed as not sent.
"""
from __future__ import annotations

import hashlib
import threading
import time
from urllib.parse import urlsplit

from ..core.errors import ConfigError
from ..core.model import Kind, Outcome
from .http import RequestFailed
from .ratelimit import RateLimiter

ACCOUNT_KEYS = ("account_id", "sms_sdk_app_id", "access_key_id")  # what names the account a limit is for


def limiter_for(rate: float | None, settings) -> RateLimiter:
    """The limiter of a provider section: shared through `rate_backend` when it has one (every
    process sending through the same account shares one sequence of slots), this process's
    own otherwise."""
    backend = getattr(settings, "rate_backend", None)
    if not backend or not rate:
        return RateLimiter(rate)
    account = next((settings.get(k) for k in ACCOUNT_KEYS if settings.get(k)), "")
    return SharedRateLimiter(rate, backend, f"{settings.type}|{account}")

SOCKET_TIMEOUT = 2.0  # seconds: a Redis that does not answer in this is lost
# Slots are 5% further apart than 1/rate (10/s: 9.52/s at most): a provider counts requests as
# they arrive, and two requests ten slots apart reach it up to (0.05 + 1.0 * MARGIN) s closer
# together than they left without a 0.95 s window seeing eleven: room for the senders' jitter
# (a busy CPU, a first connection). Without it, four shards on this 2-core machine showed 11.
MARGIN = 0.05
# A worker wakes LEAD before its slot (a slot is one interval ahead at least): the journal's
# write and the request's building happen in that time, so the request leaves on its slot rather
# than after them (a first request's connection and a busy CPU delayed some by 0.2 s at the start).
LEAD = 0.25
LATE = 0.04  # seconds: a request this late for its slot takes another one


def shown(url: str) -> str:
    """The URL without its password, for messages."""
    u = urlsplit(url)
    port = f":{u.port}" if u.port else ""
    return f"{u.scheme}://{u.hostname}{port}{u.path}"


class SharedRateLimiter(RateLimiter):
    def __init__(self, rate: float, url: str, account: str):
        super().__init__(rate)
        self.interval *= 1 + MARGIN
        self.url = url
        # the key names the account (type and account id) without holding either in clear
        self.key = "sms-cli:next-slot:" + hashlib.blake2b(account.encode(), digest_size=12).hexdigest()
        self._redis = None
        self._lock_start = threading.Lock()
        self._waiting = threading.local()  # .lost: this worker's acquire() could not reach Redis

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
        """Seconds until the account's next free slot (one interval at least). With `take`, the slot is
        taken (next moves on by one interval) and the caller must send when the wait is over."""
        import redis

        with self._redis.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(self.key)
                    sec, usec = pipe.time()
                    now = sec + usec / 1e6
                    value = pipe.get(self.key)
                    # one interval ahead at least: time to prepare even the first request of an idle
                    # account, and never more than 1/rate of delay per request
                    slot = max(now + self.interval, float(value) if value else 0.0)
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
        """Take the account's next slot and wait until LEAD before it (at once when it is nearer);
        False: the run stopped meanwhile (the slot is left unused). Redis lost: True, and pace()
        refuses the request before it leaves."""
        self.start()
        try:
            wait = self._slot(take=True)
        except Exception as exc:  # the driver's ConnectionError, TimeoutError...
            self._waiting.lost = exc
            return True
        self._waiting.due = time.monotonic() + wait
        early = max(0.0, wait - LEAD)
        if stop is None:
            time.sleep(early)
            return True
        return not stop.wait(early)

    def pace(self) -> None:
        """Called by Http just before the request goes on the wire (the journal has recorded it
        and the request is built): wait for the slot taken in acquire(), then let it go. If
        Redis was lost there, the request is refused as FATAL (not sent: the dispatcher stops
        the run, exit 3, and the ledger files the rows as not sent)."""
        lost = getattr(self._waiting, "lost", None)
        due, self._waiting.due, self._waiting.lost = getattr(self._waiting, "due", None), None, None
        if due is not None and due - time.monotonic() < -LATE:
            # it missed its slot (a busy CPU): leaving now would bunch it with the requests of
            # the next slots, so it takes the next free slot instead and the missed one stays unused
            try:
                due = time.monotonic() + self._slot(take=True)
            except Exception as exc:
                lost = exc
        if lost is not None:
            raise RequestFailed(Outcome(Kind.FATAL, "RateBackendLost", (
                f"rate_backend {shown(self.url)} was lost mid-run ({type(lost).__name__}); this process "
                "stopped sending")))
        if due is not None:
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
