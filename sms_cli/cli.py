"""Command line: arguments in, exit code out. No HTTP and no row parsing here."""
from __future__ import annotations

import logging
import signal
import sys
from functools import wraps
from typing import List, Optional

import typer

from . import __version__
from .errors import ExitCode, SmsCliError

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode=None,
                  context_settings={"help_option_names": ["-h", "--help"]},
                  help="Bulk SMS sender: validate rows, batch them per provider, send, resend failures.")
config_app = typer.Typer(no_args_is_help=True, help="Inspect the configuration.")
app.add_typer(config_app, name="config")


def err(text: str) -> None:
    # a file name that is not UTF-8 must not crash a strict stderr
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    sys.stderr.write(text.rstrip("\n") + "\n")
    sys.stderr.flush()


def guarded(fn):
    """User errors become one line on stderr and their exit code; never a traceback."""
    @wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except SmsCliError as exc:
            err(f"sms-cli: error: {exc}")
            raise typer.Exit(int(exc.exit_code)) from None
        except (typer.Exit, typer.Abort, KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:  # a bug: still one line, and the journal holds what was sent
            err(f"sms-cli: internal error: {type(exc).__name__}: {exc} (please report it; "
                "the journal holds what was sent)")
            raise typer.Exit(int(ExitCode.FATAL)) from None
    return wrapper


def _version(value: bool):
    if value:
        print(f"sms-cli {__version__}")
        raise typer.Exit()


@app.callback()
def root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                      help="Show the version and exit.")):
    """sms-cli: rows in, provider batches out, failures file back in."""


def _logging(verbose: bool, secrets=frozenset()) -> None:
    from .logs import setup_logging

    setup_logging(verbose, secrets)


INPUT = typer.Argument(..., help="CSV, JSON or JSON Lines file, or - for stdin.")
CONFIG = typer.Option(None, "--config", "-c", help="Config file (default: $SMS_CLI_CONFIG, then ./sms-cli.yaml).")
PROVIDER = typer.Option(None, "--provider", "-p", help="Provider section of the config.")
FORMAT = typer.Option(None, "--format", "-f", help="csv, json, jsonl or lines (default: from the extension).")
TEMPLATE = typer.Option(None, "--template", "-t", help="Template id for rows that have none.")
PARAM = typer.Option([], "--param", help="Template parameter for rows that have none (repeat for each).")
SENDER = typer.Option(None, "--sender-id", help="Sender id for rows that have none.")
REGION = typer.Option(None, "--default-region", help="Region for national numbers, e.g. HK.")
LIMIT = typer.Option(None, "--limit", min=0, help="Send at most N messages in this invocation; the "
                     "rest are deferred and the same command run again continues.")
DEDUPE = typer.Option(False, "--dedupe", help="Skip rows repeating an earlier row's number, template and "
                      "parameters (in this input or already accepted from it).")
JSON = typer.Option(False, "--json", help="Machine-readable output on stdout.")
SUPPRESS = typer.Option(None, "--suppress", help="Suppression list file (default: the config's suppression_list).")
QUIET_HOURS = typer.Option(None, "--quiet-hours", help="Recipients' local quiet hours, e.g. 21:00-08:00: rows "
                           "inside them are deferred.")
ALLOW = typer.Option(None, "--allow-countries", help="Only these ISO regions, comma-separated (e.g. SG,HK).")
BLOCK = typer.Option(None, "--block-countries", help="Never these ISO regions, comma-separated.")
VALID_FOR = typer.Option(None, "--valid-for", help="Rows not sent within this time of the campaign's first "
                         "run expire (90s, 30m, 2h).")
MAX_COST = typer.Option(None, "--max-cost", min=0, help="Refuse to send when the estimated cost (prices: in "
                        "config) is over this.")
MAX_PARTS = typer.Option(None, "--max-parts", min=0, help="Refuse to send when the estimated billable parts "
                         "are over this.")


def _guards(suppress=None, quiet_hours=None, allow=None, block=None, valid_for=None, max_cost=None, max_parts=None):
    from .guards import GuardOptions

    return GuardOptions(suppress, quiet_hours, allow, block, valid_for, max_cost, max_parts)


def _request(input, config, provider, fmt, template, param, sender_id, default_region, **kw):
    from .commands import SendRequest

    return SendRequest(input=input, config=config, provider=provider, fmt=fmt, template=template,
                       params=tuple(param), sender_id=sender_id, region=default_region, **kw)


