"""How a message row reads in the journal: labels, times, files, names."""

from __future__ import annotations

import os

import attrs

from . import files
from .listing import LIST_COLUMNS

NAME_LIMIT = 120
TIME_FORMATS = {"en": "%Y-%m-%d %H:%M", "de": "%d.%m.%Y %H:%M"}
MIMETYPES = {
    "pdf": "application/pdf",
    "tiff": "image/tiff",
    "wav": "audio/wav",
    "play": "audio/wav",
}


@attrs.frozen
class Found:
    """A file to send: a path, or TEXT for an SMS, with its download name."""

    path: str | None
    mimetype: str
    name: str
    text: str | None = None


def _get(row, name):
    return row[name] if isinstance(row, dict) else getattr(row, name)


def status_key(row) -> str:
    """Return new, read, sent, failed, rejected or pending for ROW."""
    if _get(row, "direction") == "outbound":
        state = _get(row, "state")
        return {"sent": "sent", "failed": "failed", "rejected": "rejected"}.get(
            state, "pending"
        )
    return "read" if _get(row, "read_at") else "new"


def other_party(row, ctx, t) -> tuple[str, str]:
    """Return (name, number) of who sent ROW in, or whom it was sent to."""
    if _get(row, "direction") == "outbound":
        called = _get(row, "called")
        return "", ctx.format_number(called) if called else ""
    name = " ".join((_get(row, "sender_name") or "").split())[:NAME_LIMIT]
    sender = _get(row, "sender")
    if sender:
        return name, ctx.format_number(sender)
    raw = " ".join((_get(row, "sender_raw") or "").split())[:NAME_LIMIT]
    if _get(row, "kind") == "sms" and any(c.isalpha() for c in raw):
        return name, raw  # an alphanumeric sender id such as "DHL"
    return name, t("withheld")


def size_label(row, t) -> str:
    """Return the pages of a fax or the length of a voice message."""
    pages, duration = _get(row, "pages"), _get(row, "duration")
    if _get(row, "kind") == "fax" and pages:
        return t("page") if pages == 1 else t("pages", n=pages)
    if _get(row, "kind") == "voice" and duration is not None:
        seconds = round(duration)
        return t("seconds", m=seconds // 60, s=seconds % 60)
    return ""


def local_time(row, ctx, language: str) -> str:
    """Return when ROW arrived (or was sent in), in the site's time zone."""
    when = ctx.local_time(_get(row, "received_at"))
    return when.strftime(TIME_FORMATS.get(language, TIME_FORMATS["en"]))


def present_row(row: dict, ctx, t, language: str) -> dict:
    """Return what the list shows of ROW (a dict of the list's columns)."""
    name, number = other_party(row, ctx, t)
    snippet = row["text"] if row["kind"] == "sms" else row["subject"]
    return {
        "id": row["id"],
        "kind": row["kind"],
        "kind_label": t(row["kind"]),
        "direction": row["direction"],
        "direction_label": t(row["direction"]),
        "when": local_time(row, ctx, language),
        "name": name,
        "number": number,
        "size": size_label(row, t),
        "status": status_key(row),
        "status_label": t("st_" + status_key(row)),
        "snippet": " ".join((snippet or "").split())[:80],
    }


def present_detail(row, ctx, t, language: str) -> dict:
    """Return what the message page shows of the model ROW."""
    detail = present_row(
        {name: getattr(row, name) for name in _LIST_NAMES}, ctx, t, language
    )
    fmt = files.content_format(row)
    home = ctx.content_folder
    has_content = files.content_path(home, row) is not None
    detail.update(
        text=row.text,
        station_id=" ".join((row.station_id or "").split()),
        pages=row.pages or 0,
        is_fax=row.kind == "fax" and has_content and fmt in ("pdf", "tiff"),
        has_pages=row.kind == "fax" and has_content and bool(row.pages),
        is_voice=row.kind == "voice" and has_content,
        is_sms=row.kind == "sms",
        outbound=row.direction == "outbound",
        remote_station=" ".join((row.remote_station or "").split()),
        attempts=row.attempts,
        error=row.error if row.direction == "outbound" else "",
        report=row.report,
        subject=row.subject,
    )
    return detail


_LIST_NAMES = tuple(column.name for column in LIST_COLUMNS)


def file_for(row, kind: str, home: str, ctx, t) -> Found | None:
    """Return the file of KIND ('pdf', 'tiff', 'wav', 'play', 'txt') of ROW."""
    name, number = other_party(row, ctx, t)
    who = name or number
    when = ctx.local_time(row.received_at)
    label = files.download_name(row, who, when, kind)
    if kind == "txt":
        if row.kind != "sms":
            return None
        return Found(None, "text/plain", label, text=row.text)
    if kind in ("pdf", "tiff"):
        if row.kind != "fax":
            return None
        path = files.fax_file(home, row, kind)
    elif kind == "wav":
        path = files.content_path(home, row) if row.kind == "voice" else None
    else:
        path = files.playable_audio(home, row)
        label = os.path.splitext(label)[0] + ".wav"
    if path is None:
        return None
    return Found(path, MIMETYPES[kind], label)
