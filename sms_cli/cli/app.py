"""Command line: arguments in, exit code out. No HTTP and no row parsing here."""
from __future__ import annotations

import enum
import inspect
import re
import sys
from functools import wraps
from typing import List, Optional

import typer
from typer.core import TyperCommand

from .. import __version__
from ..campaign import SendRequest
from ..config.load import find_config, load_config, user_config_path
from ..core.errors import ExitCode, SmsCliError
from ..core.logs import setup_logging
from ..core.outcomes import Fate, exit_code
from ..emulator.command import emulator as _emulator_command
from ..emulator.server import DEFAULT_KEY_ID, DEFAULT_KEY_SECRET
from ..guards.rules import GuardOptions, Suppression, suppression_path
from ..providers import PROVIDERS, provider_class
from ..run.send import Options
from ..run.shards import parse as parse_shard
from ..validate.validator import parse_phone
from . import commands, output
from .options import FORMAT, Format
from .options import value as _value
from .output import json_error, protect_streams
from .receipts import receipts as _receipts_command
from .report import SCHEMA_VERSION, plan_exit, shown, status_dict, status_text
from .shard_reports import status as sharded_status
from .starter import write_starter


class Command(TyperCommand):
    """Help that names arguments as people write them (`INPUT`, `[PATH]`, `NUMBER...`), where
    typer would show `{input}` and `<str>`."""
    @staticmethod
    def _arg(param, usage: bool = False) -> str:
        name = param.metavar or param.name.upper()
        if param.nargs != 1:
            name += "..."
        return f"[{name}]" if usage and not param.required else name

    def collect_usage_pieces(self, ctx) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name == "argument":
                pieces.append(self._arg(param, usage=True))
            else:
                pieces.extend(param.get_usage_pieces(ctx))
        return pieces

    @staticmethod
    def _with_default(param, text: str) -> str:
        """Every option says its default: the help's own "(default: ...)", typer's
        "[default: 4]", or here: off for a flag, not set for an option without a value."""
        if "default" in text or getattr(param, "is_eager", False) and param.name == "help":
            return text
        if getattr(param, "is_flag", False):
            return f"{text}  [default: off]"
        if param.default in (None, (), [], ""):
            return f"{text}  [default: not set]"
        return text

    def format_options(self, ctx, formatter) -> None:
        args, opts = [], []
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            if param.param_type_name == "argument":
                args.append((self._arg(param), record[1]))
            else:
                opts.append((record[0], self._with_default(param, record[1])))
        for title, rows in (("Arguments", args), ("Options", opts)):
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)


# help texts come from the callbacks' docstrings below (with their examples)
app = typer.Typer(no_args_is_help=False, invoke_without_command=True, pretty_exceptions_enable=False,
                  rich_markup_mode=None, context_settings={"help_option_names": ["-h", "--help"]})
config_app = typer.Typer(invoke_without_command=True, rich_markup_mode=None)
app.add_typer(config_app, name="config")
command = app.command


def _help_when_bare(ctx: typer.Context) -> None:
    """A group run without a command prints its help on stdout and exits 0 (typer's
    no_args_is_help prints it on stderr and exits 2)."""
    if ctx.invoked_subcommand is None and not ctx.resilient_parsing:
        print(ctx.get_help())
        raise typer.Exit(int(ExitCode.OK))


def err(text: str) -> None:
    # a file name that is not UTF-8 must not crash a strict stderr
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    sys.stderr.write(text.rstrip("\n") + "\n")
    sys.stderr.flush()


def fail(message: str, exit_code: int, code: str, json_out: bool) -> None:
    """An error's one line on stderr; with --json, its object on stdout too (README: JSON output)."""
    err(message)
    if json_out:

        json_error(code, re.sub(r"^sms-cli: (error: )?", "", message), exit_code)


