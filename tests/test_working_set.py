"""Issue 20, "The working set, round two": every operator path keeps the promise. Each test
drives the CLI against the in-thread emulator and counts at the emulator: nothing accepted twice,
and every row not accepted in exactly one failures file of the working set."""
from __future__ import annotations

import csv
import fcntl
import os
import shlex
import shutil
import signal
import sqlite3
from collections import Counter
from pathlib import Path

import pytest

from conftest import Background, accepted_counts, invoke, make_rows, run_main, start_cli, wait_for
from sms_cli.campaign import SendRequest
from sms_cli.cli import commands


def send(*args, cwd, **kw):
    r = invoke("send", *args, "--json", cwd=cwd, **kw)
    return r.returncode, r.json()


def read_csv(path) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def no_duplicates(emu) -> Counter:
    counts = accepted_counts(emu)
    assert not [p for p, n in counts.items() if n > 1], "a message was accepted twice"
    return counts


def write_phones(path: Path, phones: list[str]) -> None:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["phone", "template_id", "param1"])
        w.writerows([p, "OTP_LOGIN", "123456"] for p in phones)


# --- 1. a rehearsal through the outbox never counts for a real provider ---------------------------
def test_an_outbox_rehearsal_does_not_poison_the_real_ledger(tmp_path, emulator, write_config):
    tmp_path = tmp_path / "work"  # no sms-cli.yaml here: a send without --config is the outbox
    tmp_path.mkdir()
    phones = make_rows(tmp_path / "in.csv", 20)
    r = invoke("send", "in.csv", cwd=tmp_path)  # no config: the built-in outbox
    assert r.returncode == 0 and "rehearsal" in r.stderr
    emu = emulator()
    cfg = write_config(emu)
    st = invoke("status", "in.csv", "--config", cfg, cwd=tmp_path)
    assert "only rehearsed through the outbox" in st.stdout + st.stderr
    code, s = send("in.csv", "--config", cfg, cwd=tmp_path)
    assert code == 0 and s["accepted"] == 20 and s["accepted_earlier"] == 0 and not s["rehearsal"]
    assert set(no_duplicates(emu)) == set(phones)
    code, s = send("in.csv", "--config", cfg, cwd=tmp_path)  # the real ledger holds them now
    assert code == 0 and s["accepted"] == 0 and s["accepted_earlier"] == 20
    # and a rehearsal again keeps to its own record
    code, s = send("in.csv", cwd=tmp_path)
    assert code == 0 and s["rehearsal"] and s["accepted_earlier"] == 20 and s["accepted"] == 0
    no_duplicates(emu)


def test_a_rehearsals_failures_file_resent_for_real_sends_each_row_once(tmp_path, emulator, write_config):
    tmp_path = tmp_path / "work"
    tmp_path.mkdir()
    make_rows(tmp_path / "in.csv", 5, invalid=2)
    assert invoke("send", "in.csv", cwd=tmp_path).returncode == 1  # the outbox: 5 taken, 2 invalid
    rows = read_csv(tmp_path / "in.failed.csv")
    with open(tmp_path / "in.failed.csv", "w", encoding="utf-8", newline="") as fh:  # phones fixed
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        for i, row in enumerate(rows):
            w.writerow({**row, "phone": f"+6598765{i:03d}"})
    emu = emulator()
    cfg = write_config(emu)
    code, s = send("in.failed.csv", "--config", cfg, cwd=tmp_path)
    assert code == 0 and s["accepted"] == 2
    code, s = send("in.csv", "--config", cfg, cwd=tmp_path)
    # the fixed rows are the input's rows 6 and 7, accepted from the failures file
    assert code == 0 and s["accepted"] == 5 and s["accepted_earlier"] == 2
    assert len(no_duplicates(emu)) == 7


