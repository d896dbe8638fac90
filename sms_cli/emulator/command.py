"""`sms-cli emulator`: the options of the local provider server (registered in cli.py)."""
from __future__ import annotations

from typing import List, Optional

import typer

from .server import Emulator
from .server import Options as EmuOptions
from .templates import load_templates
from .wire import DEFAULT_KEY_ID, DEFAULT_KEY_SECRET, load_blacklist, load_undeliverable


def emulator(
    port: int = typer.Option(8787, "--port", help="Port to listen on, 0-65535 (0 picks a free one)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (keep 127.0.0.1 unless "
                             "another machine must reach it)."),
    blacklist: List[str] = typer.Option([], "--blacklist", help="Numbers to reject (repeat, comma-separate, or @file)."),
    templates: Optional[str] = typer.Option(None, "--templates", metavar="FILE",
                                            help="YAML of the templates it knows (templates: {ID: {params: "
                                                 "[names] or N, text: ...}}; an sms-cli config file works): "
                                                 "unknown ids and wrong parameter counts are refused."),
    fail_rate: float = typer.Option(0.0, "--fail-rate", min=0, max=1, help="Share of requests answered HTTP 503."),
    throttle_rate: float = typer.Option(0.0, "--throttle-rate", min=0, max=1, help="Share answered with the provider's throttling error."),
    timeout_rate: float = typer.Option(0.0, "--timeout-rate", min=0, max=1, help="Share taken, then answered after --stall-ms."),
    drop_rate: float = typer.Option(0.0, "--drop-rate", min=0, max=1, help="Share taken, then the connection dropped."),
    gateway_timeout_rate: float = typer.Option(0.0, "--gateway-timeout-rate", min=0, max=1,
                                               help="Share taken, then answered HTTP 504."),
    latency_ms: float = typer.Option(0.0, "--latency-ms", min=0, help="Delay before every answer."),
    stall_ms: float = typer.Option(5000.0, "--stall-ms", min=0,
                                   help="How long a --timeout-rate answer is held back, in milliseconds."),
    log: str = typer.Option("emulator-accepted.jsonl", "--log", help="Accepted messages, one JSON line each."),
    key_id: Optional[str] = typer.Option(None, "--key-id", help="Access key id / SecretId it accepts."),
    key_secret: Optional[str] = typer.Option(None, "--key-secret", envvar="SMS_EMULATOR_SECRET", help="Secret it verifies signatures with."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed for the injected failures."),
    undeliverable: List[str] = typer.Option([], "--undeliverable", metavar="NUMBER[:CODE]",
                                            help="Numbers whose messages are taken but not delivered: their "
                                                 "receipts say failed with CODE (default UNDELIV). Repeat, "
                                                 "comma-separate, or @file."),
    undelivered_rate: float = typer.Option(0.0, "--undelivered-rate", min=0, max=1, metavar="SHARE",
                                           help="Share of the other accepted messages not delivered (EXPIRED)."),
    receipt_delay_ms: float = typer.Option(1000.0, "--receipt-delay-ms", min=0, metavar="MS",
                                           help="How long after a message is taken its delivery receipt exists."),
    account_limit: Optional[int] = typer.Option(None, "--account-limit", min=0, metavar="N",
                                                help="After N messages taken the account refuses (Aliyun "
                                                     "isv.DAY_LIMIT_CONTROL, Tencent LimitExceeded.DailyLimit, "
                                                     "uSpeedo 215398)."),
    server_error_rate: float = typer.Option(0.0, "--server-error-rate", min=0, max=1, metavar="SHARE",
                                            help="Share taken, then answered with the provider's server error "
                                                 "(uSpeedo 215400 at HTTP 200, Tencent InternalError.Timeout, "
                                                 "Aliyun isp.SYSTEM_ERROR)."),
    blocked_word: List[str] = typer.Option([], "--blocked-word", metavar="WORD",
                                           help="A template variable holding WORD is refused as content (Aliyun "
                                                "isv.BLACK_KEY_CONTROL_LIMIT, Tencent FailedOperation."
                                                "ContainSensitiveWord, uSpeedo FailContent). Repeat."),
    partial_retcode: Optional[int] = typer.Option(None, "--partial-retcode", metavar="CODE",
                                                  help="uSpeedo: a request partly refused answers this RetCode "
                                                       "(its SessionNo and SuccessCount kept)."),
    fail_content_fields: Optional[str] = typer.Option(None, "--fail-content-fields", metavar="F1,F2",
                                                      help="uSpeedo: the Target fields FailContent echoes "
                                                           "(default all; Phone alone makes ambiguous entries)."),
):
    """Run a local server speaking the uSpeedo, Tencent and Aliyun APIs (send and delivery receipts).

    Example: sms-cli emulator --port 8787 --blacklist +85255310000 --fail-rate 0.1 --undeliverable +6591234567
    """
    # every problem below is an SmsCliError: one line and exit code 2, never a traceback
    opts = EmuOptions(host=host, port=port, blacklist=load_blacklist(blacklist), fail_rate=fail_rate,
                      throttle_rate=throttle_rate, timeout_rate=timeout_rate, drop_rate=drop_rate,
                      gateway_timeout_rate=gateway_timeout_rate,
                      latency_ms=latency_ms, stall_ms=stall_ms, log_path=log,
                      key_id=key_id or DEFAULT_KEY_ID, key_secret=key_secret or DEFAULT_KEY_SECRET, seed=seed,
                      templates=load_templates(templates) if templates else None,
                      undeliverable=load_undeliverable(undeliverable), undelivered_rate=undelivered_rate,
                      receipt_delay_ms=receipt_delay_ms, account_limit=account_limit,
                      server_error_rate=server_error_rate, blocked_words=set(blocked_word),
                      partial_retcode=partial_retcode,
                      fail_content_fields=tuple(f.strip() for f in fail_content_fields.split(",") if f.strip())
                      if fail_content_fields is not None else None)
    emu = Emulator(opts)
    known = f"; {len(opts.templates)} templates" if opts.templates else ""
    print(f"sms-cli emulator listening on {emu.url} (uSpeedo: {emu.url}/api, Tencent and Aliyun: {emu.url}/); "
          f"accepted messages -> {log}{known}", flush=True)
    try:
        emu.serve_forever()  # until SIGINT/SIGTERM (main() turns both into a clean exit)
    finally:
        emu.stop()