def guarded(fn):
    """User errors become one line on stderr and their exit code; never a traceback."""
    @wraps(fn)
    def wrapper(*args, **kwargs):
        json_out = bool(kwargs.get("json_out"))
        try:
            return fn(*args, **kwargs)
        except SmsCliError as exc:
            fail(f"sms-cli: error: {exc}", int(exc.exit_code), type(exc).__name__, json_out)
            raise typer.Exit(int(exc.exit_code)) from None
        except (typer.Exit, typer.Abort, KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:  # a bug: still one line, and the journal holds what was sent
            fail(f"sms-cli: internal error: {type(exc).__name__}: {exc} (please report it; "
                 "the journal holds what was sent)", int(ExitCode.FATAL), "InternalError", json_out)
            raise typer.Exit(int(ExitCode.FATAL)) from None
    return wrapper


def _version(value: bool):
    if value:
        print(f"sms-cli {__version__}")
        raise typer.Exit()


@app.callback()
def root(ctx: typer.Context,
         version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                      help="Show the version and exit.")):
    """Bulk SMS sender: validate rows, batch them per provider, send, resend failures.

    \b
    Examples:
      sms-cli validate recipients.csv
      sms-cli plan recipients.csv --provider tencent
      sms-cli send recipients.csv
    """
    _help_when_bare(ctx)


@config_app.callback()
def config_root(ctx: typer.Context):
    """Inspect the configuration, or write a starter one.

    \b
    Examples:
      sms-cli config init --provider-type tencent
      sms-cli config check
    """
    _help_when_bare(ctx)


def _logging(verbose: bool, secrets=frozenset()) -> None:

    setup_logging(verbose, secrets)


