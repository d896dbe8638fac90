"""What a person sees while a run goes and when it ends; stdout is kept for --json and plans.

A rich progress bar and a summary table appear only when stderr is a terminal; otherwise the
summary is plain text (and with --quiet, nothing at all on success).
"""
from __future__ import annotations

import json
import os
import sys
import threading
import time

from . import report
from ..run.send import Summary

SCHEMA_VERSION = report.SCHEMA_VERSION


# --- stdout: a reader that goes away, and one JSON object per run ------------------------------
class PipeSafe:
    """A standard stream whose reader may go away (`sms-cli send ... | head -1`). The first
    BrokenPipeError makes every later write a no-op, and points the descriptor at /dev/null so
    the interpreter's own flush at exit has nothing to complain about: the run goes on (a send is
    never stopped half-way by its reader) and ends with its own exit code, quietly, as grep does.
    `written` counts what was handed to the stream (--json writes one object at most)."""

    def __init__(self, stream):
        self._stream = stream
        self.written = 0
        self.reader_gone = False

    def write(self, text):
        if not self.reader_gone:
            try:
                n = self._stream.write(text)
                self.written += len(text)
                return n
            except BrokenPipeError:
                self._gone()
        return len(text)

    def flush(self):
        if not self.reader_gone:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._gone()

    def _gone(self):
        self.reader_gone = True
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
            os.close(devnull)
        except (OSError, ValueError):  # no descriptor (a test's stream): the no-op writes suffice
            pass

    def __getattr__(self, name):  # isatty, encoding, fileno, buffer...
        return getattr(self._stream, name)


def protect_streams() -> None:
    """Called once by the entry point, before any output."""
    if not isinstance(sys.stdout, PipeSafe) and sys.stdout is not None:
        sys.stdout = PipeSafe(sys.stdout)
    if not isinstance(sys.stderr, PipeSafe) and sys.stderr is not None:
        sys.stderr = PipeSafe(sys.stderr)


def json_text(obj) -> str:
    """One JSON document that any stdout can take. A file name that is not valid UTF-8 reaches
    Python as lone surrogates (b'caf\\xe9' -> 'caf\\udce9'), which a strict UTF-8 stdout cannot
    encode: they are written as the JSON escape `\\udce9`, which a reader decodes back to the
    same name (os.fsencode gives the bytes). A stdout that is not UTF-8 gets ASCII escapes."""
    encoding = (getattr(sys.stdout, "encoding", None) or "utf-8").lower().replace("_", "-")
    if encoding not in ("utf-8", "utf8"):
        return json.dumps(obj, ensure_ascii=True)
    return json.dumps(obj, ensure_ascii=False).encode("utf-8", "backslashreplace").decode("utf-8")


def emit(obj) -> None:
    """Print one JSON object on stdout, flushed."""
    sys.stdout.write(json_text(obj) + "\n")
    sys.stdout.flush()


_open_object = None  # while a command streams one object (validate --json): the function closing it


def streaming(closer) -> None:
    """`closer(error_dict)` ends the object being streamed; None when it is complete."""
    global _open_object
    _open_object = closer


def json_error(code: str, message: str, exit_code: int) -> None:
    """The --json answer of a run that ends in an error: `{"error": {...}}`, or the error closing
    the object being streamed; nothing when a complete object is already on stdout."""
    error = {"code": code, "message": message, "exit_code": int(exit_code)}
    if _open_object is not None:
        closer = _open_object
        streaming(None)
        closer(error)
    elif getattr(sys.stdout, "written", 0) == 0:
        emit({"schema_version": SCHEMA_VERSION, "error": error, "exit_code": int(exit_code)})


def stderr_console(force_terminal: bool | None = None):
    from rich.console import Console

    return Console(stderr=True, force_terminal=force_terminal, no_color="NO_COLOR" in os.environ,
                   highlight=False, soft_wrap=True)


def progress_bar(console, *columns, expand: bool = False):
    """A progress display on stderr that leaves the screen when stopped, for every command that
    shows one (send, receipts --wait). Two columns short of the terminal's width: a Ctrl-C the
    terminal echoes as `^C` after a full-width line would wrap it, and the transient display
    would then erase the `^C` line instead of its last frame, which stayed above the summary."""
    from rich.progress import Progress

    class LeavingRoom(Progress):
        def make_tasks_table(self, tasks):
            table = super().make_tasks_table(tasks)
            table.width = max(20, console.width - 2)
            return table

    return LeavingRoom(*columns, console=console, transient=True, expand=expand)


