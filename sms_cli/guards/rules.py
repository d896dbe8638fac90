"""Guards checked before a message may leave: the suppression list (opt-outs), allowed and
blocked countries, the validity window, and quiet hours in the recipient's time zone.

Each guard turns a valid message into a `Fate` with a code and a reason, or lets it pass. The
spend cap is not here: it needs the whole run's estimate (campaign/campaign.py checks it
before sending).
`SMS_CLI_NOW` (ISO 8601, e.g. 2026-11-23T13:00:00Z) fixes the clock every guard reads, for tests
and for trying a campaign's timing.
"""
from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

import phonenumbers
from phonenumbers import timezone as pn_timezone

from ..core.errors import ConfigError
from ..store.failures import remove_stale_temps
from ..store.paths import sync_folder
from ..core.model import Message
from ..core.outcomes import Fate
from ..validate.validator import parse_phone
from .settings import UNKNOWN_ZONE, QuietHours, _countries, _regions, now, parse_duration


def region_of(phone: str, country_code: int) -> str:
    """ISO region of an E.164 number ('US' and 'CA' told apart), or 'ZZ'. Once per row in a plan:
    a country code of one region needs no parsing, and a shared one (+1, +7, +44...) is decided
    by the number's leading digits (a NANP area code, a crown dependency's mobile prefix), so
    one parse per prefix serves every number under it."""
    regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(country_code)
    if regions is not None and len(regions) == 1:
        return regions[0]
    key = phone[:len(str(country_code)) + 1 + (3 if country_code == 1 else 5)]
    region = _BY_PREFIX.get(key)
    if region is None:
        try:
            region = phonenumbers.region_code_for_number(phonenumbers.parse(phone)) or "ZZ"
        except phonenumbers.NumberParseException:
            region = "ZZ"
        if len(_BY_PREFIX) > 50_000:  # bounded whatever the input
            _BY_PREFIX.clear()
        _BY_PREFIX[key] = region
    return region


_BY_PREFIX: dict[str, str] = {}


@lru_cache(maxsize=4096)
def zones_of(phone: str) -> tuple[str, ...]:
    try:
        zones = pn_timezone.time_zones_for_number(phonenumbers.parse(phone))
    except phonenumbers.NumberParseException:
        return ()
    return tuple(z for z in zones if z != UNKNOWN_ZONE)


# --- suppression list ---------------------------------------------------------------------------
def normalise(number: str, region: str | None = None) -> str | None:
    """Any spelling of a number -> E.164, or None when it is not a number."""

    parsed = parse_phone(number.strip(), region)
    return None if isinstance(parsed, str) else parsed[0]


class Suppression:
    """A plain text file a person can read and edit: one number per line in any spelling, `#`
    starts a comment. Numbers providers report as opted out are added with the date and the
    provider's code.

    Every change rewrites the whole list atomically (a temporary file written and fsynced, then
    renamed over the list, then the folder fsynced) under an exclusive lock on a lock file
    beside it (`.<name>.lock`: the list itself is replaced, so it cannot carry the lock): a
    concurrent `add` never loses another's entry, and a kill at any moment leaves the old list or
    the new one, never a truncated one. A list that exists but cannot be read is a refusal to
    send (ConfigError, exit 2), never an empty list."""

    def __init__(self, path: Path, region: str | None = None):
        self.path = Path(path)
        self.region = region
        self.numbers: set[str] = set()
        if self.path.exists() or self.path.is_symlink():
            self.numbers = {n for n, _ in self._parse(self._read()) if n}

    def _read(self) -> str:
        try:
            if not self.path.is_file():
                raise OSError("not a regular file")
            return self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{self.path}: cannot read the suppression list ({exc}); nothing was sent") from None

    def _parse(self, text: str) -> list[tuple[str | None, str]]:
        """(number or None, the line as written) for every line."""
        out = []
        for line in text.splitlines(keepends=True):
            head = line.split("#", 1)[0]
            out.append((normalise(head, self.region) if head.strip() else None, line))
        return out

    def __contains__(self, phone: str) -> bool:
        return phone in self.numbers

    def _change(self, edit) -> int:
        """Under the lock: read the list as it is now, `edit([(number, line)]) -> (new list,
        count)`, and replace it atomically when the count is not 0."""
        lock = self.path.with_name(f".{self.path.name}.lock")
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            remove_stale_temps(self.path)  # a killed edit's temporary file (never the list itself)
            lines = self._parse(self._read()) if (self.path.exists() or self.path.is_symlink()) else []
            lines, count = edit(lines)
            if count:
                _replace(self.path, "".join(x for _, x in lines))
            self.numbers = {n for n, _ in lines if n}
            return count
        finally:
            os.close(fd)  # closing releases the lock

    def add(self, phone: str, comment: str = "") -> bool:
        """Add a number (E.164) unless it is listed; True when it was added."""
        line = phone + (f"  # {comment}" if comment else "") + "\n"

        def edit(lines):
            if any(n == phone for n, _ in lines):
                return lines, 0  # listed already (perhaps by another run meanwhile)
            if lines and not lines[-1][1].endswith("\n"):
                lines[-1] = (lines[-1][0], lines[-1][1] + "\n")
            return [*lines, (phone, line)], 1

        return bool(self._change(edit))

    def remove(self, phone: str) -> int:
        """Remove every line listing the number; the count removed."""
        if not self.path.exists():
            return 0
        return self._change(lambda lines: ([(n, x) for n, x in lines if n != phone],
                                           sum(1 for n, _ in lines if n == phone)))

    def opted_out(self, phone: str, code: str) -> None:
        """A provider said this number opted out or is blacklisted."""
        self.add(phone, f"{date.today().isoformat()} {code}")


