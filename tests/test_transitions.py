"""Every way a row can end, in-process: a scripted transport in place of the wire, a fake clock
in place of time.

Each test runs the real run (stream -> dispatcher -> ledger -> journal and failures file, as
`send.execute` wires them) over a small CSV input through the Tencent adapter, whose answers
carry one status per number, with `Script` answering each request from a rule. No server, no
subprocess, no sleep. For every row the test checks the three records that must agree: its
journal state, its fate (read back from the failures file: absent = accepted, retryable no =
rejected, unknown = unknown, yes = not sent (code NotSent) or retries exhausted (the
provider's code)), and the summary's counts. README "Provider answers" names the classes.
"""
from __future__ import annotations

import csv
import json
import random
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import urllib3

from sms_cli.cli import report
from sms_cli.core.settings import ProviderSettings
from sms_cli.run.dispatch import Dispatcher, Policy, Stop
from sms_cli.core.errors import ExitCode
from sms_cli.store.failures import FailuresWriter
from sms_cli.store.journal import Journal
from sms_cli.store.ledger import Ledger
from sms_cli.core.outcomes import Fate
from sms_cli.providers.tencent import Tencent
from sms_cli.input.rows import open_source
from sms_cli.run.send import Options, Summary, execute
from sms_cli.run.stream import Identity
from sms_cli.validate.validator import Defaults, Validator

FAST = Policy(max_attempts=3, backoff_base=0.0, backoff_cap=0.0, grace=5.0)
# journal state of each fate (a row never sent has none)
STATE = {Fate.ACCEPTED: {"accepted"}, Fate.REJECTED: {"rejected"}, Fate.UNKNOWN: {"unknown"},
         Fate.FAILED: {"retryable"}, Fate.NOT_SENT: {"retryable", None}}

# Tencent codes of each class (auth-and-limits.md, corrected; the adapter's CODES table)
ROW = "FailedOperation.ContainSensitiveWord"
BISECT = "InvalidParameterValue.IncorrectPhoneNumber"
THROTTLED = "RequestLimitExceeded"
FATAL = "LimitExceeded.DailyLimit"
UNKNOWN = "InternalError.Timeout"
OPT_OUT = "FailedOperation.PhoneNumberInBlacklist"


def phone(i: int) -> str:
    return f"+6591{i:06d}"


# --- the fake wire ----------------------------------------------------------------------------
def statuses(items: list[dict], codes: dict[str, str] | None = None) -> dict:
    """Tencent's answer with one status per number: Ok unless `codes` says otherwise."""
    codes = codes or {}
    return {"Response": {"RequestId": "r", "SendMultiStatusSet": [
        {"PhoneNumber": it["PhoneNumber"], "Code": codes.get(it["PhoneNumber"], "Ok"),
         "Message": codes.get(it["PhoneNumber"], "send success"), "SerialNo": f"sn-{it['PhoneNumber']}",
         "SessionContext": it["SessionContext"]} for it in items]}}


def refused(code: str, message: str = "refused") -> dict:
    """Tencent's answer refusing the whole request."""
    return {"Response": {"RequestId": "r", "Error": {"Code": code, "Message": message}}}


class Script:
    """The transport: `rule(phones, n)` answers the n-th request (from 1) with its numbers as
    (status, body dict or raw bytes, headers), or an exception the wire raises. `on_wire` is
    called with the numbers before the answer (a test may hold a request there)."""

    def __init__(self, rule, on_wire=None):
        self.rule, self.on_wire, self.seen = rule, on_wire, []
        self.lock = threading.Lock()

    def __call__(self, method, url, body, headers, timeout):
        items = json.loads(body)["MultiSmsInfoSet"]
        phones = [it["PhoneNumber"] for it in items]
        with self.lock:
            self.seen.append(phones)
            n = len(self.seen)
        if self.on_wire is not None:
            self.on_wire(phones)
        answer = self.rule(phones, n)
        if isinstance(answer, BaseException):
            raise answer
        status, content, *extra = answer
        resp = requests.models.Response()
        resp.status_code = status
        resp.headers.update(extra[0] if extra else {})
        if callable(content):
            content = content(items)
        resp._content = content if isinstance(content, bytes) else json.dumps(content).encode()
        return resp


