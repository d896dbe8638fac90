"""`routes:` in the config: which provider section each row goes to, and where it goes when
that provider refuses the account or cannot be reached.

A route is a rule (destination countries as ISO regions, input template ids; both optional)
-> a provider section, then its fallbacks, in order. The first route whose rule matches a row
is the row's route, for the whole run. A route may map each input template id to each
provider's own template id and parameters (`templates:`); a route without that mapping sends
the row's template and parameters unchanged to every provider of it.

    routes:
      - name: mainland
        match: {countries: [CN]}
        provider: aliyun
      - name: world
        provider: tencent
        fallback: [uspeedo]
        templates:
          OTP_LOGIN:
            tencent: {id: "1234567", params: [code]}     # positional, from the input's names
            uspeedo: {id: "tpl-otp", params: ["1"]}      # or positions (1-based)
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import phonenumbers

from ..core.errors import ConfigError
from ..core.model import Message
from ..core.textsafe import printable

ROUTE_KEYS = {"name", "match", "provider", "fallback", "templates"}
MATCH_KEYS = {"countries", "templates"}
MAPPING_KEYS = {"id", "params"}


@dataclass(frozen=True)
class Mapping:
    """What one provider gets for one input template: its own id, and its parameters taken
    from the input's by name or 1-based position (a list: positional; a mapping: named)."""
    id: str
    params: tuple[str, ...] | tuple[tuple[str, str], ...] | None = None
    named: bool = False


@dataclass(frozen=True)
class Route:
    name: str
    providers: tuple[str, ...]  # the provider first, then its fallbacks
    countries: frozenset[str] | None = None  # None: any destination
    templates: frozenset[str] | None = None  # None: any input template
    mapping: dict[str, dict[str, Mapping]] | None = None  # input template -> provider -> Mapping

    def matches(self, region: str, template: str) -> bool:
        return ((self.countries is None or region in self.countries)
                and (self.templates is None or template in self.templates))

    def wire(self, msg: Message, provider: str, names: tuple[str, ...] | None) -> Message | str:
        """The message as `provider` takes it (a copy: the adapter may reshape it in place, and
        a fallback must start from the input's own), or why it cannot take it. `names`: the
        input template's parameter names in config, to read positional params by name."""
        if self.mapping is None:
            return replace(msg, params=_copy(msg.params))
        m = self.mapping.get(msg.template_id, {}).get(provider)
        if m is None:
            return f"route {self.name}: no template mapping for {msg.template_id} on provider {provider}"
        if m.params is None:
            return replace(msg, template_id=m.id, params=_copy(msg.params))
        try:
            if m.named:
                params = {out: _param(msg.params, ref, names) for out, ref in m.params}
            else:
                params = [_param(msg.params, ref, names) for ref in m.params]
        except LookupError as exc:
            return f"route {self.name}: template {msg.template_id} for {provider}: {exc.args[0]}"
        return replace(msg, template_id=m.id, params=params)


    def place(self, msg: Message, candidates, names: tuple[str, ...] | None) -> tuple[str, Message] | list[str]:
        """The first of `candidates` ((section, adapter), in order) that can take `msg`: its name
        and the message as it takes it; else why none can."""
        reasons = []
        for name, provider in candidates:
            wire = self.wire(msg, name, names)
            if not isinstance(wire, str):
                problem = provider.prepare(wire)  # the adapter's own checks, on the mapped copy
                wire = f"{name}: {problem}" if problem else wire
            if not isinstance(wire, str):
                return name, wire
            reasons.append(wire)
        return reasons


def _copy(params):
    return dict(params) if isinstance(params, dict) else list(params)


def _param(params, ref: str, names: tuple[str, ...] | None) -> str:
    if ref.isdigit():
        i = int(ref) - 1
        if isinstance(params, list):
            if 0 <= i < len(params):
                return params[i]
        elif names and 0 <= i < len(names) and names[i] in params:
            return params[names[i]]
        raise LookupError(f"no parameter {ref}")
    if isinstance(params, dict):
        if ref in params:
            return params[ref]
    elif names and ref in names and names.index(ref) < len(params):
        return params[names.index(ref)]
    raise LookupError(f"no parameter {ref!r}")


class Routes:
    def __init__(self, routes: list[Route]):
        self.routes = routes
        self._cache: dict[tuple[str, str], Route | None] = {}

    def __bool__(self) -> bool:
        return bool(self.routes)

    @property
    def providers(self) -> list[str]:
        """Every provider section a route may use, in first-seen order."""
        return list(dict.fromkeys(p for r in self.routes for p in r.providers))

    def route_of(self, msg: Message, region: str) -> Route | None:
        """`region`: the ISO region of the row's number (guards' region_of)."""
        key = (region, msg.template_id)
        if key not in self._cache:  # a few countries x templates per input
            self._cache[key] = next((r for r in self.routes if r.matches(region, msg.template_id)), None)
        return self._cache[key]

    def wire_template(self, provider: str, template: str) -> str | None:
        """The id `provider` knows input template `template` by, when every route says the same
        (receipts match a report's template against it); None when routes disagree."""
        ids = {r.mapping[template][provider].id if r.mapping and provider in r.mapping.get(template, {})
               else template for r in self.routes if provider in r.providers}
        return ids.pop() if len(ids) == 1 else None


