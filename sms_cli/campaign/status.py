"""`sms-cli status`: what the journal knows about an input's working set, and the plan of a re-run.

It opens the campaign read only, reads the runs and row states of the input's set, then plans
the re-run that the latest run's options would make: the same working-set choice and the same
stream as `send`, so status cannot drift from what a send would do.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from ..core.errors import ExitCode, SmsCliError
from ..core.outcomes import Fate, RowState, exit_code, public_counts
from ..run.send import Options, Summary
from ..store import journal as journal_mod
from ..store import paths, setindex
from .campaign import GUARD_FIELDS, Campaign, plan
from .workingset import SendRequest

# every journal state by its public name, in the order the JSON shows them
JOURNAL_STATES = tuple(s.public for s in RowState)


@dataclass
class Status:
    """What the journal knows about an input's working set, and what a re-run would do."""
    input: str
    journal: str
    journal_exists: bool
    found: bool = False  # the journal holds a working set for this input
    resend_of: str | None = None  # the input is a failures file written from this set (its name)
    working_set: dict | None = None
    other_version: dict | None = None  # no set for this content, but one for another version
    active: bool = False  # a send holds the journal now
    runs: list = field(default_factory=list)  # journal.RunRecord, oldest first
    journal_states: dict[str, int] = field(default_factory=dict)
    failures_file: str | None = None
    failures_file_exists: bool = False
    rerun: Summary | None = None  # the plan of the same command: what a re-run would send
    receipts: dict[str, int] | None = None  # rows per delivery receipt status (None: the journal has none)
    notes: list[str] = field(default_factory=list)  # rehearsals kept apart, the journal the index found

    @property
    def exit_code(self) -> int:
        """0 nothing left to do; 1 a re-run would send something or rows are not accepted;
        2 the journal has no record of this input (as for any input it cannot read)."""
        if not self.found or self.rerun is None:
            return int(ExitCode.USAGE)
        s = self.rerun
        done = s.n(Fate.ACCEPTED_EARLIER) + s.n(Fate.DUPLICATE)
        # every row a re-run would still act on, unknown and deferred ones included, is a row
        # not accepted yet: the question is whether anything is left, not what the send would exit
        return int(exit_code({Fate.NOT_SENT: s.rows - done}))


def status(req: SendRequest) -> Status:
    """The runs the journal recorded for `req.input`, its rows' states, the failures file, and
    the plan of a re-run with the latest run's options. Needs no secrets and writes nothing
    (no journal is created when there is none)."""
    with Campaign.open(req, sending=False) as camp:
        source, jpath, fpath, rehearsal = camp.source, camp.journal_path, camp.failures_path, camp.rehearsal
        digest, display, ref = source.digest, source.display, source.first_ref()
        notes, sections = list(camp.notes), set(camp.cfg.providers)
    st = Status(display, str(jpath), jpath.exists(), failures_file=str(fpath), failures_file_exists=fpath.exists(),
                notes=notes)
    if not st.journal_exists:
        return st
    with journal_mod.Journal.leave_as_found(jpath):
        _read_journal(st, req, jpath, digest, ref, rehearsal)
        if st.found:
            st.rerun = plan(_rerun(req, jpath, st.runs[-1].options if st.runs else {}, sections))
    return st


def _read_journal(st: Status, req: SendRequest, jpath: Path, digest: str, ref: str | None,
                  rehearsal: bool) -> None:
    journal = journal_mod.Journal(jpath, readonly=True, rehearsal=rehearsal)
    try:
        twin = _rehearsal_note(journal, setindex.key_of(digest, ref))
        if twin:
            st.notes.append(twin)
        ws = None
        if ref and ":" in ref:  # a failures file: its rows belong to the set they were written from
            ws = journal.find_set(ref.partition(":")[0])
            st.resend_of = ws.name if ws is not None else None
        if ws is None:
            ws = journal.find_set(digest)
        if ws is None:
            other = journal.other_version(paths.base(req.input, digest).name, digest)
            if other is not None:
                end = journal.set_status(other.id)
                st.other_version = {"name": other.name, "status": getattr(end, "public", end),
                                    "journal_states": _states(journal.counts(other.id))}
            return
        st.found = True
        st.working_set = {"name": ws.name, "generation": ws.generation, "created": ws.created,
                          "continued_from_edited": ws.linked is not None}
        st.runs = journal.runs(ws.id)
        st.journal_states = _states(journal.counts(ws.id))
        st.active = journal.in_use()
        try:
            st.receipts = journal.receipt_counts(ws.id)
        except SmsCliError:  # a journal from before receipts: nothing collected
            st.receipts = None
    finally:
        journal.close()


def _rerun(req: SendRequest, jpath: Path, last: dict, sections: set[str]) -> SendRequest:
    """The request a re-run makes: the latest run's provider section while the config still has
    it (among `sections`; else the default), its options, and the guard flags it was given (the
    suppression list, quiet hours, countries, validity), each where this request does not give
    its own; never its spend caps."""
    provider = req.provider or (last.get("provider") if last.get("provider") in sections else None)
    options = Options(limit=last.get("limit"), dedupe=bool(last.get("dedupe")),
                      only_retryable=bool(last.get("only_retryable")), retry_unknown=bool(last.get("retry_unknown")),
                      dry_run=True)
    flags = {k: last[k] for k in GUARD_FIELDS if last.get(k) is not None and k not in ("max_cost", "max_parts")}
    guards = replace(req.guards, **{k: v for k, v in flags.items() if getattr(req.guards, k) is None})
    return replace(req, provider=provider, journal=str(jpath), options=options, guards=guards)


def _rehearsal_note(journal, digest: str) -> str | None:
    """What the other kind of set (rehearsal / real) of this content holds, for `status`."""
    twin = journal.other_kind(digest)
    if twin is None:
        return None
    n = journal.counts(twin.id).get(RowState.ACCEPTED, 0)
    if twin.rehearsal:
        return (f"{n} rows were only rehearsed through the outbox (nothing left the machine): they count "
                "for rehearsals only, and a send through a real provider sends them")
    return f"{n} rows of this content were accepted through a real provider (status with that provider shows them)"


def _states(counts: dict[str, int]) -> dict[str, int]:
    """Every journal state by its public name, zero included (and any state a later version adds)."""
    return {**{k: 0 for k in JOURNAL_STATES}, **public_counts(counts)}
