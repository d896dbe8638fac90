"""Text from input made safe to print: a phone cell holding terminal escapes must not retitle or
clear the operator's terminal. Control characters (C0, DEL, C1), bidirectional overrides and
isolates, and lone surrogates (which a strict UTF-8 stdout cannot encode) are shown escaped as
`\\xNN` / `\\uNNNN`; everything printable (Chinese, emoji) stays as it is."""
from __future__ import annotations

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
