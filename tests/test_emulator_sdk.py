"""The providers' official SDKs, as they ship, are the emulator's test clients.

Each SDK is pointed at the emulator on 127.0.0.1 through its own public configuration (endpoint,
plain-HTTP scheme, signature method); nothing in an SDK is patched or wrapped. For each: what it
sends is accepted and logged with the parameters intact, a wrong secret or key id gets the
provider's own error the SDK raises as its own exception, every error the emulator produces
reaches the SDK with its code, and the SDK's response model reads the documented fields.

Aliyun answers business errors (isv.*) with HTTP 200, so both Aliyun SDKs return them in the
response body instead of raising; those tests read the code where the SDK puts it.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from sms_cli.core.settings import Template
from sms_cli.emulator.server import DEFAULT_KEY_ID, DEFAULT_KEY_SECRET

# what must arrive intact: Chinese, astral-plane emoji, spaces and every character that URL,
# form and signature encodings treat specially
PARAMS = ["中文短信 验证", "😀🚀 𠜎", "a b ~*'()!&=+%/?#", "%20%2B+&x=y"]
BLACKLISTED = "+60111111111"  # blacklisted by the module_emulator fixture too
TEMPLATES = {
    "T_ONE": Template("T_ONE", ("code",), 1, "Your ACME code is {code}."),
    "T_TWO": Template("T_TWO", ("order", "eta"), 2, "Order {order} arrives {eta}. " + "x" * 150),
}


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    """The SDKs honour proxy variables; traffic to the emulator must stay on 127.0.0.1."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


def logged(emu) -> list[dict]:
    """The accepted messages, read back from the emulator's log file."""
    text = Path(emu.options.log_path).read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def utf8(values):
    """Parameters as bytes, so equality below is byte for byte."""
    if isinstance(values, dict):
        return {k.encode("utf-8"): v.encode("utf-8") for k, v in values.items()}
    return [v.encode("utf-8") for v in values]


def host_port(emu) -> tuple[str, int]:
    host, port = emu.server.server_address[:2]
    return host, port


# === uSpeedo: uspeedo-sdk-python, AsmsClient ===================================================
from uspeedo.core.exc import HTTPStatusException, RetCodeException  # noqa: E402
from uspeedo.services.asms.apis.SendBatchUSMSMessageReq import SendBatchUSMSMessageReq  # noqa: E402
from uspeedo.services.asms.client import AsmsClient  # noqa: E402

QUIET = logging.getLogger("tests.uspeedo-sdk")  # the SDK logs every request at INFO on its own logger
QUIET.addHandler(logging.NullHandler())
QUIET.propagate = False


def asms(emu, key_id=DEFAULT_KEY_ID, secret=DEFAULT_KEY_SECRET) -> AsmsClient:
    return AsmsClient({"base_url": emu.url + "/api", "public_key": key_id, "private_key": secret}, logger=QUIET)


def uspeedo_request(*targets, template="T_ONE", account=10001) -> dict:
    req = {"TaskContent": [{"TemplateId": template, "SenderId": "ACME 中文", "Target": list(targets)}]}
    if account is not None:
        req["AccountId"] = account
    return req


