"""`status INPUT --shards N` and `receipts INPUT --shards N`: every shard's journal read in turn
and reported as one working set (sums of rows, runs of every shard, one re-run plan)."""
from __future__ import annotations

import re

from collections import Counter
from dataclasses import replace

from ..store import paths
from ..store.ledger import Tally
from ..run.plan import Estimator
from ..run.send import Summary
from ..run.shards import Shard, existing
from . import commands
from ..config.load import load_config
from ..core.errors import SmsCliError
from ..input.rows import open_source
from ..receipts.collect import Result, collect
from ..run.shards import failures_path, journal_path


def check_count(input_name: str, digest: str, n: int) -> None:
    """--shards N on a report: refuse when the input's shard journals are for another N."""
    found = sorted(k for k in existing(input_name, digest) if k != n)
    if found:
        raise SmsCliError(f"{input_name} was sent in {found[0]} shards, not {n}: use --shards {found[0]}")


def status(req, n: int):
    """One Status for the N shards of `req.input` (commands.status of each, summed)."""
    check_count(req.input, "", n)  # (the digest names only stdin's files, which status refuses)
    parts = [commands.status(replace(req, shard=Shard(k, n))) for k in range(n)]
    first = parts[0]
    merged = commands.Status(first.input, _pattern(first.journal), any(p.journal_exists for p in parts),
                             failures_file=_pattern(first.failures_file),
                             failures_file_exists=any(p.failures_file_exists for p in parts))
    found = [p for p in parts if p.found]
    merged.found = bool(found) and all(p.found or not p.journal_exists for p in parts)
    merged.resend_of = first.resend_of
    merged.working_set = found[0].working_set if found else None
    merged.other_version = next((p.other_version for p in parts if p.other_version), None)
    merged.active = any(p.active for p in parts)
    merged.runs = sorted((r for p in parts for r in p.runs), key=lambda r: r.started)
    merged.journal_states = dict(sum((Counter(p.journal_states) for p in parts), Counter()))
    for k in commands.JOURNAL_STATES:
        merged.journal_states.setdefault(k, 0)
    receipts = [p.receipts for p in parts if p.receipts]
    merged.receipts = dict(sum((Counter(r) for r in receipts), Counter())) if receipts else None
    reruns = [p.rerun for p in parts if p.rerun is not None]
    merged.rerun = merge_summaries(reruns) if reruns and len(reruns) == len(found) == n else None
    return merged


def _pattern(path: str) -> str:
    """`list.shard-0-of-4.journal.sqlite` -> `list.shard-*-of-4.journal.sqlite`."""
    return re.sub(r"\.shard-\d+-of-(\d+)\.", r".shard-*-of-\1.", path, count=1)


def merge_summaries(parts: list[Summary]) -> Summary:
    """The dry-run summaries of every shard as one (a re-run of all of them)."""
    out = Summary(provider=parts[0].provider, provider_type=parts[0].provider_type, tally=Tally())
    est = Estimator(parts[0].estimator.templates if parts[0].estimator else {},
                    parts[0].estimator.prices if parts[0].estimator else None)
    for s in parts:
        t = s.tally
        out.tally.counts.update(t.counts)
        out.tally.reasons.update(t.reasons)
        out.tally.more_reasons += t.more_reasons
        for size, k in s.batch_sizes.items():
            out.batch_sizes[size] = out.batch_sizes.get(size, 0) + k
        for tid, e in s.estimates.items():
            _add(out.estimates.setdefault(tid, {**e, "rows": 0, "parts": 0, "encodings": set(),
                                                "min_length": None, "max_length": 0}), e)
        if s.estimator is not None:
            est.lower_bound |= s.estimator.lower_bound
            est.unpriced |= s.estimator.unpriced
            for region, c in s.estimator.by_country.items():
                mine = est.by_country.setdefault(region, {"rows": 0, "parts": 0, "cost": 0.0})
                for key in mine:
                    mine[key] += c[key]
    out.estimator = est
    return out


