"""The operator's tool: validate, plan and dry runs with cost estimates, --limit, --dedupe,
config check, secrets kept out of everything written, output conventions."""
import io
import json
import os
import shutil

import pytest

from conftest import ROOT, make_rows, invoke
from sms_cli.run.send import Summary

SAMPLES = ROOT / "samples"
GSM = "Your code is {1}. Thanks!"  # plain GSM-7
GSM_EXT = "Code [{1}] ~ {2} {curly} \u20ac"  # brackets, tilde, braces, euro: two septets each
CHINESE = "\u60a8\u7684\u9a8c\u8bc1\u7801\u662f{1}\uff0c\u8bf7\u52ff\u544a\u8bc9\u4ed6\u4eba\u3002"


def test_validate_reports_each_problem_with_its_line(tmp_path):
    r = invoke("validate", SAMPLES / "recipients.csv", cwd=tmp_path)
    assert r.returncode == 1
    lines = r.stdout.strip().splitlines()
    assert [int(x.split(":")[1]) for x in lines] == [7, 14, 22, 27]
    assert "MissingTemplate" in lines[2]
    js = invoke("validate", SAMPLES / "recipients.jsonl", "--json", cwd=tmp_path)
    problems = json.loads(js.stdout)["problems"]
    assert [p["line"] for p in problems] == [6, 13, 21, 26] and problems[0]["row"]["phone"] == "12345"
    ok = tmp_path / "ok.txt"
    ok.write_text("+6591234500\n")
    assert invoke("validate", ok, "--template", "T", cwd=tmp_path).returncode == 0


def test_validate_checks_parameters_against_templates(tmp_path):
    (tmp_path / "sms-cli.yaml").write_text(
        "templates:\n  T2: {params: [a, b]}\n  N: {params: [name]}\n  LONG: {text: '{1}'}\n")
    rows = [{"phone": "+6591234500", "template_id": "T2", "params": ["1"]},
            {"phone": "+6591234501", "template_id": "N", "params": {"nom": "x"}},
            {"phone": "+6591234502", "template_id": "LONG", "params": ["x" * 501]},
            {"phone": "+6591234503", "template_id": "T2", "params": ["1", "2"]}]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    r = invoke("validate", "in.jsonl", cwd=tmp_path)
    assert r.returncode == 1
    out = r.stdout.splitlines()
    assert len(out) == 3 and "takes 2 parameter(s), got 1" in out[0] and "'name'" in out[1]
    assert "500" in out[2]


