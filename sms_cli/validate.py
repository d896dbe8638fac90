"""RawRow -> Message (valid, ready to batch) or Rejected (never sent, with a reason).

Phone numbers go through `phonenumbers` and are kept as E.164; each adapter renders its own
wire format. Validation is deterministic, so a resumed run rejects exactly the same rows.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache

import phonenumbers

from . import segments
from .config import Template
from .model import Message
from .rows import RawRow, canonical

MAX_LENGTH = 500  # providers cap a message at about 500 characters
_PAREN = re.compile(r"^\((?:00)?(\d{1,4})\)(\d+)$")
_STRIP = str.maketrans("", "", " -.\t\u00a0")

# phonenumbers calls re.compile() on its metadata patterns for every number it parses or checks
# (about eight a number; re's own cache makes each a lookup, ~1.5 us a number in all). Its
# pattern cache keeps them compiled instead: same patterns, same results. Older releases of
# phonenumbers do not have it.
if hasattr(phonenumbers, "enable_pattern_cache"):
    phonenumbers.enable_pattern_cache()


@dataclass(frozen=True, slots=True)
class Rejected:
    seq: int
    line: int
    code: str
    reason: str


@dataclass(frozen=True)
class Defaults:
    """Command-line values for what rows leave out."""

    template_id: str | None = None
    params: tuple[str, ...] = ()
    sender_id: str | None = None

    def identity(self) -> dict:
        return {"template": self.template_id, "params": list(self.params), "sender": self.sender_id}


@dataclass(slots=True)
class Fields:
    phone: str = ""
    template_id: str = ""
    params: object = None
    sender_id: str = ""
    extend_code: str = ""
    user_id: str = ""
    positional: dict[int, str] = field(default_factory=dict)


_SKIP, _PARAMS, _POSITIONAL, _TEXT = range(4)


@lru_cache(maxsize=4096)  # rows of a file share a few field names: decide once per name
def _field(key: str) -> tuple[int, str | None]:
    """What `extract` does with a field: skip it, take it as params, as positional param N
    (-> the digits of N), or as a text attribute of Fields (-> the attribute)."""
    name = canonical(key)
    if name is None:
        return _SKIP, None
    if name == "params":
        return _PARAMS, None
    if name.startswith("param"):
        return _POSITIONAL, name[5:]
    return _TEXT, name


def extract(record: dict) -> Fields:
    out = Fields()
    for key, value in record.items():
        kind, arg = _field(key)
        if kind == _TEXT:
            # a str (what CSV and most JSON give) needs no str() round trip
            setattr(out, arg, value.strip() if value.__class__ is str
                    else "" if value is None else str(value).strip())
        elif kind == _POSITIONAL:
            if value not in (None, ""):
                out.positional[int(arg)] = value
        elif kind == _PARAMS:
            out.params = value
    return out


# Small on purpose: it catches a number repeated on nearby rows; a large cache missed on almost
# every row of a bulk list (numbers are mostly unique) and cost more than it saved (~1.4 us a row
# and ~20 MB for 65536 entries, measured with benchmarks/bench_send.py).
@lru_cache(maxsize=256)
def parse_phone(raw: str, region: str | None) -> tuple[str, int, str] | str:
    """-> (E.164, country code, national number) or a reason string."""
    if raw.isdigit() or (raw[:1] == "+" and raw[1:].isdigit()):
        text = raw  # the usual shape: nothing to strip, no letter, no parentheses
    else:
        text = raw.translate(_STRIP)
        if not text or any(ch.isalpha() for ch in text):
            return "not a phone number"
        m = _PAREN.match(text)
        if m:
            text = f"+{m.group(1)}{m.group(2)}"
    if text.startswith("00"):
        text = "+" + text[2:]
    if not text.startswith("+") and not region:
        return "national number and no default_region (set it in config or use --default-region)"
    try:
        num = phonenumbers.parse(text, None if text.startswith("+") else region)
    except phonenumbers.NumberParseException as exc:
        return f"not a phone number ({exc._msg})" if hasattr(exc, "_msg") else "not a phone number"
    if not phonenumbers.is_valid_number(num):
        return "not a valid phone number"
    national = str(num.national_number)
    if num.italian_leading_zero:
        national = "0" * (num.number_of_leading_zeros or 1) + national
    return f"+{num.country_code}{national}", num.country_code, national


def _params(value, positional: dict[int, str]) -> list[str] | dict[str, str] | str:
    """Normalise params to a list or dict of strings; a str return is a reason to reject."""
    if value in (None, "") and positional:
        top = max(positional)
        # keys are distinct non-negative ints: 1..top all present <=> top keys, none of them 0
        if len(positional) != top or 0 in positional:
            return f"param columns are not consecutive (have param{', param'.join(map(str, sorted(positional)))})"
        return [str(positional[i]) for i in range(1, top + 1)]
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return []
        if text[0] not in "[{":
            return [text]  # a single bare value
        try:
            value = json.loads(text, parse_int=str, parse_float=str)
        except ValueError:
            return "params is not valid JSON (use a JSON array or object)"
    if value is None:
        return []
    if isinstance(value, list):
        if any(isinstance(v, (list, dict)) or v is None for v in value):
            return "params must be strings (found a nested value or null)"
        return [str(v) for v in value]
    if isinstance(value, dict):
        if any(isinstance(v, (list, dict)) or v is None for v in value.values()):
            return "params must be strings (found a nested value or null)"
        return {str(k): str(v) for k, v in value.items()}
    return [str(value)]


def _reject(raw: RawRow, code: str, reason: str) -> Rejected:
    """A module function, not a closure in validate(): that was built for every row."""
    return Rejected(raw.seq, raw.line, code, reason)


class Validator:
    def __init__(self, templates: dict[str, Template], region: str | None, defaults: Defaults,
                 provider=None, key_prefix: str = ""):
        self.templates = templates
        self.region = region.upper() if region else None
        self.defaults = defaults
        self.provider = provider
        self.key_prefix = key_prefix

    def effective(self, raw: RawRow) -> Fields:
        f = extract(raw.record)
        f.template_id = f.template_id or (self.defaults.template_id or "")
        f.sender_id = f.sender_id or (self.defaults.sender_id or "")
        if f.params in (None, "") and not f.positional and self.defaults.params:
            f.params = list(self.defaults.params)
        return f

    def validate(self, raw: RawRow) -> Message | Rejected:
        if raw.error:
            return _reject(raw, "BadRow", raw.error)
        f = self.effective(raw)
        if not f.phone:
            return _reject(raw, "InvalidPhone", "no phone number")
        phone = parse_phone(f.phone, self.region)
        if isinstance(phone, str):
            return _reject(raw, "InvalidPhone", f"{phone}: {f.phone}")
        if not f.template_id:
            return _reject(raw, "MissingTemplate", "no template id (column template_id or --template)")
        params = _params(f.params, f.positional)
        if isinstance(params, str):
            return _reject(raw, "InvalidParams", params)
        if f.extend_code and not f.extend_code.isdigit():
            return _reject(raw, "InvalidExtendCode", "extend_code must be digits")
        tpl = self.templates.get(f.template_id)
        if tpl is not None:
            problem = check_template(tpl, params)
            if problem:
                return _reject(raw, "InvalidParams", problem)
        msg = Message(raw.seq, raw.line, phone[0], phone[1], phone[2], f.template_id, params,
                      f.sender_id or None, f.extend_code or None, f.user_id or None,
                      key=f"{self.key_prefix}{raw.seq}", record=raw.record)
        if self.provider is not None:
            problem = self.provider.prepare(msg)
            if problem:
                return _reject(raw, "Unsupported", problem)
        return msg


def check_template(tpl: Template, params: list[str] | dict[str, str]) -> str | None:
    """Parameters against the template's declared names/count, then the rendered length."""
    if isinstance(params, dict):
        if tpl.names is not None:
            missing = [n for n in tpl.names if n not in params]
            extra = [n for n in params if n not in tpl.names]
            if missing:
                return f"template {tpl.id} needs parameter {missing[0]!r}"
            if extra:
                return f"template {tpl.id} has no parameter {extra[0]!r}"
        elif tpl.count is not None and len(params) != tpl.count:
            return f"template {tpl.id} takes {tpl.count} parameter(s), got {len(params)}"
    elif tpl.count is not None and len(params) != tpl.count:
        return f"template {tpl.id} takes {tpl.count} parameter(s), got {len(params)}"
    if tpl.text is not None:
        try:
            text = render(tpl, params)
        except (ValueError, TypeError) as exc:
            return str(exc)
        if len(text) > MAX_LENGTH:
            return f"message is {len(text)} characters; providers cap a message at {MAX_LENGTH}"
    return None


def render(tpl: Template, params: list[str] | dict[str, str]) -> str:
    """The message text; positional params fill named placeholders through the declared names."""
    if isinstance(params, list) and tpl.names and len(params) == len(tpl.names):
        params = {**dict(zip(tpl.names, params)), **{str(i): v for i, v in enumerate(params, 1)}}
    return segments.render(tpl.text or "", params)
