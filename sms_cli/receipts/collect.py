"""Delivery receipts (`sms-cli receipts`): what became of the messages a provider accepted.

"Accepted" only means the provider took the request. This module asks each provider's receipt
API about a working set's accepted rows and the rows whose answer was lost, joins the reports to
the journal's rows, and records for each row one status of one vocabulary:

  delivered     the handset got it
  failed        the operator says it was not delivered (its code and text are kept): the row's
                journal state becomes `undelivered`, and it goes to the undelivered failures file
  pending       no final report yet: the next run asks again
  no_receipt    still pending --give-up-after after it was sent (or the provider has no receipts)

and for a row whose answer was lost (journal state `unknown`):

  found         the provider has it: the row becomes `accepted` (never resent) and gets one of
                the statuses above
  not_found     no record of it by the end of the reporting window: `send --retry-unknown` may
                resend it
  unsettleable  the provider cannot look a message up without the lost answer (uSpeedo)

What is learnt is written to the journal a request at a time, so an interrupted run loses
nothing, and a re-run asks only about rows still pending. The command (receipts_command.py)
prints what `collect` returns.
"""
from __future__ import annotations

import json
import logging
import math
import random
import re
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import phonenumbers

from ..guards import settings as guard_settings
from ..store import held as held_mod, paths
from ..core.settings import Config, builtin_config
from ..campaign import SendRequest, locate_journal
from ..config.load import load_config
from ..run.dispatch import Policy
from ..core.errors import ExitCode, InputError, SmsCliError
from ..store.failures import FailuresWriter
from ..guards.rules import region_of
from ..store.journal import Journal, ReceiptRow, ReceiptUpdate, WorkingSet
from ..store.ledger import Ledger, reason_key
from ..core.logs import register_secrets
from ..core.model import Kind, Message
from ..core.outcomes import Retryable, RowState, RunEnd, Weight, exit_code
from ..run.plan import Estimator
from ..run.stream import Identity
from ..providers import make_provider
from ..providers.base import DELIVERED, FAILED, PENDING, Provider, Report, Sent
from ..providers.http import RequestFailed
from ..input.rows import open_source
from ..validate.validator import Defaults, Validator
import sys

log = logging.getLogger("sms_cli.receipts.collect")

NO_RECEIPT, NOT_FOUND, UNSETTLEABLE = "no_receipt", "not_found", "unsettleable"
STATUSES = (DELIVERED, FAILED, PENDING, NO_RECEIPT, NOT_FOUND, UNSETTLEABLE)
FINAL = frozenset({DELIVERED, FAILED, NO_RECEIPT, NOT_FOUND, UNSETTLEABLE})
DEFAULT_GIVE_UP = 72 * 3600.0  # seconds after sending a pending row becomes no_receipt
DEFAULT_POLL = 60.0  # seconds between rounds of --wait
CLOCK_SLACK = 300.0  # a report may carry a time a little before our idea of the send time
UNDELIVERED_SUFFIX = ".undelivered"

# An operator code that says the number itself cannot take the message: resending will not help
# (retryable: no). Anything else (UNDELIV, EXPIRED, a busy network, a handset off) is worth a
# later resend (retryable: yes).
_PERMANENT = re.compile(r"REJECT|BLACK|BARRED|INVALID|ILLEGAL|NOT_?EXIST|UNKNOWN_?SUBSCRIBER|DELETED|"
                        r"NUMBER_?ERROR|EMPTY_?NUMBER|OPT_?OUT", re.IGNORECASE)


def retryable(code: str) -> Retryable:
    """The failures file's retryable flag for a message its operator did not deliver."""
    return Retryable.NO if _PERMANENT.search(code or "") else Retryable.YES


def parse_duration(text: str, where: str) -> float:
    """A receipts option's duration: the guards' grammar (one parser for every duration), where 0
    means at once (--give-up-after 0: give up on pending rows now)."""
    return guard_settings.parse_duration(text, where, zero=True)


def undelivered_path(input_name: str, fmt: str, digest: str) -> Path:
    """`<base>.undelivered.<ext>`: the failures file of the rows whose delivery failed."""
    b = paths.base(input_name, digest)
    return b.with_name(b.name + UNDELIVERED_SUFFIX + paths.failures_ext(input_name, fmt))


