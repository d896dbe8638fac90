"""The config loader: YAML with ${VAR} expansion -> the typed settings of settings.py.

Every scalar is read as a string (a custom loader drops YAML's int/float/bool guessing), so a
sender id or a parameter like `0123` is never turned into a number; the few numeric keys are
converted here, explicitly. Unknown keys are errors so a typo never passes silently.
"""
from __future__ import annotations

import math
import os
import re
import stat
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from ..core.errors import ConfigError
from ..core.textsafe import printable
from ..guards.settings import check_config
from ..input.rows import display_name
from ..providers import PROVIDERS, provider_class
from ..run.routes import parse_routes
from ..core.settings import (COMMON_PROVIDER_KEYS, DEFAULT_BACKOFF, DEFAULT_CONNECT_TIMEOUT, DEFAULT_GRACE_PERIOD,
                       DEFAULT_MAX_ATTEMPTS, DEFAULT_READ_TIMEOUT, GUARD_KEYS, MAX_ATTEMPTS, MAX_CONFIG_BYTES,
                       MAX_DEPTH, MAX_RATE_LIMIT, MAX_SECONDS, MAX_TIMEOUT, PROVIDER_GUARD_KEYS, TEMPLATE_KEYS,
                       TOP_KEYS, Config, ProviderSettings, Template, builtin_config)

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class _StringLoader(yaml.SafeLoader):
    """SafeLoader that keeps every scalar a string (null stays None), refuses anchors and
    aliases (a config needs neither; they make alias bombs and self-referencing values),
    bounds nesting, and refuses a key given twice in one mapping."""

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise yaml.composer.ComposerError(None, None, "YAML aliases (*name) are not supported in a config; "
                                              "write the value out", event.start_mark)
        if getattr(event, "anchor", None) is not None:
            raise yaml.composer.ComposerError(None, None, "YAML anchors (&name) are not supported in a config; "
                                              "write the value out", event.start_mark)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise yaml.composer.ComposerError(None, None, f"nested more than {MAX_DEPTH} levels deep",
                                                  event.start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen = set()
            for key_node, _ in node.value:
                if isinstance(key_node, yaml.ScalarNode):
                    if key_node.value in seen:
                        raise yaml.constructor.ConstructorError(
                            None, None, f"the key {printable(key_node.value)!r} appears twice in one mapping",
                            key_node.start_mark)
                    seen.add(key_node.value)
        return super().construct_mapping(node, deep)


_StringLoader.yaml_implicit_resolvers = {
    ch: [(tag, rx) for tag, rx in resolvers if tag == "tag:yaml.org,2002:null"]
    for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}



def user_config_path() -> Path:
    """$XDG_CONFIG_HOME/sms-cli/config.yaml, or ~/.config/sms-cli/config.yaml."""
    base = os.environ.get("XDG_CONFIG_HOME") or ""
    root = Path(base) if os.path.isabs(base) else Path.home() / ".config"  # the spec ignores relative values
    return root / "sms-cli" / "config.yaml"


def find_config(explicit: str | None) -> Path | None:
    """--config, $SMS_CLI_CONFIG, ./sms-cli.yaml, then the user's own config
    ($XDG_CONFIG_HOME/sms-cli/config.yaml, default ~/.config/sms-cli/config.yaml); None: none."""
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
    if path.is_fifo() or path.is_char_device() or path.is_block_device() or path.is_socket():
        # reading one would block, or never end
        raise ConfigError(f"{_shown_path(path)}: not a regular file: not a config file")
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"{_shown_path(path)}: config file not found") from None
    except OSError as exc:
        raise ConfigError(f"{_shown_path(path)}: cannot read config: {exc.strerror or exc}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{_shown_path(path)}: larger than {MAX_CONFIG_BYTES >> 10} KiB: not a config file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(f"{_shown_path(path)}:{line}: cannot read config: not UTF-8 text") from None
    raw = _load_yaml(text, path)
    cfg = parse_config(raw or {}, path)
    if cfg.missing_vars and strict_env:
        names = ", ".join(cfg.missing_vars)
        raise ConfigError(f"{path}: environment variable not set: {names}")
    _warn_literal_secrets(cfg, raw or {})
    return cfg


def _shown_path(path: Path) -> str:
    return display_name(str(path))


def _load_yaml(text: str, path: Path) -> Any:
    try:
        return yaml.load(text, Loader=_StringLoader)  # noqa: S506 - string-only SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{_shown_path(path)}{where}: {printable(str(problem))}") from None
    except RecursionError:  # the composer is bounded; this is a last guard
        raise ConfigError(f"{_shown_path(path)}: nested too deeply") from None


def parse_config(raw: Any, path: Path | None) -> Config:

    where = _shown_path(path) if path else "config"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping at the top level")
    _no_unknown(raw, TOP_KEYS, where)
    missing: list[str] = []
    providers: dict[str, ProviderSettings] = {}
    for name, section in _mapping(raw.get("providers"), f"{where}: providers").items():
        here = f"{where}: providers.{printable(_key(name, f'{where}: providers'))}"
        if not isinstance(section, dict):
            raise ConfigError(f"{here}: expected a mapping")
        ptype = section.get("type")
        if ptype is not None and not isinstance(ptype, str):
            raise ConfigError(f"{here}.type: expected a name such as uspeedo, got {_kind(ptype)}")
        cls = provider_class(ptype) if ptype else None
        if cls is None:

            raise ConfigError(f"{here}.type: must be one of {', '.join(PROVIDERS)} (got {_show(ptype)})")
        _no_unknown(section, COMMON_PROVIDER_KEYS | set(cls.config_keys), here)
        values, unresolved = {}, set()
        for k, v in section.items():
            before = len(missing)
            values[k] = _expand(v, missing, f"{here}.{k}")
            if len(missing) > before:
                unresolved.add(k)
        providers[str(name)] = _provider_settings(str(name), values, cls, here, missing, unresolved)
    templates = {}
    for tid, entry in _mapping(raw.get("templates"), f"{where}: templates").items():
        tid = _key(tid, f"{where}: templates")
        templates[tid] = _template(tid, entry, f"{where}: templates.{printable(tid)}")
    default = raw.get("default_provider")
    if default is not None and not isinstance(default, str):
        raise ConfigError(f"{where}: default_provider: expected a provider name, got {_kind(default)}")
    if default is not None and default not in providers:
        raise ConfigError(f"{where}: default_provider {_show(default)} is not a configured provider")
    region = _expand(raw.get("default_region"), missing, f"{where}: default_region")
    if region is not None and not isinstance(region, str):
        raise ConfigError(f"{where}: default_region: expected a region code such as HK, got {_kind(region)}")
    grace = raw.get("grace_period")
    guards = {k: _expand(raw[k], missing, f"{where}: {k}") for k in GUARD_KEYS if raw.get(k) is not None}
    cfg = Config(path, default, region.upper() if region else None, providers, templates,
                 missing_vars=sorted(set(missing)),
                 grace_period=DEFAULT_GRACE_PERIOD if grace in (None, "")
                 else _number(grace, f"{where}: grace_period", high=MAX_SECONDS),
                 guards=guards, routes=parse_routes(raw.get("routes"), providers, where))
    check_config(cfg, where)
    return cfg


def _no_unknown(section: dict, allowed: set[str], where: str) -> None:
    for key in section:
        if key not in allowed:
            raise ConfigError(f"{where}: unknown key {_show(key)} (allowed: {', '.join(sorted(allowed))})")


def _mapping(value: Any, where: str) -> dict:
    """A section that must be a mapping (or absent)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a mapping of names to settings, got {_kind(value)}")
    return value


def _key(name: Any, where: str) -> str:
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where}: every entry needs a name (got {_show(name)})")
    return name


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    return _show(value)


def _show(value: Any) -> str:
    """A value for an error message: escaped and short (never a whole hostile document)."""
    text = printable(repr(value))
    return text if len(text) <= 60 else text[:60] + "..."


def _expand(value: Any, missing: list[str], where: str) -> Any:
    if isinstance(value, dict):
        return {k: _expand(v, missing, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, missing, f"{where}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def sub(m: re.Match) -> str:
        name = m.group(1)
        if name not in os.environ:
            missing.append(name)
            return ""
        return os.environ[name]

    return _VAR.sub(sub, value)


def _number(value: Any, where: str, kind=float, *, low: float = 0.0, high: float | None = None,
            low_open: bool = False):
    """A number within [low, high] ((low, high] with low_open): finite, never nan or inf."""
    if isinstance(value, (dict, list, tuple, bool)) or value is None:
        raise ConfigError(f"{where}: expected a number, got {_kind(value)}")
    text = value.strip() if isinstance(value, str) else value
    try:
        out = kind(text)
    except (TypeError, ValueError, OverflowError):
        what = "a whole number" if kind is int else "a number"
        raise ConfigError(f"{where}: expected {what}, got {_show(value)}") from None
    if isinstance(out, float) and not math.isfinite(out):
        raise ConfigError(f"{where}: must be a finite number, got {_show(value)}")
    if out < low or (low_open and out == low):
        raise ConfigError(f"{where}: must be {'more than' if low_open else 'at least'} {_fmt(low)}, got {_show(value)}")
    if high is not None and out > high:
        raise ConfigError(f"{where}: must be at most {_fmt(high)}, got {_show(value)}")
    return out


def _fmt(n: float) -> str:
    return str(int(n)) if float(n).is_integer() else str(n)


def _endpoint(value: Any, where: str) -> str:
    """An http:// or https:// URL with a host and a valid port."""
    if not isinstance(value, str):
        raise ConfigError(f"{where}: expected a URL such as https://host/path, got {_kind(value)}")
    text = value.strip()
    if any(ch.isspace() or not ch.isprintable() for ch in text):
        raise ConfigError(f"{where}: a URL holds no spaces or control characters, got {_show(value)}")
    try:
        url = urlsplit(text)
        port = url.port
        host = url.hostname
    except ValueError as exc:
        raise ConfigError(f"{where}: not a valid URL ({exc}): {_show(value)}") from None
    if url.scheme.lower() not in ("http", "https"):
        raise ConfigError(f"{where}: must be an http:// or https:// URL, got {_show(value)}")
    if not host:
        raise ConfigError(f"{where}: the URL has no host: {_show(value)}")
    if port == 0:
        raise ConfigError(f"{where}: port 0 is not a port: {_show(value)}")
    return text


def _rate_backend(value: Any, where: str) -> str:
    """redis://[:PASSWORD@]HOST:PORT/DB: the Redis every process sending through this account
    shares its rate limit in (ratebackend.py)."""
    if not isinstance(value, str):
        raise ConfigError(f"{where}: expected a URL such as redis://127.0.0.1:6379/0, got {_kind(value)}")
    text = value.strip()
    try:
        url = urlsplit(text)
        port, host = url.port, url.hostname
    except ValueError as exc:
        raise ConfigError(f"{where}: not a valid URL ({exc})") from None
    db = url.path.strip("/")
    if url.scheme.lower() not in ("redis", "rediss") or not host or port == 0 or not (db == "" or db.isdigit()):
        # the value itself is not shown: it may hold the Redis password
        raise ConfigError(f"{where}: expected redis://HOST:PORT/DB (or rediss:// for TLS)")
    return text


def _provider_settings(name, values, cls, here, missing, unresolved=frozenset()) -> ProviderSettings:
    connect, read = DEFAULT_CONNECT_TIMEOUT, DEFAULT_READ_TIMEOUT
    timeout = values.get("timeout")
    seconds = {"low_open": True, "high": MAX_TIMEOUT}
    if isinstance(timeout, dict):
        _no_unknown(timeout, {"connect", "read"}, f"{here}.timeout")
        connect = _number(timeout.get("connect", connect), f"{here}.timeout.connect", **seconds)
        read = _number(timeout.get("read", read), f"{here}.timeout.read", **seconds)
    elif timeout is not None:
        read = _number(timeout, f"{here}.timeout", **seconds)
    base, cap = DEFAULT_BACKOFF
    backoff = values.get("backoff")
    if backoff is not None:
        if not isinstance(backoff, dict):
            raise ConfigError(f"{here}.backoff: expected a mapping such as {{base: 0.5, cap: 30}}")
        _no_unknown(backoff, {"base", "cap"}, f"{here}.backoff")
        base = _number(backoff.get("base", base), f"{here}.backoff.base", high=MAX_SECONDS)
        cap = _number(backoff.get("cap", cap), f"{here}.backoff.cap", high=MAX_SECONDS)
    rate = values.get("rate_limit")
    attempts = values.get("max_attempts")
    for k, v in values.items():
        if k not in COMMON_PROVIDER_KEYS and isinstance(v, (dict, list)):
            raise ConfigError(f"{here}.{k}: expected a single value, got {_kind(v)}")
    endpoint = values.get("endpoint")
    if endpoint not in (None, "") and "endpoint" not in unresolved:
        endpoint = _endpoint(endpoint, f"{here}.endpoint")
    options = {k: ("" if v is None else str(v)) for k, v in values.items()
               if k not in COMMON_PROVIDER_KEYS}
    guards = {k: values[k] for k in PROVIDER_GUARD_KEYS if values.get(k) is not None}
    for key, env in cls.env_defaults.items():  # conventional credential variables
        if not options.get(key) and os.environ.get(env):
            options[key] = os.environ[env]
    secrets = frozenset(v for k, v in options.items() if k in cls.secret_keys and v)
    backend = values.get("rate_backend") if "rate_backend" not in unresolved else None
    if backend not in (None, ""):
        backend = _rate_backend(backend, f"{here}.rate_backend")
        password = urlsplit(backend).password
        secrets |= {password} if password else frozenset()
    ptype = values["type"]
    settings = ProviderSettings(
        name=name, type=ptype, endpoint=endpoint or None,
        rate_limit=_number(rate, f"{here}.rate_limit", high=MAX_RATE_LIMIT) if rate not in (None, "") else None,
        connect_timeout=connect, read_timeout=read,
        max_attempts=_number(attempts, f"{here}.max_attempts", int, low=1, high=MAX_ATTEMPTS)
        if attempts not in (None, "") else DEFAULT_MAX_ATTEMPTS,
        options=options, secrets=secrets, backoff_base=base, backoff_cap=cap, guards=guards,
        rate_backend=backend or None,
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
        if not all(isinstance(p, str) and p for p in params):
            raise ConfigError(f"{where}.params: expected parameter names (a list of words) or a count")
        if len(set(params)) != len(params):
            raise ConfigError(f"{where}.params: a parameter name appears twice")
        names = tuple(params)
        count = len(names)
    elif isinstance(params, dict):
        raise ConfigError(f"{where}.params: expected a list of parameter names or a count, got a mapping")
    elif params not in (None, ""):
        count = _number(params, f"{where}.params", int, high=99)
    text = entry.get("text")
    if text is not None and not isinstance(text, str):
        raise ConfigError(f"{where}.text: expected the template's text, got {_kind(text)}")
    return Template(tid, names, count, text)


def _warn_literal_secrets(cfg: Config, raw: dict) -> None:
    """Warn (naming the file, never the value) when a literal secret sits in a readable file."""

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