def _terminal(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # replaced or closed streams (tests, pipes)
        return False


# --- shell completion: never fails, never prints ----------------------------------------------
def _complete_provider(ctx: typer.Context, incomplete: str) -> list[str]:
    """The provider sections of the config that --config, $SMS_CLI_CONFIG, ./sms-cli.yaml or the
    user's config names; nothing when it cannot be read."""
    try:

        cfg = load_config(ctx.params.get("config"), strict_env=False)
        return [name for name in cfg.providers if name.startswith(incomplete)]
    except Exception:  # completion must never break the shell
        return []


ENCODINGS = ("utf-8", "utf-8-sig", "utf-16", "cp1252", "latin-1", "gb18030", "big5", "shift_jis")
DELIMITERS = (",", ";", "tab", "|")  # rows.py also takes the names comma, semicolon, pipe


def _complete_encoding(incomplete: str) -> list[str]:
    return [e for e in ENCODINGS if e.startswith(incomplete.lower())]


def _complete_delimiter(incomplete: str) -> list[str]:
    return [d for d in DELIMITERS if d.startswith(incomplete)]


ProviderType = enum.Enum("ProviderType", {t: t for t in ("uspeedo", "tencent", "aliyun")}, type=str)


INPUT = typer.Argument(..., metavar="INPUT", help="CSV (or TSV), JSON, JSON Lines or text file of rows, or - for "
                       "stdin.")
CONFIG = typer.Option(None, "--config", "-c", metavar="PATH",
                      help="Config file (default: $SMS_CLI_CONFIG, ./sms-cli.yaml, then "
                           "$XDG_CONFIG_HOME/sms-cli/config.yaml).")
PROVIDER = typer.Option(None, "--provider", "-p", metavar="NAME", autocompletion=_complete_provider,
                        help="Provider section of the config (default: its default_provider).")
ENCODING = typer.Option(None, "--encoding", metavar="ENCODING", autocompletion=_complete_encoding,
                        help="The input's text encoding, e.g. cp1252 or latin-1 (default: UTF-8 with or "
                             "without BOM, or UTF-16/32 with a BOM).")
DELIMITER = typer.Option(None, "--delimiter", metavar="CHAR", autocompletion=_complete_delimiter,
                         help="CSV field separator: one character, or tab, comma, semicolon, pipe (default: "
                              "read from the header line: , ; or tab).")
TEMPLATE = typer.Option(None, "--template", "-t", metavar="ID", help="Template id for rows that have none.")
PARAM = typer.Option([], "--param", metavar="VALUE",
                     help="Template parameter for rows that have none (repeat for each, in order).")
SENDER = typer.Option(None, "--sender-id", metavar="ID", help="Sender id for rows that have none.")
REGION = typer.Option(None, "--default-region", metavar="REGION", help="ISO region for national numbers, e.g. HK.")
JOURNAL = typer.Option(None, "--journal", metavar="PATH", help="Journal file (default: <input>.journal.sqlite "
                       "beside the input).")
# shards (shards.py): one input sent by N processes, each with its own rows and journal
SHARD = typer.Option(None, "--shard", metavar="K/N", help="Send only shard K of N (K from 0): the rows whose "
                     "message hashes to K, with their own journal <input>.shard-K-of-N.journal.sqlite.")
SHARDS = typer.Option(None, "--shards", min=1, metavar="N", help="With send: shard K of N, K from "
                      "$JOB_COMPLETION_INDEX (a Kubernetes Indexed Job). With status/receipts: report all N shards.")
LIMIT = typer.Option(None, "--limit", min=0, metavar="N", help="Send at most N messages in this invocation; the "
                     "rest are deferred and the same command run again continues.")
DEDUPE = typer.Option(False, "--dedupe", help="Skip rows repeating an earlier row's number, template and "
                      "parameters (in this input or already accepted from it).")
JSON = typer.Option(False, "--json", help="Machine-readable output on stdout (see README: JSON output).")
SUPPRESS = typer.Option(None, "--suppress", metavar="PATH",
                        help="Suppression list file (default: the config's suppression_list).")
QUIET_HOURS = typer.Option(None, "--quiet-hours", metavar="HH:MM-HH:MM", help="Recipients' local quiet hours, "
                           "e.g. 21:00-08:00: rows inside them are deferred.")
ALLOW = typer.Option(None, "--allow-countries", metavar="REGIONS",
                     help="Only these ISO regions, comma-separated (e.g. SG,HK).")
BLOCK = typer.Option(None, "--block-countries", metavar="REGIONS",
                     help="Never these ISO regions, comma-separated.")
VALID_FOR = typer.Option(None, "--valid-for", metavar="DURATION", help="Rows not sent within this time of the "
                         "campaign's first run expire (90s, 30m, 2h).")
MAX_COST = typer.Option(None, "--max-cost", min=0, metavar="AMOUNT", help="Refuse to send when the estimated "
                        "cost (prices: in config) is over this.")
MAX_PARTS = typer.Option(None, "--max-parts", min=0, metavar="N", help="Refuse to send when the estimated "
                         "billable parts are over this.")


def _guards(suppress=None, quiet_hours=None, allow=None, block=None, valid_for=None, max_cost=None, max_parts=None):

    return GuardOptions(suppress, quiet_hours, allow, block, valid_for, max_cost, max_parts)


def _request(input, config, provider, fmt, template, param, sender_id, default_region, encoding=None,
             delimiter=None, **kw):

    return SendRequest(input=input, config=config, provider=provider, fmt=_value(fmt), template=template,
                       params=tuple(param), sender_id=sender_id, region=default_region, encoding=encoding,
                       delimiter=delimiter, **kw)


def _shard(shard: Optional[str], shards: Optional[int]):

    return parse_shard(shard, shards)


def _stdin_hint(input: str) -> None:
    """Rows typed at a terminal: say so, and how to end them, instead of seeming to hang."""
    if input == "-" and _terminal(sys.stdin):
        err("sms-cli: reading rows from stdin (this terminal): type or paste them, then press Ctrl-D on an "
            "empty line to end (Ctrl-C cancels)")


# --- the confirmation before a large live send --------------------------------------------------
CONFIRM_ABOVE = 1000  # messages


def may_ask(input: str, *, yes: bool, dry_run: bool, terminal: bool) -> bool:
    """Whether a send could ask at all: a person at a terminal (stdin and stderr), sending for
    real, who did not say --yes, and whose stdin is not the rows themselves."""
    return terminal and not yes and not dry_run and input != "-"


def needs_confirmation(est) -> bool:
    """A real provider (not the outbox) and more than CONFIRM_ABOVE messages."""
    return est.provider_type != "outbox" and est.messages > CONFIRM_ABOVE


def confirm_text(est) -> str:
    account = f", account {est.account}" if est.account else ""
    bound = "at least " if est.lower_bound else ""
    if est.cost is None:
        cost = "cost unknown (no prices: in the provider's config)"
    else:
        cost = f"estimated cost {bound}{est.cost:,.4f}" + (
            f" (no price for {', '.join(est.unpriced)})" if est.unpriced else "")
    return (f"sms-cli: this run sends {est.messages:,} messages through {est.provider} ({est.provider_type}"
            f"{account}): {bound}{est.parts:,} parts, {cost}")


def _provider_type(req) -> str | None:

    try:
        return load_config(req.config, strict_env=False).provider(req.provider).type
    except SmsCliError:
        return None  # the estimate (or the send) reports it


def confirm_send(req, *, yes: bool, dry_run: bool, terminal: bool, estimate=None, confirm=None) -> bool:
    """True to go on. Asks (on stderr) only when `may_ask` and `needs_confirmation` hold; the
    estimate is the dry run `plan` shows, so it reads the journal and writes nothing."""
    if not may_ask(req.input, yes=yes, dry_run=dry_run, terminal=terminal):
        return True

    if estimate is None and _provider_type(req) == "outbox":
        return True  # nothing leaves the machine: no need to read the input twice
    est = (estimate or commands.estimate)(req)
    if not needs_confirmation(est):
        return True
    err(confirm_text(est))
    try:
        return bool((confirm or ask)("Send them?", default=False, err=True))
    except (typer.Abort, EOFError):
        return False


def ask(question: str, default: bool = False, err: bool = True) -> bool:
    """A y/N question on stderr, the answer from stdin. (typer.confirm writes the prompt's last
    character with input(), which lands on stdout: a stray space before --json's object.)"""
    sys.stderr.write(f"{question} [{'Y/n' if default else 'y/N'}]: ")
    sys.stderr.flush()
    answer = sys.stdin.readline()
    if not answer:
        raise EOFError
    answer = answer.strip().lower()
    return default if not answer else answer in ("y", "yes")


@command(cls=Command)
@guarded
def send(
    input: str = INPUT, config: Optional[str] = CONFIG, provider: Optional[str] = PROVIDER,
    fmt: Optional[Format] = FORMAT, template: Optional[str] = TEMPLATE, param: List[str] = PARAM,
    sender_id: Optional[str] = SENDER, default_region: Optional[str] = REGION,
    encoding: Optional[str] = ENCODING, delimiter: Optional[str] = DELIMITER,
    failures: Optional[str] = typer.Option(None, "--failures", metavar="PATH",
                                           help="Failures file (default: <input>.failed.<ext> beside the input)."),
    journal: Optional[str] = JOURNAL,
    dry_run: bool = typer.Option(False, "--dry-run", help="Validate and batch, print the plan, send nothing."),
    only_retryable: bool = typer.Option(False, "--only-retryable", help="Skip failures-file rows marked retryable: no."),
    retry_unknown: bool = typer.Option(False, "--retry-unknown", help="Resend rows whose outcome is unknown (may duplicate)."),
    fresh: bool = typer.Option(False, "--fresh", help="Start the working set over: accepted messages may be sent again."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask before sending over 1,000 messages from a "
                             "terminal; and confirm --fresh when the journal has accepted rows."),
    continue_edited: bool = typer.Option(False, "--continue-edited", help="The input changed after an unfinished "
                                         "run: send only the messages that run did not accept."),
    concurrency: int = typer.Option(8, "--concurrency", min=1, max=64, metavar="N", help="Requests in parallel."),
    limit: Optional[int] = LIMIT, dedupe: bool = DEDUPE, json_out: bool = JSON,
    suppress: Optional[str] = SUPPRESS, quiet_hours: Optional[str] = QUIET_HOURS,
    allow_countries: Optional[str] = ALLOW, block_countries: Optional[str] = BLOCK,
    valid_for: Optional[str] = VALID_FOR, max_cost: Optional[float] = MAX_COST, max_parts: Optional[int] = MAX_PARTS,
    shard: Optional[str] = SHARD, shards: Optional[int] = SHARDS,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing on success."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log the config, journal and failures file used, "
                                 "each request, retries and waits to stderr (numbers masked)."),
):
    """Send the rows of INPUT; rows not accepted go to a failures file you can send again.

    From a terminal, a send of more than 1,000 messages through a real provider shows the
    messages, parts and estimated cost and asks first (--yes skips; cron never asks).

    \b
    Examples:
      sms-cli send recipients.csv
      sms-cli send recipients.csv --provider tencent --limit 500
      sms-cli send recipients.failed.csv --only-retryable
    """
    req = _request(input, config, provider, fmt, template, param, sender_id, default_region, encoding, delimiter,
                   failures=failures, journal=journal, fresh=fresh, yes=yes, continue_edited=continue_edited,
                   shard=_shard(shard, shards),
                   guards=_guards(suppress, quiet_hours, allow_countries, block_countries, valid_for, max_cost,
                                  max_parts),
                   options=Options(concurrency=concurrency, limit=limit, dedupe=dedupe,
                                   only_retryable=only_retryable, retry_unknown=retry_unknown,
                                   dry_run=dry_run))
    _logging(verbose)
    _stdin_hint(input)
    if not confirm_send(req, yes=yes, dry_run=dry_run, terminal=_terminal(sys.stdin) and _terminal(sys.stderr)):
        fail("sms-cli: nothing sent (not confirmed)", int(ExitCode.USAGE), "NotConfirmed", json_out)
        raise typer.Exit(int(ExitCode.USAGE))
    with output.RunView(quiet=quiet, json_out=json_out, dry_run=dry_run) as view:
        summary = commands.send(req, progress=view.progress, on_start=view.started)
        view.finish(summary)
    raise typer.Exit(plan_exit(summary) if dry_run else int(summary.exit_code()))


