"""Readers: CSV (or TSV, or semicolon-separated), JSON, JSON Lines, plain lines of numbers, or
stdin -> RawRow values.

Rows are streamed (JSON arrays are the one exception: they are parsed whole, element by
element, so use JSON Lines for very large inputs). A row is never validated here; a row the
reader cannot parse (a bad JSON line, a quote that is never closed, a cell over 64 KiB) is
yielded with `error` set and the rows after it go on. Only a file that cannot be read at all
raises InputError. Field names are matched case-insensitively and the providers' names are
accepted as aliases.

Text is UTF-8 (with or without BOM) or UTF-16/32 with a BOM, unless `encoding` says otherwise;
the CSV delimiter (`,` `;` or tab) is read from the header line unless `delimiter` says. Every
input is read once: stdin and anything that is not a regular file (a FIFO, `<(...)`,
/dev/stdin) is copied to a temporary spool file first, which the run reads and re-reads.
"""
from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
import os
import re
import stat
import sys
import tempfile
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import chain, islice
from pathlib import Path
from typing import Any, BinaryIO

from ..core.errors import InputError
from ..core.textsafe import printable

FORMATS = ("csv", "json", "jsonl", "lines")  # the readers (open_source also takes "tsv": csv, tab)
EXTENSIONS = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl",
              ".txt": "lines"}
ALIASES = {
    "phone": "phone", "phonenumber": "phone", "mobile": "phone",
    "templateid": "template_id", "templatecode": "template_id", "template": "template_id",
    "params": "params", "templateparams": "params", "templateparamset": "params",
    "templateparam": "params",
    "senderid": "sender_id", "signname": "sender_id",
    "extendcode": "extend_code",
    "userid": "user_id", "sessioncontext": "user_id",
}
MAX_PARAM_COLUMN = 99  # param1 .. param99; param100 is not a parameter column
# columns a failures file adds; reading ignores them (retryable and sms_ref are kept as row
# metadata: sms_ref ties a resent row to its row in the original input's ledger)
META = ("error_code", "error_message", "line", "retryable", "sms_ref")
_FORMULA = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?[0-9 ().-]*")

# Bounds that keep a hostile or broken input to bounded time and memory.
MAX_LINE = 1 << 20  # a physical line of CSV, JSON Lines or a number list: longer is a file error
MAX_CELL = 64 * 1024  # a CSV cell: longer makes its row a bad row (messages cap at ~500 characters)
MAX_RECORD_LINES = 64  # physical lines one CSV row may span (quoted cells with line breaks)
MAX_RECORD_CHARS = MAX_LINE  # characters one CSV row may hold across its lines
_CHUNK = 1 << 20
# the csv module's own limit (default 128 KiB, which made a long cell an exception mid-run):
# above anything a row can hold, so a long cell reaches our check and becomes a bad row
if csv.field_size_limit() < 2 * MAX_RECORD_CHARS:
    csv.field_size_limit(2 * MAX_RECORD_CHARS)

DELIMITERS = (",", ";", "\t")  # what the header line is sniffed for
_DELIMITER_NAMES = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|",
                    "space": " "}


def escape_cell(text: str) -> str:
    """A failures-file CSV cell a spreadsheet would not execute: a leading quote before a cell
    that starts like a formula (plain numbers such as +85255311111 are left alone), and before
    a cell that starts with a quote, so `unescape_cell` always gives the original back."""
    if text[:1] == "'" or (text[:1] in _FORMULA and not _PLAIN_NUMBER.fullmatch(text)):
        return "'" + text
    return text


def unescape_cell(text: str) -> str:
    return text[1:] if text[:1] == "'" else text


def canonical(name: str) -> str | None:
    """The field a column or key names: phone, template_id, params, sender_id, extend_code,
    user_id, param1..param99 (positional), or None (not a field sms-cli reads)."""
    if len(name) > 64:  # no field name is that long; and a hostile key must not fill the cache
        return None
    return _canonical(name)


@lru_cache(maxsize=4096)  # called for every field of every row, but files repeat a few names
def _canonical(name: str) -> str | None:
    key = name.strip().lower().replace("_", "").replace("-", "").replace(" ", "")
    if key.startswith("param"):
        digits = key[5:]
        # ASCII digits only ("param²" is not a column number) and a small index: param1..param99
        if digits.isascii() and digits.isdigit() and len(digits) <= 3:
            index = int(digits)
            if index <= MAX_PARAM_COLUMN:
                return f"param{index}"  # param01 and param1 are the same column
            return None
    return ALIASES.get(key)


@dataclass(slots=True)
class RawRow:
    seq: int
    line: int
    record: dict[str, Any]  # the row's own fields, as read (meta columns removed)
    retryable: str | None = None  # from a failures file: "yes" / "no" / "unknown"
    error: str | None = None  # the row could not be parsed (bad JSON line, extra CSV cells)
    ref: str | None = None  # from a failures file: "<working set>:<seq>" of the original row


