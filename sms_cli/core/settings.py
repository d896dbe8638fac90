"""The settings a config holds, as typed values: templates, provider sections and the whole
config, with the defaults and bounds the loader (config/load.py) applies. Every layer may read these;
only config/load.py reads YAML and the environment.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError

# guards (guards.py reads them): top level, and per provider where a provider may differ
GUARD_KEYS = {"suppression_list", "quiet_hours", "default_timezone", "countries", "valid_for"}
PROVIDER_GUARD_KEYS = {"quiet_hours", "countries", "prices"}
TOP_KEYS = {"default_provider", "default_region", "providers", "templates", "grace_period", "routes"} | GUARD_KEYS
COMMON_PROVIDER_KEYS = ({"type", "endpoint", "rate_limit", "rate_backend", "timeout", "max_attempts", "backoff"}
                        | PROVIDER_GUARD_KEYS)
TEMPLATE_KEYS = {"params", "text"}
DEFAULT_MAX_ATTEMPTS = 4
DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_READ_TIMEOUT = 30.0
DEFAULT_BACKOFF = (0.5, 30.0)  # seconds: first retry waits up to base, doubling up to cap
DEFAULT_GRACE_PERIOD = 10.0  # seconds in-flight requests get after SIGINT/SIGTERM
# Bounds: a config is a few KiB written by hand; anything far outside these is a mistake (or an
# attack: a YAML alias bomb of 1 KiB once took 45 s and 3.5 GB), refused at load time.
MAX_CONFIG_BYTES = 256 * 1024  # thousands of templates; PyYAML reads it in about 2 s at worst
MAX_DEPTH = 50  # nesting of mappings and lists
MAX_TIMEOUT = 600.0  # seconds, connect or read
MAX_RATE_LIMIT = 10000.0  # requests per second
MAX_ATTEMPTS = 100
MAX_SECONDS = 3600.0  # backoff base and cap, grace_period


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
    rate_backend: str | None = None  # redis://HOST:PORT/DB: the rate limit shared by every process

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
    routes: Any = None  # run.routes.Routes: which provider each row goes to, and its fallbacks

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
