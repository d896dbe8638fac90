"""YAML config with ${VAR} expansion -> typed settings.

Every scalar is read as a string (a custom loader drops YAML's int/float/bool guessing), so a
sender id or a parameter like `0123` is never turned into a number; the few numeric keys are
converted here, explicitly. Unknown keys are errors so a typo never passes silently.
"""
from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# guards (guards.py reads them): top level, and per provider where a provider may differ
GUARD_KEYS = {"suppression_list", "quiet_hours", "default_timezone", "countries", "valid_for"}
PROVIDER_GUARD_KEYS = {"quiet_hours", "countries", "prices"}
TOP_KEYS = {"default_provider", "default_region", "providers", "templates", "grace_period"} | GUARD_KEYS
COMMON_PROVIDER_KEYS = {"type", "endpoint", "rate_limit", "timeout", "max_attempts", "backoff"} | PROVIDER_GUARD_KEYS
TEMPLATE_KEYS = {"params", "text"}
DEFAULT_MAX_ATTEMPTS = 4
DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_READ_TIMEOUT = 30.0
DEFAULT_BACKOFF = (0.5, 30.0)  # seconds: first retry waits up to base, doubling up to cap
DEFAULT_GRACE_PERIOD = 10.0  # seconds in-flight requests get after SIGINT/SIGTERM


class _StringLoader(yaml.SafeLoader):
    """SafeLoader that keeps every scalar a string (null stays None)."""


