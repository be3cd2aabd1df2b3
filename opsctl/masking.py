"""Masking of personal data in text that opsctl stores or shows (R-25).

Query rows, log excerpts and messages may carry citizens' personal data. ``mask`` replaces,
in any text:

- mainland China resident ID numbers, 18 characters (17 digits and a digit or X), keeping
  the region code and the last four: ``330102********123X``; and the old 15-digit ones,
  keeping the region code and the last three: ``330102******123``. A number is taken for an
  ID when its region code names a province and its birth date is a real date; the GB 11643
  check digit is not required, because a mistyped ID number is still a person's.
- mobile numbers (``1[3-9]`` and nine digits, also written ``138 1234 5678``,
  ``138-1234-5678``, with a ``+86``, ``0086`` or ``86`` prefix), keeping the first three and
  the last four digits: ``138****5678``.
- bank card numbers: 16 to 19 digits (or groups of four) with a valid Luhn check digit and
  a card-scheme first digit (UnionPay 62, Visa 4, Mastercard 51-55 and 2221-2720, 3, 9),
  keeping the last four: ``***************1234``.
- e-mail addresses, keeping the first character and the domain: ``z***@example.com``.
- names after a label (``姓名:``, ``患者:``, ``联系人=``, ``name=``, ``xm=``...), keeping the
  first character: ``张**``.

Only whole numbers are masked: a number inside a longer run of digits (a timestamp, an
order number) or a decimal is left alone. Chinese text has no spaces and ``\\b`` sees CJK
characters as word characters, so the patterns use look-arounds on digits, not ``\\b``.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any

# A number starts where no digit (and no "digit." of a decimal) comes before, and ends
# where no digit (and no ".digit") follows.
_START = r"(?<![0-9])(?<![0-9]\.)"
_END = r"(?![0-9])(?!\.[0-9])"

#: First two digits of the administrative division codes of GB/T 2260 (provinces,
#: autonomous regions, municipalities; 81-83: residence permits of Hong Kong, Macao, Taiwan).
PROVINCES = frozenset(
    {11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46}
    | {50, 51, 52, 53, 54, 61, 62, 63, 64, 65, 71, 81, 82, 83, 91}
)

_ID18 = re.compile(_START + r"([1-9]\d{5})((?:18|19|20)\d{6})(\d{3}[0-9Xx])(?![0-9Xx])(?!\.[0-9])")
_ID15 = re.compile(_START + r"([1-9]\d{5})(\d{6})(\d{3})" + _END)
_CARD = re.compile(_START + r"(\d{4}(?:[ -]?\d{4}){3}(?:[ -]?\d{1,3})?)" + _END)
_MOBILE = re.compile(_START + r"((?:\+|00)?86[ -]?)?(1[3-9]\d)([ -]?)\d{4}([ -]?)(\d{4})" + _END)
_EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+-])([A-Za-z0-9])[A-Za-z0-9._%+-]*@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,})"
)

#: Column names (lower case) and text labels that hold a person's name: English, Chinese,
#: and the pinyin initials common in hospital schemas (xm 姓名, hzxm 患者姓名, brxm 病人姓名).
NAME_COLUMNS = frozenset(
    {
        "name",
        "full_name",
        "fullname",
        "real_name",
        "realname",
        "patient_name",
        "person_name",
        "contact_name",
        "xm",
        "hzxm",
        "brxm",
        "lxr",
        "姓名",
        "患者姓名",
        "病人姓名",
        "患者",
        "病人",
        "联系人",
        "收件人",
        "持卡人",
    }
)
_LATIN_LABELS = "|".join(sorted((n for n in NAME_COLUMNS if n.isascii()), key=len, reverse=True))
_CJK_LABELS = "|".join(sorted((n for n in NAME_COLUMNS if not n.isascii()), key=len, reverse=True))
_CJK_NAME = r"[\u4e00-\u9fff]{1,4}(?:[·•][\u4e00-\u9fff]{1,8}){0,2}"
_LATIN_NAME = r"[A-Z][a-z]+(?:[ -][A-Z][a-z]+){0,2}"
_LABELLED_NAME = re.compile(
    rf"((?:(?<![A-Za-z0-9_])(?i:{_LATIN_LABELS})|{_CJK_LABELS})\s*[:：=]\s*)"
    rf"({_CJK_NAME}|{_LATIN_NAME})"
)


def mask(text: str) -> str:
    """Given text, return it with ID-card, mobile and bank card numbers, e-mail addresses and
    labelled names masked. Text without personal data is returned unchanged.
    """
    if not text:
        return text
    text = _ID18.sub(_id18, text)
    text = _ID15.sub(_id15, text)
    text = _CARD.sub(_card, text)
    text = _MOBILE.sub(_mobile, text)
    text = _EMAIL.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", text)
    return _LABELLED_NAME.sub(lambda m: m.group(1) + mask_name(m.group(2)), text)


def mask_name(name: str) -> str:
    """Given a person's name, return it with every character but the first masked:
    ``张三丰`` → ``张**``, ``Zhang San`` → ``Z**** ***``.
    """
    name = name.strip()
    return name[:1] + "".join(" " if char == " " else "*" for char in name[1:])


def mask_value(value: Any, column: str | None = None) -> Any:
    """Given one cell of a query row (and its column name), return it masked: text with
    ``mask``, and the whole text masked as a name when the column holds names (``xm``,
    ``patient_name``, ``姓名``). Values of other types are returned as they are.
    """
    if not isinstance(value, str):
        return value
    if column is not None and column.strip().lower() in NAME_COLUMNS and value.strip():
        return mask_name(value)
    return mask(value)


def is_plausible_id(number: str) -> bool:
    """Given 18 or 15 characters, return True if they read as a resident ID number: a
    province region code and a real birth date (the check digit is not required).
    """
    if int(number[:2]) not in PROVINCES:
        return False
    birth = number[6:14] if len(number) == 18 else "19" + number[6:12]
    try:
        born = date(int(birth[:4]), int(birth[4:6]), int(birth[6:8]))
    except ValueError:
        return False
    return born.year >= 1900 and born <= datetime.now(UTC).date()


def id_check_digit(first17: str) -> str:
    """Given the first 17 digits of an ID number, return its GB 11643 check character."""
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    total = sum(int(digit) * weight for digit, weight in zip(first17, weights, strict=True))
    return "10X98765432"[total % 11]


def luhn_valid(digits: str) -> bool:
    """Given a string of digits, return True if its last digit is a valid Luhn check digit."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        digit = int(char)
        if index % 2 == 1:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def _id18(match: re.Match[str]) -> str:
    region, birth, tail = match.groups()
    if not is_plausible_id(region + birth + tail):
        return match.group(0)
    return region + "*" * len(birth) + tail


def _id15(match: re.Match[str]) -> str:
    region, birth, tail = match.groups()
    if not is_plausible_id(region + birth + tail):
        return match.group(0)
    return region + "*" * len(birth) + tail


def _card(match: re.Match[str]) -> str:
    written = match.group(1)
    digits = written.replace(" ", "").replace("-", "")
    if not 16 <= len(digits) <= 19 or not _card_scheme(digits) or not luhn_valid(digits):
        return written
    to_mask = len(digits) - 4
    masked = []
    for char in written:
        if char.isdigit() and to_mask > 0:
            masked.append("*")
            to_mask -= 1
        else:
            masked.append(char)
    return "".join(masked)


def _card_scheme(digits: str) -> bool:
    # Date-led order numbers and timestamps start with 19 or 20, which no card scheme uses.
    return digits[0] in "34569" or 2221 <= int(digits[:4]) <= 2720


def _mobile(match: re.Match[str]) -> str:
    prefix, head, first_gap, second_gap, tail = match.groups()
    return f"{prefix or ''}{head}{first_gap}****{second_gap}{tail}"


__all__ = ["NAME_COLUMNS", "PROVINCES", "is_plausible_id", "luhn_valid", "mask", "mask_name"]
