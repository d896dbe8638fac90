"""The campaign: one working set, opened once, and what each command does with it.

`Campaign.open(request)` does, in one place and one order, everything a command needs before it
reads a row: the config, the provider section (its transport and the clock handed in), the
input, the validator, the journal that holds this content (beside the input, or the one the
per-user index knows) and the failures file. Each command is then one call that returns a
value the CLI prints: `send` (the run, or its plan), `plan`, `estimate` and `validate` here,
`status` in status.py. The request goes down from here and never comes back up: the plan, the
spend-cap check and the send are the campaign's, so none of them can resolve the working set
differently from another. `receipts` starts here too (`Campaign.for_receipts`): the journal of a
send, its input when it is at hand, and the sets a send of that input records into.
"""
from __future__ import annotations

import logging
import shlex
import sys
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import phonenumbers

from ..config.load import load_config
from ..core.errors import ConfigError, InputError, SmsCliError
from ..core.logs import register_secrets
from ..core.outcomes import RunEnd, public_counts
from ..core.settings import Config
from ..guards import rules as guards_mod
from ..guards.rules import GuardOptions
from ..guards.settings import prices, timestamp
from ..input.rows import open_source
from ..providers import make_provider
from ..run import router as router_mod
from ..run import shards
from ..run.dispatch import Policy
from ..run.plan import Estimator
from ..run.send import Clock, Summary, execute, run_end
from ..store import failures as failures_mod
from ..store import held as held_mod
from ..store import journal as journal_mod
from ..store import paths, setindex
from ..store.ledger import Ledger
from ..validate.validator import Defaults, Rejected, Validator
from .workingset import (SendRequest, choose_working_set, forecast_working_set, leaving_journal_as_found,
                         locate_journal, receipt_sets, storable)

log = logging.getLogger("sms_cli.campaign")

REHEARSAL = "outbox"  # the provider type that sends nothing: its runs are rehearsals
REHEARSAL_NOTE = ("a rehearsal: the outbox sent nothing anywhere; what it took counts only for rehearsals, "
                  "and a send through a real provider sends these rows")
ACCOUNT_KEYS = ("account_id", "sms_sdk_app_id")  # settings that name the account (never secrets)
GUARD_FIELDS = tuple(f.name for f in fields(GuardOptions))


