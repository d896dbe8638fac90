"""phonenumbers.parse for the shape most bulk inputs have, "+" and ASCII digits, at a tenth of
the cost.

phonenumbers.parse spends most of its time on what free text needs: finding the number in the
string, Unicode digits, letters, extensions, "tel:" URIs. A string that is "+" and 3 to 17 ASCII
digits needs none of it. `_split` takes the steps phonenumbers takes for such a string (the
country code read as its longest known prefix of 1 to 3 digits, then the national prefix
stripped where the region's metadata says so) by calling phonenumbers' own functions for each,
so its country code and national number are the ones parse() reads; `valid_plus_digits` checks
them as is_valid_number would, without building a PhoneNumber. Anything else returns None and
the caller uses phonenumbers.parse. tests/test_e164.py builds the PhoneNumber from the split as
parse() does (the Italian leading zeros included) and compares the two on every region's
example numbers and on random digit strings.
"""
from __future__ import annotations

import phonenumbers
from phonenumbers import phonenumberutil as _pu

_REGIONS = phonenumbers.COUNTRY_CODE_TO_REGION_CODE
_MIN_NSN, _MAX_NSN = _pu._MIN_LENGTH_FOR_NSN, _pu._MAX_LENGTH_FOR_NSN
_KEEP_UNSTRIPPED = (_pu.ValidationResult.TOO_SHORT, _pu.ValidationResult.IS_POSSIBLE_LOCAL_ONLY,
                    _pu.ValidationResult.INVALID_LENGTH)
# country code -> (its metadata, the match of its national_prefix_for_parsing pattern or None)
_METADATA: dict[int, tuple[object, object]] = {}
# the country codes as the digits that spell them ("1", "44", "852"): no int() of 1-3 prefixes
_CODES = {str(cc): cc for cc in _REGIONS}


def _metadata(cc: int) -> tuple[object, object]:
    entry = _METADATA.get(cc)
    if entry is None:
        region = phonenumbers.region_code_for_country_code(cc)
        md = _pu.PhoneMetadata.metadata_for_region_or_calling_code(cc, region)
        prefix = md.national_prefix_for_parsing if md is not None else None
        entry = _METADATA[cc] = (md, _pu.re_compile(prefix).match if prefix else None)
    return entry


def _split(text: str) -> tuple[int, str] | None:
    """(country code, national significant number) of "+<digits>" as phonenumbers.parse reads
    it, or None when `text` is not of that shape or is a case left to phonenumbers."""
    digits = text[1:]
    if text[:1] != "+" or not (3 <= len(digits) <= 17) or not (digits.isascii() and digits.isdigit()):
        return None
    if digits[0] == "0":
        return None  # no country code starts with 0: phonenumbers raises
    for size in (1, 2, 3):
        cc = _CODES.get(digits[:size])
        if cc is not None:
            national = digits[size:]
            break
    else:
        return None
    if len(national) < _MIN_NSN:
        return None
    md, prefix = _metadata(cc)
    # _maybe_strip_national_prefix_carrier_code changes nothing unless the region's prefix
    # pattern matches the number's start (most numbers written after "+cc" carry no prefix)
    if prefix is not None and prefix(national):
        _, stripped, changed = _pu._maybe_strip_national_prefix_carrier_code(national, md)
        # parse() tests the stripped number's length to choose between the two; when nothing was
        # stripped they are one string and either choice gives it
        if changed and _pu._test_number_length(stripped, md) not in _KEEP_UNSTRIPPED:
            national = stripped
    if not (_MIN_NSN <= len(national) <= _MAX_NSN):
        return None
    return cc, national


def valid_plus_digits(text: str) -> tuple[str, int, str] | bool | None:
    """_split + is_valid without a PhoneNumber in between: (E.164, country code,
    national number) for a valid number, False for an invalid one, None when `text` is left to
    phonenumbers. The national number is the string parse() read: the PhoneNumber it makes keeps
    it as an int plus its leading zeros, and national_significant_number() spells it back."""
    split = _split(text)
    if split is None:
        return None
    cc, national = split
    if not _valid_nsn(cc, national):
        return False
    return f"+{cc}{national}", cc, national


