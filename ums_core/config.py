"""The instance configuration: typed keys, read from and written to TOML.

Every key is declared once with its type, default and a validator; ``ums config
set`` accepts only declared keys and only values their parser takes. Plugins
declare keys of their own through the ``ums_declare_config`` hook.
"""

from __future__ import annotations

import copy
import os
import re
import tomllib
import zoneinfo
from collections.abc import Callable, Iterable
from email.headerregistry import Address
from email.utils import parseaddr
from typing import Any

import attrs

from .errors import UmsError

CONFIG_NAME = "config.toml"


@attrs.frozen
class ConfigKey:
    """One configuration key: dotted name, parser from text, default, help."""

    name: str
    default: Any
    parse: Callable[[str], Any]
    help: str
    secret: bool = False


def parse_bool(text: str) -> bool:
    """Return the boolean that TEXT names (true/false, on/off, yes/no, 1/0)."""
    value = str(text).strip().lower()
    if value in ("true", "on", "yes", "1"):
        return True
    if value in ("false", "off", "no", "0"):
        return False
    raise ValueError("expected true or false")


def choice(*options: str) -> Callable[[str], str]:
    """Return a parser that accepts one of OPTIONS."""

    def parse(text: str) -> str:
        value = str(text).strip().lower()
        if value not in options:
            raise ValueError("expected one of " + ", ".join(options))
        return value

    return parse


def bounded_int(low: int, high: int) -> Callable[[str], int]:
    """Return a parser for an integer between LOW and HIGH."""

    def parse(text: str) -> int:
        try:
            value = int(str(text).strip())
        except ValueError:
            raise ValueError(f"expected a whole number from {low} to {high}") from None
        if not low <= value <= high:
            raise ValueError(f"expected a number from {low} to {high}")
        return value

    return parse


def parse_seconds(text: str) -> float:
    """Return a duration in seconds from '30', '30s', '5m', '2h' or '1d'."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", str(text))
    if not match:
        raise ValueError("expected a duration such as 30s, 5m, 2h or 1d")
    factor = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match[2]]
    return float(match[1]) * factor


def at_least(low: float) -> Callable[[str], float]:
    """Return a duration parser that refuses less than LOW seconds."""

    def parse(text: str) -> float:
        value = parse_seconds(text)
        if value < low:
            raise ValueError(f"expected at least {low:g} seconds")
        return value

    return parse


def parse_secret_file(text: str) -> str:
    """Return a path to an existing file that only its owner can read, or ''."""
    import stat

    value = parse_text(text)
    if not value:
        return ""
    try:
        mode = os.stat(value).st_mode
    except OSError as exc:
        raise ValueError(f"cannot read it: {exc.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ValueError(f"it is readable by others; run chmod 600 {value}")
    return value


def parse_schedule(text: str | list) -> list[float]:
    """Return retry delays from a comma-separated list of durations."""
    items = text if isinstance(text, list) else str(text).split(",")
    delays = [parse_seconds(str(item)) for item in items if str(item).strip()]
    if not delays:
        raise ValueError("expected at least one delay, e.g. 1m,5m,30m")
    return delays


def parse_email(text: str) -> str:
    """Return an addr-spec (local@domain) or '' to unset."""
    value = str(text).strip()
    if value == "":
        return ""
    if not re.fullmatch(r"[^@\s<>\",;]+@[^@\s<>\",;]+\.?[^@\s<>\",;]*", value):
        raise ValueError("expected an e-mail address such as fax@example.com")
    if not value.isascii():
        raise ValueError("non-ASCII addresses are not supported")
    return value


def parse_sender(text: str) -> str:
    """Return a sender ('Name <addr@domain>' or 'addr@domain') or '' to unset."""
    value = str(text).strip()
    if value == "":
        return ""
    if "\r" in value or "\n" in value:
        raise ValueError("line breaks are not allowed")
    from email.utils import getaddresses

    if len(getaddresses([value])) != 1:
        raise ValueError("expected one address, such as Fax <fax@example.com>")
    name, addr = parseaddr(value)
    if not addr:
        raise ValueError("expected an address such as Fax <fax@example.com>")
    parse_email(addr)
    return str(Address(display_name=name, addr_spec=addr)) if name else addr


def parse_domain(text: str) -> str:
    """Return a mail domain in lower case, or '' to unset."""
    value = str(text).strip().lower().rstrip(".")
    if value and not re.fullmatch(
        r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9-]+)+", value
    ):
        raise ValueError("expected a domain name such as fax.example.com")
    return value


def parse_timezone(text: str) -> str:
    """Return a valid IANA time zone name."""
    value = str(text).strip()
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError("expected a time zone such as Europe/Berlin") from exc
    return value


def parse_text(text: str) -> str:
    """Return TEXT stripped; line breaks are refused."""
    value = str(text).strip()
    if "\r" in value or "\n" in value:
        raise ValueError("line breaks are not allowed")
    return value


def parse_digits(text: str) -> str:
    """Return a digit string, or '' to unset."""
    value = str(text).strip()
    if value and not value.isdigit():
        raise ValueError("expected digits only")
    return value


def parse_region(text: str) -> str:
    """Return an ISO 3166 region code in upper case."""
    value = str(text).strip().upper()
    if not re.fullmatch(r"[A-Z]{2}", value):
        raise ValueError("expected a two-letter country code such as DE")
    return value


def parse_name_list(text: str | list) -> list[str]:
    """Return a list of names from a comma-separated string."""
    items = text if isinstance(text, list) else str(text).split(",")
    return sorted({str(item).strip() for item in items if str(item).strip()})


def parse_listen(text: str) -> str:
    """Return HOST:PORT (IPv6 hosts in brackets)."""
    value = str(text).strip()
    match = re.fullmatch(r"(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})", value)
    if not match or not 0 < int(match[2]) < 65536:
        raise ValueError("expected HOST:PORT such as 127.0.0.1:2525")
    return value


def parse_optional_listen(text: str) -> str:
    """Return HOST:PORT, or '' (the service is off)."""
    value = str(text).strip()
    try:
        return parse_listen(value) if value else ""
    except ValueError:
        raise ValueError("expected HOST:PORT such as 127.0.0.1:8080, or ''") from None


def parse_networks(text: str | list) -> list[str]:
    """Return IP networks from a comma-separated list ('' for none)."""
    import ipaddress

    items = text if isinstance(text, list) else str(text).split(",")
    networks = []
    for item in (str(i).strip() for i in items):
        if item:
            networks.append(str(ipaddress.ip_network(item, strict=False)))
    return networks


def parse_numbers(text: str | list) -> list[str]:
    """Return E.164 numbers from a comma-separated list."""
    items = text if isinstance(text, list) else str(text).split(",")
    numbers = [str(item).strip() for item in items if str(item).strip()]
    for number in numbers:
        if not re.fullmatch(r"\+[1-9]\d{3,14}", number):
            raise ValueError(f"{number!r} is not an E.164 number such as +4989123456")
    return numbers


def parse_backend(text: str) -> str:
    """Return a backend name: outbox, simulation or a plugin's (e.g. hylafax)."""
    value = str(text).strip().lower()
    if value and not re.fullmatch(r"[a-z][a-z0-9_-]{0,30}", value):
        raise ValueError("expected a backend name such as outbox or simulation")
    return value


