"""How fast is sms-cli, next to the bare minimum and to a user's sequential SDK loop?

    python benchmarks/bench_send.py                      # the full benchmark (about 15 minutes)
    python benchmarks/bench_send.py --rows 20000 --runs 5 --skip-million --latencies 0   # quick

Options: --rows N (each input, default 200,000), --runs N (rounds, default 5), --templates
both|text|none (sms-cli's config, default both), --inputs both|columns|json, --latencies 0,100,
--million-rows N / --skip-million, --resume-only (only the 1M send killed at 90% and its
re-run, --runs times), --keep, --timeout S.

On one machine, one program at a time:

1. generates two CSVs of --rows rows (valid +86 and +1 numbers, three templates, one or two
   params): params as param1/param2 columns, and params as a JSON array in one column;
2. on each, --runs rounds of: against the emulator at 0 ms and at 100 ms of added latency, a
   sequential loop over the official uSpeedo SDK that waits for each 1,000-number request
   before the next (benchmarks/sequential.py), and `sms-cli send` with default settings
   (concurrency, rate limit, journal and failures file on) with a config whose templates carry
   their `text` (as the README recommends: every row's text is then checked and can be counted)
   and with one whose templates do not; each send at 0 ms right after a run of the bare minimum
   (benchmarks/baseline.py: csv + phonenumbers + uSpeedo request bodies as JSON, no I/O);
3. unless --skip-million, --runs rounds of: a bare minimum run and a real send of
   --million-rows rows (peak RSS, CPU), and the resume of such a send killed with SIGKILL once
   the journal holds 90% accepted (seconds until its first request).

Every measured program is a child process; its CPU (user + sys) and peak RSS come from the
rusage that wait4() returns for that child alone. The emulator is a separate process started
fresh for each send, so its CPU is not counted. Each row of the table gives the median of the
runs and their spread (min-max); the ratios are taken pair by pair (a send's CPU over the bare
minimum's run just before it, its wall time against the loop measured in the same round), so
a machine that slows down for a while moves both sides. Nothing here asserts a timing: it prints one table (plain text, aligned,
ready to paste in a README) and how the medians compare with the targets.
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
import statistics
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
SEQUENTIAL = HERE / "sequential.py"
KILL_AT = 0.9  # share of the resume input accepted when the first run is killed
LATENCIES = (0, 100)  # ms the emulator adds to every answer
# the targets of issue "Performance with a real config" (medians of --runs runs)
TARGET_RATIO = 1.3  # CPU of the full send / bare minimum, at most, with and without template texts
TARGET_SPEEDUP = {0: 1.5, 100: 3.5}  # sequential loop wall / sms-cli wall, at least
TARGET_RSS_MB = 100  # peak RSS of the 1,000,000-row real send, under
TARGET_RSS_GROWTH_MB = 10  # ... and within this of the 200,000-row send
TARGET_FIRST_REQUEST = 1.0  # seconds until the resume's first request

TEXT, NO_TEXT = "with text", "no text"  # the two configs sms-cli is measured with
TEMPLATES = (("OTP_LOGIN", 1), ("ORDER_SHIPPED", 2), ("PROMO_NOV", 1))
# prefixes whose numbers phonenumbers always finds valid (checked), so every row is sent
CN_PREFIXES = ("138", "139", "158", "186", "189")
US_AREAS = ("212", "312", "415", "617", "646")


# --- input ---------------------------------------------------------------------------------
def generate(path: Path, rows: int, seed: int = 42, json_params: bool = False) -> None:
    """A deterministic CSV: phone,template_id,param1,param2 (half +86 mobiles, half +1), or with
    `json_params` phone,template_id,params where params is a JSON array (what most exports give)."""
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write("phone,template_id,params\n" if json_params else "phone,template_id,param1,param2\n")
        lines = []
        for i in range(rows):
            if i % 2:
                phone = f"+1{rng.choice(US_AREAS)}{rng.randrange(2, 10)}{rng.randrange(10**6):06d}"
            else:
                phone = f"+86{rng.choice(CN_PREFIXES)}{rng.randrange(10**8):08d}"
            template, count = TEMPLATES[i % 3]
            first = f"{rng.randrange(10**6):06d}"
            if json_params:
                params = [first, f"{i % 5 + 1} days"] if count == 2 else [first]
                cell = json.dumps(params).replace('"', '""')
                lines.append(f'{phone},{template},"{cell}"\n')
            else:
                second = f"{i % 5 + 1} days" if count == 2 else ""
                lines.append(f"{phone},{template},{first},{second}\n")
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
    extra: dict = field(default_factory=dict)
    input: str = ""  # which input: "param columns" or "JSON params"
    latency: int | None = None  # ms the emulator added
    templates: str = "-"  # sms-cli's config: templates with their text, or without
    runs: list["Result"] = field(default_factory=list)  # every run of this measurement (this is the median)
    ratios: list[float] = field(default_factory=list)  # CPU / bare minimum, run by run
    speedups: list[float] = field(default_factory=list)  # wall / sequential loop's, run by run

    @property
    def rate(self) -> float:
        return self.rows / self.wall if self.wall else 0.0


def _rss_mb(maxrss: int) -> float:
    return maxrss / (1 << 20) if sys.platform == "darwin" else maxrss / 1024  # bytes vs KiB


def start_child(argv: list[str], log_dir: Path, name: str) -> tuple[subprocess.Popen, Path, Path]:
    out, err = log_dir / f"{name}.out", log_dir / f"{name}.err"
    # each campaign its own per-user working-set index (the killed send and its resume share
    # one): runs of the same input are separate campaigns here, and the user's index is left alone
    env = {**os.environ, "XDG_STATE_HOME": str(log_dir / "state" / name.removesuffix("-killed"))}
    with open(out, "wb") as o, open(err, "wb") as e:
        proc = subprocess.Popen(argv, stdout=o, stderr=e, stdin=subprocess.DEVNULL, cwd=log_dir, env=env)
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

    def __init__(self, python: str, work: Path, name: str, latency_ms: int = 0):
        self.log = work / f"{name}.accepted.jsonl"
        with open(work / f"{name}.err", "wb") as err:
            self.proc = subprocess.Popen(
                [python, "-m", "sms_cli", "emulator", "--port", "0", "--log", str(self.log),
                 "--latency-ms", str(latency_ms)],
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


# the templates of config.example.yaml: with their text, as the README recommends for the
# estimate and the spend cap (each row's text is then rendered, checked and counted)
TEMPLATE_CONFIG = (
    "templates:\n"
    "  OTP_LOGIN:\n"
    "    params: [code]\n"
    '    text: "Your ACME code is {1}. It expires in 10 minutes."\n'
    "  ORDER_SHIPPED:\n"
    "    params: [order, eta]\n"
    '    text: "Order {order} has shipped and arrives in {eta}."\n'
    "  PROMO_NOV:\n"
    "    params: [name]\n"
    '    text: "Hi {name}, November deals are live: 20% off everything this week."\n')


def write_config(path: Path, url: str, with_text: bool = True) -> None:
    path.write_text(
        "providers:\n"
        "  emu:\n"
        "    type: uspeedo\n"
        f"    endpoint: {url}/api\n"
        '    account_id: "1"\n'
        "    access_key_id: emulator-key\n"
        "    access_key_secret: emulator-secret\n"
        + (TEMPLATE_CONFIG if with_text else ""), encoding="utf-8")
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
def run_loop(python: str, work: Path, input_path: Path, rows: int, name: str, timeout: float,
             latency: int) -> Result:
    """The user's sequential loop over the official SDK, against a fresh emulator."""
    emu = EmulatorProcess(python, work, f"{name}-emulator", latency)
    try:
        result = check(measure("sequential SDK loop", rows, [python, str(SEQUENTIAL), str(input_path), emu.url + "/api"],
                               work, name, timeout))
    finally:
        emu.stop()
    m = re.search(r"(\d+) accepted, via (\S+)", result.stdout)
    if not m or int(m.group(1)) != rows:
        raise SystemExit(f"bench: the sequential loop accepted {m and m.group(1)} of {rows} rows: {result.stdout}")
    result.label = f"sequential loop ({m.group(2)})"
    return result


