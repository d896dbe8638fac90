"""The failures file: every row not accepted, in a shape `sms-cli send` reads back.

CSV input gives CSV (the input's columns, then error_code, error_message, line, retryable,
sms_ref); anything else gives JSON Lines. `sms_ref` ties each row to its row in the working
set's ledger, so a resend never sends what the original input already had accepted. CSV cells
a spreadsheet would execute are escaped (rows.escape_cell) and read back unescaped; the file
keeps the input's encoding and delimiter, and JSON numbers as the input wrote them. Values that
came from command-line defaults are written into the row so a resend needs no flags. Rows are
written as results come, to a temporary file (0600: it holds phone numbers) in the destination
folder that is renamed into place at the end: a crash never leaves a half-written file that
reads as valid.
"""
from __future__ import annotations

import csv
import json
import os
import shutil
import threading
from pathlib import Path

from ..core.errors import SmsCliError
from ..input.rows import META, canonical, escape_cell, json_text
from ..validate.validator import Defaults
from . import paths

MIN_FREE_BYTES = 1 << 20


class FailuresWriter:
    def __init__(self, path: Path, fmt: str, header: list[str] | None, defaults: Defaults,
                 delimiter: str = ",", encoding: str = "utf-8"):
        """`encoding`, `delimiter`: the input's, so the file reads back as the input did (a cp1252
        `;` file gives a cp1252 `;` failures file); JSON Lines are always UTF-8."""
        self.path = Path(path)
        self.csv = fmt == "csv" and header is not None
        self.defaults = defaults
        self.count = 0
        self._lock = threading.Lock()
        self.tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        self._keep = False  # the rename failed: the temporary file holds the rows, keep it
        folder = self.path.parent if str(self.path.parent) else Path(".")
        if not folder.is_dir():
            why = "is not a folder" if folder.exists() else "does not exist"
            raise SmsCliError(f"{self.path}: {folder} {why}")
        if self.path.is_dir():
            raise SmsCliError(f"{self.path}: is a directory; --failures needs a file path")
        if self.path.exists() and not self.path.is_file():
            raise SmsCliError(f"{self.path}: not a regular file; --failures needs a file path")
        if self.path.exists() and not os.access(self.path, os.W_OK):
            raise SmsCliError(f"{self.path}: cannot replace the failures file here (not writable)")
        remove_stale_temps(self.path)
        try:
            # a row refused for a lone surrogate (from a JSON \ud83d escape) still carries it: JSON
            # Lines write it back as that same escape, so the row reads back exactly as it was
            # 0600 from its creation: it holds phone numbers (like the journal)
            fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            text_encoding = encoding if fmt == "csv" and header is not None else "utf-8"
            self.fh = open(fd, "w", encoding=text_encoding, errors="backslashreplace", newline="")
        except OSError as exc:
            raise SmsCliError(f"{self.path}: cannot write the failures file here ({exc.strerror})") from None
        if shutil.disk_usage(folder).free < MIN_FREE_BYTES:
            self.abort()
            raise SmsCliError(f"{self.path}: disk full (less than 1 MiB free in {folder})")
        if self.csv:
            present = {canonical(h) for h in header}
            self.added = [name for name, value in (("template_id", defaults.template_id),
                                                   ("params", defaults.params),
                                                   ("sender_id", defaults.sender_id))
                          if value and name not in present
                          and not (name == "params" and any((c or "").startswith("param") for c in present))]
            self.columns = [*header, *self.added]
            self.writer = csv.writer(self.fh, delimiter=delimiter)
            self.writer.writerow([*self.columns, *META])

    def _fill(self, record: dict) -> dict:
        """The row's own fields, with command-line defaults filled in where it has none."""
        present = {canonical(k): k for k, v in record.items() if v not in (None, "")}
        has_params = "params" in present or any(k.startswith("param") for k in present if k)
        out = dict(record)
        d = self.defaults
        for name, value in (("template_id", d.template_id), ("sender_id", d.sender_id)):
            if value and name not in present:
                key = next((k for k in record if canonical(k) == name), name)
                out[key] = value
        if d.params and not has_params:
            key = next((k for k in record if canonical(k) == "params"), "params")
            out[key] = json.dumps(list(d.params), ensure_ascii=False) if self.csv else list(d.params)
        return out

    def write(self, record: dict, line: int, code: str, message: str, retryable: str, ref: str) -> None:
        record = self._fill(record)
        with self._lock:
            try:
                if self.csv:
                    self.writer.writerow([*(escape_cell(_cell(record.get(c))) for c in self.columns),
                                          escape_cell(code), escape_cell(message), line, retryable, ref])
                else:
                    row = {**record, "error_code": code, "error_message": message,
                           "line": line, "retryable": retryable, "sms_ref": ref}
                    self.fh.write(json_text(row) + "\n")  # numbers as the input wrote them
            except OSError as exc:
                raise SmsCliError(f"{self.path}: cannot write ({exc.strerror})") from None
            self.count += 1

    def commit(self) -> tuple[Path | None, bool]:
        """Move the file into place. -> (path or None when nothing failed, stale file removed)."""
        try:
            self.fh.flush()
            os.fsync(self.fh.fileno())
        except OSError as exc:
            self.abort()
            raise SmsCliError(f"{self.path}: cannot write ({exc.strerror})") from None
        self.fh.close()
        if self.count:
            try:
                os.replace(self.tmp, self.path)
            except OSError as exc:
                self._keep = True
                raise SmsCliError(f"{self.path}: cannot move the failures file into place "
                                  f"({exc.strerror}); its rows are in {self.tmp}") from None
            try:  # the rename itself durable: consume() may remove the input these rows came from
                paths.sync_folder(self.path.parent)
            except OSError as exc:
                raise SmsCliError(f"{self.path}: cannot make the failures file durable ({exc.strerror})") from None
            return self.path, False
        self.tmp.unlink(missing_ok=True)
        stale = self.path.is_file()
        if stale:
            try:
                self.path.unlink()
            except OSError as exc:
                raise SmsCliError(f"{self.path}: cannot remove the stale failures file ({exc.strerror})") from None
        return None, stale

    def abort(self) -> None:
        try:
            if not self.fh.closed:
                self.fh.close()
        except OSError:
            pass  # a full disk cannot take the buffered rows; the journal still holds them
        if not self._keep:
            self.tmp.unlink(missing_ok=True)


