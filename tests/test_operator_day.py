"""The operator's day: the config where people keep it and a starter for it, runs you can look
at (`status`), one JSON vocabulary, a large live send that asks first, help you can read, and
a progress display that fits a narrow terminal."""
import csv
import io
import json
import os
import pty
import re

import pytest

from conftest import ROOT, Background, invoke, make_rows, run_main
from sms_cli.cli.options import FORMAT_CHOICES

SAMPLES = ROOT / "samples"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def listing(folder) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def private_config(path, text: str):
    path.write_text(text)
    path.chmod(0o600)
    return path


# --- 1. config where people keep it --------------------------------------------------------------
def config_used(cwd, *args, env=None) -> str:
    r = invoke("config", "check", *args, cwd=cwd, env=env)
    return r.stdout.splitlines()[0]


def test_config_search_order_ends_in_the_users_xdg_config(tmp_path):
    xdg = tmp_path / "xdg"
    home = tmp_path / "home"
    (xdg / "sms-cli").mkdir(parents=True)
    (home / ".config" / "sms-cli").mkdir(parents=True)
    outbox = "providers:\n  {name}:\n    type: outbox\n"
    user = private_config(xdg / "sms-cli" / "config.yaml", outbox.format(name="xdg"))
    dotconfig = private_config(home / ".config" / "sms-cli" / "config.yaml", outbox.format(name="home"))
    env = {"XDG_CONFIG_HOME": str(xdg)}
    assert config_used(tmp_path, env=env) == f"config: {user}"
    assert config_used(tmp_path, env={"XDG_CONFIG_HOME": None, "HOME": str(home)}) == f"config: {dotconfig}"
    private_config(tmp_path / "sms-cli.yaml", outbox.format(name="local"))
    assert config_used(tmp_path, env=env) == "config: sms-cli.yaml"
    other = private_config(tmp_path / "other.yaml", outbox.format(name="env"))
    assert config_used(tmp_path, env={**env, "SMS_CLI_CONFIG": str(other)}) == f"config: {other}"
    assert config_used(tmp_path, "--config", user, env={**env, "SMS_CLI_CONFIG": str(other)}) == f"config: {user}"
    (tmp_path / "sms-cli.yaml").unlink()
    # plan uses it too: the provider named in the user's config
    (tmp_path / "in.txt").write_text("+6591234500\n")
    assert "plan for xdg (outbox)" in invoke("plan", "in.txt", "-t", "T", cwd=tmp_path, env=env).stdout


STARTER_VARS = {"uspeedo": ("USPEEDO_ACCESS_KEY_ID", "USPEEDO_ACCESS_KEY_SECRET"),
                "tencent": ("TENCENTCLOUD_SECRET_ID", "TENCENTCLOUD_SECRET_KEY"),
                "aliyun": ("ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET")}


STARTER_KEYS = {"uspeedo": "account_id, sender_id", "tencent": "sender_id, sms_sdk_app_id", "aliyun": "sign_name"}