def _replace(path: Path, text: str) -> None:
    """Write `text` to `path` atomically and durably; a new file is created 0600 (it holds phone
    numbers), an existing one keeps its mode."""
    target = path.resolve() if path.is_symlink() else path
    try:
        mode = target.stat().st_mode & 0o777
    except FileNotFoundError:
        mode = 0o600
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fchmod(fh.fileno(), mode)
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    sync_folder(target.parent)


# --- the guards together ------------------------------------------------------------------------
@dataclass
class Guards:
    suppression: Suppression | None = None
    allow: frozenset[str] | None = None  # ISO regions; None = every region
    block: frozenset[str] = frozenset()
    quiet: QuietHours | None = None
    valid_until: float | None = None  # epoch seconds
    valid_for: float | None = None
    clock: object = field(default=now, repr=False)

    @property
    def active(self) -> bool:
        return bool(self.suppression is not None or self.allow is not None or self.block or self.quiet
                    or self.valid_until is not None)

    def static(self, msg: Message) -> tuple[Fate, str, str] | None:
        """The guards that do not depend on the time: what `validate` applies too."""
        if self.suppression is not None and msg.phone in self.suppression:
            return Fate.SUPPRESSED, "Suppressed", "on the suppression list (opted out)"
        if self.allow is not None or self.block:
            region = region_of(msg.phone, msg.country_code)
            if region in self.block or (self.allow is not None and region not in self.allow):
                return Fate.COUNTRY, "CountryNotAllowed", f"numbers of {region} are not allowed by the country rules"
        return None

    def check(self, msg: Message) -> tuple[Fate, str, str] | None:
        found = self.static(msg)
        if found is not None or (self.valid_until is None and self.quiet is None):
            return found
        when = self.clock()
        if self.valid_until is not None and when.timestamp() > self.valid_until:
            limit = datetime.fromtimestamp(self.valid_until, timezone.utc).isoformat(timespec="seconds")
            return Fate.EXPIRED, "Expired", f"not sent within --valid-for of the campaign's first run (until {limit})"
        if self.quiet is not None:
            zones = zones_of(msg.phone) or ((self.quiet.default_zone,) if self.quiet.default_zone else ())
            if not zones:
                return Fate.QUIET, "Deferred", ("no time zone is known for this number and default_timezone "
                                                "is not set: deferred")
            if any(self.quiet.quiet_at(when, z) for z in zones):
                opens = self.quiet.next_open(when, zones)
                if opens is None:
                    return Fate.QUIET, "Deferred", (f"quiet hours {self.quiet.text()} cover every hour across "
                                                    f"its time zones ({', '.join(zones[:3])}...)")
                local = opens.astimezone(ZoneInfo(zones[0])).isoformat(timespec="minutes")
                return Fate.QUIET, "Deferred", (f"quiet hours {self.quiet.text()} in {zones[0]}"
                                                f"{' and others' if len(zones) > 1 else ''}; "
                                                f"earliest {local} ({opens.strftime('%Y-%m-%dT%H:%MZ')})")
        return None


# --- configuration ------------------------------------------------------------------------------
@dataclass
class GuardOptions:
    """Command-line values; each overrides the config's."""

    suppress: str | None = None
    quiet_hours: str | None = None
    allow_countries: str | None = None  # "SG,HK"
    block_countries: str | None = None
    valid_for: str | None = None
    max_cost: float | None = None
    max_parts: int | None = None


def suppression_path(cfg, opts: GuardOptions) -> Path | None:
    if opts.suppress:
        return Path(opts.suppress)
    value = cfg.guards.get("suppression_list")
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.is_absolute() and cfg.path is not None:
        path = Path(cfg.path).parent / path  # beside the config, wherever cron runs from
    return path


def build(cfg, settings, opts: GuardOptions, region: str | None, first_started: float | None = None) -> Guards:
    """The guards of one run: the command line over the provider's section over the top level."""
    g, pg = cfg.guards, settings.guards
    spath = suppression_path(cfg, opts)
    quiet_text = opts.quiet_hours or pg.get("quiet_hours") or g.get("quiet_hours")
    quiet = QuietHours.parse(quiet_text, "--quiet-hours" if opts.quiet_hours else "quiet_hours",
                             g.get("default_timezone")) if quiet_text else None
    allow, block = None, frozenset()
    rule = pg.get("countries") or g.get("countries")
    if rule is not None:
        allow, block = _countries(rule, "countries")
    if opts.allow_countries:
        allow = _regions(opts.allow_countries, "--allow-countries")
    if opts.block_countries:
        block = block | _regions(opts.block_countries, "--block-countries")
    valid_text = opts.valid_for or g.get("valid_for")
    valid_for = parse_duration(valid_text, "--valid-for" if opts.valid_for else "valid_for") if valid_text else None
    return Guards(suppression=Suppression(spath, region) if spath else None, allow=allow, block=block, quiet=quiet,
                  valid_for=valid_for,
                  valid_until=None if valid_for is None or first_started is None else first_started + valid_for)