# --- the request and its answer --------------------------------------------------------------
@dataclass
class ReceiptsRequest:
    input: str | None  # as given to send; None (or "-" with nothing piped): the journal's rows
    config: str | None = None
    provider: str | None = None  # ask this provider section instead of the one each run used
    journal: str | None = None
    fmt: str | None = None
    template: str | None = None  # the send's --template / --param / --sender-id / --default-region,
    params: tuple[str, ...] = ()  # so the rows read back as the send read them (estimates and the
    sender_id: str | None = None  # undelivered failures file)
    region: str | None = None
    failures: str | None = None  # the undelivered failures file (default <base>.undelivered.<ext>)
    wait: float = 0.0  # seconds to keep asking while rows are pending
    give_up_after: float = DEFAULT_GIVE_UP
    poll_interval: float = DEFAULT_POLL


@dataclass
class Deliveries:
    """The summary's numbers for all rows, one template or one country: what became of the
    messages the provider took. Not the ledger's Tally (store/ledger.py), which counts another
    thing: the Fate each row of ONE run ended in (accepted, rejected, deferred ...), counted
    under the ledger's lock as answers arrive, with the run's requests, retries and splits.
    These are the delivery statuses of every accepted row of the working set, across all its
    runs, counted once at the end, with time to delivery and billed parts. What the two share
    is shared: failure reasons are grouped by the ledger's `reason_key`."""
    sent: int = 0  # rows the provider took (accepted, or found after a lost answer)
    delivered: int = 0
    failed: int = 0
    pending: int = 0
    no_receipt: int = 0
    unknown: int = 0  # rows whose answer was lost and that were not found (yet)
    reasons: Counter = field(default_factory=Counter)  # (code, text) -> failed rows
    delays: list[float] = field(default_factory=list)  # seconds from sending to the receipt
    estimated_parts: int = 0  # the plan's estimate for the sent rows the input was at hand for
    estimated_rows: int = 0
    billed_parts: int = 0  # what the provider billed, for the rows whose receipt says
    billed_rows: int = 0
    billed_estimate: int = 0  # the plan's estimate for those same rows

    def add(self, t: Track) -> None:
        if t.lost:
            self.unknown += 1
            return
        self.sent += 1
        if t.status == DELIVERED:
            self.delivered += 1
            if t.received is not None and t.sent.sent:
                self.delays.append(max(0.0, t.received - t.sent.sent))
        elif t.status == FAILED:
            self.failed += 1
            self.reasons[reason_key(t.code, t.message or t.code)] += 1
        elif t.status == NO_RECEIPT:
            self.no_receipt += 1
        else:
            self.pending += 1
        if t.estimate is not None:
            self.estimated_parts += t.estimate
            self.estimated_rows += 1
        if t.parts is not None:
            self.billed_parts += t.parts
            self.billed_rows += 1
            if t.estimate is not None:
                self.billed_estimate += t.estimate

    def as_dict(self) -> dict:
        delays = sorted(self.delays)
        return {
            "sent": self.sent, "delivered": self.delivered, "failed": self.failed, "pending": self.pending,
            "no_receipt": self.no_receipt, "unknown": self.unknown,
            "delivery_rate": round(self.delivered / self.sent, 4) if self.sent else None,
            "failed_by_reason": [{"error_code": c, "error_message": m, "rows": n}
                                 for (c, m), n in self.reasons.most_common()],
            "time_to_delivery": {"median": round(statistics.median(delays), 3) if delays else None,
                                 "p95": round(percentile(delays, 95), 3) if delays else None,
                                 "rows": len(delays)},
            "estimated_parts": self.estimated_parts if self.estimated_rows else None,
            "billed_parts": self.billed_parts if self.billed_rows else None,
            "billed_rows": self.billed_rows,
            "billed_estimate": self.billed_estimate if self.billed_rows and self.estimated_rows else None,
        }


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile of sorted `values` (not empty)."""
    return values[max(0, math.ceil(pct / 100 * len(values)) - 1)]


@dataclass
class Result:
    journal: str
    input: str | None
    providers: dict[str, str] = field(default_factory=dict)  # section -> type, of the rows looked at
    total: Deliveries = field(default_factory=Deliveries)
    by_template: dict[str, Deliveries] = field(default_factory=dict)
    by_country: dict[str, Deliveries] = field(default_factory=dict)
    found: int = 0  # rows whose answer was lost that this run found (now accepted)
    searching: int = 0  # of the unknown rows at the end: still looked for (pending)
    not_found: int = 0  # ... not found by the end of the window: --retry-unknown may resend them
    unsettleable: int = 0  # ... the provider cannot look them up
    unsettleable_types: list[str] = field(default_factory=list)  # ... which providers those are
    not_found_refs: list[str] = field(default_factory=list)  # sms_ref of the not_found rows (first 100)
    requests: int = 0  # receipt queries sent by this run
    rounds: int = 0
    elapsed: float = 0.0
    estimate_known: bool = False  # the input was at hand: estimated parts are given
    estimate_lower_bound: bool = False  # some templates have no text in config: they count one part
    failures_path: str | None = None
    stale_removed: str | None = None
    failures_lost: str | None = None  # the undelivered failures file could not be written: why
    undelivered_unwritten: int = 0  # undelivered rows not in the input at hand (stdin not piped again)
    stopped: RunEnd | None = None  # FATAL, SIGINT
    fatal: str | None = None
    notes: list[str] = field(default_factory=list)

    def exit_code(self) -> ExitCode:
        """3 stopped (credentials refused, provider unreachable), 1 some delivery failed, 4 some
        rows pending, without a receipt or unknown, 0 every accepted row delivered: the run's
        rule, a failed delivery weighing as a row not accepted, a missing one as unknown."""
        t = self.total
        return exit_code({Weight.NOT_ACCEPTED: t.failed, Weight.UNKNOWN: t.pending + t.no_receipt + t.unknown},
                         self.stopped)


# --- rows being followed ---------------------------------------------------------------------
@dataclass(slots=True)
class Track:
    id: tuple[int, int]
    sent: Sent
    provider: str  # the config's provider section that sent it
    state: RowState  # its journal state now
    status: str | None  # its receipt status now (None: never asked)
    code: str = ""
    message: str = ""
    received: float | None = None
    parts: int | None = None
    ref_prefix: str = ""  # the sms_ref prefix of its working set
    template: str = "-"
    region: str = "ZZ"
    estimate: int | None = None
    written: bool = False  # in the undelivered failures file

    @property
    def lost(self) -> bool:
        """Its answer was lost and the provider has not been found to have it."""
        return self.state in (RowState.UNKNOWN, RowState.INFLIGHT)

    @property
    def open(self) -> bool:
        return self.status not in FINAL

    @property
    def sms_ref(self) -> str:
        return f"{self.ref_prefix}:{self.id[1]}"


def track_of(r: ReceiptRow, ws: WorkingSet, provider: str, routes=None) -> Track:
    """A journal row and its receipt; a receipt about an earlier send of the row (it was sent
    again since) counts as none."""
    key = f"{ws.digest[:12]}-{r.seq}"
    lost = r.state in (RowState.UNKNOWN, RowState.INFLIGHT)
    current = r.status is not None and r.receipt_sent == r.sent
    # a row whose answer was lost has no submission id; an unknown row whose answer carried one
    # (a FailContent entry that named it ambiguously) is looked up by it
    template = r.template or ""
    if template and routes:  # the journal keeps the input's template id; a report has the provider's
        template = routes.wire_template(provider, template) or ""
    sent = Sent((r.set_id, r.seq), r.phone, (r.ref or "") if not lost or r.state == RowState.UNKNOWN else "",
                r.corr or key, key, template, r.sent or 0.0)
    t = Track((r.set_id, r.seq), sent, provider, r.state, r.status if current else None, ref_prefix=ws.ref_prefix,
              template=r.template or "-")
    if current:
        t.code, t.message = r.receipt_code or "", r.receipt_message or ""
        t.received, t.parts = r.received, r.parts
    if r.state == RowState.UNDELIVERED and t.status != FAILED:
        t.status, t.code, t.message = FAILED, r.code or "", r.message or ""
    cc = _country_code(r.phone)
    if cc is not None:
        t.region = region_of(r.phone, cc)
    return t


def _country_code(e164: str) -> int | None:
    """The calling code of an E.164 number (calling codes are prefix-free: the first that is one)."""
    for size in (1, 2, 3):
        head = e164[1:1 + size]
        if head.isdigit() and int(head) in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            return int(head)
    return None


def _digits(phone: str) -> str:
    return "".join(ch for ch in phone if ch.isdigit())


def _when(r: Report) -> float | None:
    return r.sent if r.sent is not None else r.received


def join(candidates: list[Track], reports: list[Report], claimed: set[tuple[str, str]],
         expected_corr: Callable[[Sent], str | None]) -> dict[tuple[int, int], Report]:
    """Which report is which row's. A row with a submission id takes the report of that id and
    number (told apart by the correlation field when one id covers the number twice; a final
    report before a pending one). A row whose answer was lost takes the earliest report to its
    number, no older than its send, that no journal row's id claims, of its template and
    correlation value where the report says them."""
    out: dict[tuple[int, int], Report] = {}
    used = [False] * len(reports)
    by_key: dict[tuple[str, str], list[int]] = {}
    for i, r in enumerate(reports):
        by_key.setdefault((r.ref, _digits(r.phone)), []).append(i)
    for t in candidates:
        if not t.sent.ref:
            continue
        want, digits, best = expected_corr(t.sent), _digits(t.sent.phone), None
        for sn in t.sent.ref.split(","):
            for i in by_key.get((sn.strip(), digits), ()):
                r = reports[i]
                if used[i] or (want is not None and r.corr is not None and r.corr != want):
                    continue
                if best is None or (reports[best].status == PENDING and r.status != PENDING):
                    best = i
        if best is not None:
            used[best] = True
            out[t.id] = reports[best]
    for t in sorted((t for t in candidates if not t.sent.ref), key=lambda t: t.sent.sent):
        want, digits, best = expected_corr(t.sent), _digits(t.sent.phone), None
        for i, r in enumerate(reports):
            if used[i] or _digits(r.phone) != digits or (r.ref and (r.ref, digits) in claimed):
                continue
            if r.template and t.sent.template and r.template != t.sent.template:
                continue
            if want is not None and r.corr is not None and r.corr != want:
                continue
            when = _when(r)
            if when is not None and when < t.sent.sent - CLOCK_SLACK:
                continue
            if best is None or (when or 0.0) < (_when(reports[best]) or 0.0):
                best = i
        if best is not None:
            used[best] = True
            out[t.id] = reports[best]
    return out


class _Stop(Exception):
    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason, self.detail = reason, detail


# --- the run ---------------------------------------------------------------------------------
class Collector:
    """One `sms-cli receipts` run over an open journal."""
    def __init__(self, req: ReceiptsRequest, cfg: Config, journal: Journal, sets: list[WorkingSet], result: Result,
                 *, clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep, progress: Callable[[Result, int, float], None] | None = None,
                 transport=None):
        self.req, self.cfg, self.journal, self.result = req, cfg, journal, result
        self.transport = transport  # None: the providers' own HTTP sessions (a test scripts one)
        self.ledger = Ledger(journal)  # the only writer of a row's state: it records what receipts learn
        self.clock, self.wall, self.sleep = clock, wall, sleep
        self.progress = progress or (lambda result, open_rows, next_in: None)
        self.rng = random.Random()
        self._providers: dict[str, Provider] = {}
        self._asked_by_number: dict[str, list[Track]] = {}  # the rows being asked about, by number
        self.open_rows = 0  # rows still pending in this round (for the progress display)
        runs = {rr.id: rr for ws in sets for rr in journal.runs(ws.id)}
        by_id = {ws.id: ws for ws in sets}
        self.tracks: list[Track] = []
        for r in journal.receipt_rows(list(by_id)):
            run = runs.get(r.run) if r.run is not None else None
            # each row's own provider (routes spread one run over several); a journal of an
            # earlier version has none per row: its run's
            sent_through = r.provider or (run.provider if run is not None else None)
            if req.provider and sent_through and req.provider != sent_through and sent_through in cfg.providers:
                # another provider has no record of these messages: every lost answer would be
                # "not taken" and --retry-unknown would send it twice
                raise SmsCliError(f"--provider {req.provider}: rows of this journal were sent through provider "
                                  f"{sent_through!r}; only that provider can say what became of them (--provider "
                                  "is for a section renamed since the send)")
            section = req.provider or sent_through or cfg.default_provider or "outbox"
            self.tracks.append(track_of(r, by_id[r.set_id], section, cfg.routes))
        self.by_id = {t.id: t for t in self.tracks}
        for section in dict.fromkeys(t.provider for t in self.tracks):  # named in the summary
            settings = cfg.providers.get(section)
            result.providers[section] = settings.type if settings is not None else section
        # (submission id, number) of every row the journal knows the answer of: a report of one
        # of those is that row's, never a lost answer's
        self.claimed = {(sn.strip(), _digits(t.sent.phone)) for t in self.tracks if t.sent.ref
                        for sn in t.sent.ref.split(",")}

    # --- providers --------------------------------------------------------------------------
    def provider(self, section: str) -> Provider:
        p = self._providers.get(section)
        if p is None:
            if section in self.cfg.providers:
                settings = self.cfg.providers[section]
            elif section == "outbox":
                settings = builtin_config().providers["outbox"]
            else:
                raise SmsCliError(f"rows were sent through provider {section!r}, which "
                                  f"{self.cfg.path or 'the config'} does not have; pass the send's --config, "
                                  "or --provider NAME to ask another section of the same account")
            p = self._providers[section] = make_provider(settings, self.cfg.templates, concurrency=1,
                                                         transport=self.transport)
            if p.has_receipts:
                p.require_settings()
        return p

    def close(self) -> None:
        for p in self._providers.values():
            self.result.requests += p.receipt_requests
            p.close()

    # --- what to ask ------------------------------------------------------------------------
    def settle_the_unaskable(self) -> None:
        """Rows no query can help: final at once (and recorded, so no run looks at them again)."""
        now, updates = self.wall(), []
        for t in self.tracks:
            if not t.open:
                continue
            p = self.provider(t.provider)
            if not p.has_receipts:
                self._final(t, NO_RECEIPT, "NoReceipts", f"{p.type}: no delivery receipts (nothing is sent)",
                            updates, now)
            elif not t.sent.ref and not p.finds_lost_answers:
                if t.lost:
                    self._final(t, UNSETTLEABLE, "Unknown", f"{p.type} finds a message only by the submission id "
                                "its lost answer carried", updates, now)
                else:
                    self._final(t, NO_RECEIPT, "NoSubmissionId", "the journal has no submission id for it",
                                updates, now)
            elif p.receipt_lookback is not None and now - t.sent.sent > p.receipt_lookback:
                self._give_up(t, updates, now, f"sent before {p.type}'s receipts reach back")
        self.ledger.learn_receipts(updates)

    def askable(self) -> list[Track]:
        return [t for t in self.tracks if t.open]

    # --- asking -----------------------------------------------------------------------------
    def round(self) -> None:
        """Ask each provider once about every open row."""
        groups: dict[str, list[Track]] = {}
        open_rows = self.askable()
        self.open_rows = len(open_rows)
        for t in open_rows:
            groups.setdefault(t.provider, []).append(t)
        for section, tracks in groups.items():
            self._ask(self.provider(section), section, tracks)
        self.result.rounds += 1

    def _ask(self, p: Provider, section: str, tracks: list[Track]) -> None:
        asked = {t.id: t for t in tracks}
        self._asked_by_number: dict[str, list[Track]] = {}
        for t in tracks:
            self._asked_by_number.setdefault(_digits(t.sent.phone), []).append(t)
        if p.receipts_consumed:  # reports an earlier run pulled from the queue and kept
            kept = [Report(**json.loads(j)) for j in self.journal.inbox(section)]
            if kept:
                self._page(p, section, asked, [], kept, from_inbox=True)
        # a number's other messages, so a lost answer is told from them by their ids
        lost: dict[str, list[float]] = {}
        for t in tracks:
            if not t.sent.ref:
                lost.setdefault(t.sent.phone, []).append(t.sent.sent)
        context = [t.sent for t in self.tracks if t.id not in asked and t.sent.ref and t.sent.phone in lost
                   and any(abs(t.sent.sent - when) < 2 * 86400 for when in lost[t.sent.phone])]
        remaining = [t.sent for t in tracks] + context
        attempt = 0
        while remaining:
            covered: set[tuple[int, int]] = set()
            try:
                for rows, reports in p.receipt_pages(remaining, self.wall()):
                    covered.update(s.id for s in rows)
                    self._page(p, section, asked, rows, reports)
                    attempt = 0
                return
            except RequestFailed as exc:
                o = exc.outcome
                remaining = [s for s in remaining if s.id not in covered]
                if o.kind is Kind.FATAL:
                    raise _Stop(RunEnd.FATAL, f"provider {section!r} refused the receipt query: {o.code}: {o.message}")
                attempt += 1
                # the send's retry policy (a query is safe to repeat, so a lost answer is retried too)
                policy = Policy(p.settings.max_attempts, p.settings.backoff_base, p.settings.backoff_cap)
                if o.kind in (Kind.RETRYABLE, Kind.UNKNOWN) and attempt < policy.max_attempts:
                    wait = o.retry_after if o.retry_after is not None else policy.backoff(attempt, self.rng)
                    log.info("%s: receipt query failed (%s), retry %d in %.2fs", section, o.code, attempt, wait)
                    self.sleep(wait)
                    continue
                if o.code == "ConnectionFailed":
                    raise _Stop(RunEnd.FATAL, f"provider {section!r} could not be reached for receipts")
                self.result.notes.append(f"{section}: a receipt query failed ({o.code}: {o.message}); "
                                         f"{len([s for s in remaining if s.id in asked])} rows stay pending")
                return

    def _page(self, p: Provider, section: str, asked: dict, rows: list[Sent], reports: list[Report], *,
              from_inbox: bool = False) -> None:
        """One answer: join it, record it in one transaction, keep what a pull-once queue handed
        over that is no row's yet (before the next page is asked for)."""
        now = self.wall()
        numbers = {_digits(r.phone) for r in reports}
        candidates = [t for d in numbers for t in self._asked_by_number.get(d, ()) if t.open]
        was_open = len(candidates)
        matched = join(candidates, reports, self.claimed, p.expected_corr)
        updates: list[ReceiptUpdate] = []
        for tid, r in matched.items():
            updates.append(self._learn(self.by_id[tid], r, now))
        for s in rows:
            t = asked.get(s.id)
            if t is not None and t.id not in matched and t.open:
                t.status = PENDING
                updates.append(ReceiptUpdate(*t.id, t.sent.sent, PENDING, checked=now, queries=1))
        taken = {id(r) for r in matched.values()}
        if p.receipts_consumed:
            spare = [r for r in reports if id(r) not in taken and (r.ref, _digits(r.phone)) not in self.claimed]
            if from_inbox:
                self.journal.drop_from_inbox(section, [(r.ref, r.phone) for r in reports if id(r) in taken])
            else:
                self.journal.keep_in_inbox(section, [(r.ref, r.phone, json.dumps(asdict(r))) for r in spare])
        self.ledger.learn_receipts(updates)
        log.info("%s: %d rows asked about, %d reports, %d joined", section, len(rows), len(reports), len(matched))
        self.open_rows -= was_open - sum(1 for t in candidates if t.open)
        self.progress(self.result, self.open_rows, 0.0)

    def _learn(self, t: Track, r: Report, now: float) -> ReceiptUpdate:
        """A row's report: its status, and where that changes it, its journal state."""
        if t.lost:  # found: the provider took it after all, so it is never resent
            self.result.found += 1
            t.sent = replace(t.sent, ref=r.ref)
            if r.ref:
                self.claimed.add((r.ref, _digits(t.sent.phone)))
        # what this makes of the row is the ledger's to say (and to write, in learn_receipts)
        state, state_code, state_message = Ledger.receipt_state(t.state, r.status == FAILED, r.code, r.message) \
            or (None, None, None)
        t.status, t.code, t.message = r.status, r.code, r.message
        t.received, t.parts = r.received, r.parts
        if state is not None:
            t.state = state
        return ReceiptUpdate(*t.id, t.sent.sent, r.status, r.code, r.message, r.received, r.parts, r.ref,
                             now, 1, state, state_code, state_message)

    # --- the end ----------------------------------------------------------------------------
    def _final(self, t: Track, status: str, code: str, message: str, updates: list, now: float) -> None:
        t.status, t.code, t.message = status, code, message
        updates.append(ReceiptUpdate(*t.id, t.sent.sent, status, code, message, checked=now))

    def _give_up(self, t: Track, updates: list, now: float, why: str) -> None:
        if t.lost and not t.sent.ref and not self.provider(t.provider).finds_lost_answers:
            self._final(t, UNSETTLEABLE, "Unknown", f"{self.provider(t.provider).type} finds a message only by the "
                        "submission id its lost answer carried", updates, now)
        elif t.lost:
            self._final(t, NOT_FOUND, "NotFound", f"the provider had no record of it {why}; "
                        "send --retry-unknown resends it", updates, now)
        else:
            self._final(t, NO_RECEIPT, "NoReceipt", f"no delivery receipt {why}", updates, now)

    def give_up(self) -> None:
        """Rows still pending --give-up-after (or the provider's reach) after they were sent."""
        now, updates = self.wall(), []
        for t in self.askable():
            p = self.provider(t.provider)
            window = self.req.give_up_after
            if t.lost and _digits(t.sent.phone) in p.incomplete:
                continue  # its number's reports could not all be read: never "not found" on that
            if t.lost:
                # "not taken" only once the provider could have reported it: never before its
                # report delay, whatever --give-up-after says (the row stays unknown, searched for)
                window = max(window, p.receipt_report_delay())
            if p.receipt_lookback is not None:
                window = min(window, p.receipt_lookback)
            if now - t.sent.sent >= window:
                self._give_up(t, updates, now, f"within {_span(window)} of sending")
        self.ledger.learn_receipts(updates)

    def read_input(self, source, validator: Validator | None, writer: FailuresWriter | None,
                   own: WorkingSet | None, held=None) -> None:
        """One pass over the input: each row's estimated parts and template, and the rows whose
        delivery failed, in input order, into the undelivered failures file."""
        estimator = Estimator(self.cfg.templates)
        prefixes = {t.ref_prefix: t.id[0] for t in self.tracks}
        for raw in source.rows():
            if raw.ref and ":" in raw.ref:
                prefix, _, seq = raw.ref.partition(":")
                tid = (prefixes.get(prefix, -1), int(seq)) if seq.isdigit() else None
            else:
                tid = (own.id, raw.seq) if own is not None else None
            t = self.by_id.get(tid) if tid is not None else None
            if t is None:
                continue
            msg = validator.validate(raw) if validator is not None else None
            if isinstance(msg, Message):
                t.estimate = _parts(estimator, msg)
                if t.template == "-":
                    t.template = msg.template_id
            if writer is not None and t.state == RowState.UNDELIVERED:
                if held is None or held.claim(*t.id) is None:  # else another failures file holds it (held.py)
                    writer.write(raw.record, raw.line, t.code, t.message or t.code, retryable(t.code), t.sms_ref)
                t.written = True
        self.result.estimate_known = True
        self.result.estimate_lower_bound = estimator.lower_bound

    def summarise(self) -> None:
        res = self.result
        res.total, res.by_template, res.by_country = Deliveries(), {}, {}
        for t in self.tracks:
            res.total.add(t)
            res.by_template.setdefault(t.template, Deliveries()).add(t)
            res.by_country.setdefault(t.region, Deliveries()).add(t)
            if t.lost:
                if t.status == NOT_FOUND:
                    res.not_found += 1
                    if len(res.not_found_refs) < 100:
                        res.not_found_refs.append(t.sms_ref)
                elif t.status == UNSETTLEABLE:
                    res.unsettleable += 1
                    kind = res.providers.get(t.provider, t.provider)
                    if kind not in res.unsettleable_types:
                        res.unsettleable_types.append(kind)
                else:
                    res.searching += 1
            if t.state == RowState.UNDELIVERED and not t.written:
                res.undelivered_unwritten += 1


