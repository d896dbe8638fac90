"""Rendering a run's summary: plain text (cron, pipes), a rich table (terminals), or JSON.

The text line, the table and the JSON all count from the same `COLUMNS`, so they agree.
"""
from __future__ import annotations

from ..core.errors import ExitCode
from ..core.outcomes import Fate, RowState, RunEnd, exit_code
from ..run.send import Summary
import shlex
from ..core.textsafe import printable

SCHEMA_VERSION = 1
# (label, fates): the columns of the summary, in order
COLUMNS = [
    ("accepted", (Fate.ACCEPTED,)),
    ("accepted earlier", (Fate.ACCEPTED_EARLIER,)),
    ("failed", (Fate.REJECTED, Fate.FAILED)),
    ("invalid", (Fate.INVALID,)),
    ("unknown", (Fate.UNKNOWN,)),
    ("not sent", (Fate.NOT_SENT,)),
    ("deferred", (Fate.DEFERRED,)),
    ("quiet hours", (Fate.QUIET,)),
    ("suppressed", (Fate.SUPPRESSED,)),
    ("country not allowed", (Fate.COUNTRY,)),
    ("expired", (Fate.EXPIRED,)),
    ("skipped", (Fate.SKIPPED,)),
    ("duplicates", (Fate.DUPLICATE,)),
    ("in other failures files", (Fate.ELSEWHERE, Fate.ELSEWHERE_UNKNOWN)),
]
SHOWN_REASONS = 3


def _printable(text: str) -> str:
    """Text from input or the file system, safe for any terminal: control characters escaped,
    and undecodable bytes of a file name (surrogate escapes) shown as \\xNN, never a crash."""
    return printable(text).encode("utf-8", "backslashreplace").decode("utf-8")


shown = _printable


def _col(counts, fates) -> int:
    return sum(counts.get(f, 0) for f in fates)


def columns(counts) -> list[tuple[str, int]]:
    """The summary's numbers: accepted always, the others when not zero."""
    return [(label, _col(counts, fates)) for label, fates in COLUMNS
            if label == "accepted" or _col(counts, fates)]


def rate(s: Summary) -> float:
    """Rows sent per second (rows settled from the journal are not sent, so not counted)."""
    return s.tally.sent_rows / s.elapsed if s.elapsed > 0 else 0.0


def summary_dict(s: Summary) -> dict:
    t = s.tally
    counts = t.counts
    return {
        "schema_version": SCHEMA_VERSION,
        "provider": s.provider, "provider_type": s.provider_type,
        "rows": s.rows, **{f.counter: counts.get(f, 0) for f in Fate},
        "accepted_before": counts.get(Fate.ACCEPTED_EARLIER, 0),
        "failed": s.failed, "rejected": counts.get(Fate.REJECTED, 0),
        "retries_exhausted": counts.get(Fate.FAILED, 0),
        "requests": t.requests, "retries": t.retries, "splits": t.splits, "rows_sent": t.sent_rows,
        "resumed": s.resumed, "previous": s.previous, "fresh": s.fresh,
        "continued_edited": s.continued_from is not None,
        "stopped": s.stopped, "fatal": s.fatal, "local_failure": s.local,
        "limit": s.limit, "remaining": counts.get(Fate.DEFERRED, 0),
        "failures_file": s.failures_path, "failures_file_lost": s.failures_lost,
        "stale_failures_removed": s.stale_removed, "journal": s.journal_path,
        "other_failures_files": s.elsewhere, "consumed": s.consumed,
        "submission_ids": t.refs, "elapsed_seconds": round(s.elapsed, 3), "rows_per_second": round(rate(s), 1),
        "by_template": {tid: {"rows": sum(c.values()), **{f.counter: n for f, n in c.items()}}
                        for tid, c in sorted(t.by_template.items())},
        "top_failures": [{"error_code": c, "error_message": m, "rows": n} for (c, m), n in t.reasons.most_common(5)],
        "more_failure_reasons": max(0, len(t.reasons) - 5) + t.more_reasons,
        "notes": s.notes,  # warnings the text summary shows as note: lines (rows repeating others...)
        **(s.routes or {}),  # config routes: "routes" and "providers", rows and requests of each
        "rehearsal": s.provider_type == "outbox",  # the outbox sent nothing: its acceptances are a rehearsal's
        "exit_code": int(s.exit_code()),
    }


