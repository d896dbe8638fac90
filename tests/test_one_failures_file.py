"""Issue 20, path 2: a row not accepted is always in exactly one failures file of its working set.

Through the CLI (in-process) against the in-thread emulator, counting in the files and at the
emulator after every step: each row of the input is accepted (the journal says so, the
emulator took it, and no failures file lists it), or it is in exactly one failures file of the
set (every `*.failed.*` and `*.undelivered*` file of every folder it was sent from), never both,
never none; and no message is accepted twice (an undelivered one is sent again once per
receipt that found it undelivered, by design).
"""
from __future__ import annotations

import csv
import json
import random
import shutil
import sqlite3
from collections import Counter
from pathlib import Path

from conftest import accepted_counts, invoke, make_rows

FAST = ("--wait", "10s", "--poll-interval", "0.01")  # receipts: no real poll interval


def send(*args, cwd):
    r = invoke("send", *args, "--json", cwd=cwd)
    assert r.returncode in (0, 1, 5), r.stderr
    return r.returncode, r.json()


def receipts(*args, cwd):
    r = invoke("receipts", *args, *FAST, cwd=cwd)
    assert r.returncode in (0, 1), r.stderr


def failures_files(*folders: Path) -> list[Path]:
    return sorted(p for f in folders for p in f.iterdir()
                  if not p.name.startswith(".") and (".failed." in p.name or ".undelivered." in p.name))


def phones_in(path: Path) -> list[str]:
    with open(path, encoding="utf-8", newline="") as fh:
        return [row["phone"] for row in csv.DictReader(fh)]


def journal_states(journal: Path) -> dict[str, str]:
    db = sqlite3.connect(journal)
    try:
        return dict(db.execute("SELECT phone, state FROM rows"))
    finally:
        db.close()


def journal_of(folder: Path) -> Path:
    """The one journal of the working set (named after whatever the input was called first)."""
    return next(folder.glob("*.journal.sqlite"), folder / "none.journal.sqlite")


def sent_and_receipted(tmp_path, emulator, write_config, name: str, bad: dict):
    """`name` sent through Tencent's emulator, whose receipts find `bad` undelivered, then
    receipts run: -> (emulator, config, journal)."""
    emu = emulator(undeliverable=bad, receipt_delay_ms=0)
    cfg = write_config(emu, "tencent", receipt_rate_limit=0)
    send(name, "--config", cfg, cwd=tmp_path)
    receipts(name, "--config", cfg, cwd=tmp_path)
    return emu, cfg, tmp_path / "list.journal.sqlite"


def check(phones, emu, journal: Path, *folders: Path, undeliverable: set | None = None, receipts_run: int = 0,
          settled: bool = True) -> Counter:
    """The invariant after a step. `settled=False`: a failures file was deleted and no send of the
    input has read its rows since, so a row may be in none for now (never in two). `undeliverable`:
    numbers a receipt found undelivered (grows with what the journal says), each of which may be
    accepted once more per `receipts` run."""
    undeliverable = set() if undeliverable is None else undeliverable
    held = Counter()
    where: dict[str, list[str]] = {}
    for f in failures_files(*folders):
        for p in phones_in(f):
            held[p] += 1
            where.setdefault(p, []).append(f.name)
    counts = accepted_counts(emu)
    states = journal_states(journal) if journal.exists() else {}
    undeliverable.update(p for p, state in states.items() if state == "undelivered")
    for p in phones:
        assert held[p] <= 1, f"{p} is in two failures files: {where[p]}"
        limit = 1 + receipts_run if p in undeliverable else 1
        assert counts[p] <= limit, f"{p} accepted {counts[p]} times"
        if states.get(p) == "accepted":
            assert counts[p] >= 1 and held[p] == 0, f"{p} accepted and still in {where.get(p)}"
        elif settled:
            assert held[p] == 1, f"{p} not accepted ({states.get(p)}) and in no failures file"
    return held


