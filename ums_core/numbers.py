"""Read the phone numbers people, PBXs and gateways write, and show them again.

Every number leaves this module in E.164 ("+4989123456"); how a written number is
read depends on the ``SiteRules`` of the site (its country, area code, company base
number and PBX outside prefix). phonenumbers does the metadata work; this module
decides which readings to try and refuses anything it cannot read with confidence.
"""

from __future__ import annotations

import functools
import re
import unicodedata

import attrs
import phonenumbers
from phonenumbers import (
    NumberParseException,
    PhoneNumber,
    PhoneNumberFormat,
    ValidationResult,
)

from .errors import NumberError

MAX_NUMBER_CHARS = 30
MAX_INPUT_CHARS = 254
MAX_EXTENSION_DIGITS = 10
QUOTE_CHARS = 40

_DASHES = frozenset("-\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d")
_PLUSES = frozenset("+\uff0b")
_SEPARATORS = frozenset("./\u00b7")
_SCHEME = re.compile(r"(tel|sips?):", re.IGNORECASE)
_EXTENSION_MARK = re.compile(r"(?:ext\.?|x|#)\s*\d+\s*$", re.IGNORECASE)
_SHAPE = re.compile(r"\+?\(?\d(?:[\d()-]*[\d)])?", re.ASCII)
_PAREN_GROUP = re.compile(r"\(\d+\)", re.ASCII)
_TAIL = re.compile(r"-(\d{1,4})$", re.ASCII)
_E164 = re.compile(r"\+[1-9]\d{1,14}", re.ASCII)
_DIGITS = re.compile(r"\d*", re.ASCII)

_WITHHELD = frozenset(
    ["", *"anonymous unknown restricted private withheld unavailable -1 + 0".split()]
)

_PARSE_REASONS = {
    NumberParseException.INVALID_COUNTRY_CODE: "its country code is unknown",
    NumberParseException.NOT_A_NUMBER: "it does not look like a phone number",
    NumberParseException.TOO_SHORT_AFTER_IDD: "it is too short",
    NumberParseException.TOO_SHORT_NSN: "it is too short",
    NumberParseException.TOO_LONG: "it is too long",
}
_POSSIBLE_REASONS = {
    ValidationResult.INVALID_COUNTRY_CODE: "its country code is unknown",
    ValidationResult.TOO_SHORT: "it is too short",
    ValidationResult.IS_POSSIBLE_LOCAL_ONLY: "it is too short",
    ValidationResult.INVALID_LENGTH: "it has the wrong number of digits",
    ValidationResult.TOO_LONG: "it is too long",
}
_HINT = 'Write the number in full, e.g. "+49 89 123456".'

_Reading = tuple[str, PhoneNumber | str]


@attrs.frozen
class SiteRules:
    """How numbers written at one site are read."""

    country: str = "DE"
    area_code: str = ""
    base_number: str = ""
    outside_prefix: str = ""
    extension_digits: int = 5


def normalize_number(text: str, rules: SiteRules) -> str:
    """Return TEXT as an E.164 number, read with the site RULES.

    Accepted are the usual written forms ("+49 89 123456", "0049 89 123456",
    "089/123456", "+49 (0)89 123-456", "tel:+49-89-123456", "sip:+4989123456@host")
    with any Unicode spaces, dashes, dots and digits. The readings, in order:

    - A leading "+" (or "00" and the other international prefixes of the site
      country) is international. "(0)" after the country code is dropped.
    - Up to ``extension_digits`` digits without a leading 0 are an extension:
      ``base_number`` followed by the digits. Without a base number they are read
      like a local number.
    - Other digits without a leading 0 are local: the area code is put in front.
      Only if that reading is not valid and the national one is, the national wins.
    - Outside prefix: the number is first read as written. Only when that gives no
      valid number is the outside prefix stripped and the rest read again (never as
      an extension), so "0049 ..." stays international and "0089123456" becomes
      "+4989123456" with the outside prefix "0".
    - A trailing "-NN" (one to four digits after a dash), as in "089 123456-78",
      may be German extension notation. When the part before the dash is a valid
      number, the whole is accepted only if phonenumbers says it is valid too, read
      the same way (both national, say); otherwise it is refused as ambiguous.
    - Extension markers ("ext 12", "x12", "#12", ";ext=12") are refused, not
      dropped: ums stores and dials E.164 numbers only, and a message sent to the
      main line instead of the extension would go astray silently.

    A reading is accepted when phonenumbers calls it possible (a full number, not
    one that needs an area code); among several readings the first valid one wins,
    else the first possible one. Raise NumberError, quoting TEXT, for anything else.
    """
    if isinstance(text, str) and len(text) <= MAX_CACHED_TEXT:
        return _normalize_cached(text, rules)
    return _normalize(text, rules)