@dataclass
class Source:
    """An input ready to read: a file on disk (stdin and other non-regular files are spooled to
    a temporary file first so the run can be identified by its content and re-read on resume)."""

    path: Path
    fmt: str
    display: str  # what to call it in messages (control characters and bad bytes escaped)
    digest: str  # sha256 of the raw bytes: the run's identity
    lines: int  # physical lines, an upper bound of rows for the progress bar
    is_stdin: bool = False
    header: list[str] | None = None  # CSV: the columns, meta columns removed
    encoding: str = "utf-8"  # the text encoding the input is read with (a Python codec name)
    delimiter: str | None = None  # CSV: the field separator (",", ";", "\t", or --delimiter)
    spooled: bool = False  # path is a temporary copy (stdin, a FIFO): cleanup() removes it
    # the longest physical line (bytes; characters for UTF-16/32) when one is over MAX_CELL,
    # else at most MAX_CELL (such lines are not measured one by one)
    max_line: int = 0
    _doc: list | None = field(default=None, repr=False)  # JSON: the parsed rows, parsed once

    def rows(self, skip: int = 0, at: tuple[int, int] | None = None) -> Iterator[RawRow]:
        """The rows in order; with `skip`, from the row whose seq is `skip` (a resume whose
        journal already holds every row before it: CSV steps over them without building them).
        `at` = (seq, line): CSV only, row `seq` begins at physical line `line` of this content
        (the journal says so): the reader starts there, the lines before it not even parsed.
        The caller checks that the first row it gets is that row (run/send.py, resume_rows)."""
        if self.fmt == "csv":
            return _csv_rows(self, skip, at)
        reader = {"json": _json_rows, "jsonl": _jsonl_rows, "lines": _line_rows}[self.fmt]
        rows = reader(self)
        return (r for r in rows if r.seq >= skip) if skip else rows

    def first_ref(self) -> str | None:
        """The sms_ref of the first row: which working set a failures file was written from."""
        rows = self.rows()
        try:
            first = next(rows, None)
        finally:
            rows.close()
        return first.ref if first is not None else None

    def cleanup(self) -> None:
        if self.is_stdin or self.spooled:
            self.path.unlink(missing_ok=True)


def open_source(name: str, fmt: str | None = None, *, encoding: str | None = None,
                delimiter: str | None = None) -> Source:
    """Open an input: `fmt` one of FORMATS (None: from the extension, else from the content);
    `encoding` a Python codec name (None: UTF-8, or UTF-16/32 by BOM); `delimiter` for CSV
    (None: sniffed from the header line: `,` `;` or tab; names such as "tab" are accepted)."""
    display = "<stdin>" if name == "-" else display_name(name)
    if not name:
        raise InputError("''", "no input named: give a file, or - for stdin")
    if fmt == "tsv":
        fmt, delimiter = "csv", delimiter or "\t"
    if fmt is not None and fmt not in FORMATS:
        raise InputError(display, f"unknown format {printable(str(fmt))!r} (choose {', '.join(FORMATS)}, tsv)")
    delimiter = _check_delimiter(delimiter, display)
    encoding = _check_encoding(encoding, display)
    is_stdin = name == "-"
    spool: Path | None = None
    ext_fmt = None if is_stdin else EXTENSIONS.get(Path(name).suffix.lower())
    known = fmt or ext_fmt
    bound = None if known is None else known != "json"
    try:
        if is_stdin:
            if sys.stdin is None:  # started with stdin closed (`0<&-`)
                raise InputError(display, "stdin is closed: pipe the rows in, or name a file")
            stream = getattr(sys.stdin, "buffer", None)
            if stream is None:  # a text-only stdin (an embedding application's StringIO)
                try:
                    stream = io.BytesIO(sys.stdin.read().encode("utf-8", "surrogateescape"))
                except (OSError, ValueError, UnicodeError) as exc:
                    raise InputError(display, f"cannot read stdin: {exc}") from None
            spool, scan = _spool(stream, display, encoding, bound)
            path = spool
        else:
            path = Path(name)
            try:
                st = os.stat(path)
            except FileNotFoundError:
                raise InputError(display, "no such file") from None
            except OSError as exc:
                raise InputError(display, f"cannot read: {exc.strerror or exc}") from None
            except ValueError:  # a NUL character in the name
                raise InputError(display, "not a valid file name") from None
            if stat.S_ISDIR(st.st_mode):
                raise InputError(display, "is a directory, not an input file")
            if stat.S_ISREG(st.st_mode):
                scan = _scan_file(path, display, encoding, bound)
            else:  # a FIFO, /dev/stdin, <(...): it can be read only once, so read it into a spool
                try:
                    with open(path, "rb") as stream:
                        spool, scan = _spool(stream, display, encoding, bound)
                except OSError as exc:
                    raise InputError(display, f"cannot read: {exc.strerror or exc}") from None
                path = spool
        fmt = known or _sniff(path, display, is_stdin, scan.encoding)
        tsv = not is_stdin and Path(name).suffix.lower() == ".tsv"
        if fmt == "lines" and ext_fmt == "lines" and _is_table(_first_line(path, scan.encoding)):
            # a .txt that is a table (Excel's "Unicode Text" is tab-separated UTF-16): read it as one
            fmt = known = "csv"
            tsv = True
        if fmt != "json" and scan.long_line:
            raise InputError(display, f"a line longer than {MAX_LINE >> 20} MiB with no line "
                             "break: not a row file", scan.long_line)
        source = Source(path, fmt, display, scan.digest, scan.lines, is_stdin, encoding=scan.encoding,
                        spooled=spool is not None, max_line=scan.longest)
        if fmt == "csv":
            source.header, source.delimiter = _csv_header(source, delimiter, tsv)
        elif fmt == "json":
            _json_document(source)  # a syntax error is found now, before anything is sent
    except BaseException:
        if spool is not None:
            spool.unlink(missing_ok=True)
        raise
    return source


