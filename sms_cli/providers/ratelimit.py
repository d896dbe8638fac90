"""Requests-per-second limit shared by every worker of a run."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable



class RateLimiter:
    """Spaces requests at least 1/rate seconds apart across all threads (no bursts), so any
    one-second window holds at most `rate` request starts plus the one at its edge."""

    def __init__(self, rate: float | None, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.interval = 1.0 / rate if rate else 0.0
        self.clock, self.sleep = clock, sleep
        self._next = 0.0
        self._last_wire = float("-inf")
        self._lock = threading.Lock()

    def start(self) -> None:
        """Called before a send's first request: a shared limiter checks its backend answers."""

    def reserve(self) -> float:
        """Claim the next slot; return how long the caller must wait for it."""
        if not self.interval:
            return 0.0
        with self._lock:
            now = self.clock()
            slot = max(now, self._next)
            self._next = slot + self.interval
            return slot - now

    def acquire(self, stop: threading.Event | None = None) -> bool:
        """Wait for a slot; False if `stop` was set while waiting."""
        wait = self.reserve()
        if wait <= 0:
            return not (stop and stop.is_set())
        if stop is None:
            self.sleep(wait)
            return True
        return not stop.wait(wait)

    def pace(self) -> None:
        """Called just before a request goes on the wire: keeps actual sends at least 1/rate
        apart even when a request left late for its slot (a first connection, a busy CPU), so
        the provider never sees two requests bunched together."""
        if not self.interval:
            return
        with self._lock:
            now = self.clock()
            wait = max(0.0, self._last_wire + self.interval - now)
            self._last_wire = now + wait
        if wait > 0:
            self.sleep(wait)