# --- (a) a plain re-run of the input after receipts ----------------------------------------------
def test_a_rerun_after_receipts_leaves_the_undelivered_rows_in_the_undelivered_file(
        tmp_path, emulator, write_config):
    phones = make_rows(tmp_path / "list.csv", 8)
    bad = {phones[1]: "UNDELIV", phones[2]: "REJECTD"}
    emu = emulator(blacklist={phones[0]}, undeliverable=bad, receipt_delay_ms=0)
    cfg = write_config(emu, "tencent", receipt_rate_limit=0)
    journal = tmp_path / "list.journal.sqlite"
    send("list.csv", "--config", cfg, cwd=tmp_path)
    receipts("list.csv", "--config", cfg, cwd=tmp_path)
    assert sorted(phones_in(tmp_path / "list.undelivered.csv")) == sorted(bad)
    check(phones, emu, journal, tmp_path, undeliverable=set(bad), receipts_run=1)
    code, s = send("list.csv", "--config", cfg, cwd=tmp_path)
    assert code == 1 and s["requests"] == 0 and s["rejected"] == 1
    assert s["in_other_failures_file"] == 2 and s["other_failures_files"] == {"list.undelivered.csv": 2}
    assert phones_in(tmp_path / "list.failed.csv") == [phones[0]]
    check(phones, emu, journal, tmp_path, undeliverable=set(bad), receipts_run=1)
    # plan and status say where those rows are, and receipts run again writes each once
    r = invoke("plan", "list.csv", "--config", cfg, cwd=tmp_path)
    assert "2 rows not accepted are in list.undelivered.csv" in r.stdout + r.stderr
    st = invoke("status", "list.csv", "--config", cfg, "--json", cwd=tmp_path).json()
    assert st["rerun"]["other_failures_files"] == {"list.undelivered.csv": 2}
    receipts("list.csv", "--config", cfg, cwd=tmp_path)
    check(phones, emu, journal, tmp_path, undeliverable=set(bad), receipts_run=2)


# --- (b) resending the undelivered file, then the input --------------------------------------------
def test_the_undelivered_file_is_used_up_by_its_send_and_a_rerun_leaves_its_refusals_alone(
        tmp_path, emulator, write_config):
    phones = make_rows(tmp_path / "list.csv", 8)
    bad = {phones[1]: "UNDELIV", phones[2]: "UNDELIV", phones[3]: "UNDELIV"}
    emu = emulator(undeliverable=bad, receipt_delay_ms=0)
    cfg = write_config(emu, "tencent", receipt_rate_limit=0)
    journal = tmp_path / "list.journal.sqlite"
    send("list.csv", "--config", cfg, cwd=tmp_path)
    receipts("list.csv", "--config", cfg, cwd=tmp_path)
    emu.set_blacklist({phones[1], phones[2]})  # refused when resent
    code, s = send("list.undelivered.csv", "--config", cfg, "--limit", "0", "--dry-run", cwd=tmp_path)
    assert (tmp_path / "list.undelivered.csv").exists()  # a dry run removes nothing
    code, s = send("list.undelivered.csv", "--config", cfg, cwd=tmp_path)
    assert code == 1 and s["accepted"] == 1 and s["rejected"] == 2 and s["consumed"] == "list.undelivered.csv"
    assert not (tmp_path / "list.undelivered.csv").exists()
    assert sorted(phones_in(tmp_path / "list.undelivered.failed.csv")) == sorted([phones[1], phones[2]])
    check(phones, emu, journal, tmp_path, undeliverable=set(bad), receipts_run=1)
    code, s = send("list.csv", "--config", cfg, cwd=tmp_path)
    assert code == 1 and s["requests"] == 0 and s["other_failures_files"] == {"list.undelivered.failed.csv": 2}
    assert not (tmp_path / "list.failed.csv").exists()
    check(phones, emu, journal, tmp_path, undeliverable=set(bad), receipts_run=1)
    # receipts again: the row accepted on resend is undelivered again, written once; the two
    # refused ones stay in the failures file of the resend
    receipts("list.csv", "--config", cfg, cwd=tmp_path)
    assert phones_in(tmp_path / "list.undelivered.csv") == [phones[3]]
    check(phones, emu, journal, tmp_path, undeliverable=set(bad), receipts_run=2)
    # a deleted failures file holds nothing: the input's re-run files its rows again
    (tmp_path / "list.undelivered.failed.csv").unlink()
    code, s = send("list.csv", "--config", cfg, cwd=tmp_path)
    assert sorted(phones_in(tmp_path / "list.failed.csv")) == sorted([phones[1], phones[2]])
    check(phones, emu, journal, tmp_path, undeliverable=set(bad), receipts_run=2)