def ok(phones, n):
    return 200, statuses


def per_row(codes: dict[str, str]):
    return lambda phones, n: (200, lambda items: statuses(items, codes))


def tencent(script, max_attempts: int = 3) -> Tencent:
    opts = {"secret_id": "id", "secret_key": "key", "sms_sdk_app_id": "1400006666", "region": "ap-singapore"}
    return Tencent(ProviderSettings(name="tc", type="tencent", endpoint="https://sms.invalid", rate_limit=0,
                                    connect_timeout=1, read_timeout=1, max_attempts=max_attempts, options=opts),
                   transport=script)


# --- one run ----------------------------------------------------------------------------------
@dataclass
class Ran:
    summary: dict
    states: dict[str, str | None]  # phone -> journal state (None: never sent)
    fates: dict[str, Fate]  # phone -> fate, read back from the failures file
    failures: dict[str, dict]  # phone -> its failures-file row
    opted_out: list[str]
    script: Script
    exit: ExitCode


def run(tmp_path: Path, rule, n: int = 8, *, concurrency: int = 1, on_wire=None, policy: Policy = FAST,
        batch: int | None = None) -> Ran:
    path = tmp_path / "in.csv"
    path.write_text("phone,template_id,param1\n" + "".join(f"{phone(i)},T,{i}\n" for i in range(n)))
    source = open_source(str(path))
    script = Script(rule, on_wire)
    provider = tencent(script, policy.max_attempts)
    if batch:
        provider.max_batch = batch
    validator = Validator({}, None, Defaults(), provider, key_prefix=source.digest[:12] + "-")
    journal = Journal(tmp_path / "in.journal.sqlite")
    try:
        ws = journal.create_set(source.digest, "in")
        journal.start_run(ws, "in.csv", "tc", {})
        ident = Identity(ws.id, ws.ref_prefix, journal)
        writer = FailuresWriter(tmp_path / "in.failed.csv", source.fmt, source.header, validator.defaults)
        opted: list[str] = []
        ledger = Ledger(journal, writer, ident.ref_of, on_opt_out=lambda p, code: opted.append(p))
        summary = execute(source, validator, provider, ledger, ident, Options(concurrency=concurrency), policy,
                          Summary(provider="tc", provider_type="tencent"))
        writer.commit()
        by_seq = {s.seq: s.state for s in journal.states(ws.id)}
    finally:
        journal.close()
        provider.close()
    failures = read_failures(tmp_path / "in.failed.csv")
    ran = Ran(report.summary_dict(summary), {phone(i): by_seq.get(i) for i in range(n)},
              {phone(i): fate_of(failures.get(phone(i))) for i in range(n)}, failures, opted, script,
              summary.exit_code())
    agree(ran, n)
    return ran


def read_failures(path: Path) -> dict[str, dict]:
    if not path.exists():
        return {}
    with open(path, encoding="utf-8", newline="") as fh:
        return {r["phone"]: r for r in csv.DictReader(fh)}


def fate_of(row: dict | None) -> Fate:
    if row is None:
        return Fate.ACCEPTED
    flag = row["retryable"]
    if flag == "yes":
        return Fate.NOT_SENT if row["error_code"] == "NotSent" else Fate.FAILED
    return {"no": Fate.REJECTED, "unknown": Fate.UNKNOWN}[flag]