def run_send(python: str, work: Path, input_path: Path, rows: int, name: str, timeout: float,
             latency: int = 0, with_text: bool = True) -> Result:
    emu = EmulatorProcess(python, work, f"{name}-emulator", latency)
    try:
        config = work / f"{name}.yaml"
        write_config(config, emu.url, with_text)
        argv = sms_cli(python, input_path, config, "--journal", str(work / f"{name}.journal.sqlite"),
                       "--failures", str(work / f"{name}.failed.csv"))
        result = check(measure("sms-cli send (journal on)", rows, argv, work, name, timeout))
        result.templates = TEXT if with_text else NO_TEXT
    finally:
        emu.stop()
    s = summary(result)
    if s["accepted"] != rows:
        raise SystemExit(f"bench: the send accepted {s['accepted']} of {rows} rows")
    result.extra["requests"] = s["requests"]
    return result


def _accepted_so_far(journal: Path) -> int:
    """Rows of the requests answered 'accepted' so far: read from the small requests table, so
    polling it does not hold the journal for the scan of every row a state count needs (in
    rollback-journal mode a reader delays the writer's commit: polling with that scan every
    10 ms made the killed send take 160 s instead of about 35)."""
    try:
        db = sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=1)
        try:
            return db.execute("SELECT coalesce(sum(rows), 0) FROM requests WHERE result='accepted'").fetchone()[0]
        finally:
            db.close()
    except sqlite3.Error:  # not created yet, or busy for a moment
        return 0


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
    against another port would be a new run, not a resume. Everything they write (journal,
    failures file, per-user index, logs) is in `work`/resume, emptied first: a call starts from
    nothing, and the failures file it leaves (the rows in flight at the kill, of the input's
    working set) is not beside the input, where a later send of it would leave those rows there."""
    work = work / "resume"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
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
            if _accepted_so_far(journal) >= target:
                proc.send_signal(signal.SIGKILL)
                killed_at = time.perf_counter() - started
                break
            time.sleep(0.01)
        if proc.poll() is None and killed_at is None:
            proc.kill()
        proc.wait()
        before = _journal_counts(journal)

        # requests the killed run had already sent may still reach the emulator: counted once
        # they stop coming, they are not mistaken for the re-run's first request
        seen = emu.requests()
        while True:
            time.sleep(0.2)
            now = emu.requests()
            if now == seen:
                break
            seen = now
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
    settled = s["accepted"] + s["accepted_earlier"] + s["unknown"] + s["failed"]
    if settled != rows:
        raise SystemExit(f"bench: the resumed run settled {settled} of {rows} rows: {s}")
    return result


# --- report --------------------------------------------------------------------------------
def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _spread(values: list[float], digits: int = 2) -> str:
    """min-max of the runs ("-" for one run)."""
    if len(values) < 2:
        return "-"
    return f"{min(values):.{digits}f}-{max(values):.{digits}f}"


def combine(runs: list[Result]) -> Result:
    """One table row for the runs of one measurement: the run of median CPU, with every run kept."""
    ordered = sorted(runs, key=lambda r: r.cpu)
    mid = ordered[(len(ordered) - 1) // 2]
    return Result(mid.label, mid.rows, _median([r.wall for r in runs]), _median([r.cpu for r in runs]),
                  max(r.rss_mb for r in runs), mid.code, mid.stdout, mid.stderr, extra=dict(mid.extra),
                  input=mid.input, latency=mid.latency, templates=mid.templates, runs=list(runs))


def table(results: list[Result]) -> str:
    head = ("run", "input", "templates", "latency", "rows", "runs", "wall s", "wall min-max", "rows/s", "CPU s",
            "CPU min-max", "peak RSS MB", "CPU / bare min", "loop wall / wall")
    body = []
    for r in results:
        ratio = (f"{_median(r.ratios):.2f} ({_spread(r.ratios)})" if len(r.ratios) > 1 else
                 f"{r.ratios[0]:.2f}" if r.ratios else "-")
        loop = (f"{_median(r.speedups):.2f} ({_spread(r.speedups)})" if len(r.speedups) > 1 else
                f"{r.speedups[0]:.2f}" if r.speedups else "-")
        runs = r.runs or [r]
        body.append((r.label, r.input, r.templates, "-" if r.latency is None else f"{r.latency} ms", f"{r.rows:,}",
                     str(len(runs)), f"{r.wall:.2f}", _spread([x.wall for x in runs]), f"{r.rate:,.0f}",
                     f"{r.cpu:.2f}", _spread([x.cpu for x in runs]), f"{r.rss_mb:.1f}", ratio, loop))
    widths = [max(len(row[i]) for row in (head, *body)) for i in range(len(head))]

    def fmt(row):
        return "  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))

    return "\n".join([fmt(head), "  ".join("-" * w for w in widths), *map(fmt, body)])


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def measure_input(python: str, work: Path, kind: str, data: Path, rows: int, args, latencies: list[int],
                  configs: list[bool]) -> list[Result]:
    """--runs rounds on one input, each round every program once (at each latency the loop, then
    the sends, each send at 0 ms right after a bare minimum run of its own), so that each run is
    compared with the yardstick measured beside it: CPU / bare min pair by pair, wall / seq loop
    round by round."""
    tag = "json" if kind == "JSON params" else "cols"
    t = args.timeout
    runs: dict[tuple, list[Result]] = {}
    for n in range(args.runs):
        print(f"bench: {rows:,} rows, {kind}, round {n + 1} of {args.runs}", file=sys.stderr, flush=True)
        for latency in latencies:
            loop = run_loop(python, work, data, rows, f"loop-{tag}-{latency}-{n}", t, latency)
            loop.input, loop.latency = kind, latency
            runs.setdefault(("loop", latency), []).append(loop)
            for with_text in configs:
                name = f"send-{tag}-{latency}-{'text' if with_text else 'plain'}-{n}"
                base = None
                if latency == 0:
                    # the bare minimum run just before the send it is the yardstick of: this VM's
                    # speed drifts by 20-30% over minutes, and a bare minimum measured once a round,
                    # half a minute from the send, carried that drift into the ratio
                    base = check(measure("bare minimum (csv + phonenumbers + JSON)", rows,
                                         [python, str(BASELINE), str(data)], work, f"baseline-{name}", t))
                    base.input = kind
                    runs.setdefault(("base",), []).append(base)
                send = run_send(python, work, data, rows, name, t, latency, with_text)
                send.input, send.latency = kind, latency
                send.extra["ratio"] = send.cpu / base.cpu if base is not None and base.cpu else None
                send.extra["speedup"] = loop.wall / send.wall if send.wall else None
                runs.setdefault(("send", latency, with_text), []).append(send)
    out = []
    for key, rs in runs.items():
        row = combine(rs)
        row.ratios = [r.extra["ratio"] for r in rs if r.extra.get("ratio") is not None]
        row.speedups = [r.extra["speedup"] for r in rs if r.extra.get("speedup") is not None]
        out.append(row)
    return out


def resume_only(python: str, work: Path, args) -> int:
    """--resume-only: --runs kills and resumes of one --million-rows input, each with a fresh
    journal; prints each run's time to the first request and their spread."""
    n = args.million_rows
    big = work / "million.csv"
    generate(big, n, seed=11)
    firsts, walls, cpus = [], [], []
    for i in range(args.runs):
        print(f"bench: {n:,}-row send, SIGKILL at {KILL_AT:.0%}, resume: run {i + 1} of {args.runs}",
              file=sys.stderr, flush=True)
        r = run_resume(python, work, big, n, args.timeout)
        first, s = r.extra["first_request"], r.extra["summary"]
        print(f"resume {i + 1}: skipped {s['accepted_earlier']:,} accepted, sent {s['accepted']:,}, "
              f"{s['unknown']:,} unknown; first request after "
              + (f"{first:.2f}s" if first is not None else "-") + f", CPU {r.cpu:.2f}s, wall {r.wall:.2f}s")
        if first is not None:
            firsts.append(first)
        walls.append(r.wall)
        cpus.append(r.cpu)
    if firsts:
        print(f"first request: median {_median(firsts):.2f}s ({_spread(firsts)}); resume wall median "
              f"{_median(walls):.2f}s, CPU median {_median(cpus):.2f}s; target {TARGET_FIRST_REQUEST:g} s -> "
              f"{verdict(_median(firsts) <= TARGET_FIRST_REQUEST)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="sms-cli next to the bare minimum and a sequential SDK loop.")
    ap.add_argument("--rows", type=int, default=200_000, help="rows of each of the two inputs (default 200,000)")
    ap.add_argument("--runs", type=int, default=5, help="rounds of measurements on each input; the table gives "
                    "the median and the spread (min-max) of the runs (default 5)")
    ap.add_argument("--templates", choices=("both", "text", "none"), default="both",
                    help="sms-cli's config: templates with their text, without, or both (default both)")
    ap.add_argument("--inputs", choices=("both", "columns", "json"), default="both",
                    help="params as param1..N columns, as one JSON column, or both (default both)")
    ap.add_argument("--million-rows", type=int, default=1_000_000, help="rows of the real send and resume for "
                    "memory (default 1,000,000)")
    ap.add_argument("--skip-million", action="store_true", help="skip the large real send and its resume")
    ap.add_argument("--resume-only", action="store_true", help="only the resume: a send of --million-rows rows "
                    "SIGKILLed at 90%% accepted, then its re-run (time to the first request), --runs times")
    ap.add_argument("--latencies", default=",".join(map(str, LATENCIES)),
                    help="ms of latency the emulator adds, comma-separated (default 0,100)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder (inputs, journals, logs)")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds before a child is killed")
    args = ap.parse_args(argv)
    if args.runs < 1 or args.rows < 1:
        ap.error("--runs and --rows must be at least 1")
    latencies = [int(x) for x in args.latencies.split(",") if x.strip()]
    configs = {"both": [True, False], "text": [True], "none": [False]}[args.templates]
    inputs = [k for k, flag in (("param columns", "columns"), ("JSON params", "json"))
              if args.inputs in ("both", flag)]
    python = sys.executable
    # byte-compiled first, as an installed package is: with PYTHONDONTWRITEBYTECODE set (CI, some
    # shells) every run would otherwise compile sms-cli's modules again (0.1 s of each start-up)
    subprocess.run([python, "-c", "import compileall, os, sms_cli; "
                    "compileall.compile_dir(os.path.dirname(sms_cli.__file__), quiet=1)"], check=False)
    work = Path(tempfile.mkdtemp(prefix="sms-cli-bench-"))
    t = args.timeout
    results: list[Result] = []
    sends: dict[tuple, Result] = {}
    try:
        if args.resume_only:
            return resume_only(python, work, args)
        for kind in inputs:
            data = work / f"recipients-{'json' if kind == 'JSON params' else 'cols'}.csv"
            generate(data, args.rows, json_params=kind == "JSON params")
            for r in measure_input(python, work, kind, data, args.rows, args, latencies, configs):
                results.append(r)
                if r.label.startswith("sms-cli send"):
                    sends[(kind, r.latency, r.templates)] = r

        million = resume = None
        if not args.skip_million:
            n = args.million_rows
            big = work / "million.csv"
            generate(big, n, seed=11)
            bases, sends_m, resumes = [], [], []
            for i in range(args.runs):
                print(f"bench: {n:,}-row real send and resume, round {i + 1} of {args.runs}", file=sys.stderr,
                      flush=True)
                base = check(measure("bare minimum (csv + phonenumbers + JSON)", n, [python, str(BASELINE), str(big)],
                                     work, f"baseline-million-{i}", t))
                send = run_send(python, work, big, n, f"send-million-{i}", t, with_text=configs[0])
                send.extra["ratio"] = send.cpu / base.cpu if base.cpu else None
                for stale in {*work.glob("send-million-*"), *work.glob("*.accepted.jsonl")}:
                    stale.unlink()  # its journal is ~130 MB, the emulator's log more: the figures are kept
                bases.append(base)
                sends_m.append(send)
                resumes.append(run_resume(python, work, big, n, t))
            base, million = combine(bases), combine(sends_m)
            base.input = million.input = "param columns"
            million.latency = 0
            million.ratios = [r.extra["ratio"] for r in sends_m if r.extra.get("ratio") is not None]
            firsts = [r.extra["first_request"] for r in resumes if r.extra["first_request"] is not None]
            resume = combine(resumes)
            resume.input, resume.latency = "param columns", 0
            resume.extra["firsts"] = firsts
            results += [base, million, resume]

        print()
        print(f"sms-cli benchmark: {platform.python_implementation()} {platform.python_version()}, "
              f"{os.cpu_count()} CPUs, {platform.system()} {platform.machine()}; uSpeedo batches of 1000; "
              f"sms-cli with default settings; emulator on 127.0.0.1 in its own process (not counted); "
              f"{args.runs} run(s) of each program on each input")
        print()
        print(table(results))
        print()
        print("wall s, CPU s: the median of the runs; min-max: the fastest and the slowest run; peak RSS: the largest")
        print("CPU / bare min: user+sys CPU of the send over the bare minimum's run just before it, same input (at "
              "0 ms): median (min-max) of these pairs")
        print("loop wall / wall: the sequential SDK loop's wall time over the send's, same round, input and latency: "
              "median (min-max)")
        if resume is not None:
            for i, r in enumerate(resume.runs, 1):
                s, before, first = r.extra["summary"], r.extra["before"], r.extra["first_request"]
                killed = (f"SIGKILLed at {r.extra['killed_at']:.1f}s with {before.get('accepted', 0):,} accepted "
                          f"and {before.get('inflight', 0):,} in flight" if r.extra["killed_at"] is not None
                          else f"finished before it could be killed ({before.get('accepted', 0):,} accepted)")
                print(f"resume {i}: a send of {args.million_rows:,} rows {killed}; the re-run skipped "
                      f"{s['accepted_earlier']:,} accepted rows, sent {s['accepted']:,}, left {s['unknown']:,} "
                      f"unknown (in flight at the kill); first request after "
                      + (f"{first:.2f}s" if first is not None else "- (nothing left to send)")
                      + f", finished after {r.wall:.2f}s")
            firsts = resume.extra["firsts"]
            if firsts:
                print(f"resume: first request after {_median(firsts):.2f}s, median of {len(firsts)} "
                      f"({_spread(firsts)})")
        print()
        print("targets (on the medians):")
        for (kind, latency, templates), send in sends.items():
            if latency == 0 and send.ratios:
                ratio = _median(send.ratios)
                print(f"  CPU of the full send <= {TARGET_RATIO}x the bare minimum, {kind}, {templates}: "
                      f"{ratio:.2f}x -> {verdict(ratio <= TARGET_RATIO)}")
        for (kind, latency, templates), send in sends.items():
            if latency in TARGET_SPEEDUP and send.speedups:
                speedup = _median(send.speedups)
                print(f"  at least {TARGET_SPEEDUP[latency]}x faster than the sequential loop at {latency} ms, "
                      f"{kind}, {templates}: {speedup:.2f}x -> {verdict(speedup >= TARGET_SPEEDUP[latency])}")
        small = sends.get(("param columns", 0, million.templates)) if million is not None else None
        if million is not None:
            print(f"  peak RSS of the {args.million_rows:,}-row real send, every run < {TARGET_RSS_MB} MB: "
                  f"largest {million.rss_mb:.1f} MB -> {verdict(million.rss_mb < TARGET_RSS_MB)}")
            if small is not None:
                growth = million.rss_mb - small.rss_mb
                print(f"  ... and within {TARGET_RSS_GROWTH_MB} MB of the {args.rows:,}-row send "
                      f"({small.rss_mb:.1f} MB): {growth:+.1f} MB -> {verdict(growth <= TARGET_RSS_GROWTH_MB)}")
            firsts = resume.extra["firsts"]
            first = _median(firsts) if firsts else None
            print(f"  first request of the resume within {TARGET_FIRST_REQUEST:g} s (median of {len(firsts)}): "
                  + (f"{first:.2f}s ({_spread(firsts)}) -> {verdict(first <= TARGET_FIRST_REQUEST)}"
                     if first is not None else "- (the killed run had finished: nothing to resume)"))
        return 0
    finally:
        if args.keep:
            print(f"bench: kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
