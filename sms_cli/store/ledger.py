"""The ledger: the only code that decides how a row ends, counts it, and writes it down.

Every row of a run reaches `settle` (a row that was never sent) or `answered` (the provider's
answer to a request) exactly once, and leaves as one `Fate`. Under one lock the ledger counts
it (overall, per template, per failure reason), records it in the journal, and writes it to the
failures file with its reason and retryable flag. Nothing else touches those three: the
journal only stores the `RowState` the ledger hands it, per request, at a run's end (`cut_off`:
rows an earlier process left in flight), and when receipts report what they found
(`receipt_state`, `learn_receipts`).
"""
from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field

from ..core.errors import SmsCliError
from ..core.model import Kind, Message, Outcome
from ..core.outcomes import JOURNAL_STATE, Fate, RowState
from ..core.textsafe import mask_numbers

MAX_REASONS = 1000  # distinct failure reasons kept for the summary
MAX_REFS = 100  # submission ids kept for the summary

# how a provider's final answer ends a row (the dispatcher decides whether it is final)
FATE_OF = {Kind.ACCEPTED: Fate.ACCEPTED, Kind.PERMANENT: Fate.REJECTED, Kind.RETRYABLE: Fate.FAILED,
           Kind.UNKNOWN: Fate.UNKNOWN, Kind.FATAL: Fate.NOT_SENT, Kind.NOT_SENT: Fate.NOT_SENT}


def reason_key(code: str, message: str) -> tuple[str, str]:
    """A failure reason as the summary groups it: each phone number in it is masked out whole
    (the number is in the failures file), so rows failing for one reason make one line."""
    return code, mask_numbers(message)[:120]


@dataclass
class Row:
    """What the ledger needs of a row that is settled without being sent."""

    record: dict
    line: int
    ref: str  # sms_ref: <working set>:<seq>
    template: str | None


@dataclass
class Tally:
    counts: Counter = field(default_factory=Counter)  # Fate -> rows
    by_template: dict[str, Counter] = field(default_factory=dict)  # template -> Fate -> rows
    reasons: Counter = field(default_factory=Counter)  # (code, masked message) -> rows
    more_reasons: int = 0  # rows whose reason did not fit in MAX_REASONS
    refs: list[str] = field(default_factory=list)  # the first MAX_REFS submission ids
    requests: int = 0  # requests sent (each retry and each split half is one)
    retries: int = 0  # of which: a retry after a transient failure
    splits: int = 0  # of which: a half of a request split to find the numbers it refused
    sent_rows: int = 0  # rows that left in a request (first attempt), for the rate
    by_route: dict[tuple[str, str], Counter] = field(default_factory=dict)  # (route, provider) -> Fate -> rows