def test_a_stopped_resend_of_the_undelivered_file_points_at_its_failures_file(tmp_path, emulator, write_config):
    """--limit (or a stop) leaves rows of the undelivered file unsent: they are in its failures
    file, the file is used up, and the summary says to resend the failures file, not to run the
    same command again (whose input is gone)."""
    phones = make_rows(tmp_path / "list.csv", 6)
    bad = {p: "UNDELIV" for p in phones[:4]}
    emu = emulator(undeliverable=bad, receipt_delay_ms=0)
    cfg = write_config(emu, "tencent", receipt_rate_limit=0)
    send("list.csv", "--config", cfg, cwd=tmp_path)
    receipts("list.csv", "--config", cfg, cwd=tmp_path)
    r = invoke("send", "list.undelivered.csv", "--config", cfg, "--limit", "1", cwd=tmp_path)
    assert r.returncode == 5 and not (tmp_path / "list.undelivered.csv").exists()
    assert "resend: sms-cli send list.undelivered.failed.csv" in r.stderr
    assert "resend the failures file to continue" in r.stderr
    assert len(phones_in(tmp_path / "list.undelivered.failed.csv")) == 3
    check(phones, emu, tmp_path / "list.journal.sqlite", tmp_path, undeliverable=set(bad), receipts_run=1)
    code, s = send("list.undelivered.failed.csv", "--config", cfg, cwd=tmp_path)
    assert code == 0 and s["accepted"] == 3 and not (tmp_path / "list.undelivered.failed.csv").exists()
    check(phones, emu, tmp_path / "list.journal.sqlite", tmp_path, undeliverable=set(bad), receipts_run=1)