@dataclass
class Campaign:
    """What a command knows before it reads a row (see the module's docstring)."""
    req: SendRequest
    cfg: Config
    provider: object  # providers.base.Provider (None: receipts, which asks each row's own provider)
    source: object  # input.rows.Source (a ShardSource under --shard); None: receipts from the journal alone
    validator: Validator | None  # None: no input
    journal_path: Path | None  # None: opened without looking for its journal (validate)
    failures_path: Path | None  # receipts: the undelivered failures file (None: no input)
    rehearsal: bool  # the outbox: its runs record into sets of their own
    notes: list[str] = field(default_factory=list)  # what the summary says about where the ledger is
    router: object = None  # run.router.Router: config routes choose each row's provider (None: one provider)
    clock: Clock = field(default_factory=Clock)  # the dispatcher's time and retry pauses
    transport: object = None  # the wire every adapter of this campaign uses (None: their own HTTP sessions)

    @classmethod
    def open(cls, req: SendRequest, *, sending: bool = True, locate: bool = True, transport=None,
             clock: Clock | None = None) -> "Campaign":
        """Everything that can fail before sending. Commands that send nothing (plan, --dry-run,
        validate, status) need no secrets; `validate` (locate=False) reads no journal at all.
        `transport`, `clock`: a scripted wire and a fake clock for tests."""
        cfg = _config(req, strict_env=sending)
        routed = router_mod.routed(cfg, req.provider)
        settings = (cfg.providers[cfg.routes.providers[0]] if routed and not cfg.default_provider
                    else cfg.provider(req.provider))
        provider = make_provider(settings, cfg.templates, concurrency=req.options.concurrency, transport=transport)
        try:
            region = _region(req, cfg)
            source = open_source(req.input, req.fmt, encoding=req.encoding, delimiter=req.delimiter)
        except BaseException:
            provider.close()
            raise
        try:
            # with routes, each row's provider checks it when the router places it there
            validator = _validator(req, cfg, region, source, None if routed else provider)
            if req.shard is not None:
                source = shards.ShardSource(source, req.shard, validator)
            rehearsal = provider.type == REHEARSAL and not routed
            notes: list[str] = []
            jpath = locate_journal(req, source, rehearsal, notes) if locate else None
            fpath = (Path(req.failures) if req.failures
                     else shards.failures_path(req.input, source.fmt, source.digest, req.shard))
        except BaseException:
            provider.close()
            source.cleanup()
            raise
        camp = cls(req, cfg, provider, source, validator, jpath, fpath, rehearsal, notes, clock=clock or Clock(),
                   transport=transport)
        if routed:  # its other sections' adapters: made last, so nothing before can leak them
            camp.router = router_mod.build(cfg, provider, req.options.concurrency, transport)
        return camp

    @classmethod
    def for_receipts(cls, req: SendRequest, *, transport=None) -> "Campaign":
        """`receipts`: the journal of a send and, when it is at hand, its input as the send read
        it (`req.input` None, or "-" with nothing piped: the journal alone). No adapter is made
        here: each row is asked of the provider that sent it (routes spread one run over several),
        made when first needed, with this campaign's `transport`. The sets to ask about:
        `receipt_sets`. Needs no secrets (each provider asked checks its own)."""
        cfg = _config(req, strict_env=False)
        region = _region(req, cfg)
        source = _input_at_hand(req)
        try:
            if req.journal:  # the journal named, never another one the index knows
                jpath = Path(req.journal)
            elif source is not None:  # the journal a send of this input records into, found as send finds it
                jpath = locate_journal(req, source, False, [])
            else:
                raise SmsCliError("give the INPUT the send read, or --journal PATH (a stdin run's journal is "
                                  "sms-stdin-<hash>.journal.sqlite)")
            if not jpath.exists():
                raise SmsCliError(f"{jpath}: no journal (receipts reads the journal of a send; pass the send's "
                                  "INPUT, or --journal PATH)")
            validator = fpath = None
            if source is not None:  # the rows read back as the send read them (routes: no one provider checks)
                validator = _validator(req, cfg, region, source, None)
                fpath = (Path(req.failures) if req.failures
                         else shards.failures_path(req.input, source.fmt, source.digest, None, paths.UNDELIVERED))
        except BaseException:
            if source is not None:
                source.cleanup()
            raise
        return cls(req, cfg, None, source, validator, jpath, fpath, False, transport=transport)

    def receipt_sets(self, journal) -> tuple[list, object | None]:
        """The sets of `journal` (this campaign's, open for writing) that receipts asks about, and
        the input's own: the working-set forecast of send, plan and status (workingset.py)."""
        return receipt_sets(journal, self.source, self.req)

    def close(self) -> None:
        if self.router is not None:
            self.router.close_adapters(but=self.provider)
        if self.provider is not None:
            self.provider.close()
        if self.source is not None:
            self.source.cleanup()

    def __enter__(self) -> "Campaign":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- the send ---------------------------------------------------------------------------
    def send(self, progress=None, on_start=None) -> Summary:
        """The run: the journal opened for writing, the working set chosen (or made), every row
        through the stream and the dispatcher into the ledger, the failures file committed."""
        req, cfg, provider, source, validator = self.req, self.cfg, self.provider, self.source, self.validator
        summary = self.new_summary()
        for p in self.router.providers.values() if self.router is not None else (provider,):
            p.require_settings()
            p.limiter.start()  # a shared rate limit (rate_backend) must answer before anything is sent
        if req.guards.max_cost is not None or req.guards.max_parts is not None:
            # before the journal is opened for writing: a run refused here leaves no trace (no
            # working set, no run, no --valid-for clock started)
            self._check_caps(self.forecast(Summary()))
        if not req.journal:  # the same shard count as the input's earlier runs
            shards.check_layout(req.input, source.digest, req.shard, source.digest)
        self._refuse_input_as_output()
        journal = journal_mod.Journal(self.journal_path, rehearsal=self.rehearsal)
        writer = None
        try:
            choice = choose_working_set(journal, source, req)
            trouble = self._remember(choice.ws)
            if trouble:
                summary.notes.append(trouble)
            log.info("config: %s; journal: %s; failures file: %s", cfg.path or "(none: built-in outbox)",
                     self.journal_path, self.failures_path)
            writer = failures_mod.FailuresWriter(self.failures_path, source.fmt, source.header, validator.defaults,
                                                 getattr(source, "delimiter", ",") or ",",
                                                 getattr(source, "encoding", "utf-8"))
            guards = guards_mod.build(cfg, provider.settings, req.guards, validator.region,
                                      first_started=choice.ws.created)
            ledger = Ledger(journal, writer, choice.ident.ref_of,
                            on_opt_out=guards.suppression.opted_out if guards.suppression is not None else None)
            ledger.start_run(choice.ws, storable(source.display), summary.provider,
                             {"provider": None if self.router else provider.settings.name,
                              "type": summary.provider_type, "limit": req.options.limit,
                              "dedupe": req.options.dedupe, "only_retryable": req.options.only_retryable,
                              "retry_unknown": req.options.retry_unknown, **guard_flags(req.guards)})
            prefix = None
            if choice.resumed:  # rows an earlier process left in flight count as unknown
                previous, *prefix = journal.resume_view(choice.ws.id)
                summary.previous, summary.resumed = public_counts(ledger.earlier(previous)), bool(previous)
            summary.fresh, summary.continued_from = choice.fresh, choice.continued_from
            summary.journal_path = str(self.journal_path)
            if on_start:
                on_start(provider, cfg, source)
            execute(source, validator, provider, ledger, choice.ident, req.options, self._policy(), summary,
                    resend=choice.resend, taken=choice.taken, guards=guards, progress=progress or _quiet,
                    prefix=tuple(prefix) if prefix else None, router=self.router, clock=self.clock,
                    held=held_mod.for_campaign(self, choice.ident))
            summary.resend = resend_args(req, provider.settings.name, cfg.path is not None and self.router is None)
            summary.notes += [ledger.opt_out_error] if ledger.opt_out_error else []  # after execute's own notes
            held_mod.carry_over(ledger, req.input, source, choice.ident, summary.notes)  # rows its file keeps
            self._commit_failures(summary, ledger, writer)
            writer = None
            try:
                ledger.cut_off()
            except SmsCliError as exc:  # those rows stay in flight, which every reader takes for unknown
                summary.notes.append(f"rows an earlier run left in flight are not yet marked unknown: {exc}")
            try:
                journal.finish_run(run_end(summary))
            except SmsCliError as exc:
                summary.stopped, summary.fatal, summary.local = RunEnd.FATAL, summary.fatal or str(exc), True
            return summary
        finally:
            if writer is not None:
                writer.abort()
            journal.close()

    def _commit_failures(self, summary: Summary, ledger: Ledger, writer) -> None:
        if ledger.local_error is not None:
            summary.failures_lost = str(ledger.local_error)
            writer.abort()
            return
        try:
            path, stale = writer.commit()
        except SmsCliError as exc:  # after sending: the run still reports what it did
            summary.failures_lost = str(exc)
            summary.stopped = summary.stopped or RunEnd.FATAL
            summary.fatal = summary.fatal or str(exc)
            summary.local = True
            path, stale = None, False
        summary.failures_path = str(path) if path else None
        summary.stale_removed = str(self.failures_path) if stale else None
        if summary.failures_lost is None and self.req.shard is None:  # a derived file is used up by its send
            summary.consumed, trouble = failures_mod.consume(self.req.input, self.failures_path)
            summary.notes += [trouble] if trouble else []

    # --- the plan ---------------------------------------------------------------------------
    def plan(self, on_start=None) -> Summary:
        """The same stream as a send, with the journal only read: what the ledger would skip,
        what would be sent, its parts and cost. Over --max-cost / --max-parts: refused (exit 2),
        as the send itself would be."""
        summary = self.new_summary()
        self._check_caps(self.forecast(summary, on_start))
        return summary

    def forecast(self, summary: Summary, on_start=None) -> Estimator:
        """Run the send's stream with the journal only read and fill `summary` (what each row
        would become, the requests); -> the estimate of what would be sent (parts, cost)."""
        req, provider, validator = self.req, self.provider, self.validator
        journal = None
        if self.journal_path.exists():
            journal = journal_mod.Journal(self.journal_path, readonly=True, rehearsal=self.rehearsal)
        try:
            choice = forecast_working_set(journal, self.source, req)
            ws = choice.ws
            if ws is not None:
                summary.resumed, summary.previous = True, journal.counts(ws.id)
            guards = guards_mod.build(self.cfg, provider.settings, req.guards, validator.region,
                                      first_started=ws.created if ws is not None else timestamp())
            if on_start:
                on_start(provider, self.cfg, self.source)
            estimator = Estimator(validator.templates, prices(provider.settings))
            execute(self.source, validator, provider, Ledger(), choice.ident, replace(req.options, dry_run=True),
                    self._policy(), summary, resend=choice.resend, taken=choice.taken, guards=guards,
                    estimator=estimator, router=self.router, clock=self.clock,
                    held=held_mod.for_campaign(self, choice.ident))
            return estimator
        finally:
            if journal is not None:
                journal.close()

    def _check_caps(self, estimator: Estimator) -> None:
        """--max-cost / --max-parts against the estimate of what this command would send (the
        ledger's skips and the guards applied): over the cap, nothing is sent (exit 2). The same
        check for send, send --dry-run and plan."""
        bound = "at least " if estimator.lower_bound else ""
        cap = self.req.guards
        if cap.max_parts is not None and estimator.parts > cap.max_parts:
            raise SmsCliError(f"the estimate is {bound}{estimator.parts} parts, over --max-parts {cap.max_parts}; "
                              "nothing was sent")
        if cap.max_cost is not None:
            if estimator.unpriced:
                raise SmsCliError(f"--max-cost needs a price for {', '.join(sorted(estimator.unpriced))} "
                                  f"(prices: in provider {self.provider.settings.name!r}, or a default); "
                                  "nothing was sent")
            if estimator.cost > cap.max_cost:
                raise SmsCliError(f"the estimate is {bound}{estimator.cost:.4f}, over --max-cost {cap.max_cost:g}; "
                                  "nothing was sent")

    # --- what every run shares --------------------------------------------------------------
    def new_summary(self) -> Summary:
        summary = Summary(provider=self.provider.settings.name, provider_type=self.provider.type,
                          notes=list(self.notes))
        if self.router is not None:
            summary.provider = summary.provider_type = "routes"
        if self.rehearsal:
            summary.notes.append(REHEARSAL_NOTE)
        return summary

    def _policy(self) -> Policy:
        s = self.provider.settings
        return Policy(s.max_attempts, s.backoff_base, s.backoff_cap, self.cfg.grace_period)

    def _refuse_input_as_output(self) -> None:
        """--failures or --journal naming the input itself would overwrite what is being read."""
        if self.source.is_stdin:
            return
        for flag, path in (("--failures", self.req.failures), ("--journal", self.req.journal)):
            if path and paths.same_file(Path(path), self.source.path):
                raise SmsCliError(f"{flag} {path} is the input file itself; choose another path")

    def _remember(self, ws) -> str | None:
        """Record in the per-user index that this content was sent from here, into this journal
        (rehearsals are not recorded). -> None, or why the index could not be written."""
        if self.rehearsal:
            return None
        source = self.source
        piped = source.is_stdin or getattr(source, "spooled", False)
        return setindex.record(ws.digest, self.journal_path, storable(source.display) if piped
                               else paths.resolved(source.path))


