"""Read the RCPT TO addresses of the SMTP gateway: which fax or SMS each one asks for.

The company mail server routes the fax and SMS mail domains of ums to the gateway;
for every recipient the gateway either accepts a ``Destination`` or refuses the
address with an ``AddressError`` that carries the SMTP reply.

Accepted local parts, at either ums domain unless said otherwise:

- ``NUMBER@fax-domain`` is a fax, ``NUMBER@sms-domain`` an SMS. The number may be
  written in any form ``normalize_number`` reads with the site rules: ``+4989...``,
  ``004989...``, ``089...``, ``+49(0)89-...``, with spaces (in a quoted local part,
  ``"089 123 456"@fax.example.test``), dashes, slashes and dots.
- ``FAX=NUMBER`` (RFC 3192) is a fax and ``SMS=NUMBER`` (RFC 3191) an SMS at
  either domain. The service selector is read without regard to case. The RFCs
  write the number in international form ("+" first); ums reads every form.
- After the number, RFC 3192 allows one ``/T33S=DIGITS`` element, the T.33
  sub-address that the receiving fax machine uses to route the document (to a
  mailbox, say). It is kept in ``Destination.subaddress``: 1 to 20 digits, for a
  fax only. The keyword is read without regard to case.
- The optional leading and trailing "/" that the RFC 3191 syntax allows for
  X.400-style addresses (``/FAX=+4989123456/``) are ignored.

Refused local parts:

- Any other ``/KEYWORD=VALUE`` element (RFC 2846 defines ``/ISUB=``, ``/POSTD=``
  and more; RFC 3191 lets others be registered). ums could not honour them, and
  dropping one would send the message to the main line instead of the intended
  device, so the address is refused rather than guessed at.
- Other service selectors (``VOICE=...``) and anything without a number.
- Emergency numbers of the site country (``112``, ``110``): ums would read one
  as a local number in the site's area. One read as an extension of
  ``site.base_number`` is an internal device and stays allowed. (Other short
  numbers are not refused: phonenumbers' short-number patterns also cover
  real local numbers, such as Munich's five-digit ones.)
- Premium-rate numbers (``+49900...``), unless ``gateway.premium_rate`` is true:
  a fax or SMS to one costs by the minute or message (toll fraud).

A relay may have mangled the local part before it reaches ums. Postfix with
``recipient_delimiter = +`` treats what follows a "+" as an address extension
and may drop it on the way (through virtual or canonical maps, for example);
some address books and web forms strip a leading "+". Then ``+4989123456``
arrives as ``4989123456``, which ums, following the site rules, reads as a
local number in the site's own area (``+49894989123456``): a valid-looking,
wrong number. ums cannot tell a mangled address from a meant one and does not
guess. The remedy is to keep the "+" out of the first character: write ``00``
instead (``004989123456@fax.example.test``), or use the ``FAX=`` form
(``FAX=+4989123456@fax.example.test``), where a dropped extension leaves
``FAX=`` without a number, which ums refuses; or set Postfix's
``recipient_delimiter`` to a character that never occurs in a number (not "+",
"-", "." or "/"), or leave it empty.
"""

from __future__ import annotations

import re
import unicodedata

import attrs
import phonenumbers
from phonenumbers import PhoneNumberType, shortnumberinfo

from ..errors import NumberError, UmsError
from ..numbers import SiteRules, normalize_number, validate_site_rules

MAX_ADDRESS_CHARS = 254
PREMIUM = PhoneNumberType.PREMIUM_RATE
MAX_REPLY_CHARS = 199
MAX_SUBADDRESS_DIGITS = 20
QUOTE_CHARS = 40
EXAMPLE_NUMBER = "+4989123456"

_SELECTOR = re.compile(r"/?([A-Za-z][A-Za-z0-9-]*)=(.*)", re.DOTALL)
_PARAMETER = re.compile(r"/[A-Za-z][A-Za-z0-9-]*=")
_KEY_VALUE = re.compile(r"([A-Za-z][A-Za-z0-9-]*)=(.*)", re.DOTALL)
_DIGITS = re.compile(r"[0-9]+")
_QUOTED_PAIR = re.compile(r"\\(.)", re.DOTALL)
_UNSAFE = re.compile(r"[^\x20-\x7e]")
_SERVICES = {"FAX": "fax", "SMS": "sms"}


@attrs.frozen
class Destination:
    """Where one accepted recipient address sends its message."""

    kind: str
    number: str
    subaddress: str
    address: str


class AddressError(UmsError):
    """A recipient address the gateway refuses, with the SMTP reply to give.

    ``code`` is the SMTP reply code and ``status`` the enhanced status code
    (RFC 3463). The message is made safe for an SMTP reply line: ASCII, no
    control characters, under 200 characters.
    """

    def __init__(
        self,
        message: str,
        code: int = 550,
        status: str = "5.1.1",
        hint: str | None = None,
    ):
        super().__init__(make_reply_text(message), hint=hint)
        self.code = code
        self.status = status

    @property
    def reply(self) -> str:
        """Return the whole SMTP reply line, e.g. "550 5.1.1 ..."."""
        return f"{self.code} {self.status} {self.message}"


