"""What each command does, as library calls: the CLI parses arguments into a `SendRequest`,
calls one function here and prints what it returns."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import phonenumbers

from . import failures as failures_mod
from . import journal as journal_mod
from .config import Config, ConfigError, load_config
from .errors import SmsCliError
from .logs import register_secrets
from .providers import make_provider
from .rows import open_source
from .send import Options, Run, Summary, run_identity, signals
from .validate import Defaults, Rejected, Validator


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
    options: Options = field(default_factory=Options)


def setup(req: SendRequest):
    """Config, provider, input and validator: everything that can fail before sending."""
    cfg: Config = load_config(req.config)
    register_secrets(cfg.secrets)
    settings = cfg.provider(req.provider)
    provider = make_provider(settings, cfg.templates, concurrency=req.options.concurrency)
    region = (req.region or cfg.default_region or "").upper() or None
    if region and region not in phonenumbers.SUPPORTED_REGIONS:
        raise ConfigError(f"unknown region {region!r} for national numbers (an ISO code such as HK, SG, GB)")
    source = open_source(req.input, req.fmt)
    defaults = Defaults(req.template, tuple(req.params), req.sender_id)
    validator = Validator(cfg.templates, region, defaults, provider, key_prefix=source.digest[:12] + "-")
    return cfg, provider, source, validator


def send(req: SendRequest, progress=None, on_start=None) -> Summary:
    cfg, provider, source, validator = setup(req)
    journal = writer = None
    try:
        if req.options.dry_run:
            run = Run(source, validator, provider, journal=None, failures=None, options=req.options,
                      progress=progress)
            return run.execute()
        provider.require_settings()
        identity, id_options = run_identity(source, provider, validator)
        jpath = Path(req.journal) if req.journal else journal_mod.default_path(req.input)
        journal = journal_mod.Journal(jpath)
        if req.fresh and not req.yes and journal.accepted_count(identity):
            raise SmsCliError(f"{jpath}: this run already has accepted rows; --fresh would send them "
                              "again. Add --yes to start over anyway")
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        fpath = Path(req.failures) if req.failures else failures_mod.default_path(req.input, source.fmt, stamp)
        writer = failures_mod.FailuresWriter(fpath, source.fmt, source.header, validator.defaults)
        _, previous = journal.start(identity, source.digest, provider.settings.name, id_options, fresh=req.fresh)
        run = Run(source, validator, provider, journal=journal, failures=writer, options=req.options,
                  progress=progress)
        if on_start:
            on_start(run, cfg)
        with signals(run):
            summary = run.execute(previous)
        path, stale = writer.commit()
        writer = None
        summary.failures_path = str(path) if path else None
        summary.stale_removed = str(fpath) if stale else None
        summary.journal_path = str(jpath)
        journal.finish(summary.stopped or ("done" if not summary.not_accepted and not summary.unknown else "incomplete"))
        return summary
    finally:
        if writer is not None:
            writer.abort()
        if journal is not None:
            journal.close()
        provider.close()
        source.cleanup()


def config_check(path: str | None) -> tuple[list[str], bool]:
    """Load and resolve the config; report missing variables by name, never secret values."""
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
    lines.append(f"templates: {len(cfg.templates)}")
    return lines, ok


def validate(req: SendRequest):
    """Check every row exactly as `send` would. -> (rows read, iterator of Rejected) via a
    generator that yields (raw, Rejected) and returns the row count."""
    _, provider, source, validator = setup(req)
    rows = 0
    try:
        for raw in source.rows():
            rows += 1
            result = validator.validate(raw)
            if isinstance(result, Rejected):
                yield raw, result
    finally:
        provider.close()
        source.cleanup()
    return rows
