"""The send journal: SQLite (WAL) state of every run, so a re-run resumes and never resends.

A run is identified by the input's content hash plus the options that change what is sent.
Rows are keyed by (run, seq). A row is written `inflight` (committed, fsynced) before its
request leaves and gets its result as soon as the answer is read; a row still `inflight` when
a later process opens the run was cut off mid-request, so it is `unknown`. Rows absent from
the journal were never sent. Writes are batch-level transactions.
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import JournalLocked, SmsCliError
from .model import Kind, Message, Outcome

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY, identity TEXT NOT NULL, input_hash TEXT NOT NULL,
    provider TEXT NOT NULL, options TEXT NOT NULL, started REAL NOT NULL, updated REAL,
    status TEXT NOT NULL DEFAULT 'running');
CREATE INDEX IF NOT EXISTS runs_identity ON runs(identity);
CREATE TABLE IF NOT EXISTS rows (
    run INTEGER NOT NULL, seq INTEGER NOT NULL, line INTEGER NOT NULL, phone TEXT NOT NULL,
    state TEXT NOT NULL, code TEXT, message TEXT, ref TEXT, attempts INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (run, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS requests (
    run INTEGER NOT NULL, sent REAL NOT NULL, rows INTEGER NOT NULL, attempt INTEGER NOT NULL,
    result TEXT, ref TEXT);
"""
# journal states
INFLIGHT, ACCEPTED, FAILED, RETRY, UNKNOWN = "inflight", "accepted", "failed", "retry", "unknown"
MIN_FREE_BYTES = 1 << 20  # refuse to start a run on a disk that cannot hold its journal
STATE_OF = {Kind.ACCEPTED: ACCEPTED, Kind.PERMANENT: FAILED, Kind.RETRYABLE: RETRY,
            Kind.FATAL: RETRY, Kind.UNKNOWN: UNKNOWN}



def _batch_upsert(json_cols: tuple[str, ...], fixed_cols: tuple[str, ...], update: tuple[str, ...]) -> str:
    """One statement that writes a whole batch from a JSON array of rows: executemany would hand
    Python's global lock back and forth on every row, starving the reader thread of a big run.
    Driven by the array, each row is found by its primary key. Parameters: run, the fixed
    columns' values, then the JSON text."""
    picks = ", ".join(f"json_extract(value, '$[{i}]')" for i in range(len(json_cols))) \
        if len(json_cols) > 1 else "value"  # one column: a flat array
    return (f"INSERT INTO rows(run, {', '.join(json_cols + fixed_cols)}) "
            f"SELECT ?, {picks}{', ?' * len(fixed_cols)} FROM json_each(?) WHERE true "
            f"ON CONFLICT(run, seq) DO UPDATE SET {', '.join(f'{c}=excluded.{c}' for c in update)}")


MARK_INFLIGHT = _batch_upsert(("seq", "line", "phone"), ("state", "attempts"), ("state", "attempts"))
# answers: one statement per distinct answer in the batch (usually one: all accepted under one
# submission id); line and phone are already there from MARK_INFLIGHT, 0 and '' only fill the
# INSERT half of the upsert that never happens
RECORD = _batch_upsert(("seq",), ("line", "phone", "state", "code", "message", "ref"),
                       ("state", "code", "message", "ref"))

def default_path(input_name: str) -> Path:
    if input_name == "-":
        return Path("sms-stdin.journal.sqlite")
    p = Path(input_name)
    return p.with_name(f"{p.stem}.journal.sqlite")