def display_name(name: str) -> str:
    """A file name as it can be printed: undecodable bytes as \\xNN, control characters escaped."""
    try:
        shown = os.fsencode(name).decode("utf-8", "backslashreplace")
    except (UnicodeError, TypeError):
        shown = str(name)
    return printable(shown)


def _check_delimiter(delimiter: str | None, display: str) -> str | None:
    if delimiter is None:
        return None
    d = _DELIMITER_NAMES.get(delimiter.lower(), delimiter)
    if len(d) != 1 or d in "\"'\r\n" or d.isalnum():
        raise InputError(display, f"the delimiter must be one character such as , ; or tab "
                         f"(got {printable(delimiter)!r})")
    return d


def _check_encoding(encoding: str | None, display: str) -> str | None:
    if encoding is None:
        return None
    try:
        info = codecs.lookup(encoding)
    except (LookupError, ValueError, TypeError):
        raise InputError(display, f"unknown encoding {printable(str(encoding))!r} "
                         "(for example utf-8, utf-16, cp1252, latin-1)") from None
    if not getattr(info, "_is_text_encoding", True):
        raise InputError(display, f"{printable(encoding)!r} is not a text encoding")
    return info.name


# --- one pass over the bytes: digest, lines, encoding check, line lengths -----------------
@dataclass
class _Scan:
    digest: str
    lines: int
    encoding: str
    longest: int  # the longest line when one is longer than MAX_CELL; else 0 or another line's length
    long_line: int | None  # the first line longer than MAX_LINE


def _detect_encoding(head: bytes, given: str | None) -> str:
    """The codec to read with: the given one (switched to its BOM-reading variant when the file
    starts with that BOM), else by BOM, else UTF-8."""
    has8 = head.startswith(codecs.BOM_UTF8)
    has32 = head.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE))
    has16 = not has32 and head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
    if given is None:
        return "utf-8-sig" if has8 else "utf-32" if has32 else "utf-16" if has16 else "utf-8"
    if given in ("utf-8", "utf-8-sig"):
        return "utf-8-sig" if has8 else "utf-8"
    if given.startswith("utf-16") and has16:
        return "utf-16"
    if given.startswith("utf-32") and has32:
        return "utf-32"
    return given


@lru_cache(maxsize=32)
def _ascii_compatible(encoding: str) -> bool:
    """Line breaks and ASCII are the same bytes as in ASCII: lines can be counted in bytes."""
    if encoding == "utf-8-sig":
        return True
    probe = "\r\n,;\t\"'[]{}:#+-.()0123456789 abcxyzABCXYZ"
    try:
        return probe.encode(encoding) == probe.encode("ascii")
    except (UnicodeError, LookupError):
        return False


def _encoding_label(encoding: str) -> str:
    return "UTF-8" if encoding in ("utf-8", "utf-8-sig") else encoding


def _scan_file(path: Path, display: str, encoding: str | None, bound: bool | None) -> _Scan:
    try:
        with open(path, "rb") as fh:
            return _scan(fh, display, encoding, bound)
    except OSError as exc:
        raise InputError(display, f"cannot read: {exc.strerror or exc}") from None


def _spool(stream: BinaryIO, display: str, encoding: str | None, bound: bool | None) -> tuple[Path, _Scan]:
    """Copy a stream that can be read only once to a temporary file, scanning it on the way."""
    try:
        fd, tmp = tempfile.mkstemp(prefix="sms-cli-stdin-", suffix=".spool")
    except OSError as exc:
        raise InputError(display, f"cannot spool the input to a temporary file: {exc.strerror or exc}") from None
    path = Path(tmp)
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                scan = _scan(stream, display, encoding, bound, out)
            except OSError as exc:
                raise InputError(display, f"cannot read or spool the input: {exc.strerror or exc}") from None
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path, scan


