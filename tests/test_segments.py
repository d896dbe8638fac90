import dataclasses

import pytest

from sms_cli.validate.segments import (GSM7, GSM_BASIC, GSM_EXTENSION, UCS2, MissingParameter,
    Segments, count, is_gsm7, placeholders, render)

CJK = "中"  # one UCS-2 unit
EMOJI = "😀"  # U+1F600: a surrogate pair, two UTF-16 units


# --- character sets -------------------------------------------------------


def test_basic_set_is_the_official_127_characters():
    expected = (
        "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
        "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
    )
    assert len(expected) == 127
    assert GSM_BASIC == frozenset(expected)


def test_extension_table():
    assert GSM_EXTENSION == frozenset("^{}[]~\\|€\f")
    assert not GSM_BASIC & GSM_EXTENSION


@pytest.mark.parametrize("ch", ["\x1b", "ç", "`", "á", "í", "ó", "ú", "â", "ê", "õ", "\t", "’", "“", "–"])
def test_common_lookalikes_are_not_gsm(ch):
    assert not is_gsm7(ch)
    assert count(ch).encoding == UCS2


def test_upper_c_cedilla_is_gsm_lower_is_not():
    assert count("Ç").encoding == GSM7
    assert count("ç").encoding == UCS2


def test_greek_capitals_in_basic_set_but_greek_lowercase_not():
    assert count("ΔΦΓΛΩΠΨΣΘΞ").encoding == GSM7
    assert count("ΔΦΓΛΩΠΨΣΘΞ").length == 10
    assert count("α").encoding == UCS2


# --- GSM-7 ----------------------------------------------------------------


