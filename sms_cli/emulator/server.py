"""A local HTTP server that speaks the providers' APIs, for tests and for trying pipelines.

Each API is a `Dialect` (one module each); this module owns what they share: reading HTTP,
routing, the blacklist, the templates it was told, phone number readings, fault injection,
the accepted-messages log and request statistics. Faults that happen before processing (503,
throttling) leave nothing logged; faults after processing (stall past the client's timeout,
dropped connection, HTTP 504, the provider's own server error) log the messages, which is
exactly the case sms-cli must report as unknown rather than resend. A client cannot tell the
two 5xx apart, so sms-cli reads every 5xx as unknown; only throttling is safe to retry.
One switch per class of provider answer (README "Provider answers"): --account-limit,
--server-error-rate, --blocked-word, --partial-retcode, --fail-content-fields.

Whatever arrives, the answer is an HTTP response, never a traceback: a request that cannot be
read (bad framing, a body that is not what the API takes) gets a 400 in the API's error shape.

Delivery is simulated for the receipt APIs: every accepted message (lost answers included)
gets a delivery report `--receipt-delay-ms` after it was taken, failed for the numbers of
`--undeliverable` (with their operator code) and for a `--undelivered-rate` share of the others,
delivered otherwise. The outcome is a pure function of the message and the seed, so asking twice
gives the same answer. Each dialect answers its provider's receipt queries from `deliveries`.
"""
from __future__ import annotations

import hashlib
import json
import random
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ..core.settings import Template
from ..core.errors import SmsCliError
from ..store.paths import open_private_append
from ..validate.segments import count
from ..validate.validator import render
from .aliyun import AliyunDialect
from .tencent import TencentDialect
from .uspeedo import USpeedoDialect
from .wire import (CODE_TEXT, DEFAULT_KEY_ID, DEFAULT_KEY_SECRET, DELIVERED_CODE, MAX_BODY, OPTED_OUT_CODE,
                   UNDELIVERED_RATE_CODE, BadRequest, Delivery, Reply, Request, digits)

# The dialects, tried in order; adding a provider's dialect is one line here. Tencent comes
# before Aliyun: both answer at "/" with form bodies, and only Tencent's requests carry
# X-TC-Action or SecretId.
DIALECTS = [TencentDialect, AliyunDialect, USpeedoDialect]




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
    # template id -> Template; when given, unknown ids and wrong parameter counts are refused
    templates: dict[str, Template] | None = None
    # simulated delivery (the receipt APIs)
    undelivered_rate: float = 0.0  # share of accepted messages whose delivery fails (EXPIRED)
    receipt_delay_ms: float = 1000.0  # a message's delivery report exists this long after it was taken
    undeliverable: dict[str, str] = field(default_factory=dict)  # number digits -> operator code
    # the provider answer classes of README "Provider answers", one switch each:
    account_limit: int | None = None  # after this many messages taken, the account refuses (fatal class)
    server_error_rate: float = 0.0  # process, then answer the provider's server error (unknown class)
    blocked_words: set[str] = field(default_factory=set)  # a template variable holding one: content control
    partial_retcode: int | None = None  # uSpeedo: a partly refused request answers this RetCode, SessionNo kept
    # uSpeedo: the Target fields a FailContent entry echoes (None: all); ("Phone",) makes entries
    # that may name two rows (ambiguous)
    fail_content_fields: tuple[str, ...] | None = None


