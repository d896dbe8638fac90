"""Ctrl-C (or SIGTERM) in the first milliseconds of a run: whenever it lands in sms-cli's code,
the run ends 130/143 with one line, never a traceback (sms_cli/__main__.py installs the handling
with its first lines)."""
import json
import signal
import subprocess
import sys

from conftest import cli_env, signal_unless_ended

# 0, 5, ... 60 ms after the start, then later ones that surely land in sms-cli's own imports or
# run (the command reads rows from a stdin that stays open, so it cannot end on its own)
DELAYS_MS = list(range(0, 65, 5)) + [150, 400]
EXPECTED = {signal.SIGINT: (130, "sms-cli: interrupted by SIGINT"),
            signal.SIGTERM: (143, "sms-cli: interrupted by SIGTERM")}


def _interrupt(sig, delay_ms: float, tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "sms_cli", "validate", "-", "--format", "lines",
                             "--template", "T", "--json"], cwd=tmp_path, env=cli_env(), text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    signal_unless_ended(proc, sig, delay_ms / 1000)  # (stdin stays open: it never ends on its own)
    out, errs = proc.communicate(timeout=30)
    return proc.returncode, out, errs


def _before_sms_cli(code: int, errs: str) -> bool:
    """The signal landed while the interpreter itself started (before sms-cli's first line ran):
    killed by the signal outright, or Python's own start-up traceback with no sms-cli frame in it
    (site's imports; nothing of sms-cli's can catch that)."""
    if code < 0 and not errs:
        return True
    return "Traceback" in errs and "/sms_cli/" not in errs.replace("\\", "/")


def test_a_signal_at_any_moment_of_start_up_ends_130_or_143_with_one_line(tmp_path):
    landed_in_sms_cli = 0
    for sig, delays in ((signal.SIGINT, DELAYS_MS), (signal.SIGTERM, [0, 30, 60, 400])):
        for delay in delays:
            code, out, errs = _interrupt(sig, delay, tmp_path)
            if _before_sms_cli(code, errs):
                continue
            landed_in_sms_cli += 1
            want_code, want_line = EXPECTED[sig]
            assert (code, errs.splitlines()) == (want_code, [want_line]), (sig, delay, code, errs)
            assert json.loads(out)["error"]["exit_code"] == want_code  # --json: the error object, alone
    assert landed_in_sms_cli >= 2  # the late signals at least reached sms-cli's code