# --- 2. a derived file writes only its own failures file --------------------------------------
def test_resending_the_undelivered_file_keeps_the_other_failures_file(tmp_path, emulator, write_config):
    phones = make_rows(tmp_path / "in.csv", 10)
    emu = emulator(blacklist={phones[0]}, undeliverable={phones[1]: "UNDELIV", phones[2]: "UNDELIV"},
                   receipt_delay_ms=10)
    cfg = write_config(emu, "tencent", receipt_rate_limit=0)
    code, s = send("in.csv", "--config", cfg, cwd=tmp_path)
    assert code == 1 and s["accepted"] == 9
    r = invoke("receipts", "in.csv", "--config", cfg, "--wait", "10s", "--poll-interval", "0.01", cwd=tmp_path)
    assert r.returncode == 1
    assert {x["phone"] for x in read_csv(tmp_path / "in.undelivered.csv")} == {phones[1], phones[2]}
    emu.set_blacklist({phones[0], phones[1]})
    code, s = send("in.undelivered.csv", "--config", cfg, cwd=tmp_path)
    assert code == 1 and s["accepted"] == 1 and s["failures_file"] == "in.undelivered.failed.csv"
    # each row not accepted in exactly one failures file, the first one untouched; the
    # undelivered file is used up by its send (its refused row is in its failures file now)
    assert s["consumed"] == "in.undelivered.csv" and not (tmp_path / "in.undelivered.csv").exists()
    assert [x["phone"] for x in read_csv(tmp_path / "in.failed.csv")] == [phones[0]]
    assert [x["phone"] for x in read_csv(tmp_path / "in.undelivered.failed.csv")] == [phones[1]]
    code, s = send("in.undelivered.failed.csv", "--config", cfg, cwd=tmp_path)
    assert code == 1 and s["rejected"] == 1 and s["failures_file"] == "in.undelivered.failed.csv"
    assert s["consumed"] is None and (tmp_path / "in.undelivered.failed.csv").exists()  # it rewrites itself
    assert [x["phone"] for x in read_csv(tmp_path / "in.failed.csv")] == [phones[0]]
    # a plain re-run of the input leaves the refused resend's row where it is
    code, s = send("in.csv", "--config", cfg, cwd=tmp_path)
    assert code == 1 and s["rejected"] == 1 and s["other_failures_files"] == {"in.undelivered.failed.csv": 1}
    assert [x["phone"] for x in read_csv(tmp_path / "in.failed.csv")] == [phones[0]]
    # an undelivered row is sent again once, by design; nothing else twice
    assert accepted_counts(emu) == Counter({**{p: 1 for p in phones[1:]}, phones[2]: 2})


# --- 3. --continue-edited: every linked version is one working set ---------------------------
def test_continue_edited_links_every_version(tmp_path, emulator, write_config):
    emu = emulator()
    cfg = write_config(emu)
    phones = make_rows(tmp_path / "other.csv", 102)  # numbers only
    inp = tmp_path / "in.csv"
    write_phones(inp, phones[:100])  # v1
    code, s = send("in.csv", "--config", cfg, "--limit", "30", cwd=tmp_path)
    assert s["accepted"] == 30
    write_phones(inp, phones[:101])  # v2: one row appended
    code, s = send("in.csv", "--config", cfg, "--limit", "30", "--continue-edited", cwd=tmp_path)
    assert s["accepted"] == 30 and s["continued_edited"]
    write_phones(inp, phones[:102])  # v3: another appended
    code, s = send("in.csv", "--config", cfg, "--continue-edited", cwd=tmp_path)
    assert code == 0 and s["accepted"] == 42 and s["accepted_earlier"] == 60
    write_phones(inp, phones[:100])  # back to v1: every version's acceptances count
    code, s = send("in.csv", "--config", cfg, "--continue-edited", cwd=tmp_path)
    assert code == 0 and s["accepted"] == 0
    code, s = send("in.csv", "--config", cfg, cwd=tmp_path)  # linked once, linked for good
    assert code == 0 and s["accepted"] == 0
    assert set(no_duplicates(emu)) == set(phones)


