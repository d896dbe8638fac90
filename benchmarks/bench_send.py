"""How fast is sms-cli, next to the bare minimum, on this machine?

    python benchmarks/bench_send.py [--rows 200000] [--resume-rows N] [--skip-million] [--keep]

In one run, on one machine, one program at a time:

1. generates a CSV of --rows rows (valid +86 and +1 numbers, three templates, one or two params);
2. runs the bare minimum (benchmarks/baseline.py: csv module + phonenumbers + uSpeedo request
   bodies serialised as JSON), `sms-cli send --dry-run` and `sms-cli send` to the emulator
   (uSpeedo, batches of 1000, default concurrency and rate limit, journal and failures file on);
3. times a resume: a send of --resume-rows rows is killed (SIGKILL) once the journal holds ~90%
   accepted, then re-run: seconds until its first request reaches the emulator, and until done;
4. unless --skip-million: the bare minimum and a dry run at 1,000,000 rows (memory must not grow
   with the input).

Every measured program is a child process; its CPU (user + sys) and peak RSS come from the
rusage that wait4() returns for that child alone (getrusage(RUSAGE_CHILDREN) would report the
largest RSS of any child so far, not this one's). The emulator is a separate process started
fresh for each send, so its CPU is not counted. Nothing here asserts a timing: it prints one
table (plain text, aligned, ready to paste in a README) and how it compares with the targets.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
BASELINE = HERE / "baseline.py"
KILL_AT = 0.9  # share of the resume input accepted when the first run is killed
TARGET_RATE, TARGET_RSS_MB, TARGET_RATIO = 20_000, 150, 1.5

TEMPLATES = (("OTP_LOGIN", 1), ("ORDER_SHIPPED", 2), ("PROMO_NOV", 1))
# prefixes whose numbers phonenumbers always finds valid (checked), so every row is sent
CN_PREFIXES = ("138", "139", "158", "186", "189")
US_AREAS = ("212", "312", "415", "617", "646")


# --- input ---------------------------------------------------------------------------------
def generate(path: Path, rows: int, seed: int = 42) -> None:
    """A deterministic CSV: phone,template_id,param1,param2 (half +86 mobiles, half +1)."""
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write("phone,template_id,param1,param2\n")
        lines = []
        for i in range(rows):
            if i % 2:
                phone = f"+1{rng.choice(US_AREAS)}{rng.randrange(2, 10)}{rng.randrange(10**6):06d}"
            else:
                phone = f"+86{rng.choice(CN_PREFIXES)}{rng.randrange(10**8):08d}"
            template, count = TEMPLATES[i % 3]
            second = f"{i % 5 + 1} days" if count == 2 else ""
            lines.append(f"{phone},{template},{rng.randrange(10**6):06d},{second}\n")
            if len(lines) == 10_000:
                fh.writelines(lines)
                lines.clear()
        fh.writelines(lines)


# --- child processes -----------------------------------------------------------------------
@dataclass
class Result:
    label: str
    rows: int
    wall: float
    cpu: float  # user + sys of the child alone
    rss_mb: float  # its peak resident set
    code: int
    stdout: str = ""
    stderr: str = ""
    compare: bool = True  # show CPU / bare minimum for this row
    extra: dict = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.rows / self.wall if self.wall else 0.0


def _rss_mb(maxrss: int) -> float:
    return maxrss / (1 << 20) if sys.platform == "darwin" else maxrss / 1024  # bytes vs KiB


def start_child(argv: list[str], log_dir: Path, name: str) -> tuple[subprocess.Popen, Path, Path]:
    out, err = log_dir / f"{name}.out", log_dir / f"{name}.err"
    with open(out, "wb") as o, open(err, "wb") as e:
        proc = subprocess.Popen(argv, stdout=o, stderr=e, stdin=subprocess.DEVNULL, cwd=log_dir)
    return proc, out, err


def running(proc: subprocess.Popen) -> bool:
    """Is the child still running? Without reaping it (poll() would, and wait4 needs it)."""
    return os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None


def reap(proc: subprocess.Popen, started: float, label: str, rows: int, out: Path, err: Path,
         timeout: float) -> Result:
    """Wait for the child with wait4() (its own rusage), killing it after `timeout` seconds."""
    timer = threading.Timer(timeout, lambda: proc.poll() is None and proc.kill())
    timer.start()
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        timer.cancel()
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
    return Result(label, rows, wall, usage.ru_utime + usage.ru_stime, _rss_mb(usage.ru_maxrss),
                  proc.returncode, out.read_text(errors="replace"), err.read_text(errors="replace"))


def measure(label: str, rows: int, argv: list[str], log_dir: Path, name: str, timeout: float) -> Result:
    started = time.perf_counter()
    proc, out, err = start_child(argv, log_dir, name)
    return reap(proc, started, label, rows, out, err, timeout)


class EmulatorProcess:
    """`sms-cli emulator --port 0` in a process of its own; the port is read from its first line."""

    def __init__(self, python: str, work: Path, name: str):
        self.log = work / f"{name}.accepted.jsonl"
        with open(work / f"{name}.err", "wb") as err:
            self.proc = subprocess.Popen(
                [python, "-m", "sms_cli", "emulator", "--port", "0", "--log", str(self.log)],
                stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL, cwd=work, text=True)
        line = self.proc.stdout.readline()
        m = re.search(r"listening on (http://\S+)", line)
        if not m:
            self.stop()
            raise SystemExit(f"bench: the emulator did not start: {line!r} "
                             f"(see {work / (name + '.err')})")
        self.url = m.group(1)

    def requests(self) -> int:
        with urllib.request.urlopen(f"{self.url}/_emulator/stats", timeout=5) as resp:
            return int(json.load(resp)["requests"])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()


def write_config(path: Path, url: str) -> None:
    path.write_text(
        "providers:\n"
        "  emu:\n"
        "    type: uspeedo\n"
        f"    endpoint: {url}/api\n"
        '    account_id: "1"\n'
        "    access_key_id: emulator-key\n"
        "    access_key_secret: emulator-secret\n", encoding="utf-8")
    path.chmod(0o600)


def sms_cli(python: str, input_path: Path, config: Path, *extra: str) -> list[str]:
    return [python, "-m", "sms_cli", "send", str(input_path), "--config", str(config), "--json", *extra]


def summary(result: Result) -> dict:
    """The --json summary sms-cli printed (last line of stdout)."""
    for line in reversed(result.stdout.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise SystemExit(f"bench: {result.label} printed no JSON summary (exit {result.code}):\n"
                     f"{result.stderr[-2000:]}")


def check(result: Result, ok_codes=(0,)) -> Result:
    if result.code not in ok_codes:
        raise SystemExit(f"bench: {result.label} exited {result.code}:\n{result.stderr[-2000:]}")
    return result


# --- the runs ------------------------------------------------------------------------------
def run_send(python: str, work: Path, input_path: Path, rows: int, name: str, timeout: float) -> Result:
    emu = EmulatorProcess(python, work, f"{name}-emulator")
    try:
        config = work / f"{name}.yaml"
        write_config(config, emu.url)
        argv = sms_cli(python, input_path, config, "--journal", str(work / f"{name}.journal.sqlite"),
                       "--failures", str(work / f"{name}.failed.csv"))
        result = check(measure("sms-cli send (emulator, journal)", rows, argv, work, name, timeout))
    finally:
        emu.stop()
    s = summary(result)
    if s["accepted"] != rows:
        raise SystemExit(f"bench: the send accepted {s['accepted']} of {rows} rows")
    result.extra["requests"] = s["requests"]
    return result


def _journal_counts(journal: Path) -> dict[str, int]:
    """State counts, read-only, while another process writes the journal."""
    try:
        db = sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=1)
        try:
            return dict(db.execute("SELECT state, count(*) FROM rows GROUP BY state").fetchall())
        finally:
            db.close()
    except sqlite3.Error:  # not created yet, or busy for a moment
        return {}


def run_resume(python: str, work: Path, input_path: Path, rows: int, timeout: float) -> Result:
    """Kill a send at ~90% accepted, then time the re-run: first request, and the end.

    Both runs use one emulator: the endpoint is part of what identifies a run, so a re-run
    against another port would be a new run, not a resume."""
    journal, failures = work / "resume.journal.sqlite", work / "resume.failed.csv"
    emu = EmulatorProcess(python, work, "resume-emulator")
    try:
        config = work / "resume.yaml"
        write_config(config, emu.url)
        argv = sms_cli(python, input_path, config, "--journal", str(journal), "--failures", str(failures))
        started = time.perf_counter()
        proc, _, _ = start_child(argv, work, "resume-killed")
        target, killed_at = int(rows * KILL_AT), None
        while proc.poll() is None and time.perf_counter() - started < timeout:
            if _journal_counts(journal).get("accepted", 0) >= target:
                proc.send_signal(signal.SIGKILL)
                killed_at = time.perf_counter() - started
                break
            time.sleep(0.01)
        if proc.poll() is None and killed_at is None:
            proc.kill()
        proc.wait()
        before = _journal_counts(journal)

        seen = emu.requests()
        started = time.perf_counter()
        proc, out, err = start_child(argv, work, "resume")
        first = None
        while first is None and running(proc) and time.perf_counter() - started < timeout:
            if emu.requests() > seen:
                first = time.perf_counter() - started
            else:
                time.sleep(0.005)
        # rows the killed run had in flight come back `unknown` (exit 4): that is the contract
        result = check(reap(proc, started, "sms-cli send, resumed after SIGKILL", rows, out, err, timeout),
                       ok_codes=(0, 1, 4))
        if first is None and emu.requests() > seen:  # it finished between two polls
            first = result.wall
    finally:
        emu.stop()
    s = summary(result)
    result.extra.update(first_request=first, killed_at=killed_at, before=before, summary=s)
    settled = s["accepted"] + s["accepted_before"] + s["unknown"] + s["failed"]
    if settled != rows:
        raise SystemExit(f"bench: the resumed run settled {settled} of {rows} rows: {s}")
    return result


# --- report --------------------------------------------------------------------------------
def table(results: list[Result], baselines: dict[int, Result]) -> str:
    head = ("run", "rows", "wall s", "rows/s", "CPU s", "peak RSS MB", "CPU / bare min")
    body = []
    for r in results:
        base = baselines.get(r.rows)
        ratio = f"{r.cpu / base.cpu:.2f}" if base is not None and base.cpu else "-"
        body.append((r.label, f"{r.rows:,}", f"{r.wall:.2f}", f"{r.rate:,.0f}", f"{r.cpu:.2f}",
                     f"{r.rss_mb:.1f}", ratio if r.compare else "-"))
    widths = [max(len(row[i]) for row in (head, *body)) for i in range(len(head))]

    def fmt(row):
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))

    return "\n".join([fmt(head), "  ".join("-" * w for w in widths), *map(fmt, body)])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="sms-cli next to the bare minimum: throughput, CPU, memory, resume.")
    ap.add_argument("--rows", type=int, default=200_000, help="rows for the main runs (default 200,000)")
    ap.add_argument("--resume-rows", type=int, default=None, help="rows for the resume run (default: --rows)")
    ap.add_argument("--million-rows", type=int, default=1_000_000, help=argparse.SUPPRESS)
    ap.add_argument("--skip-million", action="store_true", help="skip the 1,000,000-row memory check")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder (inputs, journals, logs)")
    ap.add_argument("--timeout", type=float, default=900, help="seconds before a child is killed")
    args = ap.parse_args(argv)
    resume_rows = args.resume_rows or args.rows
    python = sys.executable
    work = Path(tempfile.mkdtemp(prefix="sms-cli-bench-"))
    t = args.timeout
    results: list[Result] = []
    baselines: dict[int, Result] = {}
    try:
        print(f"bench: {args.rows:,} rows in {work}", file=sys.stderr, flush=True)
        data = work / "recipients.csv"
        generate(data, args.rows)
        config = work / "dry.yaml"
        write_config(config, "http://127.0.0.1:9")  # a dry run sends nothing

        base = check(measure("bare minimum (csv + phonenumbers + JSON)", args.rows,
                             [python, str(BASELINE), str(data)], work, "baseline", t))
        baselines[args.rows] = base
        results.append(base)
        dry = check(measure("sms-cli send --dry-run", args.rows,
                            sms_cli(python, data, config, "--dry-run"), work, "dry-run", t))
        results.append(dry)
        send = run_send(python, work, data, args.rows, "send", t)
        results.append(send)

        if resume_rows == args.rows:
            resume_input = data
        else:
            resume_input = work / "resume.csv"
            generate(resume_input, resume_rows, seed=7)
        print("bench: resume", file=sys.stderr, flush=True)
        resume = run_resume(python, work, resume_input, resume_rows, t)
        resume.compare = False  # a resume does a part of the work: no ratio
        results.append(resume)

        million = None
        if not args.skip_million:
            n = args.million_rows
            print(f"bench: {n:,}-row dry run", file=sys.stderr, flush=True)
            big = work / "million.csv"
            generate(big, n, seed=11)
            baselines[n] = check(measure("bare minimum (csv + phonenumbers + JSON)", n,
                                         [python, str(BASELINE), str(big)], work, "baseline-million", t))
            results.append(baselines[n])
            million = check(measure("sms-cli send --dry-run", n, sms_cli(python, big, config, "--dry-run"),
                                    work, "dry-run-million", t))
            results.append(million)
            big.unlink()

        print()
        print(f"sms-cli benchmark: {platform.python_implementation()} {platform.python_version()}, "
              f"{os.cpu_count()} CPUs, {platform.system()} {platform.machine()}; uSpeedo batches of 1000, "
              f"concurrency 4, default rate limit; emulator on 127.0.0.1 in its own process (not counted)")
        print()
        print(table(results, baselines))
        print()
        s, before = resume.extra["summary"], resume.extra["before"]
        first = resume.extra["first_request"]
        killed = (f"SIGKILLed at {resume.extra['killed_at']:.1f}s with {before.get('accepted', 0):,} accepted "
                  f"and {before.get('inflight', 0):,} in flight" if resume.extra["killed_at"] is not None
                  else f"finished before it could be killed ({before.get('accepted', 0):,} accepted)")
        print(f"resume: a send of {resume_rows:,} rows {killed}; the re-run skipped "
              f"{s['accepted_before']:,} accepted rows, sent {s['accepted']:,}, left {s['unknown']:,} unknown "
              f"(in flight at the kill); first request after "
              + (f"{first:.2f}s" if first is not None else "- (nothing left to send)")
              + f", finished after {resume.wall:.2f}s")
        print("CPU / bare min: user+sys CPU of the row's run over the bare minimum's on the same input")
        print()
        dry_ratio = dry.cpu / base.cpu
        send_ratio = send.cpu / base.cpu
        print("targets:")
        print(f"  send of {args.rows:,} rows >= {TARGET_RATE:,} rows/s end to end: "
              f"{send.rate:,.0f} rows/s -> {'met' if send.rate >= TARGET_RATE else 'NOT met'}")
        if million is not None:
            print(f"  peak RSS < {TARGET_RSS_MB} MB for a {args.million_rows:,}-row dry run: "
                  f"{million.rss_mb:.1f} MB -> {'met' if million.rss_mb < TARGET_RSS_MB else 'NOT met'}"
                  f" ({dry.rss_mb:.1f} MB at {args.rows:,} rows)")
        at_million = (f" ({million.cpu / baselines[args.million_rows].cpu:.2f}x at {args.million_rows:,} rows)"
                      if million is not None else "")
        print(f"  CPU of sms-cli <= {TARGET_RATIO}x the bare minimum: dry run (read, validate, batch) "
              f"{dry_ratio:.2f}x{at_million} -> {'met' if dry_ratio <= TARGET_RATIO else 'NOT met'}; "
              f"send (also JSON, signing, HTTP, journal, worker threads) {send_ratio:.2f}x")
        print(f"  resume starts sending within seconds: first request after "
              + (f"{first:.2f}s" if first is not None else "-"))
        return 0
    finally:
        if args.keep:
            print(f"bench: kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
