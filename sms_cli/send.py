"""The run: read -> validate -> batch -> send (workers, rate limit, retries) -> journal and
failures file, as one stream.

The main thread reads, validates and batches; worker threads send. A bounded queue between
them keeps memory flat. Every row ends in exactly one place: accepted, the failures file (with
a reason and a retryable flag), or skipped on purpose. The journal makes a re-run resume.
"""
from __future__ import annotations

import hashlib
import os
import queue
import random
import signal
import sys
import threading
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field

from .errors import ExitCode, SmsCliError
from .failures import FailuresWriter
from .journal import ACCEPTED as J_ACCEPTED, FAILED as J_FAILED, UNKNOWN as J_UNKNOWN, Journal
from .model import Kind, Message, Outcome
from .plan import Batcher, Estimator
from .ratelimit import RateLimiter
from .rows import RawRow, Source
from .validate import Rejected, Validator

BACKOFF_BASE, BACKOFF_CAP = 0.5, 30.0
MAX_REFS = 100
MAX_REASONS = 1000  # distinct failure reasons kept for the summary


@dataclass
class Options:
    concurrency: int = 4
    limit: int | None = None
    dedupe: bool = False
    only_retryable: bool = False
    retry_unknown: bool = False
    dry_run: bool = False
    grace: float = 10.0  # seconds to wait for in-flight requests after SIGINT/SIGTERM


@dataclass
class Summary:
    provider: str = ""
    provider_type: str = ""
    rows: int = 0  # rows read
    invalid: int = 0
    skipped: int = 0  # --dedupe / --only-retryable / journal says accepted
    duplicates: int = 0
    valid: int = 0
    requests: int = 0
    accepted: int = 0  # accepted by this invocation
    accepted_before: int = 0  # accepted by an earlier invocation of the same run
    failed: int = 0  # rejected by the provider or retries exhausted
    unknown: int = 0
    not_sent: int = 0
    resumed: bool = False
    previous: dict[str, int] = field(default_factory=dict)
    stopped: str | None = None  # "fatal", "SIGINT", "SIGTERM"
    fatal: str | None = None
    failures_path: str | None = None
    stale_removed: str | None = None
    journal_path: str | None = None
    refs: list[str] = field(default_factory=list)  # the first MAX_REFS submission ids
    elapsed: float = 0.0
    total_hint: int | None = None  # for a progress bar
    batch_sizes: Counter = field(default_factory=Counter)  # dry run: numbers per request
    by_template: dict[str, list[int]] = field(default_factory=dict)  # rows, accepted, failed, unknown
    reasons: Counter = field(default_factory=Counter)  # (code, message) -> rows
    estimates: dict[str, dict] = field(default_factory=dict)  # dry run: per template cost

    @property
    def not_accepted(self) -> int:
        return self.invalid + self.failed + self.not_sent

    def exit_code(self) -> ExitCode:
        if self.stopped == "fatal":
            return ExitCode.FATAL_PROVIDER
        if self.stopped == "SIGINT":
            return ExitCode.SIGINT
        if self.stopped == "SIGTERM":
            return ExitCode.SIGTERM
        if self.not_accepted:
            return ExitCode.NOT_ALL_ACCEPTED
        if self.unknown:
            return ExitCode.UNKNOWN_ONLY
        return ExitCode.OK


def backoff(attempt: int, rng: random.Random) -> float:
    """Exponential backoff with full jitter."""
    return rng.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (attempt - 1)))


def run_identity(source: Source, provider, validator: Validator) -> tuple[str, dict]:
    """What makes two invocations the same run: the input's content and what is sent."""
    options = {"provider": provider.settings.name, "type": provider.type, "endpoint": provider.endpoint,
               "defaults": validator.defaults.identity(), "region": validator.region}
    key = hashlib.sha256(f"{source.digest}|{sorted(options.items())}".encode()).hexdigest()
    return key, options