def _add(into: dict, e: dict) -> None:
    into["rows"] += e["rows"]
    into["parts"] += e["parts"]
    into["encodings"] |= set(e["encodings"])
    into["max_length"] = max(into["max_length"], e["max_length"])
    if e["min_length"] is not None:
        into["min_length"] = e["min_length"] if into["min_length"] is None else min(into["min_length"],
                                                                                       e["min_length"])


# --- receipts --shards N ----------------------------------------------------------------------
def receipts(req, n: int, progress=None):
    """receipts.collect for each shard's journal (and its own undelivered file, which resends into
    that shard's journal), summed into one Result. Shards with no journal yet are left out."""
    if not req.input or req.input == "-":
        raise SmsCliError("--shards finds each shard's journal beside the INPUT: give the input file")
    if req.journal or req.failures:
        raise SmsCliError("--shards reads <input>.shard-K-of-N.journal.sqlite and writes each shard's own "
                          "undelivered file: leave out --journal and --failures")
    _no_pull_queue(req.config)
    source = open_source(req.input, req.fmt)
    try:
        digest, fmt = source.digest, source.fmt
    finally:
        source.cleanup()
    check_count(req.input, digest, n)
    results, missing = [], []
    for k in range(n):
        shard = Shard(k, n)
        jpath = journal_path(req.input, digest, shard)
        if not jpath.exists():
            missing.append(jpath.name)
            continue
        fpath = failures_path(req.input, fmt, digest, shard, paths.UNDELIVERED)
        results.append(collect(replace(req, journal=str(jpath), failures=str(fpath)), progress=progress))
    if not results:
        raise SmsCliError(f"no shard journal of {req.input} for {n} shards (looked for {', '.join(missing)})")
    merged = merge_results(results)
    merged.notes += [f"no journal yet for {name}: that shard has not run" for name in missing]
    return merged


def _no_pull_queue(config: str | None) -> None:
    """Tencent's pull queue gives each report once, to whoever asks first: the first shard's pass
    would take (and drop) the reports of the others' rows. The per-number lookup has no such
    problem."""
    cfg = load_config(config, strict_env=False)
    pulled = sorted(name for name, p in cfg.providers.items() if p.type == "tencent" and p.get("receipt_source") == "pull")
    if pulled:
        raise SmsCliError(f"receipts --shards: provider {pulled[0]!r} reads Tencent's pull queue (receipt_source: "
                          "pull), which gives each report once: one shard's pass would drop the others' reports. "
                          "Use receipt_source: phone, or ask one shard with --journal")


def merge_results(parts):
    """Several shards' receipts.Result as one."""
    first = parts[0]
    out = Result(journal=_pattern(first.journal), input=first.input)
    for r in parts:
        out.providers.update(r.providers)
        _add_tally(out.total, r.total)
        for mine, theirs in ((out.by_template, r.by_template), (out.by_country, r.by_country)):
            for key, t in theirs.items():
                _add_tally(mine.setdefault(key, type(t)()), t)
        for name in ("found", "searching", "not_found", "unsettleable", "requests", "undelivered_unwritten"):
            setattr(out, name, getattr(out, name) + getattr(r, name))
        out.unsettleable_types = sorted(set(out.unsettleable_types) | set(r.unsettleable_types))
        out.not_found_refs = (out.not_found_refs + r.not_found_refs)[:100]
        out.rounds = max(out.rounds, r.rounds)
        out.elapsed += r.elapsed
        out.estimate_known = out.estimate_known or r.estimate_known
        out.estimate_lower_bound = out.estimate_lower_bound or r.estimate_lower_bound
        if r.failures_path:
            out.failures_path = r.failures_path if out.failures_path is None else f"{out.failures_path}, {r.failures_path}"
        out.stale_removed = out.stale_removed or r.stale_removed
        out.failures_lost = out.failures_lost or r.failures_lost
        out.stopped, out.fatal = out.stopped or r.stopped, out.fatal or r.fatal
        out.notes += r.notes
    return out


def _add_tally(into, t) -> None:
    for name in ("sent", "delivered", "failed", "pending", "no_receipt", "unknown", "estimated_parts",
                 "estimated_rows", "billed_parts", "billed_rows", "billed_estimate"):
        setattr(into, name, getattr(into, name) + getattr(t, name))
    into.reasons.update(t.reasons)
    into.delays.extend(t.delays)
