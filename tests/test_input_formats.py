"""Files the way people have them: Excel's semicolon CSV in cp1252, UTF-16 "Unicode text", TSV,
`sep=;` first lines, old Mac line endings, BOMs; --encoding and --delimiter for the rest.
The library is called in-process (open_source / Validator): milliseconds a test."""
import codecs
import hashlib

import pytest

from conftest import invoke
from sms_cli.core.errors import InputError
from sms_cli.input.rows import open_source
from sms_cli.validate.validator import Defaults, Rejected, Validator

ROWS = [("+85255311100", "ORDER_SHIPPED", "Café Noël", "2 days"),
        ("+6591234500", "OTP_LOGIN", "012345", "")]


def table(sep: str, newline: str = "\n") -> str:
    lines = [sep.join(("phone", "template_id", "param1", "param2"))]
    lines += [sep.join(r) for r in ROWS]
    return newline.join(lines) + newline


def read(path, **kw):
    source = open_source(str(path), **kw)
    try:
        return source, list(source.rows())
    finally:
        source.cleanup()


def records(rows):
    return [tuple(r.record.values()) for r in rows]


@pytest.mark.parametrize("name,data,encoding,delimiter", [
    ("excel-utf8-bom.csv", codecs.BOM_UTF8 + table(";", "\r\n").encode("utf-8"), "utf-8-sig", ";"),
    ("plain.csv", table(",").encode("utf-8"), "utf-8", ","),
    ("semicolon.csv", table(";").encode("utf-8"), "utf-8", ";"),
    ("tabs.csv", table("\t").encode("utf-8"), "utf-8", "\t"),
    ("export.tsv", table("\t").encode("utf-8"), "utf-8", "\t"),
    ("unicode-le.csv", table("\t", "\r\n").encode("utf-16"), "utf-16", "\t"),  # BOM + LE
    ("unicode-be.csv", codecs.BOM_UTF16_BE + table(",").encode("utf-16-be"), "utf-16", ","),
    ("utf32.csv", table(";").encode("utf-32"), "utf-32", ";"),
    ("old-mac.csv", table(",", "\r").encode("utf-8"), "utf-8", ","),
])
def test_detected_encoding_and_delimiter(tmp_path, name, data, encoding, delimiter):
    path = tmp_path / name
    path.write_bytes(data)
    source, rows = read(path)
    assert (source.fmt, source.encoding, source.delimiter) == ("csv", encoding, delimiter)
    assert source.header == ["phone", "template_id", "param1", "param2"]
    assert records(rows) == ROWS
    assert [r.line for r in rows] == [2, 3]
    assert source.digest == hashlib.sha256(data).hexdigest()  # the raw bytes, whatever the encoding
    assert source.lines == 3