def consume(input_name: str, failures: Path) -> tuple[str | None, str | None]:
    """After a send of a derived file that writes another failures file (`list.undelivered.csv`
    -> `list.undelivered.failed.csv`) committed it: every row of the input is accepted, in that
    failures file, or in another one, so the input is removed and each row stays in one file.
    The failures file is durable by then (commit synced its folder): a crash between the two
    leaves a row in two files, never in none. -> (the path removed, or why it could not be)."""
    if paths.is_pipe(input_name):
        return None, None
    p = Path(input_name)
    stem = p.name[: -len(p.suffix)] if p.suffix else p.name
    if not stem.endswith(paths.UNDELIVERED) or not p.is_file() or paths.same_file(p, failures):
        return None, None  # the input itself, or a failures file that rewrote itself
    try:
        p.unlink()
    except OSError as exc:
        return None, (f"{input_name} is used up (each row of it is accepted or in a failures file) but could "
                      f"not be removed ({exc.strerror}): remove it")
    return input_name, None


def remove_stale_temps(path: Path) -> None:
    """Temporary files a killed sms-cli left for this failures file (its pid is gone)."""
    prefix = f".{path.name}."
    try:
        names = [p for p in path.parent.iterdir() if p.name.startswith(prefix) and p.name.endswith(".tmp")]
    except OSError:
        return
    for tmp in names:
        pid = tmp.name[len(prefix):-len(".tmp")]
        if not (pid.isascii() and pid.isdigit()) or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
            continue  # still running
        except (ProcessLookupError, OverflowError):  # gone, or no pid at all (a stray name)
            pass
        except OSError:
            continue  # alive but not ours
        try:
            tmp.unlink()
        except OSError:
            pass


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        return json_text(value)
    return str(value)
