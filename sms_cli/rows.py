"""Readers: CSV, JSON, JSON Lines, plain lines of numbers, or stdin -> RawRow values.

Rows are streamed (JSON arrays are the one exception: they are parsed whole, element by
element, so use JSON Lines for very large inputs). A row is never validated here; only a file
that cannot be read at all raises InputError. Field names are matched case-insensitively and
the providers' names are accepted as aliases.
"""
from __future__ import annotations

import codecs
import csv
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from .errors import InputError

FORMATS = ("csv", "json", "jsonl", "lines")
EXTENSIONS = {".csv": "csv", ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl", ".txt": "lines"}
ALIASES = {
    "phone": "phone", "phonenumber": "phone", "mobile": "phone",
    "templateid": "template_id", "templatecode": "template_id", "template": "template_id",
    "params": "params", "templateparams": "params", "templateparamset": "params",
    "templateparam": "params",
    "senderid": "sender_id", "signname": "sender_id",
    "extendcode": "extend_code",
    "userid": "user_id", "sessioncontext": "user_id",
}
# columns a failures file adds; reading ignores them (retryable and sms_ref are kept as row
# metadata: sms_ref ties a resent row to its row in the original input's ledger)
META = ("error_code", "error_message", "line", "retryable", "sms_ref")
_FORMULA = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?[0-9 ().-]*")


def escape_cell(text: str) -> str:
    """A failures-file CSV cell a spreadsheet would not execute: a leading quote before a cell
    that starts like a formula (plain numbers such as +85255311111 are left alone), and before
    a cell that starts with a quote, so `unescape_cell` always gives the original back."""
    if text[:1] == "'" or (text[:1] in _FORMULA and not _PLAIN_NUMBER.fullmatch(text)):
        return "'" + text
    return text


def unescape_cell(text: str) -> str:
    return text[1:] if text[:1] == "'" else text


@lru_cache(maxsize=4096)  # called for every field of every row, but files repeat a few names
def canonical(name: str) -> str | None:
    key = name.strip().lower().replace("_", "").replace("-", "").replace(" ", "")
    if key.startswith("param") and key[5:].isdigit():
        return key  # param1, param2, ... positional CSV columns
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
    """An input ready to read: a file on disk (stdin is spooled to a temporary file first so the
    run can be identified by its content and re-read on resume)."""

    path: Path
    fmt: str
    display: str  # what to call it in messages
    digest: str  # sha256 of the content: the run's identity
    lines: int  # physical lines, an upper bound of rows for the progress bar
    is_stdin: bool = False
    header: list[str] | None = None  # CSV: the columns, meta columns removed

    def rows(self) -> Iterator[RawRow]:
        reader = {"csv": _csv_rows, "json": _json_rows, "jsonl": _jsonl_rows, "lines": _line_rows}[self.fmt]
        return reader(self)

    def cleanup(self) -> None:
        if self.is_stdin:
            self.path.unlink(missing_ok=True)


def open_source(name: str, fmt: str | None = None) -> Source:
    if fmt is not None and fmt not in FORMATS:
        raise InputError(name, f"unknown format {fmt!r} (choose {', '.join(FORMATS)})")
    if name == "-":
        path = _spool_stdin()
        display, is_stdin = "<stdin>", True
    else:
        path, display, is_stdin = Path(name), name, False
        if not path.exists():
            raise InputError(display, "no such file")
        if path.is_dir():
            raise InputError(display, "is a directory, not an input file")
    try:
        digest, lines = _scan(path, display)
        if fmt is None:
            fmt = EXTENSIONS.get(path.suffix.lower()) if not is_stdin else None
            fmt = fmt or _sniff(path, display, is_stdin)
        source = Source(path, fmt, display, digest, lines, is_stdin)
        if fmt == "csv":
            source.header = _csv_header(source)
        elif fmt in ("json",):
            _json_document(source)  # a syntax error is found now, before anything is sent
    except BaseException:
        if is_stdin:
            path.unlink(missing_ok=True)
        raise
    return source


def _spool_stdin() -> Path:
    fd, tmp = tempfile.mkstemp(prefix="sms-cli-stdin-", suffix=".spool")
    with os.fdopen(fd, "wb") as out:
        shutil.copyfileobj(sys.stdin.buffer, out, 1 << 20)
    return Path(tmp)


def _scan(path: Path, display: str) -> tuple[str, int]:
    """One pass: content hash, line count, and a UTF-8 check that names the bad line."""
    digest, decoder, lines = hashlib.sha256(), codecs.getincrementaldecoder("utf-8")(), 0
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError as exc:
                    bad_line = lines + chunk.count(b"\n", 0, max(0, exc.start)) + 1
                    raise InputError(display, "not UTF-8 text (bad byte)", bad_line) from None
                lines += chunk.count(b"\n")
            decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise InputError(display, "not UTF-8 text (truncated character at the end)", lines + 1) from None
    except OSError as exc:
        raise InputError(display, f"cannot read: {exc.strerror}") from None
    return digest.hexdigest(), lines


def _sniff(path: Path, display: str, is_stdin: bool) -> str:
    with open(path, encoding="utf-8-sig") as fh:
        head = fh.read(64 * 1024)
    text = head.lstrip()
    if not text:
        raise InputError(display, "empty input")
    if text[0] == "[":
        return "json"
    if text[0] == "{":
        first = text.splitlines()[0]
        try:
            obj = json.loads(first)
        except ValueError:
            return "json"  # a multi-line object
        if isinstance(obj, dict) and ("TaskContent" in obj or "FailContent" in obj):
            return "json"
        return "jsonl"
    first = text.splitlines()[0].strip()
    if first[0] in "+(0123456789" and all(c in "+()0123456789 -." for c in first):
        return "lines"
    if "," in first and any(canonical(c) == "phone" for c in next(csv.reader([first]))):
        return "csv"
    where = "stdin" if is_stdin else "this file's extension"
    raise InputError(display, f"cannot tell the format of {where}; use --format csv|json|jsonl|lines")


# --- CSV ---------------------------------------------------------------------------------
def _open_text(source: Source):
    return open(source.path, encoding="utf-8-sig", newline="")


def _csv_header(source: Source) -> list[str]:
    with _open_text(source) as fh:
        try:
            header = next(csv.reader(fh))
        except StopIteration:
            raise InputError(source.display, "empty CSV: a header row is required", 1) from None
        except csv.Error as exc:
            raise InputError(source.display, f"not CSV: {exc}", 1) from None
    names = [h.strip() for h in header]
    if not any(canonical(n) == "phone" for n in names):
        raise InputError(source.display, "no phone column in the header (phone, Phone or PhoneNumber)", 1)
    return [n for n in names if n.lower() not in META]


def _csv_rows(source: Source) -> Iterator[RawRow]:
    with _open_text(source) as fh:
        reader = csv.reader(fh)
        names = [h.strip() for h in next(reader)]
        keep = [i for i, n in enumerate(names) if n.lower() not in META]
        retry_col = next((i for i, n in enumerate(names) if n.lower() == "retryable"), None)
        ref_col = next((i for i, n in enumerate(names) if n.lower() == "sms_ref"), None)
        escaped = len(keep) < len(names)  # a failures file: its cells were escaped for spreadsheets
        kept_names = [names[i] for i in keep]
        width, seq, start = len(names), 0, reader.line_num + 1
        # the usual case: no meta columns to leave out, and (with two or more columns) a row of
        # exactly `width` cells cannot be a blank line
        fast = len(keep) == width and width > 1
        try:
            for values in reader:
                line, start = start, reader.line_num + 1
                count = len(values)
                if count == width and fast:
                    yield RawRow(seq, line, dict(zip(kept_names, values)))
                    seq += 1
                    continue
                if not values or (count == 1 and not values[0].strip()):
                    continue  # blank line
                error = None
                if count > width:
                    error = f"{count} cells but the header has {width}"
                elif count < width:
                    values += [""] * (width - count)
                if escaped:
                    values = [unescape_cell(v) for v in values]
                record = dict(zip(kept_names, (values[i] for i in keep)))
                retry = values[retry_col].strip().lower() if retry_col is not None else None
                ref = values[ref_col].strip() if ref_col is not None else None
                yield RawRow(seq, line, record, retry or None, error, ref or None)
                seq += 1
        except csv.Error as exc:
            raise InputError(source.display, f"not valid CSV: {exc}", reader.line_num) from None


# --- JSON / JSON Lines -------------------------------------------------------------------
def _strip_meta(obj: dict[str, Any]) -> tuple[dict[str, Any], str | None, str | None]:
    retry = ref = None
    if any(k in obj for k in META):
        retry, ref = obj.get("retryable"), obj.get("sms_ref")
        obj = {k: v for k, v in obj.items() if k not in META}
    return (obj, str(retry).strip().lower() if retry not in (None, "") else None,
            str(ref).strip() if ref not in (None, "") else None)


def _flatten_task_content(items: list, display: str) -> list[dict[str, Any]]:
    """uSpeedo TaskContent / FailContent items -> one record per target."""
    out = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("Target"), list):
            raise InputError(display, "TaskContent/FailContent items need a Target array")
        shared = {k: item[k] for k in ("TemplateId", "SenderId") if item.get(k) not in (None, "")}
        for target in item["Target"]:
            if isinstance(target, dict):
                target = {k: v for k, v in target.items() if k != "FailureDetails"}
            out.append({**shared, **target} if isinstance(target, dict) else target)
    return out


