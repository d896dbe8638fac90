"""The dispatcher: batches in, requests out, across worker threads.

It owns the queue, the workers, the shared rate limit, the retry policy (exponential backoff
with full jitter, `Retry-After` honoured, only the numbers that failed retried), the bisection
of requests refused because of one number, the in-flight set and the grace period after a
stop. It decides whether an answer is final; the ledger decides what a final answer means.
"""
from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..core.errors import SmsCliError
from ..store.ledger import Ledger
from ..core.model import Kind, Message, Outcome
from ..core.outcomes import Fate, RunEnd
from ..providers.ratelimit import RateLimiter


log = logging.getLogger("sms_cli.run.dispatch")
JOURNAL_FAILED = "the journal could not be written"


@dataclass(frozen=True)
class Policy:
    max_attempts: int = 4
    backoff_base: float = 0.5  # seconds: attempt n waits up to base * 2^(n-1) ...
    backoff_cap: float = 30.0  # ... but never more than this
    grace: float = 10.0  # seconds in-flight requests get to finish after a stop

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Exponential backoff with full jitter."""
        return rng.uniform(0, min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1)))


class Stop:
    """Why the run is stopping, set once. `fatal` and `detail` say what the summary reports."""

    def __init__(self):
        self.event = threading.Event()
        self.reason: RunEnd | None = None  # FATAL, SIGINT, SIGTERM
        self.detail: str | None = None
        self.local = False  # a local disk or journal failure, not the provider's refusal
        self._lock = threading.Lock()

    def set(self, reason: RunEnd, detail: str | None = None, *, local: bool = False) -> None:
        with self._lock:  # never called from a signal handler (see run.py)
            if self.reason is None:
                self.reason, self.detail, self.local = reason, detail, local
        self.event.set()

    def is_set(self) -> bool:
        return self.event.is_set()


class Dispatcher:
    def __init__(self, provider, ledger: Ledger, policy: Policy, stop: Stop, *, concurrency: int = 4,
                 limiter: RateLimiter | None = None, rng: random.Random | None = None,
                 progress: Callable[[], None] = lambda: None, clock: Callable[[], float] = time.monotonic,
                 wait: Callable[[float], bool] | None = None,
                 failover: Callable[[list[Message], str], None] | None = None):
        self.provider, self.ledger, self.policy, self.stop = provider, ledger, policy, stop
        # routes (router.py): on an account-level refusal or an unreachable endpoint this
        # provider goes `down` and hands every row it never took to `failover` (which must not
        # block) instead of stopping the run; without it, such an answer stops the run
        self.failover = failover
        self.down: str | None = None
        self._active = 0  # batches submitted and not yet finished by a worker (see idle())
        self.limiter = limiter or RateLimiter(None)
        self.rng = rng or random.Random()
        self.progress = progress
        # the grace period's clock, and the pause before a retry (True: the run stopped meanwhile);
        # a test hands in a fake clock whose pauses take no time
        self.clock = clock
        self.wait = wait or stop.event.wait
        self.queue: queue.Queue = queue.Queue(maxsize=max(2, concurrency * 2))
        # worker thread -> (the rows of its request on the wire, the rest of its work): a worker
        # holds rows outside this only while it settles an answer or a stop, which takes no time
        self.inflight: dict[int, tuple[list[Message], list]] = {}
        self._lock = threading.Lock()
        self.workers = [threading.Thread(target=self._worker, daemon=True, name=f"send-{i}")
                        for i in range(max(1, concurrency))]
        for t in self.workers:
            t.start()

    # --- the main thread ----------------------------------------------------------------------
    def submit(self, batch: list[Message], poll: Callable[[], None] = lambda: None) -> None:
        """Queue a batch (blocking while the queue is full); a stopped run settles it unsent."""
        if self.down is not None and not self.stop.is_set():
            self.failover(batch, self.down)
            return
        with self._lock:
            self._active += 1
        while not self.stop.is_set():
            try:
                self.queue.put(batch, timeout=0.05)
                return
            except queue.Full:
                poll()  # lets the caller notice a signal while the workers are busy
        with self._lock:
            self._active -= 1
        self._not_sent(batch)

    def idle(self) -> bool:
        """Every batch submitted has been answered, settled or handed over."""
        with self._lock:
            return self._active == 0

    def close(self, poll: Callable[[], None] = lambda: None) -> None:
        """No more batches: wait for the workers (at most the grace period once stopped), then
        settle whatever is left before returning, so the summary counts every row once: queued
        batches not sent, requests still on the wire unknown, and the rest of those workers'
        work (the other halves of a split, the rows to retry) not sent."""
        ends = 0
        while ends < len(self.workers):  # one end-of-work mark per worker, none lost to a drain
            try:
                self.queue.put(None, timeout=0.05)
                ends += 1
            except queue.Full:
                poll()
                if self.stop.is_set():
                    ends -= self._drain()
        deadline = None
        stuck: list[tuple[list[Message], list]] = []
        while True:
            poll()
            if self.stop.is_set() and self.stop.reason in (RunEnd.SIGINT, RunEnd.SIGTERM) and deadline is None:
                deadline = self.clock() + self.policy.grace
            with self._lock:
                alive = [t for t in self.workers if t.is_alive()]
                # past the grace period, give up on the workers whose request is still on the wire,
                # and only on those: any other settles what it holds in a moment (and must have
                # done so before the summary is read)
                if not alive or (deadline is not None and self.clock() > deadline
                                 and all(t.ident in self.inflight for t in alive)):
                    stuck = list(self.inflight.values())  # (a dead worker's: a bug in an adapter)
                    self.inflight.clear()
                    break
            for t in alive:
                t.join(timeout=0.05)
        for _ in range(self._drain()):  # a worker still on the wire ends when it comes back
            self.queue.put_nowait(None)
        if not stuck:
            return
        # a worker coming back from the wire finds its entry gone and settles nothing more
        why = "still in flight when the run stopped"
        on_wire = [m for rows, _ in stuck for m in rows]
        try:
            self.ledger.stopped(on_wire, Fate.UNKNOWN, "Unknown", why, journal=True)
        except SmsCliError as exc:  # left 'inflight': the next run reads that as unknown too
            self.ledger.stopped(on_wire, Fate.UNKNOWN, "Unknown", why)
            self.stop.set(RunEnd.FATAL, str(exc), local=True)
        for _, work in stuck:  # never sent: the journal keeps them pending for the next run
            self._abandon([rows for rows, _, _ in work])

    def _drain(self) -> int:
        """Settle the queued batches as not sent; the number of end-of-work marks removed."""
        ends = 0
        while True:
            try:
                batch = self.queue.get_nowait()
            except queue.Empty:
                return ends
            if batch is None:
                ends += 1
            else:
                self._not_sent(batch)

    def _not_sent(self, batch: list[Message]) -> None:
        why = self.stop.detail if self.stop.reason is RunEnd.FATAL else f"the run was interrupted ({self.stop.reason})"
        self.ledger.stopped(batch, Fate.NOT_SENT, "NotSent", f"not sent: {why}")

    # --- workers ------------------------------------------------------------------------------
    def _worker(self) -> None:
        while True:
            batch = self.queue.get()
            if batch is None:
                return
            try:
                self._send(batch)
            except SmsCliError as exc:  # the journal could not be written: stop, keep the truth
                self.stop.set(RunEnd.FATAL, str(exc), local=True)
            except Exception as exc:  # a bug must not hang the run or lose its rows
                self.stop.set(RunEnd.FATAL, f"internal error: {type(exc).__name__}: {exc}", local=True)
            finally:
                with self._lock:
                    self._active -= 1
            self.progress()

    def _send(self, batch: list[Message]) -> None:
        # (rows, attempt, split): a stack, so a split request's halves go before the rest
        work: list[tuple[list[Message], int, bool]] = [(batch, 1, False)]
        while work:
            pending, attempt, split = work.pop()
            if self.down is not None and not self.stop.is_set():  # gone down while this waited
                self.failover([m for rows in (pending, *(rows for rows, _, _ in work)) for m in rows], self.down)
                return
            if self.stop.is_set() or not self.limiter.acquire(self.stop.event):
                self._abandon([pending, *(rows for rows, _, _ in work)])
                return
            try:
                self.ledger.sending(pending, attempt, split=split)
            except BaseException:
                self._abandon([pending, *(rows for rows, _, _ in work)], JOURNAL_FAILED)
                raise
            me = threading.get_ident()
            with self._lock:
                self.inflight[me] = (pending, work)
            outcomes = self.provider.send(pending)
            with self._lock:
                if self.inflight.pop(me, None) is None:
                    # the grace period ran out: close() settled these rows as unknown and the
                    # rest of this work as not sent
                    return
            if attempt >= self.policy.max_attempts and outcomes and \
                    all(o.code == "ConnectionFailed" for o in outcomes):
                # every attempt was refused a connection: the provider is unreachable, whatever
                # the run's size; nothing was sent, so the rows stay pending for the next run
                outcomes = [Outcome(Kind.FATAL, "Unreachable", f"could not connect to {self.provider.endpoint} "
                                    f"({attempt} attempts)")] * len(pending)
            retry, final, fatal, wait = [], [], None, 0.0
            halves = None
            if len(pending) > 1 and all(o.per_number for o in outcomes):
                # the whole request was refused because of some number in it: nothing was sent,
                # so send the halves until the culprits stand alone
                mid = len(pending) // 2
                halves = (pending[:mid], pending[mid:])
                final = [False] * len(pending)
            else:
                for m, o in zip(pending, outcomes):
                    if o.kind is Kind.FATAL:
                        fatal = fatal or o
                        final.append(self.failover is None)  # with routes: not settled, moved on
                    elif o.kind is Kind.RETRYABLE and attempt < self.policy.max_attempts:
                        retry.append(m)
                        wait = max(wait, o.retry_after or 0.0)
                        final.append(False)
                    else:
                        final.append(True)
            try:
                self.ledger.answered(pending, outcomes, final, attempt)
            except BaseException:  # the rows whose answer was final are settled all the same
                self._abandon([[m for m, f in zip(pending, final) if not f], *(rows for rows, _, _ in work)],
                              JOURNAL_FAILED)
                raise
            self.progress()
            if fatal is not None and self.failover is not None:
                refused = [m for m, o in zip(pending, outcomes) if o.kind is Kind.FATAL]
                if not self.stop.is_set():
                    # the provider never took these rows (an account-level refusal says nothing
                    # was sent; an unknown answer is never FATAL): the next provider may
                    self.down = self.down or f"{fatal.code}: {fatal.message}"
                    self.failover([m for rows in (refused, retry, *(rows for rows, _, _ in work)) for m in rows],
                                  self.down)
                    return
                self._abandon([refused])  # stopped meanwhile: not sent, as without routes
            if fatal is not None:
                self.stop.set(RunEnd.FATAL, f"{fatal.code}: {fatal.message}")
                # every row not settled by this answer ends here, once: the ones to retry and
                # the rest of a split (each other half is still on the stack)
                self._abandon([retry, *(rows for rows, _, _ in work)])
                return
            if halves is not None:
                log.info("request of %d refused for one of its numbers (%s): splitting it in two",
                         len(pending), outcomes[0].code)
                work.append((halves[1], attempt, True))
                work.append((halves[0], attempt, True))
                continue
            if retry:
                pause = wait or self.policy.backoff(attempt, self.rng)
                log.info("%d of %d numbers to retry (%s), attempt %d of %d, waiting %.2fs", len(retry), len(pending),
                         next(o.code for o in outcomes if o.kind is Kind.RETRYABLE), attempt + 1,
                         self.policy.max_attempts, pause)
                if self.wait(pause):
                    self._abandon([retry, *(rows for rows, _, _ in work)])
                    return
                work.append((retry, attempt + 1, False))

    def _abandon(self, groups, why: str | None = None) -> None:
        """Settle rows that will not be sent: for `why`, or for the reason the run stopped."""
        for rows in groups:
            if not rows:
                continue
            if why:
                self.ledger.stopped(rows, Fate.NOT_SENT, "NotSent", f"not sent: {why}")
            else:
                self._not_sent(rows)


class DryDispatcher:
    """A dry run: the same stream and batches, nothing sent; counts requests and sizes."""

    def __init__(self, estimator):
        self.estimator = estimator
        self.requests = 0
        self.batch_sizes: dict[int, int] = {}

    def submit(self, batch: list[Message], poll=None) -> None:
        self.requests += 1
        self.batch_sizes[len(batch)] = self.batch_sizes.get(len(batch), 0) + 1
        for m in batch:
            self.estimator.add(m)

    def close(self, poll=None) -> None:
        pass