def agree(ran: Ran, n: int) -> None:
    """The three records of every row say the same, and each row is counted once."""
    s = ran.summary
    # (the summary's "failed" is rejected + retries exhausted: FAILED is "retries_exhausted")
    counted = Counter({f: s[key] for f in Fate if s[key := "retries_exhausted" if f is Fate.FAILED else f.counter]})
    assert counted == Counter(ran.fates.values()), (counted, ran.fates)
    assert s["rows"] == n == sum(counted.values())
    for p, fate in ran.fates.items():
        assert ran.states[p] in STATE[fate], (p, fate, ran.states[p])
        if fate is not Fate.ACCEPTED:
            assert ran.failures[p]["sms_ref"].endswith(f":{int(p[-6:])}")
    assert s["exit_code"] == int(ran.exit)


def fates(ran: Ran) -> dict[Fate, set[int]]:
    out: dict[Fate, set[int]] = {}
    for p, f in ran.fates.items():
        out.setdefault(f, set()).add(int(p[-6:]))
    return out


# --- provider answer classes ------------------------------------------------------------------
def test_accepted(tmp_path):
    ran = run(tmp_path, lambda phones, n: (200, statuses))
    assert set(ran.states.values()) == {"accepted"} and ran.summary["accepted"] == 8
    assert ran.exit == ExitCode.OK and not ran.failures and ran.summary["requests"] == 1


def test_per_row_answers_in_one_request(tmp_path):
    """accepted, refused for good, opt-out, unknown and no status at all: one request, five ends."""
    def answer(items):
        body = statuses(items, {phone(1): ROW, phone(2): OPT_OUT, phone(3): UNKNOWN})
        body["Response"]["SendMultiStatusSet"] = [s for s in body["Response"]["SendMultiStatusSet"]
                                                  if s["PhoneNumber"] != phone(4)]
        return body

    ran = run(tmp_path, lambda phones, n: (200, answer))
    assert fates(ran) == {Fate.ACCEPTED: {0, 5, 6, 7}, Fate.REJECTED: {1, 2}, Fate.UNKNOWN: {3, 4}}
    assert ran.failures[phone(1)]["error_code"] == ROW and ran.failures[phone(2)]["error_code"] == OPT_OUT
    assert ran.failures[phone(4)]["error_code"] == "NoStatus"
    assert ran.opted_out == [phone(2)]  # only the opt-out code touches the suppression list
    assert ran.exit == ExitCode.NOT_ALL_ACCEPTED and len(ran.script.seen) == 1  # nothing resent


@pytest.mark.parametrize("code,opt_out", [(BISECT, False), (OPT_OUT, True)])
def test_a_request_refused_for_one_number_is_split_until_it_stands_alone(tmp_path, code, opt_out):
    def rule(phones, n):
        return (200, refused(code)) if phone(5) in phones else (200, statuses)

    ran = run(tmp_path, rule)
    assert fates(ran) == {Fate.ACCEPTED: {0, 1, 2, 3, 4, 6, 7}, Fate.REJECTED: {5}}
    assert [len(r) for r in ran.script.seen] == [8, 4, 4, 2, 1, 1, 2]
    assert ran.summary["splits"] == 6 and ran.failures[phone(5)]["error_code"] == code
    assert ran.opted_out == ([phone(5)] if opt_out else [])


def test_a_whole_request_refused_for_every_row_is_not_split(tmp_path):
    ran = run(tmp_path, lambda phones, n: (200, refused("FailedOperation.TemplateIncorrectOrUnapproved")))
    assert fates(ran) == {Fate.REJECTED: set(range(8))} and len(ran.script.seen) == 1


@pytest.mark.parametrize("answer", [(200, refused(THROTTLED)), (429, b"", {"Retry-After": "0"})])
def test_throttled_then_taken(tmp_path, answer):
    ran = run(tmp_path, lambda phones, n: answer if n == 1 else (200, statuses))
    assert fates(ran) == {Fate.ACCEPTED: set(range(8))}
    assert ran.summary["retries"] == 1 and ran.summary["requests"] == 2 and ran.exit == ExitCode.OK