@command(cls=Command)
@guarded
def plan(
    input: str = INPUT, config: Optional[str] = CONFIG, provider: Optional[str] = PROVIDER,
    fmt: Optional[Format] = FORMAT, template: Optional[str] = TEMPLATE, param: List[str] = PARAM,
    sender_id: Optional[str] = SENDER, default_region: Optional[str] = REGION,
    encoding: Optional[str] = ENCODING, delimiter: Optional[str] = DELIMITER, journal: Optional[str] = JOURNAL,
    limit: Optional[int] = LIMIT, dedupe: bool = DEDUPE, json_out: bool = JSON,
    suppress: Optional[str] = SUPPRESS, quiet_hours: Optional[str] = QUIET_HOURS,
    allow_countries: Optional[str] = ALLOW, block_countries: Optional[str] = BLOCK,
    valid_for: Optional[str] = VALID_FOR, max_cost: Optional[float] = MAX_COST, max_parts: Optional[int] = MAX_PARTS,
    continue_edited: bool = typer.Option(False, "--continue-edited", help="As send: count what the earlier "
                                         "version of an edited input accepted."),
):
    """Show what `send` would do (same as send --dry-run): rows the ledger and the guards would
    stop, requests, numbers per request, parts and cost per country, and for templates with
    text in config the length, encoding and billable parts. Exit 1 when some rows are invalid.

    \b
    Examples:
      sms-cli plan recipients.csv
      sms-cli plan recipients.csv --provider tencent --json
      sms-cli plan numbers.txt --template OTP_LOGIN --param 123456
    """
    req = _request(input, config, provider, fmt, template, param, sender_id, default_region, encoding, delimiter,
                   journal=journal, options=Options(limit=limit, dedupe=dedupe, dry_run=True),
                   continue_edited=continue_edited,
                   guards=_guards(suppress, quiet_hours, allow_countries, block_countries, valid_for, max_cost,
                                  max_parts))
    _stdin_hint(input)
    with output.RunView(json_out=json_out, dry_run=True) as view:
        summary = commands.plan(req, on_start=view.started)
        view.finish(summary)
    raise typer.Exit(plan_exit(summary))