# PhoneNumberDesc -> (possible lengths, the compiled pattern's fullmatch), or None for a desc that
# matches nothing: what phonenumbers' _is_number_matching_desc reads of it on every call
_DESCS: dict[int, tuple[object, tuple | None]] = {}
# metadata -> (its general desc's check, the checks of its number types, likeliest first)
_TYPES: dict[int, tuple[object, tuple | None, tuple]] = {}


def _check(desc) -> tuple | None:
    entry = _DESCS.get(id(desc))
    if entry is None or entry[0] is not desc:
        check = None
        if desc is not None and desc.national_number_pattern:
            check = (frozenset(desc.possible_length), _pu.re_compile(desc.national_number_pattern).fullmatch)
        entry = _DESCS[id(desc)] = (desc, check)
    return entry[1]


def _matches(nsn: str, check: tuple | None) -> bool:
    """phonenumbers._is_number_matching_desc(nsn, desc): the length among the desc's possible
    ones (when it lists any), then its pattern matching the whole number (its _match with
    allow_prefix_match=False: a match at the start that is not a full match is False)."""
    if check is None:
        return False
    lengths, full = check
    return (not lengths or len(nsn) in lengths) and full(nsn) is not None


def _has_type(nsn: str, md) -> bool:
    """phonenumbers._number_type_helper(nsn, md) != UNKNOWN, with the likeliest types first.
    That helper finds the number's type, so it tries premium rate, toll free, shared cost, VoIP,
    personal, pager, UAN and voicemail (eight patterns) before fixed line and mobile, what a
    bulk list holds. Whether ANY of them matches does not depend on the order they are tried in:
    the same patterns, the same answer, mobile and fixed line tried first. Each desc's lengths
    and compiled pattern are read once per metadata, not on every number."""
    entry = _TYPES.get(id(md))
    if entry is None or entry[0] is not md:
        # the helper tries mobile only when its pattern is not fixed line's (then fixed line decides)
        descs = ([] if md.same_mobile_and_fixed_line_pattern else [md.mobile]) + [
            md.fixed_line, md.premium_rate, md.toll_free, md.shared_cost, md.voip, md.personal_number, md.pager,
            md.uan, md.voicemail]
        entry = _TYPES[id(md)] = (md, _check(md.general_desc),
                                  tuple(c for c in map(_check, descs) if c is not None))
    if not _matches(nsn, entry[1]):
        return False
    for check in entry[2]:
        if _matches(nsn, check):
            return True
    return False


_FOR_REGION: dict[tuple[int, str], object] = {}


def _region_metadata(cc: int, region: str):
    """The metadata is_valid_number_for_region(num, region) checks a number of `cc` against, or
    None where it answers False whatever the number (its checks that do not read the number)."""
    key = (cc, region)
    md = _FOR_REGION.get(key, _FOR_REGION)
    if md is _FOR_REGION:
        md = _pu.PhoneMetadata.metadata_for_region_or_calling_code(cc, region.upper())
        if md is not None and region != _pu.REGION_CODE_FOR_NON_GEO_ENTITY \
                and cc != _pu.country_code_for_valid_region(region):
            md = None
        _FOR_REGION[key] = md
    return md


def is_valid(num: phonenumbers.PhoneNumber) -> bool:
    """phonenumbers.is_valid_number, by its own steps, with two shortcuts: the number's type is
    not needed, only whether it has one, so the patterns are tried likeliest first (_has_type);
    and for a country code shared by several regions (+1, +7, +44...) it finds the region by
    checking the number against each region's patterns, then checks it against the region found,
    which repeats the check that found it: here the first check's answer is kept."""
    return _valid_nsn(num.country_code, _pu.national_significant_number(num))


def _valid_nsn(cc: int, nsn: str) -> bool:
    regions = _REGIONS.get(cc)
    if regions is None:
        return False  # region_code_for_number gives None, and is_valid_number_for_region False
    if len(regions) == 1:
        md = _region_metadata(cc, regions[0])
        return md is not None and _has_type(nsn, md)
    for region in regions:
        md = _pu.PhoneMetadata.metadata_for_region(region.upper(), None)
        if md is None:
            continue
        if md.leading_digits is not None:
            if _pu.re_compile(md.leading_digits).match(nsn):
                md = _region_metadata(cc, region)
                return md is not None and _has_type(nsn, md)
        elif _has_type(nsn, md):
            return True  # what is_valid_number_for_region(num, region) would compute again
    return False
