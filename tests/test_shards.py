"""Shards: `send --shard K/N` (or --shards N with $JOB_COMPLETION_INDEX) takes the rows whose
message key hashes to K; shards are disjoint, complete and stable (property tests); each keeps
its own journal; status/receipts --shards N report one working set; another N is refused."""
from __future__ import annotations

import csv
from collections import Counter

import pytest
from hypothesis import given, settings, strategies as st

from conftest import invoke, make_rows, write_config_file
from sms_cli.core.errors import SmsCliError
from sms_cli.core.model import Message, message_key
from sms_cli.run.shards import Shard, parse
from sms_cli.validate.validator import Rejected

PHONES = st.from_regex(r"\+[1-9][0-9]{7,13}", fullmatch=True)
PARAMS = st.lists(st.text(max_size=8), max_size=3)


def msg(seq: int, phone: str, template: str, params: list[str]) -> Message:
    m = Message(seq, seq + 2, phone, 0, "", template, params)
    m.digest = message_key(phone, template, params)
    return m


ITEMS = st.lists(st.one_of(
    st.builds(msg, st.integers(0, 10**7), PHONES, st.sampled_from(["OTP", "PROMO"]), PARAMS),
    st.builds(Rejected, st.integers(0, 10**7), st.integers(1, 10**7), st.just("InvalidPhone"), st.just("bad")),
), max_size=60)


@settings(max_examples=25, deadline=None)
@given(ITEMS, st.integers(1, 32))
def test_shards_are_disjoint_and_complete_for_any_n(items, n):
    for item in items:
        owners = [k for k in range(n) if Shard(k, n).owns(item)]
        assert len(owners) == 1  # exactly one shard takes each row: none twice, none lost


@settings(max_examples=25, deadline=None)
@given(ITEMS, st.integers(1, 32))
def test_a_row_keeps_its_shard_across_runs(items, n):
    """The key is the message (blake2b of recipient, template, params), never Python's salted
    hash: the same row lands in the same shard in every process, and equal messages together."""
    for item in items:
        again = msg(item.seq, item.phone, item.template_id, list(item.params)) if isinstance(item, Message) else item
        assert [Shard(k, n).owns(item) for k in range(n)] == [Shard(k, n).owns(again) for k in range(n)]


def test_the_assignment_is_pinned():
    # a change of hash would move rows between shards mid-campaign: pinned values catch it
    assert message_key("+6591234567", "OTP_LOGIN", ["123456"]) % 4 == 0
    assert [Shard(k, 3).owns(Rejected(7, 9, "InvalidPhone", "")) for k in range(3)] == [False, False, True]


@pytest.mark.parametrize("shard, shards, env, expected", [
    ("0/4", None, {}, Shard(0, 4)), ("3/4", 4, {}, Shard(3, 4)), (None, 4, {"JOB_COMPLETION_INDEX": "2"}, Shard(2, 4)),
    (None, None, {}, None)])
def test_parse(shard, shards, env, expected):
    assert parse(shard, shards, env) == expected


@pytest.mark.parametrize("shard, shards, env, words", [
    ("4/4", None, {}, "K counts from 0 to 3"), ("1/0", None, {}, "N must be 1"), ("a/b", None, {}, "expected K/N"),
    ("1/4", 2, {}, "disagree"), (None, 4, {}, "JOB_COMPLETION_INDEX"), (None, 4, {"JOB_COMPLETION_INDEX": "x"}, "not set")])
def test_parse_refuses(shard, shards, env, words):
    with pytest.raises(SmsCliError, match=words):
        parse(shard, shards, env)


