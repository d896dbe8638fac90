"""The row stream: read -> find the row in the ledger -> filter -> validate, as a generator of
`Send` (batch and send this message) and `Settle` (this row ends here, with this fate).

It decides nothing about how a row ends beyond which of the two it is: the ledger counts and
files a `Settle`, the dispatcher sends a `Send`. Everything it needs comes in as values
(rows, the validator, the ledger's view of the journal, options), so it is tested with plain
lists.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from ..store.ledger import Row
from ..core.heap import while_streaming
from ..core.model import Message
from ..core.outcomes import Fate, Retryable, RowState, RunEnd
from ..input.rows import RawRow
from ..validate.validator import Rejected, Validator


@dataclass(slots=True)
class Send:
    msg: Message


@dataclass(slots=True)
class Settle:
    row: Row
    fate: Fate
    code: str = ""
    message: str = ""


@dataclass
class StreamOptions:
    limit: int | None = None  # at most this many messages sent by this invocation
    dedupe: bool = False
    only_retryable: bool = False
    retry_unknown: bool = False


class Identity:
    """Which ledger row an input row is: (working set, seq). Rows of the input itself are
    (own set, their seq); rows of a failures file name theirs in sms_ref = <set digest>:<seq>.

    `journal` may be None (a dry run with no journal yet): then no row is known."""

    def __init__(self, own_set: int, own_prefix: str, journal=None, sets: dict[str, tuple[int, str]] | None = None):
        self.own_set, self.own_prefix, self.journal = own_set, own_prefix, journal
        self.prefixes = {own_set: own_prefix}
        self._by_prefix: dict[str, int | None] = {own_prefix: own_set}
        for prefix, (set_id, full) in (sets or {}).items():
            self._by_prefix[prefix] = set_id
            self.prefixes[set_id] = full

    def resolve(self, ref: str | None) -> tuple[int, int] | None:
        """(set id, seq) named by an sms_ref, or None when this journal does not know it."""
        if not ref or ":" not in ref:
            return None
        prefix, _, seq = ref.partition(":")
        if not seq.isdigit():
            return None
        if prefix not in self._by_prefix:
            ws = self.journal.find_set(prefix) if self.journal is not None and len(prefix) >= 8 else None
            self._by_prefix[prefix] = ws.id if ws else None
            if ws:
                self.prefixes[ws.id] = ws.ref_prefix
        set_id = self._by_prefix[prefix]
        return None if set_id is None else (set_id, int(seq))

    def prefix(self, set_id: int) -> str:
        return self.prefixes.get(set_id, self.own_prefix)

    def ref(self, set_id: int, seq: int) -> str:
        return f"{self.prefix(set_id)}:{seq}"

    def ref_of(self, msg: Message) -> str:
        return self.ref(msg.set_id, msg.seq)


@while_streaming  # fewer garbage collections while rows stream (core/heap.py)
def row_stream(rows: Iterable[RawRow], validator: Validator, opts: StreamOptions, ident: Identity, *,
               resend: bool = False, taken: set[int] | None = None, guards=None, start: int = 0,
               seen: set[int] | None = None, repeats=None, held=None,
               stopping: Callable[[], RunEnd | None] = lambda: None,
               why_stopped: Callable[[], str | None] = lambda: None) -> Iterator[Send | Settle]:
    """`resend`: the input is a failures file, so rows the provider refused are sent again
    (unless --only-retryable); re-running an input never resends them. `taken`: message keys an
    earlier version of this input had accepted (--continue-edited). `stopping()`: None, or
    why the run stops: a signal (settle the rest as not sent, quickly), or FATAL (still validate the rest
    so invalid rows keep their reason). `start`: the rows begin at this seq (the ones before it
    were counted from the journal, whose --dedupe keys come as `seen`). `repeats`: without
    --dedupe, a Repeats (repeats.py) told each message key, to warn of rows sent twice. `held`:
    None, or the rows other failures files of the working set hold (store/held.py).
    `why_stopped()`: the stop's detail (a fatal answer's code and text), the reason given to the
    rows this stream files as not sent after the stop."""
    journal = ident.journal
    own_set = ident.own_set
    merge = journal.states(own_set, start) if journal is not None else iter(())
    nxt = next(merge, None)
    seen = seen if seen is not None else set()
    sent = 0
    limit, dedupe = opts.limit, opts.dedupe
    check = guards.check if guards is not None and guards.active else None
    validate = validator.validate

    def row(raw: RawRow, set_id: int, seq: int, template: str | None = None) -> Row:
        if template is None:
            template = validator.effective(raw).template_id or None
        return Row(raw.record, raw.line, ident.ref(set_id, seq), template)

    stop = None
    for raw in rows:
        # --- which ledger row is this, and what does the ledger know of it
        set_id, seq = own_set, raw.seq
        state = None
        where = ident.resolve(raw.ref) if raw.ref else None
        if where is not None:
            set_id, seq = where
            state = journal.state(set_id, seq) if journal is not None else None
        else:
            while nxt is not None and nxt.seq < seq:
                nxt = next(merge, None)
            if nxt is not None and nxt.seq == seq:
                state = nxt
        if not raw.seq & 31:  # a stop is noticed within 32 rows; the dispatcher sends nothing meanwhile
            stop = stopping()
        if held is not None and (state is None or state.state != RowState.ACCEPTED):
            other = held.claim(set_id, seq)
            if other is not None:  # not accepted, and that file holds it: it stays there alone
                unknown = state is not None and state.state in (RowState.UNKNOWN, RowState.INFLIGHT)
                yield Settle(row(raw, set_id, seq), Fate.ELSEWHERE_UNKNOWN if unknown else Fate.ELSEWHERE,
                             "Elsewhere", f"not accepted; in {other}")
                continue
        if stop is not None and stop is not RunEnd.FATAL:  # interrupted
            yield Settle(row(raw, set_id, seq), Fate.NOT_SENT, "NotSent", "not sent: the run was interrupted")
            continue
        if state is not None:
            st = state.state
            if st == RowState.ACCEPTED:
                if dedupe:
                    seen.add(state.msg)
                yield Settle(row(raw, set_id, seq), Fate.ACCEPTED_EARLIER)
                continue
            if st in (RowState.UNKNOWN, RowState.INFLIGHT) and not opts.retry_unknown:
                if dedupe:
                    seen.add(state.msg)
                yield Settle(row(raw, set_id, seq), Fate.UNKNOWN, "Unknown",
                             state.message or "outcome unknown; check delivery before --retry-unknown")
                continue
            if st == RowState.REJECTED and (not resend or opts.only_retryable):
                yield Settle(row(raw, set_id, seq), Fate.REJECTED, state.code or "Rejected", state.message)
                continue
            if st == RowState.UNDELIVERED and not resend:
                # accepted, then not delivered (sms-cli receipts): a failures file resends it (with
                # --only-retryable only when its retryable is yes, below); a re-run of the input never
                yield Settle(row(raw, set_id, seq), Fate.REJECTED, state.code or "Undelivered", state.message)
                continue
        elif raw.retryable == Retryable.UNKNOWN and not opts.retry_unknown:
            # a failures-file row whose ledger is not at hand: still never resent by itself
            yield Settle(row(raw, set_id, seq), Fate.UNKNOWN, "Unknown",
                         "outcome unknown in an earlier run; resend with --retry-unknown")
            continue
        # --- the row may go: validate it
        msg = validate(raw)
        if isinstance(msg, Rejected):
            yield Settle(row(raw, set_id, seq), Fate.INVALID, msg.code, msg.reason)
            continue
        if raw.retryable == Retryable.NO and opts.only_retryable:
            yield Settle(row(raw, set_id, seq, msg.template_id), Fate.SKIPPED, "Skipped", "marked retryable: no; left out by --only-retryable")
            continue
        if stop is RunEnd.FATAL:
            yield Settle(row(raw, set_id, seq, msg.template_id), Fate.NOT_SENT, "NotSent",
                         f"not sent: {why_stopped() or 'the run stopped'}")
            continue
        msg.set_id, msg.seq = set_id, seq
        if set_id != own_set or raw.seq != seq:
            msg.key = f"{ident.prefix(set_id)[:12]}-{seq}"
        key = msg.digest  # computed by the validator, before the adapter reshaped the params
        if taken is not None and key in taken:
            yield Settle(row(raw, set_id, seq, msg.template_id), Fate.ACCEPTED_EARLIER)
            continue
        if dedupe:
            if key in seen:
                yield Settle(row(raw, set_id, seq, msg.template_id), Fate.DUPLICATE)
                continue
            seen.add(key)
        elif repeats is not None:
            repeats.add(key, raw.line)
        if check is not None:
            guarded = check(msg)
            if guarded is not None:
                yield Settle(row(raw, set_id, seq, msg.template_id), *guarded)
                continue
        if limit is not None and sent >= limit:
            yield Settle(row(raw, set_id, seq, msg.template_id), Fate.DEFERRED, "Deferred",
                         f"not sent: --limit {limit} reached; run the same command again to continue")
            continue
        sent += 1
        yield Send(msg)
