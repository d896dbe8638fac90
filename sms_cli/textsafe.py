"""Text from input made safe to print: a phone cell holding terminal escapes must not retitle or
clear the operator's terminal. Control characters (C0, DEL, C1) and bidirectional overrides
are shown escaped; everything printable (Chinese, emoji) stays as it is."""
from __future__ import annotations

import re

_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def _escape(m: re.Match) -> str:
    ch = m.group()
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    if text.isascii() and text.isprintable():
        return text
    return _UNSAFE.sub(_escape, text)
