"""Masking of personal data: what is masked, how much is kept, and what must be left alone."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from opsctl.masking import id_check_digit, is_plausible_id, luhn_valid, mask, mask_name, mask_value


def luhn_complete(body: str) -> str:
    """Given all digits of a card number but the last, return the number with its Luhn digit."""
    for digit in "0123456789":
        if luhn_valid(body + digit):
            return body + digit
    raise AssertionError("unreachable")


ID_NUMBER = "33010219900307123" + id_check_digit("33010219900307123")
ID_WITH_X = "11010519491231002X"
CARD = luhn_complete("622202123456789012")  # 19 digits, UnionPay
CARD_16 = luhn_complete("453201511283036")  # 16 digits, Visa


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # 18-digit resident ID numbers: region code and last four kept.
        (ID_NUMBER, "330102********" + ID_NUMBER[-4:]),
        (ID_WITH_X, "110105********002X"),
        ("11010519491231002x", "110105********002x"),
        (f"患者身份证号{ID_NUMBER}已登记", f"患者身份证号330102********{ID_NUMBER[-4:]}已登记"),
        (f"id_card={ID_NUMBER},status=1", f"id_card=330102********{ID_NUMBER[-4:]},status=1"),
        (f"(ID {ID_WITH_X}).", "(ID 110105********002X)."),
        # A wrong check digit is still a person's number (a typo in the HIS).
        ("330102199003071230", "330102********1230"),
        # 15-digit IDs of before 1999: region code and last three kept.
        ("旧身份证330102900307123号", "旧身份证330102******123号"),
        # Mobile numbers, alone, in Chinese text, with separators and country prefixes.
        ("13812345678", "138****5678"),
        ("联系电话13812345678请回电", "联系电话138****5678请回电"),
        ("手机：19912345678。", "手机：199****5678。"),
        ("+8613812345678", "+86138****5678"),
        ("+86 138 1234 5678", "+86 138 **** 5678"),
        ("0086-138-1234-5678", "0086-138-****-5678"),
        ("8613812345678", "86138****5678"),
        ("tel=15912345678;", "tel=159****5678;"),
        ("a 13812345678, b 17712345678", "a 138****5678, b 177****5678"),
        # Bank card numbers (Luhn-valid, a card scheme's first digit): last four kept.
        (f"卡号{CARD}", "卡号" + "*" * 15 + CARD[-4:]),
        (CARD_16, "*" * 12 + CARD_16[-4:]),
        (
            " ".join(CARD_16[i : i + 4] for i in range(0, 16, 4)),
            "**** **** **** " + CARD_16[-4:],
        ),
        # E-mail addresses: first character and domain kept.
        ("邮箱zhang.san@example.com", "邮箱z***@example.com"),
        ("mail <li_si+his@hospital.gov.cn>", "mail <l***@hospital.gov.cn>"),
        # Names after a label: first character kept.
        ("姓名:张三丰,性别:男", "姓名:张**,性别:男"),
        ("患者姓名：欧阳娜娜", "患者姓名：欧***"),
        ("患者: 李四 复诊", "患者: 李* 复诊"),
        ("姓名=买买提·艾力", "姓名=买*****"),
        ("xm=王五, age=40", "xm=王*, age=40"),
        ("name=Zhang San, age=40", "name=Z**** ***, age=40"),
        ("Patient_Name: 赵六", "Patient_Name: 赵*"),
        # Everything in one line.
        (
            f"张三 {ID_NUMBER} 13812345678 zs@example.com",
            f"张三 330102********{ID_NUMBER[-4:]} 138****5678 z***@example.com",
        ),
    ],
)
def test_mask_masks_personal_data(text: str, expected: str) -> None:
    assert mask(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "no personal data here",
        "体温36.5，血压120/80",
        # Timestamps and date-led order numbers.
        "20261123101010",
        "2026-11-23 10:10:10",
        "订单号202611231010105678已支付",
        "SO20261123101010123",
        "1732345678901",
        # Digits of a mobile number inside a longer run, or as a decimal.
        "913812345678",
        "138123456789",
        "0.13812345678",
        "13812345678.25",
        "12812345678",  # 12x is not a mobile prefix
        # Numbers shaped like IDs with no real region or birth date.
        "990102199003071234",
        "330102199013071234",
        "330102199002301234",
        "3301021990030712345",
        # Card-length numbers that fail Luhn or start like no card scheme.
        CARD[:-1] + str((int(CARD[-1]) + 1) % 10),  # 19 digits, not Luhn-valid
        CARD_16[:-1] + str((int(CARD_16[-1]) + 1) % 10),
        luhn_complete("202611231010101"),
        # Addresses and versions.
        "10.13.81.234",
        "192.168.100.138:5432",
        "fe80::1381:2345:678",
        "PostgreSQL 16.4 (Debian 16.4-1.pgdg120+2)",
        # Labels that are not names, and names without a label.
        "hostname=Db1",
        "name=orders_2026",
        "database name: his",
        "张三",
    ],
)
def test_mask_leaves_other_text_alone(text: str) -> None:
    assert mask(text) == text


def test_mask_is_idempotent() -> None:
    text = f"姓名:张三丰 {ID_NUMBER} 13812345678 {CARD} zs@example.com"
    once = mask(text)
    assert mask(once) == once
    for raw in (ID_NUMBER, "13812345678", CARD, "张三丰", "zs@"):
        assert raw not in once


@pytest.mark.parametrize(
    ("value", "column", "expected"),
    [
        (f"身份证{ID_NUMBER}", None, f"身份证330102********{ID_NUMBER[-4:]}"),
        ("13812345678", "mobile", "138****5678"),
        ("张三丰", "xm", "张**"),
        ("张三丰", "PATIENT_NAME", "张**"),
        ("欧阳娜娜", "姓名", "欧***"),
        ("张三丰", "dept", "张三丰"),
        ("", "name", ""),
        (13812345678, "mobile", 13812345678),
        (Decimal("12.50"), None, Decimal("12.50")),
        (None, "xm", None),
        (date(2026, 11, 23), None, date(2026, 11, 23)),
    ],
)
def test_mask_value(value: object, column: str | None, expected: object) -> None:
    assert mask_value(value, column) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [("张三", "张*"), ("张三丰", "张**"), ("Zhang San", "Z**** ***"), ("王", "王")],
)
def test_mask_name(name: str, expected: str) -> None:
    assert mask_name(name) == expected


def test_check_digit_and_plausibility() -> None:
    # The example number of GB 11643-1999.
    assert id_check_digit("11010519491231002") == "X"
    assert is_plausible_id("11010519491231002X")
    assert is_plausible_id("110105491231002")
    assert not is_plausible_id("110105194902301234")  # 30 February
    assert not is_plausible_id("100105194912311234")  # region 10 is no province
    assert not is_plausible_id("110105299912311234")  # born in the future
    assert luhn_valid("4532015112830366")
    assert not luhn_valid("4532015112830367")
