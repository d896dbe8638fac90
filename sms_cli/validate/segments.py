"""SMS length and part counting (GSM 03.38 / UCS-2) and message templates.

``count(text)`` says which encoding a text needs and how many concatenated
SMS parts it costs.  ``render(template, params)`` fills ``{1}``/``{name}``
placeholders and ``placeholders(template)`` lists them.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

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
    "lookup",
    "Shape",
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


def lookup(params: Sequence[str] | Mapping[str, str]) -> Callable[[str], object]:
    """The function from a placeholder's name to its value in ``params`` (as given, not yet
    made a str), raising ``MissingParameter`` as ``render`` documents. Which value a name gets
    depends on the names (keys) and the number of ``params``, never on the values: the fast
    counter (``Shape``) relies on that to work out once where each placeholder's value is."""
    if isinstance(params, Mapping):
        named: Mapping[str, str] = params
        positional: list = list(params.values())
    elif isinstance(params, (str, bytes)):
        raise TypeError("params must be a list or a dict of strings, not a single string")
    else:
        named = {}
        positional = list(params)

    def value(name: str) -> object:
        if name in named:
            return named[name]
        if name.isdigit():
            index = int(name)
            if 1 <= index <= len(positional):
                return positional[index - 1]
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

    return value


def render(text: str, params: Sequence[str] | Mapping[str, str]) -> str:
    """Fill the placeholders of template ``text`` from ``params``.

    With a list, ``{1}``, ``{2}``... are its values (1-based) and a named
    placeholder has no value.  With a dict, ``{name}`` is ``params["name"]``;
    ``{1}``, ``{2}``... are a key of that exact name if there is one, else the
    dict's values in order.  Values are inserted as they are (not re-scanned
    for placeholders).  Raises ``MissingParameter`` (a ``ValueError``) naming the
    first placeholder without a value.
    """
    value = lookup(params)
    return _PLACEHOLDER.sub(lambda match: str(value(match.group(1))), text)


# --- counting a template's rows without rendering them ------------------------------------
# ASCII that is not one GSM-7 septet: control characters other than LF and CR, the extension
# characters [ \ ] ^ { | } ~ and form feed, the backtick and DEL (not GSM-7 at all)
_ASCII_ODD = re.compile(r"[\x00-\x09\x0b-\x0c\x0e-\x1f\x5b-\x5e\x60\x7b-\x7f]")


def _measure(text: str) -> tuple[int, int, int, bool]:
    """(characters, GSM-7 extension characters, characters outside the BMP, all GSM-7?)"""
    if text.isascii() and _ASCII_ODD.search(text) is None:
        return len(text), 0, 0, True  # digits, letters, spaces, punctuation: the usual param
    ext = sum(1 for ch in text if ch in GSM_EXTENSION)
    astral = 0 if text.isascii() else sum(1 for ch in text if ord(ch) > 0xFFFF)
    return len(text), ext, astral, is_gsm7(text)


class Shape:
    """A template text taken apart once, so that a row's length and parts are counted from its
    parameter values alone: ``shape.count(values)`` == ``count(render(text, params))``.

    The fixed text is measured once (characters, GSM-7 extension characters, characters outside
    the BMP, whether it is all GSM-7); each value is measured per row; the encoding, the length
    and the parts follow from the sums. One case needs the text itself: a message of several
    parts with an escape pair (GSM-7) or a surrogate pair (UCS-2) in it, where the pair
    falls decides whether it opens a new part; then the text is rendered and counted in full.
    ``values`` are the placeholders' values in the order the placeholders appear in the text
    (each occurrence), as ``Shape.values`` finds them.
    """

    def __init__(self, text: str):
        split = _PLACEHOLDER.split(text)  # fixed, name, fixed, name, ..., fixed
        self.text = text
        self.pieces: tuple[str, ...] = tuple(split[0::2])
        self.names: tuple[str, ...] = tuple(split[1::2])
        self.fixed = _measure("".join(self.pieces))
        self.fixed_length = self.fixed[0]

    def values(self, params: Sequence[str] | Mapping[str, str]) -> list[str]:
        """Each placeholder occurrence's value, as ``render`` would insert it (raises as it does)."""
        value = lookup(params)
        return [_text(value(name)) for name in self.names]

    def render(self, values: Sequence[str], prefix: str = "") -> str:
        out = [prefix, self.pieces[0]]
        for value, piece in zip(values, self.pieces[1:]):
            out += (value, piece)
        return "".join(out)

    def length(self, values: Sequence[str]) -> int:
        """Characters of the rendered text (``len(render(...))``)."""
        return self.fixed_length + sum(map(len, values))

    def count(self, values: Sequence[str], prefix: str = "") -> Segments:
        """``count(prefix + render(...))``, the prefix being fixed text before the template's
        (the 【signature】 of a mainland China message)."""
        chars, ext, astral, gsm = self.fixed
        for value in (prefix, *values) if prefix else values:
            c, e, a, g = _measure(value)
            chars, ext, astral, gsm = chars + c, ext + e, astral + a, gsm and g
        if gsm:
            length, wide, single, multi, encoding = chars + ext, ext, GSM7_SINGLE_PART, GSM7_MULTI_PART, GSM7
        else:
            length, wide, single, multi, encoding = chars + astral, astral, UCS2_SINGLE_PART, UCS2_MULTI_PART, UCS2
        if length <= single:
            return Segments(encoding, length, 1)
        if not wide:  # every character one unit: the greedy split is the plain division
            return Segments(encoding, length, -(-length // multi))
        return count(self.render(values, prefix))


def _text(value: object) -> str:
    return value if value.__class__ is str else str(value)
