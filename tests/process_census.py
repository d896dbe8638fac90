"""A census of the suite's processes and sleeps (a pytest plugin, loaded by conftest.py).

Issue 21 asks that fewer than 15 tests start a process and that none sleeps; this plugin keeps
count so the figure is measured, not guessed. It wraps the three ways a test can start a process
(subprocess.Popen._execute_child, under subprocess.run/Popen; os.fork; os.posix_spawn) and
time.sleep, and books each call to the test running at the time (fixture set-up and teardown
included, other threads included). Counting rules:
- a process started from tests/redis_server.py is infrastructure (the real redis-server a fixture
  starts, as the emulator is a real HTTP server) and is counted apart, not as the test's;
- a sleep counts only when called from a file under tests/ (a test or its helpers); the code
  under test may wait through its own (few-millisecond, test-configured) backoff. A sleep inside
  conftest.poll_until (polling a condition nothing can signal, with a deadline) is counted
  apart as a poll.
Processes started outside any test (pytest-xdist starting its workers) are counted apart. The
CPU each test used (its threads, and the children it waited for) is summed too. The terminal
summary prints one line always; PROCESS_CENSUS=1 lists the tests by name and the 15 costliest."""
from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest

TESTS = str(Path(__file__).resolve().parent) + os.sep
INFRA = {str(Path(TESTS) / "redis_server.py")}

OUTSIDE = "<outside any test>"
current = [OUTSIDE]
processes: dict[str, Counter] = defaultdict(Counter)   # test -> {"test": n, "infrastructure": n}
sleeps: dict[str, int] = defaultdict(int)
polls: dict[str, int] = defaultdict(int)


def _started_by() -> str:
    """'infrastructure' if a frame of tests/redis_server.py is on the stack, else 'test'."""
    frame = sys._getframe(2)
    while frame is not None:
        if frame.f_code.co_filename in INFRA:
            return "infrastructure"
        frame = frame.f_back
    return "test"


def _count_process(original):
    def wrapper(*args, **kwargs):
        processes[current[0]][_started_by()] += 1
        return original(*args, **kwargs)
    return wrapper


def _install() -> None:
    subprocess.Popen._execute_child = _count_process(subprocess.Popen._execute_child)
    os.fork = _count_process(os.fork)
    if hasattr(os, "posix_spawn"):
        os.posix_spawn = _count_process(os.posix_spawn)
    real_sleep = time.sleep

    def sleep(seconds):
        caller = sys._getframe(1).f_code
        if caller.co_name == "poll_until" and caller.co_filename.endswith("conftest.py"):
            polls[current[0]] += 1
        elif caller.co_filename.startswith(TESTS):
            sleeps[current[0]] += 1
        return real_sleep(seconds)

    time.sleep = sleep


_install()


cpu: dict[str, float] = {}  # test -> CPU seconds (this process's threads and its waited-for children)
wall: dict[str, float] = {}  # test -> wall seconds (set-up, call and teardown)


def _cpu_now() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime



@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    current[0] = item.nodeid
    before, started = _cpu_now(), time.monotonic()
    yield
    cpu[item.nodeid] = _cpu_now() - before
    wall[item.nodeid] = time.monotonic() - started


def _tables() -> dict:
    return {"processes": {t: dict(c) for t, c in processes.items()}, "sleeps": dict(sleeps), "polls": dict(polls),
            "cpu": dict(cpu), "wall": dict(wall)}


def _merge(tables: dict) -> None:
    for t, c in tables["processes"].items():
        processes[t].update(c)
    for name, into in (("sleeps", sleeps), ("polls", polls)):
        for t, n in tables[name].items():
            into[t] += n
    cpu.update(tables["cpu"])
    wall.update(tables.get("wall", {}))


class _Xdist:
    """Under pytest-xdist each worker counts its own tests and hands the counts to the controller,
    which prints the summary (hooks of xdist's, so registered only when it is there)."""

    def pytest_testnodedown(self, node, error):
        tables = getattr(node, "workeroutput", {}).get("process_census")
        if tables:
            _merge(tables)


def pytest_configure(config):
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(_Xdist(), "process_census_xdist")


def pytest_sessionfinish(session):
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # a worker: the controller reports
        workeroutput["process_census"] = _tables()


def pytest_terminal_summary(terminalreporter):
    if hasattr(terminalreporter.config, "workeroutput"):
        return
    outside = sum(c["test"] for t, c in processes.items() if t == OUTSIDE)  # pytest-xdist starting a worker
    by_test = sorted(t for t, c in processes.items() if c["test"] and t != OUTSIDE)
    infra = sorted(t for t, c in processes.items() if c["infrastructure"])
    sleepers = sorted(t for t, n in sleeps.items() if n)
    pollers = sorted(t for t, n in polls.items() if n)
    terminalreporter.write_line(
        f"process census: {len(by_test)} tests started {sum(processes[t]['test'] for t in by_test)} processes; "
        f"{sum(c['infrastructure'] for c in processes.values())} infrastructure processes (redis-server) "
        f"in {len(infra)} tests' fixtures; {len(sleepers)} tests slept ({sum(sleeps.values())} calls); "
        f"{len(pollers)} tests polled a condition ({sum(polls.values())} looks); "
        f"{outside} processes outside any test; tests' CPU {sum(cpu.values()):.1f} s, wall {sum(wall.values()):.1f} s")
    dump = os.environ.get("PROCESS_CENSUS_JSON")
    if dump:  # every test's CPU and wall seconds, for finding where the suite's time goes
        import json

        Path(dump).write_text(json.dumps(_tables(), indent=1), encoding="utf-8")
    if os.environ.get("PROCESS_CENSUS"):
        for t in by_test:
            terminalreporter.write_line(f"  process x{processes[t]['test']}: {t}")
        for t in sleepers:
            terminalreporter.write_line(f"  sleep x{sleeps[t]}: {t}")
        for t in pollers:
            terminalreporter.write_line(f"  poll x{polls[t]}: {t}")
        for t in sorted(cpu, key=cpu.get, reverse=True)[:15]:
            terminalreporter.write_line(f"  CPU {cpu[t]:.2f} s: {t}")
