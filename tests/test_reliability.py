"""Reliability of `sms-cli send`, driven through the real CLI in a subprocess against the
in-thread emulator on 127.0.0.1: journal and resume, unknown outcomes, kill -9, signals, the
journal lock, the shared rate limit, injected faults, and file safety."""
from __future__ import annotations

import csv
import hashlib
import json
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from conftest import Background, cli_env, invoke, make_rows, start_cli, wait_for


# --- helpers ---------------------------------------------------------------------------------
def send_cmd(inp, cfg, *extra) -> list:
    return ["send", inp, "--config", cfg, "--json", *extra]


def summary_of(proc) -> dict:
    out = proc.stdout if isinstance(proc.stdout, str) else proc.stdout.read()
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    assert lines, f"no JSON summary (exit {proc.returncode}):\nstdout: {out}\nstderr: {proc.stderr}"
    return json.loads(lines[-1])


def send(inp, cfg, *extra, cwd, **kw) -> tuple[int, dict]:
    return send_args(send_cmd(inp, cfg, *extra), cwd=cwd, **kw)


def send_args(args, *, cwd, **kw) -> tuple[int, dict]:
    """In this process: these runs need no process of their own (kills and signals use start_cli)."""
    proc = invoke(*args, cwd=cwd, **kw)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, summary_of(proc)


def logged(emu) -> Counter:
    """Numbers the emulator accepted, from its log file (the record that survives the run)."""
    counts: Counter = Counter()
    with emu.lock:  # not while a request the killed client left behind is being logged
        text = Path(emu.options.log_path).read_text(encoding="utf-8")
    for line in text.splitlines():
        if line.strip():
            counts[json.loads(line)["phone"]] += 1
    return counts


