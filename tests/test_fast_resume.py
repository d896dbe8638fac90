"""A resume reads a CSV from the line where the journal says its last accepted row began
(Source.rows(at=...), run/send.py resume_rows), checked to be that row; anything that does not
match falls back to reading the input from the top. Rows in the prefix that are not accepted
stop the prefix there, and an edited input is still a different working set."""
from __future__ import annotations

import sqlite3
from collections import Counter

import pytest

from conftest import invoke, make_rows, phone_numbers
from sms_cli.input.rows import open_source
from test_reliability import failures, logged, send

# a CSV whose records are not one per line: a quoted cell over two lines, blank lines, `sep=`
TRICKY = ('sep=,\nphone,template_id,param1\n'
          '+6591230000,OTP_LOGIN,"0\n1"\n'
          '\n'
          '+6591230001,OTP_LOGIN,000001\n'
          '+6591230002,OTP_LOGIN,"00,002"\n'
          '\n\n'
          '+6591230003,OTP_LOGIN,000003\n'
          '+6591230004,OTP_LOGIN,000004\n')


def test_reading_from_a_known_row_gives_the_rows_a_full_read_gives(tmp_path):
    path = tmp_path / "in.csv"
    path.write_text(TRICKY, encoding="utf-8", newline="")
    source = open_source(str(path))
    full = [(r.seq, r.line, r.record) for r in source.rows()]
    assert [s for s, _, _ in full] == [0, 1, 2, 3, 4]
    for seq, line, _ in full:
        at = [(r.seq, r.line, r.record) for r in source.rows(seq, at=(seq, line))]
        assert at == full[seq:]
    # a wrong line: the rows come out under other seqs or lines, which the caller checks
    moved = next(iter(source.rows(2, at=(2, full[2][1] + 1))), None)
    assert moved is None or (moved.seq, moved.line) != full[2][:2]


def journal_rows(path) -> dict[int, tuple]:
    with sqlite3.connect(path) as db:
        return {seq: (state, line) for seq, state, line in db.execute("SELECT seq, state, line FROM rows")}


def test_resume_from_the_journal_line_with_records_over_several_lines(tmp_path, emulator, write_config):
    emu = emulator()
    cfg = write_config(emu)
    inp = tmp_path / "in.csv"
    lines = ["phone,template_id,param1"]
    phones = [f"+65912{i:05d}" for i in range(3000)]
    for i, phone in enumerate(phones):
        lines.append(f'{phone},OTP_LOGIN,"{i:06d}"' if i % 7 else f'{phone},OTP_LOGIN,"{i:03d}\n{i:03d}"')
        if i % 11 == 0:
            lines.append("")
    inp.write_text("\n".join(lines) + "\n12,OTP_LOGIN,1\n", encoding="utf-8")
    code, s = send(inp, cfg, "--limit", "2000", cwd=tmp_path)
    assert s["accepted"] == 2000
    code, s = send(inp, cfg, cwd=tmp_path)
    assert s["accepted_earlier"] == 2000 and s["accepted"] == 1000 and s["invalid"] == 1
    assert s["by_template"]["OTP_LOGIN"]["accepted_earlier"] == 2000
    assert logged(emu) == Counter({p: 1 for p in phones})
    # the rows read after the prefix carry the lines a full read gives them
    full = {r.seq: r.line for r in open_source(str(inp)).rows()}
    assert all(full[seq] == line for seq, (_, line) in journal_rows(tmp_path / "in.journal.sqlite").items())
    assert [r["line"] for r in failures(tmp_path / "in.failed.csv").values()] == [str(full[3000])]


@pytest.mark.parametrize("refused", [False, True])
def test_a_row_in_the_prefix_that_is_not_accepted_stops_it(tmp_path, emulator, write_config, refused):
    """An invalid row (never in the journal: a hole) and, with `refused`, a row the provider
    refused (failed) before it, both before the last accepted row: each is handled again as a
    re-run handles it, the accepted rows around them are not sent again."""
    emu = emulator()
    cfg = write_config(emu)
    inp = tmp_path / "in.csv"
    phones = make_rows(inp, 1500)
    text = inp.read_text(encoding="utf-8").splitlines()
    text.insert(301, "12,OTP_LOGIN,000000")  # row seq 300: invalid, a hole in the journal
    inp.write_text("\n".join(text) + "\n", encoding="utf-8")
    code, s = send(inp, cfg, "--limit", "1200", cwd=tmp_path)
    assert s["accepted"] == 1200 and s["invalid"] == 1
    journal = tmp_path / "in.journal.sqlite"
    if refused:
        with sqlite3.connect(journal) as db:  # as a provider's refusal of row 100 would have left it
            db.execute("UPDATE rows SET state='failed', code='Refused', message='refused' WHERE seq=100")
    code, s = send(inp, cfg, cwd=tmp_path)
    assert s["accepted_earlier"] == 1200 - refused and s["accepted"] == 300
    assert s["invalid"] == 1 and s["failed"] == refused
    assert logged(emu) == Counter({p: 1 for p in phones})
    rows = failures(tmp_path / "in.failed.csv")
    assert sorted(r["line"] for r in rows.values()) == ["102", "302"][1 - refused:]


def test_a_journal_line_that_does_not_match_falls_back_to_a_full_read(tmp_path, emulator, write_config):
    emu = emulator()
    cfg = write_config(emu)
    inp = tmp_path / "in.csv"
    phones = make_rows(inp, 2500)
    code, s = send(inp, cfg, "--limit", "2000", cwd=tmp_path)
    journal = tmp_path / "in.journal.sqlite"
    with sqlite3.connect(journal) as db:  # the last accepted row said to begin elsewhere
        db.execute("UPDATE rows SET line=line-500 WHERE seq=1999")
    code, s = send(inp, cfg, cwd=tmp_path)
    assert code == 0 and s["accepted_earlier"] == 2000 and s["accepted"] == 500
    assert logged(emu) == Counter({p: 1 for p in phones})


def test_an_edited_input_is_still_another_working_set(tmp_path, emulator, write_config):
    """The journal's lines are those of the content it was written from: an input edited after
    a partial run (a row inserted at the top moves every line) is not resumed from them."""
    emu = emulator()
    cfg = write_config(emu)
    inp = tmp_path / "in.csv"
    phones = make_rows(inp, 2500)
    send(inp, cfg, "--limit", "2000", cwd=tmp_path)
    text = inp.read_text(encoding="utf-8").splitlines()
    new = phone_numbers(1, 9000)[0]
    text.insert(1, f"{new},OTP_LOGIN,123456")
    inp.write_text("\n".join(text) + "\n", encoding="utf-8")
    before = invoke("send", str(inp), "--config", str(cfg), "--json", cwd=tmp_path)
    assert before.returncode == 2 and "Traceback" not in before.stderr  # refused, as before this change
    code, s = send(inp, cfg, "--continue-edited", cwd=tmp_path)
    assert s["accepted_earlier"] == 2000 and s["accepted"] == 501
    assert logged(emu) == Counter({p: 1 for p in [*phones, new]})