@pytest.mark.parametrize("ptype", sorted(STARTER_VARS))
def test_config_init_writes_a_private_starter_that_passes_check_once_filled_in(tmp_path, ptype):
    xdg = tmp_path / "xdg"
    env = {"XDG_CONFIG_HOME": str(xdg), **{v: None for v in STARTER_VARS[ptype]}}
    r = invoke("config", "init", "--provider-type", ptype, cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    path = xdg / "sms-cli" / "config.yaml"
    assert (path.stat().st_mode & 0o777) == 0o600
    text = path.read_text()
    for var in STARTER_VARS[ptype]:
        assert "${" + var + "}" in text and var in r.stderr
    assert f"type: {ptype}" in text and "secret" in text
    # not yet: the variables are missing, and config check names them
    missing = invoke("config", "check", cwd=tmp_path, env=env)
    assert missing.returncode == 2 and f"config: {path}" in missing.stdout
    assert all(v in missing.stdout for v in STARTER_VARS[ptype])
    env_set = {**env, **{v: "set-" + v for v in STARTER_VARS[ptype]}}
    # not yet either: the account's values are still the starter's placeholders, named
    untouched = invoke("config", "check", cwd=tmp_path, env=env_set)
    assert untouched.returncode == 2 and "still the starter's placeholder: " + STARTER_KEYS[ptype] in untouched.stdout
    path.write_text(re.sub(r": (YOUR-[A-Z-]+|\"00000\")", ": \"12345\"", text))
    ok = invoke("config", "check", cwd=tmp_path, env=env_set)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert f"* {ptype}: type={ptype}" in ok.stdout and "set-" not in ok.stdout + ok.stderr
    # never overwritten
    edited = path.read_text()
    again = invoke("config", "init", "--provider-type", "uspeedo", cwd=tmp_path, env=env)
    assert again.returncode == 2 and "already exists" in again.stderr and path.read_text() == edited


def test_config_init_to_a_path_and_a_bad_type(tmp_path):
    r = invoke("config", "init", "conf/sms.yaml", cwd=tmp_path)
    assert r.returncode == 0 and (tmp_path / "conf" / "sms.yaml").exists()
    assert "--config conf/sms.yaml" in r.stderr  # the default search would not find it
    bad = invoke("config", "init", "x.yaml", "--provider-type", "outbox", cwd=tmp_path)
    assert bad.returncode == 2 and not (tmp_path / "x.yaml").exists()


# --- 2. runs you can look at -----------------------------------------------------------------------
def test_status_of_runs_reads_only_and_needs_no_secrets(tmp_path, emulator, write_config):
    phones = make_rows(tmp_path / "in.csv", 12, invalid=1)
    emu = emulator(blacklist={phones[3]})
    cfg = write_config(emu)
    # the same provider section with its secret from a variable that is not set
    nosecret = private_config(tmp_path / "nosecret.yaml",
                              cfg.read_text().replace('access_key_secret: "emulator-secret"',
                                                      "access_key_secret: ${UNSET_SECRET_FOR_STATUS}"))
    assert "UNSET_SECRET_FOR_STATUS" in nosecret.read_text()

    before = listing(tmp_path)
    for command in ("validate", "plan"):  # checks that send nothing need no secrets either
        r = invoke(command, "in.csv", "--config", nosecret, cwd=tmp_path)
        assert r.returncode == 1 and "UNSET_SECRET_FOR_STATUS" not in r.stderr, (command, r.stderr)
    none = invoke("status", "in.csv", "--config", nosecret, cwd=tmp_path)
    assert none.returncode == 2 and "no journal" in none.stdout
    assert listing(tmp_path) == before  # no journal created

    sent = invoke("send", "in.csv", "--config", cfg, "--limit", "5", "--json", cwd=tmp_path)
    assert sent.returncode == 1, sent.stderr
    before = listing(tmp_path)
    r = invoke("status", "in.csv", "--config", nosecret, "--json", cwd=tmp_path)
    assert r.returncode == 1, r.stderr
    assert listing(tmp_path) == before  # nothing written: no -wal/-shm left behind either
    st = r.json()
    assert st["schema_version"] == 1 and st["found"] and not st["active"] and st["receipts"] is None  # none asked
    (run,) = st["runs"]
    assert run["status"] == "partial" and run["provider"] == "emu" and run["provider_type"] == "uspeedo"
    assert run["options"]["limit"] == 5 and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", run["started"])
    assert st["journal_states"] == {"accepted": 4, "failed": 1, "retry": 0, "unknown": 0, "inflight": 0,
                                   "undelivered": 0}
    assert st["failures_file"] == "in.failed.csv" and st["failures_file_exists"]
    rerun = st["rerun"]  # the dry run of the same command: --limit 5 again
    assert rerun["to_send"] == 5 and rerun["invalid"] == 1 and rerun["deferred"] == 2
    assert rerun["ledger_skips"] == {"accepted_earlier": 4, "unknown": 0, "rejected": 1}
    assert st["exit_code"] == 1

    text = invoke("status", "in.csv", "--config", nosecret, cwd=tmp_path)
    assert text.returncode == 1 and "#1 " in text.stdout and "partial" in text.stdout
    assert "4 accepted, 1 refused by the provider" in text.stdout and "in.failed.csv (exists)" in text.stdout
    assert "it would send 5 message(s)" in text.stdout

    # the failures file belongs to the same working set
    resend = invoke("status", "in.failed.csv", "--config", nosecret, "--json", cwd=tmp_path).json()
    assert resend["resend_of"] == "in" and resend["journal_states"] == st["journal_states"]


def test_status_exit_0_when_nothing_is_left(tmp_path, emulator, write_config):
    cfg = write_config(emulator())
    make_rows(tmp_path / "in.csv", 3)
    assert invoke("send", "in.csv", "--config", cfg, cwd=tmp_path).returncode == 0
    r = invoke("status", "in.csv", "--config", cfg, cwd=tmp_path)
    assert r.returncode == 0 and "nothing left to send" in r.stdout and "finished" in r.stdout
    assert invoke("status", "in.csv", "--config", cfg, "--json", cwd=tmp_path).json()["receipts"] is None
    invoke("receipts", "in.csv", "--config", cfg, cwd=tmp_path)  # delivered or pending: what the provider says
    receipts = invoke("status", "in.csv", "--config", cfg, "--json", cwd=tmp_path).json()["receipts"]
    assert sum(receipts.values()) == 3 and set(receipts) <= {"delivered", "pending", "failed"}
    (tmp_path / "other.csv").write_text((tmp_path / "in.csv").read_text() + "+6591234999,OTP_LOGIN,1\n")
    elsewhere = invoke("status", "other.csv", "--journal", "in.journal.sqlite", "--json", cwd=tmp_path)
    assert elsewhere.returncode == 2 and not elsewhere.json()["found"]
    assert invoke("status", "-", cwd=tmp_path, input="+6591234500\n").returncode == 2


# --- 3. one JSON vocabulary ------------------------------------------------------------------------
def test_json_outputs_share_one_vocabulary(tmp_path, emulator, write_config):
    cfg = write_config(emulator(blacklist={"+6591234501"}))
    make_rows(tmp_path / "in.csv", 4, invalid=1)
    plan = invoke("plan", "in.csv", "--config", cfg, "--json", cwd=tmp_path)
    sent = invoke("send", "in.csv", "--config", cfg, "--json", cwd=tmp_path)
    status = invoke("status", "in.csv", "--config", cfg, "--json", cwd=tmp_path)
    validated = invoke("validate", "in.csv", "--config", cfg, "--json", cwd=tmp_path)
    v = json.loads(validated.stdout)  # one object, streamed
    p, s, st = plan.json(), sent.json(), status.json()
    for d, r in ((p, plan), (s, sent), (st, status), (v, validated)):
        assert d["schema_version"] == 1 and d["exit_code"] == r.returncode
    assert (v["rows"], v["valid"], v["invalid"]) == (5, 4, 1)
    assert all({"line", "error_code", "error_message", "row"} <= set(c) for c in v["problems"])
    assert p["rows"] == s["rows"] == st["rerun"]["rows"] == 5
    assert p["provider"] == s["provider"] == st["runs"][0]["provider"] == "emu"
    for reasons in (p["top_failures"], s["top_failures"]):
        assert all(set(r) == {"error_code", "error_message", "rows"} for r in reasons)
    assert s["failures_file"] == st["failures_file"] and s["journal"] == st["journal"]
    assert s["invalid"] == p["invalid"] == st["rerun"]["invalid"] == 1
    with open(tmp_path / s["failures_file"], newline="") as fh:
        header = next(csv.reader(fh))
    assert {"error_code", "error_message", "line", "retryable", "sms_ref"} <= set(header)
    assert v["problems"][0]["error_code"] in {r["error_code"] for r in s["top_failures"]}


# --- 4. a large live send asks first ---------------------------------------------------------------
class FakeEstimate:
    def __init__(self, messages, provider_type="uspeedo"):
        self.provider, self.provider_type, self.account = "emu", provider_type, "10001"
        self.messages, self.parts, self.cost, self.lower_bound, self.unpriced = messages, messages, 1.5, False, ()


def test_when_a_send_asks():
    from sms_cli.cli.app import confirm_send
    from sms_cli.cli.commands import SendRequest

    asked = []

    def decide(messages, ptype="uspeedo", answer=False, input="in.csv", **kw):
        asked.clear()
        kw = {"yes": False, "dry_run": False, "terminal": True, **kw}
        return confirm_send(SendRequest(input=input), estimate=lambda req: FakeEstimate(messages, ptype),
                            confirm=lambda *a, **k: asked.append(a) or answer, **kw), bool(asked)

    assert decide(1001) == (False, True)  # declined
    assert decide(1001, answer=True) == (True, True)
    assert decide(1000) == (True, False)  # up to 1,000: no question
    assert decide(5000, ptype="outbox") == (True, False)  # nothing leaves the machine
    assert decide(5000, terminal=False) == (True, False)  # cron
    assert decide(5000, yes=True) == (True, False)
    assert decide(5000, dry_run=True) == (True, False)
    assert decide(5000, input="-") == (True, False)  # stdin holds the rows, not an answer


def run_on_terminal(args, cwd, env=None, answer="n", out=None):
    """The CLI (its real entry point, in this process) with stdin and stderr on a pseudo-terminal:
    a thread plays the operator, answering the prompt with `answer`. -> (exit code, what the
    terminal showed); `out`, a list, receives what stdout held."""
    master, slave = pty.openpty()
    shown = bytearray()

    def operator():
        answered = False
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the terminal's other side is closed: the run is over
                return
            if not chunk:
                return
            shown.extend(chunk)
            if not answered and b"[y/N]" in shown:
                os.write(master, answer.encode() + b"\n")
                answered = True

    watcher = Background(operator)
    tty_in = io.TextIOWrapper(open(slave, "rb", buffering=0, closefd=False), encoding="utf-8")
    tty_err = io.TextIOWrapper(open(slave, "wb", buffering=0, closefd=False), encoding="utf-8",
                               errors="backslashreplace", write_through=True)
    try:
        r = run_main(*args, cwd=cwd, env=env, stdin=tty_in, stderr=tty_err)
    finally:
        os.close(slave)  # the operator's read ends once all it had was read
        watcher.wait(timeout=30)
        os.close(master)
    if out is not None:
        out.append(r.stdout)
    return r.returncode, bytes(shown).decode("utf-8", "replace")


def test_declining_on_a_terminal_sends_and_writes_nothing(tmp_path, emulator, write_config):
    emu = emulator()
    cfg = write_config(emu)
    make_rows(tmp_path / "in.csv", 1001)
    before = listing(tmp_path)
    stdout = []
    code, shown = run_on_terminal(["send", "in.csv", "--config", cfg, "--json"], tmp_path, out=stdout)
    assert code == 2, shown
    assert "1,001 messages through emu (uspeedo, account 10001)" in shown and "1,001 parts" in shown
    assert "Send them? [y/N]" in shown and "nothing sent" in shown
    assert json.loads(stdout[0])["error"]["code"] == "NotConfirmed", stdout  # --json: the answer is JSON too
    assert listing(tmp_path) == before and not emu.accepted  # no journal, no failures file


def test_without_a_terminal_a_large_send_never_asks(tmp_path, emulator, write_config):
    emu = emulator()
    make_rows(tmp_path / "in.csv", 1001)
    r = invoke("send", "in.csv", "--config", write_config(emu), cwd=tmp_path)
    assert r.returncode == 0 and "Send them?" not in r.stderr and len(emu.accepted) == 1001


# --- 5. help and output ----------------------------------------------------------------------------
def all_commands():
    from typer.main import get_command

    from sms_cli.cli.app import app

    def walk(cmd, path):
        yield path, cmd
        for name, sub in getattr(cmd, "commands", {}).items():
            yield from walk(sub, path + [name])

    return list(walk(get_command(app), []))


def test_bare_sms_cli_prints_help_on_stdout_and_exits_0(tmp_path):
    for args in ([], ["config"], ["suppress"]):
        r = invoke(*args, cwd=tmp_path)
        assert r.returncode == 0 and r.stdout.startswith("Usage: ") and "Examples:" in r.stdout, args
        assert r.stderr == ""


def test_help_names_arguments_shows_choices_and_examples(tmp_path):
    commands = [path for path, cmd in all_commands() if path and not hasattr(cmd, "commands")]
    assert ["status"] in commands and ["config", "init"] in commands
    for path in commands:
        out = invoke(*path, "-h", cwd=tmp_path).stdout
        usage = out.splitlines()[0]
        assert "{" not in usage and "<" not in usage, usage
        for typer_ism in ("<str>", "<list[str]>", "range>", "<int>", "<float>", "<path>"):
            assert typer_ism not in out, (path, typer_ism)
        assert re.search(r"\n  Examples:\n(    sms-cli .+\n)+", out), path
    send = invoke("send", "-h", cwd=tmp_path).stdout
    assert send.startswith("Usage: root send [OPTIONS] INPUT\n") or "send [OPTIONS] INPUT" in send.splitlines()[0]
    assert "[" + "|".join(FORMAT_CHOICES) + "]" in send and "--limit N" in send and "--journal PATH" in send
    assert "NUMBER..." in invoke("suppress", "add", "-h", cwd=tmp_path).stdout
    assert "[PATH]" in invoke("config", "init", "-h", cwd=tmp_path).stdout.splitlines()[0]


def test_every_option_has_help():
    for path, cmd in all_commands():
        for param in cmd.params:
            if param.param_type_name == "option" and not param.hidden:
                assert param.help, (path, param.name)
            if param.param_type_name == "argument":
                assert param.metavar and param.metavar.isupper(), (path, param.name)


def test_completion_offers_formats_and_the_configs_providers(tmp_path, monkeypatch):
    from typer._completion_classes import BashComplete
    from typer.main import get_command

    from sms_cli.cli.app import app

    cmd = get_command(app)

    def complete(*args, incomplete=""):
        shell = BashComplete(cmd, {}, "sms-cli", "_SMS_CLI_COMPLETE")
        return [c.value for c in shell.get_completions(list(args), incomplete)]

    monkeypatch.chdir(tmp_path)
    for var in ("SMS_CLI_CONFIG", "XDG_CONFIG_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert complete("send", "x.csv", "--format") == list(FORMAT_CHOICES)
    assert complete("plan", "x.csv", "--format", incomplete="js") == ["json", "jsonl"]
    two = "providers:\n  alpha:\n    type: outbox\n  beta:\n    type: outbox\n"
    private_config(tmp_path / "mine.yaml", two)
    assert complete("send", "x.csv", "--config", "mine.yaml", "--provider") == ["alpha", "beta"]
    assert complete("send", "x.csv", "--provider") == ["outbox"]  # no config anywhere: the built-in one
    monkeypatch.setenv("SMS_CLI_CONFIG", "mine.yaml")
    assert complete("validate", "x.csv", "--provider", incomplete="b") == ["beta"]
    private_config(tmp_path / "broken.yaml", "providers: [\n")
    assert complete("send", "x.csv", "--config", "broken.yaml", "--provider") == []  # never fails
    assert complete("config", "init", "--provider-type") == ["uspeedo", "tencent", "aliyun"]


def test_send_from_a_terminal_stdin_says_how_to_end(tmp_path, monkeypatch):
    import sms_cli.cli.app as cli

    monkeypatch.setattr(cli, "_terminal", lambda stream: stream is cli.sys.stdin)
    r = invoke("send", "-", "--format", "lines", "-t", "T", "--dry-run", cwd=tmp_path, input="+6591234500\n")
    assert r.returncode == 0 and "reading rows from stdin" in r.stderr and "Ctrl-D" in r.stderr
    monkeypatch.setattr(cli, "_terminal", lambda stream: False)
    quiet = invoke("send", "-", "--format", "lines", "-t", "T", "--dry-run", cwd=tmp_path, input="+6591234500\n")
    assert "reading rows" not in quiet.stderr


def test_encoding_and_delimiter_reach_the_reader(tmp_path):
    rows = "phone|template_id|param1\n+6591234500|T|Jos\u00e9\n+6591234501|T|Ren\u00e9e\n"
    (tmp_path / "in.csv").write_bytes(rows.encode("cp1252"))
    unread = invoke("validate", "in.csv", cwd=tmp_path)
    assert unread.returncode == 2 and "UTF-8" in unread.stderr
    for command in ("validate", "plan"):
        r = invoke(command, "in.csv", "--encoding", "cp1252", "--delimiter", "pipe", "--json", cwd=tmp_path)
        assert r.returncode == 0, (command, r.stdout, r.stderr)
    plan = invoke("plan", "in.csv", "--encoding", "cp1252", "--delimiter", "|", "--json", cwd=tmp_path).json()
    assert plan["to_send"] == 2
    sent = invoke("send", "in.csv", "--encoding", "cp1252", "--delimiter", "|", cwd=tmp_path)
    assert sent.returncode == 0, sent.stderr
    outbox = [json.loads(x) for x in (tmp_path / "sms-outbox.jsonl").read_text().splitlines()]
    assert [m["params"] for m in outbox] == [["Jos\u00e9"], ["Ren\u00e9e"]]
    st = invoke("status", "in.csv", "--encoding", "cp1252", "--delimiter", "|", cwd=tmp_path)
    assert st.returncode == 0, st.stdout + st.stderr
    bad = invoke("validate", "in.csv", "--delimiter", "ab", cwd=tmp_path)
    assert bad.returncode == 2 and "delimiter" in bad.stderr


# --- 6. progress -----------------------------------------------------------------------------------
class _Provider:
    type = "uspeedo"


class _Cfg:
    warnings = []


class _Source:
    lines, fmt = 201, "csv"


def frames(buf) -> list[str]:
    return [f for f in re.split(r"[\r\n]", ANSI.sub("", buf.getvalue())) if f.startswith("sending")]


@pytest.mark.parametrize("width", [60, 120])
def test_progress_keeps_done_rate_and_eta_at_any_width(width):
    from rich.console import Console

    from sms_cli.store.ledger import Ledger, Row
    from sms_cli.core.outcomes import Fate
    from sms_cli.cli.output import RunView
    from sms_cli.run.send import Summary

    buf = io.StringIO()
    view = RunView(console=Console(file=buf, force_terminal=True, width=width, color_system=None))
    with view:
        view.started(_Provider, _Cfg, _Source)
        ledger = Ledger()
        for i in range(123):
            fate = (Fate.ACCEPTED, Fate.REJECTED, Fate.INVALID, Fate.UNKNOWN)[i % 4]
            ledger.settle(Row({}, i + 2, f"x:{i}", "OTP_LOGIN"), fate, "Code", "reason")
        ledger.tally.sent_rows = 123
        view._last = 0
        view.progress(ledger.tally)
        view._bar.refresh()
        view.finish(Summary(provider="emu", provider_type="uspeedo", tally=ledger.tally, elapsed=1.0,
                            stopped="SIGINT"))
    last = frames(buf)[-1]
    assert len(last) <= width
    assert "123/200" in last and re.search(r"\d+/s", last) and re.search(r"-:--:--|\d+:\d\d:\d\d", last), last
    if width == 120:
        assert "accepted 31" in last
    out = buf.getvalue()
    # the progress display was taken off the screen before the summary was printed
    assert out.index("stopped by SIGINT") > out.rindex("\x1b[2K")
    assert view._bar is None


def test_progress_leaves_the_screen_when_the_run_raises():
    from rich.console import Console

    from sms_cli.cli.output import RunView

    buf = io.StringIO()
    with pytest.raises(RuntimeError):
        with RunView(console=Console(file=buf, force_terminal=True, width=60, color_system=None)) as view:
            view.started(_Provider, _Cfg, _Source)
            raise RuntimeError("disk gone")
    assert view._bar is None and buf.getvalue().rstrip("\x1b[?25h").endswith("\x1b[2K")
