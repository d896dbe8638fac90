"""The built-in provider used when there is no config: nothing leaves the machine, every
accepted message is appended as one JSON line to a local file.

It has no delivery receipts: no message reached a handset, so `sms-cli receipts` marks its rows
`no_receipt` at once (never `delivered`, which would make a dry pipeline look like a live one)."""
from __future__ import annotations

import json
import os
import threading
import time

from ..core.model import Kind, Message, Outcome
from ..store.paths import open_private_append
from .base import Provider, ReceiptsUnsupported
from .http import RequestFailed

DEFAULT_PATH = "sms-outbox.jsonl"


class Outbox(Provider):
    type = "outbox"
    description = "local file, nothing is sent (the default when there is no config)"
    config_keys = ("path",)
    max_batch = 1000
    uses_http = False

    def __init__(self, settings, templates=None, *, concurrency=4):
        super().__init__(settings, templates, concurrency=concurrency)
        self.path = settings.get("path", DEFAULT_PATH)
        self.endpoint = os.path.abspath(self.path)
        self._lock = threading.Lock()

    @property
    def action(self) -> str:
        return "append"

    def _send(self, batch: list[Message]) -> list[Outcome]:
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        lines = "".join(
            json.dumps({"phone": m.phone, "template_id": m.template_id, "params": m.params,
                        "sender_id": m.sender_id, "user_id": m.correlation, "sent_at": now},
                       ensure_ascii=False) + "\n"
            for m in batch)
        try:
            with self._lock, open_private_append(self.path) as fh:
                fh.write(lines)
        except OSError as exc:
            raise RequestFailed(Outcome(Kind.FATAL, "OutboxUnwritable", f"{self.path}: {exc.strerror}")) from None
        return [Outcome(Kind.ACCEPTED, ref=self.path)] * len(batch)

    def receipt_pages(self, rows, now):
        raise ReceiptsUnsupported("the outbox sends nothing: no message has a delivery receipt")