def parse_phone(text: str) -> str:
    """Return a phone number as people dial it (digits, +, spaces, - / ( )), or ''."""
    value = parse_text(text)
    if value and not re.fullmatch(r"\+?[0-9][0-9 ()/.-]{1,29}", value):
        raise ValueError("expected a phone number such as +49 89 123400")
    return value


def parse_database(text: str) -> str:
    """Return '' (SQLite in the instance) or a sqlite:/// or postgresql:// URL."""
    value = str(text).strip()
    if value and not re.match(r"(sqlite:///|postgres(ql)?://)", value):
        raise ValueError("expected sqlite:///PATH or postgresql://…")
    return value


CORE_KEYS: tuple[ConfigKey, ...] = (
    ConfigKey("mode", "local", choice("local", "mailserver"), "storage mode"),
    ConfigKey("info_mails", False, parse_bool, "send informational e-mails"),
    ConfigKey("archiving", False, parse_bool, "keep a local copy in mailserver mode"),
    ConfigKey(
        "default_recipient", "", parse_email, "owner of messages to unknown numbers"
    ),
    ConfigKey("system_sender", "", parse_sender, "From of mails ums writes itself"),
    ConfigKey("timezone", "UTC", parse_timezone, "time zone for dates in mails"),
    ConfigKey("language", "en", choice("en", "de"), "language of new users"),
    ConfigKey("database", "", parse_database, "database URL ('' = SQLite here)"),
    ConfigKey(
        "content_dir", "", parse_text, "content folder shared by nodes ('' = here)"
    ),
    ConfigKey("queue.lease", 300.0, at_least(2), "job lease before another node"),
    ConfigKey("queue.heartbeat", 5.0, at_least(0.2), "node heartbeat interval"),
    ConfigKey("site.country", "DE", parse_region, "country of the site"),
    ConfigKey("site.area_code", "", parse_digits, "area code without trunk 0"),
    ConfigKey("site.base_number", "", parse_text, "company base number (E.164)"),
    ConfigKey("site.outside_prefix", "", parse_digits, "PBX outside-line prefix"),
    ConfigKey(
        "site.extension_digits", 5, bounded_int(0, 8), "longest internal extension"
    ),
    ConfigKey("smtp.host", "", parse_text, "mail server to deliver to"),
    ConfigKey("smtp.port", 25, bounded_int(1, 65535), "mail server port"),
    ConfigKey(
        "smtp.starttls",
        "opportunistic",
        choice("off", "opportunistic", "required"),
        "STARTTLS policy",
    ),
    ConfigKey("smtp.ca_file", "", parse_text, "CA bundle to verify the server"),
    ConfigKey("smtp.user", "", parse_text, "SMTP AUTH user"),
    ConfigKey("smtp.password_file", "", parse_secret_file, "file holding the password"),
    ConfigKey("smtp.timeout", 30.0, at_least(1), "SMTP timeout"),
    ConfigKey("smtp.batch_size", 50, bounded_int(1, 10000), "mails per connection"),
    ConfigKey("gateway.fax_domain", "", parse_domain, "mail domain for faxes"),
    ConfigKey("gateway.sms_domain", "", parse_domain, "mail domain for SMS"),
    ConfigKey("gateway.voice_domain", "", parse_domain, "mail domain for voice"),
    ConfigKey(
        "retry.schedule",
        [60.0, 300.0, 900.0, 3600.0, 14400.0, 43200.0],
        parse_schedule,
        "delays between attempts",
    ),
    ConfigKey(
        "fax.attachment_format", "pdf", choice("pdf", "tiff", "both"), "fax files"
    ),
    ConfigKey(
        "limits.max_content_mb", 100, bounded_int(1, 4096), "largest content file"
    ),
    ConfigKey("plugins.disabled", [], parse_name_list, "plugins the admin disabled"),
    ConfigKey("spool.poll", 1.0, at_least(0.1), "spool scan interval"),
    ConfigKey("gateway.listen", "127.0.0.1:2525", parse_listen, "SMTP gateway address"),
    ConfigKey(
        "gateway.allowed_clients",
        ["127.0.0.1/32", "::1/128"],
        parse_networks,
        "networks that may send to the gateway without AUTH",
    ),
    ConfigKey(
        "gateway.trusted_clients", [], parse_networks, "networks whose From is trusted"
    ),
    ConfigKey("gateway.max_size_mb", 25, bounded_int(1, 1024), "largest e-mail"),
    ConfigKey("gateway.max_pages", 50, bounded_int(1, 1000), "most pages per fax"),
    ConfigKey(
        "gateway.max_recipients", 100, bounded_int(1, 10000), "most RCPTs per mail"
    ),
    ConfigKey("gateway.max_segments", 10, bounded_int(1, 255), "most SMS segments"),
    ConfigKey(
        "gateway.premium_rate", False, parse_bool, "send to premium-rate numbers"
    ),
    ConfigKey("gateway.tls_cert", "", parse_text, "certificate for STARTTLS"),
    ConfigKey("gateway.tls_key", "", parse_text, "private key for STARTTLS"),
    ConfigKey("transmit.backend", "outbox", parse_backend, "telephony side"),
    ConfigKey("transmit.fax", "", parse_backend, "backend for faxes ('' = backend)"),
    ConfigKey("transmit.sms", "", parse_backend, "backend for SMS ('' = backend)"),
    ConfigKey("transmit.outbox", "", parse_text, "outbox folder ('' = in instance)"),
    ConfigKey("transmit.poll", 30.0, at_least(1), "how often to ask for results"),
    ConfigKey("simulation.fail", [], parse_numbers, "numbers the simulation fails"),
    ConfigKey(
        "sender_identification", False, parse_bool, "look callers up (mailserver)"
    ),
    ConfigKey("directory.file", "", parse_text, "address book (CSV or vCard)"),
    ConfigKey(
        "directory.match", "unique", choice("first", "unique"), "several contacts"
    ),
    ConfigKey("remote_inquiry", False, parse_bool, "phone may play voice messages"),
    ConfigKey("voicemail.number", "", parse_phone, "number users call for voice mail"),
    ConfigKey("voicemail.max_failures", 5, bounded_int(1, 100), "wrong PINs to lock"),
    ConfigKey("announcement.number", "", parse_phone, "number to record it"),
    ConfigKey("journal.url", "", parse_text, "the journal's address for info mails"),
    ConfigKey(
        "journal.listen",
        "127.0.0.1:8080",
        parse_optional_listen,
        "web journal address ('' = off)",
    ),
    ConfigKey(
        "journal.idle_timeout", 1800.0, at_least(60), "journal session idle limit"
    ),
    ConfigKey(
        "journal.https", False, parse_bool, "journal is reached over TLS (proxy)"
    ),
    ConfigKey(
        "journal.trusted_proxy",
        "",
        parse_text,
        "address of the proxy in front of the journal",
    ),
    ConfigKey(
        "journal.retention_days",
        0,
        bounded_int(0, 36500),
        "days to keep stored messages (0 = keep)",
    ),
)


