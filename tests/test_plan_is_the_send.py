"""Issue 25, "plan is the send": plan, send --dry-run and status compute what this command would
send with the same function the send uses (spend caps, --continue-edited, the guards), a run
refused before sending leaves no trace, and validate and plan exit by one rule."""
from __future__ import annotations

import csv
import sqlite3

from conftest import accepted_counts, invoke


def write_rows(path, phones):
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["phone", "template_id", "param1"])
        w.writerows([p, "OTP_LOGIN", "1"] for p in phones)


def priced(write_config, emu):
    return write_config(emu, prices={"SG": "0.05", "default": "0.1"})


PHONES = [f"+659123450{i}" for i in range(6)]


def test_spend_caps_refuse_alike_in_send_dry_run_and_plan(tmp_path, emulator, write_config):
    emu = emulator()
    cfg = priced(write_config, emu)
    write_rows(tmp_path / "in.csv", PHONES)  # 6 x 0.05 = 0.30
    for command in (["send"], ["send", "--dry-run"], ["plan"]):
        r = invoke(*command, "in.csv", "--config", cfg, "--max-cost", "0.2", cwd=tmp_path)
        assert r.returncode == 2 and "over --max-cost 0.2" in r.stderr, (command, r.stderr)
        r = invoke(*command, "in.csv", "--config", cfg, "--max-parts", "5", cwd=tmp_path)
        assert r.returncode == 2 and "over --max-parts 5" in r.stderr, (command, r.stderr)
    assert invoke("plan", "in.csv", "--config", cfg, "--max-cost", "0.3", cwd=tmp_path).returncode == 0
    assert not accepted_counts(emu)


def test_a_run_refused_by_the_spend_cap_leaves_no_trace(tmp_path, emulator, write_config):
    emu = emulator()
    cfg = priced(write_config, emu)
    write_rows(tmp_path / "in.csv", PHONES)
    env = {"SMS_CLI_NOW": "2026-11-23T10:00:00Z"}
    r = invoke("send", "in.csv", "--config", cfg, "--max-cost", "0.1", "--valid-for", "30m", cwd=tmp_path, env=env)
    assert r.returncode == 2
    journal = tmp_path / "in.journal.sqlite"
    if journal.exists():
        db = sqlite3.connect(journal)
        try:
            assert db.execute("SELECT count(*) FROM sets").fetchone()[0] == 0
            assert db.execute("SELECT count(*) FROM runs").fetchone()[0] == 0
        finally:
            db.close()
    # the --valid-for clock starts with the first run that sends: an hour later, all still go
    env = {"SMS_CLI_NOW": "2026-11-23T11:00:00Z"}
    r = invoke("send", "in.csv", "--config", cfg, "--valid-for", "30m", "--json", cwd=tmp_path, env=env)
    assert r.returncode == 0 and r.json()["accepted"] == 6 and r.json()["expired"] == 0


def test_a_declined_confirmation_leaves_no_trace(tmp_path, emulator, write_config, monkeypatch):
    from conftest import make_rows
    from sms_cli.cli import app as cli

    emu = emulator()
    cfg = write_config(emu)
    make_rows(tmp_path / "in.csv", cli.CONFIRM_ABOVE + 1)
    monkeypatch.chdir(tmp_path)
    req = cli._request("in.csv", str(cfg), None, None, None, [], None, None)
    asked = []
    go = cli.confirm_send(req, yes=False, dry_run=False, terminal=True,
                          confirm=lambda *a, **k: asked.append(a) or False)
    assert asked and go is False
    journal = tmp_path / "in.journal.sqlite"
    assert not journal.exists() or _no_sets(journal)
    assert not accepted_counts(emu)


def _no_sets(path) -> bool:
    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT count(*) FROM sets").fetchone()[0] == 0
    finally:
        db.close()


def test_plan_continue_edited_shows_what_the_send_sends(tmp_path, emulator, write_config):
    emu = emulator()
    cfg = write_config(emu)
    write_rows(tmp_path / "in.csv", PHONES[:4])
    assert invoke("send", "in.csv", "--config", cfg, "--limit", "2", cwd=tmp_path).returncode == 5
    write_rows(tmp_path / "in.csv", PHONES)  # edited: two rows appended
    plan = invoke("plan", "in.csv", "--config", cfg, "--continue-edited", "--json", cwd=tmp_path)
    dry = invoke("send", "in.csv", "--config", cfg, "--continue-edited", "--dry-run", "--json", cwd=tmp_path)
    assert plan.returncode == 0 and plan.json()["to_send"] == 4 and dry.json()["to_send"] == 4
    r = invoke("send", "in.csv", "--config", cfg, "--continue-edited", "--json", cwd=tmp_path)
    assert r.returncode == 0 and r.json()["accepted"] == 4
    assert set(accepted_counts(emu)) == set(PHONES) and max(accepted_counts(emu).values()) == 1


def test_status_forecast_applies_the_guards_the_send_was_given(tmp_path, emulator, write_config):
    emu = emulator(throttle_rate=1.0)  # throttled: nothing taken, retryable
    cfg = write_config(emu, max_attempts=1)
    write_rows(tmp_path / "in.csv", PHONES)
    listing = tmp_path / "optout.txt"
    listing.write_text(PHONES[0] + "\n", encoding="utf-8")
    r = invoke("send", "in.csv", "--config", cfg, "--suppress", listing, cwd=tmp_path)
    assert r.returncode == 1  # one suppressed, five failed for a transient reason
    st = invoke("status", "in.csv", "--config", cfg, "--json", cwd=tmp_path).json()
    assert st["rerun"]["to_send"] == 5  # without the list it would send 6
    emu.options.throttle_rate = 0.0
    r = invoke("send", "in.csv", "--config", cfg, "--suppress", listing, "--json", cwd=tmp_path)
    assert r.json()["accepted"] == 5 and PHONES[0] not in accepted_counts(emu)


def test_validate_and_plan_exit_by_one_rule(tmp_path):
    write_rows(tmp_path / "in.csv", PHONES[:3])
    listing = tmp_path / "optout.txt"
    listing.write_text(PHONES[1] + "\n", encoding="utf-8")
    v = invoke("validate", "in.csv", "--suppress", listing, cwd=tmp_path)
    p = invoke("plan", "in.csv", "--suppress", listing, cwd=tmp_path)
    d = invoke("send", "in.csv", "--suppress", listing, "--dry-run", cwd=tmp_path)
    assert v.returncode == p.returncode == d.returncode == 1
    v = invoke("validate", "in.csv", "--block-countries", "SG", cwd=tmp_path)
    p = invoke("plan", "in.csv", "--block-countries", "SG", cwd=tmp_path)
    assert v.returncode == p.returncode == 1
    assert invoke("validate", "in.csv", cwd=tmp_path).returncode == invoke("plan", "in.csv", cwd=tmp_path).returncode == 0
