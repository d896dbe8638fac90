"""The journal: the SQLite record behind the ledger, so every re-run resumes and nothing
accepted is ever sent again.

A *working set* is an input, the failures files written from it, and every re-run of either.
It is keyed by the input's content hash (`sets.digest`; `--fresh` opens a new generation) and
its rows by their position in that input (`seq`), never by the options of a run: changing
`--provider`, `--sender-id`, `--default-region` or `--limit` between runs, or resending a
failures file (whose rows carry `sms_ref = <digest>:<seq>`), lands on the same rows.

A row is written `inflight` (committed, fsynced) before its request leaves and gets its answer
as soon as it is read; a row still `inflight` when a later process opens the journal was cut
off mid-request, so it is `unknown`. Rows absent from the journal were never sent. Writes are
one transaction per request.

A rehearsal (the built-in `outbox` provider: nothing leaves the machine) records into sets of
its own (`sets.rehearsal = 1`) beside the real ones for the same content: what the outbox "took"
never counts as accepted for a real provider, and a real send never counts for a rehearsal.
Journals stay in rollback-journal mode (see `JOURNAL_MODE`), so everything a commit promised is
in the one `.journal.sqlite` file.
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import JournalLocked, SmsCliError
from ..core.model import Message, Outcome
from ..core.outcomes import STATE_OF, RowState, RunEnd

# 3: row states stored as core.outcomes.RowState names (`rejected`, `retryable`), runs' ends as
# RunEnd names; a journal of an earlier version is migrated when a send opens it (`_migrate`)
SCHEMA_VERSION = "3"
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sets (
    id INTEGER PRIMARY KEY, digest TEXT NOT NULL, generation INTEGER NOT NULL, name TEXT NOT NULL,
    created REAL NOT NULL, linked INTEGER, UNIQUE (digest, generation));
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY, set_id INTEGER NOT NULL, input TEXT NOT NULL, provider TEXT NOT NULL,
    options TEXT NOT NULL, started REAL NOT NULL, updated REAL, status TEXT NOT NULL DEFAULT 'running');
CREATE TABLE IF NOT EXISTS rows (
    set_id INTEGER NOT NULL, seq INTEGER NOT NULL, line INTEGER NOT NULL, phone TEXT NOT NULL,
    msg INTEGER NOT NULL, state TEXT NOT NULL, code TEXT, message TEXT, ref TEXT,
    attempts INTEGER NOT NULL DEFAULT 0, sent REAL, run INTEGER,
    PRIMARY KEY (set_id, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS requests (
    run INTEGER NOT NULL, sent REAL NOT NULL, rows INTEGER NOT NULL, attempt INTEGER NOT NULL,
    result TEXT, ref TEXT);
"""
# What `sms-cli receipts` needs beyond the send's own record: each row's template and the
# correlation value it carried (UserId / SessionContext), written when the row goes in flight, and
# per row the latest delivery receipt (the row's `sent` it is about: a resend starts over). Added
# to journals an earlier version wrote, which stay readable (their rows have NULL there).
# `provider`: the provider section each row was (last) sent through, so receipts ask each row's
# own provider when routes spread a run over several (NULL: an earlier version; its run's provider).
ROW_COLUMNS = {"template": "TEXT", "corr": "TEXT", "provider": "TEXT"}
RECEIPT_SCHEMA = """
CREATE TABLE IF NOT EXISTS receipts (
    set_id INTEGER NOT NULL, seq INTEGER NOT NULL, sent REAL, status TEXT NOT NULL, code TEXT, message TEXT,
    received REAL, parts INTEGER, ref TEXT, checked REAL, queries INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (set_id, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS receipt_inbox (
    provider TEXT NOT NULL, ref TEXT NOT NULL, phone TEXT NOT NULL, report TEXT NOT NULL, added REAL NOT NULL,
    PRIMARY KEY (provider, ref, phone));
"""
# Why not WAL: in WAL mode every commit since the last checkpoint lives only in `-wal`; an
# operator who deletes that "temp file" after a kill (issue 20, path 7) silently loses the record
# of the rows accepted meanwhile, and the next run sends them again. A checkpoint after each
# settled batch would still leave the in-flight marks of the next batch in the WAL (a kill then
# loses them: sent rows read as never sent). In rollback-journal mode a commit is complete only
# once the main file holds it; `-journal` holds the *old* pages of a transaction still being
# written, so a file left beside the journal after a kill is never the only copy of a promise.
# TRUNCATE rather than DELETE: the empty file is kept between commits (no unlink and directory
# change per commit); deleting it is harmless. The cost (measured in README, Reliability): about
# two more fsyncs per commit, two commits per request.
JOURNAL_MODE = "truncate"
# How long a commit waits for a reader (`status`, `plan`) to finish a query, and a reader for a
# commit: queries are short (reads are chunked), so this is only reached by something holding the
# journal open by hand; then the run stops with a journal error and the journal keeps the truth.
BUSY_SECONDS = 30.0
MIN_FREE_BYTES = 1 << 20  # refuse to start a run on a disk that cannot hold its journal
FINISHED = RunEnd.FINISHED  # a run's status when it went through its whole input