def test_continue_edited_after_a_finished_run_applies_and_a_flag_that_cannot_is_an_error(
        tmp_path, emulator, write_config):
    emu = emulator()
    cfg = write_config(emu)
    phones = make_rows(tmp_path / "other.csv", 11)
    write_phones(tmp_path / "in.csv", phones[:10])
    assert send("in.csv", "--config", cfg, cwd=tmp_path)[1]["accepted"] == 10
    write_phones(tmp_path / "in.csv", phones)
    code, s = send("in.csv", "--config", cfg, "--continue-edited", cwd=tmp_path)
    assert code == 0 and s["accepted"] == 1 and s["accepted_earlier"] == 10
    write_phones(tmp_path / "new.csv", phones[:3])
    r = invoke("send", "new.csv", "--config", cfg, "--continue-edited", cwd=tmp_path)
    assert r.returncode == 2 and "no other version" in r.stderr
    r = invoke("send", "in.csv", "--config", cfg, "--continue-edited", "--fresh", "--yes", cwd=tmp_path)
    assert r.returncode == 2
    r = invoke("send", "in.failed.csv", "--config", cfg, "--continue-edited", cwd=tmp_path)
    assert r.returncode == 2
    assert set(no_duplicates(emu)) == set(phones)


# --- 4. the same content under another name, path or folder is the same working set --------------
def test_renamed_symlinked_and_copied_lists_send_nothing_twice(tmp_path, emulator, write_config):
    emu = emulator()
    cfg = write_config(emu)
    phones = make_rows(tmp_path / "list.csv", 50)
    assert send("list.csv", "--config", cfg, cwd=tmp_path)[1]["accepted"] == 50
    (tmp_path / "list.csv").rename(tmp_path / "renamed.csv")
    code, s = send("renamed.csv", "--config", cfg, cwd=tmp_path)
    assert code == 0 and s["accepted"] == 0 and s["accepted_earlier"] == 50
    assert any("sent before from" in n for n in s["notes"])
    (tmp_path / "link.csv").symlink_to(tmp_path / "renamed.csv")
    code, s = send("link.csv", "--config", cfg, cwd=tmp_path)
    assert code == 0 and s["accepted"] == 0
    second = tmp_path / "second"
    second.mkdir()
    shutil.copy(tmp_path / "renamed.csv", second / "list.csv")
    code, s = send("list.csv", "--config", cfg, cwd=second)
    assert code == 0 and s["accepted"] == 0
    st = invoke("status", "list.csv", "--config", cfg, "--json", cwd=second)
    assert st.returncode == 0 and st.json()["journal_states"]["accepted"] == 50
    # an explicit --journal that would start a second ledger says where the first one is
    r = invoke("send", "list.csv", "--config", cfg, "--journal", "new.sqlite", cwd=second)
    assert r.returncode == 2 and "list.journal.sqlite" in r.stderr
    assert set(no_duplicates(emu)) == set(phones)


# --- 5. printed advice is the command that continues the working set --------------------------
def test_the_printed_resend_command_continues_the_same_working_set(tmp_path, emulator, write_config):
    phones = make_rows(tmp_path / "in.csv", 6)
    emu = emulator(blacklist={phones[2]})
    write_config(emu)  # sms-cli.yaml: a default provider "emu" ...
    cfg = write_config(emu, name="live")  # ... and the one this run names
    emu.options.throttle_rate = 1.0
    r = invoke("send", "in.csv", "--config", cfg, "--provider", "live", cwd=tmp_path)
    assert r.returncode == 1
    line = next(x for x in r.stderr.splitlines() if "(resend: sms-cli send " in x)
    command = line.split("(resend: sms-cli ", 1)[1].rstrip(")")
    args = shlex.split(command)
    assert args[:2] == ["send", "in.failed.csv"] and "--config" in args and args[args.index("--provider") + 1] == "live"
    emu.options.throttle_rate = 0.0
    r = invoke(*args, cwd=tmp_path)
    assert r.returncode == 1  # the blacklisted number stays refused
    assert set(no_duplicates(emu)) == set(phones) - {phones[2]}