def test_only_the_throttled_rows_are_retried_then_taken(tmp_path):
    ran = run(tmp_path, lambda phones, n: (200, lambda items: statuses(
        items, {phone(i): THROTTLED for i in (1, 6)} if n == 1 else {})))
    assert fates(ran) == {Fate.ACCEPTED: set(range(8))} and ran.script.seen[1] == [phone(1), phone(6)]


def test_retries_exhausted(tmp_path):
    ran = run(tmp_path, per_row({phone(i): THROTTLED for i in (2, 3)}))
    assert fates(ran) == {Fate.ACCEPTED: {0, 1, 4, 5, 6, 7}, Fate.FAILED: {2, 3}}
    assert [len(r) for r in ran.script.seen] == [8, 2, 2] and ran.summary["retries_exhausted"] == 2
    assert ran.failures[phone(2)]["error_code"] == THROTTLED and ran.exit == ExitCode.NOT_ALL_ACCEPTED


@pytest.mark.parametrize("answer", [(200, refused(FATAL)), (200, refused("AuthFailure.SecretIdNotFound")),
                                    (401, refused("AuthFailure.SignatureFailure"))])
def test_an_account_refusal_stops_the_run_and_sends_nothing_more(tmp_path, answer):
    ran = run(tmp_path, lambda phones, n: answer, n=20, batch=4)
    assert fates(ran) == {Fate.NOT_SENT: set(range(20))}
    assert ran.summary["stopped"] == "fatal" and ran.exit == ExitCode.FATAL and len(ran.script.seen) == 1
    assert {ran.states[phone(i)] for i in range(4)} == {"retryable"}  # the refused request's rows: pending
    assert {ran.states[phone(i)] for i in range(4, 20)} == {None}  # never sent


def test_an_account_limit_reached_inside_a_request(tmp_path):
    """Tencent took half of a request and refused the rest for the daily limit."""
    ran = run(tmp_path, per_row({phone(i): FATAL for i in range(4, 8)}), n=12, batch=8)
    assert fates(ran) == {Fate.ACCEPTED: {0, 1, 2, 3}, Fate.NOT_SENT: set(range(4, 12))}
    assert ran.summary["stopped"] == "fatal" and FATAL in ran.failures[phone(5)]["error_message"]


@pytest.mark.parametrize("answer", [(200, refused(UNKNOWN)), (503, b"Service Unavailable"),
                                    (504, b""), (200, b'{"Response": {"SendMultiStatusSet": [{"Phone')])
def test_an_answer_that_does_not_say_is_unknown_and_never_resent(tmp_path, answer):
    ran = run(tmp_path, lambda phones, n: answer)
    assert fates(ran) == {Fate.UNKNOWN: set(range(8))} and len(ran.script.seen) == 1
    assert ran.exit == ExitCode.UNKNOWN_ONLY and ran.summary["retries"] == 0


# --- faults on the wire -----------------------------------------------------------------------
def refused_connection():
    return requests.ConnectionError(urllib3.exceptions.NewConnectionError(None, "Connection refused"))


def test_a_refused_connection_is_retried_then_taken(tmp_path):
    ran = run(tmp_path, lambda phones, n: refused_connection() if n < 3 else (200, statuses))
    assert fates(ran) == {Fate.ACCEPTED: set(range(8))} and ran.summary["retries"] == 2


def test_a_provider_that_never_answers_the_door_is_fatal_and_nothing_is_sent(tmp_path):
    ran = run(tmp_path, lambda phones, n: refused_connection(), n=12, batch=4)
    assert fates(ran) == {Fate.NOT_SENT: set(range(12))} and len(ran.script.seen) == FAST.max_attempts
    assert ran.summary["stopped"] == "fatal" and "could not connect" in ran.summary["fatal"]


@pytest.mark.parametrize("fault", [requests.ReadTimeout("read timed out"),
                                   requests.exceptions.ChunkedEncodingError("connection broken mid-body"),
                                   requests.ConnectionError("connection reset by peer")])
