"""The guards through the CLI against the emulator: suppression list (and providers' opt-outs
joining it), quiet hours in the recipient's time zones, spend cap, countries, validity."""
from __future__ import annotations

import csv
import json

import pytest

from conftest import accepted_counts, invoke

NOW = "2026-11-23T01:00:00Z"  # Singapore 09:00, London 01:00, New York 20:00, Sydney 12:00, Cocos 07:30


def write_rows(path, rows, template="OTP_LOGIN"):
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["phone", "template_id", "param1"])
        w.writerows([p, template, "1"] for p in rows)


def failed(path) -> dict[str, dict]:
    return {r["phone"]: r for r in csv.DictReader(open(path, encoding="utf-8"))} if path.exists() else {}


def send(*args, cwd, now=NOW):
    r = invoke("send", *args, "--json", cwd=cwd, env={"SMS_CLI_NOW": now})
    return r.returncode, r.json(), r


# --- suppression ------------------------------------------------------------------------------
@pytest.mark.parametrize("ptype", ["uspeedo", "tencent", "aliyun"])
def test_suppressed_never_sent_and_opt_outs_join_the_list(tmp_path, emulator, write_config, ptype):
    emu = emulator(blacklist={"+6591234502"})
    cfg = write_config(emu, ptype)
    listing = tmp_path / "opted-out.txt"
    listing.write_text("# people who asked us to stop\n(65) 9123 4501\n")
    write_rows(tmp_path / "a.csv", ["+6591234500", "+6591234501", "+6591234502", "+6591234503"])
    code, s, _ = send("a.csv", "--config", cfg, "--suppress", listing, cwd=tmp_path)
    if ptype == "aliyun":
        # SendBatchSms does not refuse an opted-out number (its receipt fails): no code of its
        # answer may touch the list (auth-and-limits.md, corrected)
        assert code == 1 and s["suppressed"] == 1 and s["accepted"] == 3 and s["failed"] == 0
        assert "+6591234502" not in listing.read_text()
        return
    assert code == 1 and s["suppressed"] == 1 and s["accepted"] == 2 and s["failed"] == 1
    rows = failed(tmp_path / "a.failed.csv")
    assert (rows["+6591234501"]["error_code"], rows["+6591234501"]["retryable"]) == ("Suppressed", "no")
    text = listing.read_text()
    assert "+6591234502" in text and "#" in text.splitlines()[-1]  # with the date and the code
    assert "(65) 9123 4501" in text  # the person's own lines are kept as written
    # a second campaign: the provider's opt-out is now ours, it never reaches the provider
    write_rows(tmp_path / "b.csv", ["+6591234502", "+6591234504"])
    code, s, _ = send("b.csv", "--config", cfg, "--suppress", listing, cwd=tmp_path)
    assert s["suppressed"] == 1 and s["accepted"] == 1
    counts = accepted_counts(emu)
    assert "+6591234501" not in counts and "+6591234502" not in counts and max(counts.values()) == 1


def test_suppress_command_and_validate(tmp_path):
    listing = tmp_path / "s.txt"
    assert invoke("suppress", "add", "+6591234500", "0085255311100", "--list", listing, cwd=tmp_path).returncode == 0
    r = invoke("suppress", "check", "(65)91234500", "+6591234599", "--list", listing, cwd=tmp_path)
    assert r.returncode == 1 and "+6591234500: suppressed" in r.stdout and "+6591234599: not listed" in r.stdout
    assert invoke("suppress", "list", "--list", listing, cwd=tmp_path).stdout.split() == ["+6591234500",
                                                                                        "+85255311100"]
    write_rows(tmp_path / "in.csv", ["+6591234500", "+6591234501", "+61412345610"])
    v = invoke("validate", "in.csv", "--suppress", listing, "--block-countries", "AU", cwd=tmp_path)
    assert v.returncode == 1 and "Suppressed" in v.stdout and "CountryNotAllowed" in v.stdout
    assert invoke("suppress", "remove", "+6591234500", "--list", listing, cwd=tmp_path).returncode == 0
    assert invoke("suppress", "list", "--list", listing, cwd=tmp_path).stdout.split() == ["+85255311100"]
    bad = invoke("suppress", "add", "not a number", "--list", listing, cwd=tmp_path)
    assert bad.returncode == 2 and "not a phone number" in bad.stderr


