"""-v logging to stderr, with every known secret value redacted as a last line of defence."""
from __future__ import annotations

import logging
import sys

_SECRETS: set[str] = set()


def register_secrets(values) -> None:
    _SECRETS.update(v for v in values if v and len(v) >= 4)


def redact(text: str) -> str:
    for secret in _SECRETS:
        text = text.replace(secret, "***")
    return text


class _Redact(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = ()
        return True


def setup_logging(verbose: bool, secrets=frozenset()) -> None:
    register_secrets(secrets)
    logger = logging.getLogger("sms_cli")
    logger.setLevel(logging.INFO if verbose else logging.WARNING)
    handler = next((h for h in logger.handlers if getattr(h, "_sms_cli", False)), None)
    if handler is None:
        handler = logging.StreamHandler(sys.stderr)
        handler._sms_cli = True
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        handler.addFilter(_Redact())
        logger.addHandler(handler)
    else:  # a second command in one process (tests): log to today's stderr
        handler.stream = sys.stderr  # not setStream(): it flushes the old one, maybe closed
    logger.propagate = False
