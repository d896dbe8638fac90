"""What each command does, as library calls: the CLI parses arguments into a `SendRequest`,
calls one function here and prints what it returns."""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import logging

import phonenumbers

from ..store import failures as failures_mod
from ..store import journal as journal_mod
from ..store import paths
from ..store import setindex
from ..run import router as router_mod
from ..run import shards
from ..config.settings import Config
from ..core.errors import ConfigError
from ..config.load import load_config
from ..core.errors import SmsCliError
from ..core.logs import register_secrets
from ..providers import make_provider
from ..input.rows import open_source
from ..guards import rules as guards_mod
from ..guards.settings import prices, timestamp
from ..run.dispatch import Policy
from ..guards.rules import GuardOptions
from ..store.journal import FINISHED
from ..store.ledger import Ledger
from ..run.plan import Estimator
from ..run.send import Options, Summary, execute, run_status
from ..run.stream import Identity
from ..validate.validator import Defaults, Rejected, Validator


log = logging.getLogger("sms_cli.cli.commands")
REHEARSAL = "outbox"  # the provider type that sends nothing: its runs are rehearsals


@dataclass
class SendRequest:
    input: str
    config: str | None = None
    provider: str | None = None
    fmt: str | None = None
    template: str | None = None
    params: tuple[str, ...] = ()
    sender_id: str | None = None
    region: str | None = None
    failures: str | None = None
    journal: str | None = None
    fresh: bool = False
    yes: bool = False
    continue_edited: bool = False
    options: Options = field(default_factory=Options)
    guards: GuardOptions = field(default_factory=GuardOptions)
    encoding: str | None = None  # --encoding: the input's text encoding (default: detected)
    delimiter: str | None = None  # --delimiter: the CSV field separator (default: detected)
    shard: shards.Shard | None = None  # --shard K/N: only this shard's rows, in its own journal


def setup(req: SendRequest, *, sending: bool = True):
    """Config, provider, input and validator: everything that can fail before sending.
    Checks that send nothing (plan, --dry-run, validate) need no secrets."""
    cfg: Config = load_config(req.config, strict_env=sending)
    register_secrets(cfg.secrets)
    routed = router_mod.routed(cfg, req.provider)
    settings = (cfg.providers[cfg.routes.providers[0]] if routed and not cfg.default_provider
                else cfg.provider(req.provider))
    provider = make_provider(settings, cfg.templates, concurrency=req.options.concurrency)
    region = (req.region or cfg.default_region or "").upper() or None
    if region and region not in phonenumbers.SUPPORTED_REGIONS:
        raise ConfigError(f"unknown region {region!r} for national numbers (an ISO code such as HK, SG, GB)")
    source = open_source(req.input, req.fmt, encoding=req.encoding, delimiter=req.delimiter)
    defaults = Defaults(req.template, tuple(req.params), req.sender_id)
    # with routes, each row's provider checks it when the router places it there (router.py)
    validator = Validator(cfg.templates, region, defaults, None if routed else provider,
                          key_prefix=source.digest[:12] + "-")
    if req.shard is not None:
        source = shards.ShardSource(source, req.shard, validator)
    return cfg, provider, source, validator


