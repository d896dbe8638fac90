"""One vocabulary for how rows and runs end, in-process: the journal stores each `RowState` and
`RunEnd` as its own name (and migrates journals an earlier version wrote), only the ledger
decides a row's state, and one function turns a run end and its rows into the exit code."""
from __future__ import annotations

import json
import sqlite3
from types import SimpleNamespace

import pytest
from conftest import write_config_file

from sms_cli.campaign import SendRequest
from sms_cli.cli import commands, report

from sms_cli.core.errors import ExitCode
from sms_cli.core.outcomes import STATE_OF, Fate, RowState, RunEnd, Weight, exit_code, public_counts
from sms_cli.input.rows import RawRow, open_source
from sms_cli.run.stream import Identity, Send, StreamOptions, row_stream
from sms_cli.store.journal import SCHEMA_VERSION, Journal
from sms_cli.store.ledger import Ledger
from sms_cli.validate.validator import Defaults, Validator

# The schema sms-cli wrote before row states were stored by their own names (meta schema "2"):
# `failed` was a row the provider refused, `retry` one a re-run sends, and every stop of a run
# was `stopped`. Spelled out here so the test never depends on today's DDL.
OLD_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE sets (
    id INTEGER PRIMARY KEY, digest TEXT NOT NULL, generation INTEGER NOT NULL, name TEXT NOT NULL,
    created REAL NOT NULL, linked INTEGER, rehearsal INTEGER NOT NULL DEFAULT 0, UNIQUE (digest, generation));
CREATE TABLE runs (
    id INTEGER PRIMARY KEY, set_id INTEGER NOT NULL, input TEXT NOT NULL, provider TEXT NOT NULL,
    options TEXT NOT NULL, started REAL NOT NULL, updated REAL, status TEXT NOT NULL DEFAULT 'running');
CREATE TABLE rows (
    set_id INTEGER NOT NULL, seq INTEGER NOT NULL, line INTEGER NOT NULL, phone TEXT NOT NULL,
    msg INTEGER NOT NULL, state TEXT NOT NULL, code TEXT, message TEXT, ref TEXT,
    attempts INTEGER NOT NULL DEFAULT 0, sent REAL, run INTEGER, template TEXT, corr TEXT,
    PRIMARY KEY (set_id, seq)) WITHOUT ROWID;
CREATE TABLE requests (
    run INTEGER NOT NULL, sent REAL NOT NULL, rows INTEGER NOT NULL, attempt INTEGER NOT NULL,
    result TEXT, ref TEXT);
CREATE TABLE receipts (
    set_id INTEGER NOT NULL, seq INTEGER NOT NULL, sent REAL, status TEXT NOT NULL, code TEXT, message TEXT,
    received REAL, parts INTEGER, ref TEXT, checked REAL, queries INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (set_id, seq)) WITHOUT ROWID;
CREATE TABLE receipt_inbox (
    provider TEXT NOT NULL, ref TEXT NOT NULL, phone TEXT NOT NULL, report TEXT NOT NULL, added REAL NOT NULL,
    PRIMARY KEY (provider, ref, phone));
