"""Routes and failover: a mixed-country input over two providers, one of which hits its daily limit.

    python benchmarks/bench_routes.py [--rows 10000] [--limit 2000] [--keep]

Starts two emulators as processes of their own (`sms-cli emulator`): one stands for a Tencent
account that refuses with its daily limit (LimitExceeded.DailyLimit, a fatal class) after
--limit messages, the other for a uSpeedo account. The config routes Hong Kong numbers to
uSpeedo and every other number to Tencent with uSpeedo as its fallback, each with its own
template id. One `sms-cli send` sends the --rows input (70% Singapore, 30% Hong Kong,
interleaved). Then it counts, from each emulator's own accepted log, that every row was taken
exactly once by some provider, reads each row's provider from the journal (and checks it is the
emulator that took it), and prints the summary per route and provider. Exit 1 when a target
is missed.
"""
from __future__ import annotations

import argparse
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))
import bench_shards  # noqa: E402
from bench_shards import env, last_json, numbers  # noqa: E402  (the shards benchmark's helpers)

from sms_cli.emulator.server import DEFAULT_KEY_ID, DEFAULT_KEY_SECRET  # noqa: E402

CONFIG = """providers:
  tencent:
    type: tencent
    endpoint: {tc}
    region: ap-singapore
    sms_sdk_app_id: "1400000001"
    secret_id: {key}
    secret_key: {secret}
    rate_limit: 0
  uspeedo:
    type: uspeedo
    endpoint: {usp}/api
    account_id: "10001"
    access_key_id: {key}
    access_key_secret: {secret}
    sender_id: ACME
    rate_limit: 0
templates:
  OTP_LOGIN: {{params: [code]}}
routes:
  - name: hongkong
    match: {{countries: [HK]}}
    provider: uspeedo
    templates:
      OTP_LOGIN:
        uspeedo: {{id: USP_OTP, params: [code]}}
  - name: world
    provider: tencent
    fallback: [uspeedo]
    templates:
      OTP_LOGIN:
        tencent: {{id: "1001", params: [code]}}
        uspeedo: {{id: USP_OTP, params: [code]}}
"""


class Emulator(bench_shards.Emulator):
    """`sms-cli emulator` in a process of its own, its accepted messages logged to a file (the
    shards benchmark's, started with options of its own)."""

    def __init__(self, work: Path, name: str, *extra: str):
        self.log = work / f"{name}.accepted.jsonl"
        self.err = open(work / f"{name}.err", "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "sms_cli", "emulator", "--port", "0", "--log",
                                      str(self.log), *extra], stdout=subprocess.PIPE, stderr=self.err,
                                     stdin=subprocess.DEVNULL, cwd=work, text=True, env=env())
        found = re.search(r"listening on (http://\S+)", self.proc.stdout.readline())
        if not found:
            self.stop()
            raise SystemExit(f"bench: the {name} emulator did not start")
        self.url = found.group(1)


def hk_numbers(n: int) -> list[str]:
    return [f"+8529{1000000 + i:07d}" for i in range(n)]  # Hong Kong mobiles, all valid


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10000)
    ap.add_argument("--limit", type=int, default=2000, help="Tencent's daily limit, in messages")
    ap.add_argument("--keep", action="store_true", help="keep the working folder")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-routes-"))
    hk = hk_numbers(args.rows * 3 // 10)
    sg = numbers(args.rows - len(hk))
    rows = [p for pair in zip(sg, hk) for p in pair] + sg[len(hk):]
    with open(work / "in.csv", "w", encoding="utf-8") as fh:
        fh.write("phone,template_id,param1\n")
        fh.writelines(f"{p},OTP_LOGIN,{i % 1000000:06d}\n" for i, p in enumerate(rows))
    tc = Emulator(work, "tencent", "--account-limit", str(args.limit))
    usp = Emulator(work, "uspeedo")
    try:
        cfg = work / "sms-cli.yaml"
        cfg.write_text(CONFIG.format(tc=tc.url, usp=usp.url, key=DEFAULT_KEY_ID, secret=DEFAULT_KEY_SECRET),
                       encoding="utf-8")
        cfg.chmod(0o600)
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "sms_cli", "send", "in.csv", "--config", str(cfg), "--json"],
                              cwd=work, env=env(), text=True, capture_output=True, stdin=subprocess.DEVNULL)
        elapsed = time.monotonic() - started
        summary = last_json(done.stdout)
        at_tc, at_usp = tc.taken(), usp.taken()
        every = at_tc + at_usp
        db = sqlite3.connect(work / "in.journal.sqlite")
        journal = dict(db.execute("SELECT phone, provider FROM rows WHERE state='accepted'").fetchall())
        db.close()
        mismatched = sum(1 for p, prov in journal.items() if p not in (at_tc if prov == "tencent" else at_usp))
        figures = {
            "rows": len(rows), "exit": done.returncode, "seconds": round(elapsed, 1),
            "taken_tencent": sum(at_tc.values()), "taken_uspeedo": sum(at_usp.values()),
            "taken_by_both": len(set(at_tc) & set(at_usp)),
            "duplicates": sum(n - 1 for n in every.values() if n > 1),
            "lost": sum(1 for p in rows if p not in every),
            "journal_rows_with_provider": len(journal), "journal_provider_mismatches": mismatched,
        }
        print(f"{args.rows} rows (70% SG, 30% HK), Tencent refusing after {args.limit} messages (daily limit), "
              "uSpeedo its fallback")
        for k, v in figures.items():
            print(f"  {k:30} {v}")
        for name, r in (summary.get("routes") or {}).items():
            per = ", ".join(f"{p}: {e['rows']} rows ({e.get('accepted', 0)} accepted), {e['requests']} requests"
                            for p, e in r["providers"].items())
            print(f"  route {name:10} {r['rows']:>6} rows, {r['requests']:>4} requests   {per}")
        for n in summary.get("notes", []):
            print(f"  note: {n}")
        ok = (done.returncode == 0 and figures["duplicates"] == 0 and figures["lost"] == 0
              and figures["taken_by_both"] == 0 and figures["taken_tencent"] == args.limit
              and figures["journal_rows_with_provider"] == len(rows) and mismatched == 0)
        print("targets (every row taken exactly once by some provider, each row's provider in the journal): "
              + ("met" if ok else "NOT met"))
        if not ok and done.stderr:
            print(done.stderr[-2000:])
        return 0 if ok else 1
    finally:
        tc.stop()
        usp.stop()
        if args.keep:
            print(f"kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