def test_cp1252_semicolon_needs_encoding_and_says_so(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes(table(";", "\r\n").encode("cp1252"))
    with pytest.raises(InputError) as exc:
        open_source(str(path))
    assert exc.value.line == 2 and "not UTF-8 text" in str(exc.value) and "--encoding cp1252" in str(exc.value)
    source, rows = read(path, encoding="cp1252")
    assert (source.encoding, source.delimiter) == ("cp1252", ";")
    assert records(rows) == ROWS


def test_bad_byte_names_its_line_deep_in_the_file(tmp_path):
    path = tmp_path / "in.csv"
    body = "phone,template_id\n" + "+6591234500,T\n" * 5000 + "+6591234501,caf\u00e9\n"
    path.write_bytes(body.encode("latin-1"))
    with pytest.raises(InputError) as exc:
        open_source(str(path))
    assert exc.value.line == 5002 and "0xe9" in str(exc.value)


def test_explicit_delimiter_and_names(tmp_path):
    path = tmp_path / "pipes.csv"
    path.write_text(table("|"), encoding="utf-8")
    with pytest.raises(InputError, match="no phone column"):
        open_source(str(path))
    for given in ("|", "pipe"):
        source, rows = read(path, delimiter=given)
        assert source.delimiter == "|" and records(rows) == ROWS
    tabbed = tmp_path / "tabbed.dat"
    tabbed.write_text(table("\t"), encoding="utf-8")
    for given in ("\t", "tab", "\\t"):
        source, rows = read(tabbed, fmt="csv", delimiter=given)
        assert source.delimiter == "\t" and records(rows) == ROWS
    source, rows = read(tabbed, fmt="tsv")
    assert (source.fmt, source.delimiter) == ("csv", "\t")


@pytest.mark.parametrize("delimiter", ["ab", "", '"', "\n", "x"])
def test_bad_delimiter_is_an_input_error(tmp_path, delimiter):
    path = tmp_path / "in.csv"
    path.write_text(table(","), encoding="utf-8")
    with pytest.raises(InputError, match="delimiter"):
        open_source(str(path), delimiter=delimiter)


@pytest.mark.parametrize("encoding,expect", [("no-such-codec", "unknown encoding"), ("base64", "not a text encoding"),
                                             ("rot13", "not a text encoding")])
def test_bad_encoding_is_an_input_error(tmp_path, encoding, expect):
    path = tmp_path / "in.csv"
    path.write_text(table(","), encoding="utf-8")
    with pytest.raises(InputError, match=expect):
        open_source(str(path), encoding=encoding)


def test_given_encoding_with_a_bom_reads_past_the_bom(tmp_path):
    path = tmp_path / "in.csv"
    path.write_bytes(table(",").encode("utf-16"))  # BOM + LE
    for given in ("utf-16", "utf-16-le", "UTF16"):
        source, rows = read(path, encoding=given)
        assert source.header[0] == "phone" and records(rows) == ROWS
    path.write_bytes(codecs.BOM_UTF8 + table(",").encode("utf-8"))
    source, rows = read(path, encoding="utf-8")
    assert source.header[0] == "phone" and records(rows) == ROWS


def test_latin1_undefined_cp1252_byte_names_the_encoding(tmp_path):
    path = tmp_path / "in.csv"
    path.write_bytes(b"phone,template_id\n+6591234500,T\x81\n")  # 0x81 is not a cp1252 character
    with pytest.raises(InputError) as exc:
        open_source(str(path), encoding="cp1252")
    assert exc.value.line == 2 and "not cp1252 text" in str(exc.value)
    source, rows = read(path, encoding="latin-1")
    assert rows[0].record["template_id"] == "T\x81"


def test_excel_sep_line(tmp_path):
    path = tmp_path / "in.csv"
    path.write_text("sep=;\r\n" + table(";", "\r\n"), encoding="utf-8")
    source, rows = read(path)
    assert source.delimiter == ";" and records(rows) == ROWS
    assert [r.line for r in rows] == [3, 4]


def test_header_with_one_column_and_stdin_like_sniffing(tmp_path):
    path = tmp_path / "in.csv"
    path.write_text("phone\n+6591234500\n\n+85255311100\n", encoding="utf-8")
    source, rows = read(path)
    assert source.delimiter == "," and [r.record["phone"] for r in rows] == ["+6591234500", "+85255311100"]
    assert [r.line for r in rows] == [2, 4]
    other = tmp_path / "data"  # no extension: the content says CSV, with semicolons
    other.write_text(table(";"), encoding="utf-8")
    source, rows = read(other)
    assert (source.fmt, source.delimiter) == ("csv", ";") and records(rows) == ROWS


def test_excel_unicode_text_saved_as_txt_is_a_table(tmp_path):
    """Excel's "Unicode Text (*.txt)": UTF-16 LE with a BOM, tab-separated, .txt."""
    path = tmp_path / "export.txt"
    path.write_bytes(table("\t", "\r\n").encode("utf-16"))
    source, rows = read(path)
    assert (source.fmt, source.delimiter, source.encoding) == ("csv", "\t", "utf-16")
    assert records(rows) == ROWS
    numbers = tmp_path / "numbers.txt"
    numbers.write_text("+6591234500\n# a comment\n+85255311100\n", encoding="utf-8")
    source, rows = read(numbers)
    assert source.fmt == "lines" and [r.line for r in rows] == [1, 3]


def test_jsonl_and_json_in_utf16(tmp_path):
    jl = tmp_path / "in.jsonl"
    jl.write_bytes('{"phone": "+6591234500", "params": ["Noël"]}\n'.encode("utf-16"))
    source, rows = read(jl)
    assert source.encoding == "utf-16" and rows[0].record["params"] == ["Noël"]
    js = tmp_path / "in.json"
    js.write_bytes(codecs.BOM_UTF8 + b'[\n{"phone": "+6591234500"},\n\n{"phone": "+85255311100"}]')
    source, rows = read(js)
    assert [(r.line, r.record["phone"]) for r in rows] == [(2, "+6591234500"), (4, "+85255311100")]


def test_excel_scientific_notation_phone_says_format_as_text():
    v = Validator({}, "HK", Defaults(template_id="T"))
    from sms_cli.input.rows import RawRow

    for cell in ("8.52553E+10", "8,52553E+10", "6.59123E+9"):
        out = v.validate(RawRow(0, 2, {"phone": cell}))
        assert isinstance(out, Rejected) and out.code == "InvalidPhone"
        assert "Excel" in out.reason and "Text" in out.reason and cell not in out.reason


def test_cli_validate_takes_encoding_and_delimiter(tmp_path):
    (tmp_path / "in.csv").write_bytes(table("|", "\r\n").encode("cp1252"))
    r = invoke("validate", "in.csv", "--encoding", "cp1252", "--delimiter", "|", "--default-region", "HK",
               cwd=tmp_path)
    assert r.returncode == 0, (r.stdout, r.stderr)
    r = invoke("validate", "in.csv", cwd=tmp_path)
    assert r.returncode == 2 and "--encoding cp1252" in r.stderr


def test_the_scan_finds_a_line_over_the_cell_limit_without_measuring_every_line():
    """rows._line_over (used by the input scan on every chunk) agrees with splitting the chunk
    and measuring each line, on random chunks around the limit, with a line carried over."""
    import random
    from sms_cli.input.rows import _line_over
    rng = random.Random(7)
    for _ in range(3000):
        limit = rng.randrange(1, 40)
        pieces = [("x" * rng.choice((0, 1, limit - 1, limit, limit + 1, rng.randrange(3 * limit + 2))))
                  for _ in range(rng.randrange(1, 8))]
        data = "\n".join(pieces) + rng.choice(("", "\n"))
        carry = rng.choice((0, 0, rng.randrange(limit + 2)))
        parts = data.split("\n")
        lengths = [carry + len(parts[0]), *map(len, parts[1:])]
        assert _line_over(data, "\n", carry, limit) == (max(lengths) > limit), (data, carry, limit)
        assert _line_over(data.encode(), b"\n", carry, limit) == (max(lengths) > limit)
