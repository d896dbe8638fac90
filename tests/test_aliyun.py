"""Alibaba Cloud SendBatchSms: RPC signer (published vectors), classification, message scrubbing,
and the adapter against the in-thread emulator."""
from __future__ import annotations

import hashlib
import json
import re
import uuid
from datetime import datetime, timezone
from urllib.parse import parse_qsl

import pytest
import requests

from sms_cli.core.errors import ConfigError
from sms_cli.core.settings import ProviderSettings, Template
from sms_cli.emulator.server import DEFAULT_KEY_ID, DEFAULT_KEY_SECRET, Emulator, Options
from sms_cli.core.model import Kind, Message
from sms_cli.providers.aliyun import (Aliyun, acs3_authorization, classify, form_body,
    percent_encode, read_answer, rpc_signature, safe_message, string_to_sign)
from sms_cli.providers.http import RequestFailed

# --- published examples (auth-and-limits.md), copied here: tests never read /work/shared -----
EXAMPLE_1 = {
    "AccessKeyId": "testid", "Action": "DescribeRegions", "Format": "XML", "SignatureMethod": "HMAC-SHA1",
    "SignatureNonce": "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf", "SignatureVersion": "1.0",
    "Timestamp": "2016-02-23T12:46:24Z", "Version": "2014-05-26",
}
EXAMPLE_2 = {
    "AccessKeyId": "testId", "Action": "SendSms", "Format": "XML", "OutId": "123",
    "PhoneNumbers": "15300000001", "RegionId": "cn-hangzhou", "SignName": "阿里云短信测试专用",
    "SignatureMethod": "HMAC-SHA1", "SignatureNonce": "45e25e9b-0a6f-4070-8c85-2956eda1b466",
    "SignatureVersion": "1.0", "TemplateCode": "SMS_71390007", "TemplateParam": '{"customer":"test"}',
    "Timestamp": "2017-07-12T02:42:19Z", "Version": "2017-05-25",
}


def test_example_describe_regions():
    assert rpc_signature(EXAMPLE_1, "testsecret", "GET") == "OLeaidS1JvxuMvnyHOwuJ+uX5qY="


def test_example_send_sms():
    assert rpc_signature(EXAMPLE_2, "testSecret", "GET") == "zJDF+Lrzhj/ThnlvIToysFRq6t4="


def test_signature_ignores_signature_param_and_depends_on_method():
    signed = {**EXAMPLE_1, "Signature": "anything"}
    assert rpc_signature(signed, "testsecret", "GET") == "OLeaidS1JvxuMvnyHOwuJ+uX5qY="
    assert rpc_signature(EXAMPLE_1, "testsecret", "POST") != "OLeaidS1JvxuMvnyHOwuJ+uX5qY="
    assert string_to_sign(EXAMPLE_1, "GET").startswith("GET&%2F&AccessKeyId%3Dtestid%26Action%3D")


@pytest.mark.parametrize("raw,encoded", [
    ("a b", "a%20b"), ("a*b", "a%2Ab"), ("a~b", "a~b"), ("A-z_0.9", "A-z_0.9"), ("a+b", "a%2Bb"),
    ("/=&", "%2F%3D%26"), ("阿里云", "%E9%98%BF%E9%87%8C%E4%BA%91"), ('{"x":"1"}', "%7B%22x%22%3A%221%22%7D"),
])
def test_percent_encode(raw, encoded):
    assert percent_encode(raw) == encoded


def test_form_body_parses_back_to_the_signed_values():
    params = {"SignNameJson": '["阿里云 短信"]', "TemplateParamJson": '[{"a":"x+y*z~"}]', "K": ""}
    assert dict(parse_qsl(form_body(params).decode(), keep_blank_values=True)) == params


