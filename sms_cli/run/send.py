"""The run: the row stream feeds the batcher and the dispatcher; every row ends in the ledger.

The main thread reads, validates and batches (stream.py); worker threads send (dispatch.py);
the ledger (ledger.py) settles every row once. Signals only raise a flag that the main thread
polls, so a handler never waits for a lock the interrupted code holds.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

from .dispatch import DryDispatcher, Dispatcher, Policy, Stop
from ..core.errors import ExitCode, SmsCliError
from ..store.ledger import Ledger, Tally
from ..core.outcomes import Fate, RunEnd, exit_code
from .plan import Batcher, Estimator
from .repeats import Repeats
from ..input.rows import Source
from .stream import Identity, Send, StreamOptions, row_stream
from ..validate.validator import Rejected, Validator


class Clock:
    """The run's monotonic time and its pause before a retry, handed down from Campaign.open to
    the dispatcher. `pause(stop)` -> wait(seconds), True when the run stopped meanwhile. A test
    hands in one whose pauses take no time."""

    def __call__(self) -> float:
        return time.monotonic()

    def pause(self, stop: Stop):
        return stop.event.wait


@dataclass
class Options:
    concurrency: int = 8  # requests on the wire at once (README, Performance: why 8)
    limit: int | None = None
    dedupe: bool = False
    only_retryable: bool = False
    retry_unknown: bool = False
    dry_run: bool = False


@dataclass
class Summary:
    provider: str = ""
    provider_type: str = ""
    tally: Tally = field(default_factory=Tally)
    resumed: bool = False
    previous: dict[str, int] = field(default_factory=dict)  # journal states before this run
    fresh: bool = False  # --fresh --yes started the working set over
    continued_from: int | None = None  # --continue-edited: the working set of the earlier version
    stopped: RunEnd | None = None  # FATAL, SIGINT, SIGTERM: the run did not go through its input
    fatal: str | None = None
    local: bool = False  # the stop was a local disk/journal failure
    failures_path: str | None = None
    failures_lost: str | None = None  # the failures file could not be written: why
    stale_removed: str | None = None
    elsewhere: dict[str, int] = field(default_factory=dict)  # other failures file -> rows of it left there
    consumed: str | None = None  # the derived file this send consumed (list.undelivered.csv), removed
    journal_path: str | None = None
    elapsed: float = 0.0
    limit: int | None = None
    batch_sizes: dict[int, int] = field(default_factory=dict)  # dry run: numbers per request
    estimates: dict[str, dict] = field(default_factory=dict)  # dry run: per template cost
    estimator: Estimator | None = None  # dry run: parts and cost per country
    notes: list[str] = field(default_factory=list)  # things the summary should mention
    routes: dict | None = None  # routes (router.py): rows, requests (and a plan's cost) per route and provider
    resend: str = ""  # the options a resend of the failures file needs (--config, --provider, ...)

    def n(self, fate: Fate) -> int:
        return self.tally.counts[fate]

    @property
    def rows(self) -> int:
        # a dry run settles only what it would not send; what it would send is in batch_sizes
        return sum(self.tally.counts.values()) + sum(size * n for size, n in self.batch_sizes.items())

    @property
    def accepted(self) -> int:
        return self.n(Fate.ACCEPTED)

    @property
    def accepted_before(self) -> int:
        return self.n(Fate.ACCEPTED_EARLIER)

    @property
    def failed(self) -> int:  # the provider refused, or transient failures outlasted the retries
        return self.n(Fate.REJECTED) + self.n(Fate.FAILED)

    @property
    def not_accepted(self) -> int:
        return sum(n for f, n in self.tally.counts.items() if f.weight == 1)

    def exit_code(self) -> ExitCode:
        return exit_code(self.tally.counts, self.stopped)


class Signals:
    """SIGINT/SIGTERM while a run goes: the handler only records the signal (it must never
    block: the main thread may hold any lock when it runs); `poll()` turns it into a stop.
    A second Ctrl-C exits at once; the journal still holds the truth."""

    def __init__(self, stop: Stop):
        self.stop = stop
        self.received: int | None = None
        self._old: dict = {}

    def _on_signal(self, signum, frame) -> None:
        if self.received == signal.SIGINT and signum == signal.SIGINT:
            os._exit(ExitCode.SIGINT)
        self.received = signum

    def poll(self) -> None:
        got = self.received
        if got is not None and not self.stop.is_set():
            self.stop.set(RunEnd.SIGINT if got == signal.SIGINT else RunEnd.SIGTERM)

    @contextmanager
    def installed(self):
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        self._old = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for sig, handler in self._old.items():
                signal.signal(sig, handler)


def execute(source, validator: Validator, provider, ledger: Ledger, ident: Identity, options: Options,
            policy: Policy, summary: Summary, *, resend: bool = False, taken: set[int] | None = None,
            guards=None, estimator: Estimator | None = None, progress=lambda tally: None,
            prefix: tuple[int, dict[str, int]] | None = None, router=None, clock: Clock | None = None,
            held=None) -> Summary:
    """Run the stream to the end (or to a stop) and fill `summary`. Raises SmsCliError only for
    a failure before anything was sent (exit 2); later ones stop the run as fatal (exit 3).
    `prefix`: the journal's accepted prefix (Journal.resume_view), when the caller read it.
    `router` (router.py): config routes, in place of the one provider's batcher and dispatcher.
    `clock`: the dispatchers' time and retry pauses (Clock). `held` (store/held.py): the rows
    other failures files of the working set hold."""
    clock = clock or Clock()
    started = clock()
    stop = Stop()
    sig = Signals(stop)
    tally = ledger.tally
    dry = options.dry_run
    estimator = estimator or Estimator(validator.templates)

    def tick() -> None:
        progress(tally)

    def stopping() -> RunEnd | None:
        if not stop.event.is_set():
            sig.poll()
            if ledger.local_error is not None:
                stop.set(RunEnd.FATAL, str(ledger.local_error), local=True)
            if not stop.event.is_set():
                return None
        return stop.reason

    # a resume counts the accepted rows the journal holds from the first row on instead of
    # reading them one by one: a run killed at 90% sends its first request at once
    start, seen, split = 0, None, None
    if ident.journal is not None and not resend:
        start, split = prefix if prefix is not None else ident.journal.resume_view(ident.own_set)[1:]
        if start:
            ledger.count_unread(Fate.ACCEPTED_EARLIER, start)
            seen = ident.journal.prefix_messages(ident.own_set, start) if options.dedupe else None
    repeats = None if options.dedupe else Repeats(expect=getattr(source, "lines", 0) - start)  # rows sent twice
    rows = resume_rows(source, validator, ident, start) if start else source.rows()
    stream = row_stream(rows, validator,
                        StreamOptions(options.limit, options.dedupe, options.only_retryable, options.retry_unknown),
                        ident, resend=resend, taken=taken, guards=guards, start=start, seen=seen,
                        repeats=repeats, held=held if held else None, stopping=stopping,
                        why_stopped=lambda: stop.detail)
    batcher = Batcher(provider.max_batch, provider.batch_key)
    switch = sys.getswitchinterval()
    with sig.installed():
        if router is not None:
            batcher = dispatcher = router.start(
                ledger, stop, lambda wire, failover: Dispatcher(
                    wire, ledger, Policy(wire.provider.settings.max_attempts, wire.provider.settings.backoff_base,
                                         wire.provider.settings.backoff_cap, policy.grace), stop,
                    concurrency=options.concurrency, limiter=wire.provider.limiter,
                    progress=tick, failover=failover, clock=clock, wait=clock.pause(stop)),
                sig.poll, estimator if dry else None)
            if not dry:
                sys.setswitchinterval(0.001)
        elif dry:
            dispatcher = DryDispatcher(estimator)
        else:
            # The reader thread is CPU-bound; with the default 5 ms switch interval a worker
            # whose answer has arrived waits that long for the interpreter on every request.
            sys.setswitchinterval(0.001)
            dispatcher = Dispatcher(provider, ledger, policy, stop, concurrency=options.concurrency,
                                    limiter=provider.limiter, progress=tick, clock=clock, wait=clock.pause(stop))
        settle, submit, add = ledger.settle, dispatcher.submit, batcher.add
        count = 0
        try:
            try:
                for item in stream:
                    if item.__class__ is Send:
                        for batch in add(item.msg):
                            submit(batch, sig.poll)
                    else:
                        settle(item.row, item.fate, item.code, item.message)
                    count += 1
                    if not count & 1023:
                        tick()
            except SmsCliError as exc:  # the input or the journal failed mid-way
                if not dry and tally.requests == 0 and not stop.is_set():
                    raise  # nothing was sent: an input error, exit 2
                stop.set(RunEnd.FATAL, str(exc), local=True)
            for batch in batcher.flush():
                submit(batch, sig.poll)
        except BaseException:
            stop.set(RunEnd.FATAL, "internal error", local=True)
            raise
        finally:
            dispatcher.close(sig.poll)
            sys.setswitchinterval(switch)
    if start:
        try:  # the prefix's split per template, read now that no request waits for it
            ledger.settle_counted(Fate.ACCEPTED_EARLIER, split(), total=False)
        except SmsCliError as exc:
            summary.notes.append(f"the {start} rows accepted earlier are not counted per template: {exc}")
    if ledger.local_error is not None and not stop.is_set():
        stop.set(RunEnd.FATAL, str(ledger.local_error), local=True)
    if stop.local and not dry and tally.requests == 0:
        raise SmsCliError(stop.detail or "local failure")  # nothing was sent: exit 2
    summary.tally = tally
    summary.stopped, summary.fatal, summary.local = stop.reason, stop.detail, stop.local
    summary.elapsed = clock() - started
    summary.limit = options.limit
    if router is not None:
        summary.routes = router.report(tally)
        summary.notes += router.notes
    if held is not None:
        summary.elsewhere = dict(held.counts)
        summary.notes += held.notes
    if repeats is not None and repeats.count:
        summary.notes.append(repeats.note())
    if dry:
        summary.batch_sizes = dict(dispatcher.batch_sizes)
        summary.estimates = estimator.by_template
        summary.estimator = estimator
    tick()
    return summary


def resume_rows(source, validator: Validator, ident: Identity, start: int):
    """The input's rows from seq `start` on, rows 0..start-1 being accepted in the journal.

    A CSV is read from the line where the journal says row start-1 began, without parsing the
    lines before it (900,000 rows: 1.5 s less before the first request). The content hash
    that chose this working set says the file is the one the journal was written from, so its
    rows begin at the same lines; still, the row found there must be row start-1 itself (same
    seq, line and message key, validated as it was when sent), or the input is read from the
    top and the prefix stepped over row by row, as without the journal's help."""
    plain_csv = isinstance(source, Source) and source.fmt == "csv"  # not a shard's filter of one
    point = ident.journal.resume_point(ident.own_set, start - 1) if plain_csv else None
    if point is not None:
        line, key = point
        rows = source.rows(start - 1, at=(start - 1, line))
        try:
            first = next(rows, None)
        except SmsCliError:  # the input cannot be read from there: the full read reports it
            first = None
        if first is not None and first.seq == start - 1 and first.line == line:
            msg = validator.validate(first)
            if not isinstance(msg, Rejected) and msg.digest == key:
                return rows
        rows.close()
    return source.rows(start)


def run_end(summary: Summary) -> RunEnd:
    """How the journal remembers this run: its stop (fatal, a signal), partial (a later run has
    rows to send) or finished."""
    if summary.stopped:
        return RunEnd(summary.stopped)
    if summary.n(Fate.DEFERRED):
        return RunEnd.PARTIAL
    return RunEnd.FINISHED


