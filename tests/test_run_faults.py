"""Local faults through the CLI: signals at many points of a run, a provider that cannot be
reached, stray temporary files. Subprocesses only where a real process matters (signals)."""
from __future__ import annotations

import csv
import json
import signal
import threading

from conftest import invoke, make_rows, poll_until, signal_unless_ended, start_cli


def handling(pid: int, timeout: float = 20.0) -> None:
    """Wait until the process catches SIGTERM: sms-cli's first lines have run (nothing signals
    that but /proc, so it is polled)."""
    bit = 1 << (signal.SIGTERM - 1)

    def caught() -> bool:
        try:
            status = open(f"/proc/{pid}/status").read()
        except OSError:
            return True  # already gone
        return bool(int(next(ln for ln in status.splitlines() if ln.startswith("SigCgt:")).split()[1], 16) & bit)

    poll_until(caught, timeout=timeout, every=0.001, what="sms-cli to install its signal handlers")


def test_signals_at_many_points_never_hang_and_lose_no_row(disk_path):
    """A signal handler must never wait for a lock: signal runs at spread-out moments, from the
    first milliseconds (typer still loading) to mid-run, and each must exit promptly, cleanly."""
    rows = 60_000
    inp = disk_path / "bad.csv"
    with open(inp, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["phone", "template_id", "param1"])
        for i in range(rows):  # mostly invalid rows (the main thread busy filing them), some valid
            w.writerow([f"+65912{i:05d}" if i % 7 == 0 else f"12{i}", "T", "1"])
    # delays count from the moment sms-cli's own code runs (its SIGTERM handler shows in
    # /proc): before that the interpreter is still starting, where no program can handle a
    # signal; one SIGTERM goes at once, into that start-up
    delays = [None, 0.0, 0.01, 0.03, 0.06, 0.1, 0.15, 0.3, 0.45, 0.6, 0.8, 1.0, 1.3, 2.0]
    procs = []
    for i, delay in enumerate(delays):
        work = disk_path / f"w{i}"
        work.mkdir()
        (work / "bad.csv").symlink_to(inp)
        sig = signal.SIGINT if i % 2 else signal.SIGTERM
        procs.append((work, sig, delay, start_cli("send", "bad.csv", "--json", cwd=work)))
    def signal_later(sig, delay, proc):
        if delay is not None:
            handling(proc.pid)
        signal_unless_ended(proc, sig, delay)

    threads = [threading.Thread(target=signal_later, args=(sig, delay, proc)) for _, sig, delay, proc in procs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for work, sig, delay, proc in procs:
        out, err = proc.communicate(timeout=30)  # a deadlock would end here
        assert "Traceback" not in err, err
        expected = 130 if sig == signal.SIGINT else 143
        s = json.loads(out.splitlines()[-1]) if out.strip() else {"error": None}
        if "error" in s:  # stopped before the run began: nothing sent, nothing written, one line
            # (and --json's error object); -sig and no word: the signal came while the interpreter
            # itself was starting, before any code of ours could handle it
            assert proc.returncode in (expected, -sig), (delay, proc.returncode, err)
            assert all(ln.startswith("sms-cli: ") for ln in err.strip().splitlines()), (delay, err)
            assert not (work / "bad.failed.csv").exists()
            continue
        assert proc.returncode in (expected, 1), (delay, proc.returncode, err)
        outbox = work / "sms-outbox.jsonl"
        accepted = sum(1 for _ in open(outbox)) if outbox.exists() else 0
        failures = work / "bad.failed.csv"
        failed = sum(1 for _ in csv.DictReader(open(failures, encoding="utf-8"))) if failures.exists() else 0
        assert accepted == s["accepted"] and accepted + failed == s["rows"]
        if proc.returncode == 1:
            assert s["rows"] == rows


def test_unreachable_provider_stops_the_run_exit_3(tmp_path, emulator, write_config):
    emu = emulator()
    port = emu.server.server_address[1]
    emu.stop()  # nothing listens there any more: every connection is refused
    cfg = write_config(emu, endpoint=f"http://127.0.0.1:{port}/api")
    make_rows(tmp_path / "in.csv", 20_000)
    r = invoke("send", "in.csv", "--config", cfg, "--json", cwd=tmp_path)
    s = r.json()
    assert r.returncode == 3 and s["stopped"] == "fatal" and "could not connect" in s["fatal"]
    assert s["requests"] <= 4 * 8  # a few requests' worth of attempts, not one per batch
    rows = list(csv.DictReader(open(tmp_path / "in.failed.csv", encoding="utf-8")))
    assert len(rows) == 20_000 and {r["retryable"] for r in rows} == {"yes"}


def test_stray_temporary_files_beside_the_input_are_harmless(tmp_path):
    (tmp_path / "in.txt").write_text("+6591234500\n")
    (tmp_path / ".in.txt.failed.jsonl.99999999999999999999.tmp").write_text("x")
    (tmp_path / ".in.txt.failed.jsonl.x12.tmp").write_text("x")
    r = invoke("send", "in.txt", "--template", "T", cwd=tmp_path)
    assert r.returncode == 0, r.stderr


def test_spreadsheet_formulas_are_neutralised_and_read_back_exactly(tmp_path, emulator, write_config):
    emu = emulator(blacklist={"+6591234500"})
    cfg = write_config(emu)
    formula = '=HYPERLINK("http://x.example","click")'
    with open(tmp_path / "in.csv", "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["phone", "template_id", "param1"])
        w.writerow(["+6591234500", "OTP_LOGIN", formula])
        w.writerow(["+6591234501", "OTP_LOGIN", "'quoted"])
    invoke("send", "in.csv", "--config", cfg, cwd=tmp_path)
    raw = (tmp_path / "in.failed.csv").read_text(encoding="utf-8")
    assert "'=HYPERLINK" in raw and "\n=HYPERLINK" not in raw and ",=HYPERLINK" not in raw
    emu.set_blacklist([])
    r = invoke("send", "in.failed.csv", "--config", cfg, cwd=tmp_path)
    assert r.returncode == 0
    sent = {e["phone"]: e["params"] for e in emu.accepted}
    assert sent["+6591234500"] == [formula] and sent["+6591234501"] == ["'quoted"]


def test_terminal_escapes_from_input_are_shown_escaped(tmp_path):
    evil = "\x1b]0;TITLE\x07\x1b[2J"
    (tmp_path / "in.csv").write_text(f"phone,template_id\n{evil},T\n+6591234500,\n", encoding="utf-8")
    v = invoke("validate", "in.csv", cwd=tmp_path)
    s = invoke("send", "in.csv", cwd=tmp_path)
    for out in (v.stdout, v.stderr, s.stdout, s.stderr):
        assert "\x1b" not in out and "\x07" not in out
    assert v.returncode == 1 and s.returncode == 1


def test_a_file_name_that_is_not_utf8_on_a_strict_terminal(tmp_path):
    import os

    from conftest import run_main

    name = os.fsdecode(b"list-\xff.txt")
    (tmp_path / name).write_text("+6591234500\n12\n", encoding="utf-8")
    for cmd in (["validate", name, "--template", "T"], ["send", name, "--template", "T"]):
        proc = run_main(*cmd, cwd=tmp_path, errors="strict")  # PYTHONIOENCODING=utf-8:strict
        err = proc.err.decode("utf-8", "replace")
        assert proc.returncode == 1 and "Traceback" not in err, err


def test_a_lone_surrogate_row_is_filed_and_reads_back_exactly(tmp_path):
    (tmp_path / "in.jsonl").write_text('{"phone": "+6591234500", "template_id": "T", "params": ["\\ud83d"]}\n'
                                       '{"phone": "+6591234501", "template_id": "T", "params": ["ok"]}\n')
    r = invoke("send", "in.jsonl", cwd=tmp_path)
    assert r.returncode == 1
    row = json.loads((tmp_path / "in.failed.jsonl").read_text(encoding="utf-8"))
    assert row["params"] == ["\ud83d"] and row["error_code"] == "InvalidParams"


def test_process_substitution_gets_content_named_files_in_the_working_directory(tmp_path):
    import os

    from conftest import Background, run_main

    # what bash's <(cat n.txt) hands over: /dev/fd/N, the read end of a pipe a writer fills
    (tmp_path / "n.txt").write_text("+6591234500\n12\n")
    read_end, write_end = os.pipe()

    def cat():
        with os.fdopen(write_end, "wb") as fh:
            fh.write((tmp_path / "n.txt").read_bytes())

    writer = Background(cat)
    try:
        proc = run_main("send", f"/dev/fd/{read_end}", "--format", "lines", "--template", "T", cwd=tmp_path)
    finally:
        writer.wait(timeout=30)
        os.close(read_end)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    names = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("sms-stdin-"))
    assert any(n.endswith(".failed.jsonl") for n in names) and any(n.endswith(".journal.sqlite") for n in names)
