"""Routes and failover (config `routes:`, sms_cli/routes.py and router.py), in-process against
in-thread emulators: one emulator per provider section, so each one's account limit and its
accepted log are its own."""
from __future__ import annotations

import csv
import json
import sqlite3
from collections import Counter
from pathlib import Path

from sms_cli.emulator.server import DEFAULT_KEY_ID, DEFAULT_KEY_SECRET

from conftest import TEMPLATES, invoke, phone_numbers

TEST_KEYS = {"rate_limit": "0", "receipt_rate_limit": "0", "max_attempts": "3", "timeout": "{connect: 2, read: 2}",
             "backoff": "{base: 0.001, cap: 0.005}"}


def section(kind: str, url: str) -> dict:
    if kind == "tencent":
        return {"type": "tencent", "endpoint": url, "region": "ap-singapore", "sms_sdk_app_id": "1400000001",
                "secret_id": DEFAULT_KEY_ID, "secret_key": DEFAULT_KEY_SECRET, "sender_id": "ACME"}
    if kind == "aliyun":
        return {"type": "aliyun", "endpoint": url, "access_key_id": DEFAULT_KEY_ID,
                "access_key_secret": DEFAULT_KEY_SECRET, "sign_name": "ACME"}
    return {"type": "uspeedo", "endpoint": url + "/api", "account_id": "10001", "access_key_id": DEFAULT_KEY_ID,
            "access_key_secret": DEFAULT_KEY_SECRET, "sender_id": "ACME"}


def write_routes_config(folder: Path, sections: dict[str, dict], routes: str, name: str = "sms-cli.yaml") -> Path:
    """`sections`: provider name -> its keys; `routes`: the routes: block as YAML text."""
    lines = ["grace_period: 1", "providers:"]
    for pname, keys in sections.items():
        lines.append(f"  {pname}:")
        lines += [f"    {k}: {v if k in TEST_KEYS else json.dumps(v)}" for k, v in {**keys, **TEST_KEYS}.items()]
    lines.append("templates:")
    lines += [f"  {tid}: {{params: {json.dumps(names)}}}" for tid, names in TEMPLATES.items()]
    lines.append(routes)
    path = folder / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    path.chmod(0o600)
    return path


WORLD = """routes:
  - name: hongkong
    match: {countries: [HK]}
    provider: usp
    templates:
      OTP_LOGIN:
        usp: {id: USP_OTP, params: [code]}
  - name: world
    provider: tc
    fallback: [usp]
    templates:
      OTP_LOGIN:
        tc: {id: "1001", params: ["1"]}
        usp: {id: USP_OTP}
      ORDER_SHIPPED:
        tc: {id: "1002", params: [eta, order]}
"""


def write_input(path: Path, rows: list[tuple[str, str, list[str]]]) -> None:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["phone", "template_id", "param1", "param2"])
        for phone, tid, params in rows:
            w.writerow([phone, tid, *params, *[""] * (2 - len(params))])


def mixed(n_sg: int, n_hk: int, template: str = "OTP_LOGIN") -> list[tuple[str, str, list[str]]]:
    sg = [(p, template, ["123456"] if template == "OTP_LOGIN" else ["A1", "2 days"]) for p in phone_numbers(n_sg)]
    hk = [(f"+8529{1000000 + i:07d}", "OTP_LOGIN", ["654321"]) for i in range(n_hk)]  # valid HK mobiles
    return [row for pair in zip(sg, hk) for row in pair] + sg[len(hk):] + hk[len(sg):]


def journal_rows(folder: Path) -> dict[str, tuple[str, str]]:
    db = sqlite3.connect(folder / "in.journal.sqlite")
    try:
        return {phone: (state, provider) for phone, state, provider in
                db.execute("SELECT phone, state, provider FROM rows").fetchall()}
    finally:
        db.close()


def taken(emu) -> Counter:
    with emu.lock:
        return Counter(e["phone"] for e in emu.accepted)