class Run:
    def __init__(self, source: Source, validator: Validator, provider, *, journal: Journal | None,
                 failures: FailuresWriter | None, options: Options, progress=None):
        self.source, self.validator, self.provider = source, validator, provider
        self.journal, self.failures, self.opts = journal, failures, options
        self.progress = progress or (lambda summary: None)
        self.s = Summary(provider=provider.settings.name, provider_type=provider.type,
                         total_hint=source.lines - (source.fmt == "csv"))  # less the header
        self.stop = threading.Event()
        self.limiter = RateLimiter(provider.rate_limit)
        if provider.http is not None:
            provider.http.pace = self.limiter.pace
        self.queue: queue.Queue = queue.Queue(maxsize=max(2, options.concurrency * 2))
        self.lock = threading.Lock()
        self.inflight: dict[int, list[Message]] = {}
        self.rng = random.Random()
        self.error: BaseException | None = None
        self._seen: set[int] = set()
        self.estimator = Estimator(validator.templates)
        self.s.estimates = self.estimator.by_template

    # --- outcomes (thread-safe) -------------------------------------------------------------
    def _tally(self, template: str | None, col: int) -> None:
        stats = self.s.by_template.get(template or "-")
        if stats is None:
            stats = self.s.by_template[template or "-"] = [0, 0, 0, 0]
        stats[0] += 1
        if col:
            stats[col] += 1

    def _fail(self, raw: RawRow, template: str | None, code: str, message: str, retryable: str) -> None:
        key = (code, message[:120])
        with self.lock:
            if key not in self.s.reasons and len(self.s.reasons) >= MAX_REASONS:
                key = (code, "(other reasons)")  # reasons that name the number would grow forever
            self.s.reasons[key] += 1
            self._tally(template, 3 if retryable == "unknown" else 2)
        if self.failures is not None and not self._aborting():
            self.failures.write(raw, code, message, retryable)

    def _settle(self, answered: list[tuple[Message, Outcome]]) -> None:
        """Count and file the final outcome of each row (accepted ones under one lock)."""
        accepted = [(m, o) for m, o in answered if o.kind is Kind.ACCEPTED]
        if accepted:
            with self.lock:
                self.s.accepted += len(accepted)
                for m, o in accepted:
                    self._tally(m.template_id, 1)
                for ref in dict.fromkeys(o.ref for _, o in accepted if o.ref):
                    if len(self.s.refs) >= MAX_REFS:
                        break
                    if ref not in self.s.refs:
                        self.s.refs.append(ref)
        for msg, outcome in answered:
            kind = outcome.kind
            if kind is Kind.ACCEPTED:
                continue
            raw = RawRow(msg.seq, msg.line, msg.record)
            if kind is Kind.UNKNOWN:
                with self.lock:
                    self.s.unknown += 1
                self._fail(raw, msg.template_id, "Unknown", outcome.message or "outcome unknown", "unknown")
            else:  # permanent, or retryable with its attempts used up
                with self.lock:
                    self.s.failed += 1
                self._fail(raw, msg.template_id, outcome.code, outcome.message,
                           "no" if kind is Kind.PERMANENT else "yes")

    def _not_sent(self, raw: RawRow, template: str | None = None) -> None:
        template = template or self._template(raw)
        with self.lock:
            self.s.not_sent += 1
        why = self.s.fatal or f"run interrupted by {self.s.stopped}" if self.s.stopped else "not sent"
        self._fail(raw, template, "NotSent", f"not sent: {why}", "yes")

    def _not_sent_batch(self, batch: list[Message]) -> None:
        for m in batch:
            self._not_sent(RawRow(m.seq, m.line, m.record), m.template_id)

    def request_stop(self, reason: str, detail: str | None = None) -> None:
        with self.lock:
            if self.s.stopped is None:
                self.s.stopped = reason
                if detail:
                    self.s.fatal = detail
        self.stop.set()

    # --- workers ----------------------------------------------------------------------------
    def _worker(self) -> None:
        while True:
            batch = self.queue.get()
            if batch is None:
                return
            try:
                self._send_batch(batch)
            except BaseException as exc:  # a journal or disk failure: stop, keep the truth
                self.error = self.error or exc
                self.request_stop("fatal", f"internal error: {exc}")

    def _send_batch(self, batch: list[Message]) -> None:
        pending, attempt = batch, 1
        max_attempts = self.provider.settings.max_attempts
        while pending:
            if self.stop.is_set() or not self.limiter.acquire(self.stop):
                self._not_sent_batch(pending)
                return
            self.journal.mark_inflight(pending, attempt)
            token = id(pending)
            with self.lock:
                self.inflight[token] = pending
            outcomes = self.provider.send(pending)
            self.journal.record(pending, outcomes, attempt)
            with self.lock:
                del self.inflight[token]
                self.s.requests += 1
            retry, answered, fatal, wait = [], [], None, 0.0
            for m, o in zip(pending, outcomes):
                if o.kind is Kind.FATAL:
                    fatal = o
                    retry.append(m)
                elif o.kind is Kind.RETRYABLE and attempt < max_attempts:
                    retry.append(m)
                    wait = max(wait, o.retry_after or 0.0)
                else:
                    answered.append((m, o))
            self._settle(answered)
            self.progress(self.s)
            if fatal is not None:
                self.request_stop("fatal", f"{fatal.code}: {fatal.message}")
                self._not_sent_batch(retry)
                return
            if retry and self.stop.wait(wait or backoff(attempt, self.rng)):
                self._not_sent_batch(retry)
                return
            pending, attempt = retry, attempt + 1

    # --- main loop --------------------------------------------------------------------------
    def _dispatch(self, batch: list[Message]) -> None:
        if self.opts.dry_run:
            self.s.requests += 1
            self.s.batch_sizes[len(batch)] += 1
            for m in batch:
                self.estimator.add(m)
            return
        while not self.stop.is_set():
            try:
                self.queue.put(batch, timeout=0.2)
                return
            except queue.Full:
                continue
        self._not_sent_batch(batch)

    def _dedupe_key(self, m: Message) -> int:
        params = tuple(sorted(m.params.items())) if isinstance(m.params, dict) else tuple(m.params)
        return hash((m.phone, m.template_id, params, m.sender_id, m.extend_code))

    def execute(self, previous: dict[str, int] | None = None) -> Summary:
        started = time.monotonic()
        s, opts = self.s, self.opts
        if previous is not None:
            s.resumed, s.previous = True, dict(previous)
        workers = []
        switch = sys.getswitchinterval()
        if not opts.dry_run:
            # The reader thread is CPU-bound; with the default 5 ms switch interval a worker
            # whose answer has arrived waits that long for the interpreter on every request.
            sys.setswitchinterval(0.001)
            workers = [threading.Thread(target=self._worker, daemon=True, name=f"send-{i}")
                       for i in range(max(1, opts.concurrency))]
            for t in workers:
                t.start()
        states = self.journal.states() if (self.journal is not None and previous) else iter(())
        nxt = next(states, None)
        batcher = Batcher(self.provider.max_batch, self.provider.batch_key)
        validate, dispatch = self.validator.validate, self._dispatch
        sent_rows = 0
        try:
            for raw in self.source.rows():
                s.rows += 1
                while nxt is not None and nxt[0] < raw.seq:
                    nxt = next(states, None)
                state = nxt if nxt is not None and nxt[0] == raw.seq else None
                if state is not None and self._from_journal(raw, state):
                    continue
                if self._aborting():
                    break  # the run ends with that error; the journal holds what was sent
                if self.stop.is_set() and self.s.stopped != "fatal":
                    self._not_sent(raw)  # interrupted: be quick, the rest is not even validated
                    continue
                if raw.retryable == "no" and opts.only_retryable:
                    s.skipped += 1
                    continue
                if raw.retryable == "unknown" and not opts.retry_unknown:
                    s.unknown += 1
                    self._fail(raw, self._template(raw), "Unknown", "outcome unknown in an earlier run; "
                               "resend with --retry-unknown", "unknown")
                    continue
                msg = validate(raw)
                if isinstance(msg, Rejected):
                    s.invalid += 1
                    self._fail(raw, self._template(raw), msg.code, msg.reason, "no")
                    continue
                if self.stop.is_set():  # a fatal error: invalid rows still get their reason
                    self._not_sent(raw, msg.template_id)
                    continue
                if opts.dedupe:
                    key = self._dedupe_key(msg)
                    if key in self._seen:
                        s.duplicates += 1
                        s.skipped += 1
                        continue
                    self._seen.add(key)
                if opts.limit is not None and sent_rows >= opts.limit:
                    s.rows -= 1
                    break
                s.valid += 1
                sent_rows += 1
                for batch in batcher.add(msg):
                    dispatch(batch)
                if not s.rows & 1023:
                    self.progress(s)
            for batch in batcher.flush():
                dispatch(batch)
        except BaseException as exc:  # e.g. the failures file hit a full disk: send nothing more
            self.error = self.error or exc
            self.request_stop("fatal", f"internal error: {exc}")
            raise
        finally:
            for _ in workers:
                self._put_sentinel()
            self._join(workers)
            sys.setswitchinterval(switch)
            s.elapsed = time.monotonic() - started
            self.progress(s)
        if self._aborting():
            # a journal or disk failure: one error line naming the path; the journal keeps what
            # was sent (rows whose answer it could not record are unknown next run)
            raise self.error
        return s

    def _aborting(self) -> bool:
        """The run ends by raising self.error (journal or disk failure, or an interrupt), so its
        failures file is discarded and nothing more is written to it."""
        err = self.error
        return err is not None and (isinstance(err, SmsCliError) or not isinstance(err, Exception))

    def _template(self, raw: RawRow) -> str | None:
        """The template a row would use, for the per-template summary of rows not sent."""
        return self.validator.effective(raw).template_id or None

    def _from_journal(self, raw: RawRow, state: tuple[int, str, str, str]) -> bool:
        """Settle a row the journal already knows; False means send it (again)."""
        _, st, code, message = state
        if st == J_ACCEPTED:
            self.s.accepted_before += 1
            return True
        if st == J_FAILED:
            self.s.failed += 1
            self._fail(raw, self._template(raw), code or "Failed", message or "", "no")
            return True
        if st == J_UNKNOWN and not self.opts.retry_unknown:
            self.s.unknown += 1
            self._fail(raw, self._template(raw), "Unknown", message or "outcome unknown", "unknown")
            return True
        return False  # retryable failure, never finished, or --retry-unknown

    def _put_sentinel(self) -> None:
        while True:
            try:
                self.queue.put(None, timeout=0.2)
                return
            except queue.Full:
                if self.stop.is_set():
                    self._drain()

    def _drain(self) -> None:
        while True:
            try:
                batch = self.queue.get_nowait()
            except queue.Empty:
                return
            if batch is not None:
                self._not_sent_batch(batch)

    def _join(self, workers: list[threading.Thread]) -> None:
        deadline = None
        while any(t.is_alive() for t in workers):
            if self.stop.is_set() and self.s.stopped in ("SIGINT", "SIGTERM"):
                deadline = deadline or time.monotonic() + self.opts.grace
                if time.monotonic() > deadline:
                    break
            for t in workers:
                t.join(timeout=0.1)
        self._drain()
        with self.lock:  # requests that outlived the grace period: their outcome is unknown
            stuck = [m for batch in self.inflight.values() for m in batch]
            self.inflight.clear()
        why = "still in flight when the run stopped"
        if stuck and self.journal is not None and not self._aborting():
            try:
                self.journal.mark_unknown(stuck, why)
            except SmsCliError as exc:  # left 'inflight': the next run reads that as unknown too
                self.error = exc
        self._settle([(m, Outcome(Kind.UNKNOWN, "Unknown", why)) for m in stuck])


@contextmanager
def signals(run: Run):
    """SIGINT/SIGTERM: stop handing out batches, finish in-flight ones, then exit 130/143.
    A second Ctrl-C exits at once; the journal still holds the truth."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_signal(signum, frame):
        name = "SIGINT" if signum == signal.SIGINT else "SIGTERM"
        if run.stop.is_set() and signum == signal.SIGINT and run.s.stopped == "SIGINT":
            os._exit(ExitCode.SIGINT)
        run.request_stop(name)

    old = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