# Every inbound message has its called number (one of the site's few) and
# usually a caller seen before read again: the readings are kept.
MAX_CACHED_TEXT = 100


@functools.lru_cache(maxsize=4096)
def _normalize_cached(text: str, rules: SiteRules) -> str:
    return _normalize(text, rules)


def _normalize(text, rules: SiteRules) -> str:
    validate_site_rules(rules)
    cleaned = _clean_characters(_extract_number(text), text)
    kind, chosen = _choose_reading(_read_candidates(cleaned, rules))
    _refuse_ambiguous_tail(cleaned, text, rules, kind if _is_valid(chosen) else "")
    if not isinstance(chosen, PhoneNumber):
        raise _number_error(text, chosen)
    return phonenumbers.format_number(chosen, PhoneNumberFormat.E164)


def is_withheld(text: str | None) -> bool:
    """Return whether TEXT is the caller ID of a withheld or unknown caller."""
    if text is None:
        return True
    if not isinstance(text, str):
        return False
    core = _unwrap_caller(text).lower()
    if core in _WITHHELD:
        return True
    user = _SCHEME.sub("", core, count=1).partition("@")[0].strip()
    return user in _WITHHELD


def parse_caller(text: str | None, rules: SiteRules) -> str | None:
    """Return the caller's E.164 number, or None when withheld or unusable."""
    if not isinstance(text, str) or is_withheld(text):
        return None
    try:
        return normalize_number(_unwrap_caller(text), rules)
    except NumberError:
        return None


def format_number(e164: str, rules: SiteRules) -> str:
    """Return E164 for display: national in the site country, else international.

    Numbers that phonenumbers does not call valid are shown in international form,
    since their national form would lack the trunk prefix. Answers are kept
    (lists show the same callers again and again).
    """
    if isinstance(e164, str):
        return _format_cached(e164, rules)
    return _format_number(e164, rules)


@functools.lru_cache(maxsize=4096)
def _format_cached(e164: str, rules: SiteRules) -> str:
    return _format_number(e164, rules)


def _format_number(e164, rules: SiteRules) -> str:
    validate_site_rules(rules)
    if not isinstance(e164, str) or not _E164.fullmatch(e164):
        raise NumberError(
            f"{_quote(e164)} is not an E.164 number.",
            hint="Pass a number returned by normalize_number().",
        )
    reading = _parse_reading(e164, None)
    if not isinstance(reading, PhoneNumber):
        raise _number_error(e164, reading)
    region = phonenumbers.region_code_for_number(reading)
    if _is_valid(reading) and region == rules.country:
        return phonenumbers.format_number(reading, PhoneNumberFormat.NATIONAL)
    return phonenumbers.format_number(reading, PhoneNumberFormat.INTERNATIONAL)


def validate_site_rules(rules: SiteRules) -> None:
    """Raise NumberError unless RULES can be used to read numbers."""
    if not isinstance(rules, SiteRules):
        raise NumberError(f"{_quote(rules)} is not a SiteRules object.")
    if rules.country not in phonenumbers.SUPPORTED_REGIONS:
        raise NumberError(
            f"Site country {_quote(rules.country)} is not a known region.",
            hint='Use an ISO 3166 code in upper case, e.g. "DE".',
        )
    _check_digits("area code", rules.area_code, 'e.g. "89" for Munich')
    _check_digits("outside prefix", rules.outside_prefix, 'e.g. "0"')
    _check_base_number(rules.base_number)
    count = rules.extension_digits
    if type(count) is not int or not 0 <= count <= MAX_EXTENSION_DIGITS:
        raise NumberError(
            f"Extension digits {_quote(count)} is not a whole number "
            f"from 0 to {MAX_EXTENSION_DIGITS}.",
            hint="Set it to the length of the longest extension, 0 for none.",
        )