def test_the_lock_refusal_never_suggests_another_journal(tmp_path, emulator, write_config):
    emu = emulator()
    cfg = write_config(emu)
    make_rows(tmp_path / "in.csv", 3)
    assert send("in.csv", "--config", cfg, "--limit", "1", cwd=tmp_path)[0] == 5
    fd = os.open(tmp_path / "in.journal.sqlite", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        r = invoke("send", "in.csv", "--config", cfg, cwd=tmp_path)
    finally:
        os.close(fd)
    assert r.returncode == 2 and "another sms-cli send" in r.stderr and "--journal" not in r.stderr
    assert len(no_duplicates(emu)) == 1


# --- 7. deleting the journal's side files after a kill loses nothing -------------------------
def test_deleting_journal_side_files_after_a_kill_sends_nothing_twice(disk_path, emulator, write_config):
    emu = emulator(latency_ms=20)
    cfg = write_config(emu, "tencent")
    phones = make_rows(disk_path / "in.csv", 3000)
    args = ["send", "in.csv", "--config", cfg, "--json", "--concurrency", "2"]
    for _ in range(2):
        seen = emu.stats()["requests"]
        proc = start_cli(*args, cwd=disk_path)
        try:
            wait_for(emu, lambda: emu.stats()["requests"] >= seen + 3 or proc.poll() is not None, procs=[proc],
                     what="three requests to reach the emulator")
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=30)
        side = [p for p in disk_path.iterdir() if p.name.startswith("in.journal.sqlite-")]
        for p in side:  # an operator cleaning up "temp files"
            p.unlink()
        assert not (disk_path / "in.journal.sqlite-wal").exists()
    code, s = send("in.csv", "--config", cfg, cwd=disk_path)
    assert code in (0, 4)
    counts = no_duplicates(emu)
    db = sqlite3.connect(disk_path / "in.journal.sqlite")
    try:
        recorded = dict(db.execute("SELECT phone, state FROM rows").fetchall())
    finally:
        db.close()
    assert all(recorded.get(p) in ("accepted", "unknown") for p in counts)  # every acceptance on record
    unknown = {r["phone"] for r in read_csv(disk_path / "in.failed.csv")} if s["unknown"] else set()
    assert set(counts) | unknown == set(phones) and len(unknown) == s["unknown"]  # nothing lost either


# --- files that hold phone numbers ------------------------------------------------------------
def test_files_holding_numbers_are_private_and_a_journal_symlink_out_is_refused(tmp_path, emulator, write_config):
    emu = emulator()
    cfg = write_config(emu)
    make_rows(tmp_path / "in.csv", 3, invalid=1)
    listing = tmp_path / "optout.txt"
    assert invoke("suppress", "add", "+6591234567", "--list", listing, cwd=tmp_path).returncode == 0
    code, s = send("in.csv", "--config", cfg, cwd=tmp_path)
    assert code == 1
    rehearsal = tmp_path / "rehearsal"
    rehearsal.mkdir()
    shutil.copy(tmp_path / "in.csv", rehearsal / "in.csv")
    assert invoke("send", "in.csv", cwd=rehearsal).returncode == 1  # no config: the outbox
    for p in (tmp_path / "in.failed.csv", tmp_path / "in.journal.sqlite", listing,
              Path(emu.options.log_path), rehearsal / "sms-outbox.jsonl"):
        assert p.stat().st_mode & 0o777 == 0o600, p
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "j.sqlite").symlink_to(elsewhere / "j.sqlite")
    r = invoke("send", "in.csv", "--config", cfg, "--journal", "j.sqlite", cwd=tmp_path)
    assert r.returncode == 2 and "outside its folder" in r.stderr
    assert not (elsewhere / "j.sqlite").exists()


def test_config_naming_a_fifo_is_refused_at_once(tmp_path):
    make_rows(tmp_path / "in.csv", 1)
    os.mkfifo(tmp_path / "fifo.yaml")
    # on a thread: were the FIFO opened, the read with no writer would block; a writer then ends it
    run = Background(lambda: run_main("send", "in.csv", "--config", "fifo.yaml", cwd=tmp_path))
    try:
        r = run.wait(timeout=30)
    finally:
        if run.poll() is None:
            os.close(os.open(tmp_path / "fifo.yaml", os.O_WRONLY | os.O_NONBLOCK))
    assert r.returncode == 2 and "not a regular file" in r.stderr