def test_uspeedo_sdk_accepted_logged_intact_and_parsed(emulator):
    emu = emulator(blacklist={BLACKLISTED})
    resp = asms(emu).send_batch_usms_message(uspeedo_request(
        {"Phone": "(852)55311100", "TemplateParams": PARAMS, "UserId": "user 中文 1"},
        {"Phone": "(60)111111111", "TemplateParams": ["1"]},
        {"Phone": "(852)12", "TemplateParams": ["2"]},
        {"Phone": "13800138000", "TemplateParams": ["3"]},  # no (CC): mainland China
    ))
    assert resp["SuccessCount"] == 2 and isinstance(resp["SessionNo"], str) and resp["SessionNo"]
    [failed] = resp["FailContent"]
    assert failed["TemplateId"] == "T_ONE" and failed["SenderId"] == "ACME 中文"
    by_phone = {t["Phone"]: t for t in failed["Target"]}
    assert by_phone["(60)111111111"]["FailureDetails"] == "phone in the black list"
    assert by_phone["(852)12"]["Invalid"] is True and by_phone["(852)12"]["FailureDetails"]
    entries = logged(emu)
    assert [(e["provider"], e["phone"]) for e in entries] == [("uspeedo", "+85255311100"), ("uspeedo", "+8613800138000")]
    assert utf8(entries[0]["params"]) == utf8(PARAMS)
    assert entries[0]["user_id"] == "user 中文 1" and entries[0]["sender_id"] == "ACME 中文"
    assert entries[0]["ref"] == resp["SessionNo"]
    # the raw answer (before the SDK's model keeps only its fields) carries ReqUuid
    raw = asms(emu).invoke("SendBatchUSMSMessage", SendBatchUSMSMessageReq().dumps(
        uspeedo_request({"Phone": "(65)91234500", "TemplateParams": ["4"]})))
    assert raw["RetCode"] == 0 and raw["ReqUuid"] and raw["Action"] == "SendBatchUSMSMessageResponse"


@pytest.mark.parametrize("kwargs,code", [({"secret": "wrong-secret"}, 171), ({"key_id": "nobody"}, 172)])
def test_uspeedo_sdk_wrong_credentials(emu, kwargs, code):
    with pytest.raises(RetCodeException) as exc:
        asms(emu, **kwargs).send_batch_usms_message(uspeedo_request({"Phone": "(65)91234500"}))
    assert exc.value.code == code and exc.value.action == "SendBatchUSMSMessage"
    assert emu.accepted == []


@pytest.mark.parametrize("request_body,code", [
    (uspeedo_request({"Phone": "(65)91234500"}, account=None), 215397),  # AccountId is required
    (uspeedo_request(*[{"Phone": f"(65)9{i:07d}"} for i in range(1001)]), 215392),  # over 1000 numbers
    ({"AccountId": 1, "TaskContent": [{"Target": [{"Phone": "(65)91234500"}]}]}, 215397),  # no TemplateId
    ({"AccountId": 1, "TaskContent": [{"TemplateId": "T", "Target": [{"UserId": "u"}]}]}, 215397),  # no Phone
])
def test_uspeedo_sdk_request_errors(emu, request_body, code):
    with pytest.raises(RetCodeException) as exc:
        asms(emu).send_batch_usms_message(request_body)
    assert exc.value.code == code
    assert emu.accepted == []


def test_uspeedo_sdk_unknown_action(emu):
    with pytest.raises(RetCodeException) as exc:
        asms(emu).invoke("SendNothing", {"AccountId": 1})
    assert exc.value.code == 160


def test_uspeedo_sdk_templates(emulator):
    emu = emulator(templates=TEMPLATES)
    client = asms(emu)
    resp = client.send_batch_usms_message(uspeedo_request(
        {"Phone": "(65)91234500", "TemplateParams": ["1234"]}, {"Phone": "(65)91234501", "TemplateParams": ["1", "2"]}))
    assert resp["SuccessCount"] == 1
    [target] = resp["FailContent"][0]["Target"]
    assert target["Phone"] == "(65)91234501" and "T_ONE takes 1 parameters, got 2" in target["FailureDetails"]
    resp = client.send_batch_usms_message(uspeedo_request({"Phone": "(65)91234502"}, template="NO_SUCH"))
    assert resp["SuccessCount"] == 0 and "SessionNo" not in resp
    assert "NO_SUCH does not exist" in resp["FailContent"][0]["FailureDetails"]
    assert [e["phone"] for e in logged(emu)] == ["+6591234500"]


def test_uspeedo_sdk_send_usms_message(emu):
    """SendUSMSMessage has no method in the SDK; its public invoke() sends any action."""
    answer = asms(emu).invoke("SendUSMSMessage", {"AccountId": 10001, "TemplateId": "T_ONE", "TemplateParams": PARAMS,
                                                  "PhoneNumbers": ["(65)91234500", "(852)55311100"]})
    assert answer["RetCode"] == 0 and answer["SessionNo"] and answer["ReqUuid"]
    assert [(e["phone"], utf8(e["params"])) for e in emu.accepted] == [("+6591234500", utf8(PARAMS)),
                                                                       ("+85255311100", utf8(PARAMS))]
    with pytest.raises(RetCodeException) as exc:
        asms(emu).invoke("SendUSMSMessage", {"AccountId": 10001, "TemplateId": "T", "PhoneNumbers": ["(60)111111111"]})
    assert exc.value.code == 215392 and "black list" in exc.value.message