# --- classification and scrubbing ------------------------------------------------------------
@pytest.mark.parametrize("code,kind", [
    ("OK", Kind.ACCEPTED),
    ("isp.SYSTEM_ERROR", Kind.UNKNOWN),  # auth-and-limits.md (corrected): may have been taken
    ("Throttling", Kind.RETRYABLE),
    ("Throttling.User", Kind.RETRYABLE),
    ("Throttling.Api", Kind.RETRYABLE),
    ("ServiceUnavailable", Kind.UNKNOWN),
    ("SignatureNonceUsed", Kind.RETRYABLE),
    ("isv.AMOUNT_NOT_ENOUGH", Kind.FATAL),
    ("isv.OUT_OF_SERVICE", Kind.FATAL),
    ("isv.ACCOUNT_ABNORMAL", Kind.FATAL),
    ("SignatureDoesNotMatch", Kind.FATAL),
    ("IncompleteSignature", Kind.FATAL),
    ("InvalidAccessKeyId.NotFound", Kind.FATAL),
    ("InvalidAccessKeyId.Inactive", Kind.FATAL),
    ("Forbidden.RAM", Kind.FATAL),
    ("isv.BUSINESS_LIMIT_CONTROL", Kind.PERMANENT),
    ("isv.DAY_LIMIT_CONTROL", Kind.FATAL),  # account-wide: stop the run
    ("isv.MONTH_LIMIT_CONTROL", Kind.FATAL),
    ("isv.PRODUCT_UN_SUBSCRIPT", Kind.FATAL),
    ("isv.ACCOUNT_NOT_EXISTS", Kind.FATAL),
    ("isv.DENY_IP_RANGE", Kind.FATAL),
    ("isp.RAM_PERMISSION_DENY", Kind.FATAL),
    ("isv.MOBILE_NUMBER_ILLEGAL", Kind.PERMANENT),
    ("isv.MOBILE_COUNT_OVER_LIMIT", Kind.PERMANENT),
    ("isv.INVALID_JSON_PARAM", Kind.PERMANENT),
    ("isv.BLACK_KEY_CONTROL_LIMIT", Kind.PERMANENT),
    ("isv.TEMPLATE_MISSING_PARAMETERS", Kind.PERMANENT),
    ("ThrottlingX", Kind.PERMANENT),
])
def test_classify(code, kind):
    assert classify(code) is kind


ECHO = ("Specified signature is not matched with our calculation. server string to sign is:"
        "POST&%2F&PhoneNumberJson%3D%255B%252260198765432%2522%255D")


def test_safe_message_scrubs_string_to_sign():
    assert safe_message("SignatureDoesNotMatch", ECHO) == "signature refused (check access_key_secret)"
    assert safe_message("IncompleteSignature", "anything") == "signature refused (check access_key_secret)"
    cut = safe_message("SomethingElse", ECHO)
    assert cut == "Specified signature is not matched with our calculation. server"
    assert safe_message("X", "bad request; StringToSign: GET&%2F&60198765432") == "bad request;"
    masked = safe_message("isv.MOBILE_NUMBER_ILLEGAL", "invalid mobile 60198765432")
    assert "60198765432" not in masked and masked.endswith("5432")


def test_read_answer():
    batch = [msg(0), msg(1)]
    out = read_answer(batch, b'{"Code":"OK","Message":"OK","BizId":"123^0","RequestId":"r"}')
    assert [(o.kind, o.ref) for o in out] == [(Kind.ACCEPTED, "123^0")] * 2
    with pytest.raises(RequestFailed) as exc:
        read_answer(batch, b'{"Code":"isv.DAY_LIMIT_CONTROL","Message":"day limit"}')
    assert exc.value.outcome.kind is Kind.FATAL and exc.value.outcome.message.startswith("day limit")
    with pytest.raises(RequestFailed) as exc:
        read_answer(batch, b'{"Code":"isv.BLACK_KEY_CONTROL_LIMIT","Message":"black key"}')
    o = exc.value.outcome  # about a variable's content: split to find the row, never an opt-out
    assert o.kind is Kind.PERMANENT and o.per_number and not o.opt_out
    assert "template variables hold restricted content" in o.message
    for bad in (b"<html>", b"[]", b"{}", b"\xff"):
        with pytest.raises(RequestFailed) as exc:
            read_answer(batch, bad)
        assert exc.value.outcome.kind is Kind.UNKNOWN and exc.value.outcome.code == "BadResponse"