@command(cls=Command)
@guarded
def validate(
    input: str = INPUT, config: Optional[str] = CONFIG, provider: Optional[str] = PROVIDER,
    fmt: Optional[Format] = FORMAT, template: Optional[str] = TEMPLATE, param: List[str] = PARAM,
    sender_id: Optional[str] = SENDER, default_region: Optional[str] = REGION,
    encoding: Optional[str] = ENCODING, delimiter: Optional[str] = DELIMITER, json_out: bool = JSON,
    suppress: Optional[str] = SUPPRESS, allow_countries: Optional[str] = ALLOW,
    block_countries: Optional[str] = BLOCK,
):
    """Check every row as `send` would (suppression list and country rules included); print
    each problem with its line. Exit 0 when all rows are valid, 1 otherwise.

    \b
    Examples:
      sms-cli validate recipients.csv
      sms-cli validate recipients.jsonl --json
      cat numbers.txt | sms-cli validate - --format lines --template OTP_LOGIN --param 0
    """
    problems = 0
    _stdin_hint(input)
    gen = commands.validate(_request(input, config, provider, fmt, template, param, sender_id, default_region,
                                     encoding, delimiter,
                                     guards=_guards(suppress, None, allow_countries, block_countries)))

    # --json streams ONE object, {"schema_version", "problems": [...], "rows", ..., "exit_code"}:
    # the problems are written as they are found (memory stays flat), the counts close it, and
    # an error or a signal half-way closes it with "error" instead
    def close(tail: dict) -> None:
        output.streaming(None)
        sys.stdout.write("\n], " + output.json_text(tail)[1:] + "\n")
        sys.stdout.flush()

    try:
        while True:
            raw, bad = next(gen)
            problems += 1
            if json_out:
                if problems == 1:
                    sys.stdout.write(f'{{"schema_version": {SCHEMA_VERSION}, "problems": [\n')
                    output.streaming(lambda error: close({"error": error, "exit_code": error["exit_code"]}))
                else:
                    sys.stdout.write(",\n")
                sys.stdout.write(output.json_text({"line": bad.line, "error_code": bad.code,
                                                   "error_message": bad.reason, "row": raw.record}))
            else:
                print(f"{shown(input)}:{bad.line}: {shown(bad.code)}: {shown(bad.reason)}")
    except StopIteration as done:
        rows = done.value
    err(f"{rows} rows, {rows - problems} valid, {problems} invalid")
    code = int(exit_code({Fate.INVALID: problems}))
    if json_out:
        counts = {"rows": rows, "valid": rows - problems, "invalid": problems, "exit_code": code}
        if problems:
            close(counts)
        else:
            output.emit({"schema_version": SCHEMA_VERSION, "problems": [], **counts})
    raise typer.Exit(code)


