"""The guards' settings, read when the config loads: durations, quiet-hour windows, country
lists and prices, each checked so `config check` reports a bad value by name. The guards' clock
lives here too (`SMS_CLI_NOW`, ISO 8601, fixes it for tests and for trying a campaign's timing).

Nothing here knows a message, a journal or a phone number's parse: config.py imports it, and
the guards themselves (rules.py) build on it.
"""
from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers

from ..core.errors import ConfigError

UNKNOWN_ZONE = "Etc/Unknown"


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|[smhd])?\s*$")  # no unit: seconds


_SECONDS = {"ms": 0.001, "s": 1, None: 1, "m": 60, "h": 3600, "d": 86400}


_WINDOW = re.compile(r"^\s*([01]?\d|2[0-3]):([0-5]\d)\s*-\s*([01]?\d|2[0-3]):([0-5]\d)\s*$")


def now() -> datetime:
    """The guards' clock: SMS_CLI_NOW when set, else the system's."""
    fixed = os.environ.get("SMS_CLI_NOW")
    if fixed:
        try:
            value = datetime.fromisoformat(fixed.replace("Z", "+00:00"))
        except ValueError:
            raise ConfigError(f"SMS_CLI_NOW: not an ISO 8601 time: {fixed!r}") from None
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    return datetime.now(timezone.utc)


def parse_duration(text: str, where: str, *, zero: bool = False) -> float:
    """'250ms', '90s', '30m', '2h', '1d' or plain seconds -> seconds: every duration of the tool
    (valid_for, receipts' --wait, --give-up-after, --poll-interval). 0 only where `zero` says it
    means "at once" (receipts: give up now, do not wait); --valid-for 0 is refused."""
    m = _DURATION.match(str(text))
    if not m or (float(m.group(1)) <= 0 and not zero):
        raise ConfigError(f"{where}: expected a duration such as 90s, 30m, 2h or 1d, got {text!r}")
    return float(m.group(1)) * _SECONDS[m.group(2)]


# --- quiet hours --------------------------------------------------------------------------------
@dataclass(frozen=True)
class QuietHours:
    start: int  # minutes after local midnight
    end: int
    default_zone: str | None = None  # for numbers with no known zone

    @classmethod
    def parse(cls, text: str, where: str, default_zone: str | None = None) -> "QuietHours":
        m = _WINDOW.match(str(text))
        if not m:
            raise ConfigError(f"{where}: expected a window such as 21:00-08:00, got {text!r}")
        start, end = int(m.group(1)) * 60 + int(m.group(2)), int(m.group(3)) * 60 + int(m.group(4))
        if start == end:
            raise ConfigError(f"{where}: the window {text!r} is empty")
        if default_zone:
            try:
                ZoneInfo(default_zone)
            except (ZoneInfoNotFoundError, ValueError):
                raise ConfigError(f"default_timezone: unknown time zone {default_zone!r}") from None
        return cls(start, end, default_zone)

    def text(self) -> str:
        return f"{self.start // 60:02d}:{self.start % 60:02d}-{self.end // 60:02d}:{self.end % 60:02d}"

    def quiet_at(self, when: datetime, zone: str) -> bool:
        local = when.astimezone(ZoneInfo(zone))
        minute = local.hour * 60 + local.minute
        if self.start < self.end:
            return self.start <= minute < self.end
        return minute >= self.start or minute < self.end

    def next_open(self, when: datetime, zones: tuple[str, ...]) -> datetime | None:
        """The first instant at or after `when` outside the window in every zone, or None when
        no time of day is (zones around the globe)."""
        candidates = {when}
        for zone in zones:
            tz = ZoneInfo(zone)
            local = when.astimezone(tz)
            for days in range(3):
                day = (local + timedelta(days=days)).date()
                end = datetime(day.year, day.month, day.day, self.end // 60, self.end % 60, tzinfo=tz)
                if end >= when:
                    candidates.add(end.astimezone(timezone.utc))
        for t in sorted(candidates):
            if not any(self.quiet_at(t, z) for z in zones):
                return t
        return None


def timestamp() -> float:
    """The guards' idea of now as epoch seconds (a working set's first start, for --valid-for)."""
    return now().timestamp() if os.environ.get("SMS_CLI_NOW") else time.time()


def _regions(value, where: str) -> frozenset[str]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)):
        raise ConfigError(f"{where}: expected a list of ISO region codes such as [SG, HK]")
    out = set()
    for item in items:
        code = str(item).strip().upper()
        if code not in phonenumbers.SUPPORTED_REGIONS:
            raise ConfigError(f"{where}: unknown region {item!r} (ISO codes such as SG, HK, US)")
        out.add(code)
    return frozenset(out)


def _countries(value, where: str) -> tuple[frozenset[str] | None, frozenset[str]]:
    if not isinstance(value, dict) or not value or set(value) - {"allow", "block"}:
        raise ConfigError(f"{where}: expected {{allow: [...]}} or {{block: [...]}}")
    allow = _regions(value["allow"], f"{where}.allow") if value.get("allow") is not None else None
    block = _regions(value["block"], f"{where}.block") if value.get("block") is not None else frozenset()
    return allow, block


def prices(settings, where: str = "") -> dict[str, float]:
    """A provider's price per part: {ISO region or 'default': price}."""
    raw = settings.guards.get("prices")
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where or settings.name}.prices: expected a mapping such as {{SG: 0.05, default: 0.06}}")
    out = {}
    for key, value in raw.items():
        try:
            price = float(value)
        except (TypeError, ValueError):
            price = -1.0
        if not (0 <= price < 1e6):
            raise ConfigError(f"{where or settings.name}.prices.{key}: expected a price per part, got {value!r}")
        region = str(key).upper() if str(key).lower() != "default" else "default"
        if region != "default" and region not in phonenumbers.SUPPORTED_REGIONS:
            raise ConfigError(f"{where or settings.name}.prices: unknown region {key!r}")
        out[region] = price
    return out


def check_config(cfg, where: str) -> None:
    """Reject bad guard values when the config loads (so `config check` reports them too)."""
    g = cfg.guards
    if "quiet_hours" in g:
        QuietHours.parse(g["quiet_hours"], f"{where}: quiet_hours", g.get("default_timezone"))
    elif "default_timezone" in g:
        QuietHours.parse("00:00-00:01", f"{where}: quiet_hours", g["default_timezone"])
    if "countries" in g:
        _countries(g["countries"], f"{where}: countries")
    if "valid_for" in g:
        parse_duration(g["valid_for"], f"{where}: valid_for")
    if "suppression_list" in g and not isinstance(g["suppression_list"], str):
        raise ConfigError(f"{where}: suppression_list: expected a file path")
    for name, settings in cfg.providers.items():
        here = f"{where}: providers.{name}"
        if "quiet_hours" in settings.guards:
            QuietHours.parse(settings.guards["quiet_hours"], f"{here}.quiet_hours")
        if "countries" in settings.guards:
            _countries(settings.guards["countries"], f"{here}.countries")
        prices(settings, here)