def test_a_second_undelivered_resend_keeps_the_first_ones_refusals(tmp_path, emulator, write_config):
    """`list.undelivered.failed.jsonl` holds a row refused in the first resend; receipts then
    writes a new `list.undelivered.jsonl` without it (that file holds it), and the resend of the
    new one writes the same failures file: the row it held stays in it. JSON Lines this time."""
    phones = make_rows(tmp_path / "rows.csv", 5)
    with open(tmp_path / "list.jsonl", "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps({"phone": p, "template_id": "OTP_LOGIN", "param1": "1.50"}) + "\n" for p in phones)
    bad = {phones[0]: "UNDELIV", phones[1]: "UNDELIV"}
    emu, cfg, journal = sent_and_receipted(tmp_path, emulator, write_config, "list.jsonl", bad)
    emu.set_blacklist({phones[0]})
    send("list.undelivered.jsonl", "--config", cfg, cwd=tmp_path)
    failed = tmp_path / "list.undelivered.failed.jsonl"
    assert [json.loads(x)["phone"] for x in failed.read_text().splitlines()] == [phones[0]]
    receipts("list.jsonl", "--config", cfg, cwd=tmp_path)
    assert [json.loads(x)["phone"] for x in (tmp_path / "list.undelivered.jsonl").read_text().splitlines()] == [
        phones[1]]
    emu.set_blacklist({phones[0], phones[1]})
    code, s = send("list.undelivered.jsonl", "--config", cfg, cwd=tmp_path)
    assert code == 1 and s["rejected"] == 1 and any("keeps the 1 rows" in n for n in s["notes"])
    rows = [json.loads(x) for x in failed.read_text().splitlines()]
    assert sorted(r["phone"] for r in rows) == sorted(phones[:2]) and {r["param1"] for r in rows} == {"1.50"}
    code, s = send("list.jsonl", "--config", cfg, cwd=tmp_path)
    assert s["other_failures_files"] == {"list.undelivered.failed.jsonl": 2}
    held = Counter(json.loads(x)["phone"] for f in failures_files(tmp_path) for x in f.read_text().splitlines())
    assert held == Counter(phones[:2]) and max(accepted_counts(emu).values()) <= 3


# --- (c) the input renamed, symlinked, copied ---------------------------------------------------------
def test_a_renamed_symlinked_or_copied_input_leaves_the_rows_in_the_first_failures_file(
        tmp_path, emulator, write_config):
    phones = make_rows(tmp_path / "list.csv", 10, invalid=1) + ["120"]
    emu = emulator(blacklist={phones[0], phones[1]})
    cfg = write_config(emu, max_attempts=1)
    journal = tmp_path / "list.journal.sqlite"
    emu.options.throttle_rate = 1.0  # nothing taken: every valid row fails, retryable
    send("list.csv", "--config", cfg, "--limit", "4", cwd=tmp_path)
    emu.options.throttle_rate = 0.0
    assert len(phones_in(tmp_path / "list.failed.csv")) == 11
    (tmp_path / "list.csv").rename(tmp_path / "new.csv")
    code, s = send("new.csv", "--config", cfg, cwd=tmp_path)
    assert code == 1 and s["accepted"] == 0 and s["requests"] == 0
    assert s["other_failures_files"] == {"list.failed.csv": 11} and not (tmp_path / "new.failed.csv").exists()
    check(phones, emu, journal, tmp_path)
    (tmp_path / "link.csv").symlink_to(tmp_path / "new.csv")
    code, s = send("link.csv", "--config", cfg, cwd=tmp_path)
    assert s["other_failures_files"] == {"list.failed.csv": 11} and not (tmp_path / "link.failed.csv").exists()
    second = tmp_path / "second"
    second.mkdir()
    shutil.copy(tmp_path / "new.csv", second / "list.csv")
    code, s = send("list.csv", "--config", cfg, cwd=second)
    assert s["in_other_failures_file"] == 11 and not (second / "list.failed.csv").exists()
    check(phones, emu, journal, tmp_path, second)
    # the file that holds them sends them; the renamed input then finds nothing left elsewhere
    code, s = send("list.failed.csv", "--config", cfg, cwd=tmp_path)
    assert code == 1 and s["accepted"] == 8 and s["rejected"] == 2 and s["invalid"] == 1
    check(phones, emu, journal, tmp_path, second)
    code, s = send("new.csv", "--config", cfg, cwd=tmp_path)
    assert s["accepted"] == 0 and s["accepted_earlier"] == 8 and s["in_other_failures_file"] == 3
    check(phones, emu, journal, tmp_path, second)


def test_a_name_only_receipts_used_is_found_and_another_lists_file_is_not(tmp_path, emulator, write_config):
    """The input renamed, `receipts` run under that name only (no send recorded it), renamed
    again: its undelivered file is still one of the set's. Another list's failures file in the
    same folder is not."""
    phones = make_rows(tmp_path / "list.csv", 6)
    others = make_rows(tmp_path / "other.csv", 3, start=100)
    bad = {phones[0]: "UNDELIV"}
    emu = emulator(blacklist={others[0]}, undeliverable=bad, receipt_delay_ms=0)
    cfg = write_config(emu, "tencent", receipt_rate_limit=0)
    send("other.csv", "--config", cfg, cwd=tmp_path)
    assert phones_in(tmp_path / "other.failed.csv") == [others[0]]
    send("list.csv", "--config", cfg, cwd=tmp_path)
    (tmp_path / "list.csv").rename(tmp_path / "v.csv")
    receipts("v.csv", "--config", cfg, cwd=tmp_path)
    assert phones_in(tmp_path / "v.undelivered.csv") == [phones[0]]
    (tmp_path / "v.csv").rename(tmp_path / "w.csv")
    code, s = send("w.csv", "--config", cfg, cwd=tmp_path)
    assert code == 1 and s["other_failures_files"] == {"v.undelivered.csv": 1}
    assert not (tmp_path / "w.failed.csv").exists()
    check(phones, emu, tmp_path / "list.journal.sqlite", tmp_path, undeliverable=set(bad), receipts_run=1)


# --- a randomised operator ------------------------------------------------------------------------------
def test_random_operator_actions_keep_every_row_in_exactly_one_failures_file(tmp_path, emulator, write_config):
    """Seeded random actions: send the input, its failures file, receipts, send the undelivered
    file and its failures file, rename the input, delete a failures file; with the emulator
    refusing, throttling and not delivering some rows. After every action the invariant holds."""
    rng = random.Random(20)
    phones = make_rows(tmp_path / "list.csv", 24, invalid=1)
    bad = {p: rng.choice(["UNDELIV", "REJECTD"]) for p in phones[4:10]}
    emu = emulator(blacklist=set(phones[:2]), undeliverable=bad, receipt_delay_ms=0)
    bad = set(bad)  # and every number a receipt finds undelivered (a number blacklisted once taken)
    cfg = write_config(emu, "tencent", receipt_rate_limit=0, max_attempts=1)
    phones.append("120")  # the invalid row: never sent, always in one failures file
    name, receipts_run, settled = "list", 0, False  # no row is anywhere before the first send
    actions = ["send", "send", "failed", "receipts", "undelivered", "undelivered.failed", "rename", "delete"]
    for step in range(24):
        action = rng.choice(actions)
        emu.options.throttle_rate = rng.choice([0.0, 0.0, 0.4])
        limit = ["--limit", str(rng.randint(1, 8))] if rng.random() < 0.3 else []
        if rng.random() < 0.2:  # a refused number sometimes becomes sendable, and one more is refused
            emu.set_blacklist({rng.choice(phones[:12]) for _ in range(2)})
        files = failures_files(tmp_path)
        if action == "send":
            send(f"{name}.csv", "--config", cfg, *limit, cwd=tmp_path)
            settled = True
        elif action == "receipts" and journal_of(tmp_path).exists():
            receipts(f"{name}.csv", "--config", cfg, cwd=tmp_path)
            receipts_run += 1
        elif action == "rename":
            new = f"v{step}"
            (tmp_path / f"{name}.csv").rename(tmp_path / f"{new}.csv")
            name = new
        elif action == "delete" and files:
            rng.choice(files).unlink()
            settled = False
        elif action in ("failed", "undelivered", "undelivered.failed"):
            these = [f for f in files if f.name.endswith(f".{action}.csv")
                     and not (action == "failed" and f.name.endswith(".undelivered.failed.csv"))]
            if these:
                send(rng.choice(these).name, "--config", cfg, *limit, cwd=tmp_path)
        check(phones, emu, journal_of(tmp_path), tmp_path, undeliverable=bad, receipts_run=receipts_run,
              settled=settled)
    # in the end one plain run of the input settles everything: every row accepted or in one file
    send(f"{name}.csv", "--config", cfg, cwd=tmp_path)
    check(phones, emu, journal_of(tmp_path), tmp_path, undeliverable=bad, receipts_run=receipts_run)


# --- an unknown row held by another file keeps the exit code of an unknown ---------------------
def test_a_rerun_leaves_unknown_rows_in_the_resends_file_and_exits_4(tmp_path, emulator, write_config):
    phones = make_rows(tmp_path / "list.csv", 6)
    bad = {phones[1]: "UNDELIV", phones[2]: "UNDELIV"}
    emu, cfg, journal = sent_and_receipted(tmp_path, emulator, write_config, "list.csv", bad)
    emu.options.server_error_rate = 1.0  # the resend's answer does not say whether it was taken
    r = invoke("send", "list.undelivered.csv", "--config", cfg, "--json", cwd=tmp_path)
    assert r.returncode == 4 and r.json()["unknown"] == 2
    assert sorted(phones_in(tmp_path / "list.undelivered.failed.csv")) == sorted(bad)
    emu.options.server_error_rate = 0.0
    r = invoke("send", "list.csv", "--config", cfg, "--json", cwd=tmp_path)
    s = r.json()
    # the rows stay in .undelivered.failed alone, and the run says "unknown" (exit 4), not "refused"
    assert r.returncode == 4 and s["requests"] == 0 and s["unknown_in_other_failures_file"] == 2
    assert s["other_failures_files"] == {"list.undelivered.failed.csv": 2}
    assert not (tmp_path / "list.failed.csv").exists()
    check(phones, emu, journal, tmp_path, undeliverable=set(bad), receipts_run=1)