@command(cls=Command)
@guarded
def status(
    input: str = typer.Argument(..., metavar="INPUT", help="The input (or its failures file) as given to send."),
    journal: Optional[str] = JOURNAL, config: Optional[str] = CONFIG, provider: Optional[str] = PROVIDER,
    fmt: Optional[Format] = FORMAT, template: Optional[str] = TEMPLATE, param: List[str] = PARAM,
    sender_id: Optional[str] = SENDER, default_region: Optional[str] = REGION,
    encoding: Optional[str] = ENCODING, delimiter: Optional[str] = DELIMITER, json_out: bool = JSON,
    shards: Optional[int] = SHARDS,
):
    """What the journal knows about INPUT's runs: when, which provider and options, rows per
    state, the failures file, and what running the same send again would send (the dry run of
    the latest run's options: pass the same --template/--param/--config as the send). Reads
    only: needs no secrets and writes nothing.

    Exit 0 when nothing is left to send (every row accepted), 1 when a re-run would send
    something or some rows are not accepted, 2 when the journal has no run of INPUT.

    \b
    Examples:
      sms-cli status recipients.csv
      sms-cli status recipients.csv --json
      sms-cli status today.csv --journal /var/lib/sms/today.journal.sqlite
    """
    if input == "-":
        raise SmsCliError("status reads the input to find its runs and stdin can be read only once: give the "
                          "file that was piped in, with --journal sms-stdin-<hash>.journal.sqlite")
    req = _request(input, config, provider, fmt, template, param, sender_id, default_region, encoding, delimiter,
                   journal=journal)
    if shards:  # every shard's journal, reported as one working set

        st = sharded_status(req, shards)
    else:
        st = commands.status(req)
    if json_out:
        output.emit(status_dict(st))
    else:
        print(status_text(st))
    raise typer.Exit(st.exit_code)


suppress_app = typer.Typer(invoke_without_command=True, rich_markup_mode=None)
app.add_typer(suppress_app, name="suppress")
LIST = typer.Option(None, "--list", metavar="PATH", help="The list file (default: the config's suppression_list).")
NUMBERS = typer.Argument(..., metavar="NUMBER", help="Numbers, in any spelling; - reads them from stdin, one a line.")


@suppress_app.callback()
def suppress_root(ctx: typer.Context):
    """Edit and query the suppression list (opted-out numbers).

    \b
    Examples:
      sms-cli suppress add +85255311111 --note "asked by phone"
      sms-cli suppress check "(852) 5531 1111"
    """
    _help_when_bare(ctx)


def _suppression(config, path, default_region=None):
    """The list, and the region for national numbers on the command line (--default-region,
    else the config's default_region). The file's own lines are read with the config's."""
    cfg = load_config(config, strict_env=False)
    where = suppression_path(cfg, GuardOptions(suppress=path))
    if where is None:
        raise SmsCliError("no suppression list: set suppression_list in config or pass --list PATH")
    return Suppression(where, cfg.default_region), default_region or cfg.default_region


def _numbers(numbers, region):
    """Every number in E.164, or one error naming the first that is not one (so nothing is
    written for a half-good list). `-` reads numbers from stdin, one a line (# comments)."""
    given = []
    for n in numbers:
        if n == "-":
            given += [x.split("#", 1)[0].strip() for x in sys.stdin.read().splitlines()]
        else:
            given.append(n)
    out = []
    for n in filter(None, given):
        parsed = parse_phone(n.strip(), region)
        if isinstance(parsed, str):
            raise SmsCliError(f"not a phone number: {shown(n)}: {shown(parsed)}")
        out.append(parsed[0])
    return out