def test_a_fault_after_the_request_left_is_unknown(tmp_path, fault):
    ran = run(tmp_path, lambda phones, n: fault if n == 1 else (200, statuses), n=12, batch=4)
    assert fates(ran) == {Fate.UNKNOWN: {0, 1, 2, 3}, Fate.ACCEPTED: set(range(4, 12))}
    assert len(ran.script.seen) == 3 and ran.exit == ExitCode.UNKNOWN_ONLY


def test_a_body_cut_off_inside_a_split_is_unknown_for_that_half_only(tmp_path):
    def rule(phones, n):
        if n == 1:
            return 200, refused(BISECT)
        if phone(0) in phones:
            return 200, b'{"Response": {"SendMultiSta'
        return 200, statuses

    ran = run(tmp_path, rule)
    assert fates(ran) == {Fate.UNKNOWN: {0, 1, 2, 3}, Fate.ACCEPTED: {4, 5, 6, 7}}


# --- a split meeting a fatal answer, at every point of the split --------------------------------
# 8 rows, row 5 refused for its number: the requests go (depth first, first half first)
SPLIT = [list(range(8)), [0, 1, 2, 3], [4, 5, 6, 7], [4, 5], [4], [5], [6, 7]]


@pytest.mark.parametrize("fatal_at", range(1, len(SPLIT) + 1))
@pytest.mark.parametrize("how", ["request", "per row"])
def test_a_fatal_answer_at_each_step_of_a_split(tmp_path, fatal_at, how):
    def rule(phones, n):
        if n >= fatal_at:  # the account's limit is reached from this request on
            return (200, refused(FATAL)) if how == "request" else (200, lambda items: statuses(
                items, {p: FATAL for p in phones}))
        return (200, refused(BISECT)) if phone(5) in phones and len(phones) > 1 else (200, lambda items: statuses(
            items, {phone(5): BISECT}))

    ran = run(tmp_path, rule)
    sent = SPLIT[:fatal_at - 1]
    taken = {i for r in sent for i in r if 5 not in r}
    alone = {5} if [5] in sent else set()
    expected = {Fate.ACCEPTED: taken, Fate.REJECTED: alone, Fate.NOT_SENT: set(range(8)) - taken - alone}
    assert fates(ran) == {f: rows for f, rows in expected.items() if rows}
    assert [[int(p[-6:]) for p in r] for r in ran.script.seen] == SPLIT[:fatal_at]
    assert ran.summary["stopped"] == "fatal" and ran.exit == ExitCode.FATAL
    for i in set(range(8)) - taken - alone:  # the next run sends them: pending, never unknown
        assert ran.states[phone(i)] in ("retryable", None)


@pytest.mark.parametrize("seed", range(4))
def test_splits_and_a_fatal_answer_across_workers(tmp_path, seed):
    """Four workers, five requests each split for a bad number, the account's limit reached at
    a request chosen by the seed: whatever the interleaving, every row ends once and agrees."""
    bad = {phone(i) for i in (3, 13, 22, 36)}
    stop_at = random.Random(seed).randint(2, 14)

    def rule(phones, n):
        if n >= stop_at:
            return 200, refused(FATAL)
        if set(phones) & bad and len(phones) > 1:
            return 200, refused(BISECT)
        return 200, lambda items: statuses(items, {p: BISECT for p in bad})

    ran = run(tmp_path, rule, n=40, concurrency=4, batch=8)  # agree() checks each row
    assert ran.summary["stopped"] == "fatal" and Fate.NOT_SENT in ran.fates.values()
    assert not {p for p, f in ran.fates.items() if f is Fate.ACCEPTED} & bad


# --- the fake clock: backoff, Retry-After and the grace period ---------------------------------
class Clock:
    """Monotonic time that moves only when a pause asks it to (or the test moves it)."""

    def __init__(self):
        self.now, self.pauses = 1000.0, []

    def __call__(self) -> float:
        return self.now

    def pause(self, stop: Stop):
        def wait(seconds: float) -> bool:
            self.pauses.append(seconds)
            self.now += seconds
            return stop.is_set()
        return wait


