"""What a command did with one file, as the one line it prints."""

from __future__ import annotations

import attrs

from ums_core.helpers import header_text

ACTIONS = ("imported", "recorded", "skipped", "refused")


@attrs.frozen
class Outcome:
    """One file handled: imported, recorded, skipped or refused, and why."""

    action: str = attrs.field(validator=attrs.validators.in_(ACTIONS))
    name: str
    detail: str

    @property
    def refused(self) -> bool:
        """Return True when the file was refused."""
        return self.action == "refused"

    def line(self) -> str:
        """Return the line the command prints: ACTION NAME: DETAIL."""
        name = header_text(self.name, 120) or "?"
        return f"{self.action} {name}: {header_text(self.detail, 400)}"