def _storable(name: str) -> str:
    """A file name as text SQLite can store: bytes that are not UTF-8 (kept by Python as
    surrogate escapes) become \\xNN, the same way every time."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and a.samefile(b)
    except OSError:
        return False


@dataclass
class WorkingSetChoice:
    ws: object  # journal.WorkingSet: the set this run records into
    ident: Identity
    resend: bool  # the input is a failures file of `ws`
    taken: set[int] | None  # --continue-edited: messages an earlier version accepted
    resumed: bool  # `ws` existed before this run (its states are read once the run has started)
    fresh: bool = False
    continued_from: int | None = None


def choose_working_set(journal, source, req: SendRequest) -> WorkingSetChoice:
    """Which working set this input belongs to; refuses (exit 2) where going on could send an
    accepted message again, or where a flag cannot apply."""
    name = _storable(paths.base(req.input, source.digest).name)
    if req.fresh and req.continue_edited:
        raise SmsCliError("--fresh starts a new working set and --continue-edited joins an earlier one: "
                          "give one of them")
    ref = source.first_ref()
    if ref:  # a failures file: its rows belong to the set they were written from
        origin = _origin(journal, ref)
        if origin is None:
            raise SmsCliError(f"{source.display}: its rows were written from a run that {journal.path} does not "
                              "hold; pass --journal with the journal of the input it came from")
        if req.fresh:
            raise SmsCliError("--fresh starts a working set over: use it with the original input, "
                              "not with its failures file")
        if req.continue_edited:
            raise SmsCliError("--continue-edited joins an edited input to its earlier version; a failures "
                              "file already belongs to the working set it came from: leave the flag out")
        own = journal.find_set(source.digest) or journal.create_set(source.digest, f"{name} (resend)",
                                                                    created=timestamp())
        sets = {origin.ref_prefix: (origin.id, origin.ref_prefix)}
        return WorkingSetChoice(origin, Identity(own.id, own.ref_prefix, journal, sets), True,
                                _taken(journal, origin), True)
    ws = journal.find_set(source.digest)
    fresh = False
    if ws is not None and req.fresh:
        accepted = journal.counts(ws.id).get("accepted", 0)
        if accepted and not req.yes:
            raise SmsCliError(f"{journal.path}: {accepted} rows of this input were already accepted; --fresh "
                              "would send them again. Add --yes to start over anyway")
        ws, fresh = None, True
    resumed = ws is not None
    if ws is None:
        linked = None
        other = None if fresh else journal.other_version(name, source.digest)
        if other is not None:
            if req.continue_edited:
                linked = other.id
            elif journal.set_status(other.id) not in (None, FINISHED):
                counts = journal.counts(other.id)
                raise SmsCliError(
                    f"{source.display} changed since an unfinished run of it ({counts.get('accepted', 0)} rows "
                    f"accepted, {counts.get('unknown', 0) + counts.get('inflight', 0)} unknown). Add "
                    "--continue-edited to send only the messages that run did not accept, or --fresh --yes to "
                    "treat the new version as a new campaign")
        elif req.continue_edited:
            raise SmsCliError(_no_version(name, journal))
        ws = journal.create_set(source.digest, name, linked, created=timestamp())
    elif req.continue_edited and len(journal.link_group(ws.id)) == 1:
        # this content was sent before on its own: join it to the newest other version now
        other = journal.other_version(name, source.digest)
        if other is None:
            raise SmsCliError(_no_version(name, journal))
        journal.link(ws.id, other.id)
        ws = journal.get_set(ws.id)
    return WorkingSetChoice(ws, Identity(ws.id, ws.ref_prefix, journal), False, _taken(journal, ws),
                            resumed, fresh, ws.linked)


def _no_version(name: str, journal) -> str:
    return (f"--continue-edited: {journal.path} holds no other version of {name} to continue; "
            "leave the flag out to send this input as it is")


def _origin(journal, ref: str):
    """The set a failures-file row's sms_ref names. A failures file a rehearsal wrote, resent
    through a real provider (or the other way round), names the same content: its rows are the
    same rows of a set of this journal's kind, made here when there is none yet."""
    prefix = ref.partition(":")[0] if ":" in ref else ""
    if not prefix:
        return None
    origin = journal.find_set(prefix)
    if origin is None and not journal.readonly:
        twin = journal.other_kind(prefix)
        if twin is not None:
            origin = journal.create_set(twin.digest, twin.name, created=timestamp())
    return origin


def _taken(journal, ws) -> set[int] | None:
    """Messages the other versions of this working set (every set joined to it by
    --continue-edited, before or after it) took: never sent again from this one."""
    others = [g for g in journal.link_group(ws.id) if g != ws.id]
    return journal.taken_messages(others) if others else None


def _journal_key(source) -> str:
    """What the ledger knows this input by: a failures file by the set its rows came from."""
    ref = source.first_ref()
    return ref.partition(":")[0] if ref and ":" in ref else source.digest


def _holds(jpath: Path, key: str) -> bool:
    if not jpath.is_file():
        return False
    try:
        with journal_mod.Journal.leave_as_found(jpath):
            j = journal_mod.Journal(jpath, readonly=True)
            try:
                return j.find_set(key) is not None
            finally:
                j.close()
    except SmsCliError:
        return False


