"""Which rows the other failures files of a working set hold: a row not accepted is in exactly one.

A row not accepted stays in the failures file that holds it. A run writes into its own failures
file only the rows no other failures file of its working set holds, and does not send those
either (sent from here and accepted, the row would be accepted and still listed there; refused,
in two files). The other files are the derived names (`.failed`, `.undelivered`,
`.undelivered.failed`, see paths.py) beside every path the working set was sent from: the input
as given, its journal's base (a renamed or copied list led there by the per-user index), and
every input path the index recorded for the set, minus the run's own failures file and the file
being sent. They are read from disk when the run starts (the journal's lock keeps another send or
`receipts` from rewriting them meanwhile); a file that is not there holds nothing, so a row whose
file was deleted is filed again: never in no file. A file that cannot be read holds nothing
either (a note says so): the row may then be in two files, never in none.

What is kept is one bitmap of row numbers per file and working set (a failures file of 1,000,000
rows costs 125 KB, never its rows), read only when such a file exists: the common run (no other
file) pays a few stat calls at its start and nothing per row.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

from ..core.errors import SmsCliError
from ..input.rows import open_source
from . import paths, setindex

# every failures file a working set can have beside one of its paths: send's, receipts' and the
# failures file of receipts' file (paths.DERIVED, each way they combine)
NAMES = (paths.FAILED, ".undelivered", ".undelivered" + paths.FAILED)
JOURNAL_SUFFIX = ".journal.sqlite"


class Held:
    """(set id, seq) -> the other failures file that holds the row, and how many rows this run
    left to each file (`counts`, for the summary)."""

    def __init__(self) -> None:
        self.files: list[tuple[str, dict[int, bytearray]]] = []
        self.counts: dict[str, int] = {}
        self.notes: list[str] = []

    def __bool__(self) -> bool:
        return bool(self.files)

    def add(self, name: str, rows: Iterable[tuple[int, int]]) -> None:
        sets: dict[int, bytearray] = {}
        for set_id, seq in rows:
            bits = sets.get(set_id)
            if bits is None:
                bits = sets[set_id] = bytearray()
            if seq >> 3 >= len(bits):
                bits.extend(bytes((seq >> 3) + 1 - len(bits)))
            bits[seq >> 3] |= 1 << (seq & 7)
        if sets:
            self.files.append((name, sets))

    def claim(self, set_id: int, seq: int) -> str | None:
        """The file that holds this row (counted as left to it), or None."""
        for name, sets in self.files:
            bits = sets.get(set_id)
            if bits is not None and seq >> 3 < len(bits) and bits[seq >> 3] >> (seq & 7) & 1:
                self.counts[name] = self.counts.get(name, 0) + 1
                return name
        return None


def _real(path: Path | str) -> str:
    try:
        return os.path.realpath(path)
    except (OSError, ValueError):
        return str(path)


def other_files(input_name: str, fmt: str, digest: str, own: Path, journal: Path | None,
                sent_from: Iterable[str] = ()) -> list[Path]:
    """The derived failures files of the working set that exist, beside the input (as given),
    its journal and every path in `sent_from`, minus `own` (this run's failures file) and the
    input itself, each once."""
    ext = paths.failures_ext(input_name, fmt)
    bases = [paths.base(input_name, digest)]
    if journal is not None and journal.name.endswith(JOURNAL_SUFFIX):
        bases.append(journal.with_name(journal.name[: -len(JOURNAL_SUFFIX)]))
    bases += [paths.base(p, digest) for p in sent_from if os.path.isabs(p)]
    skip = {_real(own)}
    if not (input_name == "-" or input_name.startswith(paths._PIPES)):
        skip.add(_real(input_name))
    found = []
    for b in bases:
        for name in NAMES:
            candidate = b.with_name(b.name + name + ext)
            real = _real(candidate)
            if real in skip:
                continue
            skip.add(real)
            if candidate.is_file():
                found.append(candidate)
    return found


def read(files: Iterable[Path], resolve: Callable[[str], tuple[int, int] | None],
         encoding: str | None = None) -> Held | None:
    """The rows `files` hold, by their sms_ref (`resolve`: the run's Identity.resolve), or None
    when they hold none. `encoding`: the input's (a failures file keeps it)."""
    held = Held()
    for path in files:
        name = str(path)
        try:
            source = _open(name, encoding)
        except SmsCliError as exc:
            held.notes.append(f"{name} could not be read ({exc}): the rows it holds may be filed here too")
            continue
        try:
            held.add(name, (where for raw in source.rows() if raw.ref
                            for where in (resolve(raw.ref),) if where is not None))
        except SmsCliError as exc:
            held.notes.append(f"{name} could not be read ({exc}): the rows it holds may be filed here too")
        finally:
            source.cleanup()
    return held if held or held.notes else None


def _open(name: str, encoding: str | None):
    """A failures file as written: in the input's encoding (send), or UTF-8 (receipts' file)."""
    try:
        return open_source(name, encoding=encoding)
    except SmsCliError:
        if encoding is None:
            raise
        return open_source(name)


def for_campaign(camp, ident, ws) -> Held | None:
    """What the other failures files of a command's working set hold (send, plan, --dry-run,
    status). None when there is nothing to look at: a shard (its files are its own), --fresh (a
    new generation: the old files belong to the one before), or no such file."""
    req, source = camp.req, camp.source
    if req.shard is not None or req.fresh:
        return None
    digest = ws.digest if ws is not None else source.digest
    journal = camp.journal_path
    here = _real(journal) if journal is not None else None
    sent_from = [i for _, j, i in setindex.lookup(digest) if j == here] if here else []
    files = other_files(req.input, source.fmt, source.digest, camp.failures_path, journal, sent_from)
    if not files:
        return None
    return read(files, ident.resolve, source.encoding if source.fmt == "csv" else None)