_INFLIGHT_COLS = ("set_id", "seq", "line", "phone", "msg", "state", "attempts", "sent", "run", "template", "corr",
                  "provider")
_INFLIGHT_SQL: dict[int, str] = {}
# rows the provider took or may have taken: never sent again by another version of their input
TAKEN = (RowState.ACCEPTED, RowState.UNDELIVERED, RowState.UNKNOWN, RowState.INFLIGHT)
_INFLIGHT = RowState.INFLIGHT.value  # bound per row of a batch: a plain str binds without adaptation


def _mark_inflight_sql(n: int) -> str:
    """One statement that writes a whole batch: n rows of VALUES, bound in one call. (executemany
    hands Python's global lock back and forth on every row, starving the reader thread of a big
    run; JSON with json_extract per column cost half as much again as this.)"""
    sql = _INFLIGHT_SQL.get(n)
    if sql is None:
        row = "(" + ",".join("?" * len(_INFLIGHT_COLS)) + ")"
        updates = ", ".join(f"{c}=excluded.{c}" for c in _INFLIGHT_COLS[2:])
        sql = (f"INSERT INTO rows({', '.join(_INFLIGHT_COLS)}) VALUES {','.join([row] * n)} "
               f"ON CONFLICT(set_id, seq) DO UPDATE SET {updates}")
        if len(_INFLIGHT_SQL) < 64:  # the usual sizes: a full batch, a last one, a few split halves
            _INFLIGHT_SQL[n] = sql
    return sql


# answers: one UPDATE per distinct answer in the batch (usually one: all accepted under one
# submission id); the rows are there already, written in flight before the request left
RECORD = ("UPDATE rows SET state=?, code=?, message=?, ref=? "
          "WHERE set_id=? AND seq IN (SELECT value FROM json_each(?))")
RECORD_RANGE = "UPDATE rows SET state=?, code=?, message=?, ref=? WHERE set_id=? AND seq BETWEEN ? AND ?"
MAX_VALUES_ROWS = 32766 // len(_INFLIGHT_COLS)  # parameters of one statement: under SQLite's 32766


@dataclass(frozen=True)
class WorkingSet:
    id: int
    digest: str  # the content hash of the input it was made from
    generation: int
    name: str
    created: float
    linked: int | None  # --continue-edited: the set of an earlier version whose messages count
    rehearsal: int = 0  # 1: recorded through the outbox (nothing left the machine)

    @property
    def ref_prefix(self) -> str:
        """What a failures-file row's sms_ref starts with: <digest>:<seq>."""
        return self.digest[:16]


@dataclass(frozen=True)
class Recorded:
    """A row as the journal records it."""
    seq: int
    state: RowState  # (a value some later version wrote stays the string it is)
    code: str
    message: str
    msg: int