@pytest.mark.parametrize("name", ["list", "list.txt"])
def test_an_extensionless_list_keeps_its_own_journal_and_failures_file(tmp_path, emulator, write_config, name):
    emu = emulator()
    cfg = write_config(emu)
    make_rows(tmp_path / "list.csv", 3, invalid=1)
    shutil.copy(tmp_path / "list.csv", tmp_path / name)
    with open(tmp_path / name, "a", encoding="utf-8") as fh:
        fh.write("+6591239999,OTP_LOGIN,1\n")
    assert send("list.csv", "--config", cfg, cwd=tmp_path)[0] == 1
    code, s = send(name, "--config", cfg, cwd=tmp_path)
    assert code == 1 and s["accepted"] == 4 and s["journal"] != "list.journal.sqlite"
    assert s["failures_file"] != "list.failed.csv"
    assert len(read_csv(tmp_path / "list.failed.csv")) == 1
    code, s = send(s["failures_file"], "--config", cfg, cwd=tmp_path)
    assert code == 1 and s["invalid"] == 1 and s["accepted"] == 0


def test_a_journal_from_before_rehearsals_were_kept_apart_is_separated(tmp_path, emulator, write_config):
    work = tmp_path / "work"
    work.mkdir()
    phones = make_rows(work / "in.csv", 4)
    assert invoke("send", "in.csv", "--limit", "2", cwd=work).returncode == 5  # the outbox
    db = sqlite3.connect(work / "in.journal.sqlite")  # as an earlier version wrote it: one kind of set
    try:
        db.execute("ALTER TABLE sets DROP COLUMN rehearsal")
        db.commit()
    finally:
        db.close()
    emu = emulator()
    code, s = send("in.csv", "--config", write_config(emu), cwd=work)
    assert code == 0 and s["accepted"] == 4 and s["accepted_earlier"] == 0
    assert set(no_duplicates(emu)) == set(phones)


def test_random_resends_never_lose_a_row_from_the_failures_file(tmp_path, emulator, write_config):
    """Issue 20, path 2, as a randomised trial: any order of sending the input and its failures
    file, with and without --limit, with transient failures: after every step each row is
    accepted once or in the failures file, never both lost and never sent twice."""
    import random

    rng = random.Random(2020)
    phones = make_rows(tmp_path / "in.csv", 40)
    emu = emulator(blacklist=set(phones[:3]))
    cfg = write_config(emu, max_attempts=1)
    failed = tmp_path / "in.failed.csv"
    for _ in range(14):
        emu.options.throttle_rate = rng.choice([0.0, 0.3, 1.0])
        target = "in.failed.csv" if failed.exists() and rng.random() < 0.6 else "in.csv"
        extra = ["--limit", str(rng.randint(1, 15))] if rng.random() < 0.5 else []
        r = invoke("send", target, "--config", cfg, *extra, cwd=tmp_path)
        assert r.returncode in (0, 1, 5), r.stderr
        counts = no_duplicates(emu)
        waiting = {row["phone"] for row in read_csv(failed)} if failed.exists() else set()
        assert all(p in counts or p in waiting for p in phones), "a row neither accepted nor in the failures file"
        assert not (waiting & set(counts)), "an accepted row is still in the failures file"


def test_status_and_plan_while_a_send_runs_never_stop_it(tmp_path, emulator, write_config):
    """Rollback-journal mode lets a reader hold back a commit while its query runs: readers keep
    their queries short, so a send watched by `status` and `plan` goes through."""
    emu = emulator(latency_ms=5)
    cfg = write_config(emu, "tencent")
    phones = make_rows(tmp_path / "in.csv", 6000)
    # the send on a thread of this process (the journal's locks and SQLite's are per connection,
    # as between processes); status and plan through the CLI beside it
    run = Background(lambda: commands.send(SendRequest(input=str(tmp_path / "in.csv"), config=str(cfg))))
    looked = 0
    try:
        while run.poll() is None:
            if (tmp_path / "in.journal.sqlite").exists():
                st = invoke("status", "in.csv", "--config", cfg, "--json", cwd=tmp_path)
                assert st.returncode in (0, 1, 2), st.stderr
                looked += 1
                assert invoke("plan", "in.csv", "--config", cfg, cwd=tmp_path).returncode in (0, 1)
    finally:
        summary = run.wait(timeout=60)
    assert summary.exit_code() == 0, summary
    assert looked and len(no_duplicates(emu)) == len(phones)
