"""A failures file read back gives the input's cells exactly (issue 20, "Files and input"):
formula-like cells, the input's encoding and delimiter, JSON numbers as written; and an encoding
that needs a byte-order mark on a file without one is a clear exit 2."""
from __future__ import annotations

import csv
import io
import json

import pytest

from conftest import accepted_counts, invoke


def params_sent(emu) -> dict[str, list]:
    with emu.lock:
        return {e["phone"]: e["params"] for e in emu.accepted}


@pytest.mark.parametrize("encoding", ["utf-16", "utf-32", "UTF16"])
def test_a_bom_encoding_on_a_file_without_a_bom_is_exit_2(tmp_path, encoding):
    width = "32" if "32" in encoding else "16"
    (tmp_path / "in.csv").write_bytes("phone,template_id,param1\n+6591234567,OTP_LOGIN,1\n"
                                      .encode(f"utf-{width}-le"))
    for command in ("validate", "plan", "send"):
        r = invoke(command, "in.csv", "--encoding", encoding, cwd=tmp_path)
        assert r.returncode == 2 and "byte-order mark" in r.stderr and f"utf-{width}-le" in r.stderr, r.stderr
    assert invoke("validate", "in.csv", "--encoding", f"utf-{width}-le", cwd=tmp_path).returncode == 0


FORMULAS = ['=HYPERLINK("http://x.example","y")', "+SUM(A1:A2)", "-2+3", "@SUM(A1)"]


def test_formula_cells_are_resent_as_the_input_held_them(tmp_path, emulator, write_config):
    emu = emulator()
    cfg = write_config(emu)
    with open(tmp_path / "in.csv", "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["phone", "template_id", "param1"])
        w.writerows([f"9123456{i}", "OTP_LOGIN", f] for i, f in enumerate(FORMULAS))  # no region: invalid
    assert invoke("send", "in.csv", "--config", cfg, cwd=tmp_path).returncode == 1
    text = (tmp_path / "in.failed.csv").read_text(encoding="utf-8")
    assert all(f"'{f}" in text.replace('""', '"') for f in FORMULAS)  # escaped for spreadsheets
    rows = list(csv.DictReader(io.StringIO(text)))
    with open(tmp_path / "in.failed.csv", "w", encoding="utf-8", newline="") as fh:  # the phones fixed
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows({**r, "phone": "+65" + r["phone"]} for r in rows)
    r = invoke("send", "in.failed.csv", "--config", cfg, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert params_sent(emu) == {f"+659123456{i}": [f] for i, f in enumerate(FORMULAS)}


def test_the_failures_file_keeps_a_cp1252_semicolon_input_as_it_was(tmp_path, emulator, write_config):
    emu = emulator()
    cfg = write_config(emu)
    lines = ["phone;template_id;param1", "91234560;OTP_LOGIN;café", "+6591234561;OTP_LOGIN;naïve €5"]
    (tmp_path / "in.csv").write_bytes(("\r\n".join(lines) + "\r\n").encode("cp1252"))
    r = invoke("send", "in.csv", "--config", cfg, "--encoding", "cp1252", cwd=tmp_path)
    assert r.returncode == 1
    data = (tmp_path / "in.failed.csv").read_bytes()
    assert data.startswith(b"phone;template_id;param1;error_code;")
    assert b"\r\n91234560;OTP_LOGIN;caf\xe9;" in data  # cp1252, the input's delimiter
    line = next(x for x in r.stderr.splitlines() if "(resend: sms-cli send " in x)
    assert "--encoding cp1252" in line
    fixed = data.replace(b"\r\n91234560;", b"\r\n+6591234560;")
    (tmp_path / "in.failed.csv").write_bytes(fixed)
    r = invoke("send", "in.failed.csv", "--config", cfg, "--encoding", "cp1252", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert params_sent(emu) == {"+6591234561": ["naïve €5"], "+6591234560": ["café"]}
    assert max(accepted_counts(emu).values()) == 1


def test_json_numbers_stay_as_written_in_the_failures_file(tmp_path, emulator, write_config):
    emu = emulator()
    cfg = write_config(emu)
    (tmp_path / "in.jsonl").write_text(
        '{"phone": "91234560", "template_id": "ORDER_SHIPPED", "params": [1.50, 1e3], "amount": 0.10}\n',
        encoding="utf-8")
    assert invoke("send", "in.jsonl", "--config", cfg, cwd=tmp_path).returncode == 1
    line = (tmp_path / "in.failed.jsonl").read_text(encoding="utf-8")
    assert '"params": [1.50, 1e3]' in line and '"amount": 0.10' in line
    row = json.loads(line)
    row["phone"] = "+6591234560"
    (tmp_path / "in.failed.jsonl").write_text(
        line.replace('"phone": "91234560"', '"phone": "+6591234560"'), encoding="utf-8")
    assert invoke("send", "in.failed.jsonl", "--config", cfg, cwd=tmp_path).returncode == 0
    assert params_sent(emu) == {"+6591234560": ["1.50", "1e3"]}
