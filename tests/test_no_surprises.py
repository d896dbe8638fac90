"""Hints and checks a new user meets: rows that repeat another row, failure reasons grouped
without hiding dates, the suppression list from national numbers and from stdin."""
import json
import random

from conftest import invoke
from sms_cli.run.repeats import Repeats
from sms_cli.core.textsafe import mask_numbers


def _rows(path, phones):
    path.write_text("phone,template_id,param1\n" + "".join(f"{p},T,{v}\n" for p, v in phones))


def test_rows_repeating_a_message_are_sent_and_named_with_how_to_drop_them(tmp_path):
    _rows(tmp_path / "in.csv", [("+6591234500", 1), ("+6591234501", 1), ("+6591234500", 1), ("+6591234500", 2),
                                ("+6591234501", 1), ("+6591234500", 1)])
    plan = invoke("plan", "in.csv", cwd=tmp_path)
    note = ("3 rows repeat an earlier row's number, template and parameters (lines 4 and 6, ...): without "
            "--dedupe each copy is sent; add --dedupe to send each message once")
    assert plan.returncode == 0 and note in plan.stdout
    sent = invoke("send", "in.csv", "--json", cwd=tmp_path)
    s = json.loads(sent.stdout)
    rehearsal = [n for n in s["notes"] if n.startswith("a rehearsal")]  # no config: the outbox
    assert s["accepted"] == 6 and s["notes"] == rehearsal + [note] and note in sent.stderr  # both sent, as asked
    (tmp_path / "in.journal.sqlite").unlink()
    deduped = invoke("send", "in.csv", "--dedupe", "--json", cwd=tmp_path)
    d = json.loads(deduped.stdout)
    assert (d["accepted"], d["duplicates"], d["notes"]) == (3, 3, rehearsal) and "repeat" not in deduped.stderr


def test_the_repeat_table_agrees_with_a_set_and_stops_at_its_bound():
    rnd = random.Random(5)
    digests = [rnd.getrandbits(64) - 2**63 for _ in range(3000)] + [0, 0, 1]
    digests += rnd.sample(digests, 500)
    # grown on the way, and sized from the start for the rows expected (the input's lines)
    for expect in (0, len(digests), 10 * len(digests)):
        table, seen, repeats = Repeats(expect=expect), set(), 0
        for line, d in enumerate(digests):
            table.add(d, line)
            repeats += (d or 1) in seen
            seen.add(d or 1)
        assert table.count == repeats >= 500 and len(table._slots) <= 4 * max(len(seen), min(expect, table.limit))
    assert len(Repeats(limit=100, expect=10**9)._slots) == 1024  # the bound caps the table, not the input
    assert len(Repeats(expect=3500)._slots) == len(Repeats(expect=3500)._slots) == 8192
    small = Repeats(limit=2)
    for line, d in enumerate([5, 6, 7, 5]):
        small.add(d, line)
    assert small.count == 0 and small.unchecked  # 7 and the second 5 came after the bound
    small = Repeats(limit=3)
    for line, d in enumerate([5, 6, 5]):
        small.add(d, line + 2)
    assert "only the first" not in small.note() and "1 row repeats" in small.note() and "(line 4)" in small.note()


def test_failure_reasons_mask_phone_numbers_only():
    assert mask_numbers("not a valid phone number: +6591234000") == "not a valid phone number: <number>"
    assert mask_numbers("+852 5531 1101 and 85255311102 blocked") == "<number> and <number> blocked"
    for kept in ("valid until 2026-12-06", "due 06-12-2026 10:00", "amount 1234567.50 over 20261206",
                 "quota 1000000 exceeded", "order 123-4567-890"):
        assert mask_numbers(kept) == kept


def test_summary_groups_reasons_keeping_their_dates(tmp_path):
    from sms_cli.cli import report
    from sms_cli.store.ledger import Ledger, Row
    from sms_cli.core.outcomes import Fate
    from sms_cli.run.send import Summary

    ledger = Ledger()
    for i in range(3):
        ledger.settle(Row({}, i + 2, f"x:{i}", "T"), Fate.REJECTED, "Expired",
                      f"campaign ended 2026-12-06 for +659123450{i}")
    text = report.summary_text(Summary(provider="p", provider_type="uspeedo", tally=ledger.tally))
    assert "3 x Expired: campaign ended 2026-12-06 for <number>" in text


def test_suppress_add_takes_a_default_region_and_numbers_on_stdin(tmp_path):
    national = invoke("suppress", "add", "5531 1111", "--list", "out.txt", cwd=tmp_path)
    assert national.returncode == 2 and "--default-region" in national.stderr
    assert not (tmp_path / "out.txt").exists()
    added = invoke("suppress", "add", "5531 1111", "--default-region", "HK", "--list", "out.txt", cwd=tmp_path)
    assert added.returncode == 0 and added.stdout == "+85255311111: added\n"
    piped = invoke("suppress", "add", "-", "--list", "out.txt", "--note", "by mail", cwd=tmp_path,
                   input="+6591234567\n# a comment\n\n(852) 5531 1111\n")
    assert piped.stdout == "+6591234567: added\n+85255311111: already listed\n"
    check = invoke("suppress", "check", "-", "--default-region", "SG", "--list", "out.txt", cwd=tmp_path,
                   input="9123 4567\n9123 4568\n")
    assert check.returncode == 1 and check.stdout == "+6591234567: suppressed\n+6591234568: not listed\n"
    bad = invoke("suppress", "add", "-", "--list", "out.txt", cwd=tmp_path, input="+6591234569\nnot-a-number\n")
    assert bad.returncode == 2 and "not-a-number" in bad.stderr
    assert "+6591234569" not in (tmp_path / "out.txt").read_text()  # a half-good list adds nothing


def test_errors_in_a_json_array_name_the_item_as_well_as_the_line(tmp_path):
    (tmp_path / "rows.json").write_text('[{"phone": "+6591234500", "template_id": "T"}, 5, '
                                        '{"phone": "+6591234501", "phone": "x", "template_id": "T"}]')
    r = invoke("validate", "rows.json", cwd=tmp_path)
    assert r.returncode == 1 and r.stdout.splitlines() == [
        "rows.json:1: BadRow: item [1]: a row must be a JSON object",
        "rows.json:1: BadRow: item [2]: the key 'phone' appears twice in one object"]
    (tmp_path / "broken.json").write_text('[\n{"phone": "+6591234500"},\n{"phone": }\n]')
    broken = invoke("validate", "broken.json", cwd=tmp_path)
    assert broken.returncode == 2 and "broken.json:3: not valid JSON in item [1]: Expecting value" in broken.stderr
    (tmp_path / "comma.json").write_text('[{"phone": "+6591234500"} {"phone": "+6591234501"}]')
    comma = invoke("validate", "comma.json", cwd=tmp_path)
    assert comma.returncode == 2 and "not valid JSON after item [0]: expecting ',' or ']'" in comma.stderr
