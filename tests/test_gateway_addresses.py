"""Tests for ums_core.gateway.addresses: which fax or SMS a RCPT TO asks for."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ums_core.errors import NumberError
from ums_core.gateway.addresses import (
    MAX_REPLY_CHARS,
    AddressError,
    Destination,
    make_reply_text,
    parse_recipient,
    split_address,
)
from ums_core.numbers import SiteRules, normalize_number

RULES = SiteRules(country="DE", area_code="89")
FAX = "fax.example.test"
SMS = "sms.example.test"
PROPERTY_SETTINGS = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def parse(address, fax_domain=FAX, sms_domain=SMS, rules=RULES):
    """Return parse_recipient for ADDRESS with the test domains and rules."""
    return parse_recipient(address, fax_domain, sms_domain, rules)


def refuse(address, **kwargs):
    """Return the AddressError that parse() raises for ADDRESS."""
    with pytest.raises(AddressError) as info:
        parse(address, **kwargs)
    return info.value


ACCEPTED = [
    ("+4989123456@fax.example.test", "fax", "+4989123456", ""),
    ("004989123456@fax.example.test", "fax", "+4989123456", ""),
    ("089123456@fax.example.test", "fax", "+4989123456", ""),
    ("123456@fax.example.test", "fax", "+4989123456", ""),
    ("+49(0)89-123456@fax.example.test", "fax", "+4989123456", ""),
    ('"089 123 456"@fax.example.test', "fax", "+4989123456", ""),
    ('"+49 (0)89 123 456"@fax.example.test', "fax", "+4989123456", ""),
    ("089-123-456@fax.example.test", "fax", "+4989123456", ""),
    ("089/123456@fax.example.test", "fax", "+4989123456", ""),
    ("089.123.456@fax.example.test", "fax", "+4989123456", ""),
    ("<+4989123456@fax.example.test>", "fax", "+4989123456", ""),
    (" <089123456@FAX.Example.TEST.> ", "fax", "+4989123456", ""),
    ("<@relay.example.test:089123456@fax.example.test>", "fax", "+4989123456", ""),
    ("+4915112345678@sms.example.test", "sms", "+4915112345678", ""),
    ("015112345678@sms.example.test", "sms", "+4915112345678", ""),
    ("0151/123-456-78@sms.example.test", "sms", "+4915112345678", ""),
    ("FAX=+4989123456@fax.example.test", "fax", "+4989123456", ""),
    ("fax=+4989123456@fax.example.test", "fax", "+4989123456", ""),
    ("FAX=+4989123456@sms.example.test", "fax", "+4989123456", ""),
    ("Fax=089123456@sms.example.test", "fax", "+4989123456", ""),
    ("SMS=+4915112345678@sms.example.test", "sms", "+4915112345678", ""),
    ("sms=015112345678@fax.example.test", "sms", "+4915112345678", ""),
    ("FAX=+4989123456/T33S=6789@fax.example.test", "fax", "+4989123456", "6789"),
    ("FAX=+4989123456/t33s=1@fax.example.test", "fax", "+4989123456", "1"),
    ("FAX=089/123456/T33S=42@fax.example.test", "fax", "+4989123456", "42"),
    ("/FAX=+4989123456/T33S=42/@fax.example.test", "fax", "+4989123456", "42"),
    ("/FAX=+4989123456/@fax.example.test", "fax", "+4989123456", ""),
    ("089123456/T33S=42@fax.example.test", "fax", "+4989123456", "42"),
    ("FAX=+49-89-123456@fax.example.test", "fax", "+4989123456", ""),
    ("FAX=+49.89.123456@fax.example.test", "fax", "+4989123456", ""),
]


@pytest.mark.parametrize(("address", "kind", "number", "subaddress"), ACCEPTED)
def test_parse_recipient_accepts_written_forms(address, kind, number, subaddress):
    assert parse(address) == Destination(kind, number, subaddress, address)


REFUSED = [
    ("info@fax.example.test", "must be a fax or SMS number"),
    ("postmaster@fax.example.test", "must be a fax or SMS number"),
    ("FAX=@fax.example.test", "must be a fax or SMS number"),
    ("SMS=@sms.example.test", "must be a fax or SMS number"),
    ("FAX=/T33S=12@fax.example.test", "must be a fax or SMS number"),
    ("info2@fax.example.test", "is not a usable phone number"),
    ("1@fax.example.test", "it is too short"),
    ("089+123456@fax.example.test", "is not a usable phone number"),
    ("+4989123456;ext=12@fax.example.test", "has an extension"),
    ("089123456x12@fax.example.test", "has an extension"),
    ("VOICE=+4989123456@fax.example.test", "offers no service 'VOICE='"),
    ("FAX=+4989123456/ISUB=12@fax.example.test", "'/ISUB=' is not supported"),
    ("FAX=+4989123456/POSTD=ppp1@fax.example.test", "'/POSTD=' is not supported"),
    ("FAX=+4989123456/T33S=1/T33S=2@fax.example.test", "more than one /T33S="),
    ("FAX=+4989123456/T33S=@fax.example.test", "must be 1 to 20 digits"),
    ("FAX=+4989123456/T33S=12a@fax.example.test", "must be 1 to 20 digits"),
    ("FAX=+4989123456/T33S=" + "1" * 21 + "@fax.example.test", "1 to 20 digits"),
    ("FAX=+4989123456/T33S=12/34@fax.example.test", "'/34' after the number"),
    ("SMS=+4915112345678/T33S=1@fax.example.test", "for faxes only"),
    ("015112345678/T33S=1@sms.example.test", "for faxes only"),
]


@pytest.mark.parametrize(("address", "words"), REFUSED)
def test_parse_recipient_refuses_unusable_local_parts(address, words):
    error = refuse(address)
    assert (error.code, error.status) == (550, "5.1.1")
    assert words in error.message


def test_parse_recipient_refusal_shows_an_example():
    error = refuse("info@fax.example.test")
    assert "+4989123456@fax.example.test" in error.message


def test_parse_recipient_number_error_message_is_included():
    error = refuse("0@fax.example.test")
    assert error.message.startswith("'0' is not a usable phone number")


def test_parse_recipient_trunk_zero_never_follows_country_code():
    for local in ["+49(0)89123456", "+49 (0) 89 123456", "0049(0)89123456"]:
        number = parse(f'"{local}"@fax.example.test').number
        assert number == "+4989123456"
        assert not number.startswith("+490")


def test_parse_recipient_stripped_plus_is_not_guessed():
    """A relay that drops the "+" changes the number; ums reads it as written."""
    assert parse("4989123456@fax.example.test").number == "+49894989123456"


@pytest.mark.parametrize(
    "address",
    [
        "+4989123456@example.test",
        "+4989123456@fax.example.test.evil.test",
        "+4989123456@sub.fax.example.test",
        "+4989123456@[192.0.2.1]",
        "FAX=+4989123456@example.test",
    ],
)
def test_parse_recipient_other_domain_denies_relaying(address):
    error = refuse(address)
    assert (error.code, error.status) == (550, "5.7.1")
    assert error.message == (
        "relaying denied: ums accepts only fax.example.test, sms.example.test"
    )


def test_parse_recipient_configured_domain_case_and_dot_are_ignored():
    destination = parse("089123456@fax.example.test", fax_domain=" Fax.Example.TEST. ")
    assert destination.kind == "fax"


def test_parse_recipient_disabled_service_is_not_listed():
    error = refuse("015112345678@sms.example.test", sms_domain="")
    assert error.message == "relaying denied: ums accepts only fax.example.test"
    assert parse("SMS=015112345678@fax.example.test", sms_domain=None).kind == "sms"


def test_parse_recipient_no_domain_configured_is_temporary():
    error = refuse("089123456@fax.example.test", fax_domain="", sms_domain=None)
    assert (error.code, error.status) == (451, "4.3.5")


def test_parse_recipient_bad_site_rules_are_temporary():
    error = refuse("089123456@fax.example.test", rules=SiteRules(country="XX"))
    assert (error.code, error.status) == (451, "4.3.5")


def test_parse_recipient_shared_domain_needs_service_selector():
    both = {"fax_domain": "ums.example.test", "sms_domain": "ums.example.test"}
    error = refuse("089123456@ums.example.test", **both)
    assert "FAX=NUMBER or SMS=NUMBER" in error.message
    assert parse("SMS=015112345678@ums.example.test", **both).kind == "sms"
    assert parse("FAX=089123456@ums.example.test", **both).kind == "fax"


def test_split_address_returns_local_part_and_lower_domain():
    assert split_address(" <089123456@FAX.Example.Test.> ") == (
        "089123456",
        "fax.example.test",
    )


def test_split_address_unquotes_quoted_local_part():
    assert split_address('"089 123\\"456"@fax.example.test')[0] == '089 123"456'
    assert split_address('"a@b"@fax.example.test') == ("a@b", "fax.example.test")


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("089123456", 'no "@"'),
        ("<>", 'no "@"'),
        ("", 'no "@"'),
        ("@fax.example.test", "local part is empty"),
        ('""@fax.example.test', "local part is empty"),
        ("089123456@", "domain is empty"),
        ("089123456@.", "domain is empty"),
        ("089\r\n123456@fax.example.test", "control character"),
        ("089123456@fax.example.test\n", "control character"),
        ("089\x00123456@fax.example.test", "control character"),
        ("089\x1b123456@fax.example.test", "control character"),
        ("<089123456@fax.example.test", "angle brackets"),
        ("1" * 250 + "@fax.example.test", "longer than 254"),
        (None, "not text"),
    ],
)
def test_split_address_refuses_bad_syntax(address, reason):
    with pytest.raises(AddressError) as info:
        split_address(address)
    assert (info.value.code, info.value.status) == (501, "5.1.3")
    assert reason in info.value.message


def test_parse_recipient_syntax_error_is_501():
    error = refuse("no-at-sign")
    assert (error.code, error.status) == (501, "5.1.3")


def test_address_error_reply_joins_code_status_and_message():
    error = AddressError("no such number")
    assert error.reply == "550 5.1.1 no such number"


def test_make_reply_text_escapes_non_ascii_and_controls():
    assert make_reply_text("caf\u00e9\r\n\u2026 \U0001f600") == (
        "caf\\xe9\\x0d\\x0a... \\U0001f600"
    )


def test_make_reply_text_cuts_long_text():
    text = make_reply_text("x" * 500)
    assert len(text) == MAX_REPLY_CHARS and text.endswith("...")


def check_reply_text(text):
    """Assert TEXT may stand in an SMTP reply line."""
    assert len(text) < 200
    assert all(" " <= char <= "~" for char in text), text


def test_parse_recipient_replies_are_safe_for_odd_input():
    for address in [
        '"\u00fc\u00df\u00e4 \u2028"@fax.example.test',
        '"' + "\u20ac" * 200 + '"@fax.example.test',
        "FAX=+4989123456/\u00dcBER=1@fax.example.test",
        "\u4f60\u597d=1@fax.example.test",
    ]:
        check_reply_text(refuse(address).message)


@PROPERTY_SETTINGS
@given(st.text(max_size=80))
def test_parse_recipient_raises_only_address_error(local):
    for domain in (FAX, SMS, "example.test"):
        try:
            destination = parse(f"{local}@{domain}")
        except AddressError as exc:
            check_reply_text(exc.message)
        else:
            assert destination.number.startswith("+")
            assert destination.kind in ("fax", "sms")


@PROPERTY_SETTINGS
@given(st.text(max_size=300))
def test_parse_recipient_raises_only_address_error_on_any_text(address):
    try:
        parse(address)
    except AddressError as exc:
        check_reply_text(exc.message)


@PROPERTY_SETTINGS
@given(
    st.from_regex(r"(\+49|0049|0)?[1-9][0-9 ./-]{3,14}[0-9]", fullmatch=True),
    st.sampled_from(["", "FAX=", "fax=", "SMS="]),
)
def test_parse_recipient_numbers_match_normalize_number(number, selector):
    digits = "".join(c for c in number if c.isdigit())
    try:
        expected = normalize_number(number, RULES)
    except NumberError:
        refuse(f'"{selector}{number}"@fax.example.test')
        return
    if digits in ("110", "112"):  # emergency numbers are refused (test below)
        refuse(f'"{selector}{number}"@fax.example.test')
        return
    destination = parse(f'"{selector}{number}"@fax.example.test')
    assert destination.number == expected


@pytest.mark.parametrize("local", ["112", "110", "1 1 2"])
def test_emergency_numbers_are_refused(local):
    for domain in (FAX, SMS):
        error = refuse(f'"{local}"@{domain}' if " " in local else f"{local}@{domain}")
        assert error.code == 550 and "emergency number" in error.message


def test_a_short_number_that_is_an_extension_is_internal():
    rules = SiteRules(
        country="DE", area_code="89", base_number="+4989200", extension_digits=3
    )
    assert parse(f"112@{FAX}", rules=rules).number == "+4989200112"


def test_premium_rate_numbers_need_the_admin():
    for local in ("+499001234567", "09001234567"):
        error = refuse(f"{local}@{FAX}")
        assert error.status == "5.7.1" and "premium-rate" in error.message
        assert "gateway.premium_rate" in error.hint
        allowed = parse_recipient(f"{local}@{FAX}", FAX, SMS, RULES, premium_rate=True)
        assert allowed.number == "+499001234567"
    assert parse(f"089123456@{FAX}").number == "+4989123456"  # ordinary numbers


@pytest.mark.parametrize("local", ["0112", "0 110", "0-110"])
def test_an_emergency_number_behind_the_outside_prefix_is_refused(local):
    rules = SiteRules(country="DE", area_code="89", outside_prefix="0")
    error = refuse(f'"{local}"@{FAX}', rules=rules)
    assert "emergency number" in error.message
    assert parse(f"0089123456@{FAX}", rules=rules).number == "+4989123456"


def test_a_premium_number_written_nationally_without_trunk_prefix_is_refused():
    rules = SiteRules(country="IT", area_code="06")
    assert "premium-rate" in refuse(f'"899 123456"@{FAX}', rules=rules).message
    assert parse(f"06123456@{FAX}", rules=rules).number == "+3906123456"
    # In Germany digits without the trunk 0 are local, never national.
    assert parse(f"9001234567@{FAX}").number == "+49899001234567"