def check_area_code(rules: SiteRules) -> None:
    """Raise NumberError if the area code starts with the country's trunk prefix.

    Where the trunk prefix is 0 ("0" in DE, "06" in HU) no area code starts
    with 0, so "089" can only be Munich's 89 with its trunk 0: read as it is,
    every local number would get the wrong area. Countries without a trunk
    prefix (IT: "06" is Rome's area code) are not checked. Only ``config
    set`` asks, so an instance already set that way keeps working.
    """
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(rules.country)
    trunk = metadata.national_prefix if metadata else None
    if trunk and trunk.startswith("0") and rules.area_code.startswith("0"):
        code = rules.area_code
        bare = (code[len(trunk) :] if code.startswith(trunk) else code).lstrip("0")
        raise NumberError(
            f"Site area code {_quote(code)} starts with the trunk prefix"
            f" {trunk} of {rules.country}.",
            hint=f"Write it without: {_quote(bare)}." if bare else "Write it without.",
        )


def _check_digits(name: str, value: str, example: str) -> None:
    """Raise NumberError unless VALUE is empty or ASCII digits."""
    if not isinstance(value, str) or not _DIGITS.fullmatch(value):
        raise NumberError(
            f"Site {name} {_quote(value)} must contain only digits.",
            hint=f"Write it without spaces or a trunk prefix, {example}.",
        )


def _check_base_number(value: str) -> None:
    """Raise NumberError unless VALUE is empty or a possible E.164 number."""
    if value == "":
        return
    hint = 'Write it in E.164 without the extension, e.g. "+49891234".'
    if not isinstance(value, str) or not _E164.fullmatch(value):
        raise NumberError(f"Site base number {_quote(value)} is not E.164.", hint)
    reading = _parse_reading(value, None)
    if not isinstance(reading, PhoneNumber):
        raise NumberError(
            f"Site base number {_quote(value)} is not usable: {reading}.", hint
        )


def _extract_number(text: str) -> str:
    """Return the number part of TEXT without a URI scheme, host or parameters."""
    if not isinstance(text, str):
        raise _number_error(text, "it is not text")
    if any(unicodedata.category(char).startswith("C") for char in text):
        raise _number_error(text, "it contains a control character")
    if len(text) > MAX_INPUT_CHARS:
        raise _number_error(text, f"it is longer than {MAX_INPUT_CHARS} characters")
    number = text.strip()
    scheme = _SCHEME.match(number)
    if scheme:
        number = number[scheme.end() :]
        if scheme.group(1).lower() != "tel":
            number = number.partition("@")[0]
    number, *params = number.split(";")
    if any(param.strip().lower().startswith("ext=") for param in params):
        raise _extension_error(text)
    if params and not scheme:
        raise _number_error(text, "it contains the character ';'")
    return _check_number_part(number.strip(), text)


def _check_number_part(number: str, text: str) -> str:
    """Return NUMBER after checking that it is neither empty nor too long."""
    if not number:
        raise _number_error(text, "it is empty")
    if len(number) > MAX_NUMBER_CHARS:
        reason = f"it is longer than {MAX_NUMBER_CHARS} characters"
        raise _number_error(text, reason)
    if _EXTENSION_MARK.search(number):
        raise _extension_error(text)
    return number


def _clean_characters(number: str, text: str) -> str:
    """Return NUMBER in ASCII digits, "+", "-" and parentheses, or raise."""
    kept = []
    for char in number:
        category = unicodedata.category(char)
        if category == "Zs" or char in _SEPARATORS:
            continue
        if char in _DASHES:
            kept.append("-")
        elif category == "Nd":
            kept.append(str(unicodedata.decimal(char)))
        elif char in _PLUSES:
            kept.append("+")
        elif char in "()":
            kept.append(char)
        elif char.isalpha():
            raise _number_error(text, "it contains letters")
        else:
            raise _number_error(text, f"it contains the character {char!r}")
    cleaned = "".join(kept)
    _check_shape(cleaned, text)
    return cleaned


def _check_shape(cleaned: str, text: str) -> None:
    """Raise NumberError unless CLEANED is digits with well-placed punctuation."""
    if not any(char.isdigit() for char in cleaned):
        raise _number_error(text, "it has no digits")
    if "+" in cleaned[1:]:
        raise _number_error(text, 'a "+" may only stand at the start')
    unpaired = _PAREN_GROUP.sub("", cleaned)
    if "(" in unpaired or ")" in unpaired:
        raise _number_error(text, "its parentheses do not pair up around digits")
    if not _SHAPE.fullmatch(cleaned):
        raise _number_error(text, "it starts or ends with a dash")


