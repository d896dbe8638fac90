"""Tencent SendMultiGlobalSms: TC3 signer (published vectors), classification, answer reading,
and the adapter against the in-thread emulator."""
from __future__ import annotations

import hashlib
import json
import time

import pytest
import requests

from sms_cli.core.errors import ConfigError
from sms_cli.core.settings import ProviderSettings, Template
from sms_cli.emulator.server import DEFAULT_KEY_ID, DEFAULT_KEY_SECRET, Emulator, Options
from sms_cli.core.model import Kind, Message
from sms_cli.providers.http import RequestFailed
from sms_cli.providers.tencent import (CONTENT_TYPE, Tencent, canonical_request, classify,
    hashed_canonical_request, read_answer, tc3_signature)

# --- published example (auth-and-limits.md), copied here: tests never read /work/shared ------
EX_PAYLOAD = rb'{"Limit": 1, "Filters": [{"Values": ["\u672a\u547d\u540d"], "Name": "instance-name"}]}'
EX_HOST = "cvm.tencentcloudapi.com"
EX_CT = "application/json; charset=utf-8"
EX_ID = "AKIDz8krbsJ5yKBZQpn74WFkmLPx3*******"
EX_KEY = "Gu5t9xGARNpq86cd98joQYCN3*******"
EX_TS = 1551113065


def test_example_payload_hash():
    assert hashlib.sha256(EX_PAYLOAD).hexdigest() == "35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"


def test_example_canonical_request():
    assert canonical_request(EX_HOST, EX_CT, EX_PAYLOAD) == (
        "POST\n/\n\ncontent-type:application/json; charset=utf-8\nhost:cvm.tencentcloudapi.com\n\n"
        "content-type;host\n35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064")
    assert hashed_canonical_request(EX_HOST, EX_CT, EX_PAYLOAD) == \
        "5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031"


def test_example_signature_and_header():
    auth, sig = tc3_signature(EX_ID, EX_KEY, "cvm", EX_HOST, EX_CT, EX_PAYLOAD, EX_TS)
    assert sig == "2230eefd229f582d8b1b891af7107b91597240707d778ab3738f756258d7652c"
    assert auth == (f"TC3-HMAC-SHA256 Credential={EX_ID}/2019-02-25/cvm/tc3_request, "
                    f"SignedHeaders=content-type;host, Signature={sig}")


def test_signature_date_is_utc():
    # 2019-02-25 23:30 UTC is already the 26th east of UTC: the scope must use the UTC date
    auth, _ = tc3_signature("id", "key", "sms", "h", EX_CT, b"{}", 1551137400)
    assert "/2019-02-25/sms/tc3_request" in auth


# --- classification --------------------------------------------------------------------------
@pytest.mark.parametrize("code,kind", [
    ("Ok", Kind.ACCEPTED),
    ("RequestLimitExceeded", Kind.RETRYABLE),
    ("RequestLimitExceeded.UinLimitExceeded", Kind.RETRYABLE),
    ("RequestLimitExceeded.GlobalRegionUinLimitExceeded", Kind.RETRYABLE),
    # auth-and-limits.md (corrected): InternalError* may have taken the message
    ("InternalError.Timeout", Kind.UNKNOWN),
    ("InternalError.SendAndRecvFail", Kind.UNKNOWN),
    ("InternalError.RequestTimeException", Kind.FATAL),  # the clock: refused before processing
    ("LimitExceeded.AppDailyLimit", Kind.FATAL),  # account-wide: stop the run
    ("LimitExceeded.DailyLimit", Kind.FATAL),
    ("LimitExceeded.AppGlobalDailyLimit", Kind.FATAL),
    ("AuthFailure.SignatureFailure", Kind.FATAL),
    ("AuthFailure.SecretIdNotFound", Kind.FATAL),
    ("AuthFailure.SignatureExpire", Kind.FATAL),
    ("AuthFailure.InvalidSecretId", Kind.FATAL),
    ("UnauthorizedOperation.SdkAppIdIsDisabled", Kind.FATAL),
    ("UnauthorizedOperation.ServiceSuspendDueToArrears", Kind.FATAL),
    ("UnauthorizedOperation.SmsSdkAppIdVerifyFail", Kind.FATAL),
    ("UnauthorizedOperation.RequestIpNotInWhitelist", Kind.FATAL),
    ("UnauthorizedOperation.RequestPermissionDeny", Kind.FATAL),
    ("FailedOperation.InsufficientBalanceInSmsPackage", Kind.FATAL),
    ("InvalidParameterValue.SdkAppIdNotExist", Kind.FATAL),
    ("LimitExceeded.PhoneNumberDailyLimit", Kind.PERMANENT),
    ("LimitExceeded.DeliveryFrequencyLimit", Kind.PERMANENT),
    ("LimitExceeded.PhoneNumberCountLimit", Kind.PERMANENT),
    ("FailedOperation.PhoneNumberInBlacklist", Kind.PERMANENT),
    ("FailedOperation.TemplateIncorrectOrUnapproved", Kind.PERMANENT),
    ("InvalidParameterValue.IncorrectPhoneNumber", Kind.PERMANENT),
    ("UnsupportedOperation.ContainDomesticPhoneNumber", Kind.PERMANENT),
    ("InternalError.OtherError", Kind.UNKNOWN),
    ("AuthFailureX", Kind.PERMANENT),  # a prefix match is on the dotted family, not any string
])
def test_classify(code, kind):
    assert classify(code) is kind


