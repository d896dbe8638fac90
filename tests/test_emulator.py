"""The emulator itself: malformed HTTP gets an answer (never a traceback), its command's errors
are one line with exit code 2, --templates, and its control endpoints."""
from __future__ import annotations

import json
import socket
import time

import pytest
import requests
import typer.main

from conftest import ROOT, invoke
from sms_cli.emulator.server import DIALECTS
from sms_cli.emulator.wire import DEFAULT_KEY_ID, DEFAULT_KEY_SECRET, Dialect, parse_e164, possible_e164
from sms_cli.emulator.templates import load_templates
from sms_cli.core.errors import SmsCliError
from sms_cli.providers.tencent import CONTENT_TYPE, tc3_signature


def raw(emu, request: bytes, *, half_close: bool = True) -> tuple[int, bytes]:
    """Send bytes as they are; return (status, body) of the answer."""
    host, port = emu.server.server_address[:2]
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(request)
        if half_close:
            sock.shutdown(socket.SHUT_WR)  # no more bytes: a short body is short, not late
        data = b""
        while b"\r\n\r\n" not in data or len(data.partition(b"\r\n\r\n")[2]) < _length(data):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def _length(data: bytes) -> int:
    for line in data.partition(b"\r\n\r\n")[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def post(path: str, body: bytes, *headers: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


NESTED = b"[" * 100000 + b"]" * 100000


@pytest.mark.parametrize("request_bytes,status", [
    (post("/api", b'{"Action":"x"}', "Content-Type: application/json"), 400),  # no Content-Length
    (post("/api", b"{}", "Content-Length: abc"), 400),
    (post("/api", b"{}", "Content-Length: -1"), 400),
    (post("/api", b"{}", "Content-Length: 2", "Content-Length: 3"), 400),
    (post("/api", b"{}", "Content-Length: 99999999999"), 400),
    (post("/api", b"{}", "Content-Length: 10"), 400),  # body shorter than announced
    (post("/api", b"not json", "Content-Length: 8"), 400),
    (post("/api", b"\xff\xfe", "Content-Length: 2"), 400),
    (post("/api", NESTED, f"Content-Length: {len(NESTED)}"), 400),
    (post("/api", b"[" * 40 + b"]" * 40, "Content-Length: 80"), 400),  # deeper than any API goes
    (post("/", b"a=%FF", "Content-Length: 5", "Content-Type: application/x-www-form-urlencoded"), 400),
    (post("/", b"x", "Transfer-Encoding: chunked"), 400),
    (b"GET / HTTP/x\r\n\r\n", 400),
    (b"GET /?a=%FF&AccessKeyId=x HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    (post("/nowhere", b"{}", "Content-Length: 2"), 404),
])
def test_malformed_http_gets_an_answer_never_a_traceback(emu, capfd, request_bytes, status):
    got, body = raw(emu, request_bytes)
    assert got == status
    if body.startswith(b"{"):
        assert json.loads(body)  # the dialect's (or the server's) JSON error shape
    assert "Traceback" not in capfd.readouterr().err
    assert requests.get(emu.url + "/_emulator/stats", timeout=5).status_code == 200  # still serving
    assert emu.accepted == []


def test_malformed_bodies_in_each_apis_error_shape(emu):
    status, body = raw(emu, post("/api", b"[1,2", "Content-Length: 4", "Content-Type: application/json"))
    assert status == 400 and json.loads(body)["RetCode"] == 215392
    # Tencent: the signature is checked first, then the (signed) body is read
    host = emu.url.split("//", 1)[1]
    ts = int(time.time())
    auth, _ = tc3_signature(DEFAULT_KEY_ID, DEFAULT_KEY_SECRET, "sms", host, CONTENT_TYPE, NESTED, ts)
    resp = requests.post(emu.url + "/", data=NESTED, timeout=5, headers={
        "Content-Type": CONTENT_TYPE, "X-TC-Action": "SendMultiGlobalSms", "X-TC-Version": "2021-01-11",
        "X-TC-Region": "ap-singapore", "X-TC-Timestamp": str(ts), "Authorization": auth})
    assert resp.status_code == 400
    assert resp.json()["Response"]["Error"]["Code"] == "FailedOperation.FailResolvePacket"
    resp = requests.post(emu.url + "/", data=b"AccessKeyId=x&a=%FF", timeout=5,
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert resp.status_code == 400 and resp.json()["Code"] == "InvalidParameter" and resp.json()["RequestId"]


def test_chunked_body_is_read(emu):
    body = b'{"Action":"SendBatchUSMSMessage"}'
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    status, answer = raw(emu, post("/api", chunked, "Transfer-Encoding: chunked", "Content-Type: application/json"))
    assert status == 200 and json.loads(answer)["RetCode"] == 172  # read, then refused: no key id


def test_keep_alive_survives_an_error(emu):
    with requests.Session() as s:
        assert s.post(emu.url + "/api", data=b"nope", timeout=5).status_code == 400
        assert s.get(emu.url + "/_emulator/stats", timeout=5).json()["accepted"] == 0


def test_control_endpoints(emu):
    try:
        resp = requests.post(emu.url + "/_emulator/blacklist", json=["+6591234500", "(852)55311100"], timeout=5)
        assert resp.json() == {"blacklist": ["6591234500", "85255311100"]}
        assert requests.post(emu.url + "/_emulator/blacklist", data=b"{", timeout=5).status_code == 400
        assert requests.post(emu.url + "/_emulator/blacklist", json={"a": 1}, timeout=5).status_code == 400
        stats = requests.get(emu.url + "/_emulator/stats", timeout=5).json()
        assert stats["blacklist"] == ["6591234500", "85255311100"] and "requests" in stats
    finally:
        emu.set_blacklist(["+60111111111", "+85255311101"])  # the module fixture's own


# --- the command -------------------------------------------------------------------------
@pytest.mark.parametrize("args,message", [
    (["--blacklist", "@nosuch.txt"], "--blacklist @nosuch.txt: cannot read nosuch.txt"),
    (["--port", "99999"], "--port 99999: must be a port number from 0 to 65535"),
    (["--port", "-1"], "--port -1: must be a port number"),
    (["--templates", "nosuch.yaml"], "--templates nosuch.yaml: cannot read"),
    (["--log", "no/such/dir/log.jsonl", "--port", "0"], "--log no/such/dir/log.jsonl: cannot open"),
    (["--host", "256.1.1.1", "--port", "0"], "cannot listen on 256.1.1.1:0"),
])
def test_command_errors_are_one_line_exit_2(tmp_path, args, message):
    r = invoke("emulator", *args, cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("sms-cli: error: ") and message in r.stderr, r.stderr


def test_port_in_use_is_one_line(tmp_path, emu):
    r = invoke("emulator", "--port", str(emu.server.server_address[1]), cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "cannot listen on" in r.stderr


def test_every_option_has_help():
    from sms_cli.cli.app import app

    command = typer.main.get_command(app).commands["emulator"]
    options = [p for p in command.params if p.param_type_name == "option" and p.name != "help"]
    assert {"host", "stall_ms", "templates", "port"} <= {p.name for p in options}
    assert [p.name for p in options if not (p.help or "").strip()] == []


# --- --templates ----------------------------------------------------------------------------
def test_templates_from_an_sms_cli_config_file():
    templates = load_templates(str(ROOT / "samples" / "emulator.yaml"))
    assert set(templates) == {"OTP_LOGIN", "ORDER_SHIPPED", "PROMO_NOV"}
    assert templates["ORDER_SHIPPED"].names == ("order", "eta") and templates["OTP_LOGIN"].text


def test_templates_file_forms(tmp_path):
    bare = tmp_path / "bare.yaml"
    bare.write_text("1800308: {params: 2}\nSMS_1: {params: [code], text: 'Code {code}'}\nFREE:\n")
    templates = load_templates(str(bare))
    assert templates["1800308"].count == 2 and templates["1800308"].names is None
    assert templates["SMS_1"].names == ("code",) and templates["FREE"].count is None
    for text, message in [("templates: [a, b]\n", "expected `templates:`"), ("A: {params: x}\n", "params"),
                          ("A: {param: 1}\n", "unknown key 'param'"), ("A: [1]\n", "expected a mapping"),
                          ("a: [\n", r"bad\.yaml:\d+: "), ("", "expected `templates:`"),
                          ("a: &x [1]\nb: *x\n", "anchors")]:  # no aliases: no alias bomb
        bad = tmp_path / "bad.yaml"
        bad.write_text(text)
        with pytest.raises(SmsCliError, match=message):
            load_templates(str(bad))


def test_templates_option_reaches_the_server(tmp_path):
    """The command line wires --templates through to the checks (the SDK tests cover the codes)."""
    from sms_cli.emulator.server import Emulator, Options

    with Emulator(Options(port=0, templates=load_templates(str(ROOT / "samples" / "emulator.yaml")))) as emu:
        assert emu.knows_template("OTP_LOGIN") and not emu.knows_template("NOPE")
        assert emu.template_problem("OTP_LOGIN", ["1", "2"])[0] == "params"
        assert emu.template_problem("PROMO_NOV", {"name": "Ana"}) is None
        assert emu.parts("OTP_LOGIN", ["123456"]) == 1


def test_a_dialect_is_one_class_and_one_registry_line():
    assert all(issubclass(d, Dialect) for d in DIALECTS)
    assert [d.name for d in DIALECTS] == ["tencent", "aliyun", "uspeedo"]


@pytest.mark.parametrize("number", ["+6591234500", "+6512", "+6512345678", "+60111111111", "+4407911123456",
                                    "+447911123456", "+8613800138000", "+13105551234", "+882123456", "+80012345678",
                                    "+97912345678", "+999123456", "+1", "6591234500", "+65 9123 4500", ""])
def test_fast_number_check_agrees_with_phonenumbers(number):
    assert possible_e164(number) is (parse_e164(number) is not None)
