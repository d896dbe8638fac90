"""The ledger's guarantee, flow by flow, through the CLI against the emulator: within one
working set (an input, its failures files, and every re-run of either) a message is accepted
at most once, whatever the operator changes between runs, and every row ends accepted, in the
failures file with a reason, or unknown."""
from __future__ import annotations

import csv
import json
import shutil
from collections import Counter
from pathlib import Path

from conftest import ROOT, accepted_counts, invoke, make_rows, phone_numbers

SAMPLES = ROOT / "samples"


def send(*args, cwd, **kw):
    r = invoke("send", *args, "--json", cwd=cwd, **kw)
    return r.returncode, r.json(), r


def read_csv(path) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def assert_once(emu) -> Counter:
    counts = accepted_counts(emu)
    twice = {p: n for p, n in counts.items() if n > 1}
    assert not twice, f"accepted twice: {twice}"
    return counts


def accounted(input_phones: set[str], emu, failures_path: Path) -> None:
    """Every row of the input is accepted at the emulator or in the failures file, not both."""
    accepted = set(assert_once(emu))
    failed = {r["phone"] for r in read_csv(failures_path)} if failures_path.exists() else set()
    assert not (accepted & failed)
    assert input_phones <= accepted | failed


# --- 1. --dedupe across runs ------------------------------------------------------------------
def test_dedupe_holds_across_runs_and_spellings(tmp_path, emulator, write_config):
    emu = emulator()
    cfg = write_config(emu)
    (tmp_path / "dup.csv").write_text("phone,template_id,param1\n+85255311111,OTP_LOGIN,1\n"
                                      "(852)55311111,OTP_LOGIN,1\n0085255311111,OTP_LOGIN,1\n"
                                      "+6591234500,OTP_LOGIN,2\n")
    for i in range(4):
        code, s, _ = send("dup.csv", "--config", cfg, "--dedupe", cwd=tmp_path)
        assert code == 0
        assert s["duplicates"] == 2
        assert s["accepted"] + s["accepted_earlier"] == 2
    assert assert_once(emu) == Counter({"+85255311111": 1, "+6591234500": 1})


# --- 2. options changed between runs ----------------------------------------------------------
def test_changed_region_sender_and_provider_never_resend(tmp_path, emulator, write_config):
    emu = emulator()
    cfg = write_config(emu)
    tcfg = write_config(emu, "tencent")
    text = (SAMPLES / "recipients.csv").read_text()
    (tmp_path / "list.csv").write_text(text + "55311199,OTP_LOGIN,777777,,,national\n")
    code, s, _ = send("list.csv", "--config", cfg, cwd=tmp_path)
    assert code == 1 and s["invalid"] == 5 and s["accepted"] == 28
    code, s, _ = send("list.csv", "--config", cfg, "--default-region", "HK", cwd=tmp_path)
    assert s["accepted"] == 1 and s["accepted_earlier"] == 28  # only the national number, now readable
    assert code == 1 and s["invalid"] == 4
    code, s, _ = send("list.csv", "--config", cfg, "--default-region", "HK", "--sender-id", "OTHER",
                      cwd=tmp_path)
    assert s["accepted"] == 0 and s["accepted_earlier"] == 29
    code, s, _ = send("list.csv", "--config", tcfg, "--default-region", "HK", cwd=tmp_path)
    assert s["accepted"] == 0 and s["accepted_earlier"] == 29 and s["provider_type"] == "tencent"
    assert sum(assert_once(emu).values()) == 29  # 29 valid rows, 29 messages, four runs


# --- 3. stdin: one failures file a resume reuses ----------------------------------------------
def test_stdin_failures_file_is_reused_by_a_resume(tmp_path, emulator, write_config):
    emu = emulator()
    cfg = write_config(emu)
    phones = make_rows(tmp_path / "big.csv", 300)
    data = (tmp_path / "big.csv").read_text()
    work = tmp_path / "work"
    work.mkdir()
    code, s, _ = send("-", "--config", cfg, "--limit", "120", cwd=work, input=data)
    assert code == 5 and s["accepted"] == 120 and s["deferred"] == 180  # the rest waits
    first = sorted(p.name for p in work.iterdir() if ".failed." in p.name)
    assert len(first) == 1 and first[0].startswith("sms-stdin-")
    stale = work / "old-copy.csv"
    shutil.copy(work / first[0], stale)
    code, s, _ = send("-", "--config", cfg, cwd=work, input=data)
    assert code == 0 and s["accepted"] == 180 and s["accepted_earlier"] == 120
    assert not [p for p in work.iterdir() if ".failed." in p.name]  # replaced, then removed: all accepted
    # the old failures file (180 rows deferred) resent: the ledger knows every one of them
    code, s, _ = send(stale, "--config", cfg, "--journal", s["journal"], cwd=work)
    assert code == 0 and s["accepted"] == 0 and s["accepted_earlier"] == 180
    assert set(assert_once(emu)) == set(phones)


