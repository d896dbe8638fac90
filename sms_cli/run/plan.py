"""Grouping rows into provider requests, in input order, without holding the input.

Rows whose `batch_key` is equal may share a request (uSpeedo: any rows; Aliyun: one template;
uSpeedo SendUSMSMessage: one content). A buffer is sent when it reaches the provider's limit;
when too many partly filled buffers are open (many distinct keys), the oldest is sent early,
so memory is bounded by the batch size, not by the input.
"""
from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator

from ..guards.rules import region_of
from ..core.model import Message
from ..validate.validator import filler


class Batcher:
    def __init__(self, max_size: int, key: Callable[[Message], Hashable], max_open: int = 64):
        self.max_size, self.key, self.max_open = max_size, key, max_open
        self.buffers: dict[Hashable, list[Message]] = {}  # insertion order = age

    def add(self, msg: Message) -> list[list[Message]]:
        k = self.key(msg)
        buf = self.buffers.get(k)
        if buf is None:
            out = []
            if len(self.buffers) >= self.max_open:
                out.append(self.buffers.pop(next(iter(self.buffers))))
            self.buffers[k] = [msg]
            return out
        buf.append(msg)
        if len(buf) >= self.max_size:
            del self.buffers[k]
            return [buf]
        return []

    def flush(self) -> Iterator[list[Message]]:
        while self.buffers:
            yield self.buffers.pop(next(iter(self.buffers)))


class Estimator:
    """Cost estimate of what would be sent: per template the rendered length, encoding and
    billable parts; per country the rows, parts and cost at the provider's `prices`.

    Mainland China (+86) messages carry the signature 【sender】 in the text and are billed at
    70/67 characters a part whatever the text, as the providers do. A row whose template text is
    not in config counts one part, and the estimate says it is a lower bound.
    """

    def __init__(self, templates, prices: dict[str, float] | None = None):
        self.templates = templates
        self.prices = prices or {}
        self.by_template: dict[str, dict] = {}
        self.by_country: dict[str, dict] = {}
        self.lower_bound = False  # some rows' text is unknown: they count one part
        self.unpriced: set[str] = set()  # regions with no price (and no default)

    @property
    def parts(self) -> int:
        return sum(c["parts"] for c in self.by_country.values())

    @property
    def cost(self) -> float:
        return sum(c["cost"] for c in self.by_country.values())

    def add(self, msg: Message) -> None:  # once per row: imports are at module level
        parts = self._parts(msg)
        if parts is None:
            parts, self.lower_bound = 1, True
        region = region_of(msg.phone, msg.country_code)
        c = self.by_country.get(region)
        if c is None:
            c = self.by_country[region] = {"rows": 0, "parts": 0, "cost": 0.0}
        c["rows"] += 1
        c["parts"] += parts
        price = self.prices.get(region, self.prices.get("default"))
        if price is None:
            self.unpriced.add(region)
        else:
            c["cost"] += parts * price

    def _parts(self, msg: Message) -> int | None:
        tpl = self.templates.get(msg.template_id)
        est = self.by_template.get(msg.template_id)
        if est is None:
            est = self.by_template[msg.template_id] = {
                "rows": 0, "encodings": set(), "min_length": None, "max_length": 0, "parts": 0,
                "text_known": bool(tpl and tpl.text is not None)}
        est["rows"] += 1
        if not est["text_known"]:
            return None
        text = filler(tpl)
        try:
            values = text.values(msg.params)
        except (ValueError, TypeError):
            return None
        # a mainland message carries 【sender】 before its text; the brackets are not GSM-7, so it
        # is counted as UCS-2 at 70/67 characters a part, as the providers bill it
        seg = text.shape.count(values, f"【{msg.sender_id or ''}】" if msg.country_code == 86 else "")
        est["encodings"].add(seg.encoding)
        est["min_length"] = seg.length if est["min_length"] is None else min(est["min_length"], seg.length)
        est["max_length"] = max(est["max_length"], seg.length)
        est["parts"] += seg.parts
        return seg.parts
