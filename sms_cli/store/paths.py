"""Where a working set keeps its journal and its failures file, by default.

One name per working set: `<base>.journal.sqlite` and `<base>.failed.<ext>` beside the input.
`base` is the input's name without the extension the failures file itself uses (`list.csv` ->
`list`, `list.jsonl` -> `list`), and the whole name otherwise (`list.json` -> `list.json`), so
two inputs never share a journal or a failures file. A name with no extension at all keeps a
`.noext` mark (`list` -> `list.noext`), so `list` and `list.csv` in one folder keep apart. A
failures file resolves to the base of the input it came from (`list.failed.csv` and receipts'
`list.undelivered.csv` -> `list`): resending it records into the same ledger. Each file sent
writes only its own failures file: `list.failed.csv` rewrites itself, `list.undelivered.csv`
writes `list.undelivered.failed.csv`, so a resend of one never drops the rows of another.
Stdin (and a process substitution such as `<(zcat list.csv.gz)`) gets `sms-stdin-<content
hash>` in the working directory, so a resume of the same content finds its own files again.
The same content under another name or in another folder finds its journal through the
per-user index (setindex.py), not through these names.
"""
from __future__ import annotations

import os
from pathlib import Path

FAILED = ".failed"
UNDELIVERED = ".undelivered"  # receipts' failures file: <base>.undelivered.<ext>
NOEXT = ".noext"  # the base of an input whose name has no extension
# what a failures file's name adds to its input's base: send's, and receipts' undelivered rows
DERIVED = (FAILED, UNDELIVERED)
JOURNAL_SUFFIX = ".journal.sqlite"


def failures_ext(input_name: str, fmt: str) -> str:
    if fmt != "csv":
        return ".jsonl"
    ext = Path(input_name).suffix.lower()
    return ".tsv" if ext == ".tsv" else ".csv"


# inputs with no folder of their own to write beside: stdin, process substitution <(...)
_PIPES = ("/dev/stdin", "/dev/fd/", "/proc/self/fd/")


def is_pipe(input_name: str) -> bool:
    """The input has no folder of its own: stdin or a process substitution."""
    return input_name == "-" or input_name.startswith(_PIPES)


def base(input_name: str, digest: str) -> Path:
    if is_pipe(input_name):
        return Path(f"sms-stdin-{digest[:12]}")
    p = Path(input_name)
    name, ext = p.stem, p.suffix.lower()
    # .tsv stays in the base (list.csv and list.tsv must not share a journal) except on the
    # failures file of a .tsv input, list.tsv.failed.tsv
    if not (ext in (".csv", ".jsonl") or (ext == ".tsv" and name.endswith(DERIVED))):
        name = p.name
        if not p.suffix and not p.name.startswith("."):
            name += NOEXT
    while name.endswith(DERIVED):
        name = name[: name.rindex(".")]
    if not name:  # a file called ".failed.csv": nothing left to name it by
        name = p.name
    return p.with_name(name)


def journal_path(input_name: str, digest: str) -> Path:
    b = base(input_name, digest)
    return b.with_name(b.name + JOURNAL_SUFFIX)


def failures_path(input_name: str, fmt: str, digest: str) -> Path:
    ext = failures_ext(input_name, fmt)
    if not is_pipe(input_name):
        p = Path(input_name)
        stem = p.name[: -len(p.suffix)] if p.suffix.lower() == ext else p.name
        if stem.endswith(DERIVED):  # a derived file writes its own failures file, never its input's
            return p.with_name(stem + ext if stem.endswith(FAILED) else stem + FAILED + ext)
    b = base(input_name, digest)
    return b.with_name(b.name + FAILED + ext)




def resolved(path: Path | str) -> str:
    """A path with its symlinks and `..` resolved, as the per-user index records it (one spelling
    for every comparison of paths); the path as given when it cannot be resolved."""
    try:
        return str(Path(path).resolve())
    except (OSError, RuntimeError, ValueError):
        return str(path)


def same_file(a: Path, b: Path) -> bool:
    """Both exist and are one file (a hard link, a symlink, another spelling of the path)."""
    try:
        return a.exists() and b.exists() and a.samefile(b)
    except OSError:
        return False


def sync_folder(folder: Path) -> None:
    """Make the entries of `folder` durable (a file renamed into it, or removed from it)."""
    fd = os.open(folder if str(folder) else ".", os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def open_private_append(path, encoding: str = "utf-8"):
    """Open a file that holds phone numbers for appending; created 0600 (like the journal) when
    it is new, an existing file keeps its mode."""
    return open(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600), "a", encoding=encoding)
