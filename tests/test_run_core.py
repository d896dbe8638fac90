"""The run's parts in-process, with fakes and plain lists: the row stream, the dispatcher's
retries and bisection, the ledger's vocabulary and exit codes."""
from __future__ import annotations

import random

from sms_cli.core.settings import ProviderSettings
from sms_cli.run.dispatch import Dispatcher, Policy, Stop
from sms_cli.core.errors import ExitCode
from sms_cli.store.journal import Recorded
from sms_cli.store.ledger import Ledger
from sms_cli.core.model import Kind, Message, Outcome
from sms_cli.core.outcomes import Fate, RunEnd, exit_code
from sms_cli.providers.base import Provider
from sms_cli.input.rows import RawRow
from sms_cli.run.stream import Identity, Send, Settle, StreamOptions, row_stream
from sms_cli.validate.validator import Defaults, Validator

FAST = Policy(max_attempts=3, backoff_base=0.0, backoff_cap=0.0, grace=0.1)


def settings(**kw) -> ProviderSettings:
    return ProviderSettings(name="fake", type="fake", endpoint="http://fake", rate_limit=0, connect_timeout=1,
                            read_timeout=1, max_attempts=kw.pop("max_attempts", 3), **kw)


class Fake(Provider):
    """Answers from a function of the batch; never touches the network."""

    type = "fake"
    uses_http = False
    max_batch = 8

    def __init__(self, answer, **kw):
        super().__init__(settings(**kw))
        self.answer = answer
        self.requests: list[list[str]] = []

    def _send(self, batch):
        self.requests.append([m.phone for m in batch])
        return self.answer(batch)


def msgs(n: int) -> list[Message]:
    return [Message(i, i + 2, f"+659123{i:04d}", 65, f"9123{i:04d}", "T", [str(i)]) for i in range(n)]


def dispatch(provider, batches, policy=FAST, concurrency=2) -> Ledger:
    ledger = Ledger()
    d = Dispatcher(provider, ledger, policy, Stop(), concurrency=concurrency, rng=random.Random(1))
    for b in batches:
        d.submit(b)
    d.close()
    return ledger


