"""Shared fixtures: an in-thread emulator on 127.0.0.1 whose lock tells waiting tests of every
change (wait_for: an event, never a sleep), configs pointing at it, sample inputs, and helpers
that drive the CLI: in this process (invoke through typer's runner; run_main through the real
entry point with a process's streams; Background for a run beside the test), or in a subprocess
where a real process matters (run_cli/start_cli: signals, kill -9, a full disk, a closed pipe).
tests/process_census.py counts the tests that start a process or sleep.

The tests' temporary folders are on a RAM disk (/dev/shm) when there is one: see RAM_TEMP."""
from __future__ import annotations

import csv
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from sms_cli.emulator.server import DEFAULT_KEY_ID, DEFAULT_KEY_SECRET, Emulator, Options
from sms_cli.validate.validator import parse_phone

ROOT = Path(__file__).resolve().parent.parent

# counts the tests that start a process or sleep (issue 21 budget); see process_census.py
pytest_plugins = ["process_census"]


RAM_DISK_FREE = 1 << 30  # a session's folders take ~100 MB and pytest keeps the last three


def _ram_disk() -> str | None:
    """/dev/shm if it is a tmpfs this user may write with room to spare, else None (a container's
    default /dev/shm is 64 MB: the suite would fill it and fail for want of space)."""
    try:
        with open("/proc/mounts", encoding="utf-8") as fh:
            mounts = {fields[1]: fields[2] for fields in (line.split() for line in fh) if len(fields) > 2}
        st = os.statvfs("/dev/shm")
    except OSError:
        return None
    roomy = st.f_bavail * st.f_frsize >= RAM_DISK_FREE
    return "/dev/shm" if mounts.get("/dev/shm") == "tmpfs" and roomy and os.access("/dev/shm", os.W_OK | os.X_OK) else None


# The tests' temporary folders (tmp_path, tmp_path_factory: inputs, journals, failures files, the
# working-set index) go to a RAM disk. Why: the journal commits with synchronous=FULL and the
# failures file and suppression list are fsynced, as they must be for a power cut; on this
# machine's disk an fsync costs 2-4 ms (more while other jobs write), and the suite's in-process
# sends spent more time waiting for fsyncs than computing (tests/test_ledger, test_transitions,
# test_guards on one worker: 18-30 s on /tmp, 7.5 s on /dev/shm). No test can observe an fsync (none
# cuts the power; a killed process's writes survive in the page cache either way), and the code
# runs unchanged: synchronous stays FULL and every fsync is still made. The tests whose subject is
# surviving a crash (kill -9, signals, a full disk) work in `disk_path`, on the real disk.
# Set SMS_CLI_TESTS_ON_DISK=1 (or PYTEST_DEBUG_TEMPROOT, or --basetemp) to choose otherwise.
RAM_TEMP = None if os.environ.get("SMS_CLI_TESTS_ON_DISK") else _ram_disk()
if RAM_TEMP and "PYTEST_DEBUG_TEMPROOT" not in os.environ:
    # pytest's documented root for tmp_path's folders (pytest-of-USER/pytest-N, the last 3 kept);
    # xdist's workers import this conftest too
    os.environ["PYTEST_DEBUG_TEMPROOT"] = RAM_TEMP


def pytest_configure(config):
    """Compile the package's bytecode once, before the workers start. Where PYTHONDONTWRITEBYTECODE
    is set (this project's machines set it), every worker and each of the suite's ~130 sms-cli
    processes would otherwise compile the same sources again: measured, ~5 s of the suite's wall
    time on 2 cores. py_compile writes the .pyc files whatever that variable says; importing only
    reads them, and a changed source is compiled afresh as usual (the .pyc records its mtime)."""
    if not hasattr(config, "workerinput"):  # the controller only
        import compileall

        compileall.compile_dir(str(ROOT / "sms_cli"), quiet=2)


