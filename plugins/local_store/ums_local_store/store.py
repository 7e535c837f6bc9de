"""The archive layout: one folder per message with its content and record.

``plugins/local_store/YYYY/MM/<id>/`` holds ``message.json`` and the content
file (a hard link to the core's copy where the file system allows, else a
copy), so the archive stays complete even if the core's copy is purged.
"""

from __future__ import annotations

import json
import os
import shutil

import attrs

from ums_core import content
from ums_core.model import StoreResult

PLUGIN = "local_store"


def store_message(message, ctx) -> StoreResult:
    """Write MESSAGE into the archive durably; return where it is."""
    relative = os.path.join(message.received_at.strftime("%Y/%m"), str(message.id))
    folder = os.path.join(ctx.plugin_folder(PLUGIN), relative)
    content.make_folders(folder)
    if message.content_path:
        _link_or_copy(message.content_path, folder)
    record = attrs.asdict(message)
    record["received_at"] = message.received_at.isoformat()
    record["content_file"] = (
        os.path.basename(message.content_path) if message.content_path else None
    )
    record.pop("content_path")
    _write_json(os.path.join(folder, "message.json"), record)
    return StoreResult(plugin=PLUGIN, reference=relative)


def _link_or_copy(source: str, folder: str) -> None:
    target = os.path.join(folder, os.path.basename(source))
    if os.path.exists(target):
        return
    tmp = target + ".part"
    try:
        os.link(source, tmp)
    except OSError:
        shutil.copyfile(source, tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
    os.replace(tmp, target)


def _write_json(path: str, record: dict) -> None:
    tmp = path + ".part"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(record, handle, indent=2, ensure_ascii=False)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    content.fsync_dir(os.path.dirname(path))
