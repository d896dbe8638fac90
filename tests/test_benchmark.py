"""The benchmark runs end to end on a tiny input (no timing is asserted: that is its own job)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks" / "bench_send.py"
BASELINE = ROOT / "benchmarks" / "baseline.py"


def test_bench_send_runs_and_prints_the_table():
    # tiny inputs and one latency: this proves the benchmark runs; its figures mean nothing here.
    # The "million" send of 5,000 rows is killed part way or, if it finishes first, the re-run
    # has nothing left to send, which the benchmark also reports
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--rows", "200", "--million-rows", "5000", "--latencies", "0"],
        capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    header = next(line for line in out.splitlines() if line.startswith("run "))
    for column in ("input", "latency", "rows", "wall s", "rows/s", "CPU s", "peak RSS MB", "CPU / bare min",
                   "wall / seq loop"):
        assert column in header
    for run in ("bare minimum", "sequential loop (uspeedo-sdk-python)", "sms-cli send (journal on)",
                "sms-cli send, resumed after SIGKILL", "param columns", "JSON params"):
        assert run in out
    assert "resume: a send of 5,000 rows" in out and "targets:" in out
    assert "CPU of the full send <= 1.5x the bare minimum, JSON params" in out


def test_baseline_counts_rows_and_bodies(tmp_path):
    data = tmp_path / "in.csv"
    data.write_text("phone,template_id,param1,param2\n"
                    "+8613800138000,OTP_LOGIN,123456,\n"
                    "+12125550123,ORDER_SHIPPED,A1,2 days\n"
                    "not a number,OTP_LOGIN,1,\n", encoding="utf-8")
    proc = subprocess.run([sys.executable, str(BASELINE), str(data), "--batch", "1"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("baseline: 3 rows, 2 valid, ")