@app.command()
@guarded
def send(
    input: str = INPUT, config: Optional[str] = CONFIG, provider: Optional[str] = PROVIDER,
    fmt: Optional[str] = FORMAT, template: Optional[str] = TEMPLATE, param: List[str] = PARAM,
    sender_id: Optional[str] = SENDER, default_region: Optional[str] = REGION,
    failures: Optional[str] = typer.Option(None, "--failures", help="Failures file (default: <input>.failed.<ext>)."),
    journal: Optional[str] = typer.Option(None, "--journal", help="Journal file (default: <input>.journal.sqlite)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Validate and batch, print the plan, send nothing."),
    only_retryable: bool = typer.Option(False, "--only-retryable", help="Skip failures-file rows marked retryable: no."),
    retry_unknown: bool = typer.Option(False, "--retry-unknown", help="Resend rows whose outcome is unknown (may duplicate)."),
    fresh: bool = typer.Option(False, "--fresh", help="Start the working set over: accepted messages may be sent again."),
    yes: bool = typer.Option(False, "--yes", help="Confirm --fresh when the journal has accepted rows."),
    continue_edited: bool = typer.Option(False, "--continue-edited", help="The input changed after an unfinished "
                                         "run: send only the messages that run did not accept."),
    concurrency: int = typer.Option(4, "--concurrency", min=1, max=64, help="Requests in parallel."),
    limit: Optional[int] = LIMIT, dedupe: bool = DEDUPE, json_out: bool = JSON,
    suppress: Optional[str] = SUPPRESS, quiet_hours: Optional[str] = QUIET_HOURS,
    allow_countries: Optional[str] = ALLOW, block_countries: Optional[str] = BLOCK,
    valid_for: Optional[str] = VALID_FOR, max_cost: Optional[float] = MAX_COST, max_parts: Optional[int] = MAX_PARTS,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing on success."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log each request to stderr (numbers masked)."),
):
    """Send the rows of INPUT; rows not accepted go to a failures file you can send again.

    Example: sms-cli send samples/recipients.csv --provider uspeedo
    """
    from . import commands, output
    from .send import Options

    req = _request(input, config, provider, fmt, template, param, sender_id, default_region,
                   failures=failures, journal=journal, fresh=fresh, yes=yes, continue_edited=continue_edited,
                   guards=_guards(suppress, quiet_hours, allow_countries, block_countries, valid_for, max_cost,
                                  max_parts),
                   options=Options(concurrency=concurrency, limit=limit, dedupe=dedupe,
                                   only_retryable=only_retryable, retry_unknown=retry_unknown,
                                   dry_run=dry_run))
    view = output.RunView(quiet=quiet, json_out=json_out, dry_run=dry_run)
    _logging(verbose)
    summary = commands.send(req, progress=view.progress, on_start=view.started)
    view.finish(summary)
    raise typer.Exit(_plan_exit(summary) if dry_run else int(summary.exit_code()))


@app.command()
@guarded
def plan(
    input: str = INPUT, config: Optional[str] = CONFIG, provider: Optional[str] = PROVIDER,
    fmt: Optional[str] = FORMAT, template: Optional[str] = TEMPLATE, param: List[str] = PARAM,
    sender_id: Optional[str] = SENDER, default_region: Optional[str] = REGION,
    limit: Optional[int] = LIMIT, dedupe: bool = DEDUPE, json_out: bool = JSON,
    suppress: Optional[str] = SUPPRESS, quiet_hours: Optional[str] = QUIET_HOURS,
    allow_countries: Optional[str] = ALLOW, block_countries: Optional[str] = BLOCK,
    valid_for: Optional[str] = VALID_FOR,
):
    """Show what `send` would do (same as send --dry-run): rows the ledger and the guards would
    stop, requests, numbers per request, parts and cost per country, and for templates with
    text in config the length, encoding and billable parts.

    Example: sms-cli plan samples/recipients.csv --provider tencent
    """
    from . import commands, output
    from .send import Options

    req = _request(input, config, provider, fmt, template, param, sender_id, default_region,
                   options=Options(limit=limit, dedupe=dedupe, dry_run=True),
                   guards=_guards(suppress, quiet_hours, allow_countries, block_countries, valid_for))
    view = output.RunView(json_out=json_out, dry_run=True)
    summary = commands.send(req, on_start=view.started)
    view.finish(summary)
    raise typer.Exit(_plan_exit(summary))


def _plan_exit(summary) -> int:
    """A plan exits like validate: 1 when some rows are invalid."""
    from .outcomes import Fate

    return 1 if summary.n(Fate.INVALID) else 0


@app.command()
@guarded
def validate(
    input: str = INPUT, config: Optional[str] = CONFIG, provider: Optional[str] = PROVIDER,
    fmt: Optional[str] = FORMAT, template: Optional[str] = TEMPLATE, param: List[str] = PARAM,
    sender_id: Optional[str] = SENDER, default_region: Optional[str] = REGION, json_out: bool = JSON,
    suppress: Optional[str] = SUPPRESS, allow_countries: Optional[str] = ALLOW,
    block_countries: Optional[str] = BLOCK,
):
    """Check every row as `send` would (suppression list and country rules included); print
    each problem with its line. Exit 0 when all rows are valid, 1 otherwise.

    Example: sms-cli validate samples/recipients.csv
    """
    import json as _json

    from . import commands
    from .report import shown

    problems = 0
    gen = commands.validate(_request(input, config, provider, fmt, template, param, sender_id, default_region,
                                     guards=_guards(suppress, None, allow_countries, block_countries)))
    try:
        while True:
            raw, bad = next(gen)
            problems += 1
            if json_out:
                print(_json.dumps({"schema_version": 1, "line": bad.line, "error_code": bad.code,
                                   "error_message": bad.reason, "row": raw.record}, ensure_ascii=True))
            else:
                print(f"{shown(input)}:{bad.line}: {shown(bad.code)}: {shown(bad.reason)}")
    except StopIteration as done:
        rows = done.value
    err(f"{rows} rows, {rows - problems} valid, {problems} invalid")
    raise typer.Exit(1 if problems else 0)


