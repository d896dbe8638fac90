"""Which rows the other failures files of a working set hold: a row not accepted is in exactly one.

A row not accepted stays in the failures file that holds it. A run writes into its own failures
file only the rows no other failures file of its working set holds, and does not send those
either (sent from here and accepted, the row would be accepted and still listed there; refused,
in two files): it counts them as `Fate.ELSEWHERE` and the summary names the file.

The other files are those with a failures file's name (`.failed`, `.undelivered`,
`.undelivered.failed`, see paths.py) in the folders the working set lives in: beside the input
as given, beside its journal (a renamed or copied list led there by the per-user index), and
beside every path the index recorded for the set; the derived names of those paths always, any
other such name (one the input had only while `receipts` read it) when its first row names a set
of this journal. Not counted: the run's own failures file, the file being sent, and a copy of it
(the same content: the working set is its content, not its name). They are read from disk when
the run starts (the journal's lock keeps another send or `receipts` from rewriting them
meanwhile). A file that is not there holds nothing, so a row whose file was deleted is filed
again: never in no file. A file that cannot be read holds nothing either (a note says so): its
rows may then be in two files, never in none.

What is kept is one bitmap of row numbers per file and working set (a failures file of 1,000,000
rows costs 125 KB, never its rows). A run with no such file pays a directory listing or two at
its start and nothing per row.
"""
from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from ..core.errors import SmsCliError
from ..input.rows import META, open_source
from . import paths, setindex

# every failures file a working set can have beside one of its paths: send's, receipts' and the
# failures file of receipts' file (paths.DERIVED, each way they combine)
NAMES = (paths.FAILED, paths.UNDELIVERED, paths.UNDELIVERED + paths.FAILED)
EXTENSIONS = (".csv", ".tsv", ".jsonl")  # what paths.failures_ext gives


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

    def holder(self, set_id: int, seq: int) -> str | None:
        """The file that holds this row, or None."""
        for name, sets in self.files:
            bits = sets.get(set_id)
            if bits is not None and seq >> 3 < len(bits) and bits[seq >> 3] >> (seq & 7) & 1:
                return name
        return None

    def claim(self, set_id: int, seq: int) -> str | None:
        """The file that holds this row, counted as left to it; or None."""
        name = self.holder(set_id, seq)
        if name is not None:
            self.counts[name] = self.counts.get(name, 0) + 1
        return name


def other_files(input_name: str, fmt: str, digest: str, own: Path, journal: Path | None,
                sent_from: Iterable[str] = ()) -> list[tuple[Path, bool]]:
    """The failures files that may belong to the working set, each once, minus `own` (this
    run's failures file) and the input itself: (path, named) where `named` says it has a derived
    name of the input, its journal or a path in `sent_from` (the index's); the others are every
    file with a failures file's name in those folders (a name the input had only while `receipts`
    read it, say), which `read` keeps only when their rows name this journal's sets."""
    ext = paths.failures_ext(input_name, fmt)
    bases = [paths.base(input_name, digest)]
    if journal is not None and journal.name.endswith(paths.JOURNAL_SUFFIX):
        bases.append(journal.with_name(journal.name[: -len(paths.JOURNAL_SUFFIX)]))
    bases += [paths.base(p, digest) for p in sent_from if os.path.isabs(p)]
    skip = {paths.resolved(own)}
    if not paths.is_pipe(input_name):
        skip.add(paths.resolved(input_name))
    named = [b.with_name(b.name + name + ext) for b in bases for name in NAMES]
    ends = tuple(name + e for name in NAMES for e in EXTENSIONS)
    folders = dict.fromkeys(str(b.parent) for b in bases)
    found = []
    for path, is_named in [*((p, True) for p in named), *((p, False) for f in folders for p in _listed(f, ends))]:
        real = paths.resolved(path)
        if real in skip:
            continue
        skip.add(real)
        if path.is_file():
            found.append((_shown(path), is_named))
    return found


def _listed(folder: str, ends: tuple[str, ...]) -> list[Path]:
    try:
        with os.scandir(folder or ".") as entries:
            return sorted(Path(folder, e.name) for e in entries if e.name.endswith(ends) and not e.name.startswith("."))
    except OSError:
        return []


def _shown(path: Path) -> Path:
    """A path as the summary names it: relative when it is in the working folder (the index
    and a journal it found give absolute ones)."""
    if path.is_absolute():
        try:
            return path.relative_to(Path.cwd())
        except (ValueError, OSError):
            return path
    return path


def read(files: Iterable[tuple[Path, bool]], resolve: Callable[[str], tuple[int, int] | None],
         encoding: str | None = None, sent: str = "", prefixes: Iterable[str] = ()) -> Held | None:
    """The rows `files` hold, by their sms_ref (`resolve`: the run's Identity.resolve), or None
    when they hold none. `encoding`: the input's (a failures file keeps it). A file not named
    after the working set is kept only when its first row names a set of this journal. A file
    whose content hash is `sent` (the input's) is a copy of the file being sent: it is that file.
    `prefixes`: the sms_ref prefixes of the run's sets: a file not named after the working set
    whose first 64 KiB hold none of them is not opened (another list's failures file)."""
    held = Held()
    marks = [p.encode(e) for p in prefixes for e in ("ascii", "utf-16-le", "utf-16-be")]
    for path, named in files:
        name = str(path)
        if not named and marks and not _mentions(path, marks):
            continue
        trouble = f"{name} could not be read: the rows it holds may be filed here too"
        try:
            source = _open(name, encoding)
        except SmsCliError as exc:
            if named:
                held.notes.append(f"{trouble} ({exc})")
            continue
        try:
            if source.digest != sent:
                held.add(name, _rows(source, resolve, named))
        except SmsCliError as exc:
            if named:
                held.notes.append(f"{trouble} ({exc})")
        finally:
            source.cleanup()
    return held if held or held.notes else None