# --- helpers ---------------------------------------------------------------------------------
def msg(seq=0, phone="+60198765432", cc=60, national="198765432", params=None, **kw) -> Message:
    return Message(seq=seq, line=seq + 2, phone=phone, country_code=cc, national=national,
                   template_id=kw.pop("template_id", "T1"),
                   params=["1234"] if params is None else params, key=f"k{seq}", **kw)


def settings(url: str, **options) -> ProviderSettings:
    opts = {"secret_id": DEFAULT_KEY_ID, "secret_key": DEFAULT_KEY_SECRET, "sms_sdk_app_id": "1400006666",
            "region": "ap-singapore", "sender_id": "Qsms", **options}
    return ProviderSettings(name="tc", type="tencent", endpoint=url, rate_limit=None, connect_timeout=2,
                            read_timeout=5, max_attempts=4, options=opts)


@pytest.fixture
def provider(emu):
    p = Tencent(settings(emu.url))
    yield p
    p.close()


# --- answer reading --------------------------------------------------------------------------
def answer(*statuses, error=None) -> bytes:
    body = {"Error": error} if error else {"SendMultiStatusSet": list(statuses)}
    return json.dumps({"Response": {**body, "RequestId": "r"}}).encode()


def test_read_answer_matches_by_phone_and_session_context():
    batch = [msg(0), msg(1), msg(2, phone="+6512345678", cc=65, national="12345678")]
    body = answer(
        {"PhoneNumber": "+6512345678", "Code": "Ok", "SerialNo": "s3", "SessionContext": "k2"},
        {"PhoneNumber": "+60198765432", "Code": "LimitExceeded.PhoneNumberDailyLimit",
         "Message": "daily cap", "SessionContext": "k1"},
        {"PhoneNumber": "+60198765432", "Code": "Ok", "SerialNo": "s1", "SessionContext": "k0"},
    )
    out = read_answer(batch, body)
    assert [o.kind for o in out] == [Kind.ACCEPTED, Kind.PERMANENT, Kind.ACCEPTED]
    assert out[0].ref == "s1" and out[2].ref == "s3"
    assert out[1].code == "LimitExceeded.PhoneNumberDailyLimit" and out[1].message == "daily cap"


def test_read_answer_missing_number_is_unknown_and_a_per_number_server_error_too():
    batch = [msg(0), msg(1, phone="+6512345678", cc=65, national="12345678")]
    out = read_answer(batch, answer({"PhoneNumber": "+60198765432", "Code": "InternalError.Timeout",
                                     "SessionContext": "k0"}))
    assert out[0].kind is Kind.UNKNOWN and out[0].code == "InternalError.Timeout"
    assert out[1].kind is Kind.UNKNOWN


def test_read_answer_never_guesses_which_of_two_rows_to_one_number_a_status_is():
    batch = [msg(0), msg(1)]  # one number twice; the statuses carry no SessionContext
    out = read_answer(batch, answer({"PhoneNumber": "+60198765432", "Code": "Ok", "SerialNo": "a"},
                                    {"PhoneNumber": "+60198765432", "Code": "FailedOperation.ContainSensitiveWord"}))
    assert [o.kind for o in out] == [Kind.UNKNOWN, Kind.UNKNOWN]
    one = read_answer([msg(0)], answer({"PhoneNumber": "+60198765432", "Code": "Ok", "SerialNo": "a"}))
    assert one[0].kind is Kind.ACCEPTED  # one row, one status: it is that row's