# --- helpers ---------------------------------------------------------------------------------
def msg(seq=0, phone="+60198765432", cc=60, national="198765432", params=None, **kw) -> Message:
    return Message(seq=seq, line=seq + 2, phone=phone, country_code=cc, national=national,
                   template_id=kw.pop("template_id", "T1"),
                   params={"code": "1234"} if params is None else params, key=f"k{seq}", **kw)


def mainland(seq=0, **kw) -> Message:
    return msg(seq, phone="+8613800138000", cc=86, national="13800138000", **kw)


def settings(url: str, **options) -> ProviderSettings:
    opts = {"access_key_id": DEFAULT_KEY_ID, "access_key_secret": DEFAULT_KEY_SECRET, "sign_name": "阿里云", **options}
    return ProviderSettings(name="ali", type="aliyun", endpoint=url, rate_limit=None, connect_timeout=2,
                            read_timeout=5, max_attempts=4, options=opts)


@pytest.fixture
def provider(emu):
    p = Aliyun(settings(emu.url), {"T1": Template("T1", names=("code",), count=1)})
    yield p
    p.close()


# --- config and prepare ----------------------------------------------------------------------
def test_missing_credentials_named():
    with pytest.raises(ConfigError, match="ALIBABA_CLOUD_ACCESS_KEY_SECRET"):
        Aliyun(settings("http://x", access_key_secret="")).require_settings()


def test_batch_key_is_template():
    p = Aliyun(settings("http://x"))
    assert p.batch_key(msg(template_id="SMS_1")) == "SMS_1" != p.batch_key(msg(template_id="SMS_2"))


def test_prepare_sign_name():
    assert Aliyun(settings("http://x", sign_name="")).prepare(msg()) == "no sign name (sender_id or sign_name)"
    assert Aliyun(settings("http://x", sign_name="")).prepare(msg(sender_id="Brand")) is None


def test_prepare_positional_params_mapped_through_template_names():
    p = Aliyun(settings("http://x"), {"T1": Template("T1", names=("code",), count=1)})
    m = msg(params=["1234"])
    assert p.prepare(m) is None and m.params == {"code": "1234"}
    assert "parameters" in p.prepare(msg(params=["1", "2"]))  # count must match
    no_names = Aliyun(settings("http://x"), {"T1": Template("T1", count=1)})
    reason = no_names.prepare(msg(params=["1234"]))
    assert reason and "names" in reason and "config" in reason
    empty = msg(params=[])
    assert no_names.prepare(empty) is None and empty.params == {}


def test_request_params():
    p = Aliyun(settings("http://x", sign_name="Default"))
    batch = [mainland(0, params={}), msg(1, sender_id="Brand", extend_code="90999")]
    params = p.build_params(batch, "nonce-1", "2024-01-02T03:04:05Z")
    assert params["PhoneNumberJson"] == '["13800138000","60198765432"]'
    assert params["SignNameJson"] == '["Default","Brand"]'
    assert params["TemplateParamJson"] == '[{},{"code":"1234"}]'
    assert params["SmsUpExtendCodeJson"] == '["","90999"]'
    assert params["TemplateCode"] == "T1" and params["Action"] == "SendBatchSms"
    assert params["Signature"] == rpc_signature(params, DEFAULT_KEY_SECRET, "POST")
    bare = p.build_params([msg(0, params={})], "n", "2024-01-02T03:04:05Z")
    assert "TemplateParamJson" not in bare and "SmsUpExtendCodeJson" not in bare


