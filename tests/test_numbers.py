"""Tests for ums_core.numbers: reading, checking and showing phone numbers."""

import phonenumbers
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from ums_core.errors import NumberError
from ums_core.numbers import (
    SiteRules,
    format_number,
    is_withheld,
    normalize_number,
    parse_caller,
    validate_site_rules,
)

MUNICH = SiteRules(
    country="DE", area_code="89", base_number="+498912", outside_prefix="0"
)
NEW_YORK = SiteRules(country="US", area_code="212", outside_prefix="9")
PROPERTY_SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

MUNICH_FORMS = [
    "+4989123456",
    "+49 89 123456",
    "0049 89 123456",
    "089 123456",
    "089/123456",
    "089-123-456",
    "089.123.456",
    "+49 (0)89 123-456",
    "+49(0)89-123456",
    "(089) 123456",
    "123456",
    "3456",
    "0089123456",
    "0 089 123456",
    "00049 89 123456",
    "0123456",
    "tel:+49-89-123456",
    "TEL:+49-89-123456",
    "sip:+4989123456@pbx.example",
    "sips:089123456@pbx.example;transport=tls",
    "sip:+4989123456;user=phone@pbx.example",
    " +49 89 123456 ",
    "+49\u00a089\u00a0123456",
    "+49\u200989\u2009123456",
    "+49\u202f89\u202f123456",
    "089\u2013123\u2014456",
    "089\u2011123\u2212456",
    "\uff0b49 89 123456",
    "\uff10\uff18\uff19 \uff11\uff12\uff13\uff14\uff15\uff16",
    "\u0660\u0668\u0669 \u0661\u0662\u0663\u0664\u0665\u0666",
]

FOREIGN_NUMBERS = [
    ("+44 20 7946 0958", "+442079460958"),
    ("0044 20 7946 0958", "+442079460958"),
    ("+44 (0)20 7946 0958", "+442079460958"),
    ("+1 212 555 0100", "+12125550100"),
    ("+1 (212) 555-0100", "+12125550100"),
    ("001 212 555 0100", "+12125550100"),
    ("+39 06 1234 5678", "+390612345678"),
    ("+39 (0)6 1234 5678", "+390612345678"),
    ("+33 1 23 45 67 89", "+33123456789"),
]

BAD_INPUTS = [
    ("", "empty"),
    ("   ", "empty"),
    ("abc", "letters"),
    ("089 CALL NOW", "letters"),
    ("+1 800 FLOWERS", "letters"),
    ("sip:anonymous@pbx.example", "letters"),
    ("089\r\n123456", "control character"),
    ("089\n123456", "control character"),
    ("\t089 123456", "control character"),
    ("089\x00123456", "control character"),
    ("089\u200b123456", "control character"),
    ("1" * 31, "longer than 30"),
    ("x" * 40, "longer than 30"),
    ("0", "not look like"),
    ("+", "no digits"),
    ("()", "no digits"),
    ("+490", "too short"),
    ("+49 1", "too short"),
    ("08912345678901234567", "too long"),
    ("+999 123456", "country code"),
    ("++49 89 123456", '"+"'),
    ("089 +123456", '"+"'),
    ("(089 123456", "parentheses"),
    ("089) 123456", "parentheses"),
    ("+49 (0)(89) 1", "trunk prefix"),
    ("089 123456-", "dash"),
    ("-089 123456", "dash"),
    ("089\u00b2123456", "'\u00b2'"),
    ("089_123456", "'_'"),
    ("089 123456;phone-context=x", "';'"),
    ("00089123456", "one clear number"),
]

EXTENSION_FORMS = [
    "089 123456 ext 12",
    "089 123456 ext. 12",
    "089 123456 EXT12",
    "089 123456x12",
    "089 123456 x 12",
    "089 123456 #12",
    "+4989123456;ext=12",
    "tel:+4989123456;ext=12",
]

WITHHELD_FORMS = [
    None,
    "",
    "   ",
    "\t",
    "anonymous",
    "Anonymous",
    "ANONYMOUS",
    "unknown",
    "restricted",
    "Private",
    "withheld",
    "unavailable",
    "-1",
    "+",
    "0",
    " 0 ",
    '"anonymous"',
    "'Restricted'",
    "<anonymous>",
    "sip:anonymous@anonymous.invalid",
    "SIP:Anonymous@Anonymous.Invalid",
    "sips:anonymous@pbx.example",
    "<sip:anonymous@anonymous.invalid>",
    '"Anonymous" <sip:anonymous@anonymous.invalid>',
    "anonymous@anonymous.invalid",
    " <sip:unknown@pbx.example> ",
]


def check_error_quotes(text: str, error: NumberError) -> None:
    """Assert that ERROR quotes TEXT repr-safely."""
    assert repr(text) in str(error)
    assert "\r" not in str(error) and "\n" not in str(error)


