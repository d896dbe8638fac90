"""Rendering a run's summary: plain text (cron, pipes), a rich table (terminals), or JSON."""
from __future__ import annotations

import json

from .send import Summary


def summary_dict(s: Summary) -> dict:
    return {
        "provider": s.provider, "provider_type": s.provider_type,
        "rows": s.rows, "valid": s.valid, "invalid": s.invalid, "skipped": s.skipped,
        "duplicates": s.duplicates, "requests": s.requests,
        "accepted": s.accepted, "accepted_before": s.accepted_before, "failed": s.failed,
        "unknown": s.unknown, "not_sent": s.not_sent,
        "resumed": s.resumed, "previous": s.previous, "stopped": s.stopped, "fatal": s.fatal,
        "failures_file": s.failures_path, "stale_failures_removed": s.stale_removed,
        "journal": s.journal_path, "submission_ids": s.refs, "elapsed_seconds": round(s.elapsed, 3),
        "by_template": {k: dict(zip(("rows", "accepted", "failed", "unknown"), v))
                        for k, v in s.by_template.items()},
        "top_failures": [{"code": c, "message": m, "rows": n} for (c, m), n in s.reasons.most_common(5)],
        "exit_code": int(s.exit_code()),
    }


def summary_json(s: Summary) -> str:
    return json.dumps(summary_dict(s), ensure_ascii=False)


def summary_text(s: Summary) -> str:
    lines = []
    if s.resumed:
        prev = ", ".join(f"{v} {k}" for k, v in sorted(s.previous.items())) or "nothing recorded"
        lines.append(f"resumed an earlier run (journal held: {prev})")
    if s.stopped == "fatal":
        lines.append(f"stopped: provider refused the run: {s.fatal}")
    elif s.stopped:
        lines.append(f"stopped by {s.stopped}")
    accepted = f"{s.accepted} accepted" + (f" (+{s.accepted_before} earlier)" if s.accepted_before else "")
    parts = [f"{s.rows} rows read", f"{s.invalid} invalid", f"{s.requests} requests", accepted,
             f"{s.failed} failed", f"{s.unknown} unknown"]
    if s.not_sent:
        parts.append(f"{s.not_sent} not sent")
    if s.skipped:
        parts.append(f"{s.skipped} skipped")
    lines.append(f"{s.provider}: " + ", ".join(parts) + f" in {s.elapsed:.1f}s")
    if s.duplicates:
        lines.append(f"{s.duplicates} duplicate rows skipped (--dedupe)")
    for (code, message), n in s.reasons.most_common(3):
        lines.append(f"  {n} x {code}: {message}")
    if s.refs:
        lines.append("submission ids: " + ", ".join(s.refs[:5]) + (" ..." if len(s.refs) > 5 else ""))
    if s.failures_path and s.stopped:
        lines.append(f"failures file: {s.failures_path}  (to finish, run the same command again: it resumes)")
    elif s.failures_path:
        lines.append(f"failures file: {s.failures_path}  (resend: sms-cli send {s.failures_path})")
    if s.stale_removed:
        lines.append(f"every row accepted: removed the stale failures file {s.stale_removed}")
    if s.unknown:
        lines.append(f"{s.unknown} rows have an unknown outcome: check delivery reports before "
                     "resending them with --retry-unknown")
    return "\n".join(lines)


def plan_dict(s: Summary) -> dict:
    return {
        "provider": s.provider, "provider_type": s.provider_type, "rows": s.rows, "valid": s.valid,
        "invalid": s.invalid, "duplicates": s.duplicates, "requests": s.requests,
        "numbers_per_request": {str(k): v for k, v in sorted(s.batch_sizes.items(), reverse=True)},
        "templates": {t: {**e, "encodings": sorted(e["encodings"])} for t, e in s.estimates.items()},
        "billable_parts": sum(e["parts"] for e in s.estimates.values()),
        "problems": [{"code": c, "message": m, "rows": n} for (c, m), n in s.reasons.most_common()],
    }


def plan_text(s: Summary) -> str:
    lines = [f"plan for {s.provider} ({s.provider_type}): {s.rows} rows read, {s.valid} to send, "
             f"{s.invalid} invalid" + (f", {s.duplicates} duplicates skipped" if s.duplicates else "")
             + f"; {s.requests} requests"]
    for size, n in sorted(s.batch_sizes.items(), reverse=True):
        lines.append(f"  {n} request(s) of {size} number(s)")
    if s.estimates:
        lines.append("  template                rows  encoding  length     parts")
    for tid, e in sorted(s.estimates.items()):
        if e["text_known"] and e["min_length"] is not None:
            length = f"{e['min_length']}-{e['max_length']}" if e["min_length"] != e["max_length"] else str(e["max_length"])
            lines.append(f"  {tid:22} {e['rows']:>5}  {'/'.join(sorted(e['encodings'])):8}  {length:9}  {e['parts']:>5}")
        else:
            lines.append(f"  {tid:22} {e['rows']:>5}  (no text in config: length unknown)")
    billable = sum(e["parts"] for e in s.estimates.values())
    if any(e["text_known"] for e in s.estimates.values()):
        lines.append(f"  billable parts (templates with text): {billable}")
    for (code, message), n in s.reasons.most_common(5):
        lines.append(f"  {n} invalid x {code}: {message}")
    return "\n".join(lines)


def summary_table(s: Summary):
    """The closing summary for a terminal: per template, top failure reasons, rate."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"sms-cli: {s.provider} ({s.provider_type})", title_justify="left")
    for col in ("template", "rows", "accepted", "failed", "unknown"):
        table.add_column(col, justify="left" if col == "template" else "right")
    for tid, (rows, ok, failed, unknown) in sorted(s.by_template.items()):
        table.add_row(tid, str(rows), str(ok), str(failed), str(unknown))
    done = s.accepted + s.failed + s.unknown + s.invalid + s.not_sent
    rate = done / s.elapsed if s.elapsed > 0 else 0.0
    table.add_section()
    table.add_row("total", str(s.rows), str(s.accepted + s.accepted_before),
                  str(s.failed + s.invalid + s.not_sent), str(s.unknown))
    parts = [table, Text(summary_text(s)), Text(f"{s.elapsed:.1f}s, {rate:,.0f} rows/s")]
    return Group(*parts)