@pytest.mark.parametrize("body", [b"not json", b"{}", b'{"Response": []}', b'{"Response": {}}', b"\xff"])
def test_read_answer_unreadable_is_unknown(body):
    with pytest.raises(RequestFailed) as exc:
        read_answer([msg()], body)
    assert exc.value.outcome.kind is Kind.UNKNOWN and exc.value.outcome.code == "BadResponse"


def test_read_answer_request_error_is_classified():
    with pytest.raises(RequestFailed) as exc:
        read_answer([msg()], answer(error={"Code": "AuthFailure.SignatureFailure", "Message": "bad sig"}))
    assert exc.value.outcome.kind is Kind.FATAL and exc.value.outcome.message.startswith("bad sig")


# --- config and prepare ----------------------------------------------------------------------
def test_region_checked():
    with pytest.raises(ConfigError, match=r"providers\.tc\.region"):
        Tencent.check_settings(settings("http://x", region="ap-guangzhou"), "providers.tc")
    Tencent.check_settings(settings("http://x", region="eu-frankfurt"), "providers.tc")
    Tencent.check_settings(settings("http://x", region=""), "providers.tc")  # default ap-singapore


def test_missing_credentials_named():
    with pytest.raises(ConfigError, match="TENCENTCLOUD_SECRET_KEY"):
        Tencent(settings("http://x", secret_key="")).require_settings()


def test_prepare_rejects_mainland_china():
    p = Tencent(settings("http://x"))
    reason = p.prepare(msg(phone="+8613800138000", cc=86, national="13800138000"))
    assert reason and "+86" in reason
    assert p.prepare(msg()) is None


def test_prepare_maps_named_params():
    p = Tencent(settings("http://x"), {"T1": Template("T1", names=("code", "minutes"), count=2)})
    m = msg(params={"minutes": "5", "code": "1234"})
    assert p.prepare(m) is None and m.params == ["1234", "5"]
    assert "missing" in p.prepare(msg(params={"code": "1"}))
    assert "names" in p.prepare(msg(template_id="T2", params={"code": "1"}))


def test_body_shape():
    p = Tencent(settings("http://x", sender_id=""))
    body = p.build_body([msg(0, params=[]), msg(1, params=["9"], sender_id="Brand", user_id="u-1")])
    assert body["SmsSdkAppId"] == "1400006666"
    first, second = body["MultiSmsInfoSet"]
    assert first == {"PhoneNumber": "+60198765432", "TemplateId": "T1", "SessionContext": "k0"}
    assert second["TemplateParamSet"] == ["9"] and second["SenderId"] == "Brand"
    assert second["SessionContext"] == "u-1"


# --- against the emulator --------------------------------------------------------------------
def test_all_accepted_with_refs(emu, provider):
    batch = [msg(0), msg(1, phone="+6512345678", cc=65, national="12345678", params=["5678"])]
    out = provider.send(batch)
    assert [o.kind for o in out] == [Kind.ACCEPTED] * 2
    assert all(o.ref for o in out) and out[0].ref != out[1].ref
    logged = sorted(emu.accepted, key=lambda e: e["user_id"])
    assert [e["phone"] for e in logged] == ["+60198765432", "+6512345678"]
    assert logged[0]["params"] == ["1234"] and logged[0]["sender_id"] == "Qsms"
    assert logged[0]["ref"] == out[0].ref and logged[0]["provider"] == "tencent"


def test_blacklisted_number_gets_its_code(emu, provider):
    out = provider.send([msg(0), msg(1, phone="+60111111111", national="111111111")])
    assert out[0].kind is Kind.ACCEPTED
    assert out[1].kind is Kind.PERMANENT and out[1].code == "FailedOperation.PhoneNumberInBlacklist"
    assert [e["phone"] for e in emu.accepted] == ["+60198765432"]


def test_same_number_twice_in_one_request(emu, provider):
    out = provider.send([msg(0), msg(1)])
    assert [o.kind for o in out] == [Kind.ACCEPTED] * 2 and out[0].ref != out[1].ref


@pytest.mark.parametrize("option,code", [("secret_key", "AuthFailure.SignatureFailure"),
                                         ("secret_id", "AuthFailure.SecretIdNotFound")])