def make_reply_text(text: str) -> str:
    """Return TEXT as one printable ASCII line of at most MAX_REPLY_CHARS."""
    safe = _UNSAFE.sub(_escape_char, str(text).replace("\u2026", "..."))
    if len(safe) > MAX_REPLY_CHARS:
        safe = safe[: MAX_REPLY_CHARS - 3] + "..."
    return safe


def split_address(address: str) -> tuple[str, str]:
    """Return the local part and the lower-cased domain of ADDRESS.

    Surrounding spaces and angle brackets are removed, an RFC 5321 source route
    (``<@relay:user@host>``) is ignored, a quoted local part is unquoted and one
    trailing dot of the domain is dropped. Raise AddressError 501 5.1.3 for an
    address that is not one.
    """
    text = _unwrap_address(address)
    if text.startswith("@") and ":" in text:
        text = text.partition(":")[2]
    local, at, domain = text.rpartition("@")
    if not at:
        raise _syntax_error(address, 'it has no "@"')
    local = _unquote_local_part(local)
    domain = domain.strip().lower().removesuffix(".")
    if not local.strip():
        raise _syntax_error(address, "its local part is empty")
    if not domain:
        raise _syntax_error(address, "its domain is empty")
    return local, domain


def parse_recipient(
    address: str,
    fax_domain: str,
    sms_domain: str,
    rules: SiteRules,
    premium_rate: bool = False,
) -> Destination:
    """Return the fax or SMS that ADDRESS asks for, or raise AddressError.

    FAX_DOMAIN and SMS_DOMAIN are the mail domains of ums; either may be empty
    when that service is off. Unusable site RULES or no domain at all are the
    configuration's fault, not the sender's: they give a temporary 451 4.3.5,
    so the mail waits in the sender's queue until ums is set up.
    """
    _check_rules(rules)
    local, domain = split_address(address)
    kinds = _find_domain_kinds(domain, fax_domain, sms_domain)
    kind, rest = _split_service(local, kinds, domain)
    number_text, subaddress = _split_parameters(rest, kind)
    number = _read_number(number_text, rules, domain)
    _check_destination(number_text, number, rules, premium_rate)
    return Destination(kind, number, subaddress, address)


def _check_rules(rules: SiteRules) -> None:
    """Raise a temporary AddressError unless RULES can read numbers."""
    try:
        validate_site_rules(rules)
    except NumberError as exc:
        raise AddressError(
            f"ums cannot read numbers now: {exc.message}",
            code=451,
            status="4.3.5",
            hint="Correct the site number rules in the ums configuration.",
        )


def _unwrap_address(address: str) -> str:
    """Return ADDRESS without spaces and angle brackets, or raise AddressError."""
    if not isinstance(address, str):
        raise _syntax_error(address, "it is not text")
    if any(unicodedata.category(char).startswith("C") for char in address):
        raise _syntax_error(address, "it contains a control character")
    text = address.strip()
    if text.startswith("<") != text.endswith(">"):
        raise _syntax_error(address, "its angle brackets do not pair up")
    if text.startswith("<"):
        text = text[1:-1].strip()
    if len(text) > MAX_ADDRESS_CHARS:
        raise _syntax_error(address, f"it is longer than {MAX_ADDRESS_CHARS} chars")
    return text


def _unquote_local_part(local: str) -> str:
    """Return LOCAL without the quotes and backslashes of a quoted string."""
    local = local.strip()
    if len(local) >= 2 and local.startswith('"') and local.endswith('"'):
        return _QUOTED_PAIR.sub(r"\1", local[1:-1])
    return local


def _find_domain_kinds(domain: str, fax_domain: str, sms_domain: str) -> set[str]:
    """Return the kinds of message DOMAIN takes, or raise AddressError."""
    served = {"fax": _clean_domain(fax_domain), "sms": _clean_domain(sms_domain)}
    configured = [name for name in served.values() if name]
    if not configured:
        raise AddressError(
            "ums has no mail domain configured, try again later",
            code=451,
            status="4.3.5",
            hint="Set gateway.fax_domain or gateway.sms_domain.",
        )
    kinds = {kind for kind, name in served.items() if name == domain}
    if not kinds:
        accepted = ", ".join(dict.fromkeys(configured))
        raise AddressError(
            f"relaying denied: ums accepts only {accepted}", code=550, status="5.7.1"
        )
    return kinds


def _clean_domain(domain: str | None) -> str:
    """Return the configured DOMAIN lower-cased without a trailing dot."""
    if not isinstance(domain, str):
        return ""
    return domain.strip().lower().removesuffix(".")


