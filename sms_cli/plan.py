"""Grouping rows into provider requests, in input order, without holding the input.

Rows whose `batch_key` is equal may share a request (uSpeedo: any rows; Aliyun: one template;
uSpeedo SendUSMSMessage: one content). A buffer is sent when it reaches the provider's limit;
when too many partly filled buffers are open (many distinct keys), the oldest is sent early,
so memory is bounded by the batch size, not by the input.
"""
from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator

from .model import Message


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