def test_uspeedo_sdk_throttled(emulator):
    with pytest.raises(HTTPStatusException) as exc:
        asms(emulator(throttle_rate=1.0)).send_batch_usms_message(uspeedo_request({"Phone": "(65)91234500"}))
    assert exc.value.status_code == 429 and exc.value.retryable


# === Tencent: tencentcloud-sdk-python-sms, SmsClient 2021-01-11 ================================
from tencentcloud.common import credential  # noqa: E402
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException  # noqa: E402
from tencentcloud.common.profile.client_profile import ClientProfile  # noqa: E402
from tencentcloud.common.profile.http_profile import HttpProfile  # noqa: E402
from tencentcloud.sms.v20190711 import sms_client as sms_client_2019  # noqa: E402
from tencentcloud.sms.v20210111 import models as sms_models, sms_client  # noqa: E402

SIGNINGS = [("POST", "TC3-HMAC-SHA256"), ("GET", "TC3-HMAC-SHA256"), ("POST", "HmacSHA256"),
            ("GET", "HmacSHA256"), ("POST", "HmacSHA1")]


def tencent(emu, method="POST", sign="TC3-HMAC-SHA256", secret_id=DEFAULT_KEY_ID, secret_key=DEFAULT_KEY_SECRET,
            region="ap-singapore", module=sms_client):
    host, port = host_port(emu)
    profile = ClientProfile(signMethod=sign, httpProfile=HttpProfile(protocol="http", endpoint=f"{host}:{port}",
                                                                      reqMethod=method))
    return module.SmsClient(credential.Credential(secret_id, secret_key), region, profile)


def multi(*items, app="1400000001") -> sms_models.SendMultiGlobalSmsRequest:
    req = sms_models.SendMultiGlobalSmsRequest()
    body = {"MultiSmsInfoSet": list(items)}
    if app is not None:
        body["SmsSdkAppId"] = app
    req.from_json_string(json.dumps(body))
    return req


@pytest.mark.parametrize("method,sign", SIGNINGS)
def test_tencent_sdk_accepted_logged_intact_and_parsed(emulator, method, sign):
    emu = emulator(blacklist={BLACKLISTED})
    resp = tencent(emu, method, sign).SendMultiGlobalSms(multi(
        {"PhoneNumber": "+6591234500", "TemplateId": "1800308", "TemplateParamSet": PARAMS, "SenderId": "Qsms",
         "SessionContext": "ctx 中文 ~*'()!&=+%/?#"},
        {"PhoneNumber": BLACKLISTED, "TemplateId": "1800308", "SessionContext": "2"},
        {"PhoneNumber": "+6512", "TemplateId": "1800308", "SessionContext": "3"},
    ))
    ok, black, bad = resp.SendMultiStatusSet
    assert (ok.Code, ok.Fee, ok.IsoCode, ok.PhoneNumber, ok.Message) == ("Ok", 1, "SG", "+6591234500", "send success")
    assert ok.SessionContext == "ctx 中文 ~*'()!&=+%/?#" and ok.SerialNo
    assert (black.Code, black.Fee, black.IsoCode) == ("FailedOperation.PhoneNumberInBlacklist", 0, "MY")
    assert (bad.Code, bad.IsoCode) == ("InvalidParameterValue.IncorrectPhoneNumber", "DEF")
    assert resp.RequestId
    # every field the SDK's model has was in the answer
    statuses = json.loads(resp.to_json_string())["SendMultiStatusSet"]
    assert all(None not in s.values() for s in statuses)
    [entry] = logged(emu)
    assert (entry["provider"], entry["phone"], entry["template_id"]) == ("tencent", "+6591234500", "1800308")
    assert utf8(entry["params"]) == utf8(PARAMS) and entry["ref"] == ok.SerialNo
    assert entry["sender_id"] == "Qsms" and entry["user_id"] == "ctx 中文 ~*'()!&=+%/?#"