# --- against the emulator --------------------------------------------------------------------
def test_all_accepted_with_biz_id(emu, provider):
    batch = [msg(0, params=["1234"]), mainland(1, params={"code": "777"})]
    assert all(provider.prepare(m) is None for m in batch)
    out = provider.send(batch)
    assert [o.kind for o in out] == [Kind.ACCEPTED] * 2
    assert out[0].ref == out[1].ref and re.fullmatch(r"\d+\^0", out[0].ref)
    assert [(e["phone"], e["params"], e["sender_id"]) for e in emu.accepted] == [
        ("+60198765432", {"code": "1234"}, "阿里云"), ("+8613800138000", {"code": "777"}, "阿里云")]
    assert {e["ref"] for e in emu.accepted} == {out[0].ref}


def test_an_opted_out_number_is_taken_and_a_blocked_word_fails_the_whole_request(emu, provider):
    # SendBatchSms does not refuse an opted-out number (its receipt fails); a restricted word in a
    # template variable refuses the whole request with isv.BLACK_KEY_CONTROL_LIMIT
    out = provider.send([msg(0), msg(1, phone="+60111111111", national="111111111")])
    assert {o.kind for o in out} == {Kind.ACCEPTED} and len(emu.accepted) == 2
    out = provider.send([msg(2), msg(3, params={"code": "win at the casino"})])
    assert {o.code for o in out} == {"isv.BLACK_KEY_CONTROL_LIMIT"}
    assert {o.kind for o in out} == {Kind.PERMANENT} and not any(o.opt_out for o in out)
    assert len(emu.accepted) == 2


def test_wrong_secret_is_fatal_and_leaks_no_number(emu):
    p = Aliyun(settings(emu.url, access_key_secret="wrong"))
    out = p.send([msg(0), mainland(1)])
    p.close()
    assert [o.kind for o in out] == [Kind.FATAL] * 2 and out[0].code == "SignatureDoesNotMatch"
    text = out[0].message.lower()
    assert "string to sign" not in text and "stringtosign" not in text
    assert "198765432" not in text and "13800138000" not in text and not re.search(r"\d{5,}", text)
    assert emu.accepted == []


def test_wrong_key_id_is_fatal(emu):
    p = Aliyun(settings(emu.url, access_key_id="nobody"))
    out = p.send([msg()])
    p.close()
    assert out[0].kind is Kind.FATAL and out[0].code == "InvalidAccessKeyId.NotFound"


def test_throttled_is_retryable():
    with Emulator(Options(port=0, seed=1, throttle_rate=1.0)) as e:
        p = Aliyun(settings(e.url))
        out = p.send([msg(0), msg(1)])
        p.close()
    assert [o.kind for o in out] == [Kind.RETRYABLE] * 2 and out[0].code == "Throttling.User"
    assert e.accepted == []


def test_emulator_rejects_more_than_100(emu, provider):
    batch = [msg(i, phone=f"+6019{i:07d}", national=f"19{i:07d}") for i in range(101)]
    out = provider.send(batch)
    assert {o.code for o in out} == {"isv.MOBILE_COUNT_OVER_LIMIT"} and out[0].kind is Kind.PERMANENT
    assert emu.accepted == []
    assert all(o.accepted for o in provider.send(batch[:100]))


# --- hand-built requests: the emulator's checks ----------------------------------------------
def post(emu, business: dict, **common) -> requests.Response:
    params = {
        "AccessKeyId": DEFAULT_KEY_ID, "Action": "SendBatchSms", "Version": "2017-05-25", "Format": "JSON",
        "RegionId": "cn-hangzhou", "SignatureMethod": "HMAC-SHA1", "SignatureVersion": "1.0",
        "SignatureNonce": str(uuid.uuid4()),
        "Timestamp": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), **common, **business,
    }
    params["Signature"] = rpc_signature(params, DEFAULT_KEY_SECRET, "POST")
    return requests.post(emu.url + "/", data=form_body(params), timeout=5,
                         headers={"Content-Type": "application/x-www-form-urlencoded"})


GOOD = {"PhoneNumberJson": '["60198765432"]', "SignNameJson": '["阿里云"]', "TemplateCode": "T1",
        "TemplateParamJson": '[{"code":"1"}]'}