def locate_journal(req: SendRequest, source, rehearsal: bool, notes: list[str]) -> Path:
    """The journal this command records into (send) or reads (plan, --dry-run, status). The
    default beside the input, unless it has no record of this content and the per-user index
    knows the journal that has (the same list renamed, behind a symlink, in another folder, or
    a failures file written elsewhere): then that one, said in `notes`. An explicit --journal
    without the record is refused when another journal has it, unless --fresh."""
    jpath = Path(req.journal) if req.journal else shards.journal_path(req.input, source.digest, req.shard)
    journal_mod.refuse_symlink_out(jpath)
    key = _journal_key(source)
    # a shard records into its own journal beside the input: pods of one job must never be led
    # into one shared journal by the index
    if rehearsal or req.shard is not None or _holds(jpath, key):
        return jpath
    here = _resolved(jpath)
    for digest, journal, sent_from in setindex.lookup(key):
        if journal == here or not _holds(Path(journal), digest):
            continue
        if req.journal and not req.fresh:
            raise SmsCliError(f"this content was sent before from {sent_from}, recorded in {journal}; "
                              f"--journal {req.journal} would start a second ledger and send it again. "
                              f"Use --journal {journal} to continue it, or add --fresh to start over")
        if req.journal:
            return jpath
        notes.append(f"this content was sent before from {sent_from}: continuing its working set in {journal}")
        return Path(journal)
    return jpath


def _resolved(path: Path) -> str:
    try:
        return str(path.resolve())
    except (OSError, RuntimeError):
        return str(path)


def resend_args(req: SendRequest, provider_name: str, configured: bool) -> str:
    """The options a resend of this run's failures file needs to continue the same working set
    with the same provider: shell-quoted, each given only when this run had it."""
    import shlex

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


def send(req: SendRequest, progress=None, on_start=None) -> Summary:
    cfg, provider, source, validator = setup(req, sending=not req.options.dry_run)
    journal = writer = None
    policy = Policy(provider.settings.max_attempts, provider.settings.backoff_base,
                    provider.settings.backoff_cap, cfg.grace_period)
    summary = Summary(provider=provider.settings.name, provider_type=provider.type)
    progress = progress or (lambda tally: None)
    router = None
    if router_mod.routed(cfg, req.provider):
        router = router_mod.build(cfg, provider, req.options.concurrency)
        summary.provider = summary.provider_type = "routes"
    rehearsal = provider.type == REHEARSAL and router is None
    try:
        jpath = locate_journal(req, source, rehearsal, summary.notes)
        if rehearsal:
            summary.notes.append("a rehearsal: the outbox sent nothing anywhere; what it took counts only for "
                                 "rehearsals, and a send through a real provider sends these rows")
        if req.options.dry_run:
            return _dry_run(req, cfg, provider, source, validator, jpath, policy, summary, progress, on_start,
                            router)
        for p in router.providers.values() if router is not None else (provider,):
            p.require_settings()
            p.limiter.start()  # a shared rate limit (rate_backend) must answer before anything is sent
        if req.guards.max_cost is not None or req.guards.max_parts is not None:
            # before the journal is opened for writing: a run refused here leaves no trace (no
            # working set, no run, no --valid-for clock started)
            _dry_run(replace(req, options=replace(req.options, dry_run=True)), cfg, provider, source, validator,
                     jpath, policy, Summary(), lambda tally: None, None, router)
        fpath = (Path(req.failures) if req.failures
                 else shards.failures_path(req.input, source.fmt, source.digest, req.shard))
        if not req.journal:  # the same shard count as the input's earlier runs
            shards.check_layout(req.input, source.digest, req.shard, source.digest)
        if not source.is_stdin:
            for flag, path in (("--failures", req.failures), ("--journal", req.journal)):
                if path and _same_file(Path(path), source.path):
                    raise SmsCliError(f"{flag} {path} is the input file itself; choose another path")
        journal = journal_mod.Journal(jpath, rehearsal=rehearsal)
        choice = choose_working_set(journal, source, req)
        if not rehearsal:
            piped = source.is_stdin or getattr(source, "spooled", False)
            trouble = setindex.record(choice.ws.digest, jpath, _storable(source.display) if piped
                                      else _resolved(source.path))
            if trouble:
                summary.notes.append(trouble)
        log.info("config: %s; journal: %s; failures file: %s", cfg.path or "(none: built-in outbox)", jpath, fpath)
        writer = failures_mod.FailuresWriter(fpath, source.fmt, source.header, validator.defaults,
                                             getattr(source, "delimiter", ",") or ",",
                                             getattr(source, "encoding", "utf-8"))
        journal.start_run(choice.ws, _storable(source.display), summary.provider,
                          {"provider": None if router else provider.settings.name, "type": summary.provider_type,
                           "limit": req.options.limit, "dedupe": req.options.dedupe,
                           "only_retryable": req.options.only_retryable, "retry_unknown": req.options.retry_unknown,
                           **_guard_flags(req.guards)})
        prefix = None
        if choice.resumed:  # read after start_run: rows cut off in flight count as unknown
            summary.previous, *prefix = journal.resume_view(choice.ws.id)
            summary.resumed = bool(summary.previous)
        summary.fresh, summary.continued_from = choice.fresh, choice.continued_from
        summary.journal_path = str(jpath)
        guards = guards_mod.build(cfg, provider.settings, req.guards, validator.region,
                                  first_started=choice.ws.created)
        ledger = Ledger(journal, writer, choice.ident.ref_of,
                        on_opt_out=guards.suppression.opted_out if guards.suppression is not None else None)
        if on_start:
            on_start(provider, cfg, source)
        execute(source, validator, provider, ledger, choice.ident, req.options, policy, summary,
                resend=choice.resend, taken=choice.taken, guards=guards, progress=progress,
                prefix=tuple(prefix) if prefix else None, router=router)
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
                summary.stopped = summary.stopped or "fatal"
                summary.fatal = summary.fatal or str(exc)
                summary.local = True
                path, stale = None, False
            summary.failures_path = str(path) if path else None
            summary.stale_removed = str(fpath) if stale else None
        writer = None
        try:
            journal.finish_run(run_status(summary))
        except SmsCliError as exc:
            summary.stopped, summary.fatal, summary.local = "fatal", summary.fatal or str(exc), True
        return summary
    finally:
        if writer is not None:
            writer.abort()
        if journal is not None:
            journal.close()
        if router is not None:
            router.close_adapters(but=provider)
        provider.close()
        source.cleanup()


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