@pytest.mark.parametrize("method,sign", SIGNINGS)
@pytest.mark.parametrize("kwargs,code", [({"secret_key": "wrong-secret"}, "AuthFailure.SignatureFailure"),
                                         ({"secret_id": "nobody"}, "AuthFailure.SecretIdNotFound")])
def test_tencent_sdk_wrong_credentials(emu, method, sign, kwargs, code):
    with pytest.raises(TencentCloudSDKException) as exc:
        tencent(emu, method, sign, **kwargs).SendMultiGlobalSms(
            multi({"PhoneNumber": "+6591234500", "TemplateId": "1"}))
    assert exc.value.code == code and exc.value.requestId
    assert emu.accepted == []


ONE = {"PhoneNumber": "+6591234500", "TemplateId": "1"}


@pytest.mark.parametrize("request_body,code", [
    (multi(*[{"PhoneNumber": f"+659{i:07d}", "TemplateId": "1"} for i in range(201)]),
     "LimitExceeded.PhoneNumberCountLimit"),
    (multi(ONE, app=None), "MissingParameter"),
    (multi({"TemplateId": "1"}), "MissingParameter"),
    (multi(), "InvalidParameterValue.MultiSmsInfoSetEmpty"),
    (multi(ONE, {"PhoneNumber": "+8613800138000", "TemplateId": "1"}), "UnsupportedOperation.ContainDomesticPhoneNumber"),
])
def test_tencent_sdk_request_errors(emu, request_body, code):
    with pytest.raises(TencentCloudSDKException) as exc:
        tencent(emu).SendMultiGlobalSms(request_body)
    assert exc.value.code == code
    assert emu.accepted == []


def test_tencent_sdk_unknown_action_version_region(emu):
    body = {"SmsSdkAppId": "1400000001", "MultiSmsInfoSet": [ONE]}
    with pytest.raises(TencentCloudSDKException) as exc:
        tencent(emu).call_json("SendNothing", body)
    assert exc.value.code == "InvalidAction"
    with pytest.raises(TencentCloudSDKException) as exc:  # the 2019-07-11 client: version 2019-07-11
        tencent(emu, module=sms_client_2019).call_json("SendMultiGlobalSms", body)
    assert exc.value.code == "NoSuchVersion"
    with pytest.raises(TencentCloudSDKException) as exc:
        tencent(emu, region="ap-guangzhou").SendMultiGlobalSms(multi(ONE))
    assert exc.value.code == "UnsupportedOperation.UnsupportedRegion"
    assert emu.accepted == []


def test_tencent_sdk_templates(emulator):
    emu = emulator(templates=TEMPLATES)
    resp = tencent(emu).SendMultiGlobalSms(multi(
        {"PhoneNumber": "+6591234500", "TemplateId": "T_ONE", "TemplateParamSet": ["1234"]},
        {"PhoneNumber": "+6591234501", "TemplateId": "T_TWO", "TemplateParamSet": ["A1", "2 days"]},
        {"PhoneNumber": "+6591234502", "TemplateId": "T_ONE", "TemplateParamSet": ["1", "2"]},
        {"PhoneNumber": "+6591234503", "TemplateId": "NO_SUCH"},
    ))
    codes = [(s.Code, s.Fee) for s in resp.SendMultiStatusSet]
    assert codes == [("Ok", 1), ("Ok", 2),  # T_TWO's text is 180 GSM-7 characters: two parts
                     ("FailedOperation.TemplateIncorrectOrUnapproved", 0),
                     ("FailedOperation.TemplateUnapprovedOrNotExist", 0)]
    assert [e["phone"] for e in logged(emu)] == ["+6591234500", "+6591234501"]


def test_tencent_sdk_throttled(emulator):
    with pytest.raises(TencentCloudSDKException) as exc:
        tencent(emulator(throttle_rate=1.0)).SendMultiGlobalSms(multi(ONE))
    assert exc.value.code == "RequestLimitExceeded"


