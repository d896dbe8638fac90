"""Which working set an input belongs to, and which journal holds it.

A working set is an input's content and every failures file written from it: one ledger, so a
message is accepted at most once across re-runs. `choose_working_set` (a send: may create it)
and `forecast_working_set` (plan, --dry-run, status, receipts: only reads) answer the same
question the same way; `receipt_sets` is the forecast as `receipts` asks about it;
`locate_journal` finds the journal beside the input or through the per-user index.
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

from ..core.errors import SmsCliError
from ..guards.rules import GuardOptions
from ..guards.settings import timestamp
from ..run import shards
from ..run.send import Options
from ..run.stream import Identity
from ..store import journal as journal_mod
from ..store import paths, setindex
from ..store.journal import FINISHED


@dataclass
class SendRequest:
    input: str
    config: str | None = None
    provider: str | None = None
    fmt: str | None = None
    template: str | None = None
    params: tuple[str, ...] = ()
    sender_id: str | None = None
    region: str | None = None
    failures: str | None = None
    journal: str | None = None
    fresh: bool = False
    yes: bool = False
    continue_edited: bool = False
    options: Options = field(default_factory=Options)
    guards: GuardOptions = field(default_factory=GuardOptions)
    encoding: str | None = None  # --encoding: the input's text encoding (default: detected)
    delimiter: str | None = None  # --delimiter: the CSV field separator (default: detected)
    shard: shards.Shard | None = None  # --shard K/N: only this shard's rows, in its own journal


def storable(name: str) -> str:
    """A file name as text SQLite can store: bytes that are not UTF-8 (kept by Python as
    surrogate escapes) become \\xNN, the same way every time."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


@dataclass
class WorkingSetChoice:
    ws: object  # journal.WorkingSet: the set this run records into
    ident: Identity
    resend: bool  # the input is a failures file of `ws`
    taken: set[int] | None  # --continue-edited: messages an earlier version accepted
    resumed: bool  # `ws` existed before this run (its states are read once the run has started)
    fresh: bool = False
    continued_from: int | None = None
    origin: object = None  # a failures file: the set its rows were written from (journal.WorkingSet)


def choose_working_set(journal, source, req: SendRequest) -> WorkingSetChoice:
    """Which working set this input belongs to; refuses (exit 2) where going on could send an
    accepted message again, or where a flag cannot apply."""
    name = storable(paths.base(req.input, source.digest).name)
    if req.fresh and req.continue_edited:
        raise SmsCliError("--fresh starts a new working set and --continue-edited joins an earlier one: "
                          "give one of them")
    ref = source.first_ref()
    if ref:  # a failures file: its rows belong to the set they were written from
        origin = _origin(journal, ref, create=not journal.readonly)
        if origin is None:
            raise SmsCliError(f"{source.display}: its rows were written from a run that {journal.path} does not "
                              "hold; pass --journal with the journal of the input it came from")
        if req.fresh:
            raise SmsCliError("--fresh starts a working set over: use it with the original input, "
                              "not with its failures file")
        if req.continue_edited:
            raise SmsCliError("--continue-edited joins an edited input to its earlier version; a failures "
                              "file already belongs to the working set it came from: leave the flag out")
        own = journal.find_set(source.digest) or journal.create_set(source.digest, f"{name} (resend)",
                                                                    created=timestamp())
        sets = {origin.ref_prefix: (origin.id, origin.ref_prefix)}
        return WorkingSetChoice(origin, Identity(own.id, own.ref_prefix, journal, sets), True,
                                _taken(journal, origin), True, origin=origin)
    ws = journal.find_set(source.digest)
    fresh = False
    if ws is not None and req.fresh:
        accepted = journal.counts(ws.id).get("accepted", 0)
        if accepted and not req.yes:
            raise SmsCliError(f"{journal.path}: {accepted} rows of this input were already accepted; --fresh "
                              "would send them again. Add --yes to start over anyway")
        ws, fresh = None, True
    resumed = ws is not None
    if ws is None:
        linked = None
        other = None if fresh else journal.other_version(name, source.digest)
        if other is not None:
            if req.continue_edited:
                linked = other.id
            elif journal.set_status(other.id) not in (None, FINISHED):
                counts = journal.counts(other.id)
                raise SmsCliError(
                    f"{source.display} changed since an unfinished run of it ({counts.get('accepted', 0)} rows "
                    f"accepted, {counts.get('unknown', 0) + counts.get('inflight', 0)} unknown). Add "
                    "--continue-edited to send only the messages that run did not accept, or --fresh --yes to "
                    "treat the new version as a new campaign")
        elif req.continue_edited:
            raise SmsCliError(_no_version(name, journal))
        ws = journal.create_set(source.digest, name, linked, created=timestamp())
    elif req.continue_edited and len(journal.link_group(ws.id)) == 1:
        # this content was sent before on its own: join it to the newest other version now
        other = journal.other_version(name, source.digest)
        if other is None:
            raise SmsCliError(_no_version(name, journal))
        journal.link(ws.id, other.id)
        ws = journal.get_set(ws.id)
    return WorkingSetChoice(ws, Identity(ws.id, ws.ref_prefix, journal), False, _taken(journal, ws),
                            resumed, fresh, ws.linked)


