"""Issue 19: provider answers read as the providers document them (auth-and-limits.md, corrected).

For each class of answer (README "Provider answers") the emulator reproduces it and a run of a
few thousand rows through the in-process CLI proves: each message taken at most once (counted
at the emulator's log), the right rows in the failures file with the provider's code, the
suppression list touched only by opt-out codes, the documented exit code, and a re-run that
sends exactly the rest. Then the dispatcher with a scripted transport (no server, no sleep),
receipts, and the README table against the adapters' tables."""
from __future__ import annotations

import csv
import json
import random
import re
import socket
import time
from collections import Counter
from pathlib import Path

import pytest
import requests

from conftest import ROOT, accepted_counts, invoke, make_rows, phone_numbers
from sms_cli.core.settings import ProviderSettings
from sms_cli.run.dispatch import Dispatcher, Policy, Stop
from sms_cli.store.ledger import Ledger
from sms_cli.core.model import Kind, Message
from sms_cli.core.outcomes import Fate
from sms_cli.providers.aliyun import Aliyun
from sms_cli.providers.base import CLASS_KIND, FATAL, OPT_OUT, UNKNOWN
from sms_cli.providers.tencent import Tencent
from sms_cli.providers.uspeedo import AMBIGUOUS, USpeedo, match_failures

PROVIDERS = ["uspeedo", "tencent", "aliyun"]
ROWS = 2000
LISTING = "# opted out\n+6500000000\n"  # the suppression list every run starts from


# --- helpers ---------------------------------------------------------------------------------
def setup(tmp_path, emulator, write_config, ptype, rows=ROWS, **emu_options):
    emu = emulator(**emu_options)
    cfg = write_config(emu, ptype, rate_limit=0)
    phones = make_rows(tmp_path / "in.csv", rows)
    (tmp_path / "optout.txt").write_text(LISTING)
    return emu, cfg, phones


def send(tmp_path, cfg, *extra, name="in.csv"):
    r = invoke("send", name, "--config", cfg, "--suppress", "optout.txt", "--json", *extra, cwd=tmp_path)
    return r.returncode, r.json()


def failures(path: Path) -> dict[str, dict]:
    if not path.exists():
        return {}
    with open(path, encoding="utf-8", newline="") as fh:
        return {row["phone"]: row for row in csv.DictReader(fh)}


def once(emu) -> Counter:
    counts = accepted_counts(emu)
    assert not [p for p, n in counts.items() if n > 1], "a message was taken twice"
    return counts


def once_each(emu) -> Counter:
    """Messages (number and params) the emulator took: inputs with two rows to one number."""
    with emu.lock:
        taken = Counter((e["phone"], tuple(e["params"])) for e in emu.accepted)
    assert max(taken.values(), default=1) == 1, "a message was taken twice"
    return taken


def write_pairs(path: Path, phones: list[str], blocked: set[str]) -> None:
    """Two rows to each number, one template, different params: the first row of a `blocked`
    number holds a blocked word, its second does not."""
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["phone", "template_id", "param1"])
        for p in phones:
            w.writerow([p, "OTP_LOGIN", "casino 1" if p in blocked else "a 1"])
            w.writerow([p, "OTP_LOGIN", "b 2"])


# --- account-level refusals: fatal, no bisection, the rest sent once the account is fixed ------
FATAL_CODE = {"uspeedo": "215398", "tencent": "LimitExceeded.DailyLimit", "aliyun": "isv.DAY_LIMIT_CONTROL"}