_StringLoader.yaml_implicit_resolvers = {
    ch: [(tag, rx) for tag, rx in resolvers if tag == "tag:yaml.org,2002:null"]
    for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


@dataclass(frozen=True)
class Template:
    id: str
    names: tuple[str, ...] | None = None  # named parameters, in positional order
    count: int | None = None  # number of parameters (names given or not)
    text: str | None = None


@dataclass
class ProviderSettings:
    name: str
    type: str
    endpoint: str | None
    rate_limit: float | None  # requests per second; None = the adapter's default
    connect_timeout: float
    read_timeout: float
    max_attempts: int
    options: dict[str, str] = field(default_factory=dict)  # the type's own keys
    backoff_base: float = DEFAULT_BACKOFF[0]
    backoff_cap: float = DEFAULT_BACKOFF[1]
    guards: dict[str, Any] = field(default_factory=dict)  # quiet_hours, countries, prices as written
    secrets: frozenset[str] = frozenset()  # resolved secret values, for redaction

    def get(self, key: str, default: str | None = None) -> str | None:
        value = self.options.get(key)
        return default if value in (None, "") else value


@dataclass
class Config:
    path: Path | None
    default_provider: str | None
    default_region: str | None
    providers: dict[str, ProviderSettings]
    templates: dict[str, Template]
    missing_vars: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    grace_period: float = DEFAULT_GRACE_PERIOD
    guards: dict[str, Any] = field(default_factory=dict)  # GUARD_KEYS as written (guards.py checks them)

    def provider(self, name: str | None) -> ProviderSettings:
        name = name or self.default_provider
        if name is None and not self.providers:  # a config of templates only: the outbox
            return builtin_config().providers["outbox"]
        if name is None:
            if len(self.providers) == 1:
                return next(iter(self.providers.values()))
            raise ConfigError(
                f"{self.path}: several providers and no default_provider; choose one with --provider"
            )
        try:
            return self.providers[name]
        except KeyError:
            known = ", ".join(sorted(self.providers)) or "none"
            raise ConfigError(f"unknown provider {name!r} (configured: {known})") from None

    @property
    def secrets(self) -> frozenset[str]:
        out: set[str] = set()
        for p in self.providers.values():
            out |= p.secrets
        return frozenset(out)


def builtin_config() -> Config:
    """No config file at all: the outbox provider, nothing leaves the machine."""
    outbox = ProviderSettings(
        name="outbox", type="outbox", endpoint=None, rate_limit=None,
        connect_timeout=DEFAULT_CONNECT_TIMEOUT, read_timeout=DEFAULT_READ_TIMEOUT,
        max_attempts=DEFAULT_MAX_ATTEMPTS, options={},
    )
    return Config(None, "outbox", None, {"outbox": outbox}, {})


def find_config(explicit: str | None) -> Path | None:
    """--config, $SMS_CLI_CONFIG, ./sms-cli.yaml, then the user's own config
    ($XDG_CONFIG_HOME/sms-cli/config.yaml, default ~/.config/sms-cli/config.yaml); None: none."""
    from .starter import user_config_path  # late: starter reads the provider classes

    if explicit:
        return Path(explicit)
    env = os.environ.get("SMS_CLI_CONFIG")
    if env:
        return Path(env)
    for candidate in (Path("sms-cli.yaml"), user_config_path()):
        if candidate.is_file():
            return candidate
    return None


def load_config(explicit: str | None = None, *, strict_env: bool = True) -> Config:
    """Load the config; with strict_env=False, missing ${VAR}s are collected, not raised."""
    path = find_config(explicit)
    if path is None:
        return builtin_config()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config: {exc}") from None
    try:
        raw = yaml.load(text, Loader=_StringLoader)  # noqa: S506 - string-only SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{path}{where}: {problem}") from None
    cfg = parse_config(raw or {}, path)
    if cfg.missing_vars and strict_env:
        names = ", ".join(cfg.missing_vars)
        raise ConfigError(f"{path}: environment variable not set: {names}")
    _warn_literal_secrets(cfg, raw or {})
    return cfg


def parse_config(raw: Any, path: Path | None) -> Config:
    from .providers import provider_class  # late: providers import config types

    where = str(path) if path else "config"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping at the top level")
    _no_unknown(raw, TOP_KEYS, where)
    missing: list[str] = []
    providers: dict[str, ProviderSettings] = {}
    for name, section in (raw.get("providers") or {}).items():
        here = f"{where}: providers.{name}"
        if not isinstance(section, dict):
            raise ConfigError(f"{here}: expected a mapping")
        ptype = section.get("type")
        cls = provider_class(ptype) if ptype else None
        if cls is None:
            from .providers import PROVIDERS

            raise ConfigError(f"{here}.type: must be one of {', '.join(PROVIDERS)} (got {ptype!r})")
        _no_unknown(section, COMMON_PROVIDER_KEYS | set(cls.config_keys), here)
        values = {k: _expand(v, missing, f"{here}.{k}") for k, v in section.items()}
        providers[str(name)] = _provider_settings(str(name), values, cls, here, missing)
    templates = {}
    for tid, entry in (raw.get("templates") or {}).items():
        templates[str(tid)] = _template(str(tid), entry, f"{where}: templates.{tid}")
    default = raw.get("default_provider")
    if default is not None and default not in providers:
        raise ConfigError(f"{where}: default_provider {default!r} is not a configured provider")
    region = _expand(raw.get("default_region"), missing, f"{where}: default_region")
    grace = raw.get("grace_period")
    guards = {k: _expand(raw[k], missing, f"{where}: {k}") for k in GUARD_KEYS if raw.get(k) is not None}
    cfg = Config(path, default, region.upper() if region else None, providers, templates,
                 missing_vars=sorted(set(missing)),
                 grace_period=DEFAULT_GRACE_PERIOD if grace in (None, "") else _number(grace, f"{where}: grace_period"),
                 guards=guards)
    from .guards import check_config  # late: guards import validation, which imports config

    check_config(cfg, where)
    return cfg


def _no_unknown(section: dict, allowed: set[str], where: str) -> None:
    for key in section:
        if key not in allowed:
            raise ConfigError(f"{where}: unknown key {key!r} (allowed: {', '.join(sorted(allowed))})")


def _expand(value: Any, missing: list[str], where: str) -> Any:
    if isinstance(value, dict):
        return {k: _expand(v, missing, f"{where}.{k}") for k, v in value.items()}
    if not isinstance(value, str):
        return value

    def sub(m: re.Match) -> str:
        name = m.group(1)
        if name not in os.environ:
            missing.append(name)
            return ""
        return os.environ[name]

    return _VAR.sub(sub, value)


def _number(value: Any, where: str, kind=float):
    try:
        out = kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: expected a number, got {value!r}") from None
    if out < 0:
        raise ConfigError(f"{where}: must not be negative")
    return out


def _provider_settings(name, values, cls, here, missing) -> ProviderSettings:
    connect, read = DEFAULT_CONNECT_TIMEOUT, DEFAULT_READ_TIMEOUT
    timeout = values.get("timeout")
    if isinstance(timeout, dict):
        _no_unknown(timeout, {"connect", "read"}, f"{here}.timeout")
        connect = _number(timeout.get("connect", connect), f"{here}.timeout.connect")
        read = _number(timeout.get("read", read), f"{here}.timeout.read")
    elif timeout is not None:
        read = _number(timeout, f"{here}.timeout")
    base, cap = DEFAULT_BACKOFF
    backoff = values.get("backoff")
    if backoff is not None:
        if not isinstance(backoff, dict):
            raise ConfigError(f"{here}.backoff: expected a mapping such as {{base: 0.5, cap: 30}}")
        _no_unknown(backoff, {"base", "cap"}, f"{here}.backoff")
        base = _number(backoff.get("base", base), f"{here}.backoff.base")
        cap = _number(backoff.get("cap", cap), f"{here}.backoff.cap")
    rate = values.get("rate_limit")
    attempts = values.get("max_attempts")
    options = {k: ("" if v is None else str(v)) for k, v in values.items()
               if k not in COMMON_PROVIDER_KEYS}
    guards = {k: values[k] for k in PROVIDER_GUARD_KEYS if values.get(k) is not None}
    for key, env in cls.env_defaults.items():  # conventional credential variables
        if not options.get(key) and os.environ.get(env):
            options[key] = os.environ[env]
    secrets = frozenset(v for k, v in options.items() if k in cls.secret_keys and v)
    settings = ProviderSettings(
        name=name, type=values["type"], endpoint=values.get("endpoint") or None,
        rate_limit=_number(rate, f"{here}.rate_limit") if rate not in (None, "") else None,
        connect_timeout=connect, read_timeout=read,
        max_attempts=max(1, _number(attempts, f"{here}.max_attempts", int))
        if attempts not in (None, "") else DEFAULT_MAX_ATTEMPTS,
        options=options, secrets=secrets, backoff_base=base, backoff_cap=cap, guards=guards,
    )
    cls.check_settings(settings, here)
    return settings


def _template(tid: str, entry: Any, where: str) -> Template:
    if entry is None:
        return Template(tid)
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: expected a mapping with params and/or text")
    _no_unknown(entry, TEMPLATE_KEYS, where)
    params, names, count = entry.get("params"), None, None
    if isinstance(params, list):
        names = tuple(str(p) for p in params)
        count = len(names)
    elif params not in (None, ""):
        count = _number(params, f"{where}.params", int)
    text = entry.get("text")
    return Template(tid, names, count, None if text is None else str(text))


def _warn_literal_secrets(cfg: Config, raw: dict) -> None:
    """Warn (naming the file, never the value) when a literal secret sits in a readable file."""
    from .providers import provider_class

    if cfg.path is None or os.name != "posix":
        return
    try:
        mode = cfg.path.stat().st_mode
    except OSError:
        return
    if not mode & (stat.S_IRGRP | stat.S_IROTH):
        return
    for section in (raw.get("providers") or {}).values():
        cls = provider_class(section.get("type")) if isinstance(section, dict) else None
        if cls is None:
            continue
        for key in cls.secret_keys:
            value = section.get(key)
            if isinstance(value, str) and value and not _VAR.search(value):
                cfg.warnings.append(
                    f"{cfg.path} holds a literal secret and is readable by group or others; "
                    f"use ${{VAR}} or chmod 600 {cfg.path}"
                )
                return