class RunView:
    def __init__(self, *, quiet: bool = False, json_out: bool = False, dry_run: bool = False,
                 console=None):
        self.quiet, self.json_out, self.dry_run = quiet, json_out, dry_run
        self.console = console or stderr_console()
        self.interactive = self.console.is_terminal and not quiet
        self._bar = None
        self._task = None
        self._last = 0.0
        self._t0 = time.monotonic()  # for the rows/s column
        self._lock = threading.Lock()

    # --- while it runs ----------------------------------------------------------------------
    def started(self, provider, cfg, source) -> None:
        if provider.type == "outbox":
            # even with --quiet: a cron job whose config went missing must not look like a success
            self.console.print(f"sms-cli: no provider configured: nothing leaves this machine; accepted "
                               f"messages are appended to {provider.path}", markup=False)
        for warning in cfg.warnings:
            self.console.print(f"sms-cli: warning: {warning}", markup=False)
        if self.interactive and not self.dry_run:
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
            from rich.table import Column

            def fixed():
                return Column(no_wrap=True)

            # done/total, rate and ETA keep their width on a narrow terminal: the bar shrinks
            # (down to 3 cells) and the counts come last, cut with an ellipsis when there is no room
            self._bar = progress_bar(
                self.console,
                TextColumn("[bold]{task.description}", table_column=fixed()),
                BarColumn(bar_width=None, table_column=Column(ratio=1, min_width=3, no_wrap=True)),
                MofNCompleteColumn(table_column=fixed()), TextColumn("{task.fields[rate]}/s", table_column=fixed()),
                TimeRemainingColumn(table_column=fixed()),
                TextColumn("{task.fields[counts]}",
                           table_column=Column(ratio=1, min_width=0, no_wrap=True, overflow="ellipsis")),
                expand=True)
            self._task = self._bar.add_task("sending", total=max(0, source.lines - (source.fmt == "csv")) or None,
                                            counts="", rate="0")
            self._bar.start()
            self._t0 = time.monotonic()

    def progress(self, tally) -> None:
        bar = self._bar
        if bar is None:
            return
        now = time.monotonic()
        with self._lock:
            if now - self._last < 0.1 or self._bar is None:
                return
            self._last = now
        counts = dict(tally.counts)  # a copy: workers add to it while this reads
        done = sum(counts.values())
        rate = tally.sent_rows / max(1e-6, now - self._t0)
        total = bar.tasks[0].total if bar.tasks else None
        shown = report.columns(counts)
        bar.update(self._task, completed=done, total=max(total or 0, done) or None,
                         counts="  ".join(f"{label} {n}" for label, n in shown[:3]), rate=f"{rate:,.0f}")

    # --- at the end -------------------------------------------------------------------------
    def close(self) -> None:
        """Take the progress display off the screen (it is transient), so nothing printed after
        it (a summary, an error) sits below a stale last frame. Safe to call twice."""
        with self._lock:
            bar, self._bar = self._bar, None
        if bar is not None:
            bar.stop()

    def __enter__(self) -> "RunView":
        return self

    def __exit__(self, *exc) -> None:
        # every path out of a run: finished, interrupted, fatal, or an exception on its way to
        # the one-line error message
        self.close()

    def finish(self, s: Summary) -> None:
        self.close()
        if self.json_out:  # the JSON carries them too; the person at stderr reads them there
            for note in s.notes:
                self.console.print(f"sms-cli: warning: {report.shown(note)}", markup=False)
        if self.dry_run:
            if self.json_out:
                emit(report.plan_dict(s))
            else:
                print(report.plan_text(s), flush=True)
            return
        if self.json_out:
            emit(report.summary_dict(s))
            return
        code = s.exit_code()
        if self.quiet and code == 0:
            return
        if self.console.is_terminal and not self.quiet:
            self.console.print(report.summary_table(s))
        else:
            sys.stderr.write(report.summary_text(s, short=self.quiet) + "\n")