def journalled(tmp_path: Path, n: int):
    """A journal with one set and a run, the rows as messages of that set, and a ledger over it."""
    from sms_cli.core.model import Message

    journal = Journal(tmp_path / "j.sqlite")
    ws = journal.create_set("0" * 64, "in")
    journal.start_run(ws, "in", "tc", {})
    msgs = [Message(i, i + 2, phone(i), 65, phone(i)[3:], "T", [str(i)], key=f"k-{i}", set_id=ws.id,
                    record={"phone": phone(i)}) for i in range(n)]
    writer = FailuresWriter(tmp_path / "f.jsonl", "jsonl", None, Defaults())
    ident = Identity(ws.id, ws.ref_prefix, journal)
    return journal, ws, msgs, writer, Ledger(journal, writer, ident.ref_of)


def test_backoff_and_retry_after_on_the_fake_clock(tmp_path):
    """Retry-After is waited as given; without it, full jitter under base * 2^(attempt-1)."""
    journal, ws, msgs, writer, ledger = journalled(tmp_path, 4)
    answers = iter([(429, b"", {"Retry-After": "7"}), (200, refused(THROTTLED)), (200, statuses)])
    script = Script(lambda phones, n: next(answers))
    stop, clock = Stop(), Clock()
    policy = Policy(max_attempts=4, backoff_base=2.0, backoff_cap=30.0, grace=1.0)
    d = Dispatcher(tencent(script, 4), ledger, policy, stop, concurrency=1, rng=random.Random(3), clock=clock,
                   wait=clock.pause(stop))
    d.submit(msgs)
    d.close()
    journal.close()
    assert ledger.tally.counts[Fate.ACCEPTED] == 4 and ledger.tally.retries == 2
    assert clock.pauses[0] == 7.0 and 0 <= clock.pauses[1] <= 4.0 and len(clock.pauses) == 2


@pytest.mark.parametrize("stuck_at", [2, 3, 4, 5])
def test_the_grace_period_ends_in_the_middle_of_a_split(tmp_path, stuck_at):
    """SIGINT while a split half is on the wire and never comes back: when the grace period
    runs out, that half is unknown and the split's other halves not sent, all settled before
    close() returns (the summary is read then), each row once; the journal keeps the halves
    pending for the next run and the stuck half unknown."""
    journal, ws, msgs, writer, ledger = journalled(tmp_path, 8)
    release, on_wire = threading.Event(), threading.Event()
    stop, clock = Stop(), Clock()

    def hold(phones):
        if len(ran_script.seen) == stuck_at:
            on_wire.set()
            release.wait(30)  # the test lets it go once close() has returned

    ran_script = Script(lambda phones, n: (200, refused(BISECT)) if phone(5) in phones and len(phones) > 1
                        else (200, statuses), on_wire=hold)
    d = Dispatcher(tencent(ran_script), ledger, FAST, stop, concurrency=1, clock=clock, wait=clock.pause(stop))
    d.submit(msgs)
    assert on_wire.wait(30)

    def poll():  # the signal arrives, and every look at the clock finds the grace period longer gone
        stop.set("SIGINT")
        clock.now += FAST.grace

    d.close(poll)
    counts = dict(ledger.tally.counts)  # what the summary reads: nothing may change after this
    release.set()
    d.workers[0].join(30)
    writer.commit()
    states = {s.seq: s.state for s in journal.states(ws.id)}
    journal.close()
    assert dict(ledger.tally.counts) == counts and sum(counts.values()) == 8
    stuck = [int(p[-6:]) for p in ran_script.seen[stuck_at - 1]]
    done = {i for r in ran_script.seen[:stuck_at - 1] for i in (int(p[-6:]) for p in r) if 5 not in
            {int(p[-6:]) for p in r}}
    assert counts.get(Fate.UNKNOWN) == len(stuck) and counts.get(Fate.ACCEPTED, 0) == len(done)
    assert counts.get(Fate.NOT_SENT, 0) == 8 - len(stuck) - len(done)
    assert {states[i] for i in stuck} == {"unknown"}
    assert {states.get(i) for i in set(range(8)) - set(stuck) - done} <= {"retryable", None}
    with open(tmp_path / "f.jsonl", encoding="utf-8") as fh:
        filed = [json.loads(line) for line in fh]
    assert sorted(r["phone"] for r in filed) == sorted(phone(i) for i in set(range(8)) - done)
    assert {r["retryable"] for r in filed if int(r["phone"][-6:]) in stuck} == {"unknown"}