class Emulator:
    def __init__(self, options: Options):
        if not 0 <= int(options.port) <= 65535:
            raise SmsCliError(f"--port {options.port}: must be a port number from 0 to 65535")
        self.options = options
        self.blacklist = {digits(p) for p in options.blacklist}
        self.templates = options.templates
        self.rng = random.Random(options.seed)
        self.lock = threading.Lock()
        self.accepted: list[dict[str, Any]] = []
        self.request_times: list[tuple[str, float]] = []  # (dialect, monotonic time)
        self.receipt_requests = 0  # requests to the receipt APIs (also in request_times)
        self.reserved: dict[str, int] = {}  # dialect -> messages counted against --account-limit
        self.undeliverable = {digits(p): c for p, c in options.undeliverable.items()}
        # indexes of `accepted` for the receipt APIs, built when one is first asked (a send-only
        # run pays nothing): (dialect, ref) and (dialect, number digits) -> positions
        self._by_ref: dict[tuple[str, str], list[int]] = {}
        self._by_phone: dict[tuple[str, str], list[int]] = {}
        self._indexed = 0
        self._last: dict[str, Any] | None = None  # the last entry indexed (a cleared list is noticed)
        self._pulled: set[int] = set()  # positions a pull-once queue (Tencent) handed out
        self.dialects = [cls(self) for cls in DIALECTS]
        self._log = None
        if options.log_path:
            try:
                self._log = open_private_append(options.log_path)  # phone numbers: 0600
            except OSError as exc:
                raise SmsCliError(f"--log {options.log_path}: cannot open: {exc.strerror}") from None
        try:
            self.server = _Server((options.host, options.port), _handler(self))
        except (OSError, OverflowError, ValueError) as exc:
            if self._log:
                self._log.close()
            reason = getattr(exc, "strerror", None) or str(exc)
            raise SmsCliError(f"cannot listen on {options.host}:{options.port}: {reason}") from None
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

    def blocked(self, params) -> bool:
        """Does a template variable hold one of --blocked-words (case-insensitive)?"""
        words = self.options.blocked_words
        if not words:
            return False
        values = params.values() if isinstance(params, dict) else (params or [])
        return any(w.lower() in str(v).lower() for v in values for w in words)

    def reserve(self, dialect: str, wanted: int, *, whole: bool) -> int:
        """How many of `wanted` messages --account-limit lets `dialect` take now (all of them
        without a limit), counted at once so concurrent requests cannot both take the last
        room; `whole`: all or none (an API with one answer for the whole request)."""
        limit = self.options.account_limit
        if limit is None:
            return wanted
        with self.lock:
            used = self.reserved.get(dialect, 0)
            granted = min(wanted, max(0, limit - used))
            if whole and granted < wanted:
                granted = 0
            self.reserved[dialect] = used + granted
        return granted

    def chance(self, rate: float) -> bool:
        if rate <= 0:
            return False
        with self.lock:
            return self.rng.random() < rate

    # --- templates (--templates) -----------------------------------------------------------
    def knows_template(self, template_id: str) -> bool:
        """Without --templates every id is taken."""
        return self.templates is None or template_id in self.templates

    def template_problem(self, template_id: str, params) -> tuple[str, str] | None:
        """None when no templates were given or `params` fit the template; else
        ("unknown", reason) or ("params", reason). `params`: a list (positional APIs) or a
        dict of named values (Aliyun)."""
        if self.templates is None:
            return None
        tpl = self.templates.get(template_id)
        if tpl is None:
            return "unknown", f"template {template_id} does not exist"
        if isinstance(params, dict):
            if tpl.names is not None:
                missing = [n for n in tpl.names if n not in params]
                if missing:
                    return "params", f"template {template_id} needs parameter {missing[0]!r}"
            elif tpl.count is not None and len(params) < tpl.count:
                return "params", f"template {template_id} takes {tpl.count} parameters, got {len(params)}"
        elif tpl.count is not None and len(params) != tpl.count:
            return "params", f"template {template_id} takes {tpl.count} parameters, got {len(params)}"
        return None

    def parts(self, template_id: str, params) -> int:
        """Billed SMS parts: from the template's text when it is known, else 1."""
        tpl = (self.templates or {}).get(template_id)
        if tpl is None or tpl.text is None:
            return 1
        try:
            return count(render(tpl, params)).parts
        except (ValueError, TypeError):
            return 1

    # --- the accepted log ----------------------------------------------------------------
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
                    "receipt_requests": self.receipt_requests,
                    "blacklist": sorted(self.blacklist)}

    # --- simulated delivery (the receipt APIs) ----------------------------------------------
    def receipt_request(self) -> None:
        with self.lock:
            self.receipt_requests += 1

    def delivery(self, entry: dict[str, Any]) -> Delivery:
        """The delivery of an accepted message: the same answer every time it is asked."""
        opts = self.options
        phone = entry["phone"]
        code = self.undeliverable.get(phone[1:])
        if code is None and phone[1:] in self.blacklist:  # taken by an API that does not refuse it (Aliyun)
            code = OPTED_OUT_CODE
        if code is None and opts.undelivered_rate > 0:
            seed = f"{opts.seed}|{entry.get('ref')}|{phone}|{entry.get('user_id')}|{entry.get('ts')}"
            draw = int.from_bytes(hashlib.blake2b(seed.encode("utf-8"), digest_size=8).digest(), "big") / 2 ** 64
            if draw < opts.undelivered_rate:
                code = UNDELIVERED_RATE_CODE
        return Delivery(entry, code is None, code or DELIVERED_CODE, CODE_TEXT.get(code or DELIVERED_CODE, code),
                        float(entry.get("ts", 0)) + opts.receipt_delay_ms / 1000,
                        self.parts(entry.get("template_id", ""), entry.get("params") or []))

    def _index(self) -> None:
        """Bring the receipt indexes up to date with `accepted` (under self.lock). A list that was
        cleared (tests do, between cases) is indexed from the start again."""
        n = len(self.accepted)
        if n < self._indexed or (self._indexed and self.accepted[self._indexed - 1] is not self._last):
            self._by_ref, self._by_phone, self._indexed, self._pulled = {}, {}, 0, set()
        for i in range(self._indexed, n):
            e = self.accepted[i]
            self._by_ref.setdefault((e["provider"], str(e.get("ref"))), []).append(i)
            self._by_phone.setdefault((e["provider"], e["phone"][1:]), []).append(i)
        self._indexed = n
        self._last = self.accepted[n - 1] if n else None

    def deliveries_by_ref(self, dialect: str, ref: str) -> list[Delivery]:
        """The messages `dialect` took under submission id `ref`, in the order taken."""
        with self.lock:
            self._index()
            entries = [self.accepted[i] for i in self._by_ref.get((dialect, ref), ())]
        return [self.delivery(e) for e in entries]

    def deliveries_to(self, dialect: str, phone_digits: str) -> list[Delivery]:
        """The messages `dialect` took for one number, in the order taken."""
        with self.lock:
            self._index()
            entries = [self.accepted[i] for i in self._by_phone.get((dialect, phone_digits), ())]
        return [self.delivery(e) for e in entries]

    def pull_deliveries(self, dialect: str, limit: int, now: float) -> list[Delivery]:
        """A pull-once queue: up to `limit` delivery reports not handed out before, oldest first."""
        out: list[Delivery] = []
        with self.lock:
            self._index()
            for i, e in enumerate(self.accepted):
                if len(out) >= limit:
                    break
                if i in self._pulled or e["provider"] != dialect:
                    continue
                d = self.delivery(e)
                if d.ready(now):
                    self._pulled.add(i)
                    out.append(d)
        return out

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


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        """One line instead of socketserver's traceback; a client that went away is no news."""
        exc = sys.exc_info()[1]
        if not isinstance(exc, (ConnectionError, TimeoutError)):
            sys.stderr.write(f"sms-cli emulator: request from {client_address[0]} failed: "
                             f"{type(exc).__name__}: {exc}\n")


