"""The foundation path end to end: the sample through the emulator, the failures file, and the
resend of that failures file; plus each bad-input case (exit 2, one line, nothing sent)."""
import csv
import json
import shutil

import pytest

from conftest import ROOT, invoke

SAMPLES = ROOT / "samples"
INVALID_LINES = {7, 14, 22, 27}  # the sample's invalid rows (file line numbers)
BLACKLIST = ["+85255311101", "(65)91234502"]


def read_failures(path):
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def accepted_phones(emu):
    return [e["phone"] for e in emu.accepted]


def test_sample_through_emulator_then_resend_failures(tmp_path, emulator, write_config):
    emu = emulator(blacklist=set(BLACKLIST))
    cfg = write_config(emu)
    shutil.copy(SAMPLES / "recipients.csv", tmp_path)
    first = invoke("send", "recipients.csv", "--config", cfg, "--default-region", "SG", cwd=tmp_path)
    assert first.returncode == 1, first.stderr
    assert "Traceback" not in first.stderr
    failed = read_failures(tmp_path / "recipients.failed.csv")
    by_line = {int(r["line"]): r for r in failed}
    blacklisted = {ln for ln, r in by_line.items() if r["error_code"] == "FailContent"}
    assert set(by_line) - blacklisted == INVALID_LINES
    assert len(blacklisted) == 2 and all(by_line[ln]["retryable"] == "no" for ln in blacklisted)
    assert all(by_line[ln]["retryable"] == "no" and by_line[ln]["error_message"] for ln in INVALID_LINES)
    # the failures file keeps the row's own columns, in the input's order, then the error columns
    header = open(tmp_path / "recipients.failed.csv", encoding="utf-8").readline().strip().split(",")
    assert header == ["phone", "template_id", "param1", "param2", "sender_id", "user_id",
                      "error_code", "error_message", "line", "retryable", "sms_ref"]
    assert len(set(accepted_phones(emu))) == len(accepted_phones(emu)) == 32 - 4 - 2
    # params stay strings: the row with code 012345 arrived with its leading zero
    assert any(e["params"] == ["012345"] for e in emu.accepted)
    first_reasons = {r["phone"]: r["error_message"] for r in failed if int(r["line"]) in INVALID_LINES}

    emu.set_blacklist([])
    before = len(emu.accepted)
    second = invoke("send", "recipients.failed.csv", "--config", cfg, "--default-region", "SG", cwd=tmp_path)
    assert second.returncode == 1, second.stderr
    assert len(emu.accepted) - before == 2  # the formerly blacklisted rows
    again = read_failures(tmp_path / "recipients.failed.csv")  # rewritten with what still fails
    assert {r["phone"]: r["error_message"] for r in again} == first_reasons
    phones = accepted_phones(emu)
    assert len(phones) == len(set(phones)) == 28  # nobody accepted twice across both runs


def test_jsonl_sample_gives_jsonl_failures_and_resend_works(tmp_path, emulator, write_config):
    emu = emulator(blacklist={"+85255311101"})
    cfg = write_config(emu)
    shutil.copy(SAMPLES / "recipients.jsonl", tmp_path)
    r = invoke("send", "recipients.jsonl", "--config", cfg, "--json", cwd=tmp_path)
    assert r.returncode == 1
    summary = json.loads(r.stdout)
    assert summary["accepted"] == 27 and summary["invalid"] == 4 and summary["failed"] == 1
    rows = [json.loads(x) for x in open(tmp_path / "recipients.failed.jsonl", encoding="utf-8")]
    assert {r["retryable"] for r in rows} == {"no"} and len(rows) == 5
    assert all(isinstance(r["params"], list) for r in rows)
    emu.set_blacklist([])
    r2 = invoke("send", "recipients.failed.jsonl", "--config", cfg, "--only-retryable", cwd=tmp_path)
    assert r2.returncode == 1, r2.stderr  # every row was retryable: no, so nothing is sent ...
    assert len(emu.accepted) == 27
    again = [json.loads(x) for x in open(tmp_path / "recipients.failed.jsonl", encoding="utf-8")]
    assert [(r["phone"], r["error_code"]) for r in again] == [(r["phone"], r["error_code"]) for r in rows]