INSERT INTO meta VALUES ('schema', '2');
"""
DIGEST = "ab" * 32
OLD_ROWS = [(0, "accepted", None, None), (1, "failed", "Blacklist", "on the blacklist"),
            (2, "retry", "LimitExceeded", "throttled"), (3, "unknown", "Unknown", "read timeout"),
            (4, "inflight", None, None)]


def phone(i: int) -> str:
    return f"+659123{i:04d}"


def old_journal(path, digest: str = DIGEST):
    """A journal as the earlier version left it: one set, a stopped run and a killed one."""
    db = sqlite3.connect(path)
    db.executescript(OLD_SCHEMA)
    db.execute("INSERT INTO sets VALUES (1, ?, 1, 'in', 1.0, NULL, 0)", (digest,))
    db.executemany("INSERT INTO runs VALUES (?, 1, 'in.csv', 'tc', ?, 1.0, 2.0, ?)",
                   [(1, json.dumps({"type": "tencent"}), "stopped"), (2, json.dumps({"type": "tencent"}), "running")])
    db.executemany("INSERT INTO rows(set_id, seq, line, phone, msg, state, code, message, run, template) "
                   "VALUES (1, ?, ?, ?, ?, ?, ?, ?, 2, 'T')",
                   [(seq, seq + 2, phone(seq), seq, state, code, msg) for seq, state, code, msg in OLD_ROWS])
    db.commit()
    db.close()
    return path


def raw_states(path) -> dict[int, str]:
    db = sqlite3.connect(path)
    try:
        return dict(db.execute("SELECT seq, state FROM rows ORDER BY seq"))
    finally:
        db.close()


def schema_of(path) -> str:
    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()[0]
    finally:
        db.close()


# --- the migration ----------------------------------------------------------------------------
def test_a_read_only_open_reads_an_old_journal_in_the_new_names_and_changes_nothing(tmp_path):
    path = old_journal(tmp_path / "in.journal.sqlite")
    before = path.read_bytes()
    journal = Journal(path, readonly=True)
    try:
        ws = journal.find_set(DIGEST)
        states = {r.seq: r.state for r in journal.states(ws.id)}
        assert states == {0: RowState.ACCEPTED, 1: RowState.REJECTED, 2: RowState.RETRYABLE, 3: RowState.UNKNOWN,
                          4: RowState.INFLIGHT}
        assert all(type(s) is RowState for s in states.values())
        assert journal.state(ws.id, 1).state is RowState.REJECTED
        assert journal.counts(ws.id) == {s: 1 for s in states.values()}
        # what `status --json` shows keeps the names it always had
        assert public_counts(journal.counts(ws.id)) == {"accepted": 1, "failed": 1, "retry": 1, "unknown": 1,
                                                        "inflight": 1}
        assert [r.status for r in journal.runs(ws.id)] == [RunEnd.STOPPED, RunEnd.RUNNING]
    finally:
        journal.close()
    assert path.read_bytes() == before and schema_of(path) == "2"


def test_status_of_an_old_journal_speaks_the_public_names_and_writes_nothing(tmp_path):
    """`status --json` of a journal the earlier version wrote, in-process: the states and run
    statuses by the names the output always had, the journal untouched."""
    path = tmp_path / "in.csv"
    path.write_text("phone,template_id,param1\n" + "".join(f"{phone(i)},OTP_LOGIN,{i}\n" for i in range(5)))
    journal = old_journal(tmp_path / "in.journal.sqlite", open_source(str(path)).digest)
    before = journal.read_bytes()
    cfg = write_config_file(tmp_path, SimpleNamespace(url="http://127.0.0.1:9"))  # status never connects
    d = report.status_dict(commands.status(SendRequest(input=str(path), config=str(cfg))))
    assert d["found"] and d["journal_states"] == {"accepted": 1, "failed": 1, "retry": 1, "unknown": 1,
                                                  "inflight": 1, "undelivered": 0}
    assert [r["status"] for r in d["runs"]] == ["stopped", "killed"]
    skips = d["rerun"]["ledger_skips"]
    assert skips == {"accepted_earlier": 1, "unknown": 2, "rejected": 1} and d["rerun"]["to_send"] == 1
    assert d["exit_code"] == 1 and journal.read_bytes() == before


def test_a_send_opening_an_old_journal_migrates_its_states_once(tmp_path):
    path = old_journal(tmp_path / "in.journal.sqlite")
    journal = Journal(path)
    journal.close()
    assert schema_of(path) == SCHEMA_VERSION == "3"
    assert raw_states(path) == {0: "accepted", 1: "rejected", 2: "retryable", 3: "unknown", 4: "inflight"}
    db = sqlite3.connect(path)  # a later `failed` is not this version's to rename again
    db.execute("UPDATE rows SET state='failed' WHERE seq=0")
    db.commit()
    db.close()
    Journal(path).close()
    assert raw_states(path)[0] == "failed"


def test_a_journal_of_a_later_schema_is_not_rewritten(tmp_path):
    path = old_journal(tmp_path / "in.journal.sqlite")
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value='4' WHERE key='schema'")
    db.commit()
    db.close()
    Journal(path).close()
    assert schema_of(path) == "4" and raw_states(path)[1] == "failed"


def test_after_the_migration_a_re_run_resends_only_what_the_old_journal_said_to(tmp_path):
    """The old `failed` row stays refused, the old `retry` row is sent, the one cut off in flight
    is unknown (the stream reads it so; the ledger records it so once the run's requests are
    over, `cut_off`), the accepted one is not sent."""
    path = old_journal(tmp_path / "in.journal.sqlite")
    journal = Journal(path)
    try:
        ws = journal.find_set(DIGEST)
        ledger = Ledger(journal)
        ledger.start_run(ws, "in.csv", "tc", {})
        assert raw_states(path)[4] == "inflight"  # the first request does not wait for a full read
        rows = [RawRow(i, i + 2, {"phone": phone(i), "template_id": "T", "params": ["1"]}) for i in range(6)]
        out = list(row_stream(rows, Validator({}, None, Defaults()), StreamOptions(),
                              Identity(ws.id, ws.ref_prefix, journal)))
        ledger.cut_off()
        assert raw_states(path)[4] == "unknown"
    finally:
        journal.close()
    what = [("send" if isinstance(x, Send) else x.fate) for x in out]
    assert what == [Fate.ACCEPTED_EARLIER, Fate.REJECTED, "send", Fate.UNKNOWN, Fate.UNKNOWN, "send"]
    assert out[1].code == "Blacklist"


def test_rows_cut_off_by_an_earlier_process_become_unknown_and_this_runs_own_stay_in_flight(tmp_path):
    """`cut_off` (at a run's end) marks what an earlier, killed run left in flight, in every set,
    and never a row this run itself has in flight (its answer may still come)."""
    from sms_cli.core.model import Message
    path = tmp_path / "j.sqlite"

    def rows(ws, seqs):
        return [Message(seq=i, line=i + 2, phone=phone(i), country_code=65, national=phone(i)[3:], template_id="T",
                        params=[], key=f"k{i}", set_id=ws.id) for i in seqs]

    killed = Journal(path)
    ws, other = killed.create_set(DIGEST, "in"), killed.create_set("cd" * 32, "other")
    Ledger(killed).start_run(ws, "in.csv", "tc", {})
    killed.mark_inflight(rows(ws, range(3)), 1)
    killed.mark_inflight(rows(other, range(2)), 1)
    killed.close()  # as good as killed: nothing more was written
    journal = Journal(path)
    try:
        ledger = Ledger(journal)
        ledger.start_run(ws, "in.csv", "tc", {})
        assert Ledger.earlier(journal.counts(ws.id)) == {RowState.UNKNOWN: 3}
        journal.mark_inflight(rows(ws, range(3, 5)), 1)
        ledger.cut_off()
        got = {(r.seq, r.state, r.code) for r in journal.states(ws.id)}
        assert got == {(0, RowState.UNKNOWN, "Unknown"), (1, RowState.UNKNOWN, "Unknown"),
                       (2, RowState.UNKNOWN, "Unknown"), (3, RowState.INFLIGHT, ""), (4, RowState.INFLIGHT, "")}
        assert {r.state for r in journal.states(other.id)} == {RowState.UNKNOWN}
    finally:
        journal.close()


# --- run ends ---------------------------------------------------------------------------------
@pytest.mark.parametrize("end", [RunEnd.FINISHED, RunEnd.PARTIAL, RunEnd.FATAL, RunEnd.SIGINT, RunEnd.SIGTERM])
def test_a_run_end_is_stored_as_itself_and_shown_by_its_public_name(tmp_path, end):
    path = tmp_path / "j.sqlite"
    journal = Journal(path)
    try:
        ws = journal.create_set(DIGEST, "in")
        Ledger(journal).start_run(ws, "in.csv", "tc", {})
        journal.finish_run(end)
        assert journal.runs(ws.id)[-1].status is end and journal.set_status(ws.id) is end
    finally:
        journal.close()
    db = sqlite3.connect(path)
    assert db.execute("SELECT status FROM runs").fetchone()[0] == end.value
    db.close()
    assert end.public == ("stopped" if end in (RunEnd.FATAL, RunEnd.SIGINT, RunEnd.SIGTERM) else end.value)


def test_a_new_run_ends_the_one_an_earlier_process_left_running(tmp_path):
    journal = Journal(tmp_path / "j.sqlite")
    try:
        ws = journal.create_set(DIGEST, "in")
        ledger = Ledger(journal)
        ledger.start_run(ws, "in.csv", "tc", {})  # never finished: the process was killed
        ledger.start_run(ws, "in.csv", "tc", {})
        assert [r.status for r in journal.runs(ws.id)] == [RunEnd.STOPPED, RunEnd.RUNNING]
    finally:
        journal.close()


# --- the one exit code ------------------------------------------------------------------------
def test_one_function_maps_every_run_end_and_the_rows_to_the_exit_code():
    rows = {Fate.ACCEPTED: 2, Fate.UNKNOWN: 1}
    assert exit_code(rows, RunEnd.FATAL) == ExitCode.FATAL
    assert exit_code(rows, RunEnd.SIGINT) == ExitCode.SIGINT
    assert exit_code(rows, RunEnd.SIGTERM) == ExitCode.SIGTERM
    for end in (None, RunEnd.FINISHED, RunEnd.PARTIAL, RunEnd.STOPPED, RunEnd.KILLED):
        assert exit_code(rows, end) == ExitCode.UNKNOWN_ONLY
    assert exit_code({Fate.DEFERRED: 1, Fate.ACCEPTED: 1}, RunEnd.PARTIAL) == ExitCode.DEFERRED_ONLY
    assert exit_code({Fate.REJECTED: 1, Fate.DEFERRED: 1, Fate.UNKNOWN: 1}) == ExitCode.NOT_ALL_ACCEPTED
    assert exit_code({Fate.INVALID: 0, Fate.ACCEPTED_EARLIER: 3}) == ExitCode.OK
    # receipts weigh their findings directly: a failed delivery as not accepted, a missing one as unknown
    assert exit_code({Weight.NOT_ACCEPTED: 0, Weight.UNKNOWN: 2}) == ExitCode.UNKNOWN_ONLY
    assert exit_code({Weight.NOT_ACCEPTED: 1, Weight.UNKNOWN: 2}, "SIGINT") == ExitCode.SIGINT


# --- the ledger decides every state -------------------------------------------------------------
@pytest.mark.parametrize("state, undelivered, new", [
    (RowState.UNKNOWN, False, RowState.ACCEPTED), (RowState.INFLIGHT, False, RowState.ACCEPTED),
    (RowState.UNKNOWN, True, RowState.UNDELIVERED), (RowState.ACCEPTED, True, RowState.UNDELIVERED),
    (RowState.ACCEPTED, False, None), (RowState.UNDELIVERED, False, None)])
def test_what_a_receipt_makes_of_a_row_is_the_ledgers_to_say(state, undelivered, new):
    got = Ledger.receipt_state(state, undelivered, "UNDELIV" if undelivered else "", "")
    assert (got[0] if got else None) == new
    if new is RowState.UNDELIVERED:
        assert got[1:] == ("UNDELIV", "UNDELIV")


def test_every_stored_name_reads_back_as_one_state():
    assert {s.value for s in RowState} == {"accepted", "rejected", "retryable", "unknown", "inflight",
                                           "undelivered"}
    assert STATE_OF["failed"] is RowState.REJECTED and STATE_OF["retry"] is RowState.RETRYABLE
    assert [s.public for s in RowState] == ["accepted", "failed", "retry", "unknown", "inflight", "undelivered"]
