"""What a user may see of the stored messages, and one page of them.

Pages are cut by keyset (``id < before`` / ``id > after``) on the
``(recipient, id)`` index, never by OFFSET, so the hundredth page costs what
the first does. Only the columns the list shows are read.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo

import attrs
import peewee as pw

from ums_core import db
from ums_core.errors import NumberError
from ums_core.statements import Statement

PAGE_SIZE = 50
KINDS = ("fax", "voice", "sms")
DIRECTIONS = ("inbound", "outbound")
LIST_COLUMNS = (
    db.Message.id,
    db.Message.kind,
    db.Message.direction,
    db.Message.sender,
    db.Message.sender_raw,
    db.Message.sender_name,
    db.Message.called,
    db.Message.received_at,
    db.Message.state,
    db.Message.pages,
    db.Message.duration,
    db.Message.read_at,
    db.Message.text,
    db.Message.subject,
)


@attrs.frozen
class Filters:
    """The list's filters as the query string gave them, checked."""

    kind: str = ""
    direction: str = ""
    unread: bool = False
    start: dt.date | None = None
    end: dt.date | None = None
    query: str = ""

    def as_args(self) -> dict[str, str]:
        """Return the filters as query-string arguments (empty ones left out)."""
        args = {
            "kind": self.kind,
            "direction": self.direction,
            "unread": "1" if self.unread else "",
            "from": self.start.isoformat() if self.start else "",
            "to": self.end.isoformat() if self.end else "",
            "q": self.query,
        }
        return {name: value for name, value in args.items() if value}


@attrs.frozen
class Page:
    """One page of rows, newest first, and the ids to page on from."""

    rows: list[dict]
    older: int | None
    newer: int | None


def _parse_date(text: str | None) -> dt.date | None:
    try:
        return dt.date.fromisoformat((text or "").strip()) if text else None
    except ValueError:
        return None


def read_filters(args) -> Filters:
    """Return the Filters in ARGS (a query-string mapping); ignore bad values."""
    kind = args.get("kind", "")
    direction = args.get("direction", "")
    return Filters(
        kind=kind if kind in KINDS else "",
        direction=direction if direction in DIRECTIONS else "",
        unread=args.get("unread") == "1",
        start=_parse_date(args.get("from")),
        end=_parse_date(args.get("to")),
        query=" ".join((args.get("q") or "").split())[:100],
    )


def visible_to(email: str, is_default_recipient: bool):
    """Return the condition for the messages EMAIL may see.

    The default recipient also sees the messages that belonged to nobody
    because no default recipient was set when they came in.
    """
    condition = db.Message.recipient == email
    if is_default_recipient:
        condition |= db.Message.recipient.is_null()
    return condition


def _day_start(day: dt.date, zone: str) -> dt.datetime:
    local = dt.datetime.combine(day, dt.time(), tzinfo=zoneinfo.ZoneInfo(zone))
    try:
        return local.astimezone(dt.UTC)
    except OverflowError:  # the first or last representable days
        return local.replace(tzinfo=dt.UTC)


def _search_condition(text: str, site_rules):
    from ums_core.numbers import normalize_number

    like = f"%{text}%"
    condition = (db.Message.sender_name**like) | (db.Message.sender_raw**like)
    digits = re.sub(r"[^\d+]", "", text)
    if len(digits) >= 3:
        condition |= (db.Message.sender.contains(digits)) | (
            db.Message.called.contains(digits.lstrip("+0"))
        )
        try:
            e164 = normalize_number(text, site_rules)
        except (NumberError, ValueError):
            e164 = None
        if e164:
            condition |= (db.Message.sender == e164) | (db.Message.called == e164)
    return condition


def filter_condition(filters: Filters, zone: str, site_rules):
    """Return the WHERE condition of FILTERS (None when there is none)."""
    parts = []
    if filters.kind:
        parts.append(db.Message.kind == filters.kind)
    if filters.direction:
        parts.append(db.Message.direction == filters.direction)
    if filters.unread:
        parts.append((db.Message.direction == "inbound") & db.Message.read_at.is_null())
    if filters.start and filters.start > dt.date.min:
        parts.append(db.Message.received_at >= _day_start(filters.start, zone))
    if filters.end and filters.end < dt.date.max:
        end = _day_start(filters.end + dt.timedelta(days=1), zone)
        parts.append(db.Message.received_at < end)
    if filters.query:
        parts.append(_search_condition(filters.query, site_rules))
    condition = None
    for part in parts:
        condition = part if condition is None else condition & part
    return condition


def _page_query(visible, condition, before, after, size):
    query = db.Message.select(*LIST_COLUMNS).where(visible)
    if condition is not None:
        query = query.where(condition)
    if after is not None:
        query = query.where(db.Message.id > after).order_by(db.Message.id.asc())
    else:
        if before is not None:
            query = query.where(db.Message.id < before)
        query = query.order_by(db.Message.id.desc())
    return query.limit(size)


def _plain_statement(default: bool, way: str) -> Statement:
    """Return the unfiltered page query of a default recipient or not, one WAY."""
    return Statement(
        ("str", "int", "int"),
        lambda email, boundary, size: _page_query(
            visible_to(email, default),
            None,
            boundary if way == "before" else None,
            boundary if way == "after" else None,
            size,
        ),
    )


# The unfiltered list, compiled once: (default recipient, "before"/"after").
# The first page is the one before the largest id there can be.
_PLAIN_PAGES = {
    (default, way): _plain_statement(default, way)
    for default in (False, True)
    for way in ("before", "after")
}
_ANY_ID = 2**63 - 1
_CONVERT = tuple(
    (column.name, column.python_value)
    for column in LIST_COLUMNS
    if isinstance(column, pw.DateTimeField)
)
_NAMES = tuple(column.name for column in LIST_COLUMNS)


def _plain_rows(email, default, before, after, size) -> list[dict]:
    if after is not None:
        found = _PLAIN_PAGES[default, "after"].rows(email, after, size)
    else:
        boundary = _ANY_ID if before is None else before
        found = _PLAIN_PAGES[default, "before"].rows(email, boundary, size)
    rows = [dict(zip(_NAMES, values, strict=True)) for values in found]
    for row in rows:
        for name, convert in _CONVERT:
            row[name] = convert(row[name])
    return rows


def list_page(
    email: str,
    is_default_recipient: bool,
    condition,
    before: int | None = None,
    after: int | None = None,
    size: int = PAGE_SIZE,
) -> Page:
    """Return the page of EMAIL's rows older than BEFORE (or newer than AFTER).

    CONDITION (the filters, None for none) narrows the rows; see
    :func:`visible_to` for IS_DEFAULT_RECIPIENT.
    """
    if condition is None:
        rows = _plain_rows(email, is_default_recipient, before, after, size + 1)
    else:
        visible = visible_to(email, is_default_recipient)
        query = _page_query(visible, condition, before, after, size + 1)
        rows = list(query.dicts())
    more = len(rows) > size
    rows = rows[:size]
    if after is not None:
        rows.reverse()
    if not rows:
        return Page(rows=[], older=None, newer=None)
    going_back = after is None
    older = rows[-1]["id"] if (more if going_back else True) else None
    newer = (
        rows[0]["id"] if (before is not None or (after is not None and more)) else None
    )
    return Page(rows=rows, older=older, newer=newer)