@pytest.fixture
def sent_in_four(tmp_path, emulator):
    """A 200-row input (plus 3 invalid rows and one row repeated) sent as four shards."""
    emu = emulator(receipt_delay_ms=0)
    cfg = write_config_file(tmp_path, emu, "uspeedo", filename="c.yaml")
    phones = make_rows(tmp_path / "in.csv", 200, invalid=3)
    with open(tmp_path / "in.csv", "a", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerow([phones[0], "OTP_LOGIN", "000000"])  # the first row again
    results = [invoke("send", "in.csv", "--config", cfg, "--shard", f"{k}/4", "--dedupe", "--json", cwd=tmp_path)
               for k in range(4)]
    return emu, cfg, phones, results


def test_four_shards_send_every_row_once(tmp_path, sent_in_four):
    emu, cfg, phones, results = sent_in_four
    summaries = [r.json() for r in results]
    assert sum(s["rows"] for s in summaries) == 204  # every row in exactly one shard
    assert sum(s["accepted"] for s in summaries) == 200 and sum(s["invalid"] for s in summaries) == 3
    assert sum(s["duplicates"] for s in summaries) == 1  # equal messages share a shard: --dedupe sees both
    assert sorted(e["phone"] for e in emu.accepted) == sorted(phones)
    for k in range(4):
        assert (tmp_path / f"in.shard-{k}-of-4.journal.sqlite").exists()
    assert not (tmp_path / "in.journal.sqlite").exists()
    filed = [row for k in range(4) if (tmp_path / f"in.shard-{k}-of-4.failed.csv").exists()
             for row in csv.DictReader(open(tmp_path / f"in.shard-{k}-of-4.failed.csv", encoding="utf-8"))]
    assert len(filed) == 3 and {r["error_code"] for r in filed} == {"InvalidPhone"}
    # a re-run of a shard (a pod restarted with the same index) sends nothing again
    again = invoke("send", "in.csv", "--config", cfg, "--shard", "1/4", "--dedupe", "--json", cwd=tmp_path)
    assert again.json()["accepted"] == 0 and len(emu.accepted) == 200


def test_status_and_receipts_report_all_shards_as_one(tmp_path, sent_in_four):
    emu, cfg, phones, results = sent_in_four
    r = invoke("status", "in.csv", "--config", cfg, "--shards", "4", "--json", cwd=tmp_path)
    st = r.json()
    assert st["found"] and st["journal"] == "in.shard-*-of-4.journal.sqlite" and len(st["runs"]) == 4
    assert st["journal_states"]["accepted"] == 200
    assert st["rerun"]["ledger_skips"]["accepted_earlier"] == 200 and st["rerun"]["to_send"] == 0
    assert st["rerun"]["rows"] == 204 and st["rerun"]["invalid"] == 3
    text = invoke("status", "in.csv", "--config", cfg, "--shards", "4", cwd=tmp_path).stdout
    assert "200 accepted" in text
    rc = invoke("receipts", "in.csv", "--config", cfg, "--shards", "4", "--json", cwd=tmp_path)
    got = rc.json()
    assert rc.returncode == 0, rc.stderr
    assert got["sent"] == 200 and got["delivered"] == 200 and got["journal"] == "in.shard-*-of-4.journal.sqlite"
    assert invoke("status", "in.csv", "--config", cfg, "--shards", "2", cwd=tmp_path).returncode == 2


def test_job_completion_index_picks_the_shard(tmp_path, emulator):
    emu = emulator()
    cfg = write_config_file(tmp_path, emu, "uspeedo", filename="c.yaml")
    phones = make_rows(tmp_path / "in.csv", 40)
    for k in range(2):
        r = invoke("send", "in.csv", "--config", cfg, "--shards", "2", cwd=tmp_path, env={"JOB_COMPLETION_INDEX": str(k)})
        assert r.returncode == 0, r.stderr
        assert (tmp_path / f"in.shard-{k}-of-2.journal.sqlite").exists()
    assert Counter(e["phone"] for e in emu.accepted) == Counter(phones)


def test_another_shard_count_is_refused(tmp_path, emulator):
    emu = emulator()
    cfg = write_config_file(tmp_path, emu, "uspeedo", filename="c.yaml")
    make_rows(tmp_path / "in.csv", 30)
    assert invoke("send", "in.csv", "--config", cfg, "--shard", "0/3", cwd=tmp_path).returncode == 0
    sent = len(emu.accepted)
    for args in (("--shard", "0/2"), ()):  # another N, or no shards at all: rows would move
        r = invoke("send", "in.csv", "--config", cfg, *args, cwd=tmp_path)
        assert r.returncode == 2 and "sent in 3 shards" in r.stderr and "--shards 3" in r.stderr
    assert len(emu.accepted) == sent
    # and the other way round: sent without shards, then asked in shards
    make_rows(tmp_path / "plain.csv", 10, start=500)
    assert invoke("send", "plain.csv", "--config", cfg, cwd=tmp_path).returncode == 0
    r = invoke("send", "plain.csv", "--config", cfg, "--shard", "0/2", cwd=tmp_path)
    assert r.returncode == 2 and "without shards" in r.stderr


def test_a_shard_failures_file_resends_into_its_own_journal(tmp_path, emulator):
    emu = emulator(blacklist={"+6590000003"})
    cfg = write_config_file(tmp_path, emu, "uspeedo", filename="c.yaml")
    phones = make_rows(tmp_path / "in.csv", 12)
    owner = next(k for k in range(2) if Shard(k, 2).owns(msg(3, phones[3], "OTP_LOGIN", ["000003"])))
    invoke("send", "in.csv", "--config", cfg, "--shard", f"{owner}/2", cwd=tmp_path)
    failed = tmp_path / f"in.shard-{owner}-of-2.failed.csv"
    rows = list(csv.DictReader(open(failed, encoding="utf-8")))
    assert [r["phone"] for r in rows] == [phones[3]]
    emu.blacklist.clear()
    r = invoke("send", failed.name, "--config", cfg, "--json", cwd=tmp_path)
    assert r.returncode == 0 and r.json()["accepted"] == 1, r.stderr
    assert [e["phone"] for e in emu.accepted].count(phones[3]) == 1
