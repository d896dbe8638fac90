"""Rows that repeat an earlier row's message (number, template and parameters) in a run without
--dedupe: both are sent, as asked, but the operator is told how many, where, and how to drop them.

Memory: one 8-byte message digest per row (Message.digest, computed anyway) in an open-addressing
table kept at most half full: 16-32 bytes a row, never more than CHECKED_ROWS rows (8 MB at
500,000 rows; rows after that are not checked, and the warning says so). The bound keeps a
1,000,000-row send's memory flat (the check cost it 16-24 MB of its peak at 2,000,000); a Python
set of the same digests would cost about 100 bytes a row.
"""
from __future__ import annotations

from array import array

CHECKED_ROWS = 500_000


class Repeats:
    def __init__(self, limit: int = CHECKED_ROWS, expect: int = 0):
        """`expect`: about how many rows will come (the input's lines): the table starts large
        enough for them, up to `limit`, instead of being rehashed ten times on the way (rehashing
        was a quarter of the check's cost on 200,000 rows); it ends that large either way."""
        size = 1024
        while size < 2 * min(expect, limit) + 2:
            size *= 2
        self._slots = array("q", bytes(8 * size))  # 0 marks an empty slot
        self._mask = size - 1
        self._used = 0
        self.limit = limit
        self.count = 0  # rows whose message an earlier row had
        self.lines: list[int] = []  # the first two of them
        self.unchecked = False  # the table is full: later rows were not checked

    def add(self, digest: int, line: int) -> None:
        d = digest or 1  # 0 marks an empty slot (one digest in 2**64 shares 1's slot)
        slots, mask = self._slots, self._mask
        i = d & mask
        v = slots[i]
        if v == 0 and self._used < self.limit:  # the usual case, a new message in a free slot
            slots[i] = d
            self._used += 1
            if self._used * 2 > mask:
                self._grow()
            return
        if self._used >= self.limit:
            self.unchecked = True
            return
        while v != 0:
            if v == d:
                self.count += 1
                if len(self.lines) < 2:
                    self.lines.append(line)
                return
            i = (i + 1) & mask
            v = slots[i]
        slots[i] = d
        self._used += 1
        if self._used * 2 > mask:
            self._grow()

    def _grow(self) -> None:
        old = self._slots
        self._mask = mask = len(old) * 2 - 1
        self._slots = slots = array("q", bytes(8 * (mask + 1)))
        for d in filter(None, old):  # the used slots only, picked out at C speed
            i = d & mask
            while slots[i]:
                i = (i + 1) & mask
            slots[i] = d

    def note(self) -> str | None:
        """The summary's warning, or None when no row repeats another."""
        if not self.count:
            return None
        where = " and ".join(map(str, self.lines)) + (", ..." if self.count > 2 else "")
        rows = "1 row repeats" if self.count == 1 else f"{self.count} rows repeat"
        tail = f" (only the first {self.limit:,} rows were checked)" if self.unchecked else ""
        return (f"{rows} an earlier row's number, template and parameters (line{'s' if len(self.lines) > 1 else ''} "
                f"{where}): without --dedupe each copy is sent; add --dedupe to send each message once{tail}")