@pytest.mark.parametrize("ptype", PROVIDERS)
def test_an_account_refusal_stops_the_run_and_the_same_command_sends_the_rest(tmp_path, emulator, write_config,
                                                                              ptype):
    limit = 1050 if ptype == "tencent" else 1000  # Tencent: one request half taken, half refused
    emu, cfg, phones = setup(tmp_path, emulator, write_config, ptype, account_limit=limit)
    code, s = send(tmp_path, cfg)
    assert code == 3 and s["stopped"] == "fatal" and FATAL_CODE[ptype] in s["fatal"]
    taken = once(emu)
    assert s["accepted"] == len(taken) <= limit and s["splits"] == 0  # never bisected
    # at most the requests the other workers had on the wire when the refusal came (one per
    # worker: the default --concurrency, 8)
    assert s["requests"] <= -(-limit // {"uspeedo": 1000, "tencent": 200, "aliyun": 100}[ptype]) + 8
    rest = failures(tmp_path / "in.failed.csv")
    assert set(rest) == set(phones) - set(taken) and {r["retryable"] for r in rest.values()} == {"yes"}
    assert all(FATAL_CODE[ptype] in r["error_message"] for r in rest.values())
    assert (tmp_path / "optout.txt").read_text() == LISTING
    emu.options.account_limit = None  # the account is fixed: the same command sends exactly the rest
    code, s = send(tmp_path, cfg)
    assert code == 0 and s["accepted"] == ROWS - len(taken) and s["accepted_earlier"] == len(taken)
    assert once(emu) == Counter({p: 1 for p in phones})


# --- server errors after sending: unknown, never retried ------------------------------------
SERVER_CODE = {"uspeedo": "215400", "tencent": "InternalError.Timeout", "aliyun": "isp.SYSTEM_ERROR"}


@pytest.mark.parametrize("ptype", PROVIDERS)
def test_a_server_error_after_sending_is_unknown_never_resent(tmp_path, emulator, write_config, ptype):
    rows = 4000 if ptype == "uspeedo" else ROWS  # uSpeedo: 1000 a request; seed 3 fails 2 of the first 4
    emu, cfg, phones = setup(tmp_path, emulator, write_config, ptype, rows=rows, server_error_rate=0.4, seed=3)
    code, s = send(tmp_path, cfg)
    assert code == 4 and s["unknown"] > 0 and s["failed"] == 0 and s["accepted"] + s["unknown"] == rows
    taken = once(emu)
    assert set(taken) == set(phones)  # the emulator took every one, each once: none was retried
    unknown = failures(tmp_path / "in.failed.csv")
    assert len(unknown) == s["unknown"]
    assert {(r["error_code"], r["retryable"]) for r in unknown.values()} == {(SERVER_CODE[ptype], "unknown")}
    assert (tmp_path / "optout.txt").read_text() == LISTING
    emu.options.server_error_rate = 0.0
    code, s = send(tmp_path, cfg)  # a re-run never resends an unknown row
    assert code == 4 and s["accepted"] == 0 and once(emu) == taken


# --- content control: bisect (Aliyun) or per row, never an opt-out ----------------------------
CONTENT_CODE = {"uspeedo": "FailContent", "tencent": "FailedOperation.ContainSensitiveWord",
                "aliyun": "isv.BLACK_KEY_CONTROL_LIMIT"}


@pytest.mark.parametrize("ptype", PROVIDERS)
def test_restricted_content_fails_its_row_and_never_suppresses_the_number(tmp_path, emulator, write_config, ptype):
    emu = emulator(blocked_words={"casino"})
    cfg = write_config(emu, ptype, rate_limit=0)
    phones = phone_numbers(ROWS)
    blocked = {phones[i] for i in (5, 777, 778, 1500, 1999)}
    with open(tmp_path / "in.csv", "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["phone", "template_id", "param1"])
        w.writerows([p, "OTP_LOGIN", "casino night" if p in blocked else "123456"] for p in phones)
    (tmp_path / "optout.txt").write_text(LISTING)
    code, s = send(tmp_path, cfg)
    assert code == 1 and s["failed"] == len(blocked) and s["accepted"] == ROWS - len(blocked)
    rows = failures(tmp_path / "in.failed.csv")
    assert set(rows) == blocked and {(r["error_code"], r["retryable"]) for r in rows.values()} == {
        (CONTENT_CODE[ptype], "no")}
    if ptype == "aliyun":
        assert all("template variables hold restricted content" in r["error_message"] for r in rows.values())
    assert (tmp_path / "optout.txt").read_text() == LISTING  # issue 19.1: the number is not blocked
    assert set(once(emu)) == set(phones) - blocked
    code, s = send(tmp_path, cfg)
    assert code == 1 and s["accepted"] == 0 and set(once(emu)) == set(phones) - blocked


# --- opt-outs: the only answers that touch the suppression list -------------------------------
@pytest.mark.parametrize("ptype", PROVIDERS)
def test_only_an_opt_out_code_joins_the_suppression_list(tmp_path, emulator, write_config, ptype):
    phones = phone_numbers(ROWS)
    opted = {phones[i] for i in (1, 400, 1234)}
    emu, cfg, _ = setup(tmp_path, emulator, write_config, ptype, blacklist=opted)
    code, s = send(tmp_path, cfg)
    listed = (tmp_path / "optout.txt").read_text()
    if ptype == "aliyun":  # SendBatchSms takes an opted-out number; its receipt fails
        assert code == 0 and listed == LISTING and set(once(emu)) == set(phones)
        return
    assert code == 1 and set(failures(tmp_path / "in.failed.csv")) == opted
    assert {p for p in phones if p in listed} == opted
    assert set(once(emu)) == set(phones) - opted
    code, s = send(tmp_path, cfg)
    assert code == 1 and s["accepted"] == 0


# --- uSpeedo: partial success and FailContent matched on the whole Target ---------------------
def test_uspeedo_partial_success_takes_every_target_not_in_fail_content(tmp_path, emulator, write_config):
    phones = phone_numbers(ROWS)
    opted = {phones[i] for i in (3, 1001, 1998)}
    emu, cfg, _ = setup(tmp_path, emulator, write_config, "uspeedo", blacklist=opted, partial_retcode=215400)
    code, s = send(tmp_path, cfg)
    assert code == 1 and s["accepted"] == ROWS - len(opted) and s["unknown"] == 0
    assert set(failures(tmp_path / "in.failed.csv")) == opted
    assert set(once(emu)) == set(phones) - opted
    code, s = send(tmp_path, cfg)
    assert code == 1 and s["accepted"] == 0 and set(once(emu)) == set(phones) - opted


def test_uspeedo_fail_content_is_matched_by_params_not_phone_alone(tmp_path, emulator, write_config):
    # issue 19.5: two rows to one number, one template, different params; FailContent names the
    # refused one by its params (no UserId echoed): the other row is taken, never swapped
    phones = phone_numbers(ROWS // 2)
    blocked = set(phones[::7])
    emu = emulator(blocked_words={"casino"}, fail_content_fields=("Phone", "TemplateParams"))
    cfg = write_config(emu, "uspeedo", rate_limit=0)
    write_pairs(tmp_path / "in.csv", phones, blocked)
    (tmp_path / "optout.txt").write_text(LISTING)
    code, s = send(tmp_path, cfg)
    assert code == 1 and s["failed"] == len(blocked) and s["accepted"] == ROWS - len(blocked)
    with open(tmp_path / "in.failed.csv", encoding="utf-8", newline="") as fh:
        refused = list(csv.DictReader(fh))
    assert {(r["phone"], r["param1"]) for r in refused} == {(p, "casino 1") for p in blocked}
    assert len(once_each(emu)) == ROWS - len(blocked)
    code, s = send(tmp_path, cfg)
    assert code == 1 and s["accepted"] == 0 and len(emu.accepted) == ROWS - len(blocked)


def test_uspeedo_ambiguous_fail_content_leaves_those_rows_unknown(tmp_path, emulator, write_config):
    # a FailContent entry that names two rows (only the phone echoed): those rows are unknown,
    # never a guess, and never resent; receipts settle them by the answer's SessionNo
    phones = phone_numbers(ROWS // 2)
    blocked = set(phones[::50])
    emu = emulator(blocked_words={"casino"}, fail_content_fields=("Phone",), receipt_delay_ms=0)
    cfg = write_config(emu, "uspeedo", rate_limit=0, receipt_rate_limit=0)
    write_pairs(tmp_path / "in.csv", phones, blocked)
    (tmp_path / "optout.txt").write_text(LISTING)
    code, s = send(tmp_path, cfg)
    assert code == 4 and s["unknown"] == 2 * len(blocked) and s["accepted"] == ROWS - 2 * len(blocked)
    rows = failures(tmp_path / "in.failed.csv")
    assert set(rows) == blocked and {r["retryable"] for r in rows.values()} == {"unknown"}
    taken = once_each(emu)  # every row but the blocked row of each pair, once
    assert len(taken) == ROWS - len(blocked) and {p for p, _ in taken} == set(phones)
    code, s = send(tmp_path, cfg)
    assert code == 4 and s["accepted"] == 0 and once_each(emu) == taken
    r = invoke("receipts", "in.csv", "--config", cfg, "--json", cwd=tmp_path)
    d = r.json()  # the SessionNo finds the taken row of each pair; the refused one has no report
    assert d["unknown_found"] == len(blocked) and d["unknown_not_found"] == 0


def test_match_failures_never_guesses():
    def m(seq, phone, params, user=None):
        return Message(seq, seq + 2, "+" + phone, int(phone[:2]), phone[2:], "T", params, user_id=user, key=f"k{seq}")

    rows = [m(0, "6591234500", ["1"]), m(1, "6591234500", ["2"]), m(2, "6591234501", ["1"])]
    fates = lambda entries: match_failures(rows, entries, lambda msg: None, lambda msg: msg.user_id)  # noqa: E731
    assert fates([{"phone": "6591234500", "params": ["2"], "reason": "x"}]) == [None, "x", None]
    assert fates([{"phone": "6591234500", "reason": "x"}]) == [AMBIGUOUS, AMBIGUOUS, None]
    assert fates([{"phone": "6591234500", "reason": "x"}] * 2) == ["x", "x", None]  # both named
    assert fates([{"phone": "6591234509", "reason": "x"}]) == [AMBIGUOUS] * 3  # names no row: all unsure
    assert fates([{"phone": "6591234501", "params": ["9"], "reason": "x"}]) == [None, None, AMBIGUOUS]


# --- Aliyun: +1 numbers refused before sending ----------------------------------------------
def test_aliyun_refuses_every_plus_one_number_before_sending(tmp_path, emulator, write_config):
    emu = emulator()
    cfg = write_config(emu, "aliyun", rate_limit=0)
    us = ["+12025550123", "+13105551234", "+14165550199"]  # DC, LA (reads as a mainland mobile), Toronto
    sg = phone_numbers(3)
    (tmp_path / "in.csv").write_text("phone,template_id,param1\n" + "".join(f"{p},OTP_LOGIN,1\n" for p in us + sg))
    (tmp_path / "optout.txt").write_text(LISTING)
    code, s = send(tmp_path, cfg)
    assert code == 1 and s["accepted"] == 3
    rows = failures(tmp_path / "in.failed.csv")
    assert set(rows) == set(us) and {r["retryable"] for r in rows.values()} == {"no"}
    assert all("+1" in r["error_message"] and "uspeedo or tencent" in r["error_message"] for r in rows.values())
    assert set(once(emu)) == set(sg) and emu.stats()["requests"] == 1


# --- a dead endpoint: fatal whatever the size ---------------------------------------------------
@pytest.mark.parametrize("rows", [2, 300])
def test_an_unreachable_provider_is_exit_3_whatever_the_size(tmp_path, emulator, write_config, rows):
    emu = emulator()
    held = socket.socket()  # bound, never listening: every connection to it is refused, and no
    held.bind(("127.0.0.1", 0))  # other process on the machine can take the port meanwhile
    cfg = write_config(emu, endpoint=f"http://127.0.0.1:{held.getsockname()[1]}/api", max_attempts=2)
    phones = make_rows(tmp_path / "in.csv", rows)
    (tmp_path / "optout.txt").write_text(LISTING)
    code, s = send(tmp_path, cfg)
    held.close()
    assert code == 3 and s["stopped"] == "fatal" and "could not connect" in s["fatal"]
    rest = failures(tmp_path / "in.failed.csv")
    assert set(rest) == set(phones) and {r["retryable"] for r in rest.values()} == {"yes"}


# --- config check: uSpeedo's AccountId --------------------------------------------------------
def test_config_check_says_uspeedo_account_id_is_missing(tmp_path):
    (tmp_path / "c.yaml").write_text("providers:\n  u:\n    type: uspeedo\n    access_key_id: kid\n"
                                     "    access_key_secret: s3cret-value\n")
    r = invoke("config", "check", "--config", "c.yaml", cwd=tmp_path)
    assert r.returncode == 2 and "account_id" in r.stdout + r.stderr and "s3cret-value" not in r.stdout + r.stderr
    (tmp_path / "b.yaml").write_text("providers:\n  u:\n    type: uspeedo\n    auth: basic\n    access_key_id: kid\n"
                                     "    access_key_secret: s3cret-value\n")
    assert invoke("config", "check", "--config", "b.yaml", cwd=tmp_path).returncode == 0  # Basic auth: no AccountId


# --- receipts: only the provider that sent can say "not taken" ---------------------------------
def test_receipts_with_another_provider_than_the_send_is_a_usage_error(tmp_path, emulator, write_config):
    emu = emulator(receipt_delay_ms=0)
    cfg = tmp_path / "two.yaml"
    cfg.write_text(f"providers:\n  emu:\n    type: uspeedo\n    endpoint: {emu.url}/api\n    account_id: '1'\n"
                   "    access_key_id: emulator-key\n    access_key_secret: emulator-secret\n    rate_limit: 0\n"
                   f"  other:\n    type: tencent\n    endpoint: {emu.url}\n    region: ap-singapore\n"
                   "    sms_sdk_app_id: '1400000001'\n    secret_id: emulator-key\n    secret_key: emulator-secret\n"
                   "default_provider: emu\n")
    make_rows(tmp_path / "in.csv", 5)
    (tmp_path / "optout.txt").write_text(LISTING)
    assert send(tmp_path, cfg, "-t", "OTP_LOGIN")[0] == 0
    r = invoke("receipts", "in.csv", "--config", cfg, "--provider", "other", cwd=tmp_path)
    assert r.returncode == 2 and "'emu'" in r.stderr and "Traceback" not in r.stderr
    assert invoke("receipts", "in.csv", "--config", cfg, "--provider", "emu", cwd=tmp_path).returncode == 0


def test_a_uspeedo_row_without_session_no_stays_cannot_settle(tmp_path, emulator, write_config):
    emu, cfg, phones = setup(tmp_path, emulator, write_config, "uspeedo", rows=20, server_error_rate=1.0,
                             receipt_delay_ms=0)
    code, s = send(tmp_path, cfg)
    assert code == 4 and s["unknown"] == 20
    cfg = write_config(emu, "uspeedo", rate_limit=0, report_delay=0)
    r = invoke("receipts", "in.csv", "--config", cfg, "--give-up-after", "1ms", "--json", cwd=tmp_path)
    d = r.json()
    assert d["unknown_unsettleable"] == 20 and d["unknown_not_found"] == 0
    assert once(emu) == Counter({p: 1 for p in phones})


def test_tencent_receipts_page_a_number_with_more_than_100_reports(tmp_path, emulator, write_config):
    # issue 19.6: 250 messages to one number; the last ones' answers lost. The by-number API
    # returns at most 100 reports a request (Offset fixed at 0): the window is narrowed until
    # every report is read, so the lost rows are found (taken), never "not found" and resent
    emu = emulator(receipt_delay_ms=0)
    cfg = write_config(emu, "tencent", rate_limit=0, receipt_rate_limit=0, report_delay=0)
    number = phone_numbers(1)[0]
    (tmp_path / "in.csv").write_text("phone,template_id,param1\n" + "".join(f"{number},OTP_LOGIN,{i}\n"
                                                                          for i in range(250)))
    (tmp_path / "optout.txt").write_text(LISTING)
    code, s = send(tmp_path, cfg, "--limit", "240")
    assert s["accepted"] == 240
    emu.options.drop_rate = 1.0  # taken, answer lost
    code, s = send(tmp_path, cfg)
    assert code == 4 and s["unknown"] == 10
    emu.options.drop_rate = 0.0
    # all 250 reports came within one second (set so: on a loaded machine the sends above may
    # span more): no window can hold fewer than 100 of them, so the lost rows stay searched
    # for, never "not found"
    with emu.lock:
        now = time.time()
        for e in emu.accepted:
            e["ts"] = now - 5
    r = invoke("receipts", "in.csv", "--config", cfg, "--give-up-after", "1ms", "--json", cwd=tmp_path)
    d = r.json()
    assert d["unknown_not_found"] == 0 and d["unknown_searching"] == 10 and d["requests"] > 2
    with emu.lock:  # the reports came over the last 250 seconds instead, one a second
        now = time.time()
        for i, e in enumerate(emu.accepted):
            e["ts"] = now - 250 + i
    r = invoke("receipts", "in.csv", "--config", cfg, "--give-up-after", "1ms", "--json", cwd=tmp_path)
    d = r.json()
    assert d["unknown_found"] == 10 and d["unknown_not_found"] == 0, d["notes"]
    code, s = send(tmp_path, cfg, "--retry-unknown")
    assert s["accepted"] == 0 and accepted_counts(emu)[number] == 250


# --- the dispatcher with a scripted transport: no server, no sleep ----------------------------
class Script:
    """A transport answering each request from `answer(phones)`: (status, body)."""

    def __init__(self, answer):
        self.answer, self.seen = answer, []

    def __call__(self, method, url, body, headers, timeout):
        form = dict(p.split("=", 1) for p in body.decode().split("&"))
        phones = json.loads(requests.utils.unquote(form["PhoneNumberJson"]))
        self.seen.append(phones)
        status, answer = self.answer(phones)
        if isinstance(answer, Exception):
            raise answer
        resp = requests.models.Response()
        resp.status_code, resp._content = status, json.dumps(answer).encode()
        return resp


def aliyun_settings(**kw) -> ProviderSettings:
    return ProviderSettings(name="ali", type="aliyun", endpoint="http://aliyun.invalid", rate_limit=0,
                            connect_timeout=1, read_timeout=1, max_attempts=3,
                            options={"access_key_id": "k", "access_key_secret": "s", "sign_name": "ACME", **kw})


def batch(n: int) -> list[Message]:
    return [Message(i, i + 2, f"+65912{i:05d}", 65, f"912{i:05d}", "T", {"code": str(i)}, key=f"x-{i}")
            for i in range(n)]


def dispatch(answer, n=100):
    script = Script(answer)
    p = Aliyun(aliyun_settings(), transport=script)
    ledger, stop = Ledger(), Stop()
    d = Dispatcher(p, ledger, Policy(max_attempts=3, backoff_base=0, backoff_cap=0, grace=0.1), stop,
                   concurrency=1, rng=random.Random(1))
    d.submit(batch(n))
    d.close()
    return ledger.tally, stop, script


def test_scripted_a_fatal_answer_inside_a_split_ends_every_row_once():
    def answer(phones):
        if len(phones) == 100:  # one bad number refuses the request: split it
            return 200, {"Code": "isv.MOBILE_NUMBER_ILLEGAL", "Message": "bad number"}
        return 200, {"Code": "isv.DAY_LIMIT_CONTROL", "Message": "day limit"}  # the account's limit

    tally, stop, script = dispatch(answer)
    assert stop.reason == "fatal" and "isv.DAY_LIMIT_CONTROL" in stop.detail
    assert [len(x) for x in script.seen] == [100, 50]  # no bisection of an account refusal
    assert tally.counts[Fate.NOT_SENT] == 100 and sum(tally.counts.values()) == 100


@pytest.mark.parametrize("status,body,fate,requests_made", [
    (503, {"Code": "ServiceUnavailable"}, Fate.UNKNOWN, 1),  # a 5xx: may have been taken
    (200, {"Code": "isp.SYSTEM_ERROR", "Message": "System error"}, Fate.UNKNOWN, 1),
    (400, {"Code": "Throttling.User", "Message": "flow control"}, Fate.FAILED, 3),  # nothing taken: retried
])
def test_scripted_only_nothing_taken_answers_are_retried(status, body, fate, requests_made):
    tally, stop, script = dispatch(lambda phones: (status, body), n=10)
    assert tally.counts[fate] == 10 and len(script.seen) == requests_made and stop.reason is None


def test_scripted_a_refused_connection_is_fatal_and_sends_nothing():
    refused = requests.ConnectionError(__import__("urllib3").exceptions.NewConnectionError(None, "refused"))
    tally, stop, script = dispatch(lambda phones: (0, refused), n=2)
    assert stop.reason == "fatal" and len(script.seen) == 3 and tally.counts[Fate.NOT_SENT] == 2


# --- one table: the README's and the adapters' ------------------------------------------------
def readme_table() -> dict[tuple[str, str], str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Provider answers", 1)[1].split("\n## ", 1)[0]
    out = {}
    for line in section.splitlines():
        cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[0] in ("uSpeedo", "Tencent", "Aliyun"):
            out[(cells[0], cells[1])] = cells[2]
    return out


def test_the_readme_table_is_the_adapters_tables():
    table = readme_table()
    for label, cls in (("uSpeedo", USpeedo), ("Tencent", Tencent), ("Aliyun", Aliyun)):
        for code, entry in cls.codes:
            assert table.get((label, code)) == entry.cls, f"README: {label} {code} should be {entry.cls}"
    adapters = {(label, code) for label, cls in (("uSpeedo", USpeedo), ("Tencent", Tencent), ("Aliyun", Aliyun))
                for code, _ in cls.codes}
    assert {k for k in table if k[1] != "any other code"} == adapters
    for label, cls in (("uSpeedo", USpeedo), ("Tencent", Tencent), ("Aliyun", Aliyun)):
        assert table[(label, "any other code")] == cls.codes.default.cls
    # the classes named by the issue
    assert Aliyun.codes.lookup("isv.BLACK_KEY_CONTROL_LIMIT").cls != OPT_OUT
    for code in ("isv.DAY_LIMIT_CONTROL", "isv.MONTH_LIMIT_CONTROL", "isp.RAM_PERMISSION_DENY"):
        assert Aliyun.codes.lookup(code).cls == FATAL
    for code in ("LimitExceeded.AppDailyLimit", "UnauthorizedOperation.RequestIpNotInWhitelist"):
        assert Tencent.codes.lookup(code).cls == FATAL
    assert CLASS_KIND[Tencent.codes.lookup("InternalError.SendAndRecvFail").cls] is Kind.UNKNOWN
    assert USpeedo.codes.lookup("215400").cls == UNKNOWN
    assert re.search(r"\bopt-out\b", (ROOT / "README.md").read_text(encoding="utf-8"))