def test_wrong_credentials_are_fatal(emu, option, code):
    p = Tencent(settings(emu.url, **{option: "wrong"}))
    out = p.send([msg(0), msg(1, phone="+6512345678", cc=65, national="12345678")])
    p.close()
    assert [o.kind for o in out] == [Kind.FATAL] * 2 and out[0].code == code
    assert emu.accepted == []


def test_throttled_is_retryable():
    with Emulator(Options(port=0, seed=1, throttle_rate=1.0)) as e:
        p = Tencent(settings(e.url))
        out = p.send([msg(0), msg(1)])
        p.close()
    assert [o.kind for o in out] == [Kind.RETRYABLE] * 2 and out[0].code == "RequestLimitExceeded"
    assert e.accepted == []


def test_emulator_rejects_more_than_200(emu, provider):
    batch = [msg(i, phone=f"+6019{i:07d}", national=f"19{i:07d}") for i in range(201)]
    out = provider.send(batch)
    assert {o.code for o in out} == {"LimitExceeded.PhoneNumberCountLimit"}
    assert out[0].kind is Kind.PERMANENT and emu.accepted == []
    assert all(o.accepted for o in provider.send(batch[:200]))


def test_emulator_rejects_mainland_china_as_a_request(emu, provider):
    # prepare() keeps +86 away; the emulator still answers like Tencent if one slips through
    out = provider.send([msg(0), msg(1, phone="+8613800138000", cc=86, national="13800138000")])
    assert {o.code for o in out} == {"UnsupportedOperation.ContainDomesticPhoneNumber"}
    assert out[0].kind is Kind.PERMANENT


def test_emulator_rejects_malformed_number_per_number(emu, provider):
    out = provider.send([msg(0), msg(1, phone="60198765432")])
    assert out[0].kind is Kind.ACCEPTED
    assert out[1].code == "InvalidParameterValue.IncorrectPhoneNumber"


# --- hand-built requests: the emulator's envelope checks -------------------------------------
def post(emu, body: dict, *, action="SendMultiGlobalSms", version="2021-01-11", region="ap-singapore",
         timestamp=None, secret=DEFAULT_KEY_SECRET) -> dict:
    payload = json.dumps(body).encode()
    host = emu.url.split("//", 1)[1]
    ts = int(time.time()) if timestamp is None else timestamp
    auth, _ = tc3_signature(DEFAULT_KEY_ID, secret, "sms", host, CONTENT_TYPE, payload, ts)
    headers = {"Content-Type": CONTENT_TYPE, "X-TC-Action": action, "X-TC-Version": version,
               "X-TC-Region": region, "X-TC-Timestamp": str(ts), "Authorization": auth}
    resp = requests.post(emu.url + "/", data=payload, headers=headers, timeout=5)
    assert resp.status_code == 200
    return resp.json()["Response"]


ONE = {"SmsSdkAppId": "1400006666",
       "MultiSmsInfoSet": [{"PhoneNumber": "+60198765432", "TemplateId": "T1", "SessionContext": "x"}]}


def test_hand_built_request_accepted(emu):
    statuses = post(emu, ONE)["SendMultiStatusSet"]
    assert statuses[0]["Code"] == "Ok" and statuses[0]["SessionContext"] == "x" and statuses[0]["Fee"] == 1


@pytest.mark.parametrize("kw,body,code", [
    ({"action": "SendSms"}, ONE, "InvalidAction"),
    ({"version": "2019-07-11"}, ONE, "NoSuchVersion"),
    ({"region": "ap-guangzhou"}, ONE, "UnsupportedOperation.UnsupportedRegion"),
    ({"timestamp": int(time.time()) - 600}, ONE, "AuthFailure.SignatureExpire"),
    ({"secret": "nope"}, ONE, "AuthFailure.SignatureFailure"),
    ({}, {"SmsSdkAppId": "1", "MultiSmsInfoSet": []}, "InvalidParameterValue.MultiSmsInfoSetEmpty"),
    ({}, {"SmsSdkAppId": "1", "MultiSmsInfoSet": [{"PhoneNumber": "+60198765432", "TemplateId": "T1",
                                                   "TemplateParamSet": [1234]}]},
     "FailedOperation.FailResolvePacket"),
])
def test_hand_built_request_refused(emu, kw, body, code):
    assert post(emu, body, **kw)["Error"]["Code"] == code
    assert emu.accepted == []
