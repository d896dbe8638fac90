"""What each command does, as library calls: the CLI parses arguments into a `SendRequest`,
calls one function here and prints what it returns."""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path

import logging

import phonenumbers

from . import failures as failures_mod
from . import journal as journal_mod
from . import paths
from . import router as router_mod
from . import shards
from .config import Config, ConfigError, load_config
from .errors import SmsCliError
from .logs import register_secrets
from .providers import make_provider
from .rows import open_source
from . import guards as guards_mod
from .dispatch import Policy
from .guards import GuardOptions
from .journal import FINISHED
from .ledger import Ledger
from .plan import Estimator
from .send import Options, Summary, execute, run_status
from .stream import Identity
from .validate import Defaults, Rejected, Validator


log = logging.getLogger("sms_cli.commands")


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
    accepted message again."""
    name = _storable(paths.base(req.input, source.digest).name)
    ref = source.first_ref()
    if ref:  # a failures file: its rows belong to the set they were written from
        origin = journal.find_set(ref.partition(":")[0]) if ":" in ref else None
        if origin is None:
            raise SmsCliError(f"{source.display}: its rows were written from a run that {journal.path} does not "
                              "hold; pass --journal with the journal of the input it came from")
        if req.fresh:
            raise SmsCliError("--fresh starts a working set over: use it with the original input, "
                              "not with its failures file")
        own = journal.find_set(source.digest) or journal.create_set(source.digest, f"{name} (resend)",
                                                                    created=guards_mod.timestamp())
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
        other = journal.other_version(name, source.digest)
        if other is not None and not fresh and journal.set_status(other.id) not in (None, FINISHED):
            counts = journal.counts(other.id)
            if not req.continue_edited:
                raise SmsCliError(
                    f"{source.display} changed since an unfinished run of it ({counts.get('accepted', 0)} rows "
                    f"accepted, {counts.get('unknown', 0) + counts.get('inflight', 0)} unknown). Add "
                    "--continue-edited to send only the messages that run did not accept, or --fresh --yes to "
                    "treat the new version as a new campaign")
            linked = other.id
        ws = journal.create_set(source.digest, name, linked, created=guards_mod.timestamp())
    return WorkingSetChoice(ws, Identity(ws.id, ws.ref_prefix, journal), False, _taken(journal, ws),
                            resumed, fresh, ws.linked)


def _taken(journal, ws) -> set[int] | None:
    return journal.taken_messages(ws.linked) if ws.linked else None


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
    try:
        jpath = Path(req.journal) if req.journal else shards.journal_path(req.input, source.digest, req.shard)
        if req.options.dry_run:
            return _dry_run(req, cfg, provider, source, validator, jpath, policy, summary, progress, on_start,
                            router)
        for p in router.providers.values() if router is not None else (provider,):
            p.require_settings()
            p.limiter.start()  # a shared rate limit (rate_backend) must answer before anything is sent
        fpath = (Path(req.failures) if req.failures
                 else shards.failures_path(req.input, source.fmt, source.digest, req.shard))
        if not req.journal:  # the same shard count as the input's earlier runs
            shards.check_layout(req.input, source.digest, req.shard, source.digest)
        if not source.is_stdin:
            for flag, path in (("--failures", req.failures), ("--journal", req.journal)):
                if path and _same_file(Path(path), source.path):
                    raise SmsCliError(f"{flag} {path} is the input file itself; choose another path")
        journal = journal_mod.Journal(jpath)
        choice = choose_working_set(journal, source, req)
        log.info("config: %s; journal: %s; failures file: %s", cfg.path or "(none: built-in outbox)", jpath, fpath)
        writer = failures_mod.FailuresWriter(fpath, source.fmt, source.header, validator.defaults,
                                             getattr(source, "delimiter", ",") or ",")
        journal.start_run(choice.ws, _storable(source.display), summary.provider,
                          {"provider": None if router else provider.settings.name, "type": summary.provider_type,
                           "limit": req.options.limit, "dedupe": req.options.dedupe,
                           "only_retryable": req.options.only_retryable, "retry_unknown": req.options.retry_unknown})
        prefix = None
        if choice.resumed:  # read after start_run: rows cut off in flight count as unknown
            summary.previous, *prefix = journal.resume_view(choice.ws.id)
            summary.resumed = bool(summary.previous)
        summary.fresh, summary.continued_from = choice.fresh, choice.continued_from
        summary.journal_path = str(jpath)
        guards = guards_mod.build(cfg, provider.settings, req.guards, validator.region,
                                  first_started=choice.ws.created)
        if req.guards.max_cost is not None or req.guards.max_parts is not None:
            _check_spend(req, provider, source, validator, choice, guards, policy, router)
        ledger = Ledger(journal, writer, choice.ident.ref_of,
                        on_opt_out=guards.suppression.opted_out if guards.suppression is not None else None)
        if on_start:
            on_start(provider, cfg, source)
        execute(source, validator, provider, ledger, choice.ident, req.options, policy, summary,
                resend=choice.resend, taken=choice.taken, guards=guards, progress=progress,
                prefix=tuple(prefix) if prefix else None, router=router)
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
        for p in router.providers.values() if router is not None else ():
            if p is not provider:
                p.close()
        provider.close()
        source.cleanup()


def _check_spend(req, provider, source, validator, choice, guards, policy, router=None) -> None:
    """--max-cost / --max-parts: estimate what this run would send (the ledger's skips and the
    guards applied) and refuse before anything is sent when it is over the cap."""
    estimator = Estimator(validator.templates, guards_mod.prices(provider.settings))
    dry = Summary()
    execute(source, validator, provider, Ledger(), choice.ident, replace(req.options, dry_run=True), policy, dry,
            resend=choice.resend, taken=choice.taken, guards=guards, estimator=estimator, router=router)
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
        journal = journal_mod.Journal(jpath, readonly=True)
    try:
        ws = journal.find_set(source.digest) if journal is not None else None
        ref = source.first_ref()
        resend = False
        if ref and journal is not None and journal.find_set(ref.partition(":")[0]):
            origin = journal.find_set(ref.partition(":")[0])
            own = ws.id if ws else -1
            ident = Identity(own, source.digest[:16], journal, {origin.ref_prefix: (origin.id, origin.ref_prefix)})
            resend, taken = True, _taken(journal, origin)
        elif ws is not None and not req.fresh:
            ident, taken = Identity(ws.id, ws.ref_prefix, journal), _taken(journal, ws)
        else:
            ident, taken = Identity(-1, source.digest[:16], None), None
        if ws is not None:
            summary.resumed, summary.previous = True, journal.counts(ws.id)
        guards = guards_mod.build(cfg, provider.settings, req.guards, validator.region,
                                  first_started=ws.created if ws is not None else guards_mod.timestamp())
        if on_start:
            on_start(provider, cfg, source)
        return execute(source, validator, provider, Ledger(), ident, req.options, policy, summary,
                       resend=resend, taken=taken, guards=guards,
                       estimator=Estimator(validator.templates, guards_mod.prices(provider.settings)),
                       progress=progress, router=router)
    finally:
        if journal is not None:
            journal.close()


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
    rows = 0
    try:
        for raw in source.rows():
            rows += 1
            result = validator.validate(raw)
            if not isinstance(result, Rejected):
                stopped = guards.static(result)  # suppression and countries
                if stopped is None:
                    continue
                result = Rejected(raw.seq, raw.line, stopped[1], stopped[2])
            yield raw, result
    finally:
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
        dry = send(replace(req, options=replace(req.options, dry_run=True)), on_start=started)
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

    @property
    def exit_code(self) -> int:
        """0 nothing left to do; 1 a re-run would send something or rows are not accepted;
        2 the journal has no record of this input."""
        if not self.found or self.rerun is None:
            return 2
        s = self.rerun
        from .outcomes import Fate

        done = s.n(Fate.ACCEPTED_EARLIER) + s.n(Fate.DUPLICATE)
        return 0 if s.rows == done else 1


JOURNAL_STATES = ("accepted", "failed", "retry", "unknown", "inflight", "undelivered")


def status(req: SendRequest) -> Status:
    """The runs the journal recorded for `req.input`, its rows' states, the failures file, and
    the dry run of a re-run with the latest run's options. Needs no secrets and writes nothing
    (no journal is created when there is none)."""
    source = open_source(req.input, req.fmt, encoding=req.encoding, delimiter=req.delimiter)
    try:
        digest, fmt, display = source.digest, source.fmt, source.display
        ref = source.first_ref()
    finally:
        source.cleanup()
    jpath = Path(req.journal) if req.journal else shards.journal_path(req.input, digest, req.shard)
    fpath = shards.failures_path(req.input, fmt, digest, req.shard)
    st = Status(display, str(jpath), jpath.exists(), failures_file=str(fpath), failures_file_exists=fpath.exists())
    if not st.journal_exists:
        return st
    with journal_mod.Journal.leave_as_found(jpath):
        _status_from_journal(st, req, jpath, digest, ref)
    return st


def _status_from_journal(st: Status, req: SendRequest, jpath: Path, digest: str, ref: str | None) -> None:
    journal = journal_mod.Journal(jpath, readonly=True)
    try:
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
    st.rerun = send(replace(req, provider=provider, journal=str(jpath), options=options))


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