def summary_text(s: Summary, *, short: bool = False) -> str:
    """`short`: --quiet, for a cron mail: the counts, the stop, the failures file."""
    t = s.tally
    lines = []
    if s.resumed and not short:
        prev = ", ".join(f"{v} {k}" for k, v in sorted(s.previous.items())) or "nothing recorded"
        lines.append(f"resumed this input's ledger (journal held: {prev})")
    if s.fresh:
        lines.append("started over (--fresh --yes): messages accepted before may have been sent again")
    if s.continued_from is not None:
        lines.append("continued an edited input (--continue-edited): messages its earlier version had "
                     "accepted count as accepted earlier and were not sent again")
    if s.stopped == RunEnd.FATAL:
        what = "local failure" if s.local else "provider refused the run"
        lines.append(f"stopped: {what}: {_printable(s.fatal or '')}")
    elif s.stopped:
        lines.append(f"stopped by {s.stopped}")
    parts = ", ".join(f"{n} {label}" for label, n in columns(t.counts))
    extra = [f"{t.retries} retries" if t.retries else "", f"{t.splits} split" if t.splits else ""]
    extra = ", ".join(x for x in extra if x)
    req = f"{t.requests} requests" + (f" ({extra})" if extra else "")
    lines.append(f"{s.provider}: {s.rows} rows: {parts}; {req} in {s.elapsed:.1f}s, {rate(s):,.0f} rows/s")
    shown = t.reasons.most_common(1 if short else SHOWN_REASONS)
    for (code, message), n in shown:
        lines.append(f"  {n} x {_printable(code)}: {_printable(message)}")
    more = len(t.reasons) - len(shown) + t.more_reasons
    if more > 0:
        lines.append(f"  ... and {more} more reason{'s' if more != 1 else ''} (see the failures file)")
    fpath = _printable(s.failures_path) if s.failures_path else None
    if s.failures_lost:
        lines.append(f"the failures file could not be written ({_printable(s.failures_lost)}); "
                     "the journal holds every row's state: fix the disk and run the same command again")
    elif fpath and (s.stopped or s.n(Fate.DEFERRED)) and not s.consumed:
        lines.append(f"failures file: {fpath}  (to finish, run the same command again: it resumes)")
    elif fpath:
        # exactly the command that continues this working set: the same config and provider
        again = " ".join(x for x in (shlex.quote(s.failures_path), s.resend) if x)
        lines.append(f"failures file: {fpath}  (resend: sms-cli send {_printable(again)})")
    if s.limit is not None and s.n(Fate.DEFERRED):
        how = "resend the failures file" if s.consumed else "run the same command again"
        lines.append(f"--limit {s.limit}: {s.n(Fate.DEFERRED)} valid rows remain; {how} to continue")
    lines += elsewhere_lines(s.elsewhere)
    if s.consumed:
        lines.append(f"removed {_printable(s.consumed)}: each row of it is accepted or in a failures file")
    lines += route_lines(s.routes)
    lines += [f"note: {_printable(n)}" for n in s.notes]
    if short:
        return "\n".join(lines)
    if s.stale_removed:
        why = "no row left for it" if s.n(Fate.ELSEWHERE) + s.n(Fate.ELSEWHERE_UNKNOWN) else "every row accepted"
        lines.append(f"{why}: removed the stale failures file {_printable(s.stale_removed)}")
    if s.n(Fate.UNKNOWN):
        lines.append(f"{s.n(Fate.UNKNOWN)} rows have an unknown outcome: check delivery reports before "
                     "resending them with --retry-unknown")
    if t.refs:
        lines.append("submission ids: " + ", ".join(t.refs[:5]) + (" ..." if len(t.refs) > 5 else ""))
    return "\n".join(lines)


GUARD_FATES = (Fate.SUPPRESSED, Fate.COUNTRY, Fate.EXPIRED, Fate.QUIET)


def elsewhere_lines(files: dict[str, int]) -> list[str]:
    """Rows not accepted that stay in another failures file of the working set (store/held.py)."""
    return [f"{n} rows not accepted are in {_printable(name)} (send that file to act on them)"
            for name, n in files.items()]