# === Aliyun: aliyun-python-sdk-core, CommonRequest (RPC, HMAC-SHA1) ============================
from aliyunsdkcore.acs_exception.exceptions import ServerException  # noqa: E402
from aliyunsdkcore.client import AcsClient  # noqa: E402
from aliyunsdkcore.request import CommonRequest  # noqa: E402

ALI_PARAMS = [{"code": PARAMS[0], "name": PARAMS[1]}, {"code": PARAMS[2], "name": PARAMS[3]}]
ALI_GOOD = {"PhoneNumberJson": json.dumps(["6591234500", "13800138000"]),
            "SignNameJson": json.dumps(["阿里云 短信", "ACME ~*'()!&=+%/?#"], ensure_ascii=False),
            "TemplateCode": "SMS_152550005",
            "TemplateParamJson": json.dumps(ALI_PARAMS, ensure_ascii=False), "OutId": "out 中文 1"}


def acs(emu, key_id=DEFAULT_KEY_ID, secret=DEFAULT_KEY_SECRET) -> AcsClient:
    return AcsClient(key_id, secret, "cn-hangzhou", port=host_port(emu)[1], auto_retry=False)


def common(emu, business: dict, method="POST", in_body=False, action="SendBatchSms",
           version="2017-05-25") -> CommonRequest:
    req = CommonRequest(domain=host_port(emu)[0], version=version, action_name=action)
    req.set_method(method)
    req.set_protocol_type("http")
    for k, v in business.items():
        if in_body:
            req.add_body_params(k, v)
        else:
            req.add_query_param(k, v)
    return req


def check_aliyun_accepted(emu, answer: dict) -> None:
    assert answer["Code"] == "OK" and answer["Message"] == "OK" and answer["RequestId"]
    assert answer["BizId"].endswith("^0")
    entries = logged(emu)
    assert [(e["provider"], e["phone"]) for e in entries] == [("aliyun", "+6591234500"), ("aliyun", "+8613800138000")]
    assert [utf8(e["params"]) for e in entries] == [utf8(p) for p in ALI_PARAMS]
    assert [e["sender_id"] for e in entries] == ["阿里云 短信", "ACME ~*'()!&=+%/?#"]
    assert {e["user_id"] for e in entries} == {"out 中文 1"} and {e["ref"] for e in entries} == {answer["BizId"]}


@pytest.mark.parametrize("method,in_body", [("GET", False), ("POST", False), ("POST", True)])
def test_aliyun_core_sdk_accepted_logged_intact_and_parsed(emulator, method, in_body):
    emu = emulator()
    answer = json.loads(acs(emu).do_action_with_exception(common(emu, ALI_GOOD, method, in_body)))
    check_aliyun_accepted(emu, answer)


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_aliyun_core_sdk_wrong_secret(emu, method):
    req = common(emu, ALI_GOOD, method)
    with pytest.raises(ServerException) as exc:
        acs(emu, secret="wrong-secret").do_action_with_exception(req)
    assert exc.value.get_error_code() == "SignatureDoesNotMatch" and exc.value.get_http_status() == 400
    # the server echoes its string to sign: it is the one the SDK signed (CommonRequest keeps
    # the RPC request it built in .request)
    assert exc.value.get_error_msg().split("server string to sign is:", 1)[1] == req.request.string_to_sign
    assert emu.accepted == []


@pytest.mark.parametrize("kwargs,business,status,code", [
    ({}, {**ALI_GOOD, "TemplateCode": None}, 400, "MissingTemplateCode"),
    ({"action": "SendNothing"}, ALI_GOOD, 404, "InvalidAction.NotFound"),
    ({"version": "2018-01-01"}, ALI_GOOD, 400, "InvalidVersion"),
])
def test_aliyun_core_sdk_envelope_errors(emu, kwargs, business, status, code):
    business = {k: v for k, v in business.items() if v is not None}
    with pytest.raises(ServerException) as exc:
        acs(emu).do_action_with_exception(common(emu, business, **kwargs))
    assert (exc.value.get_http_status(), exc.value.get_error_code()) == (status, code)


