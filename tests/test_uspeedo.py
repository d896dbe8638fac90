"""uSpeedo adapter: the published signature examples, request shapes, and answers read from a
real emulator on 127.0.0.1."""
import json

import pytest

from sms_cli.core.settings import ProviderSettings, Template
from sms_cli.emulator.server import Emulator, Options
from sms_cli.emulator.server import DEFAULT_KEY_ID, DEFAULT_KEY_SECRET
from sms_cli.core.model import Kind, Message
from sms_cli.run.plan import Batcher
from sms_cli.providers.uspeedo import USpeedo, encode_value, sign, signing_string

# auth-and-limits.md, "uSpeedo": published examples
BODY_1 = json.loads(
    '{"Action":"SendBatchUSMSMessage","AccountId":10001,"TaskContent":[{"TemplateId":"UTA2233108MUY3HZ",'
    '"SenderId":"uSpeedo","Target":[{"TemplateParams":["123456","653132","nickname1"],"Phone":"55212345780"},'
    '{"TemplateParams":["123457","765421","nickname2"],"Phone":"55212345781"}]}]}')
SECRET_1 = "MjI3YmYyMjItNmM4Mi00ZGM5LWEwNDQtN2EzZjM0Yzk2OWE1"
STRING_1 = ("AccountId10001ActionSendBatchUSMSMessageTaskContentSenderIduSpeedoTargetPhone55212345780"
            "TemplateParams123456653132nickname1Phone55212345781TemplateParams123457765421nickname2"
            "TemplateIdUTA2233108MUY3HZMjI3YmYyMjItNmM4Mi00ZGM5LWEwNDQtN2EzZjM0Yzk2OWE1")
BODY_2 = json.loads('{"Action":"SendBatchUSMSMessage","TaskContent":[{"TemplateId":"UTAXXXXXXXXXXX",'
                    '"SenderId":"uspeedo","Target":[{"Phone":"1111","TemplateParams":["1111"]}]}]}')
SECRET_2 = "NTk1Mzk0MAItOWI0My10MGM4LTg0NmMMNDM0ZGM5Y2ZkMmNk"


def test_published_signature_example_1():
    assert signing_string(BODY_1, SECRET_1) == STRING_1
    assert sign(BODY_1, SECRET_1) == "69cc15724cda05b63c99cebf8226202d4c69ef0f"


def test_published_signature_example_2():
    assert sign(BODY_2, SECRET_2) == "7175ca50d6204dfd469e8aab447810c08f9da53f"


def test_value_encoding_rules():
    assert encode_value(True) == "true" and encode_value(False) == "false"
    assert encode_value(10) == "10"
    assert encode_value(["a", 1, None]) == "a1"
    assert encode_value({"b": "2", "a": ["x", "y"]}) == "axyb2"
    assert signing_string({"Z": "1", "A": None}, "s") == "Z1s"  # nulls dropped


def msg(seq, phone="+85255311100", template="T1", params=("1",), sender=None, cc=852, **kw):
    national = phone[1 + len(str(cc)):]
    return Message(seq=seq, line=seq + 2, phone=phone, country_code=cc, national=national,
                   template_id=template, params=list(params), sender_id=sender, key=f"k-{seq}", **kw)


def settings(url="http://127.0.0.1:9/api", **options):
    opts = {"access_key_id": DEFAULT_KEY_ID, "access_key_secret": DEFAULT_KEY_SECRET, "account_id": "10001"}
    opts.update(options)
    return ProviderSettings(name="us", type="uspeedo", endpoint=url, rate_limit=None, connect_timeout=2,
                            read_timeout=5, max_attempts=4, options=opts, secrets=frozenset())


def test_body_groups_by_template_and_sender_in_input_order():
    p = USpeedo(settings(sender_id="DEF"))
    batch = [msg(0, template="A"), msg(1, "+85255311101", template="B", sender="X"),
             msg(2, "+85255311102", template="A"), msg(3, "+85255311103", template="A", sender="X")]
    body = p.build_body(batch)
    assert body["Action"] == "SendBatchUSMSMessage" and body["AccountId"] == 10001
    items = [(i["TemplateId"], i.get("SenderId"), [t["Phone"] for t in i["Target"]]) for i in body["TaskContent"]]
    assert items == [("A", "DEF", ["(852)55311100", "(852)55311102"]), ("B", "X", ["(852)55311101"]),
                     ("A", "X", ["(852)55311103"])]
    assert body["TaskContent"][0]["Target"][0]["UserId"] == "k-0"  # stable key when the row has none


@pytest.mark.parametrize("account", ["10001", ""])
def test_the_one_pass_signature_equals_the_published_scheme(account):
    """The adapter signs TaskContent as it builds it; it must agree with the generic encoder
    (the published scheme) on every shape: senders or not, params or not, extend codes."""
    p = USpeedo(settings(sender_id="" if not account else "DEF", account_id=account))
    batch = [msg(0, template="A"), msg(1, "+85255311101", template="B", sender="X", params=()),
             msg(2, "+85255311102", template="A", params=("a", "", "中文 ~*")),
             msg(3, "+85255311103", template="A", sender="X", extend_code="12"),
             msg(4, "+85255311104", template="B", sender="X", user_id="own-id")]
    body, content = p._request(batch)
    assert content is not None and p.signature(body, content) == sign(body, DEFAULT_KEY_SECRET)