def _split_service(local: str, kinds: set[str], domain: str) -> tuple[str, str]:
    """Return the kind LOCAL asks for and the rest of it after a service selector.

    KINDS are the kinds the addressed DOMAIN takes; a local part without a
    selector takes the domain's kind.
    """
    selected = _SELECTOR.fullmatch(local)
    if selected:
        service = selected.group(1).upper()
        if service not in _SERVICES:
            raise AddressError(
                f"ums offers no service {_quote(selected.group(1) + '=')}: "
                f"write FAX=NUMBER or SMS=NUMBER, e.g. FAX={EXAMPLE_NUMBER}@{domain}"
            )
        return _SERVICES[service], selected.group(2)
    if len(kinds) > 1:
        raise AddressError(
            f"{domain} takes faxes and SMS: write FAX=NUMBER or SMS=NUMBER, "
            f"e.g. FAX={EXAMPLE_NUMBER}@{domain}"
        )
    return next(iter(kinds)), local


def _split_parameters(text: str, kind: str) -> tuple[str, str]:
    """Return the number part of TEXT and its T.33 sub-address ("" if none)."""
    text = text.removesuffix("/")
    first = _PARAMETER.search(text)
    if not first:
        return text, ""
    subaddress = ""
    for element in text[first.start() + 1 :].split("/"):
        pair = _KEY_VALUE.fullmatch(element)
        if not pair:
            raise AddressError(f"{_quote('/' + element)} after the number is unclear")
        if pair.group(1).upper() != "T33S":
            raise AddressError(
                f"the element {_quote('/' + pair.group(1) + '=')} is not supported; "
                "ums takes only /T33S=SUBADDRESS after a fax number"
            )
        if subaddress:
            raise AddressError("the address has more than one /T33S= sub-address")
        subaddress = _check_subaddress(pair.group(2), kind)
    return text[: first.start()], subaddress


def _check_subaddress(digits: str, kind: str) -> str:
    """Return the T.33 sub-address DIGITS, or raise AddressError."""
    if kind != "fax":
        raise AddressError("a /T33S= sub-address is for faxes only, not for SMS")
    if not _DIGITS.fullmatch(digits) or len(digits) > MAX_SUBADDRESS_DIGITS:
        raise AddressError(
            f"the T.33 sub-address {_quote(digits)} must be 1 to "
            f"{MAX_SUBADDRESS_DIGITS} digits"
        )
    return digits


def _read_number(text: str, rules: SiteRules, domain: str) -> str:
    """Return TEXT as an E.164 number, or raise AddressError."""
    example = f"{EXAMPLE_NUMBER}@{domain}"
    if not any(char.isdigit() for char in text):
        raise AddressError(
            f"the local part must be a fax or SMS number, e.g. {example}",
            hint="Write the number before the @, in international form.",
        )
    try:
        return normalize_number(text, rules)
    except NumberError as exc:
        raise AddressError(exc.message, hint=f"Write it like {example}.")


def _check_destination(text: str, number: str, rules: SiteRules, premium: bool):
    """Refuse emergency numbers, and premium-rate ones unless PREMIUM.

    The digits are also read as written without the site's outside prefix
    (``0112`` with outside prefix 0) and, for premium rates in a country without
    a trunk prefix, in the national reading: in Italy ``899 123456`` is a
    premium number, while the site rules read it as a local one in the area.
    """
    digits = "".join(char for char in text if char.isdigit())
    written = [] if text.lstrip().startswith("+") else [digits]
    prefix = rules.outside_prefix
    if written and prefix and digits.startswith(prefix) and len(digits) > len(prefix):
        written.append(digits[len(prefix) :])
    internal = bool(rules.base_number) and number.startswith(rules.base_number)
    for candidate in written:
        if len(candidate) <= 6 and not internal:
            if shortnumberinfo.is_emergency_number(candidate, rules.country):
                raise AddressError(
                    f"{_quote(text)} is an emergency number; ums sends faxes and SMS"
                    " to full numbers only",
                    hint="Write the full number with its area code.",
                )
    if premium:
        return
    readings = [number]
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(rules.country)
    if metadata is not None and not metadata.national_prefix:
        # No trunk prefix (IT): digits as written are also a national number.
        readings += [_national(candidate, rules.country) for candidate in written]
    for reading in filter(None, readings):
        if phonenumbers.number_type(phonenumbers.parse(reading)) == PREMIUM:
            raise AddressError(
                f"{reading} is a premium-rate number; ums does not send to those",
                status="5.7.1",
                hint="the admin allows them: ums config set gateway.premium_rate true",
            )


def _national(digits: str, region: str) -> str | None:
    """Return DIGITS read as a national number of REGION in E.164, or None."""
    try:
        parsed = phonenumbers.parse(digits, region)
    except phonenumbers.NumberParseException:
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def _syntax_error(address: object, reason: str) -> AddressError:
    """Return the AddressError 501 that says ADDRESS is no address, and why."""
    return AddressError(
        f"{_quote(address)} is not a mail address: {reason}",
        code=501,
        status="5.1.3",
    )


def _quote(value: object) -> str:
    """Return VALUE quoted for a reply, cut to QUOTE_CHARS characters."""
    if isinstance(value, str) and len(value) > QUOTE_CHARS:
        return repr(value[:QUOTE_CHARS]) + "..."
    return repr(value)


def _escape_char(match: re.Match[str]) -> str:
    """Return the matched character as a backslash escape."""
    code = ord(match.group(0))
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