def _handler(emu: Emulator):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        default_request_version = "HTTP/1.0"  # an unreadable request line still gets a status line
        disable_nagle_algorithm = True  # else Nagle + delayed ACK add ~40 ms to every answer

        def log_message(self, fmt, *args):  # quiet: the accepted log is the record
            pass

        def do_GET(self):
            self._serve("GET")

        def do_POST(self):
            self._serve("POST")

        def _serve(self, method: str) -> None:
            try:
                body = self._read_body(method)
            except BadRequest as exc:
                self.close_connection = True  # the framing is lost: no next request on it
                return self._write(Reply.json(400, {"Message": f"malformed request: {exc}"}))
            req = Request(method, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            try:
                reply = self._route(req)
            except Exception as exc:  # a bug in a dialect: still an answer, never a traceback
                reply = Reply.json(500, {"Message": f"emulator error: {type(exc).__name__}: {exc}"})
            if reply is not None:
                self._write(reply)

        def _read_body(self, method: str) -> bytes:
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                return self._read_chunked()
            lengths = self.headers.get_all("Content-Length") or []
            if not lengths:
                if method == "POST":
                    raise BadRequest("Content-Length required")
                return b""
            value = lengths[0].strip()
            if len(set(v.strip() for v in lengths)) > 1 or not (value.isascii() and value.isdigit()):
                raise BadRequest(f"bad Content-Length {', '.join(lengths)!r}")
            size = int(value)
            if size > MAX_BODY:
                raise BadRequest(f"body of {size} bytes is larger than {MAX_BODY}")
            body = self.rfile.read(size)
            if len(body) < size:
                raise BadRequest(f"body shorter than its Content-Length ({len(body)} < {size})")
            return body

        def _read_chunked(self) -> bytes:
            chunks, total = [], 0
            while True:
                line = self.rfile.readline(1024).split(b";", 1)[0].strip()
                try:
                    size = int(line, 16)
                except ValueError:
                    raise BadRequest("bad chunk size in a chunked body") from None
                if size == 0:
                    while self.rfile.readline(1024).strip():  # trailers
                        pass
                    return b"".join(chunks)
                total += size
                if size < 0 or total > MAX_BODY:
                    raise BadRequest("chunked body too large")
                chunk = self.rfile.read(size)
                if len(chunk) < size or self.rfile.readline(3).strip():
                    raise BadRequest("truncated chunked body")
                chunks.append(chunk)

        def _route(self, req: Request) -> Reply | None:
            if req.path.startswith("/_emulator/stats"):
                return Reply.json(200, emu.stats())
            if req.path.startswith("/_emulator/blacklist") and req.method == "POST":
                try:
                    phones = req.json() if req.body else []
                except BadRequest as exc:
                    return Reply.json(400, {"Message": str(exc)})
                if not isinstance(phones, list) or not all(isinstance(p, str) for p in phones):
                    return Reply.json(400, {"Message": "expected a JSON array of numbers"})
                emu.set_blacklist(phones)
                return Reply.json(200, {"blacklist": sorted(emu.blacklist)})
            try:
                dialect = next((d for d in emu.dialects if d.matches(req)), None)
            except BadRequest as exc:
                return Reply.json(400, {"Message": f"malformed request: {exc}"})
            if dialect is None:
                return Reply.json(404, {"Message": f"no API at {req.method} {req.path}"})
            with emu.lock:
                emu.request_times.append((dialect.name, time.monotonic()))
            if emu.options.latency_ms:
                time.sleep(emu.options.latency_ms / 1000)
            if emu.chance(emu.options.fail_rate):
                return Reply.json(503, {"Message": "injected failure"}, headers={"Retry-After": "0"})
            if emu.chance(emu.options.throttle_rate):
                return dialect.throttled(req)
            try:
                reply = dialect.handle(req)
            except BadRequest as exc:
                reply = dialect.malformed(req, str(exc))
            emu.record(dialect.name, reply.accepted)
            if reply.accepted and emu.chance(emu.options.server_error_rate):
                return dialect.server_error(req)  # taken, but the answer is the provider's server error
            if reply.accepted and emu.chance(emu.options.drop_rate):
                self.close_connection = True
                self.connection.shutdown(2)  # taken, but the client never hears it
                return None
            if reply.accepted and emu.chance(emu.options.timeout_rate):
                time.sleep(emu.options.stall_ms / 1000)
            if reply.accepted and emu.chance(emu.options.gateway_timeout_rate):
                reply = Reply.json(504, {"Message": "gateway timeout"})  # taken, but the answer is lost
            return reply

        def _write(self, reply: Reply) -> None:
            try:
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(len(reply.body)))
                for k, v in reply.headers.items():
                    self.send_header(k, v)
                if self.close_connection:
                    self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(reply.body)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

    return Handler
