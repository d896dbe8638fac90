"""A local HTTP server that speaks the providers' APIs, for tests and for trying pipelines.

Each API is a `Dialect` (one module each); this module owns what they share: routing, the
blacklist, fault injection, the accepted-messages log and request statistics. Faults that
happen before processing (5xx, throttling) leave nothing logged, so a retry is safe; faults
after processing (stall past the client's timeout, dropped connection) log the messages, which
is exactly the case sms-cli must report as unknown rather than resend (so is an HTTP 504 after
processing).
"""
from __future__ import annotations

import json
from abc import ABC, abstractmethod
import random
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DEFAULT_KEY_ID = "emulator-key"
DEFAULT_KEY_SECRET = "emulator-secret"


def digits(phone: str) -> str:
    """Any accepted spelling of a number -> country code + national digits."""
    phone = phone.strip()
    d = re.sub(r"\D", "", phone)
    if phone.startswith("(00") or phone.startswith("00"):
        d = d[2:]
    return d


def load_blacklist(values) -> set[str]:
    """--blacklist values: numbers, comma-separated lists, or @file with one number a line."""
    out: set[str] = set()
    for value in values:
        if value.startswith("@"):
            with open(value[1:], encoding="utf-8") as fh:
                out.update(line.strip() for line in fh if line.strip() and not line.startswith("#"))
        else:
            out.update(v.strip() for v in value.split(",") if v.strip())
    return out


@dataclass
class Request:
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))


@dataclass
class Reply:
    status: int
    body: bytes
    content_type: str = "application/json"
    accepted: list[dict[str, Any]] = field(default_factory=list)  # log entries
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, obj: Any, accepted=None, headers=None) -> "Reply":
        return cls(status, json.dumps(obj, ensure_ascii=False).encode("utf-8"),
                   accepted=accepted or [], headers=headers or {})


class Dialect(ABC):
    name = "base"

    def __init__(self, emulator: "Emulator"):
        self.emu = emulator

    @abstractmethod
    def matches(self, req: Request) -> bool:
        """Is this request for this dialect?"""

    @abstractmethod
    def handle(self, req: Request) -> Reply:
        """Verify and answer the request; accepted messages go in Reply.accepted."""

    def throttled(self, req: Request) -> Reply:
        return Reply.json(429, {"Message": "throttled"}, headers={"Retry-After": "0"})


@dataclass
class Options:
    host: str = "127.0.0.1"
    port: int = 0
    blacklist: set[str] = field(default_factory=set)
    fail_rate: float = 0.0  # HTTP 503 before processing
    throttle_rate: float = 0.0  # the provider's throttling error before processing
    timeout_rate: float = 0.0  # process, then stall for stall_ms (client read timeout -> unknown)
    drop_rate: float = 0.0  # process, then close the connection without an answer
    gateway_timeout_rate: float = 0.0  # process, then answer HTTP 504 (a gateway gave up waiting)
    latency_ms: float = 0.0
    stall_ms: float = 5000.0
    log_path: str | None = None
    key_id: str = DEFAULT_KEY_ID
    key_secret: str = DEFAULT_KEY_SECRET
    seed: int | None = None


class Emulator:
    def __init__(self, options: Options):
        from . import dialects

        self.options = options
        self.blacklist = {digits(p) for p in options.blacklist}
        self.rng = random.Random(options.seed)
        self.lock = threading.Lock()
        self.accepted: list[dict[str, Any]] = []
        self.request_times: list[tuple[str, float]] = []  # (dialect, monotonic time)
        self.dialects = [cls(self) for cls in dialects()]
        self._log = open(options.log_path, "a", encoding="utf-8") if options.log_path else None
        self.server = ThreadingHTTPServer((options.host, options.port), _handler(self))
        self.server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def is_blacklisted(self, phone_digits: str) -> bool:
        return phone_digits in self.blacklist

    def set_blacklist(self, phones) -> None:
        with self.lock:
            self.blacklist = {digits(p) for p in phones}

    def chance(self, rate: float) -> bool:
        if rate <= 0:
            return False
        with self.lock:
            return self.rng.random() < rate

    def record(self, dialect: str, entries: list[dict[str, Any]]) -> None:
        if not entries:
            return
        now = time.time()
        lines = []
        for e in entries:
            e = {"provider": dialect, **e, "ts": now}
            lines.append(json.dumps(e, ensure_ascii=False) + "\n")
        with self.lock:
            self.accepted.extend(json.loads(x) for x in lines)
            if self._log:
                self._log.write("".join(lines))
                self._log.flush()

    @staticmethod
    def new_id() -> str:
        return str(uuid.uuid4())

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {"accepted": len(self.accepted), "requests": len(self.request_times),
                    "request_times": [t for _, t in self.request_times],
                    "blacklist": sorted(self.blacklist)}

    # --- lifecycle ----------------------------------------------------------------------
    def start(self) -> "Emulator":
        # a short poll interval: stop() waits for the serve loop to notice, and tests stop often
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self.server.serve_forever()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        if self._log:
            self._log.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def _handler(emu: Emulator):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # else Nagle + delayed ACK add ~40 ms to every answer

        def log_message(self, fmt, *args):  # quiet: the accepted log is the record
            pass

        def do_GET(self):
            if self.path.startswith("/_emulator/stats"):
                return self._write(Reply.json(200, emu.stats()))
            self._write(Reply.json(404, {"Message": "not found"}))

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            req = Request(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            if self.path.startswith("/_emulator/blacklist"):
                emu.set_blacklist(json.loads(body or b"[]"))
                return self._write(Reply.json(200, {"blacklist": sorted(emu.blacklist)}))
            dialect = next((d for d in emu.dialects if d.matches(req)), None)
            if dialect is None:
                return self._write(Reply.json(404, {"Message": f"no API at {self.path}"}))
            with emu.lock:
                emu.request_times.append((dialect.name, time.monotonic()))
            if emu.options.latency_ms:
                time.sleep(emu.options.latency_ms / 1000)
            if emu.chance(emu.options.fail_rate):
                return self._write(Reply.json(503, {"Message": "injected failure"}, headers={"Retry-After": "0"}))
            if emu.chance(emu.options.throttle_rate):
                return self._write(dialect.throttled(req))
            try:
                reply = dialect.handle(req)
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                reply = Reply.json(400, {"Message": f"malformed request: {exc}"})
            emu.record(dialect.name, reply.accepted)
            if reply.accepted and emu.chance(emu.options.drop_rate):
                self.close_connection = True
                self.connection.shutdown(2)  # taken, but the client never hears it
                return
            if reply.accepted and emu.chance(emu.options.timeout_rate):
                time.sleep(emu.options.stall_ms / 1000)
            if reply.accepted and emu.chance(emu.options.gateway_timeout_rate):
                reply = Reply.json(504, {"Message": "gateway timeout"})  # taken, but the answer is lost
            self._write(reply)

        def _write(self, reply: Reply) -> None:
            try:
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(len(reply.body)))
                for k, v in reply.headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(reply.body)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

    return Handler