class Journal:
    provider: str | None = None  # the run's provider section (a row without routes goes there)

    def __init__(self, path: Path, *, readonly: bool = False, rehearsal: bool = False):
        self.path = Path(path)
        self.readonly = readonly
        self.rehearsal = int(rehearsal)  # which sets this connection sees: the outbox's or the real ones
        refuse_symlink_out(self.path)
        self._lock = threading.Lock()
        self._lockfd: int | None = None
        if readonly:  # plan / --dry-run: look, never create or lock
            try:
                self.db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False,
                                          timeout=BUSY_SECONDS)
                self._check_schema()
                self._set_filter()
            except sqlite3.Error as exc:
                raise SmsCliError(f"{self.path}: not a usable journal ({exc})") from None
            return
        folder = self.path.parent if str(self.path.parent) else Path(".")
        if not folder.is_dir():
            raise SmsCliError(f"{self.path}: cannot open the journal (folder {folder} does not exist)")
        try:
            free = shutil.disk_usage(folder).free
        except OSError:
            free = None
        if free is not None and free < MIN_FREE_BYTES:
            raise SmsCliError(f"{self.path}: disk full (less than 1 MiB free in {folder}); nothing was sent")
        try:
            self._lockfd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise SmsCliError(f"{self.path}: cannot open the journal ({exc.strerror})") from None
        try:  # SQLite uses fcntl record locks; flock on the same file is independent of them
            fcntl.flock(self._lockfd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lockfd)
            self._lockfd = None
            # never "choose --journal": another journal is another ledger, and sends it all again
            raise JournalLocked(f"{self.path}: another sms-cli send is using this journal; wait for it to "
                                "end, then run the same command again (it resumes)") from None
        try:
            self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                      timeout=BUSY_SECONDS)
            mode = self.db.execute(f"PRAGMA journal_mode={JOURNAL_MODE}").fetchone()[0]
            if mode != JOURNAL_MODE:  # a WAL journal a reader still has open: not converted
                raise sqlite3.OperationalError(f"cannot leave journal mode {mode} (a reader has it open); "
                                               "run the same command again")
            self.db.execute("PRAGMA synchronous=FULL")  # 'inflight' must survive a power cut
            self._check_schema()
            self.db.executescript(SCHEMA)
            self._add_receipt_schema()
            self._set_filter()
            self._migrate()
        except sqlite3.Error as exc:
            self.close()
            raise SmsCliError(f"{self.path}: not a usable journal ({exc})") from None
        self.run_id = 0

    def _migrate(self) -> None:
        """Bring a journal an earlier version wrote to this schema: its refused rows were stored
        as `failed` and the rows a re-run sends as `retry`. (A read-only open reads those names
        through STATE_OF instead.) A new journal is stamped with the current version."""
        row = self.db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        if row is not None and (not row[0].isdigit() or int(row[0]) >= int(SCHEMA_VERSION)):
            return  # current (or a later version's: not this one's to rewrite)
        with self._transaction():
            if row is not None:
                for old, new in (("failed", RowState.REJECTED), ("retry", RowState.RETRYABLE)):
                    self.db.execute("UPDATE rows SET state=? WHERE state=?", (new.value, old))
            self.db.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))

    def _add_receipt_schema(self) -> None:
        """The receipts tables, and the rows columns a journal of an earlier version lacks."""
        have = {r[1] for r in self.db.execute("PRAGMA table_info(rows)")}
        for name, kind in ROW_COLUMNS.items():
            if name not in have:
                self.db.execute(f"ALTER TABLE rows ADD COLUMN {name} {kind}")
        self.db.executescript(RECEIPT_SCHEMA)
        if "rehearsal" not in {r[1] for r in self.db.execute("PRAGMA table_info(sets)")}:
            self._separate_rehearsals()

    def _separate_rehearsals(self) -> None:
        """A journal written before rehearsals were kept apart: a set only the outbox ever ran
        becomes a rehearsal set; in a set real providers ran too, the rows an outbox run
        recorded are dropped (they never left the machine: a real send must send them)."""
        outbox = "SELECT id FROM runs WHERE json_extract(options, '$.type') = 'outbox'"
        with self._transaction():
            self.db.execute("ALTER TABLE sets ADD COLUMN rehearsal INTEGER NOT NULL DEFAULT 0")
            self.db.execute(f"UPDATE sets SET rehearsal=1 WHERE id IN (SELECT set_id FROM runs) AND id NOT IN "
                            f"(SELECT set_id FROM runs WHERE id NOT IN ({outbox}))")
            self.db.execute(f"DELETE FROM rows WHERE run IN ({outbox}) AND set_id IN "
                            "(SELECT id FROM sets WHERE rehearsal=0)")

    @contextmanager
    def _transaction(self):
        """BEGIN IMMEDIATE ... COMMIT, rolled back on any error (the caller holds the lock)."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
            self.db.execute("COMMIT")
        except BaseException:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise

    def _set_filter(self) -> None:
        """The SQL that keeps this connection to its kind of set (a journal written before
        rehearsals were kept apart has real sets only)."""
        have = "rehearsal" in {r[1] for r in self.db.execute("PRAGMA table_info(sets)")}
        self._cols = self._SET_COLS + (", rehearsal" if have else "")
        self._kind = f" AND rehearsal={self.rehearsal}" if have else ("" if not self.rehearsal else " AND 0")

    def _check_schema(self) -> None:
        tables = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "runs" in tables and "meta" not in tables:
            raise sqlite3.DatabaseError("written by an earlier sms-cli version; move it aside to start a new one")

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

    def _read(self, sql: str, params=()) -> list[tuple]:
        with self._lock, self._guard("journal read failed"):
            return self.db.execute(sql, params).fetchall()

    def _write(self, sql: str, params: list[tuple]) -> None:
        with self._guard("journal write failed"):
            self.db.execute("BEGIN IMMEDIATE")
            self.db.executemany(sql, params)
            self.db.execute("COMMIT")

    # --- working sets -------------------------------------------------------------------------
    _SET_COLS = "id, digest, generation, name, created, linked"

    def find_set(self, digest: str) -> WorkingSet | None:
        """The current generation of the set made from content `digest` (a prefix will do)."""
        rows = self._read(f"SELECT {self._cols} FROM sets WHERE digest >= ? AND digest < ?{self._kind} "
                          "ORDER BY generation DESC LIMIT 1", (digest, digest + "g"))
        return WorkingSet(*rows[0]) if rows else None

    def get_set(self, set_id: int) -> WorkingSet:
        return WorkingSet(*self._read(f"SELECT {self._cols} FROM sets WHERE id=?", (set_id,))[0])

    def other_kind(self, digest: str) -> WorkingSet | None:
        """The newest set of the other kind (rehearsal / real) for this content, if any."""
        if "rehearsal" not in self._cols:
            return None
        rows = self._read(f"SELECT {self._cols} FROM sets WHERE digest >= ? AND digest < ? AND rehearsal<>? "
                          "ORDER BY generation DESC LIMIT 1", (digest, digest + "g", self.rehearsal))
        return WorkingSet(*rows[0]) if rows else None

    def link_group(self, set_id: int) -> list[int]:
        """Every set joined to `set_id` by --continue-edited links, either way, itself included:
        the versions of one working set."""
        edges = self._read(f"SELECT id, linked FROM sets WHERE linked IS NOT NULL{self._kind}")
        near: dict[int, set[int]] = {}
        for a, b in edges:
            near.setdefault(a, set()).add(b)
            near.setdefault(b, set()).add(a)
        group, todo = {set_id}, [set_id]
        while todo:
            for other in near.get(todo.pop(), ()):
                if other not in group:
                    group.add(other)
                    todo.append(other)
        return sorted(group)

    def link(self, set_id: int, linked: int) -> None:
        """Join an existing set to an earlier version's (--continue-edited on a set made without it)."""
        with self._lock:
            self._write("UPDATE sets SET linked=? WHERE id=?", [(linked, set_id)])

    def create_set(self, digest: str, name: str, linked: int | None = None, created: float | None = None
                   ) -> WorkingSet:
        with self._lock, self._guard("journal write failed"):
            gen = self.db.execute("SELECT coalesce(max(generation), 0) + 1 FROM sets WHERE digest=?",
                                  (digest,)).fetchone()[0]
            cur = self.db.execute("INSERT INTO sets(digest, generation, name, created, linked, rehearsal) "
                                  "VALUES (?,?,?,?,?,?)", (digest, gen, name, time.time() if created is None
                                                           else created, linked, self.rehearsal))
            set_id = cur.lastrowid
        return self.get_set(set_id)

    def other_version(self, name: str, digest: str) -> WorkingSet | None:
        """The newest set made from another content of the input called `name`."""
        rows = self._read(f"SELECT {self._cols} FROM sets WHERE name=? AND digest<>?{self._kind} "
                          "ORDER BY id DESC LIMIT 1", (name, digest))
        return WorkingSet(*rows[0]) if rows else None

    def set_status(self, set_id: int) -> RunEnd | None:
        """How the set's latest run ended: running (or killed), a stop, partial, finished."""
        rows = self._read("SELECT status FROM runs WHERE set_id=? ORDER BY id DESC LIMIT 1", (set_id,))
        return _run_end(rows[0][0]) if rows else None

    def counts(self, set_id: int) -> dict[RowState, int]:
        out: dict[RowState, int] = {}
        for state, n in self._read("SELECT state, count(*) FROM rows WHERE set_id=? GROUP BY state", (set_id,)):
            state = STATE_OF.get(state, state)
            out[state] = out.get(state, 0) + n
        return out

    # --- runs ---------------------------------------------------------------------------------
    def restate(self, old: RowState, new: RowState, code: str, message: str) -> None:
        """Every row in state `old` (all sets) that an earlier run wrote to `new`, as the ledger
        decides; the rows this connection's run wrote are left as they are."""
        with self._lock:
            self._write("UPDATE rows SET state=?, code=?, message=? WHERE state=? AND run IS NOT ?",
                        [(new, code, message, old, self.run_id or None)])

    def start_run(self, ws: WorkingSet, input_name: str, provider: str, options: dict) -> int:
        """Record a new run on `ws` (a run an earlier process left running ended unsaid)."""
        with self._lock:
            self._write("UPDATE runs SET status=? WHERE status=?", [(RunEnd.STOPPED, RunEnd.RUNNING)])
            with self._guard("journal write failed"):
                cur = self.db.execute("INSERT INTO runs(set_id, input, provider, options, started) VALUES (?,?,?,?,?)",
                                      (ws.id, input_name, provider, json.dumps(options), time.time()))
            self.run_id = cur.lastrowid
            self.provider = provider
        return self.run_id

    def finish_run(self, status: RunEnd) -> None:
        with self._lock:
            self._write("UPDATE runs SET status=?, updated=? WHERE id=?", [(status, time.time(), self.run_id)])

    # --- rows ---------------------------------------------------------------------------------
    def states(self, set_id: int, start: int = 0) -> Iterator[Recorded]:
        """Every recorded row of a set from seq `start` on, in seq order, streamed for a merge
        with the input."""
        # one short query per chunk, by key, under the lock (workers write on the same connection):
        # no statement stays open between chunks, so a `status` or `plan` reading this journal
        # never holds a lock a send's commit waits for (rollback-journal mode: readers block a
        # commit while a statement of theirs is open)
        sql = "SELECT seq, state, code, message, msg FROM rows WHERE set_id=? AND seq>=? ORDER BY seq LIMIT 5000"
        while True:
            with self._lock, self._guard("journal read failed"):
                chunk = self.db.execute(sql, (set_id, start)).fetchall()
            of = STATE_OF.get
            for seq, state, code, message, msg in chunk:
                yield Recorded(seq, of(state, state), code or "", message or "", msg)
            if len(chunk) < 5000:
                return
            start = chunk[-1][0] + 1

    def resume_view(self, set_id: int) -> tuple[dict[str, int], int, Callable[[], dict[str, int]]]:
        """(rows per state, n, accepted rows per template below n) where rows 0..n-1 of a set
        are all recorded and accepted: what a resume counts instead of reading them (a run
        killed at 90% resumes at once). The per-template split comes as a function to call once
        the run is over: it needs a sort of the whole prefix (0.6 s at 900,000 rows) that the
        first request must not wait for, and rows below n are never written by the run that
        resumes at n. The rest is one pass without a sort, and the rows above n (a few batches at
        most after a kill) read by their key. Its queries read one snapshot (one read
        transaction): a `status` or `plan` reading while a send writes must not mix two moments of
        the journal."""
        with self._lock, self._guard("journal read failed"):
            began = not self.db.in_transaction
            if began:
                self.db.execute("BEGIN")
            try:
                counts, gap = self._resume_view(set_id, lambda sql, params: self.db.execute(sql, params).fetchall())
            finally:
                if began and self.db.in_transaction:
                    self.db.execute("COMMIT")
        return counts, gap, lambda: dict(self._read(
            "SELECT coalesce(template, '-'), count(*) FROM rows WHERE set_id=? AND seq<? GROUP BY 1",
            (set_id, gap))) if gap else {}

    def _resume_view(self, set_id: int, read) -> tuple[dict[str, int], int]:
        accepted, bad, top = read("SELECT count(*) FILTER (WHERE state=?1), min(seq) FILTER (WHERE state<>?1), "
                                  "max(seq) FROM rows WHERE set_id=?2", (RowState.ACCEPTED, set_id))[0]
        # every row that is not accepted is at `bad` or above: those few are counted by key
        counts = {RowState.ACCEPTED: accepted} if accepted else {}
        gap = bad if bad is not None else (top + 1 if top is not None else 0)
        if bad is not None:
            for state, n in read("SELECT state, count(*) FROM rows WHERE set_id=? AND seq>=? AND state<>? "
                                 "GROUP BY 1", (set_id, bad, RowState.ACCEPTED)):
                state = STATE_OF.get(state, state)
                counts[state] = counts.get(state, 0) + n
        above = read("SELECT count(*) FROM rows WHERE set_id=? AND seq>=? AND state=?",
                     (set_id, gap, RowState.ACCEPTED))[0][0]
        if accepted - above != gap:  # a row below it was never sent: stop at the first such hole
            has_zero = read("SELECT count(*) FROM rows WHERE set_id=? AND seq=0", (set_id,))[0][0]
            gap = 0 if not has_zero else read(
                "SELECT min(seq) + 1 FROM rows r WHERE set_id=?1 AND seq<?2 AND NOT EXISTS "
                "(SELECT 1 FROM rows WHERE set_id=?1 AND seq=r.seq + 1)", (set_id, gap))[0][0] or 0
        return counts, gap

    def resume_point(self, set_id: int, seq: int) -> tuple[int, int] | None:
        """(line, message key) of row `seq`: where a resume may start reading the input again
        (the row's first line) and what that row must turn out to be."""
        rows = self._read("SELECT line, msg FROM rows WHERE set_id=? AND seq=?", (set_id, seq))
        return rows[0] if rows else None

    def prefix_messages(self, set_id: int, n: int) -> set[int]:
        """Message keys of rows 0..n-1 (for --dedupe when a resume counts them unread)."""
        return {r[0] for r in self._read("SELECT msg FROM rows WHERE set_id=? AND seq<?", (set_id, n))}

    def state(self, set_id: int, seq: int) -> Recorded | None:
        rows = self._read("SELECT seq, state, code, message, msg FROM rows WHERE set_id=? AND seq=?", (set_id, seq))
        if not rows:
            return None
        seq, state, code, message, msg = rows[0]
        return Recorded(seq, STATE_OF.get(state, state), code or "", message or "", msg)

    def taken_messages(self, set_ids: list[int]) -> set[int]:
        """Message keys of these sets that were (or may have been) accepted, delivered or not:
        never to be sent again by another version of their input."""
        out: set[int] = set()
        for set_id in set_ids:
            out.update(r[0] for r in self._read("SELECT msg FROM rows WHERE set_id=? AND state IN (?,?,?,?)",
                                                (set_id, *TAKEN)))
        return out

    def mark_inflight(self, batch: list[Message], attempt: int) -> None:
        now, run, provider = time.time(), self.run_id, self.provider
        chunks = [batch[i:i + MAX_VALUES_ROWS] for i in range(0, len(batch), MAX_VALUES_ROWS)]
        with self._lock, self._guard("journal write failed"):
            # one statement outside BEGIN is a transaction of its own, committed (and fsynced)
            # before execute returns: the usual batch fits in one, which spares two statements,
            # each a hand-over of Python's global lock to the CPU-bound reader thread and back
            single = len(chunks) == 1
            if not single:
                self.db.execute("BEGIN IMMEDIATE")
            for chunk in chunks:
                params = [v for m in chunk for v in (m.set_id, m.seq, m.line, m.phone, m.digest,
                                                      _INFLIGHT, attempt, now, run, m.template_id,
                                                      m.user_id or m.key, m.provider or provider)]
                self.db.execute(_mark_inflight_sql(len(chunk)), params)
            if not single:
                self.db.execute("COMMIT")

    def mark_unknown(self, batch: list[Message], message: str) -> None:
        """Rows whose request was still in flight when the run had to stop: unknown (unless the
        answer was recorded meanwhile)."""
        with self._lock:
            self._write("UPDATE rows SET state=?, code='Unknown', message=? WHERE set_id=? AND seq=? AND state=?",
                        [(RowState.UNKNOWN, message, m.set_id, m.seq, RowState.INFLIGHT) for m in batch])

    def record(self, batch: list[Message], outcomes: list[Outcome], states: list[RowState], attempt: int) -> None:
        """The answer to one request: each row's state (decided by the ledger) and the request."""
        refs = {o.ref for o in outcomes if o.ref and o.accepted}
        first = outcomes[0] if outcomes else None
        result = first.kind.value if first and all(o.kind is first.kind for o in outcomes) else "mixed"
        ref = ",".join(sorted(refs))[:500] if len(refs) <= 3 else f"{len(refs)} ids"
        with self._lock, self._guard("journal write failed",
                                     "; rows whose answer it could not record are unknown next run"):
            with self._transaction():
                groups: dict[tuple, list[int]] = {}
                for m, o, st in zip(batch, outcomes, states):
                    key = (st, o.code or None, o.message or None, o.ref or None, m.set_id)
                    seqs = groups.get(key)
                    if seqs is None:
                        seqs = groups[key] = []
                    seqs.append(m.seq)
                for key, seqs in groups.items():
                    first = seqs[0]
                    if seqs[-1] - first + 1 == len(seqs) and seqs == list(range(first, first + len(seqs))):
                        # rows read in order, answered alike (the usual batch): a range of the
                        # key, without a JSON list and the temporary index `IN` builds from it
                        self.db.execute(RECORD_RANGE, (*key, first, seqs[-1]))
                    else:
                        self.db.execute(RECORD, (*key, json.dumps(seqs)))
                self.db.execute("INSERT INTO requests(run, sent, rows, attempt, result, ref) VALUES (?,?,?,?,?,?)",
                                (self.run_id, time.time(), len(batch), attempt, result, ref or None))

    def close(self) -> None:
        db = getattr(self, "db", None)
        try:
            if db is not None:
                with self._lock:  # not under a worker still recording an answer
                    db.close()
        except sqlite3.Error:
            pass  # what was committed is on disk; nothing else to save
        finally:
            if self._lockfd is not None:
                os.close(self._lockfd)
                self._lockfd = None

    # --- read-only queries (`sms-cli status`) -------------------------------------------------
    def runs(self, set_id: int) -> list[RunRecord]:
        """Every run recorded on a set, oldest first."""
        out = []
        for rid, input_name, provider, options, started, updated, status in self._read(
                "SELECT id, input, provider, options, started, updated, status FROM runs WHERE set_id=? ORDER BY id",
                (set_id,)):
            try:
                opts = json.loads(options)
            except ValueError:
                opts = {}
            out.append(RunRecord(rid, input_name, provider, opts if isinstance(opts, dict) else {}, started,
                                 updated, _run_end(status)))
        return out

    def in_use(self) -> bool:
        """Whether a send holds this journal now (its lock), found without taking it for long
        and without writing anything."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        except OSError:
            return False
        finally:
            os.close(fd)  # closing releases the lock if it was taken
        return False

    @staticmethod
    @contextmanager
    def leave_as_found(path: Path):
        """Around code that only reads a journal (plan, status, the estimate before a send): a
        read-only SQLite connection to a WAL journal creates empty `-wal` and `-shm` files it
        cannot remove itself. Those it created are removed again afterwards, under a shared lock
        so no send can open them meanwhile (a send holds an exclusive one for its whole run)."""
        path = Path(path)
        side = (Path(f"{path}-wal"), Path(f"{path}-shm"))
        existed = [p.exists() for p in side]
        try:
            yield
        finally:
            if not all(existed):
                _remove_unused(path, [p for p, e in zip(side, existed) if not e])


    # --- delivery receipts (`sms-cli receipts`) ------------------------------------------------
    def all_sets(self) -> list[WorkingSet]:
        """Every working set, oldest first (a stdin run found by its journal alone)."""
        return [WorkingSet(*r) for r in self._read(f"SELECT {self._cols} FROM sets WHERE 1{self._kind} ORDER BY id")]

    def receipt_rows(self, set_ids: list[int]) -> list[ReceiptRow]:
        """Rows of these sets the provider took or may have taken (accepted, undelivered, unknown,
        inflight), each with its latest receipt, in (set, seq) order."""
        if not set_ids:
            return []
        marks = ",".join("?" * len(set_ids))
        cols = ", ".join(f"r.{c}" for c in ("set_id", "seq", "line", "phone", "state", "code", "message", "ref",
                                            "corr", "template", "sent", "run"))
        sql = (f"SELECT {cols}, c.status, c.sent, c.code, c.message, c.received, c.parts, c.ref, c.queries, r.provider "
               f"FROM rows r LEFT JOIN receipts c ON c.set_id = r.set_id AND c.seq = r.seq "
               f"WHERE r.set_id IN ({marks}) AND r.state IN (?,?,?,?) ORDER BY r.set_id, r.seq")
        return [ReceiptRow(*r) for r in self._read(sql, (*set_ids, *TAKEN))]

    def record_receipts(self, updates: list[ReceiptUpdate]) -> None:
        """What one query (or the end of a run) learnt, in one transaction: each row's receipt, and
        where it changes, the row's state (unknown -> accepted when found; accepted -> undelivered
        when its delivery failed)."""
        if not updates:
            return
        upsert = ("INSERT INTO receipts(set_id, seq, sent, status, code, message, received, parts, ref, checked, "
                  "queries) VALUES (?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(set_id, seq) DO UPDATE SET sent=excluded.sent, "
                  "status=excluded.status, code=excluded.code, message=excluded.message, "
                  "received=excluded.received, parts=excluded.parts, ref=excluded.ref, checked=excluded.checked, "
                  "queries=CASE WHEN receipts.sent IS excluded.sent THEN receipts.queries ELSE 0 END "
                  "+ excluded.queries")
        change = ("UPDATE rows SET state=?, code=?, message=?, ref=coalesce(?, ref) "
                  "WHERE set_id=? AND seq=? AND state IN (?,?,?)")
        with self._lock, self._guard("journal write failed"):
            self.db.execute("BEGIN IMMEDIATE")
            try:
                self.db.executemany(upsert, [(u.set_id, u.seq, u.sent, u.status, u.code or None, u.message or None,
                                              u.received, u.parts, u.ref or None, u.checked, u.queries)
                                             for u in updates])
                self.db.executemany(change, [(u.state, u.state_code, u.state_message, u.ref or None, u.set_id, u.seq,
                                              RowState.ACCEPTED, RowState.UNKNOWN, RowState.INFLIGHT)
                                             for u in updates if u.state is not None])
                self.db.execute("COMMIT")
            except BaseException:
                if self.db.in_transaction:
                    self.db.execute("ROLLBACK")
                raise

    def receipt_counts(self, set_id: int) -> dict[str, int]:
        """Rows per receipt status of a set (rows resent since their receipt not counted)."""
        return dict(self._read("SELECT c.status, count(*) FROM receipts c JOIN rows r ON r.set_id = c.set_id "
                               "AND r.seq = c.seq AND r.sent IS c.sent WHERE c.set_id=? GROUP BY c.status",
                               (set_id,)))

    def inbox(self, provider: str) -> list[str]:
        """Reports a pull-once receipt queue handed over that no row has claimed yet (JSON)."""
        return [r[0] for r in self._read("SELECT report FROM receipt_inbox WHERE provider=? ORDER BY added",
                                         (provider,))]

    def keep_in_inbox(self, provider: str, reports: list[tuple[str, str, str]]) -> None:
        """Keep (ref, phone, report JSON) from a pull-once queue before asking it for more."""
        if reports:
            now = time.time()
            with self._lock:
                self._write("INSERT OR IGNORE INTO receipt_inbox(provider, ref, phone, report, added) "
                            "VALUES (?,?,?,?,?)", [(provider, r, p, j, now) for r, p, j in reports])

    def drop_from_inbox(self, provider: str, keys: list[tuple[str, str]]) -> None:
        if keys:
            with self._lock:
                self._write("DELETE FROM receipt_inbox WHERE provider=? AND ref=? AND phone=?",
                            [(provider, r, p) for r, p in keys])


@dataclass(frozen=True)
class ReceiptRow:
    """A row `sms-cli receipts` looks at: the journal's record of it and its latest receipt."""
    set_id: int
    seq: int
    line: int
    phone: str  # E.164
    state: RowState  # accepted, undelivered, unknown, inflight
    code: str | None
    message: str | None
    ref: str | None  # SessionNo / SerialNo / BizId (uSpeedo Basic auth: several, comma-separated)
    corr: str | None  # what went in UserId / SessionContext (NULL: sent by an earlier version)
    template: str | None
    sent: float | None  # when its (latest) request left
    run: int | None
    status: str | None  # the receipt: None when never asked
    receipt_sent: float | None  # the `sent` that receipt is about (another: the row was sent again)
    receipt_code: str | None
    receipt_message: str | None
    received: float | None
    parts: int | None
    receipt_ref: str | None
    queries: int | None
    provider: str | None = None  # the section it was sent through (NULL: an earlier version)