def send(folder: Path, cfg: Path, *extra: str):
    r = invoke("send", "in.csv", "--config", cfg, "--json", *extra, cwd=folder)
    return r.returncode, r.json()


# --- the config ----------------------------------------------------------------------------------
def test_route_config_errors_name_the_key(tmp_path, emulator):
    emu = emulator()
    sections = {"tc": section("tencent", emu.url), "usp": section("uspeedo", emu.url)}
    write_input(tmp_path / "in.csv", mixed(1, 0))
    bad = {
        "routes:\n  - provider: tc\n    fallbak: [usp]\n": "unknown key 'fallbak'",
        "routes:\n  - provider: tc\n    match: {country: [SG]}\n": "unknown key 'country'",
        "routes:\n  - provider: nope\n": "provider 'nope' is not a configured provider section",
        "routes:\n  - provider: tc\n    match: {countries: [XX]}\n": "'XX' is not an ISO region code",
        "routes:\n  - provider: tc\n    templates: {OTP_LOGIN: {usp: T1}}\n": "not one of this route's providers",
        "routes:\n  - provider: tc\n    templates: {OTP_LOGIN: {tc: {id: T1, parms: [code]}}}\n": "unknown key 'parms'",
        "routes: {provider: tc}\n": "expected a list of rules",
    }
    for i, (routes, message) in enumerate(bad.items()):
        cfg = write_routes_config(tmp_path, sections, routes, name=f"bad{i}.yaml")
        r = invoke("send", "in.csv", "--config", cfg, cwd=tmp_path)
        assert r.returncode == 2 and message in r.stderr, (routes, r.stderr)
    assert not emu.accepted


# --- rule matching and template mapping ---------------------------------------------------------
def test_rows_go_to_their_route_with_the_providers_template(tmp_path, emulator):
    tc, usp = emulator(), emulator()
    cfg = write_routes_config(tmp_path, {"tc": {**section("tencent", tc.url), "prices": {"SG": 0.05}},
                                         "usp": {**section("uspeedo", usp.url), "prices": {"HK": 0.03}}}, WORLD)
    rows = mixed(6, 4)
    rows.append((phone_numbers(1, 500)[0], "ORDER_SHIPPED", ["A7", "3 days"]))
    write_input(tmp_path / "in.csv", rows)

    plan = invoke("plan", "in.csv", "--config", cfg, "--json", cwd=tmp_path)
    assert plan.returncode == 0, plan.stderr
    routes = plan.json()["routes"]
    assert routes["world"]["rows"] == 7 and routes["world"]["providers"]["tc"]["rows"] == 7
    assert routes["hongkong"]["providers"]["usp"]["rows"] == 4 and routes["hongkong"]["requests"] == 1
    # each route at its provider's prices (templates without text: one part a row)
    assert routes["world"]["cost"] == 0.35 and routes["hongkong"]["cost"] == 0.12
    assert plan.json()["providers"]["usp"]["cost"] == 0.12 and plan.json()["cost"] == 0.47
    text = invoke("plan", "in.csv", "--config", cfg, cwd=tmp_path)
    assert "route world" in text.stderr + text.stdout

    code, s = send(tmp_path, cfg)
    assert code == 0 and s["accepted"] == 11, s
    with tc.lock:
        at_tc = {e["phone"]: e for e in tc.accepted}
    with usp.lock:
        at_usp = {e["phone"]: e for e in usp.accepted}
    assert set(at_usp) == {p for p, _, _ in rows if p.startswith("+852")}
    assert set(at_tc) == {p for p, _, _ in rows if p.startswith("+65")}
    order = at_tc[rows[-1][0]]
    assert order["template_id"] == "1002" and order["params"] == ["3 days", "A7"]  # mapped by name
    assert {e["template_id"] for e in at_usp.values()} == {"USP_OTP"}
    assert s["routes"]["world"]["providers"]["tc"]["accepted"] == 7
    assert s["routes"]["hongkong"]["providers"]["usp"]["accepted"] == 4
    assert {p: prov for p, (_, prov) in journal_rows(tmp_path).items()} == {
        **{p: "tc" for p in at_tc}, **{p: "usp" for p in at_usp}}


