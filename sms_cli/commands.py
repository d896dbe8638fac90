"""What each command does, as library calls: the CLI parses arguments into a `SendRequest`,
calls one function here and prints what it returns."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from . import failures as failures_mod
from . import journal as journal_mod
from .config import Config, load_config
from .errors import SmsCliError
from .logs import register_secrets
from .providers import make_provider
from .rows import open_source
from .send import Options, Run, Summary, run_identity, signals
from .validate import Defaults, Validator


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
    source = open_source(req.input, req.fmt)
    defaults = Defaults(req.template, tuple(req.params), req.sender_id)
    validator = Validator(cfg.templates, req.region or cfg.default_region, defaults, provider,
                          key_prefix=source.digest[:12] + "-")
    return cfg, provider, source, validator


def send(req: SendRequest, progress=None, on_start=None) -> Summary:
    cfg, provider, source, validator = setup(req)
    journal = writer = None
    try:
        if req.options.dry_run:
            run = Run(source, validator, provider, journal=None, failures=None, options=req.options,
                      progress=progress)
            return run.execute()
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
    from .providers import provider_class

    cfg = load_config(path, strict_env=False)
    where = cfg.path or "(no config file: built-in outbox provider)"
    lines = [f"config: {where}"]
    ok = True
    if cfg.missing_vars:
        ok = False
        lines.append("missing environment variables: " + ", ".join(cfg.missing_vars))
    lines += [f"warning: {w}" for w in cfg.warnings]
    for name, settings in cfg.providers.items():
        cls = provider_class(settings.type)
        missing = [k for k in cls.required_keys if not settings.get(k)]
        endpoint = settings.endpoint or cls.default_endpoint or "-"
        rate = settings.rate_limit if settings.rate_limit is not None else cls.default_rate_limit
        mark = "*" if name == cfg.default_provider else " "
        lines.append(f"{mark} {name}: type={settings.type} endpoint={endpoint} batch_limit={cls.max_batch} "
                     f"rate_limit={rate or 'unlimited'}/s max_attempts={settings.max_attempts}")
        if missing:
            ok = False
            hints = [f"{k} (or ${cls.env_defaults[k]})" if k in cls.env_defaults else k for k in missing]
            lines.append(f"    not set: {', '.join(hints)}")
    lines.append(f"templates: {len(cfg.templates)}")
    return lines, ok