SUPPRESS_REGION = typer.Option(None, "--default-region", metavar="REGION",
                               help="ISO region for national numbers, e.g. HK (default: the config's default_region).")


@suppress_app.command("add", cls=Command)
@guarded
def suppress_add(numbers: List[str] = NUMBERS, config: Optional[str] = CONFIG, path: Optional[str] = LIST,
                 note: str = typer.Option("", "--note", metavar="TEXT", help="A comment written beside each number."),
                 default_region: Optional[str] = SUPPRESS_REGION):
    """Add numbers to the suppression list; they are never sent again. `-` reads numbers from
    stdin, one a line.

    \b
    Examples:
      sms-cli suppress add +85255311111 "(65) 9123 4567" --note "asked by phone"
      sms-cli suppress add "5531 1111" --default-region HK --list opted-out.txt
      cut -d, -f1 opted-out.csv | sms-cli suppress add - --list opted-out.txt
    """
    lst, region = _suppression(config, path, default_region)
    for n in _numbers(numbers, region):
        print(f"{n}: {'added' if lst.add(n, note) else 'already listed'}")


@suppress_app.command("remove", cls=Command)
@guarded
def suppress_remove(numbers: List[str] = NUMBERS, config: Optional[str] = CONFIG, path: Optional[str] = LIST,
                    default_region: Optional[str] = SUPPRESS_REGION):
    """Remove numbers from the suppression list (`-`: numbers from stdin).

    \b
    Examples:
      sms-cli suppress remove +85255311111
      sms-cli suppress remove "(65) 9123 4567" --list opted-out.txt
    """
    lst, region = _suppression(config, path, default_region)
    for n in _numbers(numbers, region):
        print(f"{n}: {'removed' if lst.remove(n) else 'not listed'}")


@suppress_app.command("list", cls=Command)
@guarded
def suppress_list(config: Optional[str] = CONFIG, path: Optional[str] = LIST):
    """Print every listed number (E.164), one a line.

    \b
    Examples:
      sms-cli suppress list
      sms-cli suppress list --list opted-out.txt > numbers.txt
    """
    lst, _ = _suppression(config, path)
    for n in sorted(lst.numbers):
        print(n)


@suppress_app.command("check", cls=Command)
@guarded
def suppress_check(numbers: List[str] = NUMBERS, config: Optional[str] = CONFIG, path: Optional[str] = LIST,
                   default_region: Optional[str] = SUPPRESS_REGION):
    """Say whether each number is listed; exit 1 when any is. `-` reads numbers from stdin,
    one a line.

    \b
    Examples:
      sms-cli suppress check +85255311111
      sms-cli suppress check "(852) 5531 1111" --list opted-out.txt
      sms-cli suppress check - --list opted-out.txt < numbers.txt
    """
    lst, region = _suppression(config, path, default_region)
    listed = 0
    for n in _numbers(numbers, region):
        hit = n in lst
        listed += hit
        print(f"{n}: {'suppressed' if hit else 'not listed'}")
    raise typer.Exit(int(exit_code({Fate.SUPPRESSED: listed})))  # as a send would refuse them


# The emulator command lives with the emulator (its options are the emulator's business); its
# help here gets the metavars and examples every other command has.

EMULATOR_METAVARS = {"port": "PORT", "host": "ADDRESS", "blacklist": "NUMBER", "templates": "FILE",
                     "fail_rate": "SHARE", "throttle_rate": "SHARE", "timeout_rate": "SHARE", "drop_rate": "SHARE",
                     "gateway_timeout_rate": "SHARE", "latency_ms": "MS", "stall_ms": "MS", "log": "PATH",
                     "key_id": "ID", "key_secret": "SECRET", "seed": "N"}


def _name_metavars(fn, names: dict[str, str]) -> None:
    for name, param in inspect.signature(fn).parameters.items():
        info = param.default
        if name in names and getattr(info, "metavar", "unset") is None:
            info.metavar = names[name]


_name_metavars(_emulator_command, EMULATOR_METAVARS)


def _emulator_defaults() -> None:
    """The emulator's options whose None means a built-in value say which (help shows defaults)."""

    said = {"key_id": DEFAULT_KEY_ID, "key_secret": DEFAULT_KEY_SECRET, "seed": "unseeded"}
    for name, param in inspect.signature(_emulator_command).parameters.items():
        info = param.default
        if name in said and "default" not in (info.help or ""):
            info.help = f"{info.help} (default: {said[name]})"


