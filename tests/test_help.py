"""`--help` of every command: each option says its default, and the examples work when pasted
(run here, in order, in a scratch folder holding the files they name, against the emulator)."""
import os
import shlex
import shutil

import typer

from conftest import ROOT, invoke
from sms_cli.cli.app import app
from sms_cli.emulator.server import DEFAULT_KEY_ID, DEFAULT_KEY_SECRET


def commands(group=None, path=()):
    group = group or typer.main.get_command(app)
    for name, sub in group.commands.items():
        if hasattr(sub, "commands"):
            yield from commands(sub, path + (name,))
        else:
            yield path + (name,), sub


def examples(cmd) -> list[str]:
    text = (cmd.help or "").split("Examples:", 1)
    return [ln.strip() for ln in text[1].splitlines() if ln.strip()] if len(text) == 2 else []


def test_every_option_of_every_command_says_its_default(tmp_path):
    for path, cmd in commands():
        ctx = cmd.make_context("sms-cli", [], resilient_parsing=True)
        options = 0
        for param in cmd.get_params(ctx):
            if param.param_type_name != "option" or param.name == "help":
                continue
            options += 1
            assert "default" in cmd._with_default(param, param.get_help_record(ctx)[1]), (path, param.name)
        assert invoke(*path, "--help", cwd=tmp_path).stdout.count("default") >= options  # as the help shows


def _config(folder, emu):
    (folder / "sms-cli.yaml").write_text(f"""default_provider: uspeedo
default_region: HK
suppression_list: opted-out.txt
providers:
  uspeedo: {{type: uspeedo, endpoint: "{emu.url}/api", account_id: "10001", access_key_id: {DEFAULT_KEY_ID},
            access_key_secret: {DEFAULT_KEY_SECRET}, rate_limit: 0}}
  tencent: {{type: tencent, endpoint: "{emu.url}", sms_sdk_app_id: "1400000001", secret_id: {DEFAULT_KEY_ID},
            secret_key: {DEFAULT_KEY_SECRET}, rate_limit: 0}}
templates:
  OTP_LOGIN: {{params: [code], text: "Your code is {{1}}."}}
  ORDER_SHIPPED: {{params: [order, eta]}}
  PROMO_NOV: {{params: [name]}}
""")
    (folder / "sms-cli.yaml").chmod(0o600)


def _shell(line: str):
    """An example's parts: (producer of its stdin or None, sms-cli's words, < file, > file)."""
    words = shlex.split(line)
    producer = stdin = out = None
    if "|" in words:
        producer, words = words[:words.index("|")], words[words.index("|") + 1:]
    if "<" in words:
        stdin, words = words[-1], words[:-2]
    if ">" in words:
        out, words = words[-1], words[:-2]
    assert words[0] == "sms-cli", line
    return producer, words[1:], stdin, out


def _run(line: str, cwd, env):
    """One example as a shell would run it: `cat F | sms-cli ...`, `cut -d, -f1 F | ...`,
    `... < F` and `... > F` are done here, the sms-cli part in this process."""
    producer, words, stdin_file, out = _shell(line)
    stdin = (cwd / stdin_file).read_text() if stdin_file else None
    if producer:
        text = (cwd / producer[-1]).read_text()
        stdin = text if producer[0] == "cat" else "".join(x.split(",")[0] + "\n" for x in text.splitlines())
    r = invoke(*words, cwd=cwd, input=stdin, env=env)
    if out:
        (cwd / out).write_text(r.stdout)
    return r


# what some examples need that no scratch folder has: a server that would never return, an
# absolute system path, a wait for receipts of 30 minutes, the journal of a stdin run named by
# the content's hash; these are parsed, not run
PARSED_ONLY = ("sms-cli emulator", "/etc/", "/var/lib/", "--wait 30m", "sms-stdin-0123456789ab")


def test_every_help_example_parses_and_runs(tmp_path, emu):
    _config(tmp_path, emu)
    shutil.copy(ROOT / "samples" / "recipients.csv", tmp_path)
    shutil.copy(ROOT / "samples" / "recipients.jsonl", tmp_path)
    shutil.copy(ROOT / "samples" / "numbers.txt", tmp_path)
    (tmp_path / "opted-out.csv").write_text("+85255311190,asked by mail\n+6591234599,asked by phone\n")
    env = {"XDG_CONFIG_HOME": str(tmp_path / "xdg"), "SMS_EMULATOR_SECRET": None}
    ran = 0
    for path, cmd in commands():
        lines = examples(cmd)
        assert lines, path
        for line in lines:
            words = _shell(line)[1]
            assert words[:len(path)] == list(path), line  # each example is of its own command
            ctx = cmd.make_context("sms-cli", words[len(path):])  # parses: no usage error
            ctx.close()
            if any(p in line for p in PARSED_ONLY):
                continue
            where, run_env = tmp_path, env
            if path == ("config", "init"):  # each as on a new machine: nothing written before it
                where = tmp_path / f"init-{ran}"
                where.mkdir()
                run_env = {**env, "XDG_CONFIG_HOME": str(where / "xdg")}
            r = _run(line, where, run_env)
            # it did its job: not a usage, input or config error (2) nor a fatal one (3); 4 is
            # receipts' "some still pending", as the emulator's receipts take a second
            assert r.returncode in (0, 1, 4), (line, r.returncode, r.stderr)
            ran += 1
    assert ran >= 25


def test_the_overview_and_group_examples_parse(tmp_path):
    root = typer.main.get_command(app)
    groups = [root] + [sub for sub in root.commands.values() if hasattr(sub, "commands")]
    checked = 0
    for group in groups:
        for line in examples(group):
            words = _shell(line)[1]
            cmd = root
            while hasattr(cmd, "commands"):
                cmd, words = cmd.commands[words[0]], words[1:]
            cmd.make_context("sms-cli", words).close()  # a usage error would raise here
            checked += 1
    assert checked >= 6