def test_segments_is_frozen_dataclass():
    seg = count("hi")
    assert seg == Segments(encoding=GSM7, length=2, parts=1)
    assert [f.name for f in dataclasses.fields(Segments)] == ["encoding", "length", "parts"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        seg.parts = 2  # type: ignore[misc]


def test_empty_text_is_one_gsm_part():
    assert count("") == Segments(GSM7, 0, 1)


@pytest.mark.parametrize(
    "n, parts",
    [(1, 1), (160, 1), (161, 2), (306, 2), (307, 3), (459, 3), (460, 4)],
)
def test_ascii_parts(n, parts):
    assert count("a" * n) == Segments(GSM7, n, parts)


def test_newline_and_cr_are_single_septets():
    assert count("a\r\nb") == Segments(GSM7, 4, 1)


@pytest.mark.parametrize("ch", sorted(GSM_EXTENSION))
def test_each_extension_char_counts_two(ch):
    assert count(ch) == Segments(GSM7, 2, 1)
    assert count("a" + ch + "b").length == 4


def test_extension_chars_counted_twice():
    assert count("€" * 80) == Segments(GSM7, 160, 1)
    assert count("€" * 81) == Segments(GSM7, 162, 2)
    assert count("a" * 159 + "€") == Segments(GSM7, 161, 2)
    assert count("a" * 158 + "{") == Segments(GSM7, 160, 1)


def test_all_escape_pairs_fill_parts_evenly_or_not():
    # 153 is odd, so a part of only escape pairs holds 76 of them (152 septets).
    assert count("€" * 152).parts == 2  # 304 septets: 76 + 76
    assert count("€" * 153) == Segments(GSM7, 306, 3)  # ceil(306/153) would say 2


def test_escape_pair_at_boundary_adds_a_part():
    # 152 + 2 + 152 = 306 septets: ceil(306 / 153) == 2, but the euro cannot
    # straddle parts 1 and 2: the parts hold 152 | 2 + 151 | 1 septets.
    text = "a" * 152 + "€" + "a" * 152
    assert count(text) == Segments(GSM7, 306, 3)


def test_escape_pair_at_boundary_without_extra_part():
    text = "a" * 152 + "€" + "a" * 151  # 305 septets: 152 | 153
    assert count(text) == Segments(GSM7, 305, 2)
    text = "a" * 151 + "€" + "a" * 153  # 306 septets: 153 | 153, exact fit
    assert count(text) == Segments(GSM7, 306, 2)


def test_escape_pair_split_only_matters_for_multipart():
    # 158 + 2 = 160 septets in one part: no concatenation header, no splitting.
    assert count("a" * 158 + "€").parts == 1


# --- UCS-2 ----------------------------------------------------------------


@pytest.mark.parametrize(
    "n, parts",
    [(1, 1), (70, 1), (71, 2), (134, 2), (135, 3), (201, 3), (202, 4)],
)
def test_chinese_parts(n, parts):
    assert count(CJK * n) == Segments(UCS2, n, parts)


def test_one_non_gsm_char_switches_whole_text_to_ucs2():
    text = "a" * 100 + "ç"
    assert count("a" * 100) == Segments(GSM7, 100, 1)
    assert count(text) == Segments(UCS2, 101, 2)


def test_extension_chars_count_one_in_ucs2():
    assert count("€ç") == Segments(UCS2, 2, 1)
    assert count("€" * 70 + "ç") == Segments(UCS2, 71, 2)


def test_emoji_counts_two_units():
    assert count(EMOJI) == Segments(UCS2, 2, 1)
    assert count(EMOJI * 35) == Segments(UCS2, 70, 1)
    assert count(EMOJI * 36) == Segments(UCS2, 72, 2)
    assert count("hi " + EMOJI) == Segments(UCS2, 5, 1)


def test_bmp_symbol_counts_one_unit():
    assert count("☺") == Segments(UCS2, 1, 1)


def test_surrogate_pair_at_boundary_adds_a_part():
    text = CJK * 66 + EMOJI + CJK * 66  # 134 units: ceil(134/67) == 2
    assert count(text) == Segments(UCS2, 134, 3)
    text = CJK * 66 + EMOJI + CJK * 65  # 133 units: 66 | 67
    assert count(text) == Segments(UCS2, 133, 2)
    text = CJK * 65 + EMOJI + CJK * 67  # 134 units: 67 | 67
    assert count(text) == Segments(UCS2, 134, 2)


def test_emoji_only_multipart():
    # 67 is odd: each part holds 33 emoji (66 units).
    assert count(EMOJI * 66) == Segments(UCS2, 132, 2)
    assert count(EMOJI * 67) == Segments(UCS2, 134, 3)


# --- placeholders / render -------------------------------------------------


def test_placeholders_in_order_of_first_appearance():
    assert placeholders("Hi {name}, code {2} then {1}, again {name} {2}") == ["name", "2", "1"]
    assert placeholders("no placeholders") == []
    assert placeholders("") == []


def test_placeholders_ignore_non_placeholder_braces():
    assert placeholders("{ } {} {a b} {1a} {-1} {x.y} {{ }} {") == []
    assert placeholders("{_x} {x_1} {007}") == ["_x", "x_1", "007"]


def test_render_positional():
    assert render("Code {1} valid {2} min", ["4821", "5"]) == "Code 4821 valid 5 min"
    assert render("{2}{1}{2}", ["a", "b"]) == "bab"
    assert render("{1}", ("tuple",)) == "tuple"


def test_render_positional_extra_params_are_ignored():
    assert render("Code {1}", ["1", "2", "3"]) == "Code 1"


def test_render_named():
    assert render("Hi {name}, code {code}", {"name": "Ann", "code": "42"}) == "Hi Ann, code 42"


def test_render_dict_positional_uses_values_in_order():
    params = {"name": "Ann", "code": "42"}
    assert render("{1}/{2}/{name}", params) == "Ann/42/Ann"


def test_render_dict_numeric_key_wins_over_position():
    assert render("{1}", {"a": "first", "1": "one"}) == "one"
    assert render("{2}", {"a": "first", "1": "one"}) == "one"


def test_render_keeps_literal_text_and_braces():
    template = "{ {} {a b} {1a} } json={\"k\": 1} {1}"
    assert render(template, ["v"]) == "{ {} {a b} {1a} } json={\"k\": 1} v"


def test_double_braces_are_not_escapes():
    # Only {digits} and {identifier} are special: the inner {1} is filled.
    assert render("{{1}}", ["v"]) == "{v}"
    assert placeholders("{{1}}") == ["1"]


def test_render_values_not_rescanned():
    assert render("{1} {2}", ["{2}", "b"]) == "{2} b"
    assert render("{a}", {"a": "{b}", "b": "x"}) == "{b}"


def test_render_empty_value_and_unicode():
    assert render("[{1}]", [""]) == "[]"
    assert render("{name}好", {"name": "李"}) == "李好"


def test_render_missing_positional():
    with pytest.raises(ValueError, match=r"\{3\}") as info:
        render("{1} {3}", ["a", "b"])
    assert isinstance(info.value, MissingParameter)
    assert info.value.name == "3"
    assert "2 parameter(s)" in str(info.value)


def test_render_zero_is_not_a_position():
    with pytest.raises(MissingParameter, match=r"\{0\}"):
        render("{0}", ["a"])


def test_render_missing_positional_with_no_params():
    with pytest.raises(MissingParameter, match=r"\{1\}"):
        render("{1}", [])


def test_render_missing_named():
    with pytest.raises(ValueError, match=r"\{code\}.*name") as info:
        render("Hi {name} {code}", {"name": "Ann"})
    assert info.value.name == "code"


def test_render_named_with_positional_params():
    with pytest.raises(MissingParameter, match=r"\{name\}.*positional"):
        render("Hi {name}", ["Ann"])


def test_render_dict_positional_out_of_range():
    with pytest.raises(MissingParameter, match=r"\{2\}"):
        render("{2}", {"only": "x"})


def test_render_rejects_plain_string_params():
    with pytest.raises(TypeError):
        render("{1}", "abc")  # type: ignore[arg-type]


def test_render_then_count():
    text = render("Your code is {1}", ["€" * 3])
    assert count(text) == Segments(GSM7, len("Your code is ") + 6, 1)
