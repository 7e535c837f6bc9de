"""What the plugin keeps about each outbound SMS it hands to smsd.

``DIR/plugins/smstools/outbound/ums-<id>.json`` is one record per message::

    {"id": 17, "number": "491701234567", "state": "handed",
     "written_at": "2026-12-04T08:15:00+00:00", "reason": "", "smsd_id": "117",
     "report": {"status": "0,Ok,short message received by the SME", ...}}

``state`` is ``writing`` (the outgoing file is being written), ``handed``
(it is in smsd's outgoing folder or beyond), ``sent`` or ``failed``.
``refs/<number>-<smsd id>`` holds the id of the message smsd sent under that
message reference, so that a status report finds its message.
"""

from __future__ import annotations

import json
import os
import re

from ums_core.errors import UmsError

from .files import write_atomically
from .settings import PLUGIN


def file_name(message_id: int) -> str:
    """Return the name of the files for message MESSAGE_ID: ums-<id>."""
    return f"ums-{message_id}"


class Ledger:
    """The records of one instance, in its plugin folder."""

    def __init__(self, ctx):
        base = ctx.plugin_folder(PLUGIN)
        self.records = os.path.join(base, "outbound")
        self.refs = os.path.join(base, "refs")
        os.makedirs(self.records, mode=0o700, exist_ok=True)
        os.makedirs(self.refs, mode=0o700, exist_ok=True)

    def read(self, message_id: int) -> dict | None:
        """Return the record of MESSAGE_ID, or None when there is none."""
        path = os.path.join(self.records, file_name(message_id) + ".json")
        try:
            with open(path, encoding="utf-8") as handle:
                record = json.load(handle)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise UmsError(
                f"msg {message_id}: unreadable record {path}: {exc}"
            ) from None
        if not isinstance(record, dict):
            raise UmsError(f"msg {message_id}: {path} holds no record")
        return record

    def write(self, record: dict) -> None:
        """Store RECORD (it carries its message id) atomically."""
        path = os.path.join(self.records, file_name(record["id"]) + ".json")
        data = json.dumps(record, ensure_ascii=False, indent=1).encode("utf-8")
        write_atomically(path, data)

    def link(self, number: str, smsd_id: str, message_id: int) -> None:
        """Remember that smsd sent MESSAGE_ID to NUMBER as SMSD_ID."""
        name = reference_name(number, smsd_id)
        if name:
            write_atomically(os.path.join(self.refs, name), str(message_id).encode())

    def find(self, number: str, smsd_id: str) -> int | None:
        """Return the message smsd sent to NUMBER as SMSD_ID, or None."""
        name = reference_name(number, smsd_id)
        try:
            with open(os.path.join(self.refs, name or "-"), encoding="ascii") as handle:
                return int(handle.read().strip())
        except (OSError, ValueError):
            return None


def reference_name(number: str, smsd_id: str) -> str:
    """Return the refs/ file name for NUMBER and SMSD_ID, or '' when unusable."""
    digits = "".join(c for c in number if c in "0123456789")
    smsd_id = smsd_id.strip()
    if not digits or not re.fullmatch(r"[0-9]{1,10}", smsd_id):
        return ""
    return f"{digits}-{int(smsd_id)}"