def test_aliyun_core_sdk_wrong_key_id_and_throttling(emu, emulator):
    with pytest.raises(ServerException) as exc:
        acs(emu, key_id="nobody").do_action_with_exception(common(emu, ALI_GOOD))
    assert (exc.value.get_http_status(), exc.value.get_error_code()) == (404, "InvalidAccessKeyId.NotFound")
    throttled = emulator(throttle_rate=1.0)
    with pytest.raises(ServerException) as exc:
        acs(throttled).do_action_with_exception(common(throttled, ALI_GOOD))
    assert exc.value.get_error_code() == "Throttling.User"


ALI_BUSINESS_ERRORS = [
    ({"PhoneNumberJson": json.dumps([f"659{i:07d}" for i in range(101)]),
      "SignNameJson": json.dumps(["ACME"] * 101), "TemplateParamJson": json.dumps([{"code": "1"}] * 101)},
     "isv.MOBILE_COUNT_OVER_LIMIT"),
    # content control of a template variable (the module emulator blocks "casino"), not the number
    ({"TemplateParamJson": json.dumps([{"code": "1"}, {"code": "Casino night"}])}, "isv.BLACK_KEY_CONTROL_LIMIT"),
    ({"PhoneNumberJson": json.dumps(["6591234500", "+6591234501"])}, "isv.MOBILE_NUMBER_ILLEGAL"),
    ({"PhoneNumberJson": json.dumps(["6591234500", "6512"])}, "isv.MOBILE_NUMBER_ILLEGAL"),
    ({"SignNameJson": json.dumps(["ACME"])}, "isv.INVALID_JSON_PARAM"),
]


@pytest.mark.parametrize("change,code", ALI_BUSINESS_ERRORS)
def test_aliyun_core_sdk_business_errors_in_the_body(emu, change, code):
    answer = json.loads(acs(emu).do_action_with_exception(common(emu, {**ALI_GOOD, **change})))
    assert answer["Code"] == code and answer["RequestId"] and "BizId" not in answer
    assert emu.accepted == []


def test_aliyun_core_sdk_templates(emulator):
    emu = emulator(templates=TEMPLATES)
    one = {"PhoneNumberJson": '["6591234500"]', "SignNameJson": '["ACME"]'}
    cases = [({"TemplateCode": "NO_SUCH"}, "isv.SMS_TEMPLATE_ILLEGAL"),
             ({"TemplateCode": "T_ONE"}, "isv.TEMPLATE_MISSING_PARAMETERS"),
             ({"TemplateCode": "T_ONE", "TemplateParamJson": '[{"code":"1234"}]'}, "OK")]
    codes = [json.loads(acs(emu).do_action_with_exception(common(emu, {**one, **c})))["Code"] for c, _ in cases]
    assert codes == [c for _, c in cases]
    assert [e["params"] for e in logged(emu)] == [{"code": "1234"}]


# === Aliyun: alibabacloud_dysmsapi20170525 (ACS3-HMAC-SHA256 by default, or signature v2) ======
from alibabacloud_dysmsapi20170525 import models as dysms_models  # noqa: E402
from alibabacloud_dysmsapi20170525.client import Client as DysmsClient  # noqa: E402
from alibabacloud_tea_openapi import models as open_api_models  # noqa: E402
from alibabacloud_tea_openapi.exceptions import ClientException  # noqa: E402
from alibabacloud_tea_openapi.utils_models import OpenApiRequest, Params  # noqa: E402
from darabonba.runtime import RuntimeOptions  # noqa: E402

ALGORITHMS = [None, "v2"]  # None: the SDK's default, ACS3-HMAC-SHA256; "v2": the RPC signature


def dysms(emu, algorithm=None, key_id=DEFAULT_KEY_ID, secret=DEFAULT_KEY_SECRET) -> DysmsClient:
    host, port = host_port(emu)
    config = open_api_models.Config(access_key_id=key_id, access_key_secret=secret,
                                    endpoint=f"{host}:{port}", protocol="http")
    if algorithm:
        config.signature_algorithm = algorithm
    return DysmsClient(config)