def _scan(fh: BinaryIO, display: str, given: str | None, bound: bool | None,
          out: BinaryIO | None = None) -> _Scan:
    """One pass: content hash, line count, the longest line, and a decoding check that names
    the bad line. `bound`: stop at the first line over MAX_LINE (True), only note it (False),
    or decide from the content (None: not when it starts like JSON, which may be one line)."""
    digest = hashlib.sha256()
    chunk = fh.read(_CHUNK)
    encoding = _detect_encoding(chunk[:4], given)
    if codecs.lookup(encoding).name in ("utf-16", "utf-32"):  # BOM-reading codecs: a file with none fails
        bom = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)
        if chunk and not chunk.startswith(bom):
            width = encoding[-2:]
            raise InputError(display, f"--encoding {printable(str(given))} needs a byte-order mark and the file "
                             f"has none: give the byte order, --encoding utf-{width}-le or utf-{width}-be")
    compat = _ascii_compatible(encoding)
    if bound is None:
        start = codecs.decode(chunk[:4096], encoding, "replace").lstrip("\ufeff \t\r\n")
        bound = start[:1] not in ("[", "{")
    decoder = codecs.getincrementaldecoder(encoding)()
    nl, cr = (b"\n", b"\r") if compat else ("\n", "\r")
    lines = cur = longest = 0
    long_line = None
    prev_cr = False
    while chunk:
        digest.update(chunk)
        if out is not None:
            out.write(chunk)
        try:
            text = decoder.decode(chunk)
        except UnicodeDecodeError as exc:
            if compat:
                bad = lines + _count_lines(chunk[:max(0, exc.start)], b"\n", b"\r") + 1
            else:
                bad = lines + 1
            byte = chunk[exc.start:exc.start + 1].hex() if 0 <= exc.start < len(chunk) else ""
            what = f"bad byte 0x{byte}" if byte else "bad byte"
            hint = ("; if the file was saved by Excel, try --encoding cp1252" if given is None
                    else "; try another --encoding")
            raise InputError(display, f"not {_encoding_label(encoding)} text ({what}){hint}", bad) from None
        data = chunk if compat else text
        if data:
            if prev_cr and data[:1] == nl:
                lines -= 1  # the \n of a \r\n split between two chunks: one line break
            prev_cr = data[-1:] == cr
            before = lines
            if cr in data:
                lines += _count_lines(data, nl, cr)
                parts = data.replace(cr, nl).split(nl)
            else:
                lines += data.count(nl)
                # the usual chunk has no line near the cell limit, and that is all the reader
                # needs to know: splitting every chunk to measure its lines was half the scan
                parts = data.split(nl) if _line_over(data, nl, cur, MAX_CELL) else None
            if parts is None:
                last = data.rfind(nl)
                cur = cur + len(data) if last < 0 else len(data) - last - 1
            else:
                first = cur + len(parts[0])
                if len(parts) == 1:
                    cur = line_max = first
                else:
                    line_max = max(first, max(map(len, parts[1:])))
                    cur = len(parts[-1])
                if line_max > longest:
                    longest = line_max
                    if longest > MAX_LINE and long_line is None:
                        at = 0 if first > MAX_LINE else next(i for i, p in enumerate(parts) if i and len(p) > MAX_LINE)
                        long_line = before + at + 1
                        if bound:
                            raise InputError(display, f"a line longer than {MAX_LINE >> 20} MiB with no "
                                             "line break: not a row file", long_line)
        chunk = fh.read(_CHUNK)
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise InputError(display, f"not {_encoding_label(encoding)} text (truncated character at the end)",
                         lines + 1) from None
    if cur:
        lines += 1  # a last line with no line break
    return _Scan(digest.hexdigest(), lines, encoding, longest, long_line)


def _line_over(data, nl, carry: int, limit: int) -> bool:
    """Whether a line of `data` (its first one continuing `carry` characters of the chunk before,
    its last one perhaps going on in the next) is longer than `limit`, without splitting it:
    from the start of a line, a window of limit + 1 characters with no line break in it holds
    such a line; otherwise the next window starts after its last line break."""
    n = len(data)
    pos = data.find(nl)
    if pos < 0:
        return carry + n > limit
    if carry + pos > limit:
        return True
    pos += 1
    while n - pos > limit:
        last = data.rfind(nl, pos, pos + limit + 1)
        if last < 0:
            return True
        pos = last + 1
    return False


def _count_lines(data, nl, cr) -> int:
    """Line breaks as a text file counts them: \\n, \\r and \\r\\n."""
    return data.count(nl) + data.count(cr) - data.count(cr + nl)


def _first_line(path: Path, encoding: str, limit: int = MAX_LINE) -> str:
    with open(path, encoding=encoding, errors="replace") as fh:
        return fh.readline(limit).lstrip("\ufeff")


def _sniff(path: Path, display: str, is_stdin: bool, encoding: str) -> str:
    with open(path, encoding=encoding, errors="replace") as fh:
        head = fh.read(64 * 1024).lstrip("\ufeff")
    text = head.lstrip()
    if not text:
        raise InputError(display, "empty input")
    if text[0] == "[":
        return "json"
    lines = re.split(r"\r\n|\r|\n", text, maxsplit=2)
    if text[0] == "{":
        first = lines[0] if len(lines) > 1 else _first_line(path, encoding).strip()
        try:
            obj = json.loads(first)
        except (ValueError, RecursionError):
            return "json"  # a multi-line object
        if isinstance(obj, dict) and ("TaskContent" in obj or "FailContent" in obj):
            return "json"
        return "jsonl"
    first = lines[0].strip()
    if first[0] in "+(0123456789" and all(c in "+()0123456789 -." for c in first):
        return "lines"
    if _is_sep_line(first) and len(lines) > 1:
        first = lines[1]
    if any(_phone_column(first, d) for d in DELIMITERS):
        return "csv"
    where = "stdin" if is_stdin else "this file's extension"
    raise InputError(display, f"cannot tell the format of {where}; use --format {'|'.join(FORMATS)}")


