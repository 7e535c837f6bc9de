"""Tests for ums_core.gateway.sms: SMS text from a mail body, alphabet and parts."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ums_core.gateway.sms import (
    GSM7_BASIC,
    GSM7_EXTENSION,
    PART_LIMITS,
    SINGLE_LIMITS,
    SmsPlan,
    plan_sms,
    sms_text_from_body,
)

PROPERTY_SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
EMOJI = "\U0001f600"


def test_gsm7_basic_has_the_table_in_order():
    assert len(GSM7_BASIC) == len(set(GSM7_BASIC)) == 128
    expected = {
        0x00: "@", 0x01: "\u00a3", 0x02: "$", 0x03: "\u00a5", 0x09: "\u00c7",
        0x0A: "\n", 0x0D: "\r", 0x10: "\u0394", 0x11: "_", 0x15: "\u03a9",
        0x1B: "\x1b", 0x1E: "\u00df", 0x1F: "\u00c9", 0x20: " ", 0x24: "\u00a4",
        0x40: "\u00a1", 0x41: "A", 0x5B: "\u00c4", 0x5F: "\u00a7", 0x60: "\u00bf",
        0x61: "a", 0x7B: "\u00e4", 0x7E: "\u00fc", 0x7F: "\u00e0",
    }  # fmt: skip
    assert {code: GSM7_BASIC[code] for code in expected} == expected


def test_gsm7_extension_has_the_escaped_characters():
    assert sorted(GSM7_EXTENSION) == sorted("\f^{}\\[~]|\u20ac")


@pytest.mark.parametrize(
    ("text", "alphabet", "units"),
    [
        ("Hello", "gsm7", 5),
        ("\u00e4\u00f6\u00fc\u00c4\u00d6\u00dc\u00df", "gsm7", 7),
        ("Gr\u00fc\u00dfe aus M\u00fcnchen", "gsm7", 17),
        ("\u00c7a va", "gsm7", 5),
        ("\u00e7a va", "ucs2", 5),
        ("100\u20ac", "gsm7", 5),
        ("[x]", "gsm7", 5),
        ("a`b", "ucs2", 3),
        ("\u0394\u03a6\u0393\u039b\u03a9\u03a0\u03a8\u03a3\u0398\u039e", "gsm7", 10),
        ("\u03b1", "ucs2", 1),
        ("\x1b", "ucs2", 1),
        ("hi " + EMOJI, "ucs2", 5),
        ("", "gsm7", 0),
    ],
)
def test_plan_sms_alphabet_and_units(text, alphabet, units):
    plan = plan_sms(text)
    assert (plan.alphabet, plan.units) == (alphabet, units)


@pytest.mark.parametrize(
    ("length", "segments"), [(1, 1), (160, 1), (161, 2), (306, 2), (307, 3)]
)
def test_plan_sms_gsm7_segments(length, segments):
    plan = plan_sms("a" * length)
    assert plan.segments == segments == len(plan.parts)


def test_plan_sms_gsm7_long_text_splits_at_153():
    plan = plan_sms("a" * 161)
    assert [len(part) for part in plan.parts] == [153, 8]


def test_plan_sms_extension_chars_count_twice_in_a_single_part():
    assert plan_sms("\u20ac" * 80).segments == 1
    assert plan_sms("a" * 159 + "\u20ac") == SmsPlan(
        "gsm7", 161, 2, ("a" * 153, "a" * 6 + "\u20ac")
    )


def test_plan_sms_extension_char_at_boundary_moves_to_next_part():
    plan = plan_sms("a" * 152 + "\u20ac" + "b" * 10)
    assert plan.units == 164
    assert plan.parts == ("a" * 152, "\u20acbbbbbbbbbb")


def test_plan_sms_extension_char_after_full_part_starts_next_part():
    plan = plan_sms("a" * 153 + "\u20ac" + "b" * 10)
    assert plan.parts == ("a" * 153, "\u20ac" + "b" * 10)
    assert (plan.units, plan.segments) == (165, 2)


def test_plan_sms_153_chars_and_extension_char_fit_one_sms():
    """155 septets are within the 160 of a single SMS: nothing is split."""
    assert plan_sms("a" * 153 + "\u20ac") == SmsPlan(
        "gsm7", 155, 1, ("a" * 153 + "\u20ac",)
    )


def test_plan_sms_moved_extension_chars_can_add_a_segment():
    """306 septets fit two parts, but a straddling € needs a third."""
    plan = plan_sms("a" * 152 + "\u20ac" + "a" * 152)
    assert plan.units == 306
    assert [len(part) for part in plan.parts] == [152, 152, 1]


@pytest.mark.parametrize(("length", "segments"), [(70, 1), (71, 2), (134, 2), (135, 3)])
def test_plan_sms_ucs2_segments(length, segments):
    plan = plan_sms("\u00e7" * length)
    assert plan.alphabet == "ucs2"
    assert plan.segments == segments == len(plan.parts)


def test_plan_sms_surrogate_pair_at_boundary_moves_to_next_part():
    plan = plan_sms("\u00e7" * 66 + EMOJI + "\u00e7" * 5)
    assert plan.units == 73
    assert plan.parts == ("\u00e7" * 66, EMOJI + "\u00e7" * 5)


def test_plan_sms_surrogate_pairs_count_twice_in_a_single_part():
    assert plan_sms(EMOJI * 35) == SmsPlan("ucs2", 70, 1, (EMOJI * 35,))
    assert plan_sms(EMOJI * 36).segments == 2


def test_plan_sms_empty_text_is_one_empty_part():
    assert plan_sms("") == SmsPlan("gsm7", 0, 1, ("",))


GSM7_TEXT = st.text(alphabet=GSM7_BASIC.replace("\x1b", "") + GSM7_EXTENSION)


@PROPERTY_SETTINGS
@given(st.one_of(GSM7_TEXT, st.text()).filter(lambda text: len(text) <= 700))
def test_plan_sms_parts_rebuild_text_within_limits(text):
    plan = plan_sms(text)
    assert "".join(plan.parts) == text
    assert plan.segments == len(plan.parts)
    limit = SINGLE_LIMITS if plan.segments == 1 else PART_LIMITS
    for part in plan.parts:
        assert part_units(part, plan.alphabet) <= limit[plan.alphabet]
    assert sum(part_units(part, plan.alphabet) for part in plan.parts) == plan.units


def part_units(part, alphabet):
    """Return the units PART takes, counted independently of the module."""
    if alphabet == "gsm7":
        return len(part) + sum(char in GSM7_EXTENSION for char in part)
    return len(part.encode("utf-16-le")) // 2


@PROPERTY_SETTINGS
@given(st.text(alphabet="ab\u20ac", min_size=150, max_size=480))
def test_plan_sms_gsm7_parts_are_full_unless_an_escape_moved(text):
    plan = plan_sms(text)
    for part in plan.parts[:-1] if plan.segments > 1 else ():
        assert part_units(part, "gsm7") in (152, 153)


@pytest.mark.parametrize(
    ("body", "text"),
    [
        ("Hello\r\nworld\r\n", "Hello\nworld"),
        ("Hello\rworld", "Hello\nworld"),
        ("Hello   \nworld\t \n", "Hello\nworld"),
        ("Hello\n-- \nAlice\nACME", "Hello"),
        ("Hello\n--\nAlice", "Hello\n--\nAlice"),
        ("Hello\r\n-- \r\nAlice", "Hello"),
        ("Hello\n--- \nnot a signature", "Hello\n---\nnot a signature"),
        ("Hello -- world", "Hello -- world"),
        ("a\n\n\n\n\n\nb", "a\n\n\nb"),
        ("a\n\n\nb", "a\n\n\nb"),
        ("a\n  \n \n\t\n\nb", "a\n\n\nb"),
        ("\n\n  Hello  \n\n", "Hello"),
        ("-- \nonly a signature", ""),
        ("", ""),
    ],
)
def test_sms_text_from_body_cleans_mail_text(body, text):
    assert sms_text_from_body(body) == text