def _read_candidates(cleaned: str, rules: SiteRules) -> list[_Reading]:
    """Return the kinds and readings of CLEANED in order of preference."""
    if cleaned.startswith("+"):
        return [("international", _parse_reading(cleaned, None))]
    digits = re.sub(r"\D", "", cleaned)
    if _is_extension(digits, rules):
        return [("extension", _parse_reading(rules.base_number + digits, None))]
    readings = _read_dialled(digits, rules, "")
    prefix = rules.outside_prefix
    if prefix and digits.startswith(prefix) and len(digits) > len(prefix):
        readings += _read_dialled(digits[len(prefix) :], rules, "outside ")
    return readings


def _is_extension(digits: str, rules: SiteRules) -> bool:
    """Return whether DIGITS are an extension of the site base number."""
    return (
        bool(rules.base_number)
        and len(digits) <= rules.extension_digits
        and not digits.startswith("0")
    )


def _read_dialled(digits: str, rules: SiteRules, via: str) -> list[_Reading]:
    """Return the readings of DIGITS as dialled at the site: local, then national."""
    national = (via + "national", _parse_reading(digits, rules.country))
    if digits.startswith("0") or not rules.area_code:
        return [national]
    country_code = phonenumbers.country_code_for_region(rules.country)
    local = _parse_reading(f"+{country_code}{rules.area_code}{digits}", None)
    return [(via + "local", local), national]


def _parse_reading(text: str, region: str | None) -> PhoneNumber | str:
    """Return TEXT parsed as a possible number, or the reason why it is not one."""
    try:
        number = phonenumbers.parse(text, region)
    except NumberParseException as exc:
        return _PARSE_REASONS.get(exc.error_type, "it does not look like a number")
    if number.extension:
        return "it has an extension"
    result = phonenumbers.is_possible_number_with_reason(number)
    if result != ValidationResult.IS_POSSIBLE:
        return _POSSIBLE_REASONS.get(result, "it is not a possible number")
    e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)
    again = phonenumbers.parse(e164, None)
    if phonenumbers.format_number(again, PhoneNumberFormat.E164) != e164:
        return "its digits do not read as one clear number"
    if number.italian_leading_zero and not phonenumbers.is_valid_number(number):
        return "a trunk prefix 0 follows the country code"
    return number


def _choose_reading(readings: list[_Reading]) -> _Reading:
    """Return the first valid reading, else the first possible, else a reason."""
    numbers = [reading for reading in readings if isinstance(reading[1], PhoneNumber)]
    for reading in numbers:
        if phonenumbers.is_valid_number(reading[1]):
            return reading
    return numbers[0] if numbers else readings[0]


def _refuse_ambiguous_tail(
    cleaned: str, text: str, rules: SiteRules, kind: str
) -> None:
    """Raise NumberError when a trailing "-NN" of CLEANED reads as an extension.

    KIND is how the whole was read as a valid number, "" when it is not valid.
    """
    tail = _TAIL.search(cleaned)
    if not tail or not _SHAPE.fullmatch(cleaned[: tail.start()]):
        return
    head_kind, head = _choose_reading(_read_candidates(cleaned[: tail.start()], rules))
    if _is_valid(head) and head_kind != kind:
        raise NumberError(
            f"{_quote(text)} is ambiguous: the ending {tail.group(0)!r} looks like "
            "an extension, and the whole is not valid when read the same way.",
            hint="Write the whole number without the dash, or leave the extension out.",
        )


def _is_valid(reading: PhoneNumber | str) -> bool:
    """Return whether READING is a number that phonenumbers calls valid."""
    return isinstance(reading, PhoneNumber) and phonenumbers.is_valid_number(reading)


def _unwrap_caller(text: str) -> str:
    """Return TEXT without a display name, quotes or angle brackets around it."""
    core = text.strip()
    if core.endswith(">") and "<" in core:
        core = core[core.rindex("<") + 1 : -1]
    previous = None
    while core != previous:
        previous = core
        core = core.strip().strip("\"'<>")
    return core


def _quote(value: object) -> str:
    """Return VALUE quoted for a message, control characters escaped."""
    if isinstance(value, str) and len(value) > QUOTE_CHARS:
        return repr(value[:QUOTE_CHARS]) + "…"
    return repr(value)


def _number_error(text: object, reason: str) -> NumberError:
    """Return the NumberError that says TEXT is not a number because of REASON."""
    return NumberError(f"{_quote(text)} is not a usable phone number: {reason}.", _HINT)


def _extension_error(text: str) -> NumberError:
    """Return the NumberError for TEXT that carries an extension marker."""
    return NumberError(
        f"{_quote(text)} has an extension, which ums cannot dial or store.",
        hint="Give the full direct number, or the number without the extension.",
    )