# --- quiet hours ------------------------------------------------------------------------------
def test_quiet_hours_defer_by_the_recipients_time_zones_and_a_later_run_sends(tmp_path, emulator, write_config):
    emu = emulator()
    cfg = write_config(emu, quiet_hours="21:00-08:00")
    phones = {"+6591234500": "send",  # Singapore, 09:00
              "+85255311100": "send",  # Hong Kong, 09:00
              "+447911123456": "defer",  # London, 01:00
              "+12125551234": "send",  # New York, 20:00
              "+61293744000": "send",  # a Sydney landline: one zone, 12:00
              "+61412345610": "defer"}  # an Australian mobile: eight zones, Cocos (Keeling) at 07:30
    write_rows(tmp_path / "in.csv", list(phones))
    code, s, _ = send("in.csv", "--config", cfg, cwd=tmp_path)
    assert code == 5 and s["quiet_hours"] == 2 and s["accepted"] == 4  # only deferred rows remain
    rows = failed(tmp_path / "in.failed.csv")
    assert set(rows) == {p for p, what in phones.items() if what == "defer"}
    assert {(r["error_code"], r["retryable"]) for r in rows.values()} == {("Deferred", "yes")}
    assert "earliest 2026-11-23T08:00" in rows["+447911123456"]["error_message"]
    assert set(accepted_counts(emu)) == {p for p, what in phones.items() if what == "send"}

    code, s, _ = send("in.csv", "--config", cfg, cwd=tmp_path, now="2026-11-23T09:00:00Z")  # London 09:00
    assert code == 0 and s["accepted"] == 2 and s["accepted_earlier"] == 4
    assert set(accepted_counts(emu)) == set(phones) and max(accepted_counts(emu).values()) == 1


def test_plan_shows_what_quiet_hours_would_defer(tmp_path):
    write_rows(tmp_path / "in.csv", ["+447911123456", "+6591234500"])
    r = invoke("plan", "in.csv", "--quiet-hours", "21:00-08:00", "--json", cwd=tmp_path, env={"SMS_CLI_NOW": NOW})
    plan = r.json()
    assert plan["guards"]["quiet_hours"] == 1 and plan["to_send"] == 1


# --- spend cap --------------------------------------------------------------------------------
def test_spend_cap_refuses_over_and_lets_under_go(tmp_path, emulator, write_config):
    emu = emulator()
    cfg = write_config(emu, prices={"SG": "0.05", "default": "0.1"})
    text = cfg.read_text().replace("OTP_LOGIN: {params: [\"code\"]}",
                                   "OTP_LOGIN: {params: [\"code\"], text: \"Your code is {1}. " + "x" * 150 + "\"}")
    cfg.write_text(text)  # 170 characters: two parts a message
    write_rows(tmp_path / "in.csv", ["+6591234500", "+6591234501", "+85255311100"])
    plan = invoke("plan", "in.csv", "--config", cfg, "--json", cwd=tmp_path).json()
    assert plan["parts"] == 6 and plan["countries"]["SG"] == {"rows": 2, "parts": 4, "cost": 0.2}
    assert plan["cost"] == pytest.approx(0.4) and not plan["lower_bound"]
    r = invoke("send", "in.csv", "--config", cfg, "--max-cost", "0.3", cwd=tmp_path)
    assert r.returncode == 2 and "0.4000" in r.stderr and "0.3" in r.stderr and not accepted_counts(emu)
    r = invoke("send", "in.csv", "--config", cfg, "--max-parts", "5", cwd=tmp_path)
    assert r.returncode == 2 and "6 parts" in r.stderr and not accepted_counts(emu)
    code, s, _ = send("in.csv", "--config", cfg, "--max-cost", "0.5", "--max-parts", "6", cwd=tmp_path)
    assert code == 0 and s["accepted"] == 3


def test_unknown_text_is_a_lower_bound(tmp_path):
    write_rows(tmp_path / "in.csv", ["+6591234500"], template="NO_TEXT")
    plan = invoke("plan", "in.csv", cwd=tmp_path)
    assert "at least 1 billable parts" in plan.stdout


# --- countries and validity -------------------------------------------------------------------
def test_blocked_countries_never_reach_the_provider(tmp_path, emulator, write_config):
    emu = emulator()
    cfg = write_config(emu, countries={"block": ["AU", "US"]})
    write_rows(tmp_path / "in.csv", ["+6591234500", "+61412345610", "+12125551234"])
    code, s, _ = send("in.csv", "--config", cfg, cwd=tmp_path)
    assert code == 1 and s["country_not_allowed"] == 2 and set(accepted_counts(emu)) == {"+6591234500"}
    rows = failed(tmp_path / "in.failed.csv")
    assert {r["error_code"] for r in rows.values()} == {"CountryNotAllowed"}
    assert {r["retryable"] for r in rows.values()} == {"no"}
    code, s, _ = send("in.csv", "--config", cfg, "--allow-countries", "SG", cwd=tmp_path)
    assert set(accepted_counts(emu)) == {"+6591234500"}


def test_valid_for_expires_rows_on_a_resume_after_the_deadline(tmp_path, emulator, write_config):
    emu = emulator()
    cfg = write_config(emu)
    phones = [f"+659123{i:04d}" for i in range(10)]
    write_rows(tmp_path / "in.csv", phones)
    code, s, _ = send("in.csv", "--config", cfg, "--limit", "4", "--valid-for", "2h", cwd=tmp_path,
                      now="2026-11-23T10:00:00Z")
    assert s["accepted"] == 4 and s["deferred"] == 6
    code, s, _ = send("in.csv", "--config", cfg, "--valid-for", "2h", cwd=tmp_path, now="2026-11-23T11:30:00Z")
    assert s["accepted"] == 6 - 0 and code == 0  # within two hours of the first run: sent
    # other numbers: the same content under another name is the same working set (issue 20)
    write_rows(tmp_path / "late.csv", [f"+659124{i:04d}" for i in range(10)])
    send("late.csv", "--config", cfg, "--limit", "2", "--valid-for", "30m", cwd=tmp_path, now="2026-11-23T10:00:00Z")
    code, s, _ = send("late.csv", "--config", cfg, "--valid-for", "30m", cwd=tmp_path, now="2026-11-23T10:31:00Z")
    assert code == 1 and s["expired"] == 8 and s["accepted"] == 0
    rows = failed(tmp_path / "late.failed.csv")
    assert {(r["error_code"], r["retryable"]) for r in rows.values()} == {("Expired", "no")}


