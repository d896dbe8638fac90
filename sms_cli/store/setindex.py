"""The per-user index of working sets: which journal holds the ledger of which content.

A journal lives beside its input and is named after it, so the same list under another name, a
symlink to it, a copy in another folder, or a failures file written elsewhere with `--failures`
would each find no journal and start a ledger of their own (and send everything again). Every
real send records here (content hash of its working set -> journal, input path); a send that
finds no record of its content in its own journal asks the index where that content was sent
before, and records into that journal instead (campaign.locate_journal).

`$XDG_STATE_HOME/sms-cli/index.sqlite` (default `~/.local/state/sms-cli/`), folder 0700, file
0600: it holds file paths, never a phone number. Rehearsals (the outbox) are not recorded. The
index only ever points at a journal; the journal stays the ledger, so a lost or unreadable index
costs the cross-folder look-up and nothing recorded.
"""
from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

SCHEMA = """CREATE TABLE IF NOT EXISTS sent (
    digest TEXT NOT NULL, journal TEXT NOT NULL, input TEXT NOT NULL, added REAL NOT NULL,
    PRIMARY KEY (digest, journal, input)) WITHOUT ROWID"""


def folder() -> Path:
    state = os.environ.get("XDG_STATE_HOME") or ""
    base = Path(state) if Path(state).is_absolute() else Path.home() / ".local" / "state"
    return base / "sms-cli"


def _connect() -> sqlite3.Connection:
    where = folder()
    where.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = where / "index.sqlite"
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    db = sqlite3.connect(path, timeout=10, isolation_level=None)
    db.execute("PRAGMA journal_mode=TRUNCATE")
    db.execute(SCHEMA)
    return db


def key_of(digest: str, ref: str | None) -> str:
    """What a journal and this index know an input by: a failures file (its first row's sms_ref
    is `prefix:seq`) by the set its rows came from, any other input by its content hash."""
    return ref.partition(":")[0] if ref and ":" in ref else digest


def record(digest: str, journal: Path, input_path: str) -> str | None:
    """Remember that content `digest` was sent from `input_path`, recorded in `journal`.
    -> None, or why the index could not be written (the send goes on: its journal is the ledger)."""
    try:
        db = _connect()
        try:
            # paths as the file system's bytes: a name that is not UTF-8 (kept by Python as
            # surrogate escapes) is stored, and found again, exactly
            db.execute("INSERT OR REPLACE INTO sent VALUES (?,?,?,?)",
                       (digest, os.fsencode(Path(journal).resolve()), os.fsencode(input_path), time.time()))
        finally:
            db.close()
    except (OSError, sqlite3.Error) as exc:
        return f"the working-set index in {folder()} could not be updated ({exc})"
    return None


def lookup(prefix: str) -> list[tuple[str, str, str]]:
    """(full digest, journal, input path) of every record whose content hash starts with
    `prefix` (a failures file's sms_ref carries 16 characters), newest first."""
    if not (folder() / "index.sqlite").exists() or not prefix:
        return []
    try:
        db = _connect()
        try:
            rows = db.execute("SELECT digest, journal, input FROM sent WHERE digest >= ? AND digest < ? "
                              "ORDER BY added DESC", (prefix, prefix + "g")).fetchall()
            return [(d, os.fsdecode(j), os.fsdecode(i)) for d, j, i in rows]
        finally:
            db.close()
    except (OSError, sqlite3.Error):
        return []  # no index: each journal still guards its own working set