# --- 4. --limit is per invocation ------------------------------------------------------------
def test_limit_is_per_invocation_and_says_what_remains(tmp_path, emulator, write_config):
    emu = emulator()
    cfg = write_config(emu)
    make_rows(tmp_path / "in.csv", 40, invalid=2)
    code, s, r = send("in.csv", "--config", cfg, "--limit", "5", cwd=tmp_path)
    assert s["accepted"] == 5 and s["remaining"] == 35 and s["invalid"] == 2 and code == 1
    code, s, _ = send("in.csv", "--config", cfg, "--limit", "10", cwd=tmp_path)
    assert s["accepted"] == 10 and s["accepted_earlier"] == 5 and s["remaining"] == 25
    text = invoke("send", "in.csv", "--config", cfg, "--limit", "3", cwd=tmp_path).stderr
    assert "22 valid rows remain; run the same command again to continue" in text
    assert sum(assert_once(emu).values()) == 18
    assert "at most N messages" in " ".join(invoke("send", "--help", cwd=tmp_path).stdout.split())


# --- 5. a failures file and its input share one ledger, in either order -----------------------
def test_failures_file_and_input_share_the_ledger(tmp_path, emulator, write_config):
    emu = emulator(throttle_rate=1.0)  # throttled: nothing taken, retryable
    cfg = write_config(emu, max_attempts=1)
    phones = make_rows(tmp_path / "in.csv", 30)
    code, s, _ = send("in.csv", "--config", cfg, cwd=tmp_path)
    assert code == 1 and s["failed"] == 30
    rows = read_csv(tmp_path / "in.failed.csv")
    assert {r["retryable"] for r in rows} == {"yes"} and all(r["sms_ref"] for r in rows)
    emu.options.throttle_rate = 0.0
    code, s, _ = send("in.failed.csv", "--config", cfg, cwd=tmp_path)  # resend the failures file
    assert code == 0 and s["accepted"] == 30
    assert not (tmp_path / "in.failed.csv").exists()  # every row accepted: nothing left to resend
    code, s, _ = send("in.csv", "--config", cfg, cwd=tmp_path)  # then the input again
    assert code == 0 and s["accepted"] == 0 and s["accepted_earlier"] == 30
    assert set(assert_once(emu)) == set(phones)


def test_input_first_then_an_old_failures_file(tmp_path, emulator, write_config):
    emu = emulator(throttle_rate=1.0)  # throttled: nothing taken, retryable
    cfg = write_config(emu, max_attempts=1)
    make_rows(tmp_path / "in.csv", 20)
    send("in.csv", "--config", cfg, cwd=tmp_path)
    shutil.copy(tmp_path / "in.failed.csv", tmp_path / "saved.csv")
    emu.options.throttle_rate = 0.0
    code, s, _ = send("in.csv", "--config", cfg, cwd=tmp_path)
    assert code == 0 and s["accepted"] == 20
    code, s, _ = send("saved.csv", "--config", cfg, "--journal", "in.journal.sqlite", cwd=tmp_path)
    assert code == 0 and s["accepted"] == 0 and s["accepted_earlier"] == 20
    assert len(assert_once(emu)) == 20


