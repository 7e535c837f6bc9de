"""The spool folder: how other programs hand messages to ``ums serve``.

An entry is one content file plus one metadata file, ``NAME.json``. Writers
create both in ``spool/tmp/``, rename the content file into ``spool/new/``
first and the metadata file last; the watcher reads only ``new/*.json``.
The metadata file is a JSON object::

    {"kind": "fax", "from": "+4930555010", "to": "+4989123456",
     "name": "Example GmbH", "station_id": "+49 30 555010",
     "received_at": "2026-12-04T08:15:00+01:00", "content": "NAME.tif"}

``content`` names the content file in the same folder (fax and voice);
an SMS has ``"text"`` instead. After the message is committed both files
are removed. An entry that cannot be taken is moved to ``spool/bad/`` with
``NAME.reason.txt`` beside it; nothing is deleted.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import secrets
import shutil
import stat

import attrs

from . import db
from .content import fsync_dir
from .errors import BusyError, PluginError, UmsError
from .intake_batch import receive_batch
from .model import IncomingMessage

log = logging.getLogger(__name__)

MAX_META_BYTES = 64 * 1024
GROUP_SIZE = 32


@attrs.frozen
class SpoolOutcome:
    """What happened to one spool entry."""

    entry: str
    message_id: int | None
    error: str = ""


def spool_folder(home: str, part: str) -> str:
    """Return the spool sub-folder PART (tmp, new or bad) of instance HOME."""
    return os.path.join(home, "spool", part)


def submit_to_spool(home: str, meta: dict, content_path: str | None = None) -> str:
    """Hand a message to the spool of HOME the documented way; return its name."""
    name = dt.datetime.now(dt.UTC).strftime("%Y%m%d%H%M%S%f-")
    name += secrets.token_hex(6)
    tmp, new = spool_folder(home, "tmp"), spool_folder(home, "new")
    meta = dict(meta)
    if content_path:
        extension = os.path.splitext(content_path)[1].lower()[:8]
        meta["content"] = name + extension
        shutil.copyfile(content_path, os.path.join(tmp, meta["content"]))
        _fsync_file(os.path.join(tmp, meta["content"]))
        os.replace(
            os.path.join(tmp, meta["content"]), os.path.join(new, meta["content"])
        )
    with open(os.path.join(tmp, name + ".json"), "w", encoding="utf-8") as handle:
        json.dump(meta, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(os.path.join(tmp, name + ".json"), os.path.join(new, name + ".json"))
    fsync_dir(new)
    return name


def _fsync_file(path: str) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def scan_spool(app, limit: int = 1000) -> list[SpoolOutcome]:
    """Take up to LIMIT entries from spool/new, oldest name first.

    Entries are committed in groups (one transaction per group of up to
    GROUP_SIZE); each is removed only after its group's commit.
    """
    new = spool_folder(app.home, "new")
    names = sorted(n for n in os.listdir(new) if n.endswith(".json"))[:limit]
    names = [name[: -len(".json")] for name in names]
    outcomes = []
    for start in range(0, len(names), GROUP_SIZE):
        outcomes += take_entries(app, names[start : start + GROUP_SIZE])
    return outcomes


def spool_ref(app, name: str) -> str:
    """Return the source reference of spool entry NAME.

    On PostgreSQL several nodes share the messages table while each has its
    own spool, whose writers may reuse names: the node's host and instance
    folder make the reference unique.
    """
    if db.is_postgresql(app.database):
        return f"spool:{name}|{app.origin}"
    return "spool:" + name


def take_entries(app, names: list[str]) -> list[SpoolOutcome]:
    """Commit the spool entries NAMES together, or move each bad one aside.

    A busy database leaves the entries where they are, for the next scan;
    every other problem, expected or not, moves an entry to spool/bad with
    the reason.
    """
    new = spool_folder(app.home, "new")
    outcomes: dict[str, SpoolOutcome] = {}
    items, taken = [], []
    for name in names:
        meta: dict = {}
        try:
            meta = _read_meta(os.path.join(new, name + ".json"))
            incoming, content = _incoming_from_meta(meta, new)
        except UmsError as exc:
            outcomes[name] = _refuse(app, name, meta, exc.message)
            continue
        except (OSError, ValueError, RecursionError) as exc:
            outcomes[name] = _refuse(app, name, meta, f"cannot read the entry: {exc}")
            continue
        items.append((incoming, spool_ref(app, name)))
        taken.append((name, meta, content))
    try:
        results = receive_batch(app, items, run_now=False) if items else []
    except PluginError:
        # One entry can make a resolver fail (its number, say): take the
        # others one by one rather than hold the whole group back.
        results = [_receive_alone(app, item) for item in items]
    except BusyError as exc:
        for name, _, _ in taken:
            log.warning("spool entry %s left for later: %s", name, exc.message)
            outcomes[name] = SpoolOutcome(name, None, exc.message)
        results = []
    for (name, meta, content), result in zip(taken, results, strict=False):
        outcomes[name] = _settle(app, name, meta, content, result)
    return [outcomes[name] for name in names]


def _receive_alone(app, item):
    """Return the outcome of receiving ITEM by itself (a BusyError: left for later)."""
    try:
        return receive_batch(app, [item], run_now=False)[0]
    except BusyError as exc:
        return exc


def _settle(app, name: str, meta: dict, content, result) -> SpoolOutcome:
    """Remove a committed entry, or move a refused one aside."""
    if isinstance(result, BusyError):  # no space, or the database is busy
        log.warning("spool entry %s left for later: %s", name, result.message)
        return SpoolOutcome(name, None, result.message)
    if isinstance(result, UmsError):
        return _refuse(app, name, meta, result.message)
    if isinstance(result, Exception):
        return _refuse(app, name, meta, f"cannot read the entry: {result}")
    os.unlink(os.path.join(spool_folder(app.home, "new"), name + ".json"))
    if content:
        os.unlink(content)
    return SpoolOutcome(name, result)


def _refuse(app, name: str, meta: dict, reason: str) -> SpoolOutcome:
    content = meta.get("content") if isinstance(meta, dict) else None
    if not _plain_name(content):
        content = None
    _move_aside(app, name, content, reason)
    return SpoolOutcome(name, None, reason)


def _read_meta(path: str) -> dict:
    info = os.lstat(path)
    if not stat.S_ISREG(info.st_mode):
        raise UmsError("the metadata entry is not a regular file")
    if info.st_size > MAX_META_BYTES:
        raise UmsError("metadata file is larger than 64 KiB")
    try:
        with open(path, encoding="utf-8") as handle:
            meta = json.load(handle)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UmsError(f"metadata is not valid JSON: {exc}") from None
    if not isinstance(meta, dict):
        raise UmsError("metadata must be a JSON object")
    return meta


def _incoming_from_meta(meta: dict, folder: str) -> tuple[IncomingMessage, str | None]:
    kind = meta.get("kind")
    if kind not in ("fax", "voice", "sms"):
        raise UmsError(f"metadata 'kind' must be fax, voice or sms, not {kind!r}")
    content = None
    if kind != "sms":
        content = _content_path(meta.get("content"), folder)
    for key in ("from", "to", "name", "station_id", "text", "received_at"):
        if meta.get(key) is not None and not isinstance(meta[key], str):
            raise UmsError(f"metadata {key!r} must be a string")
    if not meta.get("to"):
        raise UmsError("metadata needs 'to', the called number")
    incoming = IncomingMessage(
        kind=kind,
        called=meta["to"],
        sender=meta.get("from"),
        sender_name=meta.get("name") or "",
        station_id=meta.get("station_id") or "",
        received_at=_parse_time(meta.get("received_at")),
        text=meta.get("text") or "",
        content_path=content,
    )
    return incoming, content


def _content_path(name, folder: str) -> str:
    if not isinstance(name, str) or not name:
        raise UmsError("metadata needs 'content', the content file's name")
    if not _plain_name(name):
        raise UmsError(f"content name {name!r} must be a plain file name")
    path = os.path.join(folder, name)
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        raise UmsError(f"content file {name} is missing") from None
    if not stat.S_ISREG(info.st_mode):
        raise UmsError(f"content file {name} is not a regular file")
    return path


def _plain_name(name) -> bool:
    """Return True for a file name of the spool folder itself, not '..' or a path."""
    return (
        isinstance(name, str)
        and os.path.basename(name) == name
        and not name.startswith(".")
        and "\0" not in name
    )


def _parse_time(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        raise UmsError(f"received_at {text!r} is not an ISO 8601 time") from None


def _move_aside(app, name: str, content: str | None, reason: str) -> None:
    new, bad = spool_folder(app.home, "new"), spool_folder(app.home, "bad")
    for entry in (name + ".json", content):
        if entry and os.path.lexists(os.path.join(new, entry)):
            os.replace(os.path.join(new, entry), os.path.join(bad, entry))
    with open(os.path.join(bad, name + ".reason.txt"), "w", encoding="utf-8") as out:
        out.write(reason + "\n")
    fsync_dir(bad)
    log.error("spool entry %s refused and moved to spool/bad: %s", name, reason)