def test_all_accepted_removes_stale_failures_file(tmp_path, emulator, write_config):
    emu = emulator()
    cfg = write_config(emu)
    (tmp_path / "in.csv").write_text("phone,template_id,params\n+6591234500,OTP_LOGIN,\"[\"\"0123\"\"]\"\n")
    (tmp_path / "in.failed.csv").write_text("stale\n")
    r = invoke("send", "in.csv", "--config", cfg, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert not (tmp_path / "in.failed.csv").exists()
    assert "stale" in r.stderr
    assert emu.accepted[0]["params"] == ["0123"]


def test_stdin_lines_with_defaults(tmp_path, emulator, write_config):
    emu = emulator()
    cfg = write_config(emu)
    r = invoke("send", "-", "--format", "lines", "--template", "OTP_LOGIN", "--param", "0042",
                "--config", cfg, cwd=tmp_path, input="+6591234500\n(852)55311100\n0085255311101\nnope\n")
    assert r.returncode == 1, r.stderr
    assert sorted(accepted_phones(emu)) == ["+6591234500", "+85255311100", "+85255311101"]
    assert all(e["params"] == ["0042"] for e in emu.accepted)
    failed = list(tmp_path.glob("sms-stdin-*.failed.jsonl"))
    assert len(failed) == 1
    row = json.loads(failed[0].read_text())
    # defaults are written into the row, so the failures file resends with no flags
    assert row["template_id"] == "OTP_LOGIN" and row["params"] == ["0042"] and row["line"] == 4


def test_uspeedo_request_body_and_failcontent_inputs(tmp_path, emulator, write_config):
    emu = emulator()
    cfg = write_config(emu)
    body = {"Action": "SendBatchUSMSMessage", "AccountId": 1, "TaskContent": [
        {"TemplateId": "PROMO_NOV", "SenderId": "ACME",
         "Target": [{"Phone": "(852)55311100", "TemplateParams": ["Ana"]},
                    {"Phone": "(65)91234500", "TemplateParams": ["Ben"], "UserId": "u1"}]}]}
    (tmp_path / "body.json").write_text(json.dumps(body))
    fail = {"RetCode": 0, "FailContent": [{"TemplateId": "OTP_LOGIN", "SenderId": "ACME", "FailureDetails": "x",
                                           "Target": [{"Phone": "(852)55311101", "TemplateParams": ["123456"]}]}]}
    (tmp_path / "fail.json").write_text(json.dumps(fail))
    assert invoke("send", "body.json", "--config", cfg, cwd=tmp_path).returncode == 0
    assert invoke("send", "fail.json", "--config", cfg, cwd=tmp_path).returncode == 0
    got = {(e["phone"], e["template_id"], e["sender_id"]) for e in emu.accepted}
    assert got == {("+85255311100", "PROMO_NOV", "ACME"), ("+6591234500", "PROMO_NOV", "ACME"),
                   ("+85255311101", "OTP_LOGIN", "ACME")}
    assert any(e["user_id"] == "u1" for e in emu.accepted)


def test_no_config_uses_outbox(tmp_path):
    shutil.copy(SAMPLES / "recipients.csv", tmp_path)
    r = invoke("send", "recipients.csv", cwd=tmp_path)
    assert r.returncode == 1
    assert "nothing leaves this machine" in r.stderr
    lines = (tmp_path / "sms-outbox.jsonl").read_text().splitlines()
    assert len(lines) == 28


BAD_INPUTS = [
    ("missing.csv", None, "no such file"),
    ("notcsv.csv", b"\x00\x01\x02phone\n", "phone column"),
    ("nophone.csv", b"name,template_id\nAna,T\n", "no phone column"),
    ("latin1.csv", "phone,template_id\n+6591234500,caf\u00e9\n".encode("latin-1"), "line 2"),
    ("broken.json", b'[{"phone": "+6591234500",\n "template_id": }]', "not valid JSON"),
    ("object.json", b'{"rows": []}', "TaskContent"),
    ("empty.csv", b"", "header"),
    ("data.xml", b"<rows/>", "cannot tell the format"),
]


@pytest.mark.parametrize("name,content,expect", BAD_INPUTS)
def test_bad_input_is_one_line_exit_2_nothing_sent(tmp_path, emulator, write_config, name, content, expect):
    emu = emulator()
    cfg = write_config(emu)
    if content is not None:
        (tmp_path / name).write_bytes(content)
    r = invoke("send", name, "--config", cfg, cwd=tmp_path)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr
    assert name in lines[0]
    assert expect in lines[0].replace(f"{name}:2", "line 2")
    assert emu.stats()["requests"] == 0


BAD_CONFIGS = [
    ("providers:\n  a:\n    type: nosuch\n", "type"),
    ("providers:\n  a:\n    type: uspeedo\n    acess_key_id: x\n", "acess_key_id"),
    ("providers:\n  a:\n    type: uspeedo\n    access_key_id: ${NOT_SET_ANYWHERE}\n", "NOT_SET_ANYWHERE"),
    ("providers: [\n", "sms-cli.yaml"),
    ("default_provider: b\nproviders:\n  a:\n    type: outbox\n", "default_provider"),
    ("providers:\n  a:\n    type: uspeedo\n    rate_limit: fast\n", "rate_limit"),
    ("templates:\n  T: {params: 1, txt: x}\n", "txt"),
    ("default_region: XX\n", "unknown region 'XX'"),
]


@pytest.mark.parametrize("text,expect", BAD_CONFIGS)
def test_bad_config_is_one_line_exit_2(tmp_path, text, expect):
    (tmp_path / "sms-cli.yaml").write_text(text)
    (tmp_path / "in.txt").write_text("+6591234500\n")
    r = invoke("send", "in.txt", "--template", "T", cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and expect in r.stderr
    assert not (tmp_path / "sms-outbox.jsonl").exists()
