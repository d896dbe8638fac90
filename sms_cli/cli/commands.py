"""What each command does, as library calls: the CLI parses arguments into a `SendRequest`,
calls one function here and prints what it returns."""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import logging
import shlex

from ..campaign import Campaign, SendRequest, leaving_journal_as_found, storable
from ..config.load import load_config
from ..core.errors import ExitCode, SmsCliError
from ..core.outcomes import Fate, RowState, RunEnd, exit_code, public_counts
from ..guards import rules as guards_mod
from ..guards.rules import GuardOptions
from ..guards.settings import prices, timestamp
from ..providers import make_provider
from ..run import shards
from ..run.dispatch import Policy
from ..run.plan import Estimator
from ..run.send import Options, Summary, execute, run_end
from ..store import failures as failures_mod
from ..store import held as held_mod
from ..store import journal as journal_mod
from ..store import paths
from ..store.ledger import Ledger
from ..validate.validator import Rejected
from .report import plan_dict
from .starter import placeholders_left

log = logging.getLogger("sms_cli.cli.commands")


def resend_args(req: SendRequest, provider_name: str, configured: bool) -> str:
    """The options a resend of this run's failures file needs to continue the same working set
    with the same provider: shell-quoted, each given only when this run had it."""
    args = []
    if req.config:
        args += ["--config", req.config]
    if req.provider or configured:  # the section used; no config file: the outbox, named by nothing
        args += ["--provider", provider_name]
    for flag, value in (("--journal", req.journal), ("--default-region", req.region),
                        ("--encoding", req.encoding), ("--delimiter", req.delimiter)):
        if value:
            args += [flag, value]
    return " ".join(shlex.quote(a) for a in args)


def send(req: SendRequest, progress=None, on_start=None, transport=None) -> Summary:
    camp = Campaign.open(req, sending=not req.options.dry_run, transport=transport)
    cfg, provider, source, validator = camp.cfg, camp.provider, camp.source, camp.validator
    jpath, fpath, rehearsal = camp.journal_path, camp.failures_path, camp.rehearsal
    journal = writer = None
    policy = Policy(provider.settings.max_attempts, provider.settings.backoff_base,
                    provider.settings.backoff_cap, cfg.grace_period)
    summary = Summary(provider=provider.settings.name, provider_type=provider.type, notes=list(camp.notes))
    router = camp.router
    if router is not None:
        summary.provider = summary.provider_type = "routes"
    progress = progress or (lambda tally: None)
    try:
        if rehearsal:
            summary.notes.append("a rehearsal: the outbox sent nothing anywhere; what it took counts only for "
                                 "rehearsals, and a send through a real provider sends these rows")
        if req.options.dry_run:
            return _dry_run(camp, policy, summary, progress, on_start)
        for p in router.providers.values() if router is not None else (provider,):
            p.require_settings()
            p.limiter.start()  # a shared rate limit (rate_backend) must answer before anything is sent
        if req.guards.max_cost is not None or req.guards.max_parts is not None:
            # before the journal is opened for writing: a run refused here leaves no trace (no
            # working set, no run, no --valid-for clock started)
            _dry_run(camp, policy, Summary(), lambda tally: None, None, options=replace(req.options, dry_run=True))
        if not req.journal:  # the same shard count as the input's earlier runs
            shards.check_layout(req.input, source.digest, req.shard, source.digest)
        camp.refuse_input_as_output()
        journal = journal_mod.Journal(jpath, rehearsal=rehearsal)
        choice = camp.choose(journal)
        trouble = camp.remember(choice.ws)
        if trouble:
            summary.notes.append(trouble)
        log.info("config: %s; journal: %s; failures file: %s", cfg.path or "(none: built-in outbox)", jpath, fpath)
        writer = failures_mod.FailuresWriter(fpath, source.fmt, source.header, validator.defaults,
                                             getattr(source, "delimiter", ",") or ",",
                                             getattr(source, "encoding", "utf-8"))
        guards = guards_mod.build(cfg, provider.settings, req.guards, validator.region,
                                  first_started=choice.ws.created)
        ledger = Ledger(journal, writer, choice.ident.ref_of,
                        on_opt_out=guards.suppression.opted_out if guards.suppression is not None else None)
        ledger.start_run(choice.ws, storable(source.display), summary.provider,
                         {"provider": None if router else provider.settings.name, "type": summary.provider_type,
                          "limit": req.options.limit, "dedupe": req.options.dedupe,
                          "only_retryable": req.options.only_retryable, "retry_unknown": req.options.retry_unknown,
                          **_guard_flags(req.guards)})
        prefix = None
        if choice.resumed:  # read after start_run: rows cut off in flight count as unknown
            previous, *prefix = journal.resume_view(choice.ws.id)
            summary.previous, summary.resumed = public_counts(previous), bool(previous)
        summary.fresh, summary.continued_from = choice.fresh, choice.continued_from
        summary.journal_path = str(jpath)
        if on_start:
            on_start(provider, cfg, source)
        execute(source, validator, provider, ledger, choice.ident, req.options, policy, summary,
                resend=choice.resend, taken=choice.taken, guards=guards, progress=progress,
                prefix=tuple(prefix) if prefix else None, router=router,
                held=held_mod.for_campaign(camp, choice.ident))
        summary.resend = resend_args(req, provider.settings.name, cfg.path is not None and router is None)
        summary.notes += [ledger.opt_out_error] if ledger.opt_out_error else []  # after execute's own notes
        if ledger.local_error is not None:
            summary.failures_lost = str(ledger.local_error)
            writer.abort()
        else:
            try:
                path, stale = writer.commit()
            except SmsCliError as exc:  # after sending: the run still reports what it did
                summary.failures_lost = str(exc)
                summary.stopped = summary.stopped or RunEnd.FATAL
                summary.fatal = summary.fatal or str(exc)
                summary.local = True
                path, stale = None, False
            summary.failures_path = str(path) if path else None
            summary.stale_removed = str(fpath) if stale else None
            if summary.failures_lost is None and req.shard is None:  # a derived file is used up by its send
                summary.consumed, trouble = failures_mod.consume(req.input, fpath)
                summary.notes += [trouble] if trouble else []
        writer = None
        try:
            journal.finish_run(run_end(summary))
        except SmsCliError as exc:
            summary.stopped, summary.fatal, summary.local = RunEnd.FATAL, summary.fatal or str(exc), True
        return summary
    finally:
        if writer is not None:
            writer.abort()
        if journal is not None:
            journal.close()
        camp.close()