def _dry_run(req, cfg, provider, source, validator, jpath, policy, summary, progress, on_start,
             router=None) -> Summary:
    """The same stream as a send, with the journal only read: shows what the ledger would skip."""
    journal = None
    if jpath.exists():
        journal = journal_mod.Journal(jpath, readonly=True, rehearsal=provider.type == REHEARSAL)
    try:
        ws = journal.find_set(source.digest) if journal is not None else None
        ref = source.first_ref()
        resend = False
        origin = _origin(journal, ref) if ref and journal is not None else None
        if origin is not None:
            own = ws.id if ws else -1
            ident = Identity(own, source.digest[:16], journal, {origin.ref_prefix: (origin.id, origin.ref_prefix)})
            resend, taken = True, _taken(journal, origin)
        elif ws is not None and not req.fresh:
            ident, taken = Identity(ws.id, ws.ref_prefix, journal), _taken(journal, ws)
            if taken is None and req.continue_edited:
                taken = _version_taken(journal, req, source)
        else:
            ident, taken = Identity(-1, source.digest[:16], None), None
            if journal is not None and req.continue_edited and not req.fresh:
                taken = _version_taken(journal, req, source)
        if ws is not None:
            summary.resumed, summary.previous = True, journal.counts(ws.id)
        guards = guards_mod.build(cfg, provider.settings, req.guards, validator.region,
                                  first_started=ws.created if ws is not None else timestamp())
        if on_start:
            on_start(provider, cfg, source)
        estimator = Estimator(validator.templates, prices(provider.settings))
        execute(source, validator, provider, Ledger(), ident, req.options, policy, summary,
                resend=resend, taken=taken, guards=guards, estimator=estimator, progress=progress, router=router)
        if req.guards.max_cost is not None or req.guards.max_parts is not None:
            _check_caps(req, provider, estimator)
        return summary
    finally:
        if journal is not None:
            journal.close()


def _version_taken(journal, req: SendRequest, source) -> set[int] | None:
    """--continue-edited in a dry run: what the send would join this input to (the newest other
    version of its name, and every version linked to that one) has taken these messages."""
    other = journal.other_version(_storable(paths.base(req.input, source.digest).name), source.digest)
    return journal.taken_messages(journal.link_group(other.id)) if other is not None else None