def _mentions(path: Path, marks: list[bytes]) -> bool:
    try:
        with open(path, "rb") as fh:
            head = fh.read(1 << 16)
    except OSError:
        return False
    return any(m in head for m in marks)


def _rows(source, resolve, named: bool):
    """(set id, seq) of each row of a failures file, by its sms_ref."""
    for raw in source.rows():
        where = resolve(raw.ref) if raw.ref else None
        if where is not None:
            yield where
        elif not named:
            return  # another working set's file, or not a failures file at all
        named = True


def _open(name: str, encoding: str | None):
    """A failures file as written: in the input's encoding (send), or UTF-8 (receipts' file)."""
    try:
        return open_source(name, encoding=encoding)
    except SmsCliError:
        if encoding is None:
            raise
        return open_source(name)


def for_input(input_name: str, source, own: Path, journal: Path, ident) -> Held | None:
    """What the other failures files of the working set of `source` (read from `input_name`,
    recorded in `journal`) hold, for a command whose own failures file is `own`. `ident`: the
    command's run.stream.Identity, which names each sms_ref's row."""
    key = setindex.key_of(source.digest, source.first_ref())  # the set its rows belong to
    here = paths.resolved(journal)
    sent_from = [i for _, j, i in setindex.lookup(key) if j == here] if key else []
    files = other_files(input_name, source.fmt, source.digest, own, journal, sent_from)
    if not files:
        return None
    return read(files, ident.resolve, source.encoding if source.fmt == "csv" else None, source.digest,
                {ident.own_prefix, *ident.prefixes.values()})


def for_campaign(camp, ident) -> Held | None:
    """The same for send, plan, --dry-run and status. None where there is nothing to look at:
    a shard (its files are its own), or --fresh (a new generation: the old files belong to the
    one before)."""
    req = camp.req
    if req.shard is not None or req.fresh or camp.journal_path is None:
        return None
    return for_input(req.input, camp.source, camp.failures_path, camp.journal_path, ident)


def carry_over(ledger, input_name: str, source, ident, notes: list[str]) -> None:
    """Before a run's failures file replaces the one at its path: the rows that file holds which
    are not rows of the input stay in it. `list.undelivered.csv` writes `list.undelivered.failed.csv`,
    which may hold rows an earlier resend of an earlier `list.undelivered.csv` left there; they
    are in no other file. (An input that is its own failures file, or an input that is not a
    failures file, rewrites every row its file holds.) When they cannot be copied, the old file
    is left as it was and the run's failures file is not written (`ledger.local_error`)."""
    writer = ledger.failures
    if writer is None or ledger.local_error is not None or not writer.path.is_file():
        return
    try:
        if source.is_stdin or source.first_ref() is None or Path(input_name).samefile(writer.path):
            return
    except OSError:
        return
    try:
        mine = Held()
        mine.add("", (where for raw in source.rows() if raw.ref
                      for where in (ident.resolve(raw.ref),) if where is not None))
        kept = _copy_rows(writer, mine, ident.resolve)
    except (OSError, UnicodeError, csv.Error, ValueError, SmsCliError) as exc:
        ledger.local_error = SmsCliError(f"{writer.path}: the rows it holds could not be kept ({exc}); "
                                         "it was left as it was")
        return
    if kept:
        notes.append(f"{writer.path} keeps the {kept} rows it held that are not in {input_name}")


def _copy_rows(writer, mine: Held, resolve) -> int:
    """The rows of the file at `writer.path` that `mine` does not hold, into `writer`."""
    kept = 0
    with open(writer.path, encoding=writer.fh.encoding if writer.csv else "utf-8", newline="") as fh:
        if writer.csv:
            rows = csv.reader(fh, delimiter=writer.writer.dialect.delimiter)
            at = {name: i for i, name in enumerate(next(rows, None) or ())}
            out = [at.get(c) for c in (*writer.columns, *META)]
            for cells in rows:
                if not _mine(cells[at["sms_ref"]] if at.get("sms_ref", len(cells)) < len(cells) else "", mine, resolve):
                    writer.writer.writerow([cells[i] if i is not None and i < len(cells) else "" for i in out])
                    kept += 1
        else:
            for line in fh:
                if line.strip() and not _mine(str(json.loads(line).get("sms_ref") or ""), mine, resolve):
                    writer.fh.write(line if line.endswith("\n") else line + "\n")
                    kept += 1
    writer.count += kept
    return kept


def _mine(ref: str, mine: Held, resolve) -> bool:
    where = resolve(ref) if ref else None
    return where is not None and mine.holder(*where) is not None
