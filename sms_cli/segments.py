"""SMS length and part counting (GSM 03.38 / UCS-2) and message templates.

``count(text)`` says which encoding a text needs and how many concatenated
SMS parts it costs.  ``render(template, params)`` fills ``{1}``/``{name}``
placeholders and ``placeholders(template)`` lists them.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping, Sequence

__all__ = [
    "GSM7",
    "UCS2",
    "GSM_BASIC",
    "GSM_EXTENSION",
    "Segments",
    "MissingParameter",
    "is_gsm7",
    "count",
    "render",
    "placeholders",
]

GSM7 = "GSM-7"
UCS2 = "UCS-2"

# GSM 03.38 default alphabet, in code order 0x00..0x7F.  Position 0x1B is the
# escape to the extension table; it is not a character of its own and is left
# out of the set below.
_GSM_BASIC_TABLE = (
    "@£$¥èéùìòÇ\nØø\rÅå"  # 0x00
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"  # 0x10 (0x1B = ESC)
    " !\"#¤%&'()*+,-./"  # 0x20
    "0123456789:;<=>?"  # 0x30
    "¡ABCDEFGHIJKLMNO"  # 0x40
    "PQRSTUVWXYZÄÖÑÜ§"  # 0x50
    "¿abcdefghijklmno"  # 0x60
    "pqrstuvwxyzäöñüà"  # 0x70
)
assert len(_GSM_BASIC_TABLE) == 128

#: Characters of the GSM 03.38 basic set: one septet each.
GSM_BASIC: frozenset[str] = frozenset(_GSM_BASIC_TABLE) - {"\x1b"}
#: Characters of the GSM 03.38 extension table: ESC + one septet, so two each.
GSM_EXTENSION: frozenset[str] = frozenset("\f^{}\\[~]|€")

GSM7_SINGLE_PART = 160
GSM7_MULTI_PART = 153  # 7 septets per part go to the concatenation header
UCS2_SINGLE_PART = 70
UCS2_MULTI_PART = 67  # 6 octets (3 units) per part go to the header


@dataclass(frozen=True)
class Segments:
    """What a text costs to send.

    ``encoding``: ``"GSM-7"`` or ``"UCS-2"``.
    ``length``: septets for GSM-7 (extension characters count 2), UTF-16 code
    units for UCS-2 (characters outside the BMP, e.g. most emoji, count 2).
    ``parts``: number of SMS parts; an empty text is still one part.
    """

    encoding: str
    length: int
    parts: int


def is_gsm7(text: str) -> bool:
    """True if every character of ``text`` is in the GSM 03.38 basic or extension table."""
    return all(ch in GSM_BASIC or ch in GSM_EXTENSION for ch in text)


def _greedy_parts(widths: Sequence[int], capacity: int) -> int:
    """Parts needed to fill ``capacity``-unit parts in order, never splitting one character."""
    parts, used = 1, 0
    for width in widths:
        if used + width > capacity:
            parts += 1
            used = 0
        used += width
    return parts


def count(text: str) -> Segments:
    """Encoding, length and number of parts of ``text`` as one SMS message.

    GSM-7 is used when every character is in the GSM 03.38 tables, else UCS-2.
    A single part holds 160 septets (GSM-7) or 70 units (UCS-2); longer texts are
    split into parts of 153 septets / 67 units, filled greedily so that an
    escape pair (GSM-7) or a surrogate pair (UCS-2) is never split across two
    parts, which can cost one part more than ``ceil(length / 153)``.
    """
    if is_gsm7(text):
        encoding, single, multi = GSM7, GSM7_SINGLE_PART, GSM7_MULTI_PART
        widths = [2 if ch in GSM_EXTENSION else 1 for ch in text]
    else:
        encoding, single, multi = UCS2, UCS2_SINGLE_PART, UCS2_MULTI_PART
        widths = [2 if ord(ch) > 0xFFFF else 1 for ch in text]
    length = sum(widths)
    if length <= single:
        parts = 1
    else:
        parts = _greedy_parts(widths, multi)
    return Segments(encoding=encoding, length=length, parts=parts)


# ``{digits}`` (1-based position) or ``{identifier}`` (ASCII name).  Any other
# brace, such as a lone ``{`` or ``{a b}``, is literal text.
_PLACEHOLDER = re.compile(r"\{([0-9]+|[A-Za-z_][A-Za-z0-9_]*)\}")


class MissingParameter(ValueError):
    """A template placeholder has no value in the parameters given."""

    def __init__(self, name: str, message: str):
        self.name = name
        super().__init__(message)


def placeholders(text: str) -> list[str]:
    """Placeholder names of ``text`` without braces, each once, in order of first appearance.

    ``placeholders("Hi {name}, code {1} ({name})") == ["name", "1"]``
    """
    seen: dict[str, None] = {}
    for match in _PLACEHOLDER.finditer(text):
        seen.setdefault(match.group(1), None)
    return list(seen)


def render(text: str, params: Sequence[str] | Mapping[str, str]) -> str:
    """Fill the placeholders of template ``text`` from ``params``.

    With a list, ``{1}``, ``{2}``... are its values (1-based) and a named
    placeholder has no value.  With a dict, ``{name}`` is ``params["name"]``;
    ``{1}``, ``{2}``... are a key of that exact name if there is one, else the
    dict's values in order.  Values are inserted as they are (not re-scanned
    for placeholders).  Raises ``MissingParameter`` (a ``ValueError``) naming the
    first placeholder without a value.
    """
    if isinstance(params, Mapping):
        named: Mapping[str, str] = params
        positional: list[str] = list(params.values())
    elif isinstance(params, (str, bytes)):
        raise TypeError("params must be a list or a dict of strings, not a single string")
    else:
        named = {}
        positional = list(params)

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in named:
            return str(named[name])
        if name.isdigit():
            index = int(name)
            if 1 <= index <= len(positional):
                return str(positional[index - 1])
            raise MissingParameter(
                name,
                f"template placeholder {{{name}}} has no value: "
                f"{len(positional)} parameter(s) given, placeholders are numbered from 1",
            )
        if isinstance(params, Mapping):
            known = ", ".join(sorted(map(str, params))) or "none"
            raise MissingParameter(
                name, f"template placeholder {{{name}}} has no value (parameters given: {known})"
            )
        raise MissingParameter(
            name,
            f"template placeholder {{{name}}} is named but the parameters are positional; "
            f"use {{1}}, {{2}}... or give named parameters",
        )

    return _PLACEHOLDER.sub(value, text)