def test_requests_hold_at_most_1000_numbers():
    p = USpeedo(settings())
    b = Batcher(p.max_batch, p.batch_key)
    sizes = [len(x) for i in range(2500) for x in b.add(msg(i, template=f"T{i % 3}"))]
    sizes += [len(x) for x in b.flush()]
    assert sizes == [1000, 1000, 500]


def test_send_usms_message_splits_by_content():
    p = USpeedo(settings(action="SendUSMSMessage"))
    b = Batcher(p.max_batch, p.batch_key)
    rows = [msg(0, params=("1",)), msg(1, "+85255311101", params=("2",)), msg(2, "+85255311102", params=("1",))]
    batches = [x for m in rows for x in b.add(m)] + list(b.flush())
    assert [[m.seq for m in x] for x in batches] == [[0, 2], [1]]
    body = p.build_body(batches[0])
    assert body["PhoneNumbers"] == ["(852)55311100", "(852)55311102"] and body["TemplateParams"] == ["1"]


def test_named_params_need_template_names():
    p = USpeedo(settings(), {"T1": Template("T1", ("code", "mins"), 2)})
    m = msg(0)
    m.params = {"mins": "5", "code": "0123"}
    assert p.prepare(m) is None and m.params == ["0123", "5"]
    m2 = msg(1, template="T9")
    m2.params = {"code": "1"}
    assert "parameter names" in p.prepare(m2)


@pytest.mark.parametrize("auth", ["signature", "basic"])
def test_blacklisted_number_fails_others_accepted(emu, auth):
    p = USpeedo(settings(emu.url + "/api", auth=auth))
    out = p.send([msg(0), msg(1, "+85255311101"), msg(2, "+85255311102")])
    assert [o.kind for o in out] == [Kind.ACCEPTED, Kind.PERMANENT, Kind.ACCEPTED]
    assert out[1].code == "FailContent" and "black list" in out[1].message
    assert out[0].ref  # SessionNo


def test_send_usms_message_against_emulator(emu):
    p = USpeedo(settings(emu.url + "/api", action="SendUSMSMessage"))
    out = p.send([msg(0), msg(2, "+85255311102")])
    assert all(o.kind is Kind.ACCEPTED and o.ref for o in out)


def test_wrong_secret_is_fatal(emu):
    p = USpeedo(settings(emu.url + "/api", access_key_secret="wrong"))
    out = p.send([msg(0), msg(2, "+85255311102")])
    assert {o.kind for o in out} == {Kind.FATAL}


def test_unreachable_endpoint_is_retryable_not_unknown():
    p = USpeedo(settings("http://127.0.0.1:9/api"))  # port 9: nothing listens
    out = p.send([msg(0)])
    assert out[0].kind is Kind.RETRYABLE


def test_drop_after_processing_is_unknown():
    e = Emulator(Options(port=0, drop_rate=1.0)).start()
    try:
        out = USpeedo(settings(e.url + "/api")).send([msg(0)])
        assert out[0].kind is Kind.UNKNOWN and len(e.accepted) == 1
    finally:
        e.stop()


# --- answers through a scripted transport (auth-and-limits.md, corrected) -----------------------
def scripted(*answers):
    """A transport handing out (status, body) answers in turn, and the bodies it was sent."""
    import requests

    sent = []

    def transport(method, url, body, headers, timeout):
        sent.append(json.loads(body))
        resp = requests.models.Response()
        resp.status_code, body = answers[len(sent) - 1]
        resp._content = json.dumps(body).encode()
        return resp

    return transport, sent


@pytest.mark.parametrize("answer,kinds", [
    # a server error after the request was sent: may have been taken
    ({"RetCode": 215400, "Message": "server error"}, [Kind.UNKNOWN] * 3),
    # partial success: a SessionNo took every target not in FailContent, whatever the RetCode
    ({"RetCode": 215400, "SessionNo": "sn", "SuccessCount": 2, "FailContent": [
        {"TemplateId": "T1", "SenderId": "", "Target": [{"Phone": "(852)55311101", "TemplateParams": ["1"],
                                                         "UserId": "k-1", "FailureDetails": "phone in the black list"}]}]},
     [Kind.ACCEPTED, Kind.PERMANENT, Kind.ACCEPTED]),
    ({"RetCode": 215398, "Message": "token"}, [Kind.FATAL] * 3),  # the credentials: stop the run
])
def test_retcodes_as_documented(answer, kinds):
    transport, _ = scripted((200, answer))
    p = USpeedo(settings(), transport=transport)
    out = p.send([msg(0), msg(1, "+85255311101"), msg(2, "+85255311102")])
    assert [o.kind for o in out] == kinds
    if Kind.PERMANENT in kinds:
        assert out[1].opt_out and out[0].ref == "sn"  # the documented opt-out text, and the session


def test_account_id_is_required_with_the_signed_endpoint():
    assert "account_id" in " ".join(USpeedo(settings(account_id="")).missing_settings())
    assert USpeedo(settings(account_id="", auth="basic")).missing_settings() == []