def test_a_failures_file_copied_elsewhere_finds_its_journal_through_the_index(tmp_path, emulator, write_config):
    """Issue 20, path 4: the per-user index (XDG_STATE_HOME/sms-cli) knows which journal holds
    the set a failures file came from; without an index entry (another user) it is refused."""
    emu = emulator(throttle_rate=1.0)  # throttled: nothing taken, retryable
    cfg = write_config(emu, max_attempts=1)
    make_rows(tmp_path / "in.csv", 3)
    send("in.csv", "--config", cfg, cwd=tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(tmp_path / "in.failed.csv", elsewhere / "in.failed.csv")
    other_user = tmp_path / "other-state"
    r = invoke("send", "in.failed.csv", "--config", cfg, cwd=elsewhere, env={"XDG_STATE_HOME": str(other_user)})
    assert r.returncode == 2 and "--journal" in r.stderr
    assert not accepted_counts(emu)
    emu.options.throttle_rate = 0.0
    code, s, _ = send("in.failed.csv", "--config", cfg, cwd=elsewhere)
    assert code == 0 and s["accepted"] == 3
    assert s["journal"] == str((tmp_path / "in.journal.sqlite").resolve())
    assert any("continuing its working set" in n for n in s["notes"])
    code, s, _ = send("in.csv", "--config", cfg, cwd=tmp_path)  # the original input: all accepted now
    assert code == 0 and s["accepted"] == 0 and s["accepted_earlier"] == 3
    assert len(assert_once(emu)) == 3


# --- 6. bisection of whole-request refusals -------------------------------------------------
def test_aliyun_blocked_content_bisects_to_the_culprits(tmp_path, emulator, write_config):
    # isv.BLACK_KEY_CONTROL_LIMIT: a template variable holds restricted content (auth-and-limits.md)
    phones = phone_numbers(500)
    culprits = {phones[i] for i in (3, 150, 151, 377, 499)}
    emu = emulator(blocked_words={"casino"})
    cfg = write_config(emu, "aliyun", rate_limit=400)
    with open(tmp_path / "in.csv", "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["phone", "template_id", "param1"])
        w.writerows([p, "OTP_LOGIN", "casino" if p in culprits else "1"] for p in phones)
    code, s, _ = send("in.csv", "--config", cfg, cwd=tmp_path)
    assert code == 1 and s["accepted"] == 495 and s["failed"] == 5
    failed = read_csv(tmp_path / "in.failed.csv")
    assert {r["phone"] for r in failed} == culprits
    assert {r["error_code"] for r in failed} == {"isv.BLACK_KEY_CONTROL_LIMIT"}
    assert {r["retryable"] for r in failed} == {"no"}
    assert s["splits"] > 0 and s["requests"] == 5 + s["splits"] + s["retries"]
    assert set(assert_once(emu)) == set(phones) - culprits
    times = sorted(emu.stats()["request_times"])
    assert all(times[i + 401] - times[i] >= 1.0 for i in range(len(times) - 401))  # inside the rate


# --- paths that must not collide or overwrite the input ---------------------------------------
def test_failures_or_journal_naming_the_input_is_refused(tmp_path, emulator, write_config):
    emu = emulator()
    cfg = write_config(emu)
    make_rows(tmp_path / "in.csv", 3)
    before = (tmp_path / "in.csv").read_bytes()
    for flag in ("--failures", "--journal"):
        r = invoke("send", "in.csv", "--config", cfg, flag, "in.csv", cwd=tmp_path)
        assert r.returncode == 2 and "input file itself" in r.stderr
    assert (tmp_path / "in.csv").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["accepted.jsonl", "in.csv", "sms-cli.yaml"]
    assert not accepted_counts(emu)


def test_json_and_jsonl_inputs_never_share_files(tmp_path, emulator, write_config):
    emu = emulator(blacklist={"+6591234500"})
    cfg = write_config(emu)
    row = {"phone": "+6591234500", "template_id": "OTP_LOGIN", "params": ["1"]}
    (tmp_path / "list.json").write_text(json.dumps([row]))
    (tmp_path / "list.jsonl").write_text(json.dumps({**row, "phone": "+6591234501"}) + "\n")
    code, s1, _ = send("list.json", "--config", cfg, cwd=tmp_path)
    code2, s2, _ = send("list.jsonl", "--config", cfg, cwd=tmp_path)
    assert code == 1 and code2 == 0
    assert s1["failures_file"] != s2["journal"] and s1["journal"] != s2["journal"]
    assert (tmp_path / s1["failures_file"]).exists()  # the clean jsonl run left it alone


# --- an edited input after an unfinished run -------------------------------------------------
def test_edited_input_after_an_unfinished_run(tmp_path, emulator, write_config):
    emu = emulator()
    cfg = write_config(emu)
    phones = make_rows(tmp_path / "in.csv", 60)
    code, s, _ = send("in.csv", "--config", cfg, "--limit", "25", cwd=tmp_path)
    assert s["accepted"] == 25
    lines = (tmp_path / "in.csv").read_text().splitlines()
    extra = phone_numbers(1, start=5000)[0]
    del lines[3]  # a row deleted, one appended: every row after it moves
    lines.append(f"{extra},OTP_LOGIN,999999")
    (tmp_path / "in.csv").write_text("\n".join(lines) + "\n")
    r = invoke("send", "in.csv", "--config", cfg, cwd=tmp_path)
    assert r.returncode == 2 and "25 rows accepted" in r.stderr and "--continue-edited" in r.stderr
    assert sum(accepted_counts(emu).values()) == 25
    code, s, _ = send("in.csv", "--config", cfg, "--continue-edited", cwd=tmp_path)
    assert code == 0 and s["accepted_earlier"] == 24 and s["accepted"] == 60 - 25 + 1 and s["continued_edited"]
    code, s, _ = send("in.csv", "--config", cfg, cwd=tmp_path)  # and its resume sends nothing more
    assert code == 0 and s["accepted_earlier"] == 60 and s["accepted"] == 0
    counts = assert_once(emu)
    assert set(counts) == set(phones) | {extra}


def test_new_version_after_a_finished_run_is_a_new_campaign(tmp_path, emulator, write_config):
    emu = emulator()
    cfg = write_config(emu)
    make_rows(tmp_path / "in.csv", 5)
    assert send("in.csv", "--config", cfg, cwd=tmp_path)[0] == 0
    make_rows(tmp_path / "in.csv", 6)
    code, s, _ = send("in.csv", "--config", cfg, cwd=tmp_path)
    assert code == 0 and s["accepted"] == 6 and not s["resumed"]


# --- --fresh, plan ---------------------------------------------------------------------------
def test_fresh_yes_sends_again_and_says_so(tmp_path, emulator, write_config):
    emu = emulator()
    cfg = write_config(emu)
    make_rows(tmp_path / "in.csv", 4)
    send("in.csv", "--config", cfg, cwd=tmp_path)
    r = invoke("send", "in.csv", "--config", cfg, "--fresh", cwd=tmp_path)
    assert r.returncode == 2 and "--yes" in r.stderr
    r = invoke("send", "in.csv", "--config", cfg, "--fresh", "--yes", cwd=tmp_path)
    assert r.returncode == 0 and "started over" in r.stderr
    assert set(accepted_counts(emu).values()) == {2}


def test_plan_shows_what_the_ledger_skips(tmp_path, emulator, write_config):
    emu = emulator()
    cfg = write_config(emu)
    make_rows(tmp_path / "in.csv", 50)
    send("in.csv", "--config", cfg, "--limit", "20", cwd=tmp_path)
    r = invoke("plan", "in.csv", "--config", cfg, "--json", cwd=tmp_path)
    plan = r.json()
    assert plan["ledger_skips"]["accepted_earlier"] == 20 and plan["to_send"] == 30
    dry = invoke("send", "in.csv", "--config", cfg, "--dry-run", cwd=tmp_path)
    assert "the ledger skips 20 accepted earlier" in dry.stdout
    assert sum(accepted_counts(emu).values()) == 20


# --- the summary ----------------------------------------------------------------------------
def test_summary_counts_agree_and_hide_numbers(tmp_path, emulator, write_config):
    from sms_cli.cli import report
    from sms_cli.store.ledger import Ledger, Row
    from sms_cli.core.outcomes import Fate
    from sms_cli.run.send import Summary

    ledger = Ledger()
    for i in range(12):
        ledger.settle(Row({}, i + 2, f"x:{i}", "T"), Fate.INVALID, "InvalidPhone",
                      f"not a valid phone number: +6591234{i:03d}")
    for i in range(5):
        ledger.settle(Row({}, 20 + i, f"x:{20 + i}", "T"), Fate.REJECTED if i == 0 else Fate.INVALID,
                      f"Code{i}", "blocked")
    s = Summary(provider="p", provider_type="uspeedo", tally=ledger.tally)
    text = report.summary_text(s)
    assert "+6591234" not in text and "12 x InvalidPhone: not a valid phone number: <number>" in text
    assert "... and 3 more reasons" in text
    d = report.summary_dict(s)
    assert d["invalid"] == 16 and d["failed"] == 1 and d["more_failure_reasons"] == 1
    from rich.console import Console

    console = Console(width=120, record=True)
    console.print(report.summary_table(s))
    table = console.export_text()
    total = next(line for line in table.splitlines() if "total" in line).split()
    assert total == ["│", "total", "│", "17", "│", "0", "│", "1", "│", "16", "│"]  # as the text line:
    assert "17 rows: 0 accepted, 1 failed, 16 invalid" in text


def test_quiet_is_silent_on_success_but_names_the_outbox(tmp_path):
    (tmp_path / "in.txt").write_text("+6591234500\n")
    r = invoke("send", "in.txt", "--template", "T", "--quiet", cwd=tmp_path)
    assert r.returncode == 0 and "nothing leaves this machine" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