# --- dispatcher -------------------------------------------------------------------------------
def test_bisection_isolates_the_numbers_a_whole_request_was_refused_for():
    bad = {"+6591230003", "+6591230006"}

    def answer(batch):
        if any(m.phone in bad for m in batch):
            return [Outcome(Kind.PERMANENT, "isv.BLACK_KEY_CONTROL_LIMIT", "black list", per_number=True)] * len(batch)
        return [Outcome(Kind.ACCEPTED, ref="biz")] * len(batch)

    p = Fake(answer)
    ledger = dispatch(p, [msgs(8)])
    t = ledger.tally
    assert t.counts[Fate.ACCEPTED] == 6 and t.counts[Fate.REJECTED] == 2
    assert t.splits == len(p.requests) - 1 and t.requests == len(p.requests)
    # every request a bad number was in, and only those, was split into its two halves
    refused = [r for r in p.requests if set(r) & bad]
    for r in refused:
        if len(r) > 1:
            mid = len(r) // 2
            assert r[:mid] in p.requests and r[mid:] in p.requests
    assert all(len(r) == 8 or any(r == q[:len(q) // 2] or r == q[len(q) // 2:] for q in refused if len(q) > 1)
               for r in p.requests)
    # each bad number ends alone, once; each other number goes in exactly one request, untouched by one
    assert sorted(r[0] for r in refused if len(r) == 1) == sorted(bad)
    good = [ph for r in p.requests if not set(r) & bad for ph in r]
    assert sorted(good) == sorted({m.phone for m in msgs(8)} - bad)


def test_a_request_that_cannot_be_built_leaves_its_row_not_sent_and_the_others_go():
    def answer(batch):
        for m in batch:
            m.params[0].encode("utf-8")  # a lone surrogate cannot be encoded
        return [Outcome(Kind.ACCEPTED)] * len(batch)

    batch = msgs(8)
    batch[5].params = ["\ud83d"]
    ledger = dispatch(Fake(answer), [batch])
    assert ledger.tally.counts[Fate.ACCEPTED] == 7 and ledger.tally.counts[Fate.NOT_SENT] == 1
    assert ledger.tally.counts[Fate.UNKNOWN] == 0  # nothing left: never unknown


def test_retries_only_the_numbers_that_failed_then_gives_up():
    calls = []

    def answer(batch):
        calls.append(len(batch))
        return [Outcome(Kind.RETRYABLE, "busy", "busy") if m.seq % 2 else Outcome(Kind.ACCEPTED) for m in batch]

    ledger = dispatch(Fake(answer), [msgs(6)])
    assert calls == [6, 3, 3] and ledger.tally.retries == 2
    assert ledger.tally.counts[Fate.ACCEPTED] == 3 and ledger.tally.counts[Fate.FAILED] == 3


def run_batches(p, batches, concurrency=1) -> tuple[Ledger, Stop]:
    ledger, stop = Ledger(), Stop()
    d = Dispatcher(p, ledger, FAST, stop, concurrency=concurrency, rng=random.Random(1))
    for b in batches:
        d.submit(b)
    d.close()
    return ledger, stop


def test_unreachable_provider_stops_the_run():
    p = Fake(lambda b: [Outcome(Kind.RETRYABLE, "ConnectionFailed", "could not connect")] * len(b))
    ledger, stop = run_batches(p, [msgs(8) for _ in range(10)])
    assert stop.reason == "fatal" and "could not connect" in stop.detail
    assert len(p.requests) == FAST.max_attempts  # the first request's attempts, no more
    t = ledger.tally  # nothing was sent: every row pending for the next run
    assert t.counts[Fate.NOT_SENT] == 80 and sum(t.counts.values()) == 80


def test_unreachable_is_fatal_whatever_the_size_of_the_run():
    # issue 19: two rows met a dead endpoint and the run ended exit 1 (failed rows), while 3,500
    # rows ended exit 3: one request whose every attempt was refused a connection is enough
    p = Fake(lambda b: [Outcome(Kind.RETRYABLE, "ConnectionFailed", "could not connect")] * len(b))
    ledger, stop = run_batches(p, [msgs(2)])
    assert stop.reason == "fatal" and "could not connect" in stop.detail
    assert ledger.tally.counts[Fate.NOT_SENT] == 2 and ledger.tally.counts[Fate.FAILED] == 0
    assert exit_code(ledger.tally.counts, stop.reason) == ExitCode.FATAL


def test_a_fatal_answer_in_the_middle_of_a_split_settles_every_row_once():
    # a request refused for one of its numbers is split; a half then meets the account's limit
    # for one row while the others are throttled: no row may be dropped or counted twice
    def answer(batch):
        if len(batch) == 8:
            return [Outcome(Kind.PERMANENT, "isv.MOBILE_NUMBER_ILLEGAL", "bad", per_number=True)] * 8
        return [Outcome(Kind.FATAL, "LimitExceeded.DailyLimit", "daily limit") if i == 0 else
                Outcome(Kind.RETRYABLE, "RequestLimitExceeded", "throttled") for i in range(len(batch))]

    ledger, stop = run_batches(Fake(answer), [msgs(8)])
    t = ledger.tally
    assert stop.reason == "fatal" and "LimitExceeded.DailyLimit" in stop.detail
    assert t.counts[Fate.NOT_SENT] == 8 and sum(t.counts.values()) == 8


# --- row stream -------------------------------------------------------------------------------
class FakeJournal:
    def __init__(self, states):
        self._states = sorted(states, key=lambda s: s.seq)

    def states(self, set_id, start=0):
        return (s for s in self._states if s.seq >= start)

    def state(self, set_id, seq):
        return next((s for s in self._states if s.seq == seq), None)

    def find_set(self, prefix):
        return None


def raws(*phones) -> list[RawRow]:
    return [RawRow(i, i + 2, {"phone": p, "template_id": "T", "params": ["1"]}) for i, p in enumerate(phones)]


def stream(rows, states=(), **opts):
    ident = Identity(1, "abcdef0123456789", FakeJournal(list(states)))
    return list(row_stream(rows, Validator({}, None, Defaults()), StreamOptions(**opts), ident))


def test_stream_skips_what_the_ledger_holds_and_sends_the_rest():
    out = stream(raws("+6591230000", "+6591230001", "+6591230002", "bad"),
                 [Recorded(0, "accepted", "", "", 0), Recorded(1, "unknown", "Unknown", "lost", 0),
                  Recorded(2, "retryable", "HTTP503", "", 0)])
    kinds = [(type(x).__name__, getattr(x, "fate", None)) for x in out]
    assert kinds == [("Settle", Fate.ACCEPTED_EARLIER), ("Settle", Fate.UNKNOWN), ("Send", None),
                     ("Settle", Fate.INVALID)]
    assert out[3].row.ref == "abcdef0123456789:3"


def test_stream_dedupe_limit_and_refused_rows():
    rows = raws("+6591230000", "(65)91230000", "+6591230001", "+6591230002", "+6591230003")
    out = stream(rows, [Recorded(2, "rejected", "Blacklist", "no", 0)], dedupe=True, limit=1)
    fates = [x.fate if isinstance(x, Settle) else "send" for x in out]
    assert fates == ["send", Fate.DUPLICATE, Fate.REJECTED, Fate.DEFERRED, Fate.DEFERRED]
    assert isinstance(out[0], Send) and out[0].msg.digest != 0


def test_rows_read_after_a_fatal_answer_are_filed_with_its_code():
    # The stream may read rows after a worker's fatal answer and before it stops: those rows
    # are not sent, and their failures-file reason is the answer's code, as for the rows the
    # dispatcher had queued (the account refusal test of test_fidelity.py saw this race)
    ident = Identity(1, "abcdef0123456789", FakeJournal([]))
    out = list(row_stream(raws("+6591230000", "+6591230001"), Validator({}, None, Defaults()), StreamOptions(),
                          ident, stopping=lambda: RunEnd.FATAL, why_stopped=lambda: "215398: daily limit"))
    assert [(x.fate, x.message) for x in out] == [(Fate.NOT_SENT, "not sent: 215398: daily limit")] * 2


def test_exit_code_follows_the_heaviest_fate():
    assert exit_code({Fate.ACCEPTED: 3}, None) == ExitCode.OK
    assert exit_code({Fate.ACCEPTED: 3, Fate.DEFERRED: 1}, None) == ExitCode.DEFERRED_ONLY
    assert exit_code({Fate.UNKNOWN: 1, Fate.DEFERRED: 1}, None) == ExitCode.UNKNOWN_ONLY
    assert exit_code({Fate.INVALID: 1, Fate.UNKNOWN: 1}, None) == ExitCode.NOT_ALL_ACCEPTED
    assert exit_code({Fate.ACCEPTED: 1}, "fatal") == ExitCode.FATAL
    assert exit_code({}, "SIGTERM") == ExitCode.SIGTERM
    assert {f.retryable for f in Fate if f.to_failures_file} == {"yes", "no", "unknown"}


def test_an_answer_the_journal_cannot_record_still_settles_its_rows():
    from sms_cli.core.errors import SmsCliError

    class FullDisk:
        def mark_inflight(self, batch, attempt):
            pass

        def record(self, *args):
            raise SmsCliError("journal write failed (database or disk is full)")

    ledger = Ledger(journal=FullDisk())
    stop = Stop()
    d = Dispatcher(Fake(lambda b: [Outcome(Kind.ACCEPTED)] * len(b)), ledger, FAST, stop, concurrency=1)
    d.submit(msgs(8))
    d.submit(msgs(8))
    d.close()
    t = ledger.tally
    assert stop.reason == "fatal" and "disk is full" in stop.detail
    assert t.counts[Fate.ACCEPTED] == 8 and t.counts[Fate.NOT_SENT] == 8  # none lost


def test_a_messages_key_does_not_depend_on_the_provider():
    """Aliyun turns positional params into named ones; the message is the same message, so
    --dedupe and --continue-edited must see one key whichever provider validated it."""
    from sms_cli.core.settings import Template
    from sms_cli.providers.aliyun import Aliyun

    templates = {"T": Template("T", names=("code",), count=1)}
    raw = RawRow(0, 2, {"phone": "+6591234500", "template_id": "T", "params": ["1234"]})
    aliyun = Aliyun(ProviderSettings(name="ali", type="aliyun", endpoint="http://x", rate_limit=0,
                                     connect_timeout=1, read_timeout=1, max_attempts=1,
                                     options={"access_key_id": "k", "access_key_secret": "s", "sign_name": "ACME"}),
                    templates)
    named = Validator(templates, None, Defaults(), aliyun).validate(raw)
    plain = Validator(templates, None, Defaults()).validate(raw)
    assert named.params == {"code": "1234"} and plain.params == ["1234"]
    assert named.digest == plain.digest != 0
