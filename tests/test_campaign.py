"""Each command is one call into the campaign, which returns what the CLI prints; the transport
and the clock are handed in at `Campaign.open` and reach the dispatcher. In-process: a scripted
Tencent wire in place of the network, a fake clock in place of time (no server, no subprocess,
no sleep)."""
from __future__ import annotations

import json
import threading
import time
from dataclasses import replace

import pytest
import requests

from sms_cli import campaign
from sms_cli.campaign import SendRequest
from sms_cli.core.errors import SmsCliError
from sms_cli.core.outcomes import Fate
from sms_cli.guards.rules import GuardOptions
from sms_cli.receipts.collect import ReceiptsRequest, collect
from sms_cli.run.send import Options

CONFIG = """\
default_provider: tc
grace_period: 1
providers:
  tc:
    type: tencent
    endpoint: https://sms.invalid
    region: ap-singapore
    sms_sdk_app_id: "1400006666"
    secret_id: id
    secret_key: key
    rate_limit: 0
    receipt_rate_limit: 0
    max_attempts: 3
    backoff: {base: 30, cap: 60}
templates:
  T: {params: [code], text: "Your code is {1}."}
"""


def response(answer: dict) -> requests.Response:
    """What the wire hands the adapter: Tencent's answer, HTTP 200."""
    resp = requests.models.Response()
    resp.status_code, resp._content = 200, json.dumps(answer).encode()
    return resp


class Wire:
    """Tencent's SendSms: the first request is throttled, every later one accepted."""

    def __init__(self):
        self.requests, self.lock = 0, threading.Lock()

    def __call__(self, method, url, body, headers, timeout):
        items = json.loads(body)["MultiSmsInfoSet"]
        with self.lock:
            self.requests += 1
            first = self.requests == 1
        if first:
            return response({"Response": {"RequestId": "r", "Error": {"Code": "RequestLimitExceeded",
                                                                      "Message": "slow"}}})
        return response({"Response": {"RequestId": "r", "SendMultiStatusSet": [
            {"PhoneNumber": it["PhoneNumber"], "Code": "Ok", "Message": "send success",
             "SerialNo": f"sn-{it['PhoneNumber']}", "SessionContext": it["SessionContext"]} for it in items]}})


class Clock:
    """Monotonic time that moves only when the run pauses."""

    def __init__(self):
        self.now, self.pauses = 1000.0, []

    def __call__(self) -> float:
        return self.now

    def pause(self, stop):
        def wait(seconds: float) -> bool:
            self.pauses.append(seconds)
            self.now += seconds
            return stop.is_set()
        return wait


@pytest.fixture
def req(tmp_path):
    cfg = tmp_path / "sms-cli.yaml"
    cfg.write_text(CONFIG)
    cfg.chmod(0o600)
    (tmp_path / "in.csv").write_text("phone,template_id,param1\n" + "".join(f"+659100000{i},T,{i}\n" for i in range(4)))
    return SendRequest(input=str(tmp_path / "in.csv"), config=str(cfg), options=Options(concurrency=1))


def test_a_send_waits_on_the_clock_handed_in_and_status_reads_what_it_did(req, tmp_path):
    wire, clock = Wire(), Clock()
    summary = campaign.send(req, transport=wire, clock=clock)
    assert summary.accepted == 4 and summary.exit_code() == 0
    # the throttled request was retried after one pause of the backoff (30 s at most), which
    # the fake clock took at once
    assert wire.requests == 2 and len(clock.pauses) == 1 and 0 <= clock.pauses[0] <= 30
    st = campaign.status(replace(req, options=Options()))
    assert st.found and st.journal_states["accepted"] == 4
    assert st.rerun.n(Fate.ACCEPTED_EARLIER) == 4 and st.exit_code == 0


def test_plan_is_the_send_read_only_and_the_cap_refuses_before_the_wire(req, tmp_path):
    plan = campaign.plan(replace(req, options=Options(dry_run=True)))
    assert sum(size * n for size, n in plan.batch_sizes.items()) == 4 and plan.estimator.parts == 4
    assert not (tmp_path / "in.journal.sqlite").exists()  # a plan writes nothing
    est = campaign.estimate(req)
    assert (est.messages, est.parts, est.provider_type) == (4, 4, "tencent")
    capped = replace(req, guards=GuardOptions(max_parts=3))
    with pytest.raises(SmsCliError, match="over --max-parts 3"):
        campaign.plan(replace(capped, options=Options(dry_run=True)))
    wire = Wire()
    with pytest.raises(SmsCliError, match="over --max-parts 3"):
        campaign.send(capped, transport=wire, clock=Clock())
    # refused before the journal was opened for writing and before any request
    assert wire.requests == 0 and not (tmp_path / "in.journal.sqlite").exists()


def test_receipts_take_the_transport_too(req):
    """The send's rows, then their receipts from the same scripted provider: all delivered."""
    campaign.send(req, transport=Wire(), clock=Clock())
    asked: list[str] = []

    def receipt_api(method, url, body, headers, timeout):  # every number's message delivered
        number = json.loads(body)["PhoneNumber"]
        asked.append(number)
        delivered = {"PhoneNumber": number, "SerialNo": f"sn-{number}", "ReportStatus": "SUCCESS",
                     "Description": "DELIVRD", "UserReceiveTime": int(time.time())}
        return response({"Response": {"RequestId": "r", "PullSmsSendStatusSet": [delivered]}})

    pauses: list[float] = []
    result = collect(ReceiptsRequest(req.input, config=req.config), transport=receipt_api, sleep=pauses.append)
    assert result.total.delivered == 4 and result.exit_code() == 0
    assert len(asked) == 4 and not pauses
