"""One input through each of the three providers via the emulator: the same accepted numbers,
the provider's own error codes, retries, rate limits and fatal credentials."""
import csv
import json

import pytest

from conftest import make_rows, invoke

PROVIDERS = ["uspeedo", "tencent", "aliyun"]


def write_input(path):
    """Rows for every provider: no +86 numbers (Tencent refuses them), params per template."""
    rows = [("+6591234500", "OTP_LOGIN", '["0123"]'), ("+85255311100", "ORDER_SHIPPED", '["A1", "2 days"]'),
            ("+60123456700", "PROMO_NOV", '{"name": "Ana"}'), ("+61412345610", "OTP_LOGIN", '["4567"]'),
            ("+6591234501", "OTP_LOGIN", '["9999"]'),  # blacklisted below
            ("+6512", "OTP_LOGIN", '["1"]'),  # invalid number
            ("+6591234502", "ORDER_SHIPPED", '["only one"]')]  # wrong parameter count
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["phone", "template_id", "params"])
        w.writerows(rows)


@pytest.mark.parametrize("ptype", PROVIDERS)
def test_same_input_same_accepted_numbers(tmp_path, emulator, write_config, ptype):
    emu = emulator(blacklist={"+6591234501"})
    cfg = write_config(emu, ptype)
    write_input(tmp_path / "in.csv")
    r = invoke("send", "in.csv", "--config", cfg, "--json", cwd=tmp_path)
    assert r.returncode == 1, r.stderr
    failures = {row["phone"]: row for row in csv.DictReader(open(tmp_path / "in.failed.csv", encoding="utf-8"))}
    assert failures["+6512"]["error_code"] == "InvalidPhone"
    assert failures["+6591234502"]["error_code"] == "InvalidParams"
    accepted = {e["phone"] for e in emu.accepted}
    sent = {"+6591234500", "+85255311100", "+60123456700", "+61412345610"}
    if ptype == "aliyun":
        # SendBatchSms does not refuse an opted-out number: it is taken, and its receipt fails
        assert accepted == sent | {"+6591234501"}
        assert set(failures) == {"+6512", "+6591234502"}
    else:
        blacklisted_code = {"uspeedo": "FailContent", "tencent": "FailedOperation.PhoneNumberInBlacklist"}[ptype]
        assert failures["+6591234501"]["error_code"] == blacklisted_code
        assert accepted == sent
        assert set(failures) == {"+6512", "+6591234502", "+6591234501"}
    summary = json.loads(r.stdout)
    assert summary["submission_ids"], "the provider's ids are listed for its console"


@pytest.mark.parametrize("ptype", PROVIDERS)
def test_without_blacklist_every_provider_accepts_the_same_set(tmp_path, emulator, write_config, ptype):
    emu = emulator()
    write_input(tmp_path / "in.csv")
    r = invoke("send", "in.csv", "--config", write_config(emu, ptype), cwd=tmp_path)
    assert r.returncode == 1
    assert {e["phone"] for e in emu.accepted} == {"+6591234500", "+85255311100", "+60123456700",
                                                  "+61412345610", "+6591234501"}


def test_tencent_refuses_mainland_numbers_before_sending(tmp_path, emulator, write_config):
    emu = emulator()
    (tmp_path / "in.txt").write_text("+8613800138000\n+6591234500\n")
    r = invoke("send", "in.txt", "-t", "OTP_LOGIN", "--param", "1", "--config", write_config(emu, "tencent"),
                cwd=tmp_path)
    assert r.returncode == 1
    row = json.loads((tmp_path / "in.txt.failed.jsonl").read_text())
    assert row["phone"] == "+8613800138000" and "mainland China" in row["error_message"]
    assert [e["phone"] for e in emu.accepted] == ["+6591234500"]


@pytest.mark.parametrize("ptype", PROVIDERS)
def test_rejected_credentials_stop_the_run_exit_3(tmp_path, emulator, write_config, ptype):
    emu = emulator()
    key = {"uspeedo": "access_key_secret", "tencent": "secret_key", "aliyun": "access_key_secret"}[ptype]
    cfg = write_config(emu, ptype, **{key: "wrong-secret"})
    phones = make_rows(tmp_path / "in.csv", 450, invalid=2)
    r = invoke("send", "in.csv", "--config", cfg, "--concurrency", "1", cwd=tmp_path)
    assert r.returncode == 3, r.stderr
    assert emu.accepted == []
    rows = list(csv.DictReader(open(tmp_path / "in.failed.csv", encoding="utf-8")))
    assert len(rows) == 452  # every row not accepted is in the failures file
    not_sent = [x for x in rows if x["error_code"] == "NotSent"]
    assert {x["phone"] for x in not_sent} == set(phones) and {x["retryable"] for x in not_sent} == {"yes"}
    assert "wrong-secret" not in r.stderr + (tmp_path / "in.failed.csv").read_text()


@pytest.mark.parametrize("ptype", PROVIDERS)
def test_retries_recover_from_throttling_and_a_5xx_is_unknown(tmp_path, emulator, write_config, ptype):
    # auth-and-limits.md (corrected): throttling took nothing (retried); an HTTP 5xx after the
    # request was sent does not say, so its rows are unknown (exit 4) and never resent blindly
    emu = emulator(fail_rate=0.25, throttle_rate=0.25, seed=7)
    cfg = write_config(emu, ptype, max_attempts=12)
    phones = make_rows(tmp_path / "in.csv", 1200)
    r = invoke("send", "in.csv", "--config", cfg, cwd=tmp_path)
    got = [e["phone"] for e in emu.accepted]
    assert len(got) == len(set(got))  # none twice
    unknown = {row["phone"] for row in csv.DictReader(open(tmp_path / "in.failed.csv", encoding="utf-8"))}
    assert unknown and r.returncode == 4, r.stderr
    assert set(got) | unknown == set(phones) and not set(got) & unknown  # the emulator's 503 took nothing


def test_tencent_rate_limit_measured_at_the_emulator(tmp_path, emulator, write_config):
    emu = emulator()
    cfg = write_config(emu, "tencent", rate_limit=10)
    make_rows(tmp_path / "in.csv", 200 * 16)  # 16 requests: over a second and a half of them
    r = invoke("send", "in.csv", "--config", cfg, "--concurrency", "8", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    times = sorted(emu.stats()["request_times"])
    assert len(times) == 16
    worst = max(sum(1 for t in times if start <= t < start + 1.0) for start in times)
    assert worst <= 10 + 1  # +1: a request exactly on the window's edge
