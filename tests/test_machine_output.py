"""What scripts read: --json answers every exit with one object on stdout (errors included), a
reader that closes stdout early stops the writing and not the run, file names that are not
UTF-8 never stop a run, and `--format` is spelt one way everywhere."""
import json
import os
import shutil
import subprocess

import pytest

from conftest import ROOT, cli_command, cli_env, invoke, make_rows, run_main

SAMPLES = ROOT / "samples"


def _error(stdout: str) -> dict:
    doc = json.loads(stdout)  # the whole of stdout is one JSON document
    assert set(doc) == {"schema_version", "error", "exit_code"}
    assert set(doc["error"]) == {"code", "message", "exit_code"} and doc["error"]["exit_code"] == doc["exit_code"]
    return doc


@pytest.mark.parametrize("command", ["send", "plan", "status", "validate", "receipts"])
def test_a_usage_error_with_json_is_a_json_error_on_stdout_and_the_human_line_on_stderr(command, tmp_path):
    r = run_main(command, "in.csv", "--json", "--no-such-option", cwd=tmp_path)  # the entry point answers it
    doc = _error(r.stdout)
    assert r.returncode == doc["exit_code"] == 2 and "--no-such-option" in doc["error"]["message"]
    assert "No such option" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("command", ["send", "plan", "status", "validate", "receipts"])
def test_input_and_config_errors_with_json_are_json_errors(command, tmp_path):
    missing = invoke(command, "missing.csv", "--json", cwd=tmp_path)
    assert missing.returncode == 2 and _error(missing.stdout)["error"]["message"]
    assert "missing.csv" in missing.stderr
    if command == "status":  # with no journal it reads no config: its answer is the status object
        return
    make_rows(tmp_path / "in.csv", 2)
    (tmp_path / "bad.yaml").write_text("providers: [\n")
    bad = invoke(command, "in.csv", "--config", "bad.yaml", "--json", cwd=tmp_path)
    assert bad.returncode == 2 and _error(bad.stdout)["error"]["code"] == "ConfigError"


def test_validate_json_is_one_object_even_when_every_row_is_valid(tmp_path):
    make_rows(tmp_path / "in.csv", 3)
    doc = json.loads(invoke("validate", "in.csv", "--json", cwd=tmp_path).stdout)
    assert doc == {"schema_version": 1, "problems": [], "rows": 3, "valid": 3, "invalid": 0, "exit_code": 0}
    bad = json.loads(invoke("validate", SAMPLES / "recipients.csv", "--json", cwd=tmp_path).stdout)
    assert (bad["rows"], bad["invalid"], bad["exit_code"]) == (32, 4, 1)
    assert [p["line"] for p in bad["problems"]] == [7, 14, 22, 27]


def _closed_stdout(*args, cwd) -> tuple[int, str]:
    """`sms-cli ARGS | head -0`: the reader is gone before the first byte is written."""
    proc = subprocess.Popen(cli_command(*args), cwd=cwd, env=cli_env(), text=True, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()
    errs = proc.stderr.read()
    return proc.wait(timeout=120), errs


def test_a_closed_stdout_ends_the_writing_quietly_never_the_send(tmp_path):
    make_rows(tmp_path / "in.csv", 400, invalid=1)
    code, errs = _closed_stdout("send", "in.csv", "--json", cwd=tmp_path)
    assert code == 1 and "internal error" not in errs and "Broken pipe" not in errs and "Traceback" not in errs
    outbox = (tmp_path / "sms-outbox.jsonl").read_text().splitlines()
    assert len(outbox) == 400  # every valid row sent
    for args in (["validate", "in.csv", "--json"], ["status", "in.csv"]):
        code, errs = _closed_stdout(*args, cwd=tmp_path)
        assert code == 1 and "error" not in errs and "Traceback" not in errs, (args, errs)


def test_a_file_name_that_is_not_utf8_is_escaped_in_json_on_a_strict_stdout(tmp_path, emu, write_config):
    name = os.fsdecode(b"caf\xe9-list.csv")
    shutil.copy(SAMPLES / "recipients.csv", tmp_path / name)
    cfg = write_config(emu)
    strict = {"errors": "strict"}  # PYTHONIOENCODING=utf-8:strict
    r = run_main("send", name, "--config", cfg, "--json", cwd=tmp_path, **strict)
    assert r.returncode == 1 and "internal error" not in r.stderr, r.stderr
    doc = json.loads(r.stdout)
    assert doc["accepted"] == 27 and os.fsencode(doc["failures_file"]) == b"caf\xe9-list.failed.csv"
    assert (tmp_path / doc["failures_file"]).exists()  # the escape decodes back to the real name
    for command in ("status", "validate", "receipts"):
        r = run_main(command, name, "--config", cfg, "--json", cwd=tmp_path, **strict)
        assert r.returncode in (0, 1, 4) and json.loads(r.stdout)["exit_code"] == r.returncode, (command, r.stderr)
    assert json.loads(r.stdout)["input"] in (name, "caf\\xe9-list.csv")  # receipts' answer, escaped either way


def test_format_is_spelt_one_way_in_every_command(tmp_path):
    shown = set()
    for command in ("send", "plan", "validate", "status", "receipts"):
        line = next(ln for ln in invoke(command, "--help", cwd=tmp_path).stdout.splitlines() if "-f, --format" in ln)
        shown.add(line.split("--format", 1)[1].split()[0])
    assert shown == {"[csv|tsv|json|jsonl|lines]"}
    tsv = tmp_path / "in.txt"
    tsv.write_text("phone\ttemplate_id\tparam1\n+6591234500\tT\t1\n")
    assert invoke("validate", tsv, "--format", "tsv", cwd=tmp_path).returncode == 0
    bad = invoke("receipts", "in.txt", "--format", "text", cwd=tmp_path)
    assert bad.returncode == 2 and "'text' is not one of" in bad.stderr


def test_the_confirmation_asks_on_stderr_and_leaves_stdout_alone(monkeypatch, capsys):
    import io

    from sms_cli.cli.app import ask

    for typed, default, want in (("y\n", False, True), ("YES\n", False, True), ("n\n", False, False),
                                 ("\n", False, False), ("\n", True, True), ("maybe\n", False, False)):
        monkeypatch.setattr("sys.stdin", io.StringIO(typed))
        assert ask("Send them?", default=default) is want
        out, errs = capsys.readouterr()
        assert out == "" and errs.startswith("Send them? [")
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    with pytest.raises(EOFError):  # stdin closed: no answer, which confirm_send takes as no
        ask("Send them?")


def test_validate_json_closes_its_object_with_the_error_that_stopped_it_half_way(tmp_path, monkeypatch):
    """An input that fails after some problems were written (here: the reader raises on the
    row after the first problem): the streamed object still parses, ending in `error`."""
    from sms_cli.cli import commands
    from sms_cli.core.errors import InputError

    real = commands.validate

    def failing_half_way(req):
        gen = real(req)
        yield next(gen)
        raise InputError("in.csv", "cannot read: disk gone", 9)

    monkeypatch.setattr(commands, "validate", failing_half_way)
    (tmp_path / "in.csv").write_text("phone,template_id\n123,T\n+6591234500,T\n")
    r = invoke("validate", "in.csv", "--json", cwd=tmp_path)
    doc = json.loads(r.stdout)
    assert r.returncode == 2 and doc["exit_code"] == 2 and len(doc["problems"]) == 1
    assert doc["error"] == {"code": "InputError", "message": "in.csv:9: cannot read: disk gone", "exit_code": 2}