class Journal:
    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        folder = self.path.parent if str(self.path.parent) else Path(".")
        if not folder.is_dir():
            raise SmsCliError(f"{self.path}: cannot open the journal (folder {folder} does not exist)")
        try:
            free = shutil.disk_usage(folder).free
        except OSError:
            free = None
        if free is not None and free < MIN_FREE_BYTES:
            raise SmsCliError(f"{self.path}: disk full (less than 1 MiB free in {folder}); "
                              "nothing was sent")
        try:
            self._lockfd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise SmsCliError(f"{self.path}: cannot open the journal ({exc.strerror})") from None
        try:  # SQLite uses fcntl record locks; flock on the same file is independent of them
            fcntl.flock(self._lockfd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lockfd)
            raise JournalLocked(f"{self.path}: another sms-cli send is using this journal; "
                                "wait for it or choose --journal") from None
        try:
            self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")  # 'inflight' must survive a power cut
            self.db.executescript(SCHEMA)
        except sqlite3.Error as exc:
            self.close()
            raise SmsCliError(f"{self.path}: not a usable journal ({exc})") from None
        self.run_id = 0

    # --- runs ------------------------------------------------------------------------------
    def latest_run(self, identity: str) -> int | None:
        row = self.db.execute("SELECT id FROM runs WHERE identity=? ORDER BY id DESC LIMIT 1",
                              (identity,)).fetchone()
        return row[0] if row else None

    def start(self, identity: str, input_hash: str, provider: str, options: dict, *, fresh: bool
              ) -> tuple[int, dict[str, int] | None]:
        """Open the run for `identity` -> (run id, state counts when resuming else None)."""
        with self._lock, self._guard("journal write failed"):
            run = None if fresh else self.latest_run(identity)
            if run is not None:
                self._write("UPDATE rows SET state=?, code='Unknown', message=? WHERE run=? AND state=?",
                            [(UNKNOWN, "cut off while the request was in flight", run, INFLIGHT)])
                self._write("UPDATE runs SET status='running', updated=? WHERE id=?", [(time.time(), run)])
                self.run_id = run
                return run, self.counts()
            cur = self.db.execute("INSERT INTO runs(identity, input_hash, provider, options, started) "
                                  "VALUES (?,?,?,?,?)",
                                  (identity, input_hash, provider, json.dumps(options), time.time()))
            self.run_id = cur.lastrowid
            return self.run_id, None

    @contextmanager
    def _guard(self, what: str, hint: str = ""):
        """sqlite3 errors (disk full, I/O error) -> one SmsCliError naming the journal."""
        try:
            yield
        except sqlite3.Error as exc:
            try:
                if self.db.in_transaction:
                    self.db.execute("ROLLBACK")
            except sqlite3.Error:
                pass  # SQLite rolls back by itself after a failed COMMIT
            raise SmsCliError(f"{self.path}: {what} ({exc}){hint}") from None

    def accepted_count(self, identity: str) -> int:
        with self._guard("journal read failed"):
            run = self.latest_run(identity)
            if run is None:
                return 0
            return self.db.execute("SELECT count(*) FROM rows WHERE run=? AND state=?",
                                   (run, ACCEPTED)).fetchone()[0]

    def finish(self, status: str) -> None:
        with self._lock:
            self._write("UPDATE runs SET status=?, updated=? WHERE id=?", [(status, time.time(), self.run_id)])

    def counts(self) -> dict[str, int]:
        rows = self.db.execute("SELECT state, count(*) FROM rows WHERE run=? GROUP BY state", (self.run_id,))
        return dict(rows.fetchall())

    def states(self) -> Iterator[tuple[int, str, str, str]]:
        """(seq, state, code, message) in seq order, streamed for a merge with the input."""
        # a cursor of its own, read under the lock: workers write on the same connection
        with self._lock, self._guard("journal read failed"):
            cur = self.db.cursor()
            cur.execute("SELECT seq, state, code, message FROM rows WHERE run=? ORDER BY seq", (self.run_id,))
            chunk = cur.fetchmany(5000)
        while chunk:
            yield from chunk
            with self._lock, self._guard("journal read failed"):
                chunk = cur.fetchmany(5000)

    # --- rows ------------------------------------------------------------------------------
    def mark_inflight(self, batch: list[Message], attempt: int) -> None:
        rows = json.dumps([[m.seq, m.line, m.phone] for m in batch])
        with self._lock, self._guard("journal write failed"):
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute(MARK_INFLIGHT, (self.run_id, INFLIGHT, attempt, rows))
            self.db.execute("COMMIT")

    def mark_unknown(self, batch: list[Message], message: str) -> None:
        """Rows whose request was still in flight when the run had to stop: unknown (unless the
        answer was recorded meanwhile)."""
        with self._lock:
            self._write("UPDATE rows SET state=?, code='Unknown', message=? WHERE run=? AND seq=? AND state=?",
                        [(UNKNOWN, message, self.run_id, m.seq, INFLIGHT) for m in batch])

    def record(self, batch: list[Message], outcomes: list[Outcome], attempt: int) -> None:
        refs = {o.ref for o in outcomes if o.ref and o.kind is Kind.ACCEPTED}
        first = outcomes[0] if outcomes else None
        result = first.kind.value if first and all(o.kind is first.kind for o in outcomes) else "mixed"
        ref = ",".join(sorted(refs))[:500] if len(refs) <= 3 else f"{len(refs)} ids"
        with self._lock, self._guard("journal write failed",
                                     "; rows whose answer it could not record are unknown next run"):
            self.db.execute("BEGIN IMMEDIATE")
            try:
                groups: dict[tuple, list[int]] = {}
                for m, o in zip(batch, outcomes):
                    key = (STATE_OF[o.kind], o.code or None, o.message or None, o.ref or None)
                    groups.setdefault(key, []).append(m.seq)
                for key, seqs in groups.items():
                    self.db.execute(RECORD, (self.run_id, 0, "", *key, json.dumps(seqs)))
                self.db.execute("INSERT INTO requests(run, sent, rows, attempt, result, ref) VALUES (?,?,?,?,?,?)",
                                (self.run_id, time.time(), len(batch), attempt, result, ref or None))
                self.db.execute("COMMIT")
            except BaseException:
                if self.db.in_transaction:
                    self.db.execute("ROLLBACK")
                raise

    def _write(self, sql: str, params: list[tuple]) -> None:
        with self._guard("journal write failed"):
            self.db.execute("BEGIN IMMEDIATE")
            self.db.executemany(sql, params)
            self.db.execute("COMMIT")

    def close(self) -> None:
        db = getattr(self, "db", None)
        try:
            if db is not None:
                with self._lock:  # not under a worker still recording an answer
                    db.close()
        except sqlite3.Error:
            pass  # what was committed is on disk; nothing else to save
        finally:
            os.close(self._lockfd)
