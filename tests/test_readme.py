"""Every command shown in the README's `sh` blocks runs, in order, against a real emulator
started by the README's own emulator command (on a free port instead of 8787): the tour's in a
shell, as a user types them; the other sections' examples after it, in this process."""
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys

from conftest import ROOT, cli_env, run_main

README = ROOT / "README.md"


def readme_commands(section: str = "") -> list[str]:
    """The commands of the README's `sh` blocks (of one `## section` when given), in order."""
    text = README.read_text(encoding="utf-8")
    if section:
        text = text[text.index(f"## {section}"):]
        text = text[:text.find("\n## ", 3) % (len(text) + 1)]
    blocks = re.findall(r"```sh\n(.*?)```", text, re.S)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def stated_exit(cmd: str) -> tuple[str, int | None]:
    """A README command and the exit code its `# exit N` comment states (None: no comment)."""
    m = re.fullmatch(r"(.*?)\s+# exit (\d+)", cmd)
    return (m.group(1), int(m.group(2))) if m else (cmd, None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


SETUP = "python3 -m venv .venv && . .venv/bin/activate && "  # a venv first: PEP 668 systems refuse pip outside one


def test_readme_has_exactly_two_setup_commands_first_and_ci_runs_the_test_line():
    cmds = readme_commands()
    assert stated_exit(cmds[0]) == (SETUP + "pip install . && sms-cli send samples/recipients.csv", 1)
    assert cmds[1] == SETUP + "pip install -e '.[test]' && python -m pytest"
    ci = [ln for ln in (ROOT / ".ci" / "run").read_text().splitlines() if ln and not ln.startswith("#")]
    assert ci[-1] == cmds[1]  # .ci/run runs exactly the README's test line
    assert all(ln.startswith(("set ", "cd ")) for ln in ci[:-1])  # and nothing else
    for line in cmds[:2]:  # every pip of the line runs in the venv it made
        assert line.index(". .venv/bin/activate") < line.index("pip install")
    # (that POSIX sh takes both lines as written is checked by the tour, which starts shells anyway)


def test_every_tour_command_states_its_exit_code():
    assert readme_commands("A five-minute tour") == readme_commands()[2:len(readme_commands("A five-minute tour")) + 2]
    for cmd in readme_commands("A five-minute tour"):
        if not cmd.startswith("export ") and not cmd.endswith("&"):
            assert stated_exit(cmd)[1] is not None, cmd


def fresh_copy(dest):
    """The checkout's samples as a fresh clone has them: what .gitignore ignores (journals,
    failures files, outboxes of an earlier try) left behind."""
    ignored = [ln.strip() for ln in (ROOT / ".gitignore").read_text().splitlines() if ln.strip()]
    shutil.copytree(ROOT / "samples", dest / "samples", ignore=shutil.ignore_patterns(*ignored))


def test_the_tour_exits_as_it_states_at_each_step(tmp_path):
    for line in readme_commands()[:2]:  # the two setup lines: POSIX sh takes them as written
        assert subprocess.run(["sh", "-n", "-c", line]).returncode == 0, line
    fresh_copy(tmp_path)
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
    tour = readme_commands()[:1] + readme_commands("A five-minute tour")
    try:
        # the first command first, as on a fresh clone: the outbox rehearsal it runs must not keep
        # the tour's real send through the emulator from sending (issue 20, path 1)
        for line in tour + readme_commands()[len(tour) + 1:]:
            cmd, code = stated_exit(line.replace("8787", port))
            if cmd.startswith(SETUP):
                cmd = cmd.split("&&")[-1].strip()  # making the venv and installing is CI's job (.ci/run)
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
            if line in tour or not in_process(cmd):
                r = subprocess.run(["bash", "-c", cmd], cwd=tmp_path, env=env, text=True, capture_output=True,
                                   timeout=120, stdin=subprocess.DEVNULL)
            else:  # another section's example: the same command line through the real entry point
                r = run_main(*shlex.split(cmd)[1:], cwd=tmp_path,
                             env={k: v for k, v in env.items() if k.startswith("SMS_")})
            # the tour states each code; other sections' examples (no `# exit`) end 0 or 1
            assert r.returncode == code if code is not None else r.returncode in (0, 1), (cmd, r.returncode, r.stderr)
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


def in_process(cmd: str) -> bool:
    """A plain `sms-cli ...` line, which needs no shell (no pipe, redirection, variable or list):
    run in this process, it saves a Python start-up (a third of a second of CPU) and parses the
    same. The tour itself always runs in a shell."""
    lexer = shlex.shlex(cmd, posix=True, punctuation_chars=True)  # unquoted ();<>|& come out alone
    tokens = list(lexer)
    return (tokens[0] == "sms-cli" and not re.search(r"[$`*?\[]", cmd)
            and not any(set(t) <= set(lexer.punctuation_chars) for t in tokens))


def _accepted(folder) -> int:
    """Lines in the emulator's log: it writes them before it answers, so they are there by now."""
    log = folder / "emulator-accepted.jsonl"
    return len(log.read_text().splitlines()) if log.exists() else 0