def config_check(path: str | None) -> tuple[list[str], bool]:
    """Load and resolve the config; report missing variables and values still at the starter's
    placeholders by name, never secret values."""
    from .starter import placeholders_left

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
    cfg, provider, source, validator = setup(req, sending=False)
    guards = guards_mod.build(cfg, provider.settings, req.guards, validator.region)
    router = router_mod.build(cfg, provider, 1) if router_mod.routed(cfg, req.provider) else None
    rows = 0
    try:
        for raw in source.rows():
            rows += 1
            result = validator.validate(raw)
            if not isinstance(result, Rejected) and router is not None:  # a route and a provider that takes it
                unroutable = router.check(result)
                result = Rejected(raw.seq, raw.line, *unroutable) if unroutable else result
            if not isinstance(result, Rejected):
                stopped = guards.static(result)  # suppression and countries
                if stopped is None:
                    continue
                result = Rejected(raw.seq, raw.line, stopped[1], stopped[2])
            yield raw, result
    finally:
        if router is not None:
            router.close_adapters(but=provider)
        provider.close()
        source.cleanup()
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
    from .report import plan_dict

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


def leaving_journal_as_found(req: SendRequest):
    """Around a dry run of `req`: the journal's folder is left as it was (journal.py,
    `leave_as_found`). A file input's journal name does not depend on its content; stdin's
    does, so a dry run of stdin without --journal is not covered."""
    if req.input == "-" and not req.journal:
        return nullcontext()
    jpath = Path(req.journal) if req.journal else shards.journal_path(req.input, "", req.shard)
    return journal_mod.Journal.leave_as_found(jpath)


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
        2 the journal has no record of this input."""
        if not self.found or self.rerun is None:
            return 2
        s = self.rerun
        from ..core.outcomes import Fate

        done = s.n(Fate.ACCEPTED_EARLIER) + s.n(Fate.DUPLICATE)
        return 0 if s.rows == done else 1


JOURNAL_STATES = ("accepted", "failed", "retry", "unknown", "inflight", "undelivered")


def status(req: SendRequest) -> Status:
    """The runs the journal recorded for `req.input`, its rows' states, the failures file, and
    the dry run of a re-run with the latest run's options. Needs no secrets and writes nothing
    (no journal is created when there is none)."""
    rehearsal = _provider_type(req) == REHEARSAL
    notes: list[str] = []
    source = open_source(req.input, req.fmt, encoding=req.encoding, delimiter=req.delimiter)
    try:
        digest, fmt, display = source.digest, source.fmt, source.display
        ref = source.first_ref()
        jpath = locate_journal(req, source, rehearsal, notes)
    finally:
        source.cleanup()
    fpath = shards.failures_path(req.input, fmt, digest, req.shard)
    st = Status(display, str(jpath), jpath.exists(), failures_file=str(fpath), failures_file_exists=fpath.exists(),
                notes=notes)
    if not st.journal_exists:
        return st
    with journal_mod.Journal.leave_as_found(jpath):
        _status_from_journal(st, req, jpath, digest, ref, rehearsal)
    return st


def _provider_type(req: SendRequest) -> str | None:
    """The type of the provider section this command would use (None: the config has a problem,
    which the command itself reports)."""
    try:
        return load_config(req.config, strict_env=False).provider(req.provider).type
    except SmsCliError:
        return None


def _rehearsal_note(journal, digest: str) -> str | None:
    """What the other kind of set (rehearsal / real) of this content holds, for `status`."""
    twin = journal.other_kind(digest)
    if twin is None:
        return None
    n = journal.counts(twin.id).get("accepted", 0)
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
                st.other_version = {"name": other.name, "status": journal.set_status(other.id),
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
    """Every journal state, zero included (and any state a later version adds)."""
    return {**{k: 0 for k in JOURNAL_STATES}, **counts}


def _configured(config: str | None, name: str | None) -> str | None:
    """The latest run's provider section when the config still has it (else the default)."""
    if not name:
        return None
    try:
        cfg = load_config(config, strict_env=False)
    except SmsCliError:
        return None  # the dry run loads it again and reports the problem
    return name if name in cfg.providers else None