def batch_request(business: dict) -> dysms_models.SendBatchSmsRequest:
    names = {"PhoneNumberJson": "phone_number_json", "SignNameJson": "sign_name_json",
             "TemplateCode": "template_code", "TemplateParamJson": "template_param_json", "OutId": "out_id"}
    return dysms_models.SendBatchSmsRequest(**{names[k]: v for k, v in business.items() if v is not None})


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_dysms_sdk_accepted_logged_intact_and_parsed(emulator, algorithm):
    emu = emulator()
    resp = dysms(emu, algorithm).send_batch_sms(batch_request(ALI_GOOD))
    assert resp.status_code == 200
    body = resp.body
    assert (body.code, body.message) == ("OK", "OK") and body.request_id and body.biz_id.endswith("^0")
    check_aliyun_accepted(emu, body.to_map())


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("kwargs,status,code", [({"secret": "wrong-secret"}, 400, "SignatureDoesNotMatch"),
                                                ({"key_id": "nobody"}, 404, "InvalidAccessKeyId.NotFound")])
def test_dysms_sdk_wrong_credentials(emu, algorithm, kwargs, status, code):
    with pytest.raises(ClientException) as exc:
        dysms(emu, algorithm, **kwargs).send_batch_sms(batch_request(ALI_GOOD))
    assert (exc.value.status_code, exc.value.code) == (status, code)
    assert emu.accepted == []


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_dysms_sdk_envelope_errors(emu, algorithm):
    client = dysms(emu, algorithm)
    with pytest.raises(ClientException) as exc:
        client.send_batch_sms(batch_request({**ALI_GOOD, "SignNameJson": None}))
    assert (exc.value.status_code, exc.value.code) == (400, "MissingSignNameJson")
    for action, version, status, code in [("SendNothing", "2017-05-25", 404, "InvalidAction.NotFound"),
                                          ("SendBatchSms", "2018-01-01", 400, "InvalidVersion")]:
        params = Params(action=action, version=version, protocol="HTTPS", pathname="/", method="POST",
                        auth_type="AK", style="RPC", req_body_type="formData", body_type="json")
        with pytest.raises(ClientException) as exc:
            client.call_api(params, OpenApiRequest(query={"TemplateCode": "T"}, body={"PhoneNumberJson": "[]"}),
                            RuntimeOptions())
        assert (exc.value.status_code, exc.value.code) == (status, code)
    assert emu.accepted == []


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("change,code", ALI_BUSINESS_ERRORS)
def test_dysms_sdk_business_errors_in_the_body(emu, algorithm, change, code):
    resp = dysms(emu, algorithm).send_batch_sms(batch_request({**ALI_GOOD, **change}))
    assert resp.status_code == 200 and resp.body.code == code and resp.body.biz_id is None
    assert emu.accepted == []


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_dysms_sdk_templates(emulator, algorithm):
    emu = emulator(templates=TEMPLATES)
    client = dysms(emu, algorithm)
    one = {"PhoneNumberJson": '["6591234500"]', "SignNameJson": '["ACME"]'}
    cases = [({"TemplateCode": "NO_SUCH"}, "isv.SMS_TEMPLATE_ILLEGAL"),
             ({"TemplateCode": "T_TWO", "TemplateParamJson": '[{"order":"A1"}]'}, "isv.TEMPLATE_MISSING_PARAMETERS"),
             ({"TemplateCode": "T_ONE", "TemplateParamJson": '[{"code":"1234"}]'}, "OK")]
    assert [client.send_batch_sms(batch_request({**one, **c})).body.code for c, _ in cases] == [c for _, c in cases]
    assert [e["params"] for e in logged(emu)] == [{"code": "1234"}]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_dysms_sdk_throttled(emulator, algorithm):
    with pytest.raises(ClientException) as exc:
        dysms(emulator(throttle_rate=1.0), algorithm).send_batch_sms(batch_request(ALI_GOOD))
    assert (exc.value.status_code, exc.value.code) == (400, "Throttling.User")