def _config(req: SendRequest, *, strict_env: bool) -> Config:
    """The config, its secrets masked in every log line from here on."""
    cfg = load_config(req.config, strict_env=strict_env)
    register_secrets(cfg.secrets)
    return cfg


def _region(req: SendRequest, cfg: Config) -> str | None:
    """The region national numbers are read in (--default-region, else the config's)."""
    region = (req.region or cfg.default_region or "").upper() or None
    if region and region not in phonenumbers.SUPPORTED_REGIONS:
        raise ConfigError(f"unknown region {region!r} for national numbers (an ISO code such as HK, SG, GB)")
    return region


def _validator(req: SendRequest, cfg: Config, region: str | None, source, provider) -> Validator:
    """The input's rows as every command reads them: the command-line defaults filled in, and
    each message keyed by the input's content (receipts read them back with the send's keys)."""
    return Validator(cfg.templates, region, Defaults(req.template, tuple(req.params), req.sender_id), provider,
                     key_prefix=source.digest[:12] + "-")


def _input_at_hand(req: SendRequest):
    """The input receipts reads, or None when only the journal is given: no INPUT, or stdin not
    piped again (a terminal is never waited on; piped stdin with nothing on it, beside --journal).
    Opened once: the run reads it once, as the send did."""
    if req.input is None:
        return None
    if req.input == "-":
        try:
            if sys.stdin is None or sys.stdin.isatty():
                return None
        except (AttributeError, ValueError):
            return None
        try:
            return open_source("-", req.fmt)
        except InputError as exc:
            if req.journal and exc.reason == "empty input":
                return None
            raise
    return open_source(req.input, req.fmt)