def forecast_working_set(journal, source, req: SendRequest) -> WorkingSetChoice:
    """The working set a send would record into, read only (plan, --dry-run, status): what the
    ledger would skip, without creating anything. `journal` may be None (no journal yet), or
    open for writing (receipts records what it learns): nothing is created in it either."""
    ws = journal.find_set(source.digest) if journal is not None else None
    ref = source.first_ref()
    origin = _origin(journal, ref, create=False) if ref and journal is not None else None
    if origin is not None:
        own = ws.id if ws else -1
        ident = Identity(own, source.digest[:16], journal, {origin.ref_prefix: (origin.id, origin.ref_prefix)})
        return WorkingSetChoice(ws, ident, True, _taken(journal, origin), ws is not None, origin=origin)
    if ws is not None and not req.fresh:
        taken = _taken(journal, ws)
        if taken is None and req.continue_edited:
            taken = _version_taken(journal, req, source)
        return WorkingSetChoice(ws, Identity(ws.id, ws.ref_prefix, journal), False, taken, True)
    taken = None
    if journal is not None and req.continue_edited and not req.fresh:
        taken = _version_taken(journal, req, source)
    return WorkingSetChoice(ws, Identity(-1, source.digest[:16], None), False, taken, ws is not None)


def _no_version(name: str, journal) -> str:
    return (f"--continue-edited: {journal.path} holds no other version of {name} to continue; "
            "leave the flag out to send this input as it is")


def receipt_sets(journal, source, req: SendRequest) -> tuple[list, object | None]:
    """The working sets `receipts` asks about, and the input's own set (None: not in `journal`).
    With the input: the set a send of it records into, and for a failures file the set its rows
    were written from: the forecast a send, plan and status make (read only, nothing created).
    An input only rehearsed has only a rehearsal's set: that one (its rows are settled, never
    asked: the outbox has no receipts). Without the input: every set of the journal (a stdin run)."""
    if source is None:
        sets = journal.all_sets()
        if not sets:
            raise SmsCliError(f"{journal.path} holds no run")
        return sets, None
    choice = forecast_working_set(journal, source, req)
    own = choice.ws or journal.other_kind(source.digest)
    sets = [ws for ws in (choice.origin, own) if ws is not None]
    if not sets:
        raise SmsCliError(f"{journal.path} holds no run of {source.display}; pass --journal with the journal of "
                          "its send")
    return sets, own


def _origin(journal, ref: str, *, create: bool):
    """The set a failures-file row's sms_ref names. A failures file a rehearsal wrote, resent
    through a real provider (or the other way round), names the same content: its rows are the
    same rows of a set of this journal's kind, made here when there is none yet (`create`: a send)."""
    prefix = ref.partition(":")[0] if ":" in ref else ""
    if not prefix:
        return None
    origin = journal.find_set(prefix)
    if origin is None and create:
        twin = journal.other_kind(prefix)
        if twin is not None:
            origin = journal.create_set(twin.digest, twin.name, created=timestamp())
    return origin


def _taken(journal, ws) -> set[int] | None:
    """Messages the other versions of this working set (every set joined to it by
    --continue-edited, before or after it) took: never sent again from this one."""
    others = [g for g in journal.link_group(ws.id) if g != ws.id]
    return journal.taken_messages(others) if others else None


def _holds(jpath: Path, key: str) -> bool:
    if not jpath.is_file():
        return False
    try:
        with journal_mod.Journal.leave_as_found(jpath):
            j = journal_mod.Journal(jpath, readonly=True)
            try:
                return j.find_set(key) is not None
            finally:
                j.close()
    except SmsCliError:
        return False


def locate_journal(req: SendRequest, source, rehearsal: bool, notes: list[str]) -> Path:
    """The journal this command records into (send) or reads (plan, --dry-run, status). The
    default beside the input, unless it has no record of this content and the per-user index
    knows the journal that has (the same list renamed, behind a symlink, in another folder, or
    a failures file written elsewhere): then that one, said in `notes`. An explicit --journal
    without the record is refused when another journal has it, unless --fresh."""
    jpath = Path(req.journal) if req.journal else shards.journal_path(req.input, source.digest, req.shard)
    journal_mod.refuse_symlink_out(jpath)
    key = setindex.key_of(source.digest, source.first_ref())
    # a shard records into its own journal beside the input: pods of one job must never be led
    # into one shared journal by the index
    if rehearsal or req.shard is not None or _holds(jpath, key):
        return jpath
    here = paths.resolved(jpath)
    for digest, journal, sent_from in setindex.lookup(key):
        if journal == here or not _holds(Path(journal), digest):
            continue
        if req.journal and not req.fresh:
            raise SmsCliError(f"this content was sent before from {sent_from}, recorded in {journal}; "
                              f"--journal {req.journal} would start a second ledger and send it again. "
                              f"Use --journal {journal} to continue it, or add --fresh to start over")
        if req.journal:
            return jpath
        notes.append(f"this content was sent before from {sent_from}: continuing its working set in {journal}")
        return Path(journal)
    return jpath


def _version_taken(journal, req: SendRequest, source) -> set[int] | None:
    """--continue-edited in a dry run: what the send would join this input to (the newest other
    version of its name, and every version linked to that one) has taken these messages."""
    other = journal.other_version(storable(paths.base(req.input, source.digest).name), source.digest)
    return journal.taken_messages(journal.link_group(other.id)) if other is not None else None


def leaving_journal_as_found(req: SendRequest):
    """Around a dry run of `req`: the journal's folder is left as it was (journal.py,
    `leave_as_found`). A file input's journal name does not depend on its content; stdin's
    does, so a dry run of stdin without --journal is not covered."""
    if req.input == "-" and not req.journal:
        return nullcontext()
    jpath = Path(req.journal) if req.journal else shards.journal_path(req.input, "", req.shard)
    return journal_mod.Journal.leave_as_found(jpath)