_emulator_defaults()
command("emulator", cls=Command, help="""Run a local server speaking the uSpeedo, Tencent and Aliyun APIs.

\b
Examples:
  sms-cli emulator --port 8787
  sms-cli emulator --port 8787 --blacklist +85255310000 --fail-rate 0.1
  sms-cli emulator --templates sms-cli.yaml --log accepted.jsonl
""")(guarded(_emulator_command))
# `sms-cli receipts` lives in cli/receipts.py; registered here with the same help style
command("receipts", cls=Command)(guarded(_receipts_command))


@command(cls=Command)
def providers():
    """List the supported provider types.

    \b
    Examples:
      sms-cli providers
    """
    for name in PROVIDERS:
        cls = provider_class(name)
        print(f"{name:8}  {cls.max_batch:>5} numbers/request  {cls.description}")


@config_app.command("check", cls=Command)
@guarded
def config_check(config: Optional[str] = CONFIG):
    """Load the config, resolve ${VAR}s and list each provider; name missing variables, never
    secrets. Exit 2 when something is missing.

    \b
    Examples:
      sms-cli config check
      sms-cli config check --config /etc/sms-cli.yaml
    """
    lines, ok = commands.config_check(config)
    for line in lines:
        print(line)
    if find_config(config) is None:
        err("sms-cli: searched --config, $SMS_CLI_CONFIG, ./sms-cli.yaml and $XDG_CONFIG_HOME/sms-cli/config.yaml "
            "(~/.config/sms-cli/config.yaml); `sms-cli config init` writes a starter there")
    raise typer.Exit(int(ExitCode.OK if ok else ExitCode.USAGE))


@config_app.command("init", cls=Command)
@guarded
def config_init(
    path: Optional[str] = typer.Argument(None, metavar="PATH", help="Where to write it (default: "
                                         "$XDG_CONFIG_HOME/sms-cli/config.yaml, i.e. ~/.config/sms-cli/config.yaml)."),
    provider_type: ProviderType = typer.Option("uspeedo", "--provider-type", case_sensitive=False,
                                               metavar="[uspeedo|tencent|aliyun]",
                                               help="The provider the starter is for."),
):
    """Write a commented starter config (mode 0600) for one provider; its secrets are ${VAR}
    references to the provider's usual environment variables, never values. Refuses to
    overwrite a file (exit 2).

    \b
    Examples:
      sms-cli config init
      sms-cli config init --provider-type tencent
      sms-cli config init ./sms-cli.yaml --provider-type aliyun
    """
    from pathlib import Path


    ptype = _value(provider_type)
    target = write_starter(Path(path) if path else user_config_path(), ptype)
    print(f"wrote {target} ({ptype} starter, mode 0600)")
    cls = provider_class(ptype)
    found = find_config(None)
    where = "" if found is not None and found.resolve() == target.resolve() else f" --config {target}"
    err(f"next: set {' and '.join(sorted(set(cls.env_defaults.values())))} in the environment, edit the "
        f"placeholders, then run: sms-cli config check{where}")


JSON_COMMANDS = ("send", "plan", "status", "validate", "receipts")


def wants_json(argv: list[str]) -> bool:
    """`--json` given to a command that answers in JSON (before any `--`)."""
    args = argv[:argv.index("--")] if "--" in argv else argv
    command = next((a for a in args if not a.startswith("-")), None)
    return "--json" in args and command in JSON_COMMANDS


def main() -> None:
    """The entry point's second half (sms_cli/__main__.py installed the signal handling). Runs
    the app without click's standalone mode, so a usage error (an unknown option, a missing
    argument) is answered here: click's lines on stderr, and with --json the error object on
    stdout, exit 2."""
    try:
        from typer._click.exceptions import ClickException  # typer 0.2x vendors click
    except ImportError:  # older typer: click itself
        from click.exceptions import ClickException

    protect_streams()
    json_out = wants_json(sys.argv[1:])
    try:
        code = app(standalone_mode=False)
    except ClickException as exc:
        exc.show()
        if json_out:

            json_error(type(exc).__name__, exc.format_message(), exc.exit_code)
        code = exc.exit_code
    except typer.Abort:
        err("Aborted!")
        code = 1
    except SmsCliError as exc:  # raised outside a command (should not happen, but never a traceback)
        fail(f"sms-cli: error: {exc}", int(exc.exit_code), type(exc).__name__, json_out)
        code = int(exc.exit_code)
    sys.exit(code if isinstance(code, int) else 0)
