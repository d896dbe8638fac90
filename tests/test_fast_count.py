"""The counter that never renders a row (segments.Shape, validate.Filler) against the full render +
count it replaces, on generated templates and rows: the same values, length, encoding, parts and
errors, in every case hypothesis finds."""
from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sms_cli.validate import segments
from sms_cli.core.settings import Template
from sms_cli.core.model import Message
from sms_cli.run.plan import Estimator
from sms_cli.validate.segments import GSM_BASIC, GSM_EXTENSION, MissingParameter, Shape, count, render
from sms_cli.validate.validator import MAX_LENGTH, Filler, check_template, filler
from sms_cli.validate.validator import render as render_template

# characters of every kind the counter tells apart: plain ASCII, ASCII that is an escape pair or
# not GSM-7 at all, GSM-7 letters outside ASCII, UCS-2 letters, characters outside the BMP
CHARS = ("a", "Z", "7", " ", ".", "\n", "\r", "@", "$", "_", "{", "}", "[", "\\", "^", "~", "|", "€", "\f",
         "`", "\t", "\x00", "\x7f", "é", "Δ", "Ç", "ç", "中", "【", "’", "😀", "𝄞")
PLACEHOLDERS = ("{1}", "{2}", "{3}", "{0}", "{01}", "{name}", "{code}", "{_x}", "{ 1}", "{a b}", "{")
KEYS = ("1", "2", "name", "code", "_x", "01", "other")
GSM = tuple(ch for ch in CHARS if ch in GSM_BASIC or ch in GSM_EXTENSION)


def runs():
    """A run of one character, long enough (sometimes) to make a message of several parts; half
    of them GSM-7, so that GSM-7 messages of several parts come up as often as UCS-2 ones."""
    return st.builds(lambda ch, n: ch * n, st.sampled_from(CHARS) | st.sampled_from(GSM), st.integers(0, 170))


def texts():
    return st.lists(st.one_of(runs(), st.text(st.sampled_from(CHARS), max_size=12), st.sampled_from(PLACEHOLDERS)),
                    max_size=8).map("".join)


def values():
    return st.one_of(st.text(st.sampled_from(CHARS), max_size=10), runs(),
                     st.sampled_from(["123456", "2 days", "Ann", "", "A1-99"]))


def params():
    return st.one_of(st.lists(values(), max_size=4),
                     st.dictionaries(st.sampled_from(KEYS), values(), max_size=4))


def templates():
    names = st.one_of(st.none(), st.lists(st.sampled_from(KEYS), min_size=1, max_size=3, unique=True).map(tuple))
    return st.builds(lambda text, names: Template("T", names, len(names) if names else None, text), texts(), names)


def full(tpl: Template, params, prefix: str = ""):
    """What the code did before: render the text, then count it; or the error render raised."""
    try:
        text = render_template(tpl, params)
    except (ValueError, TypeError) as exc:
        return exc.__class__, str(exc)
    return len(text), count(prefix + text)


def fast(fill: Filler, params, prefix: str = ""):
    try:
        vals = fill.values(params)
    except (ValueError, TypeError) as exc:
        return exc.__class__, str(exc)
    return fill.shape.length(vals), fill.shape.count(vals, prefix)


