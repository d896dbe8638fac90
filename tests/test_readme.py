"""Every command shown in the README's `sh` blocks runs, in order, against a real emulator
started by the README's own emulator command (on a free port instead of 8787)."""
import json
import os
import re
import shutil
import socket
import subprocess
import sys

from conftest import ROOT, cli_env

README = ROOT / "README.md"


def readme_commands() -> list[str]:
    blocks = re.findall(r"```sh\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_readme_has_exactly_two_setup_commands_first():
    cmds = readme_commands()
    assert cmds[0] == "pip install . && sms-cli send samples/recipients.csv"
    assert cmds[1] == "pip install -e '.[test]' && python -m pytest"
    ci = (ROOT / ".ci" / "run").read_text()
    assert "pip install --quiet -e '.[test]'" in ci and "python -m pytest" in ci


def test_every_readme_command_runs(tmp_path):
    shutil.copytree(ROOT / "samples", tmp_path / "samples")
    port = str(free_port())
    cfg = tmp_path / "samples" / "emulator.yaml"
    cfg.write_text(cfg.read_text().replace("8787", port))
    cfg.chmod(0o600)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    wrapper = bindir / "sms-cli"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m sms_cli "$@"\n')
    wrapper.chmod(0o755)
    env = cli_env({"PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"})
    background, ran = [], []
    try:
        # the first command first, as on a fresh clone: the outbox rehearsal it runs must not keep
        # the tour's real send through the emulator from sending (issue 20, path 1)
        for cmd in [readme_commands()[0]] + readme_commands()[2:]:
            cmd = cmd.replace("8787", port)
            if cmd.startswith("pip install"):
                cmd = cmd.split("&&", 1)[1].strip()  # the install itself is CI's job
            if cmd.startswith("export "):
                name, _, value = cmd[len("export "):].partition("=")
                env[name] = value
                continue
            if cmd.endswith("&"):
                proc = subprocess.Popen(["bash", "-c", cmd[:-1]], cwd=tmp_path, env=env, text=True,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                background.append(proc)
                assert "listening on" in proc.stdout.readline()
                continue
            before = _accepted(tmp_path)
            r = subprocess.run(["bash", "-c", cmd], cwd=tmp_path, env=env, text=True, capture_output=True,
                               timeout=120, stdin=subprocess.DEVNULL)
            assert r.returncode in (0, 1), (cmd, r.returncode, r.stderr)
            assert "Traceback" not in r.stderr and (r.stdout or r.stderr), cmd
            ran.append((cmd, r, _accepted(tmp_path) - before))
    finally:
        for proc in background:
            proc.terminate()
            proc.wait(timeout=10)
    by_cmd = {}
    for cmd, r, sent in ran:
        by_cmd.setdefault(cmd, []).append((r, sent))
    send = "sms-cli send samples/recipients.csv --config samples/emulator.yaml"
    (first, sent1), (again, sent2) = by_cmd[send]
    assert first.returncode == 1 and sent1 == 32 - 4 - 1  # invalid rows and one blacklisted number
    assert sent2 == 0 and "resumed" in again.stderr  # the re-run sends nothing
    rehearsal = by_cmd["sms-cli send samples/recipients.csv"][0][0]
    assert "rehearsal" in rehearsal.stderr
    piped = next(r for cmd, r, _ in ran if cmd.startswith("cat samples/numbers.txt"))
    assert json.loads(piped.stdout)["accepted"] == 4


def _accepted(folder) -> int:
    """Lines in the emulator's log: it writes them before it answers, so they are there by now."""
    log = folder / "emulator-accepted.jsonl"
    return len(log.read_text().splitlines()) if log.exists() else 0
