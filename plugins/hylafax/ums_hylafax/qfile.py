"""Read HylaFAX's ``tag:value`` files (the qfile syntax of sendq(5))."""

from __future__ import annotations


def join_continued(lines: list[str]) -> list[str]:
    """Return LINES with each line ending in a backslash joined to the next."""
    joined: list[str] = []
    pending = ""
    for line in lines:
        if line.endswith("\\"):
            pending += line[:-1]
            continue
        joined.append(pending + line)
        pending = ""
    if pending:
        joined.append(pending)
    return joined


def parse_qfile(text: str) -> dict[str, str]:
    """Return the tags of a qfile; a value starts after the ':' and its blanks."""
    tags: dict[str, str] = {}
    for line in join_continued(text.splitlines()):
        tag, colon, value = line.partition(":")
        tag = tag.strip()
        if colon and tag and not tag.startswith("#"):
            tags[tag] = value.strip()
    return tags


def read_int(tags: dict[str, str], name: str) -> int | None:
    """Return the integer tag NAME, or None when it is absent or not a number."""
    value = tags.get(name, "").strip()
    return int(value) if value.isdigit() else None