def _check_caps(req, provider, estimator: Estimator) -> None:
    """--max-cost / --max-parts against the estimate of what this command would send (the
    ledger's skips and the guards applied): over the cap, nothing is sent (exit 2). The same
    check for send, send --dry-run and plan."""
    bound = "at least " if estimator.lower_bound else ""
    cap = req.guards
    if cap.max_parts is not None and estimator.parts > cap.max_parts:
        raise SmsCliError(f"the estimate is {bound}{estimator.parts} parts, over --max-parts {cap.max_parts}; "
                          "nothing was sent")
    if cap.max_cost is not None:
        if estimator.unpriced:
            raise SmsCliError(f"--max-cost needs a price for {', '.join(sorted(estimator.unpriced))} "
                              f"(prices: in provider {provider.settings.name!r}, or a default); nothing was sent")
        if estimator.cost > cap.max_cost:
            raise SmsCliError(f"the estimate is {bound}{estimator.cost:.4f}, over --max-cost {cap.max_cost:g}; "
                              "nothing was sent")


def _dry_run(camp: Campaign, policy, summary, progress, on_start, options=None) -> Summary:
    """The same stream as a send, with the journal only read: shows what the ledger would skip."""
    req, provider, validator = camp.req, camp.provider, camp.validator
    journal = None
    if camp.journal_path.exists():
        journal = journal_mod.Journal(camp.journal_path, readonly=True, rehearsal=camp.rehearsal)
    try:
        choice = camp.forecast(journal)
        ws = choice.ws
        if ws is not None:
            summary.resumed, summary.previous = True, journal.counts(ws.id)
        guards = guards_mod.build(camp.cfg, provider.settings, req.guards, validator.region,
                                  first_started=ws.created if ws is not None else timestamp())
        if on_start:
            on_start(provider, camp.cfg, camp.source)
        estimator = Estimator(validator.templates, prices(provider.settings))
        execute(camp.source, validator, provider, Ledger(), choice.ident, options or req.options, policy, summary,
                resend=choice.resend, taken=choice.taken, guards=guards, estimator=estimator, progress=progress,
                router=camp.router, held=held_mod.for_campaign(camp, choice.ident))
        if req.guards.max_cost is not None or req.guards.max_parts is not None:
            _check_caps(req, provider, estimator)
        return summary
    finally:
        if journal is not None:
            journal.close()


