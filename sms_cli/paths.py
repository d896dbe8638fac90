"""Where a working set keeps its journal and its failures file, by default.

One name per working set: `<base>.journal.sqlite` and `<base>.failed.<ext>` beside the input.
`base` is the input's name without the extension the failures file itself uses (`list.csv` ->
`list`, `list.jsonl` -> `list`), and the whole name otherwise (`list.json` -> `list.json`), so
two inputs never share a journal or a failures file. A failures file resolves to the base of
the input it came from (`list.failed.csv` and receipts' `list.undelivered.csv` -> `list`):
resending it records into the same ledger and rewrites the same failures file. Stdin (and a process substitution such as
`<(zcat list.csv.gz)`) gets `sms-stdin-<content hash>` in the working directory, so a resume of
the same content finds its own files again.
"""
from __future__ import annotations

from pathlib import Path

FAILED = ".failed"
# what a failures file's name adds to its input's base: send's, and receipts' undelivered rows
DERIVED = (FAILED, ".undelivered")


def failures_ext(input_name: str, fmt: str) -> str:
    if fmt != "csv":
        return ".jsonl"
    ext = Path(input_name).suffix.lower()
    return ".tsv" if ext == ".tsv" else ".csv"


# inputs with no folder of their own to write beside: stdin, process substitution <(...)
_PIPES = ("/dev/stdin", "/dev/fd/", "/proc/self/fd/")


def base(input_name: str, digest: str) -> Path:
    if input_name == "-" or input_name.startswith(_PIPES):
        return Path(f"sms-stdin-{digest[:12]}")
    p = Path(input_name)
    name, ext = p.stem, p.suffix.lower()
    # .tsv stays in the base (list.csv and list.tsv must not share a journal) except on the
    # failures file of a .tsv input, list.tsv.failed.tsv
    if not (ext in (".csv", ".jsonl") or (ext == ".tsv" and name.endswith(DERIVED))):
        name = p.name
    while name.endswith(DERIVED):
        name = name[: name.rindex(".")]
    if not name:  # a file called ".failed.csv": nothing left to name it by
        name = p.name
    return p.with_name(name)


def journal_path(input_name: str, digest: str) -> Path:
    b = base(input_name, digest)
    return b.with_name(b.name + ".journal.sqlite")


def failures_path(input_name: str, fmt: str, digest: str) -> Path:
    b = base(input_name, digest)
    return b.with_name(b.name + FAILED + failures_ext(input_name, fmt))