# --- receipts: what they learn, the ledger writes ------------------------------------------------
def test_receipts_settle_rows_through_the_ledger(tmp_path):
    """After a run (rows 0-3 accepted, 4-5 unknown: the answer timed out), receipts in-process
    with a scripted receipt API: a delivered row stays accepted, an undelivered one becomes
    undelivered, a lost answer found becomes accepted, one not found stays unknown; a throttled
    query is retried after the send's backoff, paused on a fake clock."""
    from sms_cli.core.settings import Config
    from sms_cli.receipts.collect import Collector, ReceiptsRequest, Result

    run(tmp_path, lambda phones, n: requests.ReadTimeout("read timed out") if n == 3 else (200, statuses),
        n=6, batch=2)
    now = __import__("time").time()
    reports = {phone(0): ("SUCCESS", f"sn-{phone(0)}"), phone(1): ("FAIL", f"sn-{phone(1)}"),
               phone(4): ("SUCCESS", "sn-found")}
    asked: list[str] = []

    def receipt_api(method, url, body, headers, timeout):
        number = json.loads(body)["PhoneNumber"]
        asked.append(number)
        resp = requests.models.Response()
        resp.status_code = 200
        if len(asked) == 1:
            resp._content = json.dumps(refused(THROTTLED)).encode()
            return resp
        status = reports.get(number)
        found = [] if status is None else [{"PhoneNumber": number, "SerialNo": status[1], "ReportStatus": status[0],
                                            "Description": "DELIVRD" if status[0] == "SUCCESS" else "UNDELIV",
                                            "UserReceiveTime": int(now)}]
        resp._content = json.dumps({"Response": {"RequestId": "r", "PullSmsSendStatusSet": found}}).encode()
        return resp

    opts = {"secret_id": "id", "secret_key": "key", "sms_sdk_app_id": "1400006666", "receipt_rate_limit": "0"}
    settings = ProviderSettings(name="tc", type="tencent", endpoint="https://sms.invalid", rate_limit=0,
                                connect_timeout=1, read_timeout=1, max_attempts=3, options=opts,
                                backoff_base=2.0, backoff_cap=30.0)
    cfg = Config(None, "tc", None, {"tc": settings}, {})
    journal = Journal(tmp_path / "in.journal.sqlite")
    pauses: list[float] = []
    try:
        sets = journal.all_sets()
        result = Result(str(tmp_path / "in.journal.sqlite"), None)
        col = Collector(ReceiptsRequest(None), cfg, journal, sets, result, sleep=pauses.append,
                        transport=receipt_api)
        col.settle_the_unaskable()
        col.round()
        col.give_up()
        col.close()
        col.summarise()
        states = {s.seq: s.state for s in journal.states(sets[0].id)}
    finally:
        journal.close()
    assert states == {0: "accepted", 1: "undelivered", 2: "accepted", 3: "accepted", 4: "accepted", 5: "unknown"}
    assert result.found == 1 and result.searching == 1
    assert (result.total.delivered, result.total.failed, result.total.pending) == (2, 1, 2)
    assert len(pauses) == 1 and 0 <= pauses[0] <= 2.0  # the first query was throttled: one backoff
    assert sorted(set(asked)) == sorted(phone(i) for i in range(6))


