"""The benchmark runs end to end on a tiny input (no timing is asserted: that is its own job)."""
from __future__ import annotations

import importlib.util
import re
import runpy
import sys
import tempfile
from pathlib import Path

from conftest import serve
from sms_cli.emulator.server import Emulator, Options

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks" / "bench_send.py"
BASELINE = ROOT / "benchmarks" / "baseline.py"


def load_bench(monkeypatch):
    """benchmarks/bench_send.py as a module (in sys.modules for the test: its dataclasses need it)."""
    spec = importlib.util.spec_from_file_location("bench_send", BENCH)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_send", module)
    spec.loader.exec_module(module)
    return module


class InThreadEmulator:
    """bench_send's EmulatorProcess (`sms-cli emulator` with its log and latency) served by a
    thread of this process instead: the same emulator, without a Python start-up each time."""

    def __init__(self, python, work: Path, name: str, latency_ms: int = 0):
        self.log = work / f"{name}.accepted.jsonl"
        self.emu = serve(Emulator(Options(port=0, log_path=str(self.log), latency_ms=latency_ms)))
        self.url = self.emu.url

    def requests(self) -> int:
        return self.emu.stats()["requests"]

    def stop(self) -> None:
        self.emu.stop()


def test_bench_send_runs_and_prints_the_table(tmp_path, monkeypatch, capsys):
    # tiny inputs, two rounds, one latency: this proves the benchmark runs; its figures mean nothing
    # here. The "million" send of 2,000 rows is killed part way or, if it finishes first, the re-run
    # has nothing left to send, which the benchmark also reports. The benchmark's own code runs in
    # this process (its programs under measure in their own, as always); of its 10 emulators the
    # first is its real `sms-cli emulator` process, the others are served from a thread here. Its
    # work folder is the test's: on the suite's RAM disk (conftest.RAM_TEMP)
    bench = load_bench(monkeypatch)
    real, started = bench.EmulatorProcess, []

    def emulator(*args, **kw):
        started.append(args)
        return (real if len(started) == 1 else InThreadEmulator)(*args, **kw)

    monkeypatch.setattr(bench, "EmulatorProcess", emulator)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    code = bench.main(["--rows", "200", "--runs", "2", "--inputs", "json", "--million-rows", "2000",
                       "--latencies", "0"])
    out, err = capsys.readouterr()
    assert code == 0, err[-3000:]
    assert len(started) == 10  # 2 rounds of: a loop, 2 sends; a million send, its resume
    header = next(line for line in out.splitlines() if line.startswith("run "))
    for column in ("input", "templates", "latency", "rows", "runs", "wall s", "wall min-max", "rows/s", "CPU s",
                   "CPU min-max", "peak RSS MB", "CPU / bare min", "loop wall / wall"):
        assert column in header
    for run in ("bare minimum", "sequential loop (uspeedo-sdk-python)", "sms-cli send (journal on)",
                "sms-cli send, resumed after SIGKILL", "param columns", "JSON params", "with text", "no text"):
        assert run in out
    sends = [line for line in out.splitlines() if re.match(r"sms-cli send \(journal on\) +JSON params", line)]
    assert len(sends) == 2 and all(re.search(r"\s2\s.*\d-\d", line) for line in sends)  # 2 runs, a spread
    assert "resume 1: a send of 2,000 rows" in out and "resume 2: a send of 2,000 rows" in out
    assert "targets (on the medians):" in out
    assert "CPU of the full send <= 1.3x the bare minimum, JSON params, with text" in out
    assert "CPU of the full send <= 1.3x the bare minimum, JSON params, no text" in out


def test_baseline_counts_rows_and_bodies(tmp_path, monkeypatch, capsys):
    data = tmp_path / "in.csv"
    data.write_text("phone,template_id,param1,param2\n"
                    "+8613800138000,OTP_LOGIN,123456,\n"
                    "+12125550123,ORDER_SHIPPED,A1,2 days\n"
                    "not a number,OTP_LOGIN,1,\n", encoding="utf-8")
    # in this process: the script as `python baseline.py ...` runs it, its output captured
    monkeypatch.setattr(sys, "argv", [str(BASELINE), str(data), "--batch", "1"])
    try:
        runpy.run_path(str(BASELINE), run_name="__main__")
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.startswith("baseline: 3 rows, 2 valid, ")