def test_hand_built_request_accepted_and_nonce_reuse_refused(emu):
    first = post(emu, GOOD, SignatureNonce="fixed-nonce")
    assert first.status_code == 200 and first.json()["Code"] == "OK"
    again = post(emu, GOOD, SignatureNonce="fixed-nonce")
    assert again.json()["Code"] == "SignatureNonceUsed" and classify("SignatureNonceUsed") is Kind.RETRYABLE
    assert len(emu.accepted) == 1


@pytest.mark.parametrize("business,common,code", [
    ({**GOOD, "SignNameJson": '["a","b"]'}, {}, "isv.INVALID_JSON_PARAM"),
    ({**GOOD, "PhoneNumberJson": "60198765432"}, {}, "isv.INVALID_JSON_PARAM"),
    ({**GOOD, "TemplateParamJson": '[{"code":1}]'}, {}, "isv.INVALID_JSON_PARAM"),
    ({**GOOD, "TemplateParamJson": '["code"]'}, {}, "isv.INVALID_JSON_PARAM"),
    ({**GOOD, "PhoneNumberJson": '["+60198765432"]'}, {}, "isv.MOBILE_NUMBER_ILLEGAL"),
    (GOOD, {"Action": "SendSms"}, "InvalidAction.NotFound"),
    (GOOD, {"Version": "2018-01-01"}, "InvalidVersion"),
    (GOOD, {"Timestamp": "2016-02-23T12:46:24Z"}, "InvalidTimeStamp.Expired"),
])
def test_hand_built_request_refused(emu, business, common, code):
    assert post(emu, business, **common).json()["Code"] == code
    assert emu.accepted == []