def test_a_row_no_route_matches_is_invalid(tmp_path, emulator):
    emu = emulator()
    cfg = write_routes_config(tmp_path, {"usp": section("uspeedo", emu.url)},
                              "routes:\n  - provider: usp\n    match: {countries: [HK]}\n")
    write_input(tmp_path / "in.csv", mixed(1, 1))
    code, s = send(tmp_path, cfg)
    assert code == 1 and s["accepted"] == 1 and s["invalid"] == 1
    failed = list(csv.DictReader(open(tmp_path / "in.failed.csv", encoding="utf-8")))
    assert failed[0]["error_code"] == "NoRoute" and "SG" in failed[0]["error_message"]


# --- failover -------------------------------------------------------------------------------------
def test_daily_limit_moves_the_untaken_rows_to_the_fallback(tmp_path, emulator):
    tc, usp = emulator(account_limit=150, receipt_delay_ms=0), emulator(receipt_delay_ms=0)
    cfg = write_routes_config(tmp_path, {"tc": section("tencent", tc.url), "usp": section("uspeedo", usp.url)},
                              WORLD)
    rows = mixed(600, 0)
    write_input(tmp_path / "in.csv", rows)
    code, s = send(tmp_path, cfg)
    assert code == 0 and s["accepted"] == 600, s
    a, b = taken(tc), taken(usp)
    assert sum(a.values()) == 150 and not set(a) & set(b) and max((a + b).values()) == 1
    assert set(a) | set(b) == {p for p, _, _ in rows}
    assert s["routes"]["world"]["providers"] == {
        "tc": {"rows": 150, "requests": s["routes"]["world"]["providers"]["tc"]["requests"], "accepted": 150},
        "usp": {"rows": 450, "requests": s["routes"]["world"]["providers"]["usp"]["requests"], "accepted": 450}}
    assert any("provider tc went down" in n for n in s["notes"])
    journal = journal_rows(tmp_path)
    assert Counter(prov for _, prov in journal.values()) == {"tc": 150, "usp": 450}
    assert all(journal[p] == ("accepted", "tc") for p in a)

    # receipts ask each row's own provider
    r = invoke("receipts", "in.csv", "--config", cfg, "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stdout
    got = r.json()
    assert set(got["providers"]) == {"tc", "usp"} and got["delivered"] == 600, got


def test_an_unreachable_provider_fails_over(tmp_path, emulator):
    usp = emulator()
    dead = "http://127.0.0.1:9"  # discard port: the connection is refused
    cfg = write_routes_config(tmp_path, {"tc": section("tencent", dead), "usp": section("uspeedo", usp.url)},
                              WORLD)
    write_input(tmp_path / "in.csv", mixed(40, 0))
    code, s = send(tmp_path, cfg)
    assert code == 0 and s["accepted"] == 40 and sum(taken(usp).values()) == 40, s
    assert s["routes"]["world"]["providers"]["usp"]["accepted"] == 40
    assert any("Unreachable" in n for n in s["notes"])


def test_rows_with_an_unknown_outcome_never_move(tmp_path, emulator):
    # Tencent's 200-number requests: the one that fits the limit is taken and answered with a
    # server error (unknown), the other refused for the daily limit (moved)
    tc, usp = emulator(account_limit=100, server_error_rate=1.0), emulator()
    cfg = write_routes_config(tmp_path, {"tc": section("tencent", tc.url), "usp": section("uspeedo", usp.url)},
                              WORLD)
    write_input(tmp_path / "in.csv", mixed(400, 0))
    code, s = send(tmp_path, cfg, "--concurrency", "1")  # one request after the other: one takes the room
    assert code == 4 and s["unknown"] == 200 and s["accepted"] == 200, (s["routes"], s["top_failures"], s["notes"])
    journal = journal_rows(tmp_path)
    unknown = {p for p, (state, _) in journal.items() if state == "unknown"}
    assert all(journal[p][1] == "tc" for p in unknown)
    assert not unknown & set(taken(usp)) and not set(taken(tc)) & set(taken(usp))


def test_a_row_without_a_mapping_at_the_fallback_is_filed_with_the_reason(tmp_path, emulator):
    tc, usp = emulator(account_limit=0), emulator()
    cfg = write_routes_config(tmp_path, {"tc": section("tencent", tc.url), "usp": section("uspeedo", usp.url)},
                              WORLD)
    rows = mixed(10, 0) + [
        (p, "ORDER_SHIPPED", ["A1", "2 days"]) for p in phone_numbers(5, 100)]
    write_input(tmp_path / "in.csv", rows)
    code, s = send(tmp_path, cfg)
    assert code == 1 and s["accepted"] == 10 and s["not_sent"] == 5, s
    failed = list(csv.DictReader(open(tmp_path / "in.failed.csv", encoding="utf-8")))
    assert len(failed) == 5 and {f["error_code"] for f in failed} == {"NoMapping"}
    assert "no template mapping for ORDER_SHIPPED on provider usp" in failed[0]["error_message"]
    assert failed[0]["retryable"] == "yes"


def test_no_fallback_left_stops_the_run_and_a_rerun_sends_exactly_the_rest(tmp_path, emulator):
    tc, usp = emulator(account_limit=30), emulator(account_limit=40)
    sections = {"tc": section("tencent", tc.url), "usp": section("uspeedo", usp.url)}
    cfg = write_routes_config(tmp_path, sections, WORLD)
    rows = mixed(200, 0)
    write_input(tmp_path / "in.csv", rows)
    code, s = send(tmp_path, cfg)
    first = sum((taken(tc) + taken(usp)).values())
    assert code == 3 and s["stopped"] == "fatal" and s["accepted"] == first >= 30, s
    # the accounts' limits reset (a new day): fresh accounts, the same journal
    tc2, usp2 = emulator(), emulator()
    cfg2 = write_routes_config(tmp_path, {"tc": section("tencent", tc2.url), "usp": section("uspeedo", usp2.url)},
                               WORLD, name="day2.yaml")
    code, s = send(tmp_path, cfg2)
    assert code == 0 and s["accepted"] == 200 - first and s["accepted_before"] == first, s
    every = taken(tc) + taken(usp) + taken(tc2) + taken(usp2)
    assert set(every) == {p for p, _, _ in rows} and max(every.values()) == 1
    assert sum(taken(usp2).values()) == 0  # the first provider of the route took them all


def test_the_example_configs_routes_parse(tmp_path, monkeypatch):
    from sms_cli.config.load import load_config

    text = (Path(__file__).resolve().parent.parent / "config.example.yaml").read_text(encoding="utf-8")
    block = text[text.index("#routes:"):]
    uncommented = text[:text.index("#routes:")] + "\n".join(
        line[1:] for line in block.splitlines() if line.startswith("#"))
    for var in ("USPEEDO_ACCESS_KEY_ID", "USPEEDO_ACCESS_KEY_SECRET", "TENCENTCLOUD_SECRET_ID",
                "TENCENTCLOUD_SECRET_KEY", "ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET"):
        monkeypatch.setenv(var, "x")
    path = tmp_path / "example.yaml"
    path.write_text(uncommented, encoding="utf-8")
    path.chmod(0o600)
    cfg = load_config(str(path))
    assert [r.name for r in cfg.routes.routes] == ["mainland", "world"]
    assert cfg.routes.routes[1].providers == ("tencent", "uspeedo")
    assert cfg.routes.wire_template("uspeedo", "OTP_LOGIN") == "tpl-otp-1"


def test_a_journal_of_an_earlier_version_gets_the_provider_column(tmp_path, emulator, write_config):
    emu = emulator(receipt_delay_ms=0)
    cfg = write_config(emu, "uspeedo", receipt_rate_limit=0)
    write_input(tmp_path / "in.csv", mixed(6, 0))
    code, s = send(tmp_path, cfg, "--limit", "3")
    assert code == 5 and s["accepted"] == 3
    db = sqlite3.connect(tmp_path / "in.journal.sqlite")
    db.execute("ALTER TABLE rows DROP COLUMN provider")  # as the version before routes wrote it
    db.commit()
    db.close()
    code, s = send(tmp_path, cfg)  # opening it adds the column; the old rows have none
    assert code == 0 and s["accepted"] == 3 and s["accepted_before"] == 3
    assert Counter(prov for _, prov in journal_rows(tmp_path).values()) == {None: 3, "emu": 3}
    r = invoke("receipts", "in.csv", "--config", cfg, "--json", cwd=tmp_path)  # the old rows: their run's provider
    assert r.returncode == 0 and r.json()["delivered"] == 6, r.stdout


def test_the_text_summary_says_rows_per_route_and_provider(tmp_path, emulator):
    tc, usp = emulator(account_limit=0), emulator()
    cfg = write_routes_config(tmp_path, {"tc": section("tencent", tc.url), "usp": section("uspeedo", usp.url)},
                              WORLD)
    write_input(tmp_path / "in.csv", mixed(3, 2))
    r = invoke("send", "in.csv", "--config", cfg, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "route world: 3 rows (3 accepted)" in r.stderr
    assert "  usp: 3 rows (3 accepted), 1 requests" in r.stderr
    assert "provider tc: 0 rows, 1 requests; down: LimitExceeded.DailyLimit" in r.stderr


def test_validate_reports_the_rows_no_route_or_provider_takes(tmp_path, emulator):
    emu = emulator()
    cfg = write_routes_config(tmp_path, {"tc": section("tencent", emu.url), "usp": section("uspeedo", emu.url)},
                              WORLD.replace("  - name: world\n", "  - name: world\n    match: {countries: [SG]}\n"))
    rows = mixed(2, 1) + [(phone_numbers(1, 300)[0], "PROMO_NOV", ["Ann"]), ("+60123456789", "OTP_LOGIN", ["1"])]
    write_input(tmp_path / "in.csv", rows)
    r = invoke("validate", "in.csv", "--config", cfg, cwd=tmp_path)
    assert r.returncode == 1, r.stderr
    out = r.stdout + r.stderr
    assert "NoMapping" in out and "no template mapping for PROMO_NOV on provider tc" in out
    assert "NoRoute" in out and "no route matches MY" in out
    assert not emu.accepted


def test_an_interrupt_after_a_failover_keeps_every_row_once_and_a_rerun_sends_the_rest(disk_path, emulator):
    import signal
    import subprocess

    from conftest import start_cli, wait_for

    tc, usp = emulator(account_limit=400), emulator(latency_ms=300)
    cfg = write_routes_config(disk_path, {"tc": section("tencent", tc.url), "usp": section("uspeedo", usp.url)},
                              WORLD)
    rows = mixed(3000, 0)
    write_input(disk_path / "in.csv", rows)
    proc = start_cli("send", "in.csv", "--config", cfg, "--json", "--concurrency", "1", cwd=disk_path)
    # interrupted once the fallback has taken a request (an event at its emulator, no sleep)
    wait_for(usp, lambda: usp.stats()["requests"] >= 1 or proc.poll() is not None, procs=[proc],
             what="the fallback to take a request")
    proc.send_signal(signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    first = json.loads(out.splitlines()[-1])
    assert proc.returncode == 130 and first["accepted"] < 3000, err
    once = taken(tc) + taken(usp)
    assert max(once.values()) == 1 and sum(once.values()) == first["accepted"] + first["unknown"]
    code, s = send(disk_path, cfg)  # Tencent still refuses: the rest goes to uSpeedo
    every = taken(tc) + taken(usp)
    assert code in (0, 4) and s["accepted"] == 3000 - sum(once.values()), s
    assert max(every.values()) == 1 and set(every) == {p for p, _, _ in rows}