# --- CSV ---------------------------------------------------------------------------------
def _open_text(source: Source):
    return open(source.path, encoding=source.encoding, newline="")


def _is_sep_line(line: str) -> bool:
    """Excel's `sep=;` first line, which names the delimiter of the lines after it."""
    text = line.strip()
    return len(text) == 5 and text[:4].lower() == "sep="


def _cells(line: str, delimiter: str) -> list[str]:
    try:
        return next(csv.reader([line], delimiter=delimiter), [])
    except csv.Error:
        return [line]


def _is_table(line: str) -> bool:
    """A header line of columns, one of them a phone column (not a list of numbers)."""
    return any(d in line and _phone_column(line, d) for d in DELIMITERS)


def _phone_column(line: str, delimiter: str) -> bool:
    return any(canonical(c) == "phone" for c in _cells(line, delimiter))


def _choose_delimiter(line: str, tsv: bool) -> str | None:
    """The delimiter that gives the header a phone column; with several (a one-column header),
    the one the line holds most of."""
    order = ("\t", ",", ";") if tsv else DELIMITERS
    fits = [d for d in order if _phone_column(line, d)]
    if not fits:
        return None
    return max(fits, key=lambda d: line.count(d))  # max() keeps the first of equals


def _csv_header(source: Source, delimiter: str | None, tsv: bool = False) -> tuple[list[str], str]:
    """The header's columns (meta columns removed) and the delimiter; refuses a header without a
    phone column or with one field twice."""
    try:
        with _open_text(source) as fh:
            first = fh.readline()
            line_no = 1
            if _is_sep_line(first.lstrip("\ufeff")):
                delimiter = delimiter or first.lstrip("\ufeff").strip()[4]
                first, line_no = fh.readline(), 2
            if not first:
                raise InputError(source.display, "empty CSV: a header row is required", line_no)
            if not first.strip("\ufeff \t\r\n"):
                raise InputError(source.display, "the header row is blank: the first line must name the columns",
                                 line_no)
            first = first.lstrip("\ufeff")
            if delimiter is None:
                delimiter = _choose_delimiter(first, tsv)
                if delimiter is None:
                    raise InputError(source.display, "no phone column in the header (phone, Phone or PhoneNumber; "
                                     "columns separated by , ; or tab, or use --delimiter)", line_no)
            try:
                header = next(csv.reader(chain([first], fh), delimiter=delimiter, strict=True))
            except csv.Error as exc:
                raise InputError(source.display, f"not CSV: {exc}", line_no) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(source.display, f"cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    names = [h.strip() for h in header]
    if not any(canonical(n) == "phone" for n in names):
        raise InputError(source.display, "no phone column in the header (phone, Phone or PhoneNumber)", line_no)
    _check_header(names, source.display, line_no)
    return [n for n in names if n.lower() not in META], delimiter


def _check_header(names: list[str], display: str, line_no: int) -> None:
    """A column twice, or two names of one field (phone and PhoneNumber): which one would be
    used is a guess, so the file is refused."""
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if not name or name.lower() in META:
            continue  # unnamed columns (a spreadsheet's trailing empty ones) are not read
        key = canonical(name) or name.lower()
        if key in seen:
            first = names[seen[key]]
            shown = _shown(first) if first == name else f"{_shown(first)} and {_shown(name)}"
            what = f"the column {shown} appears" if first == name else f"the columns {shown} are"
            raise InputError(display, f"{what} twice in the header (columns {seen[key] + 1} and "
                             f"{i + 1}: both are {key}); keep one", line_no)
        seen[key] = i


def _shown(name: str) -> str:
    text = printable(name)
    return repr(text if len(text) <= 40 else text[:40] + "...")


class _Overlong(Exception):
    """A CSV row runs over more lines or characters than a row can hold."""


class _Unterminated(Exception):
    """The input ended inside a quoted CSV cell."""


def _stray_quote(lines: list[str], delimiter: str) -> bool:
    """A row of several physical lines with a `"` inside a cell that is not quoted: what is left
    when a quote never closed swallowed the next row and that row's own quoted cell closed it
    (`"never closed` then `a<TAB>"b"`). strict csv takes it as one row; RFC 4180 forbids a quote
    in an unquoted cell, so it is read as the unclosed quote it is."""
    state = 0  # 0 cell start, 1 unquoted, 2 quoted, 3 a quote inside quoted
    for ch in "".join(lines):
        if state == 2:
            if ch == '"':
                state = 3
        elif ch == delimiter or ch in "\r\n":
            state = 0
        elif state == 3:
            if ch != '"':
                return False  # text after a closing quote: strict csv reports it itself
            state = 2
        elif ch == '"':
            if state == 1:
                return True
            state = 2
        else:
            state = 1
    return False


def _csv_rows(source: Source, skip: int = 0, at: tuple[int, int] | None = None) -> Iterator[RawRow]:
    try:
        with _open_text(source) as fh:
            yield from _csv_records(source, fh, skip, at)
    except (OSError, UnicodeDecodeError) as exc:  # opening failed: unreadable since it was scanned
        raise InputError(source.display, f"cannot read: {getattr(exc, 'strerror', None) or exc}") from None


def _csv_records(source: Source, fh, skip: int = 0, at: tuple[int, int] | None = None) -> Iterator[RawRow]:
    delimiter = source.delimiter or ","
    buf: list[str] = []  # the physical lines of the row being parsed
    held: list[str] = []  # a line read but not given to the csv reader: the row was too long

    def feed(lines):
        for line in lines:
            if buf and (len(buf) >= MAX_RECORD_LINES or sum(map(len, buf)) + len(line) > MAX_RECORD_CHARS):
                held.append(line)
                raise _Overlong
            buf.append(line)
            yield line
        if buf:  # the lines ran out in the middle of a row: a quote was never closed
            raise _Unterminated

    src = iter(fh)
    base = 0  # physical lines before the current csv reader's first line
    reader = None
    try:
        first = next(src, "")
        if _is_sep_line(first.lstrip("\ufeff")):
            base = 1
        else:
            src = chain([first.lstrip("\ufeff")], src)
        # strict: text after a closing quote is an error, which is how a quote that was never
        # closed shows when it swallows the rows after it (their own quotes close it early)
        reader = csv.reader(feed(src), delimiter=delimiter, strict=True)
        try:
            names = [h.strip() for h in next(reader)]
        except (StopIteration, csv.Error, _Overlong, _Unterminated):
            raise InputError(source.display, "cannot read the CSV header", base + 1) from None
        buf.clear()
        keep = [i for i, n in enumerate(names) if n.lower() not in META]
        retry_col = next((i for i, n in enumerate(names) if n.lower() == "retryable"), None)
        ref_col = next((i for i, n in enumerate(names) if n.lower() == "sms_ref"), None)
        escaped = len(keep) < len(names)  # a failures file: its cells were escaped for spreadsheets
        kept_names = [names[i] for i in keep]
        width, seq = len(names), 0
        if at is not None and at[1] - 1 > base + reader.line_num:
            # row at[0] begins at line at[1]: a record boundary, where a reader starts afresh as
            # it does after a bad row; the lines before it are only counted (C speed)
            seq, lines = at[0], at[1] - 1 - base - reader.line_num
            deque(islice(src, lines), maxlen=0)
            base = at[1] - 1
            reader = csv.reader(feed(src), delimiter=delimiter, strict=True)
        # the usual case: no meta columns to leave out, no line long enough to hold an overlong
        # cell, and (with two or more columns) a one-line row of `width` cells cannot be blank
        fast = len(keep) == width and width > 1 and source.max_line <= MAX_CELL
        while True:
            try:
                for values in reader:
                    n = len(buf)
                    if n > 1 and _stray_quote(buf, delimiter):
                        raise _Unterminated  # a row's own quote closed a quote never closed above it
                    count = len(values)
                    if n == 1 and count == width and fast:
                        buf.clear()
                        if seq >= skip:
                            yield RawRow(seq, base + reader.line_num, dict(zip(kept_names, values)))
                        seq += 1
                        continue
                    line = base + reader.line_num - n + 1
                    buf.clear()
                    if not values or (count == 1 and not values[0].strip()):
                        continue  # blank line
                    error = None
                    if count > width:
                        error = f"{count} cells but the header has {width}"
                    elif count < width:
                        values += [""] * (width - count)
                    if any(len(v) > MAX_CELL for v in values):
                        error = f"a cell is longer than {MAX_CELL >> 10} KiB (messages hold about 500 characters)"
                    if seq >= skip:
                        yield _csv_row(seq, line, values, error, keep, kept_names, escaped, retry_col, ref_col)
                    seq += 1
                return
            except (csv.Error, _Overlong, _Unterminated) as exc:
                line = base + reader.line_num - len(buf) + 1  # the bad row's first line
                if isinstance(exc, _Unterminated):
                    error = 'a quoted cell is never closed (a " with no closing ")'
                elif isinstance(exc, _Overlong):
                    error = (f"a row runs over more than {MAX_RECORD_LINES} lines or {MAX_RECORD_CHARS >> 20} MiB "
                             '(probably a " with no closing ")')
                elif "expected after" in str(exc):
                    error = ('a quoted cell has text after its closing quote (a quote never closed, or a " '
                             'inside a quoted cell not written as "")')
                else:
                    error = f"not valid CSV: {exc}"
                values = _cells(buf[0].rstrip("\r\n"), delimiter) if buf else []
                values += [""] * (width - len(values))
                if seq >= skip:
                    yield _csv_row(seq, line, values, error, keep, kept_names, escaped, retry_col, ref_col)
                seq += 1
                # read on from the line after the bad row's first line: a stray quote swallows the
                # rows after it, which are rows of their own
                pending = buf[1:] + held
                buf.clear()
                held.clear()
                base = line
                reader = csv.reader(feed(chain(pending, src)), delimiter=delimiter, strict=True)
    except (OSError, UnicodeDecodeError) as exc:  # unreadable (or changed) mid-way
        at = base + (reader.line_num if reader is not None else 0) + 1
        raise InputError(source.display, f"cannot read: {getattr(exc, 'strerror', None) or exc}", at) from None


def _csv_row(seq, line, values, error, keep, kept_names, escaped, retry_col, ref_col) -> RawRow:
    if escaped:
        values = [unescape_cell(v) for v in values]
    record = dict(zip(kept_names, (values[i] if i < len(values) else "" for i in keep)))
    retry = values[retry_col].strip().lower() if retry_col is not None and retry_col < len(values) else None
    ref = values[ref_col].strip() if ref_col is not None and ref_col < len(values) else None
    return RawRow(seq, line, record, retry or None, error, ref or None)


# --- JSON / JSON Lines -------------------------------------------------------------------
_META = frozenset(META)


def _strip_meta(obj: dict[str, Any]) -> tuple[dict[str, Any], str | None, str | None]:
    if _META.isdisjoint(obj):  # the usual row: no failures-file columns (a C-level check)
        return obj, None, None
    retry, ref = obj.get("retryable"), obj.get("sms_ref")
    obj = {k: v for k, v in obj.items() if k not in _META}
    return (obj, str(retry).strip().lower() if retry not in (None, "") else None,
            str(ref).strip() if ref not in (None, "") else None)


def _decoder(dups: list) -> json.JSONDecoder:
    """Numbers keep their spelling (parse_int/parse_float=str: "0123" and 1.50 stay as written);
    NaN and Infinity stay floats, which validation refuses row by row; a key given twice in an
    object is noted in `dups` (json keeps the last one silently)."""

    def pairs(items: list) -> dict:
        obj = dict(items)
        if len(obj) != len(items):
            seen: set = set()
            for key, _ in items:
                if key in seen:
                    dups.append(key)
                    break
                seen.add(key)
        return obj

    return json.JSONDecoder(parse_int=JsonNumber, parse_float=JsonNumber, object_pairs_hook=pairs)


class JsonNumber(str):
    """A JSON number as it was written ("1.50", "1e3", "007" stays text for the message): a
    str everywhere, and written back unquoted by the failures file (`json_text`)."""

    __slots__ = ()


def json_text(value) -> str:
    """JSON for a row read from JSON: numbers exactly as the input wrote them."""
    if isinstance(value, JsonNumber):
        return str.__str__(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k, ensure_ascii=False)}: {json_text(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(json_text(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


def _dup_reason(key: str) -> str:
    return f"the key {_shown(key)} appears twice in one object"


_CLASHES: dict[tuple, str | None] = {}  # key sets seen in this input: rows repeat a few


def _clash(keys) -> str | None:
    seen: dict[str, str] = {}
    for key in keys:
        name = canonical(key) if isinstance(key, str) else None
        if name is None:
            continue
        if name in seen:
            return f"the keys {_shown(seen[name])} and {_shown(key)} are both {name}; keep one"
        seen[name] = key
    return None


def _alias_clash(record: dict) -> str | None:
    """Two keys of a row that name one field (phone and PhoneNumber): which one to use is a guess."""
    keys = tuple(record)
    try:
        return _CLASHES[keys]
    except KeyError:
        pass
    found = _clash(keys)
    # a hostile row's long or many keys must not fill the memory
    if len(_CLASHES) < 1024 and len(keys) <= 32 and all(not isinstance(k, str) or len(k) <= 64 for k in keys):
        _CLASHES[keys] = found
    return found


def _flatten_task_content(items: list, display: str, lines: list[int] | None = None) -> list[tuple[int, Any]]:
    """uSpeedo TaskContent / FailContent items -> (line, record) per target."""
    out = []
    for n, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("Target"), list):
            raise InputError(display, "TaskContent/FailContent items need a Target array")
        shared = {k: item[k] for k in ("TemplateId", "SenderId") if item.get(k) not in (None, "")}
        for target in item["Target"]:
            if isinstance(target, dict):
                target = {k: v for k, v in target.items() if k != "FailureDetails"}
            line = lines[n] if lines is not None else len(out) + 1
            out.append((line, {**shared, **target} if isinstance(target, dict) else target))
    return out


_WS = re.compile(r"[ \t\n\r]*")


def _json_document(source: Source) -> list[tuple[int, Any, str | None]]:
    """Parse a JSON input into (line, element, error) triples, tracking each element's line.
    Parsed once; rows() reads the result."""
    if source._doc is not None:
        return source._doc
    display = source.display
    try:
        text = source.path.read_text(encoding=source.encoding)
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(display, f"cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    if text[:1] == "\ufeff":
        text = text[1:]
    dups: list = []
    decoder = _decoder(dups)
    start = _WS.match(text).end()
    if text[start:start + 1] == "[":
        items = _json_array(text, start, decoder, dups, display)
        if items and all(isinstance(d, dict) and "Target" in d for _, d, _ in items):  # a bare FailContent array
            doc = [(line, r, None) for line, r in
                   _flatten_task_content([d for _, d, _ in items], display, [ln for ln, _, _ in items])]
        else:
            doc = items
    else:
        try:
            obj = decoder.decode(text)
        except json.JSONDecodeError as exc:
            raise InputError(display, f"not valid JSON: {exc.msg}", exc.lineno) from None
        except RecursionError:
            raise InputError(display, "not valid JSON: nested too deeply", 1) from None
        if not isinstance(obj, dict):
            raise InputError(display, "JSON input must be an array of rows", 1)
        for key in ("TaskContent", "FailContent"):
            if isinstance(obj.get(key), list):
                doc = [(line, r, None) for line, r in _flatten_task_content(obj[key], display)]
                break
        else:
            raise InputError(display, "a JSON object input needs TaskContent or FailContent", 1)
    source._doc = doc
    return doc


def _json_array(text: str, start: int, decoder: json.JSONDecoder, dups: list,
                display: str) -> list[tuple[int, Any, str | None]]:
    """Walk a top-level array element by element: each element's line, and a key given twice
    marks its element, not the file. Errors name the element's index, [0] for the first, beside
    its line (a one-line array has every element on line 1)."""
    out: list[tuple[int, Any, str | None]] = []
    line = 1 + text.count("\n", 0, start)
    idx = _WS.match(text, start + 1).end()
    line += text.count("\n", start, idx)
    if text[idx:idx + 1] == "]":
        idx += 1
    else:
        while True:
            dups.clear()
            item = f"item [{len(out)}]"
            try:
                obj, end = decoder.raw_decode(text, idx)
            except json.JSONDecodeError as exc:
                raise InputError(display, f"not valid JSON in {item}: {exc.msg}", exc.lineno) from None
            except RecursionError:
                raise InputError(display, f"not valid JSON in {item}: nested too deeply", line) from None
            if not isinstance(obj, dict):
                error = f"{item}: a row must be a JSON object"
            else:
                error = f"{item}: {_dup_reason(dups[0])}" if dups else None
            out.append((line, obj, error))
            line += text.count("\n", idx, end)
            idx = _WS.match(text, end).end()
            line += text.count("\n", end, idx)
            sep = text[idx:idx + 1]
            if sep == "]":
                idx += 1
                break
            if sep != ",":
                raise InputError(display, f"not valid JSON after {item}: expecting ',' or ']'", line)
            start = idx + 1
            idx = _WS.match(text, start).end()
            line += text.count("\n", start, idx)
    rest = _WS.match(text, idx).end()
    if rest != len(text):
        raise InputError(display, "not valid JSON: extra data after the array", 1 + text.count("\n", 0, rest))
    return out


def _json_rows(source: Source) -> Iterator[RawRow]:
    for seq, (line, obj, error) in enumerate(_json_document(source)):
        if not isinstance(obj, dict):
            yield RawRow(seq, line, {"value": obj}, None, error or "a row must be a JSON object")
            continue
        record, retry, ref = _strip_meta(obj)
        yield RawRow(seq, line, record, retry, error or _alias_clash(record), ref)


def _jsonl_rows(source: Source) -> Iterator[RawRow]:
    dups: list = []
    decoder = _decoder(dups)
    seq = line_no = 0
    try:
        with open(source.path, encoding=source.encoding) as fh:
            for line_no, text in enumerate(fh, 1):
                if line_no == 1 and text[:1] == "\ufeff":
                    text = text[1:]
                if not text.strip():
                    continue
                try:
                    obj = decoder.decode(text)
                except (ValueError, RecursionError) as exc:
                    why = exc.msg if isinstance(exc, json.JSONDecodeError) else (
                        "nested too deeply" if isinstance(exc, RecursionError) else str(exc))
                    yield RawRow(seq, line_no, {"raw": text.rstrip("\r\n")}, None, f"not valid JSON: {why}")
                else:
                    if isinstance(obj, dict):
                        record, retry, ref = _strip_meta(obj)
                        error = _dup_reason(dups[0]) if dups else _alias_clash(record)
                        yield RawRow(seq, line_no, record, retry, error, ref)
                    else:
                        yield RawRow(seq, line_no, {"raw": text.rstrip("\r\n")}, None, "a row must be a JSON object")
                if dups:
                    dups.clear()
                seq += 1
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(source.display, f"cannot read: {getattr(exc, 'strerror', None) or exc}",
                         line_no + 1) from None


def _line_rows(source: Source) -> Iterator[RawRow]:
    seq = line_no = 0
    try:
        with open(source.path, encoding=source.encoding) as fh:
            for line_no, text in enumerate(fh, 1):
                phone = text.strip().lstrip("\ufeff") if line_no == 1 else text.strip()
                if phone and not phone.startswith("#"):
                    yield RawRow(seq, line_no, {"phone": phone})
                    seq += 1
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(source.display, f"cannot read: {getattr(exc, 'strerror', None) or exc}",
                         line_no + 1) from None
