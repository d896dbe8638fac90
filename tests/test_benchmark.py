"""The benchmark runs end to end on a tiny input (no timing is asserted: that is its own job)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks" / "bench_send.py"
BASELINE = ROOT / "benchmarks" / "baseline.py"


def test_bench_send_runs_and_prints_the_table():
    # 20,000 resume rows: enough batches that the first run is usually killed part way; if it
    # finishes first, the re-run has nothing left to send, which the benchmark also reports
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--rows", "2000", "--resume-rows", "20000", "--skip-million"],
        capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    header = next(line for line in out.splitlines() if line.startswith("run "))
    for column in ("rows", "wall s", "rows/s", "CPU s", "peak RSS MB", "CPU / bare min"):
        assert column in header
    for run in ("bare minimum", "sms-cli send --dry-run", "sms-cli send (emulator, journal)",
                "sms-cli send, resumed after SIGKILL"):
        assert run in out
    assert "resume: a send of 20,000 rows" in out
    assert "first request after" in out


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