def config_check(path: str | None) -> tuple[list[str], bool]:
    """Load and resolve the config; report missing variables and values still at the starter's
    placeholders by name, never secret values."""
    cfg = load_config(path, strict_env=False)
    where = cfg.path or "(no config file: built-in outbox provider)"
    lines = [f"config: {where}"]
    ok = True
    if cfg.missing_vars:
        ok = False
        lines.append("missing environment variables: " + ", ".join(cfg.missing_vars))
    lines += [f"warning: {w}" for w in cfg.warnings]
    for name, settings in cfg.providers.items():
        provider = make_provider(settings, cfg.templates, concurrency=1)
        d = provider.describe()
        mark = "*" if name == cfg.default_provider else " "
        lines.append(f"{mark} {name}: type={d['type']} endpoint={d['endpoint']} batch_limit={d['batch_limit']} "
                     f"rate_limit={d['rate_limit']}/s max_attempts={d['max_attempts']}")
        missing = provider.missing_settings()
        provider.close()
        if missing:
            ok = False
            lines.append(f"    not set: {', '.join(missing)}")
        left = placeholders_left(settings.options)
        if left:  # an untouched `config init` starter must not pass
            ok = False
            lines.append(f"    still the starter's placeholder: {', '.join(left)} (put your account's values there)")
    lines.append(f"templates: {len(cfg.templates)}")
    return lines, ok


def validate(req: SendRequest):
    """Check every row exactly as `send` would. -> (rows read, iterator of Rejected) via a
    generator that yields (raw, Rejected) and returns the row count."""
    camp = Campaign.open(req, sending=False, locate=False)
    guards = guards_mod.build(camp.cfg, camp.provider.settings, req.guards, camp.validator.region)
    validator = camp.validator
    rows = 0
    try:
        for raw in camp.source.rows():
            rows += 1
            result = validator.validate(raw)
            if not isinstance(result, Rejected) and camp.router is not None:  # a route, a provider that takes it
                unroutable = camp.router.check(result)
                result = Rejected(raw.seq, raw.line, *unroutable) if unroutable else result
            if not isinstance(result, Rejected):
                stopped = guards.static(result)  # suppression and countries
                if stopped is None:
                    continue
                result = Rejected(raw.seq, raw.line, stopped[1], stopped[2])
            yield raw, result
    finally:
        camp.close()
    return rows


# --- the estimate before a live send ---------------------------------------------------------
ACCOUNT_KEYS = ("account_id", "sms_sdk_app_id")  # settings that name the account (never secrets)


@dataclass(frozen=True)
class Estimate:
    """What a send would send, counted as `plan` counts it."""
    provider: str
    provider_type: str
    account: str | None  # the account or app id in the provider's settings, if it has one
    messages: int
    parts: int
    cost: float | None  # None: the provider has no prices in config
    lower_bound: bool  # some templates have no text in config: they count one part
    unpriced: tuple[str, ...]


def estimate(req: SendRequest) -> Estimate:
    """The dry run of `req` (the journal only read, no secrets needed, nothing written), as the
    figures a confirmation shows. Never refuses: --max-cost/--max-parts are the send's business."""
    seen = {}

    def started(provider, cfg, source):
        seen["settings"] = provider.settings

    with leaving_journal_as_found(req):
        uncapped = replace(req.guards, max_cost=None, max_parts=None)  # the send refuses, not the question
        dry = send(replace(req, guards=uncapped, options=replace(req.options, dry_run=True)), on_start=started)
    plan = plan_dict(dry)
    settings = seen.get("settings")
    account = next((settings.get(k) for k in ACCOUNT_KEYS if settings is not None and settings.get(k)), None)
    return Estimate(dry.provider, dry.provider_type, account, plan["to_send"], plan["parts"], plan["cost"],
                    plan["lower_bound"], tuple(plan["unpriced"]))


# --- sms-cli status ---------------------------------------------------------------------------
@dataclass
class Status:
    """What the journal knows about an input's working set, and what a re-run would do."""
    input: str
    journal: str
    journal_exists: bool
    found: bool = False  # the journal holds a working set for this input
    resend_of: str | None = None  # the input is a failures file written from this set (its name)
    working_set: dict | None = None
    other_version: dict | None = None  # no set for this content, but one for another version
    active: bool = False  # a send holds the journal now
    runs: list = field(default_factory=list)  # journal.RunRecord, oldest first
    journal_states: dict[str, int] = field(default_factory=dict)
    failures_file: str | None = None
    failures_file_exists: bool = False
    rerun: Summary | None = None  # the dry run of the same command: what a re-run would send
    receipts: dict[str, int] | None = None  # rows per delivery receipt status (None: the journal has none)
    notes: list[str] = field(default_factory=list)  # rehearsals kept apart, the journal the index found

    @property
    def exit_code(self) -> int:
        """0 nothing left to do; 1 a re-run would send something or rows are not accepted;
        2 the journal has no record of this input (as for any input it cannot read)."""
        if not self.found or self.rerun is None:
            return int(ExitCode.USAGE)
        s = self.rerun
        done = s.n(Fate.ACCEPTED_EARLIER) + s.n(Fate.DUPLICATE)
        # every row a re-run would still act on, unknown and deferred ones included, is a row
        # not accepted yet: the question is whether anything is left, not what the send would exit
        return int(exit_code({Fate.NOT_SENT: s.rows - done}))