@pytest.mark.parametrize("text", MUNICH_FORMS)
def test_normalize_number_reads_written_form(text):
    assert normalize_number(text, MUNICH) == "+4989123456"


@pytest.mark.parametrize(("text", "expected"), FOREIGN_NUMBERS)
def test_normalize_number_keeps_foreign_number(text, expected):
    assert normalize_number(text, MUNICH) == expected


@pytest.mark.parametrize(
    "text", ["+49(0)89123456", "+49 (0) 89 123456", "+49(0)30 1234567", "+490891234"]
)
def test_normalize_number_drops_trunk_zero_after_country_code(text):
    assert not normalize_number(text, MUNICH).startswith("+490")


def test_normalize_number_keeps_0049_international_with_outside_prefix():
    assert normalize_number("0049 30 1234567", MUNICH) == "+49301234567"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("9 1 212 555 0100", "+12125550100"),
        ("5550100", "+12125550100"),
        ("9 555 0100", "+12125550100"),
        ("212 555 0100", "+12125550100"),
        ("9 011 49 89 123456", "+4989123456"),
    ],
)
def test_normalize_number_reads_site_with_other_outside_prefix(text, expected):
    assert normalize_number(text, NEW_YORK) == expected


def test_normalize_number_reads_leading_digits_as_local_first():
    assert normalize_number("89123456", MUNICH) == "+498989123456"
    assert normalize_number("89123456", SiteRules()) == "+4989123456"


def test_normalize_number_reads_short_digits_as_local_without_base_number():
    assert normalize_number("3456", SiteRules(area_code="89")) == "+49893456"


def test_normalize_number_never_reads_outside_prefix_as_extension():
    rules = SiteRules(area_code="89", base_number="+498912", outside_prefix="9")
    assert normalize_number("93456", rules) == "+49891293456"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("089 123456-78", "+498912345678"),
        ("0171 1234567-8", "+4917112345678"),
        ("34-56", "+4989123456"),
        ("+1 212-555-0100", "+12125550100"),
    ],
)
def test_normalize_number_merges_dash_ending_when_whole_is_valid(text, expected):
    assert normalize_number(text, MUNICH) == expected


@pytest.mark.parametrize("text", ["01711234567-89", "3456-78", "+44 20 7946 0958-12"])
def test_normalize_number_rejects_ambiguous_dash_ending(text):
    with pytest.raises(NumberError, match="ambiguous") as caught:
        normalize_number(text, MUNICH)
    check_error_quotes(text, caught.value)


@pytest.mark.parametrize("text", EXTENSION_FORMS)
def test_normalize_number_rejects_extension_marker(text):
    with pytest.raises(NumberError, match="extension") as caught:
        normalize_number(text, MUNICH)
    check_error_quotes(text, caught.value)
    assert caught.value.hint


@pytest.mark.parametrize(("text", "reason"), BAD_INPUTS)
def test_normalize_number_rejects_bad_input(text, reason):
    with pytest.raises(NumberError) as caught:
        normalize_number(text, MUNICH)
    check_error_quotes(text, caught.value)
    assert reason in str(caught.value)
    assert caught.value.hint


def test_normalize_number_shortens_long_input_in_message():
    text = "9" * 500
    with pytest.raises(NumberError, match="longer than 254") as caught:
        normalize_number(text, MUNICH)
    assert len(str(caught.value)) < 150


@pytest.mark.parametrize("value", [None, 4989123456, b"089123456"])
def test_normalize_number_rejects_non_text(value):
    with pytest.raises(NumberError, match="not text"):
        normalize_number(value, MUNICH)


def test_normalize_number_rejects_broken_site_rules():
    with pytest.raises(NumberError, match="region"):
        normalize_number("089 123456", SiteRules(country="XX"))


@pytest.mark.parametrize("text", WITHHELD_FORMS)
def test_is_withheld_true_for_hidden_caller(text):
    assert is_withheld(text)


@pytest.mark.parametrize(
    "text",
    ["+4989123456", "089123456", "00", "anonymousx", "sip:+4989123456@pbx", 0],
)
def test_is_withheld_false_for_number(text):
    assert not is_withheld(text)


@pytest.mark.parametrize(
    "text",
    [
        "+4989123456",
        "0089123456",
        "3456",
        "<sip:089123456@pbx.example>",
        '"Bob Smith" <sip:+4989123456@pbx.example>',
        "'+49 89 123456'",
    ],
)
def test_parse_caller_returns_e164(text):
    assert parse_caller(text, MUNICH) == "+4989123456"


@pytest.mark.parametrize(
    "text", [*WITHHELD_FORMS, "abc", "089\n123456", "089 123456 ext 12", 42]
)
def test_parse_caller_returns_none_for_unusable_caller(text):
    assert parse_caller(text, MUNICH) is None


def test_parse_caller_returns_none_for_broken_site_rules():
    assert parse_caller("+4989123456", SiteRules(country="de")) is None