def plan_dict(s: Summary) -> dict:
    t = s.tally
    to_send = sum(size * n for size, n in s.batch_sizes.items())
    est = s.estimator
    countries = {r: {**c, "cost": round(c["cost"], 6)} for r, c in sorted(est.by_country.items())} if est else {}
    return {
        "schema_version": SCHEMA_VERSION,
        "provider": s.provider, "provider_type": s.provider_type, "rows": s.rows, "to_send": to_send,
        "invalid": s.n(Fate.INVALID), "duplicates": s.n(Fate.DUPLICATE),
        "ledger_skips": {"accepted_earlier": s.n(Fate.ACCEPTED_EARLIER), "unknown": s.n(Fate.UNKNOWN),
                         "rejected": s.n(Fate.REJECTED)},
        "deferred": s.n(Fate.DEFERRED), "requests": sum(s.batch_sizes.values()),
        "in_other_failures_file": s.n(Fate.ELSEWHERE), "unknown_in_other_failures_file": s.n(Fate.ELSEWHERE_UNKNOWN),
        "other_failures_files": s.elsewhere,
        "guards": {f.counter: s.n(f) for f in GUARD_FATES},
        "countries": countries, "parts": est.parts if est else 0,
        "cost": round(est.cost, 6) if est and est.prices else None,
        "lower_bound": bool(est and est.lower_bound), "unpriced": sorted(est.unpriced) if est and est.prices else [],
        "numbers_per_request": {str(k): v for k, v in sorted(s.batch_sizes.items(), reverse=True)},
        "templates": {tid: {**e, "encodings": sorted(e["encodings"])} for tid, e in s.estimates.items()},
        "billable_parts": sum(e["parts"] for e in s.estimates.values()),
        # the same shape and names as the summary's: rows that would end in the failures file
        "top_failures": [{"error_code": c, "error_message": m, "rows": n} for (c, m), n in t.reasons.most_common(5)],
        "more_failure_reasons": max(0, len(t.reasons) - 5) + t.more_reasons,
        "notes": s.notes,
        **(s.routes or {}),  # config routes: rows, requests and cost per route and per provider
        "exit_code": plan_exit(s),
    }


def plan_exit(s: Summary) -> int:
    """A plan (plan, send --dry-run) exits like validate, by one rule: 1 when a row would be
    refused before sending for something the row itself carries (invalid, on the suppression
    list, in a country not allowed), as send would exit 1 for it; 0 otherwise."""
    return int(exit_code({f: s.n(f) for f in PLAN_FATES}))


# what a plan judges: the fates a row carries by itself, the rest (deferred, unknown) it only reports
PLAN_FATES = (Fate.INVALID, Fate.SUPPRESSED, Fate.COUNTRY)


def plan_text(s: Summary) -> str:
    d = plan_dict(s)
    lines = [f"plan for {s.provider} ({s.provider_type}): {s.rows} rows read, {d['to_send']} to send, "
             f"{d['invalid']} invalid" + (f", {d['duplicates']} duplicates skipped" if d["duplicates"] else "")
             + f"; {d['requests']} requests"]
    skips = d["ledger_skips"]
    if any(skips.values()):
        lines.append(f"  the ledger skips {skips['accepted_earlier']} accepted earlier, {skips['unknown']} unknown, "
                     f"{skips['rejected']} refused earlier")
    if d["deferred"]:
        lines.append(f"  {d['deferred']} valid rows left for a later run (--limit {s.limit})")
    lines += ["  " + line for line in elsewhere_lines(s.elsewhere)]
    stopped = [f"{n} {label}" for label, fates in COLUMNS for f in fates if f in GUARD_FATES
               for n in [s.n(f)] if n]
    if stopped:
        lines.append("  the guards stop " + ", ".join(stopped))
    if d["countries"]:
        bound = "at least " if d["lower_bound"] else ""
        cost = f", cost {bound}{d['cost']:.4f}" if d["cost"] is not None else ""
        lines.append(f"  {bound}{d['parts']} billable parts{cost}"
                     + (" (templates without text in config count one part)" if d["lower_bound"] else ""))
        lines.append("  country   rows    parts" + ("        cost" if d["cost"] is not None else ""))
        for region, c in d["countries"].items():
            price = f"  {c['cost']:10.4f}" if d["cost"] is not None else ""
            lines.append(f"  {region:7} {c['rows']:>6} {c['parts']:>8}{price}")
        if d["unpriced"]:
            lines.append(f"  no price for {', '.join(d['unpriced'])} (prices: in the provider's config)")
    for size, n in sorted(s.batch_sizes.items(), reverse=True):
        lines.append(f"  {n} request(s) of {size} number(s)")
    if s.estimates:
        lines.append("  template                rows  encoding  length     parts")
    for tid, e in sorted(s.estimates.items()):
        tid = _printable(tid)
        if e["text_known"] and e["min_length"] is not None:
            length = f"{e['min_length']}-{e['max_length']}" if e["min_length"] != e["max_length"] else str(e["max_length"])
            lines.append(f"  {tid:22} {e['rows']:>5}  {'/'.join(sorted(e['encodings'])):8}  {length:9}  {e['parts']:>5}")
        else:
            lines.append(f"  {tid:22} {e['rows']:>5}  (no text in config: length unknown)")
    if any(e["text_known"] for e in s.estimates.values()):
        lines.append(f"  billable parts (templates with text): {d['billable_parts']}")
    for (code, message), n in s.tally.reasons.most_common(5):
        lines.append(f"  {n} not sendable x {_printable(code)}: {_printable(message)}")
    lines += ["  " + line for line in route_lines(s.routes)]
    lines += [f"  note: {_printable(n)}" for n in s.notes]
    return "\n".join(lines)


