"""What each command does, as library calls: the CLI parses arguments into a `SendRequest`,
makes one call and prints what it returns. `send`, `plan`, `estimate`, `validate` and `status`
are the campaign's (campaign/): each opens the working set once and goes down from there.
`config check` needs no working set: it is here."""
from __future__ import annotations

from ..campaign import (JOURNAL_STATES, Estimate, SendRequest, Status, estimate, leaving_journal_as_found, plan,
                        send, status, validate)
from ..config.load import load_config
from ..providers import make_provider
from .starter import placeholders_left

__all__ = ["JOURNAL_STATES", "Estimate", "SendRequest", "Status", "config_check", "estimate",
           "leaving_journal_as_found", "plan", "send", "status", "validate"]


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