# every journal state by its public name, in the order the JSON shows them
JOURNAL_STATES = tuple(s.public for s in RowState)


def status(req: SendRequest) -> Status:
    """The runs the journal recorded for `req.input`, its rows' states, the failures file, and
    the dry run of a re-run with the latest run's options. Needs no secrets and writes nothing
    (no journal is created when there is none)."""
    with Campaign.open(req, sending=False) as camp:
        source, jpath, fpath, rehearsal = camp.source, camp.journal_path, camp.failures_path, camp.rehearsal
        digest, display, ref = source.digest, source.display, source.first_ref()
        notes = list(camp.notes)
    st = Status(display, str(jpath), jpath.exists(), failures_file=str(fpath), failures_file_exists=fpath.exists(),
                notes=notes)
    if not st.journal_exists:
        return st
    with journal_mod.Journal.leave_as_found(jpath):
        _status_from_journal(st, req, jpath, digest, ref, rehearsal)
    return st


def _rehearsal_note(journal, digest: str) -> str | None:
    """What the other kind of set (rehearsal / real) of this content holds, for `status`."""
    twin = journal.other_kind(digest)
    if twin is None:
        return None
    n = journal.counts(twin.id).get(RowState.ACCEPTED, 0)
    if twin.rehearsal:
        return (f"{n} rows were only rehearsed through the outbox (nothing left the machine): they count "
                "for rehearsals only, and a send through a real provider sends them")
    return f"{n} rows of this content were accepted through a real provider (status with that provider shows them)"


def _status_from_journal(st: Status, req: SendRequest, jpath: Path, digest: str, ref: str | None,
                         rehearsal: bool = False) -> None:
    journal = journal_mod.Journal(jpath, readonly=True, rehearsal=rehearsal)
    try:
        twin = _rehearsal_note(journal, ref.partition(":")[0] if ref and ":" in ref else digest)
        if twin:
            st.notes.append(twin)
        ws = None
        if ref and ":" in ref:  # a failures file: its rows belong to the set they were written from
            ws = journal.find_set(ref.partition(":")[0])
            st.resend_of = ws.name if ws is not None else None
        if ws is None:
            ws = journal.find_set(digest)
        if ws is None:
            other = journal.other_version(paths.base(req.input, digest).name, digest)
            if other is not None:
                end = journal.set_status(other.id)
                st.other_version = {"name": other.name, "status": getattr(end, "public", end),
                                    "journal_states": _states(journal.counts(other.id))}
            return
        st.found = True
        st.working_set = {"name": ws.name, "generation": ws.generation, "created": ws.created,
                          "continued_from_edited": ws.linked is not None}
        st.runs = journal.runs(ws.id)
        st.journal_states = _states(journal.counts(ws.id))
        st.active = journal.in_use()
        try:
            st.receipts = journal.receipt_counts(ws.id)
        except SmsCliError:  # a journal from before receipts: nothing collected
            st.receipts = None
    finally:
        journal.close()
    last = st.runs[-1].options if st.runs else {}
    provider = req.provider or _configured(req.config, last.get("provider"))
    options = Options(limit=last.get("limit"), dedupe=bool(last.get("dedupe")),
                      only_retryable=bool(last.get("only_retryable")), retry_unknown=bool(last.get("retry_unknown")),
                      dry_run=True)
    # the guard flags the latest run was given (the suppression list, quiet hours, countries,
    # validity, spend caps): the forecast applies them as that send did
    flags = {k: last[k] for k in _GUARD_FIELDS if last.get(k) is not None and k not in ("max_cost", "max_parts")}
    guards = replace(req.guards, **{k: v for k, v in flags.items() if getattr(req.guards, k) is None})
    st.rerun = send(replace(req, provider=provider, journal=str(jpath), options=options, guards=guards))


_GUARD_FIELDS = tuple(f.name for f in fields(GuardOptions))


def _guard_flags(g: GuardOptions) -> dict:
    """The guard flags a send was given, as its run records them (for status's forecast)."""
    return {k: getattr(g, k) for k in _GUARD_FIELDS if getattr(g, k) is not None}


def _states(counts: dict[str, int]) -> dict[str, int]:
    """Every journal state by its public name, zero included (and any state a later version adds)."""
    return {**{k: 0 for k in JOURNAL_STATES}, **public_counts(counts)}


def _configured(config: str | None, name: str | None) -> str | None:
    """The latest run's provider section when the config still has it (else the default)."""
    if not name:
        return None
    try:
        cfg = load_config(config, strict_env=False)
    except SmsCliError:
        return None  # the dry run loads it again and reports the problem
    return name if name in cfg.providers else None
