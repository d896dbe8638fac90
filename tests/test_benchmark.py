"""The benchmark runs end to end on a tiny input (no timing is asserted: that is its own job)."""
from __future__ import annotations

import re
import runpy
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks" / "bench_send.py"
BASELINE = ROOT / "benchmarks" / "baseline.py"


def test_bench_send_runs_and_prints_the_table():
    # tiny inputs, two rounds, one latency: this proves the benchmark runs; its figures mean nothing
    # here. The "million" send of 5,000 rows is killed part way or, if it finishes first, the re-run
    # has nothing left to send, which the benchmark also reports
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--rows", "200", "--runs", "2", "--inputs", "json", "--million-rows", "5000",
         "--latencies", "0"],
        capture_output=True, text=True, timeout=180, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    header = next(line for line in out.splitlines() if line.startswith("run "))
    for column in ("input", "templates", "latency", "rows", "runs", "wall s", "wall min-max", "rows/s", "CPU s",
                   "CPU min-max", "peak RSS MB", "CPU / bare min", "loop wall / wall"):
        assert column in header
    for run in ("bare minimum", "sequential loop (uspeedo-sdk-python)", "sms-cli send (journal on)",
                "sms-cli send, resumed after SIGKILL", "param columns", "JSON params", "with text", "no text"):
        assert run in out
    sends = [line for line in out.splitlines() if re.match(r"sms-cli send \(journal on\) +JSON params", line)]
    assert len(sends) == 2 and all(re.search(r"\s2\s.*\d-\d", line) for line in sends)  # 2 runs, a spread
    assert "resume: a send of 5,000 rows" in out and "targets (on the medians):" in out
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