def test_bad_guard_settings_are_config_errors(tmp_path):
    write_rows(tmp_path / "in.csv", ["+6591234500"])
    for flag, value in (("--quiet-hours", "25:00-08:00"), ("--valid-for", "soon"), ("--allow-countries", "XX")):
        r = invoke("plan", "in.csv", flag, value, cwd=tmp_path)
        assert r.returncode == 2 and flag in r.stderr and len(r.stderr.strip().splitlines()) == 1
    (tmp_path / "sms-cli.yaml").write_text("quiet_hours: 21-8\n")
    r = invoke("config", "check", cwd=tmp_path)
    assert r.returncode == 2 and "quiet_hours" in r.stderr
    bad = invoke("plan", "in.csv", cwd=tmp_path, env={"SMS_CLI_NOW": "yesterday"})
    assert bad.returncode == 2 or "SMS_CLI_NOW" in bad.stderr
    assert json.dumps  # noqa: the module is used above for --json parsing through invoke


# --- the suppression list is a file of promises (issue 20, path 6) ----------------------------
def _edit_forever(path: str, phone: str, done=None, changed=None) -> None:
    """A child process: remove and add one number again and again, until it is killed; after
    each rewrite it counts it in `done` and tells `changed` (the test kills it on that event)."""
    from sms_cli.guards.rules import Suppression

    while True:
        for edit in (Suppression(path).remove, Suppression(path).add):
            edit(phone)
            if done is not None:
                with changed:
                    done.value += 1
                    changed.notify_all()


def _add_one(path: str, phone: str) -> None:
    from sms_cli.guards.rules import Suppression

    Suppression(path).add(phone, "added concurrently")


def test_suppression_list_survives_50_concurrent_and_killed_edits(tmp_path):
    import multiprocessing
    import random

    from sms_cli.guards.rules import Suppression

    ctx = multiprocessing.get_context("fork")  # quick: the children only touch files
    listing = tmp_path / "optout.txt"
    kept = [f"+6591{i:06d}" for i in range(30)]
    listing.write_text("# opted out\n" + "".join(f"{p}  # kept\n" for p in kept), encoding="utf-8")
    # 50 concurrent edits: 40 adds of new numbers and 10 killed remove/add loops on kept ones
    added = [f"+6592{i:06d}" for i in range(40)]
    adders = [ctx.Process(target=_add_one, args=(str(listing), p)) for p in added]
    changed = ctx.Condition()
    done = [ctx.Value("i", 0, lock=False) for _ in range(10)]
    editors = [ctx.Process(target=_edit_forever, args=(str(listing), kept[i], done[i], changed)) for i in range(10)]
    rng = random.Random(20)
    for proc in adders + editors:
        proc.start()
    for proc, count in zip(editors, done):  # killed at any moment of a rewrite: after 0 to 6
        target = rng.randint(0, 6)  # finished ones, somewhere in the next (an event, not a timer)
        with changed:  # killed while the test holds the lock, so never while the child holds it
            assert changed.wait_for(lambda: count.value >= target or not proc.is_alive(), 30)
            proc.kill()
    for proc in adders + editors:
        proc.join(30)
    text = listing.read_text(encoding="utf-8")
    numbers = Suppression(listing).numbers
    assert set(kept[10:]) | set(added) <= numbers  # never lost: no entry other than the edited ones
    assert numbers <= set(kept) | set(added)
    assert text.startswith("# opted out\n") and text.endswith("\n")
    Suppression(listing).add("+6593000000")  # the next edit clears the killed edits' temporary files
    assert not list(tmp_path.glob(".optout.txt.*.tmp"))


@pytest.mark.parametrize("content", [b"+6591234500\n\xff\xfe broken\n", None])
def test_an_unreadable_suppression_list_refuses_to_send(tmp_path, emulator, write_config, content):
    emu = emulator()
    cfg = write_config(emu)
    write_rows(tmp_path / "in.csv", ["+6591234500", "+6591234501"])
    listing = tmp_path / "optout.txt"
    if content is None:
        listing.mkdir()  # not a file at all
    else:
        listing.write_bytes(content)
    r = invoke("send", "in.csv", "--config", cfg, "--suppress", listing, cwd=tmp_path)
    assert r.returncode == 2 and "suppression list" in r.stderr
    assert not accepted_counts(emu)