def _quiet(tally) -> None:
    """No progress display."""


def guard_flags(g: GuardOptions) -> dict:
    """The guard flags a send was given, as its run records them (for status's forecast)."""
    return {k: getattr(g, k) for k in GUARD_FIELDS if getattr(g, k) is not None}


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


# --- each command: one call, one value back -------------------------------------------------------
def send(req: SendRequest, *, progress=None, on_start=None, transport=None, clock: Clock | None = None) -> Summary:
    """`sms-cli send` (with --dry-run: its plan). `progress(tally)` and `on_start(provider, cfg,
    source)` let the CLI draw while it runs; the Summary is the answer."""
    if req.options.dry_run:
        return plan(req, on_start=on_start, transport=transport, clock=clock)
    with Campaign.open(req, sending=True, transport=transport, clock=clock) as camp:
        return camp.send(progress, on_start)


def plan(req: SendRequest, *, on_start=None, transport=None, clock: Clock | None = None) -> Summary:
    """`sms-cli plan` and `send --dry-run`: the send's stream with the journal only read, and
    its folder left as found. Needs no secrets and writes nothing."""
    with leaving_journal_as_found(req), Campaign.open(req, sending=False, transport=transport, clock=clock) as camp:
        return camp.plan(on_start)


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
    """The plan of `req` as the figures a confirmation before a live send shows. Never refuses:
    --max-cost/--max-parts are the send's business."""
    uncapped = replace(req, guards=replace(req.guards, max_cost=None, max_parts=None),
                       options=replace(req.options, dry_run=True))
    with leaving_journal_as_found(uncapped), Campaign.open(uncapped, sending=False) as camp:
        summary = camp.new_summary()
        est = camp.forecast(summary)
        settings = camp.provider.settings
    account = next((settings.get(k) for k in ACCOUNT_KEYS if settings.get(k)), None)
    return Estimate(summary.provider, summary.provider_type, account,
                    sum(size * n for size, n in summary.batch_sizes.items()), est.parts,
                    round(est.cost, 6) if est.prices else None, est.lower_bound,
                    tuple(sorted(est.unpriced)) if est.prices else ())


def validate(req: SendRequest):
    """`sms-cli validate`: every row checked exactly as `send` would. A generator of (raw row,
    Rejected) for each problem, as they are found; it returns the number of rows read."""
    with Campaign.open(req, sending=False, locate=False) as camp:
        guards = guards_mod.build(camp.cfg, camp.provider.settings, req.guards, camp.validator.region)
        validator, router = camp.validator, camp.router
        rows = 0
        for raw in camp.source.rows():
            rows += 1
            result = validator.validate(raw)
            if not isinstance(result, Rejected) and router is not None:  # a route, a provider that takes it
                unroutable = router.check(result)
                result = Rejected(raw.seq, raw.line, *unroutable) if unroutable else result
            if not isinstance(result, Rejected):
                stopped = guards.static(result)  # suppression and countries
                if stopped is None:
                    continue
                result = Rejected(raw.seq, raw.line, stopped[1], stopped[2])
            yield raw, result
    return rows