suppress_app = typer.Typer(no_args_is_help=True, help="Edit and query the suppression list (opted-out numbers).")
app.add_typer(suppress_app, name="suppress")
LIST = typer.Option(None, "--list", help="The list file (default: the config's suppression_list).")


def _suppression(config, path):
    from .config import load_config
    from .guards import GuardOptions, Suppression, suppression_path

    cfg = load_config(config, strict_env=False)
    where = suppression_path(cfg, GuardOptions(suppress=path))
    if where is None:
        raise SmsCliError("no suppression list: set suppression_list in config or pass --list PATH")
    return Suppression(where, cfg.default_region), cfg.default_region


def _numbers(numbers, region):
    from .guards import normalise
    from .report import shown

    out = []
    for n in numbers:
        e164 = normalise(n, region)
        if e164 is None:
            raise SmsCliError(f"not a phone number: {shown(n)}")
        out.append(e164)
    return out


@suppress_app.command("add")
@guarded
def suppress_add(numbers: List[str] = typer.Argument(..., help="Numbers, in any spelling."),
                 config: Optional[str] = CONFIG, path: Optional[str] = LIST,
                 note: str = typer.Option("", "--note", help="A comment written beside each number.")):
    """Add numbers to the suppression list; they are never sent again.

    Example: sms-cli suppress add +85255311111 "(65) 9123 4567" --note "asked by phone"
    """
    lst, region = _suppression(config, path)
    for n in _numbers(numbers, region):
        print(f"{n}: {'added' if lst.add(n, note) else 'already listed'}")


@suppress_app.command("remove")
@guarded
def suppress_remove(numbers: List[str] = typer.Argument(..., help="Numbers, in any spelling."),
                    config: Optional[str] = CONFIG, path: Optional[str] = LIST):
    """Remove numbers from the suppression list.

    Example: sms-cli suppress remove +85255311111
    """
    lst, region = _suppression(config, path)
    for n in _numbers(numbers, region):
        print(f"{n}: {'removed' if lst.remove(n) else 'not listed'}")


@suppress_app.command("list")
@guarded
def suppress_list(config: Optional[str] = CONFIG, path: Optional[str] = LIST):
    """Print every listed number (E.164), one a line.

    Example: sms-cli suppress list > opted-out.txt
    """
    lst, _ = _suppression(config, path)
    for n in sorted(lst.numbers):
        print(n)


@suppress_app.command("check")
@guarded
def suppress_check(numbers: List[str] = typer.Argument(..., help="Numbers, in any spelling."),
                   config: Optional[str] = CONFIG, path: Optional[str] = LIST):
    """Say whether each number is listed; exit 1 when any is.

    Example: sms-cli suppress check +85255311111
    """
    lst, region = _suppression(config, path)
    listed = 0
    for n in _numbers(numbers, region):
        hit = n in lst
        listed += hit
        print(f"{n}: {'suppressed' if hit else 'not listed'}")
    raise typer.Exit(1 if listed else 0)


# The emulator command lives with the emulator (its options are the emulator's business).
from .emulator.command import emulator as _emulator_command  # noqa: E402

app.command("emulator")(guarded(_emulator_command))


@app.command()
def providers():
    """List the supported provider types.

    Example: sms-cli providers
    """
    from .providers import PROVIDERS, provider_class

    for name in PROVIDERS:
        cls = provider_class(name)
        print(f"{name:8}  {cls.max_batch:>5} numbers/request  {cls.description}")


@config_app.command("check")
@guarded
def config_check(config: Optional[str] = typer.Option(None, "--config", "-c", help="Config file.")):
    """Load the config, resolve ${VAR}s and list each provider.

    Example: sms-cli config check --config sms-cli.yaml
    """
    from .commands import config_check as check

    lines, ok = check(config)
    for line in lines:
        print(line)
    raise typer.Exit(0 if ok else int(ExitCode.USAGE))


def main() -> None:
    # A signal before a run installs its own handlers (while the input is read and hashed, say)
    # still exits 130/143 without a traceback; nothing has been sent yet at that point.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(int(ExitCode.SIGTERM)))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(int(ExitCode.SIGINT)))
    try:
        app()
    except SmsCliError as exc:  # raised outside a command (should not happen, but never a traceback)
        err(f"sms-cli: error: {exc}")
        sys.exit(int(exc.exit_code))
    except KeyboardInterrupt:  # a Ctrl-C that slipped between handlers
        sys.exit(int(ExitCode.SIGINT))