class Ledger:
    def __init__(self, journal=None, failures=None, ref_of=None, on_opt_out=None):
        """`journal`: None in a dry run. `failures`: the FailuresWriter, or None. `ref_of(msg)`
        gives a message's sms_ref. `on_opt_out(phone, code)`: the provider refused a number as
        opted out or blacklisted (the suppression list learns it)."""
        self.journal, self.failures = journal, failures
        self.ref_of = ref_of or (lambda m: "")
        self.on_opt_out = on_opt_out
        self.lock = threading.Lock()
        self.tally = Tally()
        self.write_failures = True  # False once the failures file cannot be written (disk full)
        self.local_error: SmsCliError | None = None  # that write's error: the run must stop
        self.opt_out_error: str | None = None

    # --- the start of a run ------------------------------------------------------------------------
    def start_run(self, ws, input_name: str, provider: str, options: dict) -> int:
        """Open a run on `ws` (journal.WorkingSet). Rows some earlier process left in flight were
        cut off mid-request: their outcome is unknown (this process holds the journal's lock, so
        none is in flight now), and no re-run sends them blindly. Every reader already takes a
        row in flight for unknown (the stream, receipts, `earlier`); the journal is told so by
        `cut_off` once this run's requests are over: finding those rows reads the whole journal
        (90 ms at 1,000,000 rows), which the first request of a resume must not wait for."""
        return self.journal.start_run(ws, input_name, provider, options)

    @staticmethod
    def earlier(counts: dict) -> dict:
        """A working set's rows per state, as this run finds them: rows in flight then are unknown."""
        out = dict(counts)
        cut = out.pop(RowState.INFLIGHT, 0)
        if cut:
            out[RowState.UNKNOWN] = out.get(RowState.UNKNOWN, 0) + cut
        return out

    def cut_off(self) -> None:
        """Rows an earlier process left in flight (any set of the journal): unknown, with why."""
        self.journal.restate(RowState.INFLIGHT, RowState.UNKNOWN, "Unknown", "cut off while the request was in flight")

    # --- rows that were never sent ------------------------------------------------------------
    def settle(self, row: Row, fate: Fate, code: str = "", message: str = "") -> None:
        with self.lock:
            self._count(fate, row.template, code, message)
            if fate.to_failures_file:
                self._file(row.record, row.line, code, message, fate, row.ref)

    def settle_counted(self, fate: Fate, per_template: dict[str, int], *, total: bool = True) -> None:
        """Rows counted, not read (a resume's accepted prefix): nothing to file or journal.
        `total=False`: their number is in the tally already (`count_unread`), only the split per
        template is added (a resume learns it after its requests, see Journal.resume_view)."""
        with self.lock:
            t = self.tally
            for template, n in per_template.items():
                if total:
                    t.counts[fate] += n
                per = t.by_template.get(template)
                if per is None:
                    per = t.by_template[template] = Counter()
                per[fate] += n

    def count_unread(self, fate: Fate, n: int) -> None:
        """The number of a resume's accepted prefix, before its split per template is known."""
        with self.lock:
            self.tally.counts[fate] += n

    # --- requests -----------------------------------------------------------------------------
    def sending(self, batch: list[Message], attempt: int, *, split: bool = False) -> None:
        """Before a request leaves: durably in flight (a crash from here on means unknown)."""
        if self.journal is not None:
            self.journal.mark_inflight(batch, attempt)
        with self.lock:
            t = self.tally
            t.requests += 1
            if split:
                t.splits += 1
            elif attempt > 1:
                t.retries += 1
            else:
                t.sent_rows += len(batch)

    def answered(self, batch: list[Message], outcomes: list[Outcome], final: list[bool], attempt: int) -> None:
        """The answer to one request. Rows whose answer is `final` end here; the others stay
        in the journal as retryable until the dispatcher sends them again."""
        # a fatal answer (credentials, balance) says nothing about the row: it was not sent
        outcomes = [Outcome(Kind.NOT_SENT, "NotSent", f"not sent: {o.code}: {o.message}") if o.kind is Kind.FATAL
                    else o for o in outcomes]
        fates = [FATE_OF[o.kind] if f else None for o, f in zip(outcomes, final)]
        try:
            if self.journal is not None:
                states = [JOURNAL_STATE[f] if f else RowState.RETRYABLE for f in fates]
                self.journal.record(batch, outcomes, states, attempt)
        finally:
            # the answer is known even when the journal could not take it (a full disk): count
            # and file it all the same; the journal keeps these rows in flight, which the next
            # run reads as unknown, so none is sent again
            self._settle_many(batch, outcomes, fates)

    def stopped(self, batch: list[Message], fate: Fate, code: str, message: str, *, journal: bool = False) -> None:
        """Rows handed to the dispatcher that end without an answer of their own: not sent
        (the run stopped), or unknown (still in flight when the grace period ran out)."""
        if journal and self.journal is not None and fate is Fate.UNKNOWN:
            self.journal.mark_unknown(batch, message)
        self._settle_many(batch, [Outcome(Kind.UNKNOWN, code, message)] * len(batch), [fate] * len(batch))

    def _settle_many(self, batch, outcomes, fates) -> None:
        accepted: dict[str, int] = {}  # template -> rows: a batch is mostly accepted, counted at once
        refs: dict[str, None] = {}  # submission ids in this batch, in order (usually one)
        with self.lock:
            t = self.tally
            for m, o, fate in zip(batch, outcomes, fates):
                if fate is None:
                    continue
                if m.route is not None:  # routes: where each row ended, for the summary
                    per = t.by_route.get((m.route, m.provider or "-"))
                    if per is None:
                        per = t.by_route[(m.route, m.provider or "-")] = Counter()
                    per[fate] += 1
                if fate is Fate.ACCEPTED:
                    accepted[m.template_id] = accepted.get(m.template_id, 0) + 1
                    if o.ref:
                        refs[o.ref] = None
                    continue
                self._count(fate, m.template_id, o.code, o.message)
                if fate.to_failures_file:
                    self._file(m.record, m.line, o.code, o.message, fate, self.ref_of(m))
                    if o.opt_out and fate is Fate.REJECTED and self.on_opt_out is not None:
                        try:
                            self.on_opt_out(m.phone, o.code)
                        except OSError as exc:  # the list cannot be written: say so, send on
                            self.opt_out_error = f"suppression list not updated: {exc}"
            for ref in refs:
                if len(t.refs) < MAX_REFS and ref not in t.refs:
                    t.refs.append(ref)
            for template, n in accepted.items():
                t.counts[Fate.ACCEPTED] += n
                per = t.by_template.get(template)
                if per is None:
                    per = t.by_template[template] = Counter()
                per[Fate.ACCEPTED] += n

    # --- under the lock -----------------------------------------------------------------------
    def _count(self, fate: Fate, template: str | None, code: str, message: str) -> None:
        t = self.tally
        t.counts[fate] += 1
        per = t.by_template.get(template or "-")
        if per is None:
            per = t.by_template[template or "-"] = Counter()
        per[fate] += 1
        if fate.to_failures_file:
            key = reason_key(code, message)
            if key in t.reasons or len(t.reasons) < MAX_REASONS:
                t.reasons[key] += 1
            else:
                t.more_reasons += 1

    def _file(self, record: dict, line: int, code: str, message: str, fate: Fate, ref: str) -> None:
        if self.failures is None or not self.write_failures:
            return
        try:
            self.failures.write(record, line, code, message, fate.retryable, ref)
        except SmsCliError as exc:  # a full disk: count on, write no more; the run stops
            self.write_failures = False
            self.local_error = exc

    # --- delivery receipts (sms-cli receipts) -------------------------------------------------
    @staticmethod
    def receipt_state(state: RowState, undelivered: bool, code: str = "", message: str = ""
                      ) -> tuple[RowState, str | None, str | None] | None:
        """What a delivery receipt makes of a row in `state`: (new state, its code, its message),
        or None to leave it. A row whose answer was lost (unknown, inflight) is found: the
        provider took it, so it is accepted (or undelivered) and never resent; an accepted row
        whose delivery failed is undelivered (resent only from a failures file)."""
        if undelivered:
            return RowState.UNDELIVERED, code or "Undelivered", message or code or "not delivered"
        if state in (RowState.UNKNOWN, RowState.INFLIGHT):
            return RowState.ACCEPTED, None, None
        return None

    def learn_receipts(self, updates) -> None:
        """What receipt queries found (journal.ReceiptUpdate): each row's receipt and, where it
        changes, the state `receipt_state` gave it."""
        self.journal.record_receipts(updates)
