"""`sms-cli receipts`: its options, its progress display and its summary (registered in cli.py).
The work is receipts.collect; this module turns arguments into a ReceiptsRequest and prints the
Result: a rich table on a terminal, plain text otherwise (stderr), JSON on stdout with --json."""
from __future__ import annotations

import signal
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import List, Optional

import typer

from ..core.outcomes import RunEnd
from .options import FORMAT, Format, value
from .output import emit, progress_bar, stderr_console  # the run's JSON, console (stderr, NO_COLOR) and display
from . import report
from ..core.logs import setup_logging
from ..receipts.collect import ReceiptsRequest, collect, parse_duration
from ..store import paths
from .report import shown
from .shard_reports import receipts as sharded_receipts

SCHEMA_VERSION = 1


def receipts(
    input: Optional[str] = typer.Argument(None, metavar="INPUT",
                                          help="The input as given to send (or its failures file); - for stdin "
                                               "piped again; leave it out with --journal for a stdin run."),
    config: Optional[str] = typer.Option(None, "--config", "-c", metavar="PATH",
                                         help="The send's config (default: $SMS_CLI_CONFIG, ./sms-cli.yaml, then "
                                              "$XDG_CONFIG_HOME/sms-cli/config.yaml)."),
    provider: Optional[str] = typer.Option(None, "--provider", "-p", metavar="NAME",
                                           help="Ask this provider section (default: the one each run sent "
                                                "through)."),
    journal: Optional[str] = typer.Option(None, "--journal", metavar="PATH",
                                          help="The send's journal (default: <input>.journal.sqlite beside the "
                                               "input)."),
    fmt: Optional[Format] = FORMAT,  # the same option as send's
    template: Optional[str] = typer.Option(None, "--template", "-t", metavar="ID",
                                           help="The send's --template (rows read back as it read them)."),
    param: List[str] = typer.Option([], "--param", metavar="VALUE", help="The send's --param (repeat)."),
    sender_id: Optional[str] = typer.Option(None, "--sender-id", metavar="ID", help="The send's --sender-id."),
    default_region: Optional[str] = typer.Option(None, "--default-region", metavar="REGION",
                                                 help="The send's --default-region."),
    failures: Optional[str] = typer.Option(None, "--failures", metavar="PATH",
                                           help="Failures file of the rows whose delivery failed (default: "
                                                "<input>.undelivered.<ext> beside the input)."),
    wait: Optional[str] = typer.Option(None, "--wait", metavar="DURATION",
                                       help="Keep asking until no row is pending or this time is up (30s, 10m, "
                                            "2h), with progress on a terminal."),
    give_up_after: str = typer.Option("72h", "--give-up-after", metavar="DURATION",
                                      help="Rows still pending this long after sending get 'no receipt'; rows "
                                           "whose answer was lost and that were not found, 'not found'."),
    poll_interval: str = typer.Option("60s", "--poll-interval", metavar="DURATION",
                                      help="Time between rounds of questions with --wait."),
    json_out: bool = typer.Option(False, "--json", help="The summary as JSON on stdout (see README)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing when every accepted row was delivered."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log each receipt query to stderr."),
    shards: Optional[int] = typer.Option(None, "--shards", min=1, metavar="N",
                                         help="The input was sent in N shards: ask for every shard's rows."),
):
    """Ask the provider what became of the messages it accepted: delivered, failed (with the
    operator's code), or pending; settle rows whose answer was lost where the provider can find
    them. Rows whose delivery failed go to <input>.undelivered.<ext>, which send takes back.

    Exit 0 every accepted row delivered, 1 some delivery failed, 4 some rows pending, without a
    receipt or unknown, 2 usage, config or no journal, 3 the provider refused or was unreachable.

    \b
    Examples:
      sms-cli receipts recipients.csv
      sms-cli receipts recipients.csv --wait 30m --json
      sms-cli receipts --journal sms-stdin-0123456789ab.journal.sqlite
    """
    req = ReceiptsRequest(
        input=input, config=config, provider=provider, journal=journal, fmt=value(fmt), template=template,
        params=tuple(param), sender_id=sender_id, region=default_region, failures=failures,
        wait=parse_duration(wait, "--wait") if wait else 0.0,
        give_up_after=parse_duration(give_up_after, "--give-up-after"),
        poll_interval=max(0.001, parse_duration(poll_interval, "--poll-interval")))
    setup_logging(verbose, frozenset())
    with Progress(enabled=not quiet and bool(wait)) as view, _ctrl_c_stops_waiting():
        if shards:  # each shard's journal in turn, reported as one (shard_reports.py)

            result = sharded_receipts(req, shards, progress=view.update)
        else:
            result = collect(req, progress=view.update)
    code = result.exit_code()
    if json_out:
        emit(receipts_dict(result))  # output.emit: file names that are not UTF-8 escaped, as send's
    elif not (quiet and code == 0):
        console = stderr_console()
        if console.is_terminal and not quiet:
            console.print(summary_table(result))
            for line in summary_lines(result, table=True):
                console.print(line, markup=False, highlight=False)
        else:
            sys.stderr.write("\n".join(summary_lines(result)) + "\n")
    raise typer.Exit(int(code))


@contextmanager
def _ctrl_c_stops_waiting():
    """Ctrl-C during a --wait ends the waiting (collect records what it learnt and the summary
    still prints, exit 130) instead of main()'s immediate exit."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


# --- progress (a terminal only) ----------------------------------------------------------------
class Progress:
    def __init__(self, enabled: bool):
        self.console = stderr_console()
        self.enabled = enabled and self.console.is_terminal
        self._bar = self._task = None
        self._total = None
        self._last = 0.0

    def __enter__(self) -> "Progress":
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn

            self._bar = progress_bar(self.console, TextColumn("[bold]receipts"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("{task.fields[note]}"))
            self._task = self._bar.add_task("receipts", total=None, note="asking")
            self._bar.start()
        return self

    def update(self, result, open_rows: int, next_in: float) -> None:
        if self._bar is None:
            return
        now = time.monotonic()
        if now - self._last < 0.1 and not next_in:
            return
        self._last = now
        if self._total is None or open_rows > self._total:
            self._total = open_rows
        note = f"{open_rows} pending" + (f", next round in {next_in:.0f}s" if next_in >= 1 else "")
        self._bar.update(self._task, total=self._total, completed=self._total - open_rows, note=note)

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


# --- the summary ---------------------------------------------------------------------------------
def receipts_dict(r) -> dict:
    return {
        "schema_version": SCHEMA_VERSION, "input": r.input, "journal": r.journal, "providers": r.providers,
        **r.total.as_dict(),
        "unknown_found": r.found, "unknown_searching": r.searching, "unknown_not_found": r.not_found,
        "unknown_unsettleable": r.unsettleable, "unsettleable_providers": r.unsettleable_types,
        "not_found_refs": r.not_found_refs,
        "estimate_known": r.estimate_known, "estimate_lower_bound": r.estimate_lower_bound,
        "by_template": {k: v.as_dict() for k, v in sorted(r.by_template.items())},
        "by_country": {k: v.as_dict() for k, v in sorted(r.by_country.items())},
        "requests": r.requests, "rounds": r.rounds, "elapsed_seconds": round(r.elapsed, 3),
        "failures_file": r.failures_path, "stale_failures_removed": r.stale_removed,
        "failures_file_lost": r.failures_lost, "undelivered_unwritten": r.undelivered_unwritten,
        "stopped": r.stopped, "fatal": r.fatal, "notes": r.notes, "exit_code": int(r.exit_code()),
    }


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


def _secs(value) -> str:
    return "-" if value is None else (f"{value:.1f}s" if value < 120 else f"{value / 60:.0f}m")


def _counts(t) -> str:
    d = t.as_dict()
    parts = [f"{t.sent} sent", f"{t.delivered} delivered ({_pct(t.delivered, t.sent)})", f"{t.failed} failed",
             f"{t.pending} pending"]
    if t.no_receipt:
        parts.append(f"{t.no_receipt} no receipt")
    if t.unknown:
        parts.append(f"{t.unknown} unknown")
    ttd = d["time_to_delivery"]
    if ttd["rows"]:
        parts.append(f"time to delivery median {_secs(ttd['median'])}, p95 {_secs(ttd['p95'])}")
    return ", ".join(parts)


def _resend(r) -> str:
    """The command that resends the undelivered rows (with --journal when the failures file's
    own name would not lead send to this journal)."""
    path = r.failures_path
    cmd = f"sms-cli send {report.shown(path)}"
    try:
        default = paths.journal_path(path, "")
        same = Path(default).resolve() == Path(r.journal).resolve()
    except OSError:
        same = False
    return cmd if same else f"{cmd} --journal {report.shown(r.journal)}"


def summary_lines(r, *, table: bool = False) -> list[str]:
    """Plain text (and, under the table, the lines the table does not hold)."""
    t = r.total
    lines = []
    if r.stopped == RunEnd.FATAL:
        lines.append(f"stopped: {shown(r.fatal or '')}")
    elif r.stopped:
        lines.append(f"stopped by {r.stopped}: what was learnt is in the journal; run it again to go on")
    if not table:
        lines.append(f"receipts: {_counts(t)}; {r.requests} requests in {r.elapsed:.1f}s")
        for (code, message), n in t.reasons.most_common(3):
            lines.append(f"  {n} x {shown(code)}: {shown(message)}")
        if len(t.reasons) > 3:
            lines.append(f"  ... and {len(t.reasons) - 3} more reasons (see the failures file)")
        for title, groups in (("template", r.by_template), ("country", r.by_country)):
            if len(groups) > 1 or (groups and title == "country"):
                for name, g in sorted(groups.items()):
                    lines.append(f"  {title} {shown(name)}: {_counts(g)}")
    d = t.as_dict()
    if d["billed_parts"] is not None:
        bound = "at least " if r.estimate_lower_bound else ""
        est = f", the plan's estimate {bound}{d['billed_estimate']}" if d["billed_estimate"] is not None else ""
        lines.append(f"parts: {d['billed_parts']} billed for {t.billed_rows} rows{est}")
    elif d["estimated_parts"] is not None:
        bound = "at least " if r.estimate_lower_bound else ""
        lines.append(f"parts: the plan's estimate {bound}{d['estimated_parts']} (the provider's receipts do not "
                     "say what was billed)")
    if r.found:
        lines.append(f"{r.found} rows whose answer was lost were found at the provider: accepted, never resent")
    if r.searching:
        lines.append(f"{r.searching} rows whose answer was lost are not found yet: asked again next run")
    if r.not_found:
        first = ", ".join(r.not_found_refs[:3])
        lines.append(f"{r.not_found} rows whose answer was lost were not found by the end of the reporting "
                     f"window ({first}{', ...' if r.not_found > 3 else ''}): the provider did not take them; "
                     "send --retry-unknown resends them")
    if r.unsettleable:
        lines.append(f"{r.unsettleable} rows whose answer was lost cannot be settled: "
                     f"{', '.join(r.unsettleable_types)} finds a "
                     "message only by the submission id that answer carried; check with the provider before "
                     "send --retry-unknown (it may send them twice)")
    if t.no_receipt:
        lines.append(f"{t.no_receipt} rows got no receipt in time (--give-up-after): delivery unknown")
    if t.pending and not r.stopped:
        lines.append(f"{t.pending} rows are pending: run it again later (or --wait 30m)")
    for note in r.notes:
        lines.append(f"note: {shown(note)}")
    if r.failures_lost:
        lines.append(f"the undelivered rows could not be written ({shown(r.failures_lost)}); the journal holds "
                     "their state")
    elif r.failures_path:
        lines.append(f"undelivered: {shown(r.failures_path)}  (resend: {_resend(r)})")
    if r.undelivered_unwritten:
        lines.append(f"{r.undelivered_unwritten} undelivered rows are not in the input at hand: run receipts with "
                     "the send's input (for stdin: pipe the same rows in, INPUT -) to write them to a failures file")
    if r.stale_removed:
        lines.append(f"removed {shown(r.stale_removed)}: no row is undelivered now")
    return lines


def summary_table(r):
    from rich.table import Table


    table = Table(title="delivery receipts", title_justify="left", caption_justify="left")
    for name in ("", "sent", "delivered", "failed", "pending", "no receipt", "unknown", "rate", "median", "p95"):
        table.add_column(name, justify="left" if not name else "right", no_wrap=True)

    def row(label, t, style=None):
        d = t.as_dict()
        ttd = d["time_to_delivery"]
        table.add_row(label, str(t.sent), str(t.delivered), str(t.failed), str(t.pending), str(t.no_receipt),
                      str(t.unknown), _pct(t.delivered, t.sent), _secs(ttd["median"]), _secs(ttd["p95"]),
                      style=style)

    row("all", r.total, "bold")
    for name, g in sorted(r.by_template.items()):
        row(f"template {shown(name)}", g)
    for name, g in sorted(r.by_country.items()):
        row(f"country {shown(name)}", g)
    for (code, message), n in r.total.reasons.most_common(5):
        table.caption = (table.caption + "\n" if table.caption else "") + f"{n} x {shown(code)}: {shown(message)}"
    return table