def _json_document(source: Source) -> list[tuple[int, Any]]:
    """Parse a JSON input into (line, element) pairs, tracking each element's line."""
    text = source.path.read_text(encoding="utf-8-sig")
    decoder = json.JSONDecoder(parse_int=str, parse_float=str)
    try:
        doc = decoder.decode(text)
    except json.JSONDecodeError as exc:
        raise InputError(source.display, f"not valid JSON: {exc.msg}", exc.lineno) from None
    if isinstance(doc, dict):
        for key in ("TaskContent", "FailContent"):
            if isinstance(doc.get(key), list):
                return [(i + 1, r) for i, r in enumerate(_flatten_task_content(doc[key], source.display))]
        raise InputError(source.display, "a JSON object input needs TaskContent or FailContent", 1)
    if not isinstance(doc, list):
        raise InputError(source.display, "JSON input must be an array of rows", 1)
    if doc and all(isinstance(d, dict) and "Target" in d for d in doc):  # a bare FailContent array
        return [(i + 1, r) for i, r in enumerate(_flatten_task_content(doc, source.display))]
    # line of each element: walk the array with raw_decode
    out, idx, line = [], text.index("[") + 1, 1 + text.count("\n", 0, text.index("["))
    ws = " \t\r\n,"
    for _ in doc:
        start = idx
        while text[idx] in ws:
            idx += 1
        line += text.count("\n", start, idx)
        obj, end = decoder.raw_decode(text, idx)
        out.append((line, obj))
        line += text.count("\n", idx, end)
        idx = end
    return out


