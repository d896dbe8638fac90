"""Text from input made safe to print: a phone cell holding terminal escapes must not retitle or
clear the operator's terminal. Control characters (C0, DEL, C1), bidirectional overrides and
isolates, and lone surrogates (which a strict UTF-8 stdout cannot encode) are shown escaped as
`\\xNN` / `\\uNNNN`; everything printable (Chinese, emoji) stays as it is."""
from __future__ import annotations

import functools
import re

_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def _escape(m: re.Match) -> str:
    code = ord(m.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """`text` with control characters, bidi overrides and lone surrogates escaped."""
    if text.isascii() and text.isprintable():  # the usual case: nothing to look for
        return text
    return _UNSAFE.sub(_escape, text)


# --- phone numbers in failure reasons ------------------------------------------------------------
# what might be a number: digits with spaces, dashes or brackets, maybe a leading + (a date, an
# amount or a code matches too: _is_phone decides)
_CANDIDATE = re.compile(r"\+?\d[\d ()-]{5,}\d")
_DATE = re.compile(r"\d{4}-\d{1,2}-\d{1,2}|\d{1,2}-\d{1,2}-\d{4}")


def mask_numbers(message: str) -> str:
    """`message` with each phone number in it replaced by `<number>`, so rows failing for one
    reason group as one line in a summary. Only what parses as a phone number is masked: a date
    (2026-12-06), an amount or an order number stays as it is."""
    return _CANDIDATE.sub(lambda m: "<number>" if _is_phone(m.group()) else m.group(), message)


@functools.lru_cache(maxsize=4096)  # a run's reasons repeat: parse each spelling once
def _is_phone(candidate: str) -> bool:
    import phonenumbers

    if _DATE.search(candidate):
        return False
    try:
        if candidate.startswith("+"):  # E.164-ish: a number when its country code is one (valid or not:
            return phonenumbers.parse(candidate, None).country_code > 0  # "not a valid number: +65..." too)
        # bare digits: a number only when they make a valid international one (85255311101)
        digits = re.sub(r"\D", "", candidate)
        return phonenumbers.is_valid_number(phonenumbers.parse("+" + digits, None))
    except phonenumbers.NumberParseException:
        return False