@dataclass(frozen=True)
class ReceiptUpdate:
    set_id: int
    seq: int
    sent: float | None
    status: str
    code: str = ""
    message: str = ""
    received: float | None = None
    parts: int | None = None
    ref: str = ""  # the submission id the provider knows the message by
    checked: float | None = None
    queries: int = 0  # receipt queries this adds
    state: RowState | None = None  # the row's new journal state (decided by the ledger), or None
    state_code: str | None = None
    state_message: str | None = None


@dataclass(frozen=True)
class RunRecord:
    id: int
    input: str
    provider: str
    options: dict
    started: float  # seconds since the epoch
    updated: float | None
    status: RunEnd  # running (or killed), a stop, partial, finished


def _run_end(status: str) -> RunEnd | str:
    """A stored run status as a RunEnd (a value some later version wrote stays a string)."""
    try:
        return RunEnd(status)
    except ValueError:
        return status


def refuse_symlink_out(path: Path) -> None:
    """A journal path that is a symlink to a file in another folder is refused: the ledger (and
    its lock) would live where `status`, the index and the operator do not look for it."""
    if not path.is_symlink():
        return
    try:
        target = path.resolve(strict=False)
        here = path.parent.resolve(strict=False)
    except (OSError, RuntimeError):
        raise SmsCliError(f"{path}: the journal is a symlink that cannot be followed") from None
    if target.parent != here:
        raise SmsCliError(f"{path}: the journal is a symlink to {target}, outside its folder; "
                          "give that path itself with --journal")


def _remove_unused(path: Path, created: list[Path]) -> None:
    """Remove a journal's `-wal`/`-shm` files a reader created, when no send holds the journal
    and the write-ahead log holds nothing."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        wal = Path(f"{path}-wal")
        if wal.exists() and wal.stat().st_size:
            return  # something was written to it: not a reader's file
        for p in created:
            p.unlink(missing_ok=True)
    except OSError:  # BlockingIOError: a send holds it, the files are its own now
        return
    finally:
        os.close(fd)