def _flatten(table: dict, prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def _nest(flat: dict[str, Any]) -> dict[str, Any]:
    table: dict[str, Any] = {}
    for name in sorted(flat, key=lambda n: (n.count("."), n)):
        *parents, leaf = name.split(".")
        node = table
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = flat[name]
    return table


IMMUTABLE = (str, int, float, bool, type(None), tuple, frozenset)


class Config:
    """Typed configuration values of one instance."""

    def __init__(self, path: str, values: dict[str, Any], keys: Iterable[ConfigKey]):
        self.path = path
        self._keys = {key.name: key for key in keys}
        self._values = values
        self._parsed: dict[str, Any] = {}
        self._check_shape(self._keys)

    @property
    def keys(self) -> dict[str, ConfigKey]:
        """Return the declared keys by name."""
        return dict(self._keys)

    def declare(self, keys: Iterable[ConfigKey]) -> None:
        """Add keys a plugin declares; the file's values for them are parsed now."""
        keys = list(keys)
        for key in keys:
            self._keys.setdefault(key.name, key)
        self._check_shape({key.name: key for key in keys})

    def _check_shape(self, keys: dict[str, ConfigKey]) -> None:
        """Refuse a value where KEYS need a table, or a table where one is a value."""
        for name in self._values:
            parts = name.split(".")
            for end in range(1, len(parts)):
                if ".".join(parts[:end]) in keys:
                    known = ".".join(parts[:end])
                    raise UmsError(
                        f"{self.path}: {known} is a single value, not a table"
                        f" (found {name})",
                        hint=f"write it as {known} = VALUE",
                    )
            inner = name + "."
            if any(key.startswith(inner) for key in keys):
                raise UmsError(
                    f"{self.path}: {name} must be a table of settings ([{name}] with"
                    f" keys such as {_first_key(keys, inner)}), not a value",
                    hint=f"remove the line {name} = … or make it a [{name}] table",
                )

    def get(self, name: str) -> Any:
        """Return the value of NAME, or its default.

        Parsed values that cannot be changed in place are kept: the pipeline
        asks for the same few keys many times per message.
        """
        try:
            return self._parsed[name]
        except KeyError:
            pass
        key = self._require(name)
        value = key.default
        if name in self._values:
            value = self._parse(key, self._values[name])
        if isinstance(value, IMMUTABLE):
            self._parsed[name] = value
            return value
        # A list or dict (a default lives in the key declaration): a copy, so
        # a caller changing it changes nothing for anyone else.
        return copy.deepcopy(value)

    def __getitem__(self, name: str) -> Any:
        return self.get(name)

    def as_dict(self) -> dict[str, Any]:
        """Return every declared key with its value (secrets masked)."""
        shown = {}
        for name, key in sorted(self._keys.items()):
            value = self.get(name)
            shown[name] = "********" if key.secret and value else value
        return shown

    def set(self, name: str, text: str) -> Any:
        """Parse TEXT for NAME, store it in memory and return the parsed value."""
        key = self._require(name)
        value = self._parse(key, text)
        self._values[name] = value
        self._parsed.pop(name, None)
        return value

    def save(self) -> None:
        """Write the configuration atomically (owner-only)."""
        import tomli_w

        data = tomli_w.dumps(_nest(self._values)).encode()
        tmp = self.path + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)

    def _require(self, name: str) -> ConfigKey:
        if name not in self._keys:
            raise UmsError(
                f"unknown configuration key {name!r}",
                hint="'ums config show' lists every key",
            )
        return self._keys[name]

    def _parse(self, key: ConfigKey, raw: Any) -> Any:
        if isinstance(raw, bool | int | float) and not isinstance(key.default, str):
            raw = str(raw).lower() if isinstance(raw, bool) else str(raw)
        try:
            return key.parse(raw)
        except ValueError as exc:
            shown = "<hidden>" if key.secret else repr(raw)
            raise UmsError(f"bad value {shown} for {key.name}: {exc}") from None


def _first_key(keys, prefix: str) -> str:
    return min(key for key in keys if key.startswith(prefix))


def load_config(path: str, keys: Iterable[ConfigKey] = CORE_KEYS) -> Config:
    """Read the TOML file at PATH; a missing file gives the defaults."""
    try:
        with open(path, "rb") as handle:
            values = _flatten(tomllib.load(handle))
    except FileNotFoundError:
        values = {}
    except tomllib.TOMLDecodeError as exc:
        raise UmsError(f"{path} is not valid TOML: {exc}") from None
    return Config(path, values, keys)