def _parts(estimator: Estimator, msg: Message) -> int:
    """The plan's parts for one message (Estimator counts per country: the growth is this one)."""
    region = region_of(msg.phone, msg.country_code)
    before = estimator.by_country.get(region, {}).get("parts", 0)
    estimator.add(msg)
    return estimator.by_country[region]["parts"] - before


def _span(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


# --- the command's library call ---------------------------------------------------------------
def _open_input(req: ReceiptsRequest):
    """The input as the send read it, or None when only the journal is given (stdin not piped
    again: a terminal, or nothing on it)."""
    if req.input is None:
        return None
    if req.input == "-":

        try:
            if sys.stdin is None or sys.stdin.isatty():
                return None
        except (AttributeError, ValueError):
            return None
        try:
            return open_source("-", req.fmt)
        except InputError as exc:
            if req.journal and exc.reason == "empty input":
                return None
            raise
    return open_source(req.input, req.fmt)


def collect(req: ReceiptsRequest, *, progress=None, sleep: Callable[[float], None] = time.sleep,
            transport=None) -> Result:
    """Ask, join, record, and (with --wait) keep asking; then give up on what is overdue, write
    the undelivered failures file and count. SmsCliError before anything is asked (exit 2).
    `transport`, `sleep`: a scripted wire and pauses that take no time, for tests."""
    started = time.monotonic()
    cfg = load_config(req.config, strict_env=False)  # each provider asked checks its own credentials
    register_secrets(cfg.secrets)
    source = _open_input(req)
    try:
        if req.journal:
            jpath = Path(req.journal)
        elif source is not None:  # the journal a send of this input records into, found as send finds it
            jpath = locate_journal(SendRequest(req.input, config=req.config, provider=req.provider), source,
                                   False, [])
        else:
            raise SmsCliError("give the INPUT the send read, or --journal PATH (a stdin run's journal is "
                              "sms-stdin-<hash>.journal.sqlite)")
        if not jpath.exists():
            raise SmsCliError(f"{jpath}: no journal (receipts reads the journal of a send; pass the send's "
                              "INPUT, or --journal PATH)")
        journal = Journal(jpath)
        try:
            return _collect(req, cfg, journal, jpath, source, started, progress, sleep, transport)
        finally:
            journal.close()
    finally:
        if source is not None:
            source.cleanup()


def _collect(req, cfg, journal, jpath, source, started, progress, sleep, transport) -> Result:
    own: WorkingSet | None = None
    if source is not None:
        ref = source.first_ref()
        origin = journal.find_set(ref.partition(":")[0]) if ref and ":" in ref else None
        own = journal.find_set(source.digest) or journal.other_kind(source.digest)  # else: a rehearsal's
        sets = [ws for ws in (origin, own) if ws is not None]
        if not sets:
            raise SmsCliError(f"{jpath} holds no run of {source.display}; pass --journal with the journal of "
                              "its send")
    else:
        sets = journal.all_sets()
        if not sets:
            raise SmsCliError(f"{jpath} holds no run")
    result = Result(str(jpath), source.display if source is not None else None)
    col = Collector(req, cfg, journal, sets, result, sleep=sleep, progress=progress, transport=transport)
    try:
        try:
            col.settle_the_unaskable()
            deadline = col.clock() + max(0.0, req.wait)
            while True:
                col.round()
                left = deadline - col.clock()
                if not col.askable() or left <= 0:
                    break
                pause = min(req.poll_interval, left)
                col.progress(result, len(col.askable()), pause)
                sleep(pause)
        except _Stop as stop:
            result.stopped, result.fatal = stop.reason, stop.detail
        except KeyboardInterrupt:
            result.stopped = RunEnd.SIGINT
        if result.stopped is None:
            col.give_up()
    finally:
        col.close()
    _write_undelivered(req, cfg, col, source, own or sets[0], result)
    col.summarise()
    result.elapsed = time.monotonic() - started
    return result


def _write_undelivered(req, cfg, col: Collector, source, own: WorkingSet, result: Result) -> None:
    if source is None:
        return
    region = (req.region or cfg.default_region or "").upper() or None
    defaults = Defaults(req.template, tuple(req.params), req.sender_id)
    validator = Validator(cfg.templates, region, defaults, None, key_prefix=source.digest[:12] + "-")
    fpath = Path(req.failures) if req.failures else undelivered_path(req.input, source.fmt, source.digest)
    try:
        writer = FailuresWriter(fpath, source.fmt, source.header, defaults, getattr(source, "delimiter", ",") or ",")
    except SmsCliError as exc:
        result.failures_lost = str(exc)
        writer = None
    try:
        held = held_mod.for_input(req.input, source, fpath, col.journal.path,
                                  Identity(own.id, own.ref_prefix, col.journal)) if writer else None
        col.read_input(source, validator, writer, own if own.digest == source.digest else None, held)
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    if writer is None:
        return
    try:
        path, stale = writer.commit()
    except SmsCliError as exc:
        result.failures_lost = str(exc)
        return
    result.failures_path = str(path) if path else None
    result.stale_removed = str(fpath) if stale else None