@pytest.mark.parametrize(
    ("e164", "rules", "expected"),
    [
        ("+4989123456", MUNICH, "089 123456"),
        ("+442079460958", MUNICH, "+44 20 7946 0958"),
        ("+12125550100", MUNICH, "+1 212-555-0100"),
        ("+12125550100", NEW_YORK, "(212) 555-0100"),
        ("+4989123456", NEW_YORK, "+49 89 123456"),
        ("+498912", MUNICH, "+49 8912"),
    ],
)
def test_format_number_shows_national_only_at_home(e164, rules, expected):
    assert format_number(e164, rules) == expected


@pytest.mark.parametrize(
    "text", ["089123456", "+49 89 123456", "", "+0123", "+999123456", None]
)
def test_format_number_rejects_non_e164(text):
    with pytest.raises(NumberError) as caught:
        format_number(text, MUNICH)
    assert repr(text) in str(caught.value)


@pytest.mark.parametrize(
    "rules",
    [
        SiteRules(),
        MUNICH,
        NEW_YORK,
        SiteRules(country="IT", area_code="06", extension_digits=0),
    ],
)
def test_validate_site_rules_accepts_usable_rules(rules):
    assert validate_site_rules(rules) is None


@pytest.mark.parametrize(
    ("rules", "reason"),
    [
        (SiteRules(country="XX"), "region"),
        (SiteRules(country="de"), "region"),
        (SiteRules(country=""), "region"),
        (SiteRules(area_code="089x"), "area code"),
        (SiteRules(area_code=" 89"), "area code"),
        (SiteRules(area_code="\u0668\u0669"), "area code"),
        (SiteRules(area_code=89), "area code"),
        (SiteRules(base_number="0891234"), "base number"),
        (SiteRules(base_number="+49 89 1234"), "base number"),
        (SiteRules(base_number="+999123"), "base number"),
        (SiteRules(base_number="+491"), "base number"),
        (SiteRules(outside_prefix="x"), "outside prefix"),
        (SiteRules(outside_prefix="0 "), "outside prefix"),
        (SiteRules(extension_digits=-1), "Extension digits"),
        (SiteRules(extension_digits=11), "Extension digits"),
        (SiteRules(extension_digits=True), "Extension digits"),
        (SiteRules(extension_digits="5"), "Extension digits"),
        ({"country": "DE"}, "SiteRules"),
    ],
)
def test_validate_site_rules_rejects_unusable_rules(rules, reason):
    with pytest.raises(NumberError, match=reason) as caught:
        validate_site_rules(rules)
    assert caught.value.hint or reason == "SiteRules"


phone_like_text = st.text(alphabet="0123456789+-()/ .", min_size=1, max_size=20)


@PROPERTY_SETTINGS
@given(st.one_of(phone_like_text, st.sampled_from(MUNICH_FORMS)))
def test_normalize_number_is_idempotent(text):
    try:
        first = normalize_number(text, MUNICH)
    except NumberError:
        return
    assert normalize_number(first, MUNICH) == first


GERMAN_TYPES = [
    number_type
    for number_type in range(PhoneNumberType.VOICEMAIL + 1)
    if number_type != PhoneNumberType.PAGER
    and phonenumbers.example_number_for_type("DE", number_type) is not None
]


@st.composite
def valid_german_numbers(draw):
    """Draw a valid German number: an example number with new final digits."""
    number_type = draw(st.sampled_from(GERMAN_TYPES))
    example = phonenumbers.example_number_for_type("DE", number_type)
    national = phonenumbers.national_significant_number(example)
    suffix = draw(st.text("0123456789", min_size=1, max_size=len(national) - 3))
    number = phonenumbers.parse("+49" + national[: -len(suffix)] + suffix)
    assume(phonenumbers.is_valid_number(number))
    return number


@PROPERTY_SETTINGS
@given(
    valid_german_numbers(),
    st.sampled_from(
        [
            PhoneNumberFormat.NATIONAL,
            PhoneNumberFormat.INTERNATIONAL,
            PhoneNumberFormat.E164,
            PhoneNumberFormat.RFC3966,
        ]
    ),
)
def test_normalize_number_reads_phonenumbers_formats(number, number_format):
    """National forms of pagers lack the trunk 0 and read as local, so none here."""
    expected = phonenumbers.format_number(number, PhoneNumberFormat.E164)
    written = phonenumbers.format_number(number, number_format)
    assert normalize_number(written, MUNICH) == expected


@PROPERTY_SETTINGS
@given(st.one_of(st.text(max_size=60), phone_like_text))
def test_normalize_number_raises_only_number_error(text):
    try:
        result = normalize_number(text, MUNICH)
    except NumberError:
        return
    assert result.startswith("+")


@PROPERTY_SETTINGS
@given(st.one_of(st.none(), st.text(max_size=60), phone_like_text))
def test_parse_caller_never_raises(text):
    result = parse_caller(text, MUNICH)
    assert result is None or result.startswith("+")