def failures(path) -> dict[str, dict]:
    """phone -> failures-file row ({} when there is no file)."""
    path = Path(path)
    if not path.exists():
        return {}
    with open(path, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    by_phone = {r["phone"]: r for r in rows}
    assert len(by_phone) == len(rows), "a row is in the failures file twice"
    return by_phone


def journal_states(path) -> Counter:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        ws = db.execute("SELECT set_id FROM runs ORDER BY id DESC LIMIT 1").fetchone()[0]
        return Counter(dict(db.execute("SELECT state, count(*) FROM rows WHERE set_id=? GROUP BY state", (ws,))))
    finally:
        db.close()


def expected_exit(s: dict) -> int:
    if s["invalid"] + s["failed"] + s["not_sent"]:
        return 1
    return 4 if s["unknown"] else 0


def check_accounting(phones: list[str], emu, fpath, s: dict) -> dict[str, dict]:
    """The invariants every run must keep; returns the failures-file rows."""
    log = logged(emu)
    failed = failures(fpath)
    dups = {p: n for p, n in log.items() if n > 1}
    assert not dups, f"sent twice: {list(dups)[:5]}"
    assert set(log) <= set(phones)
    missing = [p for p in phones if p not in log and p not in failed]
    assert not missing, f"rows neither accepted by the emulator nor in the failures file: {missing[:5]}"
    for p, row in failed.items():
        if row["retryable"] == "unknown":  # lost answers, and HTTP 5xx (auth-and-limits.md: may be taken)
            assert row["error_code"] == "Unknown" or row["error_code"].startswith("HTTP5")
        else:  # failed before the provider took it (throttled, refused): never in the emulator's log
            assert p not in log, f"{p} is in the emulator log but the failures file says {row['error_code']}"
    assert s["accepted"] + s["accepted_before"] + s["failed"] + s["unknown"] + s["not_sent"] == len(phones)
    assert sum(1 for r in failed.values() if r["retryable"] == "unknown") == s["unknown"]
    assert len(failed) == s["failed"] + s["unknown"] + s["not_sent"]
    return failed


# --- journal and resume ----------------------------------------------------------------------
def test_completed_run_resumes_to_nothing_and_keeps_the_input(tmp_path, emulator, write_config):
    emu = emulator()
    cfg = write_config(emu)
    inp = tmp_path / "in.csv"
    phones = make_rows(inp, 2500)
    digest = hashlib.sha256(inp.read_bytes()).hexdigest()

    code, s = send(inp, cfg, cwd=tmp_path)
    assert code == 0 and s["accepted"] == 2500 and not s["resumed"] and s["exit_code"] == 0
    assert (tmp_path / "in.journal.sqlite").exists() and s["journal"].endswith("in.journal.sqlite")
    assert logged(emu) == Counter({p: 1 for p in phones})
    assert journal_states(tmp_path / "in.journal.sqlite") == Counter(accepted=2500)
    # the stable per-row key went into uSpeedo's UserId
    keys = {e["phone"]: e["user_id"] for e in emu.accepted}
    assert keys[phones[0]] == f"{digest[:12]}-0" and keys[phones[2499]] == f"{digest[:12]}-2499"
    assert all(len(k) <= 32 for k in keys.values())
    requests = emu.stats()["requests"]

    proc = invoke("send", inp, "--config", cfg, cwd=tmp_path)  # plain text summary for cron
    assert proc.returncode == 0, proc.stderr
    assert "resumed" in proc.stderr and "2500 accepted" in proc.stderr
    code, s = send(inp, cfg, cwd=tmp_path)
    assert code == 0 and s["resumed"] and s["previous"] == {"accepted": 2500}
    assert s["accepted"] == 0 and s["accepted_before"] == 2500 and s["requests"] == 0
    assert emu.stats()["requests"] == requests
    assert logged(emu) == Counter({p: 1 for p in phones})
    assert hashlib.sha256(inp.read_bytes()).hexdigest() == digest  # the input is never modified
    assert not list(tmp_path.glob(".*.tmp"))


def test_resume_skips_accepted_and_permanent_retries_the_rest(tmp_path, emulator, write_config):
    inp = tmp_path / "in.csv"
    phones = make_rows(inp, 1500)
    early_bad, late_bad = phones[10:13], phones[1200:1202]
    emu = emulator(blacklist=set(early_bad + late_bad))
    cfg = write_config(emu, max_attempts=2)
    fpath = tmp_path / "in.failed.csv"

    # 1: only the first 1000 rows; three are refused permanently
    code, s = send(inp, cfg, "--limit", "1000", cwd=tmp_path)
    assert code == 1 and s["accepted"] == 997 and s["failed"] == 3 and s["deferred"] == 500
    refused = {p for p, r in failures(fpath).items() if r["retryable"] == "no"}
    assert refused == set(early_bad)
    assert all(failures(fpath)[p]["error_code"] == "FailContent" for p in refused)
    assert {(r["error_code"], r["retryable"]) for p, r in failures(fpath).items() if p not in refused} \
        == {("Deferred", "yes")}  # the rows --limit left for the next run

    # 2: the rest meets a provider that throttles everything (nothing taken): retryable failures
    emu.set_blacklist(late_bad)  # the early ones would now pass: a retry of them would show
    emu.options.throttle_rate = 1.0
    code, s = send(inp, cfg, cwd=tmp_path)
    assert code == 1 and s["resumed"] and s["previous"] == {"accepted": 997, "failed": 3}
    assert s["accepted"] == 0 and s["accepted_before"] == 997 and s["failed"] == 503
    failed = failures(fpath)
    assert sum(r["retryable"] == "yes" for r in failed.values()) == 500
    assert {p for p, r in failed.items() if r["retryable"] == "no"} == set(early_bad)
    check_accounting(phones, emu, fpath, s)

    # 3: the provider is back: retryable rows are sent, permanent ones are not retried
    emu.options.throttle_rate = 0.0
    code, s = send(inp, cfg, cwd=tmp_path)
    assert code == 1 and s["resumed"]
    assert s["accepted"] == 498 and s["accepted_before"] == 997 and s["failed"] == 5
    failed = check_accounting(phones, emu, fpath, s)
    assert set(failed) == set(early_bad + late_bad)
    assert all(r["retryable"] == "no" for r in failed.values())
    assert set(logged(emu)) == set(phones) - set(early_bad + late_bad)

    # 4: nothing left to send; the permanent failures are written again
    before = emu.stats()["requests"]
    fpath.unlink()
    code, s = send(inp, cfg, cwd=tmp_path)
    assert code == 1 and s["requests"] == 0 and s["accepted_before"] == 1495 and s["failed"] == 5
    assert set(failures(fpath)) == set(early_bad + late_bad)
    assert emu.stats()["requests"] == before


def test_fresh_needs_yes_when_rows_were_accepted(tmp_path, emulator, write_config):
    emu = emulator()
    cfg = write_config(emu)
    inp = tmp_path / "in.csv"
    phones = make_rows(inp, 300)
    code, s = send(inp, cfg, "--fresh", cwd=tmp_path)  # nothing accepted yet: no --yes needed
    assert code == 0 and not s["resumed"] and s["accepted"] == 300
    requests = emu.stats()["requests"]

    proc = invoke(*send_cmd(inp, cfg, "--fresh"), cwd=tmp_path)
    assert proc.returncode == 2 and json.loads(proc.stdout)["error"]["exit_code"] == 2  # --json: only the error
    assert "--yes" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert emu.stats()["requests"] == requests

    code, s = send(inp, cfg, "--fresh", "--yes", cwd=tmp_path)  # deliberately sends again
    assert code == 0 and not s["resumed"] and s["accepted"] == 300
    assert logged(emu) == Counter({p: 2 for p in phones})


def test_changed_input_is_a_new_run(tmp_path, emulator, write_config):
    emu = emulator()
    cfg = write_config(emu)
    inp = tmp_path / "in.csv"
    first = make_rows(inp, 200)
    original = inp.read_bytes()
    assert send(inp, cfg, cwd=tmp_path)[0] == 0

    second = make_rows(inp, 150, start=5000)  # same file name, other content
    code, s = send(inp, cfg, cwd=tmp_path)
    assert code == 0 and not s["resumed"] and s["accepted"] == 150 and s["accepted_before"] == 0
    assert logged(emu) == Counter({p: 1 for p in first + second})

    inp.write_bytes(original)  # the first content again: its own run, already done
    code, s = send(inp, cfg, cwd=tmp_path)
    assert code == 0 and s["resumed"] and s["accepted"] == 0 and s["accepted_before"] == 200
    assert logged(emu) == Counter({p: 1 for p in first + second})


def test_stdin_is_journaled_in_the_working_directory(tmp_path, emulator, write_config):
    inp = tmp_path / "in.csv"
    phones = make_rows(inp, 120)
    emu = emulator(blacklist={phones[7]})
    cfg = write_config(emu)
    work = tmp_path / "work"
    work.mkdir()
    data = inp.read_text(encoding="utf-8")

    code, s = send("-", cfg, cwd=work, input=data)
    assert code == 1 and s["accepted"] == 119 and s["failed"] == 1
    digest = hashlib.sha256(data.encode()).hexdigest()[:12]
    jpath = work / f"sms-stdin-{digest}.journal.sqlite"  # named by content: a resume finds it again
    assert jpath.exists() and s["journal"] == jpath.name
    assert journal_states(jpath) == Counter(accepted=119, rejected=1)
    fpath = work / s["failures_file"]  # relative names: in the working directory
    assert fpath.parent == work and fpath.suffix == ".csv"  # CSV in, CSV failures file out
    assert set(failures(fpath)) == {phones[7]}

    code, s = send("-", cfg, cwd=work, input=data)  # the same content piped again resumes
    assert code == 1 and s["resumed"] and s["accepted"] == 0 and s["accepted_before"] == 119
    assert s["requests"] == 0 and set(failures(work / s["failures_file"])) == {phones[7]}
    assert logged(emu) == Counter({p: 1 for p in phones if p != phones[7]})
    assert not [p for p in work.iterdir() if p.suffix == ".spool" or p.name.endswith(".tmp")]


def test_second_send_on_the_same_journal_is_refused(tmp_path, emulator, write_config):
    """The first send runs on a thread of this process (the journal's lock is per open file, so a
    second one is refused here as it is in another process); the second goes through the CLI."""
    from sms_cli.campaign import SendRequest
    from sms_cli.cli import commands
    from sms_cli.run.send import Options

    emu = emulator(latency_ms=150)
    cfg = write_config(emu, "aliyun")
    inp = tmp_path / "in.csv"
    phones = make_rows(inp, 1000)
    first = Background(lambda: commands.send(SendRequest(input=str(inp), config=str(cfg),
                                                         options=Options(concurrency=1))))
    wait_for(emu, lambda: emu.stats()["requests"] >= 1 or first.poll() is not None, procs=[first],
             what="the first run to send")
    second = invoke(*send_cmd(inp, cfg), cwd=tmp_path)
    assert first.poll() is None, "the first run ended before the second one started"
    assert second.returncode == 2 and json.loads(second.stdout)["error"]["code"] == "JournalLocked"
    emu.options.latency_ms = 0  # the latency kept the first run going until now; it may finish at once
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1 and "in.journal.sqlite" in lines[0] and "another sms-cli send" in lines[0]
    summary = first.wait(timeout=60)
    assert summary.exit_code() == 0 and summary.accepted == 1000
    assert logged(emu) == Counter({p: 1 for p in phones})


# --- unknown outcomes ------------------------------------------------------------------------
@pytest.mark.parametrize("provider,fault", [("uspeedo", "timeout_rate"), ("tencent", "drop_rate"),
                                            ("aliyun", "gateway_timeout_rate")])
def test_unknown_outcomes_exit_4_and_retry_unknown_resends(tmp_path, emulator, write_config, provider, fault):
    emu = emulator(**{fault: 1.0}, stall_ms=1500)
    cfg = write_config(emu, provider)
    inp = tmp_path / "in.csv"
    phones = make_rows(inp, 400)
    fpath = tmp_path / "in.failed.csv"

    code, s = send(inp, cfg, cwd=tmp_path)
    assert code == 4 and s["unknown"] == 400 and s["accepted"] == 0 and s["failed"] == 0
    rows = failures(fpath)
    assert set(rows) == set(phones)
    assert {(r["error_code"], r["retryable"]) for r in rows.values()} == {("Unknown", "unknown")}
    assert logged(emu) == Counter({p: 1 for p in phones})  # the provider did take them
    assert journal_states(tmp_path / "in.journal.sqlite") == Counter(unknown=400)
    if provider == "tencent":  # the stable key went into SessionContext
        digest = hashlib.sha256(inp.read_bytes()).hexdigest()
        assert {e["user_id"] for e in emu.accepted} == {f"{digest[:12]}-{i}" for i in range(400)}

    setattr(emu.options, fault, 0.0)
    requests = emu.stats()["requests"]
    code, s = send(inp, cfg, cwd=tmp_path)  # never resent automatically
    assert code == 4 and s["resumed"] and s["unknown"] == 400 and s["requests"] == 0
    assert emu.stats()["requests"] == requests and set(failures(fpath)) == set(phones)
    proc = invoke("send", inp, "--config", cfg, cwd=tmp_path)  # the text summary counts them apart
    assert proc.returncode == 4 and "400 unknown" in proc.stderr and "--retry-unknown" in proc.stderr

    code, s = send(inp, cfg, "--retry-unknown", cwd=tmp_path)  # deliberately
    assert code == 0 and s["accepted"] == 400 and s["unknown"] == 0
    assert logged(emu) == Counter({p: 2 for p in phones})
    assert not fpath.exists() and s["stale_failures_removed"]
    assert journal_states(tmp_path / "in.journal.sqlite") == Counter(accepted=400)


# --- file safety -----------------------------------------------------------------------------
@pytest.mark.parametrize("where", ["missing-folder", "under-a-file", "a-directory"])
def test_unwritable_failures_path_is_refused_before_sending(tmp_path, emulator, write_config, where):
    emu = emulator()
    cfg = write_config(emu)
    inp = tmp_path / "in.csv"
    make_rows(inp, 50)
    (tmp_path / "plain-file").write_text("x")
    (tmp_path / "a-dir").mkdir()
    target = {"missing-folder": tmp_path / "no" / "such" / "f.csv",
              "under-a-file": tmp_path / "plain-file" / "f.csv",
              "a-directory": tmp_path / "a-dir"}[where]
    proc = invoke(*send_cmd(inp, cfg, "--failures", target), cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and str(target) in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert emu.stats()["requests"] == 0 and logged(emu) == Counter()
    assert (tmp_path / "plain-file").read_text() == "x" and (tmp_path / "a-dir").is_dir()

    code, s = send(inp, cfg, cwd=tmp_path)  # nothing was recorded as sent: a good path sends all
    assert code == 0 and s["accepted"] == 50 and not s["resumed"]


# --- concurrency and rate limit --------------------------------------------------------------
def test_rate_limit_holds_across_workers(tmp_path, emulator, write_config):
    emu = emulator()
    cfg = write_config(emu, "tencent", rate_limit=8)
    inp = tmp_path / "in.csv"
    phones = make_rows(inp, 2400)  # 12 requests of 200: a second and a half of them
    code, s = send(inp, cfg, "--concurrency", "4", cwd=tmp_path)
    assert code == 0 and s["accepted"] == 2400
    times = sorted(emu.stats()["request_times"])
    assert len(times) == 12
    worst = max(sum(1 for u in times if t <= u < t + 1.0) for t in times)
    assert worst <= 9, f"{worst} requests within one second at rate_limit 8"
    assert logged(emu) == Counter({p: 1 for p in phones})


def test_retries_recover_from_throttling_and_a_5xx_is_unknown(tmp_path, emulator, write_config):
    # auth-and-limits.md (corrected): throttled requests took nothing and are retried; an HTTP 5xx
    # does not say, so its rows are unknown (exit 4), never resent blindly
    emu = emulator(fail_rate=0.25, throttle_rate=0.25)
    cfg = write_config(emu, "tencent", max_attempts=12)
    inp = tmp_path / "in.csv"
    phones = make_rows(inp, 2000)
    code, s = send(inp, cfg, "--concurrency", "4", cwd=tmp_path)
    assert code == 4, s
    assert s["accepted"] + s["unknown"] == 2000 and s["failed"] == 0 and s["unknown"] > 0
    assert s["requests"] > 10 and emu.stats()["requests"] == s["requests"]  # retries happened
    failed = failures(tmp_path / "in.failed.csv")  # read once, not once a row
    assert logged(emu) == Counter({p: 1 for p in phones if p not in failed})


@pytest.mark.parametrize("provider", ["uspeedo", "tencent", "aliyun"])
def test_injected_faults_at_20_percent(tmp_path, emulator, write_config, provider):
    emu = emulator(fail_rate=0.2, throttle_rate=0.2, timeout_rate=0.2, drop_rate=0.2, gateway_timeout_rate=0.1,
                   stall_ms=600)
    # each stalled answer waits out the read timeout: 0.3 s, not the tests' usual 1 s (an answer
    # slower than that on a busy machine is one more unknown row, which the accounting allows)
    cfg = write_config(emu, provider, timeout={"connect": 2, "read": 0.3})
    inp = tmp_path / "in.csv"
    phones = make_rows(inp, 3000)
    fpath = tmp_path / "in.failed.csv"

    code, s = send(inp, cfg, "--concurrency", "4", cwd=tmp_path)
    assert s["rows"] == 3000 and s["invalid"] == 0
    assert s["accepted"] + s["failed"] + s["unknown"] == 3000
    assert code == expected_exit(s) == s["exit_code"]
    check_accounting(phones, emu, fpath, s)
    assert journal_states(tmp_path / "in.journal.sqlite")["accepted"] == s["accepted"]

    code, s = send(inp, cfg, "--concurrency", "4", cwd=tmp_path)  # resume under the same faults
    assert s["resumed"] and code == expected_exit(s)
    check_accounting(phones, emu, fpath, s)


# --- kill -9 and signals ---------------------------------------------------------------------
# where a kill lands, each an event at the emulator (no timer): the k-th request has arrived and
# waits out its latency; the provider is taking its batch (the answer not yet read); a later
# request arrived, so an answer came back and was journaled
KILL_POINTS = ("arrived", "taken", "answered")


def test_kill_9_at_random_points_then_resume(disk_path, emulator, write_config, monkeypatch):
    # one test, two runs (its processes counted once): a sequential uSpeedo send, a concurrent Tencent one
    for provider, rows, concurrency in (("uspeedo", 9000, 1), ("tencent", 4000, 3)):
        work = disk_path / provider
        work.mkdir()
        monkeypatch.setenv("XDG_STATE_HOME", str(work / "state"))  # as two tests: no shared working-set index
        kill_9_then_resume(work, emulator, write_config, provider, rows, concurrency)


def kill_9_then_resume(tmp_path, emulator, write_config, provider, rows, concurrency):
    rng = random.Random(f"{provider}-kill")
    emu = emulator(latency_ms=60)
    cfg = write_config(emu, provider)
    inp = tmp_path / "in.csv"
    phones = make_rows(inp, rows)
    fpath = tmp_path / "in.failed.csv"
    args = send_cmd(inp, cfg, "--concurrency", str(concurrency))
    batch = 1000 if provider == "uspeedo" else 200
    kills = 0
    for _ in range(6):
        if kills == 3:
            break
        seen, taken = emu.stats()["requests"], len(emu.accepted)
        proc = start_cli(*args, cwd=tmp_path)
        try:
            k = rng.randint(1, 2)  # kill once this run's k-th request reached the provider...
            when = rng.choice(KILL_POINTS)  # ...while in flight, as it is taken, or once answered
            if when == "arrived":
                ready = lambda: emu.stats()["requests"] >= seen + k
            elif when == "taken":  # the provider took a batch; its answer is on the way
                ready = lambda: len(emu.accepted) > taken + (k - 1) * batch
            else:  # the next request arrived: the k-th answer came back and was handled
                ready = lambda: emu.stats()["requests"] >= seen + k + concurrency
            wait_for(emu, lambda: ready() or proc.poll() is not None, procs=[proc],
                     what=f"request {k} to be {when}")
            if proc.poll() is None:
                proc.kill()
                kills += 1
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.communicate(timeout=30)
        assert proc.returncode in (-signal.SIGKILL, 0, 4), proc.stderr
        assert not [n for n, c in logged(emu).items() if c > 1], "sent twice after a kill"
    assert kills == 3, "the run finished before it could be killed three times"

    emu.options.latency_ms = 0  # the latency was there to give the kills a moment in flight
    code, s = send_args(args, cwd=tmp_path)
    assert s["resumed"] and code == expected_exit(s) and code in (0, 4)
    failed = check_accounting(phones, emu, fpath, s)
    assert all(r["retryable"] == "unknown" for r in failed.values())
    assert s["unknown"] <= kills * concurrency * batch  # only what a kill caught in flight
    log = logged(emu)
    assert all(log[p] == 1 for p in phones if p not in failed)  # accepted exactly once
    assert journal_states(tmp_path / "in.journal.sqlite") == Counter(
        {k: v for k, v in (("accepted", len(phones) - len(failed)), ("unknown", len(failed))) if v})

    code, s = send_args(args, cwd=tmp_path)  # and once more: nothing moves
    assert s["requests"] == 0 and s["unknown"] == len(failed) and code == expected_exit(s)


def test_signal_mid_run_then_resume(disk_path, emulator, write_config, monkeypatch):
    for sig, exit_code in ((signal.SIGTERM, 143), (signal.SIGINT, 130)):  # one test, both signals
        work = disk_path / sig.name
        work.mkdir()
        monkeypatch.setenv("XDG_STATE_HOME", str(work / "state"))  # as two tests: no shared working-set index
        signal_mid_run_then_resume(work, emulator, write_config, sig, exit_code)


def signal_mid_run_then_resume(tmp_path, emulator, write_config, sig, exit_code):
    emu = emulator(latency_ms=80)
    cfg = write_config(emu, "tencent")
    inp = tmp_path / "in.csv"
    phones = make_rows(inp, 4000)  # 20 requests of 200
    fpath = tmp_path / "in.failed.csv"
    jpath = tmp_path / "in.journal.sqlite"
    args = send_cmd(inp, cfg, "--concurrency", "2")
    proc = start_cli(*args, cwd=tmp_path)
    try:
        wait_for(emu, lambda: emu.stats()["requests"] >= 4 or proc.poll() is not None, procs=[proc],
                 what="requests to reach the emulator")
        assert proc.poll() is None, proc.communicate()
        sent_at = time.monotonic()
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == exit_code, err
    assert "Traceback" not in err
    s = json.loads(out.splitlines()[-1])
    assert s["stopped"] == sig.name and s["exit_code"] == exit_code
    assert 0 < s["accepted"] < 4000 and s["not_sent"] > 0
    # no new batches after the signal: only what was already in flight arrived later
    assert sum(1 for t in emu.stats()["request_times"] if t > sent_at) <= 2
    failed = check_accounting(phones, emu, fpath, s)
    assert all(r["error_code"] in ("NotSent", "Unknown") for r in failed.values())
    states = journal_states(jpath)
    assert states["accepted"] == s["accepted"] and "inflight" not in states
    assert set(logged(emu)) == {p for p in phones if p not in failed} | {
        p for p, r in failed.items() if r["retryable"] == "unknown" and p in logged(emu)}

    emu.options.latency_ms = 0  # the latency was there to catch the run mid-way; the resume needs none
    code, s2 = send(inp, cfg, "--concurrency", "2", cwd=tmp_path)
    assert code == 0 and s2["resumed"] and s2["previous"]["accepted"] == s["accepted"]
    assert s2["accepted_before"] == s["accepted"] and s2["accepted"] == 4000 - s["accepted"]
    assert logged(emu) == Counter({p: 1 for p in phones})
    assert not fpath.exists()


def start_stalled_run(tmp_path, emulator, write_config, *, stall_ms: int, read_timeout: int,
                      grace_period: float = 1.0):
    """A Tencent send of 1000 rows whose first two requests (400 numbers) are taken and then
    left unanswered for stall_ms. -> (emu, phones, failures path, CLI args, running process)."""
    emu = emulator(timeout_rate=1.0, stall_ms=stall_ms)
    cfg = write_config(emu, "tencent", timeout={"connect": 2, "read": read_timeout}, grace_period=grace_period)
    inp = tmp_path / "in.csv"
    phones = make_rows(inp, 1000)
    args = send_cmd(inp, cfg, "--concurrency", "2")
    proc = start_cli(*args, cwd=tmp_path)
    try:
        wait_for(emu, lambda: len(emu.accepted) >= 400, what="two requests to be taken")
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return emu, phones, tmp_path / "in.failed.csv", args, proc


def test_second_ctrl_c_aborts_at_once_and_the_journal_keeps_the_truth(disk_path, emulator, write_config):
    emu, phones, fpath, args, proc = start_stalled_run(disk_path, emulator, write_config,
                                                       stall_ms=20000, read_timeout=30)
    try:
        proc.send_signal(signal.SIGINT)  # waits for the two stalled requests (grace period)...
        with pytest.raises(subprocess.TimeoutExpired):  # (a window in which it must not end)
            proc.wait(timeout=0.3)
        proc.send_signal(signal.SIGINT)  # ...a second Ctrl-C does not
        proc.communicate(timeout=8)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130
    assert journal_states(disk_path / "in.journal.sqlite") == Counter(inflight=400)

    emu.options.timeout_rate = 0.0
    code, s = send_args(args, cwd=disk_path)
    assert code == 4 and s["resumed"] and s["previous"] == {"unknown": 400}
    assert s["unknown"] == 400 and s["accepted"] == 600
    failed = check_accounting(phones, emu, fpath, s)
    assert len(failed) == 400 and all(r["error_code"] == "Unknown" for r in failed.values())
    assert logged(emu) == Counter({p: 1 for p in phones})  # the 400 were taken once, never resent
    assert not list(disk_path.glob(".*.tmp"))  # the killed run's temporary failures file is gone


def test_sigterm_with_requests_stuck_past_the_grace_period(disk_path, emulator, write_config):
    # a grace period of 0.2 s: the requests stay stuck for 25 s, far past any grace period
    emu, phones, fpath, args, proc = start_stalled_run(disk_path, emulator, write_config,
                                                       stall_ms=25000, read_timeout=60, grace_period=0.2)
    try:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=40)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 143, err
    s = json.loads(out.splitlines()[-1])
    assert s["stopped"] == "SIGTERM" and s["unknown"] == 400 and s["not_sent"] == 600 and s["accepted"] == 0
    failed = check_accounting(phones, emu, fpath, s)
    assert Counter(r["error_code"] for r in failed.values()) == Counter(Unknown=400, NotSent=600)
    assert journal_states(disk_path / "in.journal.sqlite") == Counter(unknown=400)  # as the failures file says

    emu.options.timeout_rate = 0.0
    code, s = send_args(args, cwd=disk_path)
    assert code == 4 and s["accepted"] == 600 and s["unknown"] == 400
    check_accounting(phones, emu, fpath, s)
    assert logged(emu) == Counter({p: 1 for p in phones})


FULL_DISK = """
import resource, runpy, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG, like ENOSPC
limit = int(sys.argv.pop(1))
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
sys.argv[0] = "sms-cli"
runpy.run_module("sms_cli", run_name="__main__")
"""


def test_full_disk_is_an_error_naming_the_path_and_the_journal_keeps_its_state(disk_path, emulator, write_config):
    mid_run = 0
    for i, limit in enumerate((20_000, 150_000, 1_000_000)):  # bytes any one file may grow to
        emu = emulator()
        cfg = write_config(emu, "aliyun")
        work = disk_path / f"disk{i}"
        work.mkdir()
        inp = work / "in.csv"
        phones = make_rows(inp, 3000, start=3000 * i)  # other content: the same would be one working set
        proc = subprocess.run([sys.executable, "-c", FULL_DISK, str(limit), *map(str, send_cmd(inp, cfg))],
                              cwd=work, env=cli_env(), stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode in (0, 2, 3), proc.stderr
        assert "Traceback" not in proc.stderr
        sent = sum(logged(emu).values())
        paths = (str(work / "in.journal.sqlite"), str(work / "in.failed.csv"))
        if proc.returncode == 2:  # before anything was sent: one line naming the file
            lines = proc.stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("sms-cli: error: ")
            assert any(p in lines[0] for p in paths) and sent == 0
        if proc.returncode == 3:  # after sending began: stopped as fatal, with its summary
            s = json.loads(proc.stdout.splitlines()[-1])
            assert s["stopped"] == "fatal" and s["local_failure"] and any(p in s["fatal"] for p in paths)
            assert sent > 0
        if i == 0:
            assert proc.returncode == 2 and sent == 0  # the journal could not be set up: nothing sent
        mid_run += proc.returncode == 3

        code, s = send(inp, cfg, cwd=work)  # room again: the same command resumes
        assert code == expected_exit(s) and code in (0, 4)
        failed = check_accounting(phones, emu, work / "in.failed.csv", s)
        assert all(r["retryable"] == "unknown" for r in failed.values())
        assert not list(work.glob(".*.tmp"))
    assert mid_run, "no limit hit the run after it had started sending"


def test_resume_counts_the_accepted_prefix_without_reading_it(tmp_path, emulator, write_config):
    """A run stopped after its first rows resumes from the journal's accepted prefix: the rows
    before it are counted (per template too), the rest read and sent, none sent twice."""
    emu = emulator()
    cfg = write_config(emu)
    inp = tmp_path / "in.csv"
    phones = make_rows(inp, 3000)
    with open(inp, "a", encoding="utf-8") as fh:  # an invalid row and a duplicate after the prefix
        fh.write(f"12,OTP_LOGIN,1\n{phones[0]},OTP_LOGIN,000000\n")
    code, s = send(inp, cfg, "--limit", "2000", cwd=tmp_path)
    assert s["accepted"] == 2000
    code, s = send(inp, cfg, "--dedupe", cwd=tmp_path)
    assert s["accepted_earlier"] == 2000 and s["accepted"] == 1000 and s["invalid"] == 1 and s["duplicates"] == 1
    assert s["by_template"]["OTP_LOGIN"]["accepted_earlier"] == 2000
    assert logged(emu) == Counter({p: 1 for p in phones})
    rows = failures(tmp_path / "in.failed.csv")
    assert [r["line"] for r in rows.values()] == ["3002"]  # line numbers after the prefix are right