@pytest.fixture
def disk_path():
    """A fresh folder on the real disk (the system's temporary folder, not the RAM disk), removed
    after the test: for tests about surviving a crash, where the journal's fsyncs are real ones."""
    import shutil
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="sms-cli-disk-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)

TEMPLATES = {
    "OTP_LOGIN": ["code"],
    "ORDER_SHIPPED": ["order", "eta"],
    "PROMO_NOV": ["name"],
}


# The modules whose tests run longest (processes started, thousands of rows), first, so the short
# ones fill in at the end. The scheduler is xdist's `worksteal` (pyproject addopts): with its
# `load` one, measured on 2 quiet cores, one worker ended at 27 s and the other at 60 s (the
# first had been handed the long modules' whole queue); with worksteal both end within 0.3 s.
LONGEST_FIRST = ("test_readme.py", "test_benchmark.py", "test_reliability.py", "test_property.py",
                 "test_redis_ratelimit.py", "test_run_faults.py", "test_startup_signals.py", "test_working_set.py",
                 "test_routes.py", "test_fidelity.py", "test_fast_count.py", "test_fast_resume.py")


@pytest.hookimpl(trylast=True)  # after pytest's own reordering by fixture scope
def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: each module keeps its order


@pytest.fixture(autouse=True)
def private_state(tmp_path_factory, monkeypatch):
    """Every test gets its own per-user state folder (the working-set index): none writes to the
    real home, and no test finds another's working sets. CLI subprocesses inherit it."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("state")))


class SignallingLock:
    """The emulator's lock, which also tells waiting tests that its state changed: every request
    it counts and every message it takes happens under `with emu.lock`, so a test waits for "the
    k-th request arrived" on this event instead of sleeping between looks. Re-entrant, so a
    predicate may call emu.stats() while the waiter holds it."""

    def __init__(self):
        self.changed = threading.Condition(threading.RLock())

    def __enter__(self):
        self.changed.acquire()
        return self

    def __exit__(self, *exc):
        self.changed.notify_all()
        self.changed.release()

    def acquire(self, *args, **kw):
        return self.changed.acquire(*args, **kw)

    def release(self):
        self.changed.notify_all()
        self.changed.release()


def signalling(emu: Emulator) -> Emulator:
    """Give a not yet serving emulator a SignallingLock (see wait_for)."""
    emu.lock = SignallingLock()
    return emu


def wait_for(emu: Emulator, predicate, *, timeout: float = 30.0, what: str = "condition", procs=()) -> None:
    """Block until predicate() holds, woken by the emulator's state changes and by the end of any
    process in `procs` (so "or the process ended" may be part of the predicate): an event, no
    sleep. Fails after `timeout` seconds."""
    lock: SignallingLock = emu.lock
    for proc in procs:  # a process ending is an event too
        def tell(proc=proc):
            proc.wait()
            with lock:
                pass
        threading.Thread(target=tell, daemon=True).start()
    with lock.changed:
        assert lock.changed.wait_for(predicate, timeout), f"timed out waiting for {what}"


def poll_until(predicate, *, timeout: float = 20.0, what: str = "condition", every: float = 0.005) -> None:
    """Poll a condition nothing can signal (a /proc field, a server's port) until it holds, failing
    after `timeout` seconds. The one place a test waits between looks; the census counts it
    as polling, not as a sleep."""
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(every)


def signal_unless_ended(proc: subprocess.Popen, sig, after: float | None) -> None:
    """Send `sig` to `proc` `after` seconds from now, unless it ends first (the moment is the
    test's input, as in "a signal 30 ms into start-up"): a wait for the process's end with a
    deadline, not a sleep."""
    if after:
        try:
            proc.wait(timeout=after)
            return
        except subprocess.TimeoutExpired:
            pass
    if proc.poll() is None:
        proc.send_signal(sig)


def serve(emu: Emulator) -> Emulator:
    """Emulator.start() with a 5 ms poll: stop() waits for the serve loop's next look, and the
    suite stops a few hundred emulators (Emulator.start's 50 ms cost them ~25 ms each)."""
    threading.Thread(target=emu.server.serve_forever, kwargs={"poll_interval": 0.005}, daemon=True).start()
    return emu


@pytest.fixture
def emulator(tmp_path):
    """Factory: emulator(**Options kwargs) -> a started Emulator, stopped at teardown.

    Accepted messages are also logged to tmp_path/"accepted.jsonl" (unless log_path is given)."""
    started: list[Emulator] = []

    def start(**kw) -> Emulator:
        kw.setdefault("seed", 1234 + len(started))
        kw.setdefault("log_path", str(tmp_path / ("accepted.jsonl" if not started else f"accepted-{len(started)}.jsonl")))
        emu = serve(signalling(Emulator(Options(host="127.0.0.1", port=0, **kw))))
        started.append(emu)
        return emu

    yield start
    for emu in started:
        emu.stop()


@pytest.fixture(scope="module")
def module_emulator():
    """One emulator for a whole test module (starting one per test is slow for adapter tests).
    It blacklists +60111111111 and +85255311101 and blocks the word "casino" in template
    variables; use `emu` for a clean accepted log per test."""
    emu = serve(signalling(Emulator(Options(port=0, seed=1, blacklist={"+60111111111", "+85255311101"},
                                            blocked_words={"casino"}))))
    yield emu
    emu.stop()


@pytest.fixture
def emu(module_emulator):
    with module_emulator.lock:
        module_emulator.accepted.clear()  # each test sees only what it sent
    return module_emulator


def _yaml_scalar(value) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_yaml_scalar(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_yaml_scalar(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_config_file(folder: Path, emu: Emulator, provider_type: str = "uspeedo", *, name: str = "emu",
                      grace_period: float = 1.0, filename: str = "sms-cli.yaml", **overrides) -> Path:
    """A config in `folder` for one provider section pointing at `emu` (see write_config)."""
    section: dict = {"type": provider_type}
    if provider_type == "uspeedo":
        section.update(endpoint=emu.url + "/api", account_id="10001", access_key_id=DEFAULT_KEY_ID,
                       access_key_secret=DEFAULT_KEY_SECRET)
    elif provider_type == "tencent":
        section.update(endpoint=emu.url, region="ap-singapore", sms_sdk_app_id="1400000001",
                       secret_id=DEFAULT_KEY_ID, secret_key=DEFAULT_KEY_SECRET)
    elif provider_type == "aliyun":
        section.update(endpoint=emu.url, access_key_id=DEFAULT_KEY_ID, access_key_secret=DEFAULT_KEY_SECRET,
                       sign_name="ACME")
    else:
        raise ValueError(f"no test config for provider type {provider_type!r}")
    # no test sleeps through real backoff: retries wait at most a few milliseconds
    section.update(rate_limit=0, max_attempts=4, timeout={"connect": 2, "read": 1},
                   backoff={"base": 0.005, "cap": 0.02})
    section.update(overrides)
    lines = [f"default_provider: {name}", f"grace_period: {grace_period}", "providers:", f"  {name}:"]
    lines += [f"    {k}: {_yaml_scalar(v)}" for k, v in section.items() if v is not None]
    lines.append("templates:")
    lines += [f"  {tid}: {{params: {_yaml_scalar(names)}}}" for tid, names in TEMPLATES.items()]
    path = Path(folder) / filename
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    path.chmod(0o600)  # literal secrets in a private file: no warning on stderr
    return path


@pytest.fixture
def write_config(tmp_path):
    """Factory: write_config(emu, provider_type="uspeedo", name="emu", **overrides) -> Path.

    Test defaults: rate_limit 0 (unlimited), max_attempts 4, short timeouts, backoff of a few
    milliseconds, a 1 s grace period after a signal. Overrides replace or add provider keys
    (timeout={"connect": 2, "read": 1} style dicts are fine)."""
    count = [0]

    def write(emu: Emulator, provider_type: str = "uspeedo", **kw) -> Path:
        count[0] += 1
        filename = "sms-cli.yaml" if count[0] == 1 else f"sms-cli-{count[0]}.yaml"
        return write_config_file(tmp_path, emu, provider_type, filename=filename, **kw)

    return write


def cli_env(env: dict | None = None) -> dict:
    """The environment the CLI subprocesses run in: this checkout importable, no user config."""
    out = {k: v for k, v in os.environ.items() if not k.startswith("SMS_CLI_") and not k.lower().endswith("_proxy")}
    out["PYTHONPATH"] = str(ROOT) + os.pathsep + out.get("PYTHONPATH", "")
    out.setdefault("NO_COLOR", "1")
    out.update(env or {})
    return out


def cli_command(*args) -> list[str]:
    return [sys.executable, "-m", "sms_cli", *map(str, args)]


def run_cli(*args, cwd, env: dict | None = None, timeout: float = 120, input: str | None = None
            ) -> subprocess.CompletedProcess:
    """Run `sms-cli ARGS` in a subprocess; stdin is empty unless `input` is given."""
    return subprocess.run(cli_command(*args), cwd=cwd, env=cli_env(env), timeout=timeout, text=True,
                          capture_output=True, input=input,
                          stdin=subprocess.DEVNULL if input is None else None)


def start_cli(*args, cwd, env: dict | None = None) -> subprocess.Popen:
    """Start `sms-cli ARGS` in a subprocess (for signal and kill tests); stdout/stderr piped."""
    return subprocess.Popen(cli_command(*args), cwd=cwd, env=cli_env(env), text=True,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def phone_numbers(n: int, start: int = 0, country: str = "65") -> list[str]:
    """n distinct valid E.164 numbers: +65 9xxxxxxx (or +852 5xxxxxxx with country="852")."""
    out, i = [], start
    prefix, width = ("+659", 7) if country == "65" else ("+8525", 7)
    while len(out) < n:
        phone = f"{prefix}{i:0{width}d}"
        i += 1
        if not isinstance(parse_phone(phone, None), str):
            out.append(phone)
    return out


def make_rows(path: Path, n: int, *, start: int = 0, country: str = "65", template: str = "OTP_LOGIN",
              invalid: int = 0) -> list[str]:
    """Write an n-row CSV (phone, template_id, param1) of distinct valid numbers, plus `invalid`
    rows with a bad phone at the end; return the valid numbers in E.164."""
    phones = phone_numbers(n, start, country)
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["phone", "template_id", "param1"])
        for i, phone in enumerate(phones):
            w.writerow([phone, template, f"{(start + i) % 1000000:06d}"])
        for i in range(invalid):
            w.writerow([f"12{i}", template, "000000"])
    return phones


class Invoked:
    """What an in-process CLI call gave: exit code, stdout, stderr."""

    def __init__(self, returncode: int, stdout: str, stderr: str):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr

    def json(self) -> dict:
        lines = [ln for ln in self.stdout.splitlines() if ln.startswith("{")]
        assert lines, f"no JSON on stdout (exit {self.returncode}):\n{self.stdout}\n{self.stderr}"
        import json

        return json.loads(lines[-1])


def invoke(*args, cwd, input: str | None = None, env: dict | None = None) -> Invoked:
    """`sms-cli ARGS` in this process (typer's CliRunner), from `cwd`: milliseconds instead of a
    subprocess. Use run_cli/start_cli where a real process matters (signals, kill -9, disk)."""
    from typer.testing import CliRunner

    from sms_cli.cli.app import app

    base = {k: None for k in os.environ if k.startswith("SMS_CLI_")}
    base.update(env or {})
    old = os.getcwd()
    os.chdir(cwd)
    try:
        result = CliRunner().invoke(app, [str(a) for a in args], input=input, env=base, catch_exceptions=False)
    finally:
        os.chdir(old)
    assert "Traceback" not in result.stderr, result.stderr
    return Invoked(result.exit_code, result.stdout, result.stderr)


def accepted_counts(emu) -> "Counter":
    """Numbers the emulator accepted, with how many times each (the proof of no duplicate)."""
    from collections import Counter

    with emu.lock:
        return Counter(e["phone"] for e in emu.accepted)


CLOSED = object()  # run_main(stdin=CLOSED): started with stdin closed (`0<&-`), so sys.stdin is None


class Ran(Invoked):
    """What run_main gave: exit code, stdout and stderr as bytes (`out`, `err`) and as text."""

    def __init__(self, returncode: int, out: bytes, err: bytes):
        super().__init__(returncode, out.decode("utf-8", "surrogateescape"), err.decode("utf-8", "surrogateescape"))
        self.out, self.err = out, err


def run_main(*args, cwd, stdin=None, stdout=None, stderr=None, env: dict | None = None,
             errors: str = "surrogateescape") -> Ran:
    """`sms-cli ARGS` through the real entry point's second half (sms_cli.cli.app.main: its own
    usage-error and --json handling, its stream protection) in this process, with the standard
    streams a process would have: stdin is empty, CLOSED (sys.stdin None, as Python starts with
    fd 0 closed), bytes, or a file object (a pty, /dev/zero); stdout is a UTF-8 stream with the
    given `errors` ("strict" is PYTHONIOENCODING=utf-8:strict) unless a stream is given; stderr
    uses Python's backslashreplace. `env` entries are set for the call (TMPDIR included: the
    temporary folder is looked up afresh). For what a real process must show (signals, kill -9,
    a closed pipe at exit) use start_cli."""
    import io
    import tempfile

    from sms_cli.cli import app as cli_app

    out_buf, err_buf = io.BytesIO(), io.BytesIO()
    if stdin is CLOSED:
        new_in = None
    elif stdin is None or isinstance(stdin, bytes):
        new_in = io.TextIOWrapper(io.BytesIO(stdin or b""), encoding="utf-8")
    else:
        new_in = stdin
    new_out = stdout or io.TextIOWrapper(out_buf, encoding="utf-8", errors=errors, write_through=True)
    new_err = stderr or io.TextIOWrapper(err_buf, encoding="utf-8", errors="backslashreplace", write_through=True)
    saved = sys.stdin, sys.stdout, sys.stderr, sys.argv, os.getcwd(), dict(os.environ), tempfile.tempdir
    for key in [k for k in os.environ if k.startswith("SMS_CLI_")]:
        del os.environ[key]
    os.environ.setdefault("NO_COLOR", "1")
    os.environ.update(env or {})
    tempfile.tempdir = None
    sys.stdin, sys.stdout, sys.stderr, sys.argv = new_in, new_out, new_err, ["sms-cli", *map(str, args)]
    os.chdir(cwd)
    try:
        try:
            cli_app.main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
    finally:
        sys.stdin, sys.stdout, sys.stderr, sys.argv = saved[:4]
        os.chdir(saved[4])
        os.environ.clear()
        os.environ.update(saved[5])
        tempfile.tempdir = saved[6]
    ran = Ran(code, out_buf.getvalue(), err_buf.getvalue())
    assert "Traceback" not in ran.stderr, ran.stderr
    return ran


class Background:
    """fn() on a thread of this process, looked at like a Popen: poll() is None while it runs,
    wait(timeout) returns its result (or raises what it raised). For a run that must go on while
    the test does something else (stop Redis, read its status) but needs no process of its own.
    One CLI call at a time may use the standard streams: run the other side through commands."""

    def __init__(self, fn):
        self._result, self._error = None, None
        self._thread = threading.Thread(target=self._run, args=(fn,), daemon=True)
        self._thread.start()

    def _run(self, fn):
        try:
            self._result = fn()
        except BaseException as exc:  # handed to wait()
            self._error = exc

    def poll(self):
        return None if self._thread.is_alive() else True

    def wait(self, timeout: float | None = None):
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the background run did not end in time"
        if self._error is not None:
            raise self._error
        return self._result