def _json_rows(source: Source) -> Iterator[RawRow]:
    for seq, (line, obj) in enumerate(_json_document(source)):
        if not isinstance(obj, dict):
            yield RawRow(seq, line, {"value": obj}, None, "a row must be a JSON object")
            continue
        record, retry, ref = _strip_meta(obj)
        yield RawRow(seq, line, record, retry, None, ref)


def _jsonl_rows(source: Source) -> Iterator[RawRow]:
    decoder = json.JSONDecoder(parse_int=str, parse_float=str)
    seq = 0
    with open(source.path, encoding="utf-8-sig") as fh:
        for line_no, text in enumerate(fh, 1):
            if not text.strip():
                continue
            try:
                obj = decoder.decode(text)
            except json.JSONDecodeError as exc:
                yield RawRow(seq, line_no, {"raw": text.rstrip("\n")}, None, f"not valid JSON: {exc.msg}")
            else:
                if isinstance(obj, dict):
                    record, retry, ref = _strip_meta(obj)
                    yield RawRow(seq, line_no, record, retry, None, ref)
                else:
                    yield RawRow(seq, line_no, {"raw": text.rstrip("\n")}, None, "a row must be a JSON object")
            seq += 1


def _line_rows(source: Source) -> Iterator[RawRow]:
    seq = 0
    with open(source.path, encoding="utf-8-sig") as fh:
        for line_no, text in enumerate(fh, 1):
            phone = text.strip()
            if phone and not phone.startswith("#"):
                yield RawRow(seq, line_no, {"phone": phone})
                seq += 1
