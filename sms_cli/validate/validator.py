"""RawRow -> Message (valid, ready to batch) or Rejected (never sent, with a reason).

Phone numbers go through `phonenumbers` and are kept as E.164; each adapter renders its own
wire format. Validation is deterministic, so a resumed run rejects exactly the same rows.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from functools import lru_cache

import phonenumbers

from . import segments
from ..core.settings import Template
from .e164 import is_valid, valid_plus_digits
from ..core.errors import SmsCliError
from ..core.model import Message, message_key
from ..input.rows import RawRow, canonical
from ..core.textsafe import printable

MAX_LENGTH = 500  # providers cap a message at about 500 characters
MAX_PHONE = 64  # characters: the longest formatted number is about 30
_PAREN = re.compile(r"^\((?:00)?(\d{1,4})\)(\d+)$")
_STRIP = str.maketrans("", "", " -.\t\u00a0")
# what Excel shows (and saves to CSV) for a long number in a General column: 8.5255E+10
_EXCEL = re.compile(r"[+]?\d(?:[.,]\d+)?[eE][+]?\d{1,3}")
# a lone surrogate: valid in a JSON string ("\ud83d"), not text any provider (or file) can take
_LONE = re.compile("[\ud800-\udfff]")
_NOT_UNICODE = "not valid Unicode text (a lone surrogate such as \\ud83d)"

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
    problem: tuple[str, str] | None = None  # (code, reason): a value that cannot be sent as it is


_SKIP, _PARAMS, _POSITIONAL, _TEXT, _BADKEY = range(5)
# field name -> (what extract does with it, its argument); rows of a file share a few names
_FIELDS: dict = {}


def _field(key) -> tuple[int, object]:
    """What `extract` does with a field: skip it, take it as params, as positional param N
    (-> N), as a text attribute of Fields (-> the attribute), or refuse its name."""
    if not isinstance(key, str):
        return _SKIP, None
    if not key.isascii() and _LONE.search(key):
        kind = (_BADKEY, None)
    else:
        name = canonical(key)
        if name is None:
            kind = (_SKIP, None)
        elif name == "params":
            kind = (_PARAMS, None)
        elif name.startswith("param"):
            kind = (_POSITIONAL, int(name[5:]))
        else:
            kind = (_TEXT, name)
    if len(key) <= 64 and len(_FIELDS) < 4096:  # a hostile key must not fill the cache
        _FIELDS[key] = kind
    return kind


def extract(record: dict) -> Fields:
    out = Fields()
    cache = _FIELDS
    for key, value in record.items():
        kind_arg = cache.get(key)
        kind, arg = kind_arg if kind_arg is not None else _field(key)
        if value.__class__ is str:  # what CSV and most JSON give: no conversion
            if not value.isascii() and _LONE.search(value) and out.problem is None:
                out.problem = _refusal(kind, key, _NOT_UNICODE)
            if kind == _TEXT:
                setattr(out, arg, value.strip())
            elif kind == _POSITIONAL:
                if value:
                    out.positional[arg] = value
            elif kind == _PARAMS:
                out.params = value
            elif kind == _BADKEY and out.problem is None:
                out.problem = ("BadRow", f"a field name is {_NOT_UNICODE}")
        else:
            _extract_value(out, kind, arg, key, value)
    return out


def _refusal(kind: int, key, reason: str) -> tuple[str, str]:
    code = "InvalidParams" if kind in (_PARAMS, _POSITIONAL) else "BadRow"
    return code, f"{_name(key)}: {reason}"


def _name(key) -> str:
    text = printable(str(key))
    return text if len(text) <= 40 else text[:40] + "..."


def _extract_value(out: Fields, kind: int, arg, key, value) -> None:
    """A value that is not a str (JSON: true/false, null, NaN/Infinity, objects, arrays)."""
    if kind == _BADKEY:
        if out.problem is None:
            out.problem = ("BadRow", f"a field name is {_NOT_UNICODE}")
        return
    if kind == _SKIP:  # not sent; but it is written back to the failures file, so it must be text
        if out.problem is None and _has_lone_surrogate(value):
            out.problem = _refusal(kind, key, _NOT_UNICODE)
        return
    if kind == _PARAMS:
        out.params = value  # a list or an object: _params checks each value
        return
    text, reason = _scalar(value)
    if reason is not None:
        if out.problem is None:
            out.problem = _refusal(kind, key, reason)
        return
    if kind == _TEXT:
        setattr(out, arg, text.strip())
    elif text:
        out.positional[arg] = text


def _scalar(value) -> tuple[str, str | None]:
    """A JSON value as the text sent for it, or a reason it cannot be sent."""
    if value is None:
        return "", None
    if value is True or value is False:
        return ("true" if value else "false"), None  # JSON's spelling, not Python's True/False
    if isinstance(value, float):  # parse_float=str: a float is NaN or Infinity
        if not math.isfinite(value):
            return "", f"{_json_constant(value)} is not a number that can be sent"
        return repr(value), None
    if isinstance(value, dict):
        return "", "expected text or a number, not a JSON object"
    if isinstance(value, (list, tuple)):
        return "", "expected text or a number, not a JSON array"
    if isinstance(value, str):
        if not value.isascii() and _LONE.search(value):
            return "", _NOT_UNICODE
        return value, None
    return str(value), None


def _json_constant(value: float) -> str:
    return "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")


def _has_lone_surrogate(value, depth: int = 0) -> bool:
    if isinstance(value, str):
        return not value.isascii() and _LONE.search(value) is not None
    if depth > 100:
        return False
    if isinstance(value, dict):
        return any(_has_lone_surrogate(k, depth + 1) or _has_lone_surrogate(v, depth + 1) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(_has_lone_surrogate(v, depth + 1) for v in value)
    return False


# Small on purpose: it catches a number repeated on nearby rows; a large cache missed on almost
# every row of a bulk list (numbers are mostly unique) and cost more than it saved (~1.4 us a row
# and ~20 MB for 65536 entries, measured with benchmarks/bench_send.py).
@lru_cache(maxsize=256)
def parse_phone(raw: str, region: str | None) -> tuple[str, int, str] | str:
    """-> (E.164, country code, national number) or a reason string (which never repeats the
    number: summaries group rows by reason, and the number is in the failures file)."""
    if raw.isdigit() or (raw[:1] == "+" and raw[1:].isdigit()):
        text = raw  # the usual shape: nothing to strip, no letter, no parentheses
    else:
        if len(raw) > MAX_PHONE:
            return "not a phone number (too long)"
        if _EXCEL.fullmatch(raw.strip()):
            return ("not a phone number: Excel's scientific notation (such as 8.5255E+10) has replaced "
                    "its digits; format the column as Text in Excel and save the file again")
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
    # "+digits", the usual shape, skips phonenumbers' free-text parsing and its PhoneNumber
    # (e164.py: same result)
    if text[:1] == "+":
        fast = valid_plus_digits(text)
        if fast is not None:
            return fast or "not a valid phone number"
    try:
        num = phonenumbers.parse(text, None if text.startswith("+") else region)
    except phonenumbers.NumberParseException as exc:
        return f"not a phone number ({exc._msg})" if hasattr(exc, "_msg") else "not a phone number"
    if not is_valid(num):
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
        try:  # one decoder for every row: json.loads with options built a new one each time
            value = _PARAMS_JSON.decode(text)
        except ValueError:
            return "params is not valid JSON (use a JSON array or object)"
        except RecursionError:
            return "params is nested too deeply"
        if value.__class__ is _Duplicated:
            return f"params has the key {_name(value.duplicate)!r} twice"
    if value is None:
        return []
    if isinstance(value, list):
        out = []
        for v in value:
            if v.__class__ is str and v.isascii():
                out.append(v)
                continue
            problem = _param_problem(v)
            if problem:
                return problem
            out.append(_scalar(v)[0])
        return out
    if isinstance(value, dict):
        named = {}
        for k, v in value.items():
            if not isinstance(k, str) or (not k.isascii() and _LONE.search(k)):
                return f"params: a parameter name is {_NOT_UNICODE}"
            if v.__class__ is str and v.isascii():
                named[k] = v
                continue
            problem = _param_problem(v)
            if problem:
                return problem
            named[k] = _scalar(v)[0]
        return named
    problem = _param_problem(value)
    return problem or [_scalar(value)[0]]


def _param_problem(v) -> str | None:
    if v is None or isinstance(v, (list, dict)):
        return "params must be strings (found a nested value or null)"
    reason = _scalar(v)[1]
    return f"params: {reason}" if reason else None


class _Duplicated(dict):
    """A JSON object that named a key twice (which one is in `duplicate`)."""

    duplicate = None


def _pairs(items: list) -> dict:
    obj = dict(items)
    if len(obj) != len(items):
        seen: set = set()
        obj = _Duplicated(obj)
        obj.duplicate = next(k for k, _ in items if k in seen or seen.add(k))
    return obj


# numbers keep their spelling ("0123", "1.50"); duplicate keys are found, not silently merged
_PARAMS_JSON = json.JSONDecoder(parse_int=str, parse_float=str, object_pairs_hook=_pairs)


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
        for flag, value in (("--template", defaults.template_id), ("--sender-id", defaults.sender_id),
                            *(("--param", p) for p in defaults.params)):
            if isinstance(value, str) and not value.isascii() and _LONE.search(value):
                # a byte that is not UTF-8 on the command line arrives as a lone surrogate
                raise SmsCliError(f"{flag} {printable(value)!r}: {_NOT_UNICODE}; it cannot be sent")

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
        if f.problem is not None:
            return _reject(raw, *f.problem)
        if not f.phone:
            return _reject(raw, "InvalidPhone", "no phone number")
        if len(f.phone) > MAX_PHONE:  # before parse_phone's cache, which would keep it
            return _reject(raw, "InvalidPhone", "not a phone number (too long)")
        phone = parse_phone(f.phone, self.region)
        if isinstance(phone, str):
            return _reject(raw, "InvalidPhone", phone)
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
        # what the message is, before an adapter reshapes its params (Aliyun names positional
        # ones): --dedupe and --continue-edited must not depend on the provider chosen
        msg.digest = message_key(msg.phone, msg.template_id, params)
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
                return f"template {tpl.id} needs parameter {printable(missing[0])!r}"
            if extra:
                return f"template {tpl.id} has no parameter {_name(extra[0])!r}"
        elif tpl.count is not None and len(params) != tpl.count:
            return f"template {tpl.id} takes {tpl.count} parameter(s), got {len(params)}"
    elif tpl.count is not None and len(params) != tpl.count:
        return f"template {tpl.id} takes {tpl.count} parameter(s), got {len(params)}"
    if tpl.text is not None:
        text = filler(tpl)
        try:
            length = text.shape.length(text.values(params))
        except (ValueError, TypeError) as exc:
            return str(exc)
        if length > MAX_LENGTH:
            return f"message is {length} characters; providers cap a message at {MAX_LENGTH}"
    return None


def _named(tpl: Template, params):
    """Positional params also fill named placeholders, through the declared names."""
    if isinstance(params, list) and tpl.names and len(params) == len(tpl.names):
        return {**dict(zip(tpl.names, params)), **{str(i): v for i, v in enumerate(params, 1)}}
    return params


def render(tpl: Template, params: list[str] | dict[str, str]) -> str:
    """The message text; positional params fill named placeholders through the declared names."""
    return segments.render(tpl.text or "", _named(tpl, params))


class Filler:
    """A template's text, ready to be filled row after row without rendering it: which of a
    row's params each placeholder takes depends only on how many params there are (a list) or
    on their names (a dict), so it is worked out once per form of params, by the rules of
    `render` itself applied to params whose values are their own positions, and kept.
    `values(params)` is then a few list lookups, and `shape` counts length and parts from them
    (tests/test_fast_count.py: equal to render + segments.count on generated templates and rows)."""

    MAX_PLANS = 256  # forms of params remembered (a hostile input must not fill memory)

    def __init__(self, tpl: Template):
        self.tpl = tpl
        self.shape = segments.Shape(tpl.text or "")
        self.plans: dict = {}

    def values(self, params) -> list[str]:
        """The value of each placeholder occurrence, as `render` inserts it; raises its errors."""
        cls = params.__class__
        if cls is list:
            key, source = len(params), params
        elif cls is dict:
            key, source = tuple(params), list(params.values())
        else:  # a tuple, a Mapping of another kind...: rare, the plain way
            return self.shape.values(_named(self.tpl, params))
        plan = self.plans.get(key)
        if plan is None:
            plan = self._plan(key, params)
        if plan.__class__ is tuple:  # (name, message): the placeholder without a value
            raise segments.MissingParameter(*plan)
        return [v if v.__class__ is str else str(v) for v in map(source.__getitem__, plan)]

    def _plan(self, key, params) -> list[int] | tuple[str, str]:
        n = len(params)
        probe = list(range(n)) if params.__class__ is list else dict(zip(params, range(n)))
        value = segments.lookup(_named(self.tpl, probe))
        try:
            plan = [value(name) for name in self.shape.names]
        except segments.MissingParameter as exc:
            plan = (exc.name, str(exc))
        # only plain str names are remembered: a key of another type (never from an input) could
        # equal a remembered one and still spell differently in an error
        if len(self.plans) < self.MAX_PLANS and (key.__class__ is int or all(k.__class__ is str for k in key)):
            self.plans[key] = plan
        return plan


_FILLERS: dict[int, tuple[Template, Filler]] = {}


def filler(tpl: Template) -> Filler:
    """The Filler of a template with text, made once (found by identity: the config's objects)."""
    entry = _FILLERS.get(id(tpl))
    if entry is None or entry[0] is not tpl:
        if len(_FILLERS) >= 1024:  # many configs loaded in one process (tests): start again
            _FILLERS.clear()
        entry = _FILLERS[id(tpl)] = (tpl, Filler(tpl))
    return entry[1]