# the suite's share; the README quotes a run of 20,000 cases (FAST_COUNT_CASES=20000)
@settings(max_examples=int(os.environ.get("FAST_COUNT_CASES", 500)), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(templates(), st.lists(params(), min_size=1, max_size=4), st.sampled_from(["", "【ACME】", "【😀】"]))
def test_the_counter_equals_render_and_count(tpl, rows, prefix):
    fill = Filler(tpl)
    for p in rows + rows:  # twice: the second time from the plans kept the first time
        assert fast(fill, p, prefix) == full(tpl, p, prefix)


@settings(max_examples=200, deadline=None)
@given(texts(), st.lists(values(), min_size=1, max_size=6), st.sampled_from(["", "【x】"]))
def test_shape_counts_what_it_renders(text, vals, prefix):
    shape = Shape(text)
    vals = (vals * len(shape.names))[:len(shape.names)]  # one value per placeholder occurrence
    # the same text with each occurrence renamed {1}, {2}...: render() puts vals[i] at the i-th
    numbers = iter(range(1, len(vals) + 1))
    renamed = segments._PLACEHOLDER.sub(lambda m: "{%d}" % next(numbers), text)
    rendered = shape.render(vals, prefix)
    assert rendered == prefix + render(renamed, vals)
    assert shape.count(vals, prefix) == count(rendered)
    assert shape.length(vals) == len(rendered) - len(prefix)


def _old_check_template_length(tpl: Template, params) -> str | None:
    try:
        text = render_template(tpl, params)
    except (ValueError, TypeError) as exc:
        return str(exc)
    if len(text) > MAX_LENGTH:
        return f"message is {len(text)} characters; providers cap a message at {MAX_LENGTH}"
    return None


@settings(max_examples=200, deadline=None)
@given(templates(), params())
def test_check_template_says_what_it_said(tpl, p):
    # the declared count/names checks come first and are unchanged; past them, the length
    untyped = Template(tpl.id, None, None, tpl.text)
    assert check_template(untyped, p) == _old_check_template_length(untyped, p)


def test_a_long_message_is_refused_with_its_length():
    tpl = Template("T", ("code",), 1, "x" * 490 + "{code}")
    assert check_template(tpl, ["123456789"]) is None
    assert check_template(tpl, ["1234567890a"]) == f"message is 501 characters; providers cap a message at {MAX_LENGTH}"


def test_missing_placeholder_errors_are_raised_anew_each_time():
    fill = Filler(Template("T", None, None, "Hi {name} {3}"))
    errors = []
    for _ in range(2):
        try:
            fill.values({"name": "Ann"})
        except MissingParameter as exc:
            errors.append(exc)
    assert [e.name for e in errors] == ["3", "3"] and errors[0] is not errors[1]
    assert str(errors[1]) == ("template placeholder {3} has no value: 1 parameter(s) given, "
                              "placeholders are numbered from 1")


def test_fillers_are_made_once_per_template():
    tpl = Template("T", None, None, "Code {1}")
    assert filler(tpl) is filler(tpl)
    assert filler(Template("T", None, None, "Code {1}")) is not filler(tpl)


def test_escape_and_surrogate_pairs_at_a_part_boundary_are_counted_in_full():
    # the cases where a wide character falls decides a part: the counter renders them
    shape = Shape("{1}€{2}")
    assert shape.count(["a" * 152, "a" * 152]) == count("a" * 152 + "€" + "a" * 152)
    assert shape.count(["a" * 152, "a" * 152]) == segments.Segments("GSM-7", 306, 3)
    shape = Shape("中{1}")
    assert shape.count(["中" * 65 + "😀" + "中" * 66]) == count("中" * 66 + "😀" + "中" * 66)


def test_measure_of_ascii_agrees_with_the_tables():
    for code in range(128):
        ch = chr(code)
        chars, ext, astral, gsm = segments._measure(ch)
        assert (chars, astral) == (1, 0)
        assert ext == (ch in GSM_EXTENSION)
        assert gsm == (ch in GSM_BASIC or ch in GSM_EXTENSION)


def _message(phone: str, cc: int, params, sender: str | None = None) -> Message:
    return Message(1, 2, phone, cc, phone[len(str(cc)) + 1:], "T", params, sender, None, None, key="k")


@settings(max_examples=150, deadline=None)
@given(templates(), st.lists(st.tuples(params(), st.sampled_from([86, 1]), st.sampled_from([None, "ACME", "中文"])),
                             min_size=1, max_size=5))
def test_the_estimate_is_what_render_and_count_give(tpl, rows):
    est = Estimator({"T": tpl}, {"default": 0.01})
    parts = lengths = 0
    seen = []
    for p, cc, sender in rows:
        msg = _message("+8613800138000" if cc == 86 else "+12125550123", cc, p, sender)
        est.add(msg)
        got = full(tpl, p, f"【{sender or ''}】" if cc == 86 else "")
        if got[0].__class__ is int:
            parts += got[1].parts
            lengths += 1
            seen.append(got[1].length)
        else:
            parts += 1  # unknown text: one part, and the estimate is a lower bound
    assert est.parts == parts
    assert est.lower_bound == (lengths < len(rows))
    t = est.by_template["T"]
    assert (t["min_length"], t["max_length"]) == ((min(seen), max(seen)) if seen else (None, 0))
