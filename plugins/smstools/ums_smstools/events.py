"""smsd's eventhandler calls: ``EVENT FILE [MESSAGE_ID]``.

smsd runs its ``eventhandler`` with the event (RECEIVED, SENT, FAILED, REPORT
or CALL), the message file and, for SENT with status reports on, the message
id the modem gave. smsd waits for the handler, so RECEIVED and REPORT only
commit here and leave delivery to ``ums serve``.
"""

from __future__ import annotations

import os

from ums_core.context import PluginContext

from .inbound import import_file
from .outbound import record_smsd_event
from .outcome import Outcome

EVENTS = ("RECEIVED", "SENT", "FAILED", "REPORT", "CALL")


def handle_event(app, event: str, path: str, smsd_id: str = "") -> Outcome:
    """Do what smsd's EVENT about the file PATH asks for; return the outcome."""
    event = event.strip().upper()
    name = os.path.basename(path)
    if event == "RECEIVED":
        return import_file(app, path, run_now=False)
    if event == "REPORT":
        return import_file(app, path, run_now=False, report=True)
    if event in ("SENT", "FAILED"):
        return record_smsd_event(PluginContext(app), event, path, smsd_id)
    if event == "CALL":
        return Outcome("skipped", name, "a phone call notice: ums takes SMS only")
    return Outcome("skipped", name, f"unknown smsd event {event[:20]!r}")
