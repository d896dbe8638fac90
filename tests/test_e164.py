"""The "+digits" fast path gives exactly the PhoneNumber phonenumbers.parse gives."""
from __future__ import annotations

import random

import phonenumbers
import pytest
from phonenumbers import PhoneNumberType as T

from phonenumbers import phonenumberutil as _pu

from sms_cli.validate.e164 import _split, is_valid, valid_plus_digits

TYPES = (T.MOBILE, T.FIXED_LINE, T.TOLL_FREE, T.PREMIUM_RATE, T.VOIP, T.PERSONAL_NUMBER, T.UAN, T.PAGER,
         T.SHARED_COST, T.VOICEMAIL)


def parse_plus_digits(text: str) -> phonenumbers.PhoneNumber | None:
    """The PhoneNumber the fast path's split (e164._split) stands for, made as phonenumbers.parse
    makes it from the same country code and national number: compared field by field below."""
    split = _split(text)
    if split is None:
        return None
    cc, national = split
    num = phonenumbers.PhoneNumber(country_code=cc)
    _pu._set_italian_leading_zeros_for_phone_number(national, num)
    num.national_number = int(national)
    return num


def reference(text: str):
    try:
        return phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        return None


def same(text: str) -> None:
    fast = parse_plus_digits(text)
    assert (valid_plus_digits(text) is None) == (fast is None), text
    if fast is None:
        return  # left to phonenumbers: nothing to compare
    ref = reference(text)
    assert ref is not None, text
    assert (fast.country_code, fast.national_number, fast.italian_leading_zero,
            fast.number_of_leading_zeros) == (ref.country_code, ref.national_number, ref.italian_leading_zero,
                                              ref.number_of_leading_zeros), text
    assert phonenumbers.is_valid_number(fast) == phonenumbers.is_valid_number(ref) == is_valid(ref), text
    # without the PhoneNumber: the same verdict, E.164 and national significant number
    expected = False
    if phonenumbers.is_valid_number(ref):
        nsn = phonenumbers.national_significant_number(ref)
        expected = (phonenumbers.format_number(ref, phonenumbers.PhoneNumberFormat.E164), ref.country_code, nsn)
    assert valid_plus_digits(text) == expected, text


def test_every_regions_example_numbers():
    seen = 0
    for region in phonenumbers.SUPPORTED_REGIONS:
        for kind in TYPES:
            example = phonenumbers.example_number_for_type(region, kind)
            if example is None:
                continue
            text = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
            same(text)
            # with the national prefix kept after the country code, as people write +44 0...
            prefix = phonenumbers.PhoneMetadata.metadata_for_region(region).national_prefix
            if prefix:
                same(f"+{example.country_code}{prefix}{phonenumbers.national_significant_number(example)}")
            seen += 1
    assert seen > 1000


@pytest.mark.parametrize("seed", range(4))
def test_random_digit_strings(seed):
    rng = random.Random(seed)
    for _ in range(5000):
        same("+" + "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 18))))


def test_only_plus_and_ascii_digits_take_the_fast_path():
    for text in ("85255311111", "+852 5531 1111", "(852)55311111", "+８５２５５３１１１１１", "+852-5531", "+0852",
                 "+", "+1", ""):
        assert parse_plus_digits(text) is None
    assert parse_plus_digits("+85255311111").national_number == 55311111


@pytest.mark.parametrize("cc", [1, 7, 44, 47, 61, 262, 290, 358, 590, 599])
def test_is_valid_on_shared_country_codes(cc):
    """Country codes several regions share, where is_valid takes its shortcut."""
    rng = random.Random(cc)
    for _ in range(4000):
        num = phonenumbers.PhoneNumber(country_code=cc, national_number=rng.randrange(10 ** rng.randint(4, 11)))
        assert is_valid(num) == phonenumbers.is_valid_number(num), num


def test_is_valid_on_every_country_code_near_its_examples():
    """is_valid tries the number types likeliest first: the same answer as is_valid_number for
    every country code, on its regions' examples of each type and on numbers one digit away
    (which fall in other types' patterns, or in none), and on random numbers of its lengths."""
    rng = random.Random(22)
    checked = 0
    for cc, regions in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.items():
        nsns = set()
        for region in regions:
            for kind in TYPES:
                example = (phonenumbers.example_number_for_non_geo_entity(cc) if region == "001"
                           else phonenumbers.example_number_for_type(region, kind))
                if example is not None:
                    nsns.add(phonenumbers.national_significant_number(example))
        for nsn in list(nsns):
            for _ in range(6):
                i = rng.randrange(len(nsn))
                nsns.add(nsn[:i] + rng.choice("0123456789") + nsn[i + 1:])
            nsns.add(nsn[:-1])
            nsns.add(nsn + rng.choice("0123456789"))
        nsns.update(str(rng.randrange(10 ** rng.randint(4, 12))) for _ in range(30))
        for nsn in nsns:
            num = phonenumbers.PhoneNumber(country_code=cc, national_number=int(nsn))
            if nsn.startswith("0"):
                num.italian_leading_zero = True
                num.number_of_leading_zeros = len(nsn) - len(nsn.lstrip("0")) or None
            assert is_valid(num) == phonenumbers.is_valid_number(num), (cc, nsn)
            checked += 1
    assert checked > 10000
    for cc in (0, 999, 3000):  # no region
        assert is_valid(phonenumbers.PhoneNumber(country_code=cc, national_number=12345678)) is False