def plan(tmp_path, text, rows, *extra):
    (tmp_path / "sms-cli.yaml").write_text(f"templates:\n  T: {{text: {json.dumps(text)}}}\n")
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    r = invoke("plan", "in.jsonl", "--json", *extra, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_plan_counts_gsm7_parts(tmp_path):
    out = plan(tmp_path, GSM, [{"phone": "+6591234500", "template_id": "T", "params": ["1" * 140]},
                               {"phone": "+6591234501", "template_id": "T", "params": ["12"]}])
    t = out["templates"]["T"]
    assert t["encodings"] == ["GSM-7"] and t["min_length"] == 24 and t["max_length"] == 162
    assert t["parts"] == 2 + 1 and out["billable_parts"] == 3
    assert out["numbers_per_request"] == {"2": 1}


def test_plan_counts_gsm_extension_characters_twice(tmp_path):
    row = {"phone": "+6591234500", "template_id": "T", "params": {"1": "a" * 140, "2": "b", "curly": "{}"}}
    t = plan(tmp_path, GSM_EXT, [row])["templates"]["T"]
    # 'Code [' 6+1 ... : [ ] ~ { } and the euro count two septets each
    text = "Code [" + "a" * 140 + "] ~ b {} \u20ac"
    assert t["encodings"] == ["GSM-7"] and t["max_length"] == len(text) + 6
    assert t["parts"] == 2  # 158 characters but 164 septets: more than one part


def test_plan_counts_chinese_as_ucs2(tmp_path):
    out = plan(tmp_path, CHINESE, [{"phone": "+6591234500", "template_id": "T", "params": ["123456"]},
                                   {"phone": "+6591234501", "template_id": "T", "params": ["9" * 60]}])
    t = out["templates"]["T"]
    assert t["encodings"] == ["UCS-2"] and t["min_length"] == 20 and t["max_length"] == 74
    assert t["parts"] == 1 + 2


def test_dry_run_text_plan_and_nothing_written(tmp_path):
    shutil.copy(SAMPLES / "recipients.csv", tmp_path)
    r = invoke("send", "recipients.csv", "--dry-run", cwd=tmp_path)
    assert r.returncode == 1  # like plan and validate: some rows are invalid
    assert "28 to send" in r.stdout and "1 request(s) of 28 number(s)" in r.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["recipients.csv"]


def test_limit_and_dedupe(tmp_path, emulator, write_config):
    emu = emulator()
    cfg = write_config(emu)
    phones = make_rows(tmp_path / "in.csv", 10)
    with open(tmp_path / "in.csv", "a") as fh:  # repeats of rows 1 and 2: same number, same content
        fh.write(f"{phones[0]},OTP_LOGIN,000000\n{phones[1]},OTP_LOGIN,000001\n{phones[1]},OTP_LOGIN,999999\n")
    r = invoke("send", "in.csv", "--config", cfg, "--dedupe", "--json", cwd=tmp_path)
    s = json.loads(r.stdout)
    assert r.returncode == 0 and s["duplicates"] == 2 and s["accepted"] == 11  # 999999 is new content
    emu2 = emulator()
    r2 = invoke("send", "in.csv", "--config", write_config(emu2), "--limit", "3", "--journal", "other.sqlite",
                 "--fresh", cwd=tmp_path)  # --fresh: the content is recorded in in.journal.sqlite already
    assert r2.returncode == 5 and [e["phone"] for e in emu2.accepted] == phones[:3]  # the rest deferred


def test_config_check_names_missing_variable_never_secrets(tmp_path):
    (tmp_path / "c.yaml").write_text(
        "providers:\n  u:\n    type: uspeedo\n    account_id: '10001'\n    access_key_id: ${MY_KEY_ID}\n"
        "    access_key_secret: ${MY_SECRET}\n")
    r = invoke("config", "check", "--config", "c.yaml", cwd=tmp_path, env={"MY_SECRET": "topsecret-123"})
    assert r.returncode == 2
    assert "MY_KEY_ID" in r.stdout and "topsecret-123" not in r.stdout + r.stderr
    ok = invoke("config", "check", "--config", "c.yaml", cwd=tmp_path,
                 env={"MY_SECRET": "topsecret-123", "MY_KEY_ID": "kid"})
    assert ok.returncode == 0 and "batch_limit=1000" in ok.stdout and "rate_limit=50" in ok.stdout


def test_credentials_from_conventional_environment_variables(tmp_path, emulator):
    emu = emulator()
    (tmp_path / "c.yaml").write_text(f"providers:\n  t:\n    type: tencent\n    endpoint: {emu.url}\n"
                                     "    sms_sdk_app_id: '1400000001'\n    rate_limit: 0\n")
    (tmp_path / "in.txt").write_text("+6591234500\n")
    env = {"TENCENTCLOUD_SECRET_ID": emu.options.key_id, "TENCENTCLOUD_SECRET_KEY": emu.options.key_secret}
    r = invoke("send", "in.txt", "-t", "T", "--config", "c.yaml", cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    assert len(emu.accepted) == 1


def test_literal_secret_in_readable_config_is_warned_about(tmp_path, emulator, write_config):
    emu = emulator()
    cfg = write_config(emu)
    cfg.chmod(0o644)
    (tmp_path / "in.txt").write_text("+6591234500\n")
    r = invoke("send", "in.txt", "-t", "T", "--config", cfg, cwd=tmp_path)
    assert r.returncode == 0
    assert "literal secret" in r.stderr and str(cfg) in r.stderr and emu.options.key_secret not in r.stderr


SECRETS = {"uspeedo": "uS-Secret-9f8e7d6c", "tencent": "Tc-Secret-1a2b3c4d", "aliyun": "Ali-Secret-5e6f7a8b"}


@pytest.mark.parametrize("ptype", sorted(SECRETS))
def test_secrets_appear_nowhere(tmp_path, emulator, write_config, ptype):
    secret = SECRETS[ptype]
    key = "secret_key" if ptype == "tencent" else "access_key_secret"
    good = emulator(key_secret=secret, blacklist={"+6591234503"})
    outputs = []
    make_rows(tmp_path / "in.csv", 6, invalid=1)
    cfg = write_config(good, ptype, **{key: secret})
    for args in (["-v"], ["-v", "--json"], ["-v", "--fresh", "--yes"]):
        r = invoke("send", "in.csv", "--config", cfg, *args, cwd=tmp_path)
        outputs += [r.stdout, r.stderr]
    wrong = write_config(good, ptype, name="bad", **{key: secret[::-1]})  # refused: error paths too
    r = invoke("send", "in.csv", "--config", wrong, "-v", "--journal", "bad.sqlite", "--fresh", cwd=tmp_path)
    assert r.returncode == 3
    outputs += [r.stdout, r.stderr]
    written = [p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and not p.name.startswith("sms-cli")]
    for blob in outputs + [b.decode("utf-8", "replace") for b in written]:
        assert secret not in blob and secret[::-1] not in blob
    # -v logs each request without full phone numbers
    verbose = "\n".join(outputs)
    assert "n=" in verbose and "+6591234500" not in verbose.replace('"+6591234500"', "")


def test_quiet_is_silent_on_success_and_short_on_failure(tmp_path, emulator, write_config):
    emu = emulator(blacklist={"+6591234501"})
    cfg = write_config(emu)
    (tmp_path / "ok.txt").write_text("+6591234500\n")
    ok = invoke("send", "ok.txt", "-t", "T", "--config", cfg, "--quiet", cwd=tmp_path)
    assert ok.returncode == 0 and ok.stdout == "" and ok.stderr == ""
    (tmp_path / "bad.txt").write_text("+6591234501\n")
    bad = invoke("send", "bad.txt", "-t", "T", "--config", cfg, "--quiet", cwd=tmp_path)
    assert bad.returncode == 1 and "failures file" in bad.stderr and bad.stdout == ""
    assert "\x1b[" not in bad.stderr  # no colours when not on a terminal


@pytest.mark.parametrize("command", ["send", "plan", "validate", "status", "emulator", "providers", "config check",
                                     "config init"])
def test_every_command_has_help_with_an_example(tmp_path, command):
    r = invoke(*command.split(), "-h", cwd=tmp_path)
    assert r.returncode == 0 and "\n  Examples:\n    sms-cli " + command.split()[0] in r.stdout


def test_version(tmp_path):
    r = invoke("--version", cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.startswith("sms-cli ")


def test_rich_progress_and_summary_table_on_a_terminal():
    from rich.console import Console

    from sms_cli.store.ledger import Ledger, Row
    from sms_cli.core.outcomes import Fate
    from sms_cli.cli.output import RunView

    class provider:
        type = "uspeedo"

    class cfg:
        warnings = []

    class source:
        lines, fmt = 101, "csv"

    buf = io.StringIO()
    view = RunView(console=Console(file=buf, force_terminal=True, width=120, color_system=None))
    view.started(provider, cfg, source)
    ledger = Ledger()
    for i in range(100):
        fate = Fate.REJECTED if i % 33 == 0 else Fate.ACCEPTED
        ledger.settle(Row({}, i + 2, f"x:{i}", "OTP_LOGIN" if i < 60 else "PROMO_NOV"), fate, "FailContent",
                      "phone in the black list")
    s = Summary(provider="emu", provider_type="uspeedo", tally=ledger.tally, elapsed=2.0)
    view._last = 0
    view.progress(ledger.tally)
    view.finish(s)
    out = buf.getvalue()
    assert "sending" in out and "100/100" in out  # the progress bar
    assert "OTP_LOGIN" in out and "template" in out and "accepted" in out  # the table
    assert "phone in the black list" in out and "rows/s" in out


def test_no_color_is_honoured(monkeypatch):
    from sms_cli.cli.output import stderr_console

    monkeypatch.setitem(os.environ, "NO_COLOR", "1")
    assert stderr_console(force_terminal=True).no_color