def test_the_grace_period_waits_for_a_worker_off_the_wire_to_settle_its_rows(tmp_path):
    """When the grace period runs out, one worker's request hangs on the wire and another is
    between requests (its rows to retry in hand, its pause not yet over): close() gives up on
    the first only, and returns once the second has settled its rows, so the summary read after
    it counts all eight once."""
    journal, ws, msgs, writer, ledger = journalled(tmp_path, 8)
    hung, pausing, gate, release = threading.Event(), threading.Event(), threading.Event(), threading.Event()
    stop, clock = Stop(), Clock()

    def hold(phones):
        if phone(0) in phones:
            hung.set()
            release.wait(30)

    def pause(seconds: float) -> bool:  # the second worker's retry pause ends when the test says
        pausing.set()
        gate.wait(30)
        return stop.is_set()

    script = Script(lambda phones, n: (200, statuses) if phone(0) in phones else (200, refused(THROTTLED)),
                    on_wire=hold)
    d = Dispatcher(tencent(script), ledger, FAST, stop, concurrency=2, clock=clock, wait=pause)
    d.submit(msgs[:4])
    d.submit(msgs[4:])
    assert hung.wait(30) and pausing.wait(30)
    polls = []

    def poll():
        stop.set("SIGINT")
        clock.now += FAST.grace
        polls.append(clock.now)
        if len(polls) == 4:  # the grace period is over (since the third): now the pause ends
            gate.set()

    d.close(poll)
    counts = dict(ledger.tally.counts)
    release.set()
    for t in d.workers:
        t.join(30)
    writer.commit()
    journal.close()
    assert counts == {Fate.UNKNOWN: 4, Fate.NOT_SENT: 4} and dict(ledger.tally.counts) == counts


def test_an_answer_is_recorded_on_exactly_the_rows_it_answers(tmp_path):
    """The journal records an answer on a range of seqs when the batch's rows are consecutive
    (the usual batch), and on the listed seqs otherwise: neither touches a row outside it."""
    from sms_cli.core.model import Kind, Message, Outcome
    from sms_cli.core.outcomes import RowState
    journal = Journal(tmp_path / "j.sqlite")
    try:
        ws = journal.create_set("d" * 64, "in")
        journal.start_run(ws, "in.csv", "tc", {})
        rows = [Message(seq=i, line=i + 2, phone=phone(i), country_code=65, national=phone(i)[3:], template_id="T",
                        params=[], key=f"k{i}", set_id=ws.id) for i in range(12)]
        journal.mark_inflight(rows, 1)
        ok = Outcome(Kind.ACCEPTED, "Ok", "", ref="sub-1")
        no = Outcome(Kind.PERMANENT, "Refused", "no")
        consecutive = rows[2:6]  # seqs 2..5: one range
        journal.record(consecutive, [ok] * 4, [RowState.ACCEPTED] * 4, 1)
        gaps = [rows[7], rows[9], rows[10]]  # 8 between 7 and 9 stays in flight
        journal.record(gaps, [no] * 3, [RowState.REJECTED] * 3, 1)
        same_span = [rows[11], rows[6]]  # two rows, first > last: not a range
        journal.record(same_span, [ok, no], [RowState.ACCEPTED, RowState.REJECTED], 1)
        got = {r.seq: r.state for r in journal.states(ws.id)}
    finally:
        journal.close()
    assert got == {0: RowState.INFLIGHT, 1: RowState.INFLIGHT, 2: RowState.ACCEPTED, 3: RowState.ACCEPTED,
                   4: RowState.ACCEPTED, 5: RowState.ACCEPTED, 6: RowState.REJECTED, 7: RowState.REJECTED,
                   8: RowState.INFLIGHT, 9: RowState.REJECTED, 10: RowState.REJECTED, 11: RowState.ACCEPTED}