def route_lines(routes: dict | None) -> list[str]:
    """Config routes: one line per route and provider (rows, how they ended, requests, cost)."""
    if not routes:
        return []
    lines = []

    def one(label: str, e: dict) -> str:
        ends = ", ".join(f"{n} {k}" for k, n in e.items() if k not in ("rows", "requests", "parts", "cost", "down",
                                                                        "providers") and n)
        cost = (f", {e['parts']} parts" if "parts" in e else "") + (f", cost {e['cost']:.4f}" if e.get("cost") is not None
                                                                     else "")
        return (f"{label}: {e['rows']} rows" + (f" ({ends})" if ends else "") + f", {e['requests']} requests"
                + cost + (f"; down: {_printable(e['down'])}" if e.get("down") else ""))

    for name, r in routes["routes"].items():
        lines.append(one(f"route {_printable(name)}", r))
        lines += ["  " + one(p, e) for p, e in r["providers"].items()]
    lines += [one(f"provider {p}", e) for p, e in routes["providers"].items()]
    return lines


def summary_table(s: Summary):
    """The closing summary for a terminal: the same columns per template, then the text."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    t = s.tally
    shown = columns(t.counts)
    table = Table(title=f"sms-cli: {s.provider} ({s.provider_type})", title_justify="left")
    table.add_column("template")
    table.add_column("rows", justify="right")
    fates = dict(COLUMNS)
    for label, _ in shown:
        table.add_column(label, justify="right")
    for tid, c in sorted(t.by_template.items()):
        table.add_row(_printable(tid), str(sum(c.values())), *(str(_col(c, fates[label])) for label, _ in shown))
    table.add_section()
    table.add_row("total", str(s.rows), *(str(n) for _, n in shown))
    return Group(table, Text(summary_text(s)))


# --- sms-cli status ---------------------------------------------------------------------------
def _when(ts: float | None) -> str | None:
    """A journal time as ISO 8601 UTC, to the second."""
    if ts is None:
        return None
    from datetime import datetime, timezone

    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _run_status(run, active: bool, last: bool) -> str:
    """A run's public status. A run the journal still calls running is running only while a
    send holds the journal."""
    if run.status == RunEnd.RUNNING and not (active and last):
        return RunEnd.KILLED.public
    return getattr(run.status, "public", run.status)


def status_dict(st) -> dict:
    """`sms-cli status --json`: see README "JSON output"."""
    rerun = None
    if st.rerun is not None:
        rerun = {k: v for k, v in plan_dict(st.rerun).items() if k not in ("schema_version", "exit_code")}
    runs = [{"run": r.id, "started": _when(r.started), "updated": _when(r.updated),
             "status": _run_status(r, st.active, i == len(st.runs) - 1), "input": r.input,
             "provider": r.provider, "provider_type": r.options.get("type"),
             "options": {k: v for k, v in r.options.items() if k not in ("provider", "type")}}
            for i, r in enumerate(st.runs)]
    ws = st.working_set
    return {
        "schema_version": SCHEMA_VERSION,
        "input": st.input, "journal": st.journal, "journal_exists": st.journal_exists, "found": st.found,
        "resend_of": st.resend_of,
        "working_set": {**ws, "created": _when(ws["created"])} if ws else None,
        "other_version": st.other_version,
        "active": st.active, "runs": runs, "journal_states": st.journal_states,
        "failures_file": st.failures_file, "failures_file_exists": st.failures_file_exists,
        "rerun": rerun,
        "receipts": st.receipts or None,  # rows per delivery receipt status, when any were collected
        "notes": st.notes,
        "exit_code": st.exit_code,
    }


# the states the text names on their own line; any other (undelivered, a later version's) follows
_SHOWN_STATES = tuple(s.public for s in RowState if s is not RowState.UNDELIVERED)


def status_text(st) -> str:
    text = _status_lines(st)
    return "\n".join([text, *(f"  note: {_printable(n)}" for n in st.notes)])


def _status_lines(st) -> str:
    name = _printable(st.input)
    if not st.journal_exists:
        return (f"{name}: no journal at {_printable(st.journal)}: no send has recorded this input there "
                "(pass --journal PATH if it used another one)")
    if not st.found:
        line = f"{name}: {_printable(st.journal)} holds no run of this content of the input"
        if st.other_version:
            o = st.other_version
            states = ", ".join(f"{n} {k}" for k, n in o["journal_states"].items() if n) or "no rows recorded"
            line += (f"; it holds another version of {_printable(o['name'])} ({o['status'] or 'no run'}: {states}). "
                     "A send of this version refuses while that run is unfinished: see --continue-edited")
        return line
    d = status_dict(st)
    lines = [f"{name}: journal {_printable(st.journal)}"
             + (f" (a failures file of {_printable(st.resend_of)})" if st.resend_of else "")]
    if st.active:
        lines.append("  a send is using this journal now: the figures below are moving")
    lines.append(f"  {len(d['runs'])} run(s):")
    for r in d["runs"]:
        opts = ", ".join(f"{k}={v}" for k, v in r["options"].items() if v not in (None, False))
        lines.append(f"    #{r['run']} {r['started']}  {_printable(r['provider'])} ({r['provider_type'] or '?'})  "
                     f"{r['status']}" + (f"  [{opts}]" if opts else ""))
    j = st.journal_states
    lines.append(f"  rows recorded: {j['accepted']} accepted, {j['failed']} refused by the provider, {j['retry']} "
                 f"not sent or to retry, {j['unknown']} unknown, {j['inflight']} in flight"
                 + "".join(f", {n} {k}" for k, n in j.items() if k not in _SHOWN_STATES and n))
    if st.receipts:
        lines.append("  delivery receipts: " + ", ".join(f"{n} {k.replace('_', ' ')}"
                                                         for k, n in sorted(st.receipts.items())))
    fexists = "exists" if st.failures_file_exists else "not there"
    lines.append(f"  failures file: {_printable(st.failures_file)} ({fexists})")
    p = d["rerun"]
    if p is not None:
        skips = p["ledger_skips"]
        lines.append(f"  a re-run of the same command (provider {_printable(p['provider'])}): {p['rows']} rows, "
                     f"{p['to_send']} to send in {p['requests']} request(s); skips {skips['accepted_earlier']} "
                     f"accepted earlier, {skips['unknown']} unknown, {skips['rejected']} refused earlier; "
                     f"{p['invalid']} invalid")
        if p["to_send"]:
            bound = "at least " if p["lower_bound"] else ""
            cost = f", cost {bound}{p['cost']:.4f}" if p["cost"] is not None else ""
            lines.append(f"  it would send {p['to_send']} message(s): {bound}{p['parts']} parts{cost}")
        elif st.exit_code == ExitCode.OK:
            lines.append("  nothing left to send: every row is accepted")
        else:
            lines.append("  it would send nothing; rows not accepted stay in the failures file "
                         "(fix them, or see --retry-unknown for unknown ones)")
        lines += ["  " + line for line in elsewhere_lines(st.rerun.elsewhere)]
    return "\n".join(lines)
