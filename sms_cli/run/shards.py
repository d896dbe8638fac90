"""Shards: one input sent by N processes (pods, machines), each taking its own rows.

Shard K of N takes the rows whose message key (Message.digest: recipient, template and
parameters, computed by the validator before an adapter reshapes the params) is K modulo N, so
shards never overlap and their union is the input, for any N. Rows that fail validation have no
key: their row number decides, hashed the same way. Two rows carrying the same message land in
the same shard, so --dedupe still sees both.

Each shard keeps its own journal and failures file beside the input,
`<base>.shard-K-of-N.journal.sqlite` and `<base>.shard-K-of-N.failed.<ext>`: a pod re-run with
the same index resumes from its own journal, and a shard's failures file resends into it (its
name leads there as any failures file's does, paths.py). K counts from 0, as a Kubernetes
Indexed Job's JOB_COMPLETION_INDEX does.

The same working set sent with another N would put rows in other shards whose journals never
saw them: a run is refused when the input has shard journals for another N, or when it was
sent without shards (and the other way round).
"""
from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..store import paths
from ..store.journal import Journal
from ..core.errors import SmsCliError
from ..core.model import Message

INDEX_ENV = "JOB_COMPLETION_INDEX"  # set by Kubernetes in each pod of an Indexed Job
MAX_SHARDS = 1024
_LABEL = re.compile(r"\.shard-(\d+)-of-(\d+)$")


@dataclass(frozen=True)
class Shard:
    index: int  # K, from 0
    count: int  # N

    @property
    def label(self) -> str:
        return f"shard-{self.index}-of-{self.count}"

    def owns_key(self, key: int) -> bool:
        return key % self.count == self.index  # Python's % is never negative

    def owns(self, item) -> bool:
        """`item`: what the validator returned for a row (a Message, or its Rejected)."""
        if item.__class__ is Message:
            return self.owns_key(item.digest)
        return self.owns_key(row_key(item.seq))


def row_key(seq: int) -> int:
    """The key of a row that has no message key (it failed validation): its row number, hashed."""
    return int.from_bytes(hashlib.blake2b(b"row:%d" % seq, digest_size=8).digest(), "big")


def parse(shard: str | None, shards: int | None, environ=os.environ) -> Shard | None:
    """`--shard K/N`, or `--shards N` with K from $JOB_COMPLETION_INDEX; None without either."""
    if shard is not None:
        k, sep, n = shard.partition("/")
        if not (sep and k.strip().isdigit() and n.strip().isdigit()):
            raise SmsCliError(f"--shard {shard!r}: expected K/N such as 0/4 (shards count from 0)")
        index, count = int(k), int(n)
        if shards is not None and shards != count:
            raise SmsCliError(f"--shard {shard} and --shards {shards} disagree")
    elif shards is not None:
        text = environ.get(INDEX_ENV)
        if text is None or not text.strip().isdigit():
            raise SmsCliError(f"--shards {shards} takes this process's index from ${INDEX_ENV} (a Kubernetes "
                              "Indexed Job sets it), which is not set to a number; or pass --shard K/N")
        index, count = int(text), shards
    else:
        return None
    if not 1 <= count <= MAX_SHARDS:
        raise SmsCliError(f"shards: N must be 1 to {MAX_SHARDS}, got {count}")
    if not 0 <= index < count:
        raise SmsCliError(f"shard {index} of {count}: K counts from 0 to {count - 1}")
    return Shard(index, count)


def _base(input_name: str, digest: str, shard: Shard) -> Path:
    b = paths.base(input_name, digest)
    if b.name.endswith("." + shard.label):  # a shard's own failures file, sent with its --shard
        return b
    return b.with_name(f"{b.name}.{shard.label}")


def journal_path(input_name: str, digest: str, shard: Shard | None) -> Path:
    if shard is None:
        return paths.journal_path(input_name, digest)
    b = _base(input_name, digest, shard)
    return b.with_name(b.name + paths.JOURNAL_SUFFIX)


def failures_path(input_name: str, fmt: str, digest: str, shard: Shard | None, derived: str = paths.FAILED) -> Path:
    if shard is None:
        if derived == paths.FAILED:  # a derived file (list.undelivered.csv) writes its own failures file
            return paths.failures_path(input_name, fmt, digest)
        b = paths.base(input_name, digest)
    else:
        b = _base(input_name, digest, shard)
    return b.with_name(b.name + derived + paths.failures_ext(input_name, fmt))


def existing(input_name: str, digest: str) -> dict[int, list[Path]]:
    """The shard journals beside the input: N -> their paths."""
    b = paths.base(input_name, digest)
    found: dict[int, list[Path]] = {}
    folder = b.parent if str(b.parent) else Path(".")
    for p in folder.glob(f"{_glob_escape(b.name)}.shard-*-of-*{paths.JOURNAL_SUFFIX}"):
        m = _LABEL.search(p.name[: -len(paths.JOURNAL_SUFFIX)])
        if m:
            found.setdefault(int(m.group(2)), []).append(p)
    return found


def _glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)


def check_layout(input_name: str, digest: str, shard: Shard | None, content: str) -> None:
    """Refuse (exit 2) a send whose shard count differs from the one this input was sent with.
    `content`: the input's digest (the working set the unsharded journal would hold)."""
    if shard is not None and paths.base(input_name, digest).name.endswith("." + shard.label):
        return  # a shard's own failures file
    found = existing(input_name, digest)
    others = sorted(n for n in found if shard is None or n != shard.count)
    if others:
        names = ", ".join(sorted(p.name for n in others for p in found[n]))
        want = f"--shards {others[0]} (or --shard K/{others[0]})"
        raise SmsCliError(f"{input_name} was sent in {others[0]} shards ({names}): send it with {want}; another "
                          "shard count would give rows to shards whose journals never saw them, and could send "
                          "them twice. Move those journals away only for a new campaign")
    if shard is not None and _has_set(paths.journal_path(input_name, digest), content):
        raise SmsCliError(f"{input_name} was sent without shards ({paths.journal_path(input_name, digest).name}): "
                          "send it again without --shard/--shards, or its accepted rows could be sent twice")


def _has_set(jpath: Path, digest: str) -> bool:
    if not jpath.exists():
        return False
    journal = Journal(jpath, readonly=True)
    try:
        return journal.find_set(digest) is not None
    finally:
        journal.close()


class ShardSource:
    """The input seen by one shard: the same object, whose rows() yields only the shard's rows
    (numbered as in the whole input, so the journal's keys do not depend on N)."""

    def __init__(self, source, shard: Shard, validator):
        self._source, self.shard, self._validate = source, shard, validator.validate

    def __getattr__(self, name):
        return getattr(self._source, name)

    def rows(self, start: int = 0):
        owns, validate = self.shard.owns, self._validate
        for raw in self._source.rows(start):
            if owns(validate(raw)):
                yield raw