def _no_unknown(section: dict, allowed: set[str], where: str) -> None:
    unknown = [k for k in section if k not in allowed]
    if unknown:
        raise ConfigError(f"{where}: unknown key {_show(unknown[0])} (allowed: {', '.join(sorted(allowed))})")


def _show(value) -> str:
    text = printable(repr(value))
    return text if len(text) <= 60 else text[:60] + "..."


def _kind(value) -> str:
    return {dict: "a mapping", list: "a list"}.get(type(value)) or _show(value)


def parse_routes(raw, providers: dict, where: str) -> Routes:
    """`routes:` as written -> Routes; every name checked against the provider sections."""
    if raw is None:
        return Routes([])
    if not isinstance(raw, list):
        raise ConfigError(f"{where}: routes: expected a list of rules, got {_kind(raw)}")
    out: list[Route] = []
    for i, entry in enumerate(raw):
        here = f"{where}: routes[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{here}: expected a mapping with provider (and match, fallback, templates)")
        _no_unknown(entry, ROUTE_KEYS, here)
        name = entry.get("name") or f"route{i + 1}"
        if not isinstance(name, str):
            raise ConfigError(f"{here}.name: expected a name, got {_kind(name)}")
        if any(r.name == name for r in out):
            raise ConfigError(f"{here}.name: {_show(name)} names two routes")
        first = entry.get("provider")
        fallback = entry.get("fallback") or []
        if isinstance(fallback, str):
            fallback = [fallback]
        if not isinstance(first, str) or not first:
            raise ConfigError(f"{here}.provider: expected a provider section name, got {_kind(first)}")
        if not isinstance(fallback, list) or not all(isinstance(p, str) and p for p in fallback):
            raise ConfigError(f"{here}.fallback: expected a list of provider section names")
        chain = (first, *fallback)
        for p in chain:
            if p not in providers:
                raise ConfigError(f"{here}: provider {_show(p)} is not a configured provider section")
        if len(set(chain)) != len(chain):
            raise ConfigError(f"{here}: a provider appears twice in provider and fallback")
        countries = templates = None
        match = entry.get("match")
        if match is not None:
            if not isinstance(match, dict):
                raise ConfigError(f"{here}.match: expected a mapping such as {{countries: [CN]}}")
            _no_unknown(match, MATCH_KEYS, f"{here}.match")
            countries = _regions(match.get("countries"), f"{here}.match.countries")
            templates = _names(match.get("templates"), f"{here}.match.templates")
        mapping = _mapping(entry.get("templates"), chain, f"{here}.templates")
        out.append(Route(name, chain, countries, templates, mapping))
    return Routes(out)


def _regions(value, where: str) -> frozenset[str] | None:
    if value is None:
        return None
    items = _names(value, where)
    for r in items:
        if r.upper() not in phonenumbers.SUPPORTED_REGIONS:
            raise ConfigError(f"{where}: {r!r} is not an ISO region code (such as CN, HK, SG)")
    return frozenset(r.upper() for r in items)


def _names(value, where: str) -> frozenset[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{where}: expected a list of names")
    return frozenset(value)


def _mapping(value, chain: tuple[str, ...], where: str) -> dict[str, dict[str, Mapping]] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected input template ids, each mapping provider sections to their template")
    out: dict[str, dict[str, Mapping]] = {}
    for tid, per in value.items():
        here = f"{where}.{tid}"
        if not isinstance(per, dict):
            raise ConfigError(f"{here}: expected provider sections, each with {{id: ..., params: [...]}}")
        out[tid] = {}
        for provider, m in per.items():
            at = f"{here}.{provider}"
            if provider not in chain:
                raise ConfigError(f"{at}: provider {_show(provider)} is not one of this route's providers")
            if isinstance(m, str) and m:
                out[tid][provider] = Mapping(m)
                continue
            if not isinstance(m, dict):
                raise ConfigError(f"{at}: expected a template id or {{id: ..., params: [...]}}")
            _no_unknown(m, MAPPING_KEYS, at)
            pid, params = m.get("id"), m.get("params")
            if not isinstance(pid, str) or not pid:
                raise ConfigError(f"{at}.id: expected the provider's template id")
            if params is None:
                out[tid][provider] = Mapping(pid)
            elif isinstance(params, list) and all(isinstance(p, str) and p for p in params):
                out[tid][provider] = Mapping(pid, tuple(params))
            elif isinstance(params, dict) and all(isinstance(p, str) and p for p in params.values()):
                out[tid][provider] = Mapping(pid, tuple((str(k), v) for k, v in params.items()), named=True)
            else:
                raise ConfigError(f"{at}.params: expected a list of the input's parameter names or positions "
                                  "(1, 2, ...), or a mapping of the provider's names to them")
    return out