def test_signature_echo_is_realistic(emu):
    # the emulator echoes the string to sign like the real service, so the scrubbing is tested
    body = form_body({"AccessKeyId": DEFAULT_KEY_ID, "PhoneNumberJson": '["60198765432"]', "Signature": "x"})
    resp = requests.post(emu.url + "/", data=body, timeout=5,
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert resp.status_code == 400
    answer = json.loads(resp.content)
    assert answer["Code"] == "SignatureDoesNotMatch" and "60198765432" in answer["Message"]


# --- signature: v3 (ACS3-HMAC-SHA256) --------------------------------------------------------
def sdk_authorization(method, path, query, headers, payload_sha256, key_id, secret) -> str:
    """The official SDK's signer (alibabacloud_tea_openapi, used by alibabacloud_dysmsapi20170525)."""
    from alibabacloud_tea_openapi.utils import Utils
    from darabonba.request import DaraRequest

    req = DaraRequest()
    req.method, req.pathname, req.query, req.headers = method, path, dict(query), dict(headers)
    return Utils.get_authorization(req, "ACS3-HMAC-SHA256", payload_sha256, key_id, secret)


@pytest.mark.parametrize("query", [{}, {"TemplateCode": "SMS_1", "OutId": "a b ~*'()!&=+%/?#中文😀"}])
def test_acs3_authorization_equals_the_official_sdk_signer(query):
    body = form_body({"PhoneNumberJson": '["8613800138000"]', "SignNameJson": '["阿里云"]'})
    digest = hashlib.sha256(body).hexdigest()
    headers = {"host": "dysmsapi.aliyuncs.com", "content-type": "application/x-www-form-urlencoded",
               "x-acs-action": "SendBatchSms", "x-acs-version": "2017-05-25", "x-acs-date": "2024-01-02T03:04:05Z",
               "x-acs-signature-nonce": "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf", "x-acs-content-sha256": digest,
               "User-Agent": " AlibabaCloud (Linux) Python/3 "}
    ours = acs3_authorization("testid", "testsecret", "POST", "/", query, headers, digest)
    assert ours == sdk_authorization("POST", "/", query, headers, digest, "testid", "testsecret")
    assert ours.startswith("ACS3-HMAC-SHA256 Credential=testid,SignedHeaders=content-type;host;user-agent;"
                           "x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version,")


def test_v3_request_signs_every_header_it_sends():
    p = Aliyun(settings("http://127.0.0.1:8787", signature="v3"))
    body, headers = p.build_v3([msg(0)], "nonce-1", "2024-01-02T03:04:05Z")
    assert dict(parse_qsl(body.decode()))["PhoneNumberJson"] == '["60198765432"]'
    assert headers["host"] == "127.0.0.1:8787" and headers["x-acs-content-sha256"] == hashlib.sha256(body).hexdigest()
    unsigned = {k: v for k, v in headers.items() if k != "Authorization"}
    assert headers["Authorization"] == sdk_authorization("POST", "/", {}, unsigned, headers["x-acs-content-sha256"],
                                                         DEFAULT_KEY_ID, DEFAULT_KEY_SECRET)


def test_signature_setting_checked():
    with pytest.raises(ConfigError, match="signature: must be 'rpc'"):
        Aliyun(settings("http://x", signature="v4"))
    assert "signature" in Aliyun.config_keys
    assert Aliyun(settings("http://x")).signature == "rpc"


def test_v3_against_the_emulator(emu):
    p = Aliyun(settings(emu.url, signature="v3"), {"T1": Template("T1", names=("code",), count=1)})
    batch = [msg(0, params=["12 34"]), mainland(1, params={"code": "中文 ~*'()!&=+%/?#"})]
    assert all(p.prepare(m) is None for m in batch)
    out = p.send(batch)
    p.close()
    assert [o.kind for o in out] == [Kind.ACCEPTED] * 2
    assert [(e["phone"], e["params"]) for e in emu.accepted] == [
        ("+60198765432", {"code": "12 34"}), ("+8613800138000", {"code": "中文 ~*'()!&=+%/?#"})]


@pytest.mark.parametrize("option,code", [("access_key_secret", "SignatureDoesNotMatch"),
                                         ("access_key_id", "InvalidAccessKeyId.NotFound")])
def test_v3_wrong_credentials_are_fatal(emu, option, code):
    p = Aliyun(settings(emu.url, signature="v3", **{option: "wrong"}))
    out = p.send([msg(0)])
    p.close()
    assert out[0].kind is Kind.FATAL and out[0].code == code and emu.accepted == []


# --- numbers whose wire form Aliyun would read as someone else's -----------------------------
def test_prepare_refuses_numbers_aliyun_would_read_as_mainland():
    p = Aliyun(settings("http://x"))
    us = msg(phone="+13105551234", cc=1, national="3105551234")
    reason = p.prepare(us)
    assert reason and "13105551234" in reason and "+8613105551234" in reason
    assert "uspeedo" in reason and "tencent" in reason
    # issue 19: every +1 number, not only those that read as a valid mainland mobile
    other = p.prepare(msg(phone="+12025550123", cc=1, national="2025550123"))
    assert other and "12025550123" in other and "+1" in other and "uspeedo or tencent" in other
    # the same digits as a genuine mainland number are fine, and so are other countries
    assert p.prepare(msg(phone="+8613105551234", cc=86, national="13105551234")) is None
    assert p.prepare(msg(phone="+85255311100", cc=852, national="55311100")) is None
    assert p.prepare(msg()) is None


def test_emulator_reads_wire_numbers_as_aliyun_does(emu):
    # 11 digits starting with 1 that are a valid mainland mobile: mainland, whatever else they
    # might be; that is why prepare() refuses +1 numbers
    assert post(emu, {**GOOD, "PhoneNumberJson": '["13105551234"]'}).json()["Code"] == "OK"
    assert post(emu, {**GOOD, "PhoneNumberJson": '["85255311100"]'}).json()["Code"] == "OK"
    assert [e["phone"] for e in emu.accepted] == ["+8613105551234", "+85255311100"]
    assert post(emu, {**GOOD, "PhoneNumberJson": '["6512"]'}).json()["Code"] == "isv.MOBILE_NUMBER_ILLEGAL"
