"""Find voice messages in an Asterisk voicemail spool and put them away.

The spool is ``VOICEMAIL_DIR/<context>/<mailbox>/INBOX/``; each message is
``msgNNNN.txt`` plus one recording per format in ``voicemail.conf``
(``msgNNNN.wav``, ``msgNNNN.WAV`` for wav49, ``msgNNNN.gsm``, ...).
"""

from __future__ import annotations

import os
import re
import shutil
import stat

import attrs

from ums_core.errors import UmsError

from .settings import is_spool_name

INBOX = "INBOX"
MESSAGE_FILE = re.compile(r"(msg\d{4,6})\.txt")
WAV_EXTENSIONS = (".wav", ".WAV")


@attrs.frozen
class VoicemailItem:
    """One message in the spool: its folder, its stem and the files it has."""

    context: str
    mailbox: str
    folder: str
    stem: str
    files: tuple[str, ...]

    @property
    def mailbox_key(self) -> str:
        """Return ``context/mailbox``, the key of the mapping."""
        return f"{self.context}/{self.mailbox}"

    @property
    def label(self) -> str:
        """Return ``context/mailbox/msgNNNN``, how output names the message."""
        return f"{self.mailbox_key}/{self.stem}"

    @property
    def info_path(self) -> str:
        """Return the path of the message file (``msgNNNN.txt``)."""
        return os.path.join(self.folder, self.stem + ".txt")


def check_spool(root: str) -> None:
    """Refuse ROOT when it is not a folder."""
    if not os.path.isdir(root):
        raise UmsError(
            f"no Asterisk voicemail spool at {root}",
            hint="pass VOICEMAIL_DIR or set asterisk.spool "
            "(usually /var/spool/asterisk/voicemail)",
        )


def list_spool(root: str) -> list[VoicemailItem]:
    """Return every message in the INBOX of every mailbox under ROOT."""
    items = []
    for context in list_names(root):
        for mailbox in list_names(os.path.join(root, context)):
            items += list_inbox(root, context, mailbox)
    return items


def list_names(folder: str) -> list[str]:
    """Return the sub-folders of FOLDER that can be contexts or mailboxes."""
    try:
        names = os.listdir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(
        name
        for name in names
        if is_spool_name(name) and os.path.isdir(os.path.join(folder, name))
    )


def list_inbox(root: str, context: str, mailbox: str) -> list[VoicemailItem]:
    """Return the messages in the INBOX of CONTEXT/MAILBOX, oldest number first."""
    folder = os.path.join(root, context, mailbox, INBOX)
    try:
        names = os.listdir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return []
    stems = sorted(m[1] for m in map(MESSAGE_FILE.fullmatch, names) if m)
    return [
        VoicemailItem(
            context,
            mailbox,
            folder,
            stem,
            tuple(sorted(n for n in names if n.startswith(stem + "."))),
        )
        for stem in stems
    ]


def choose_recording(item: VoicemailItem) -> str:
    """Return the path of the WAV recording of ITEM; refuse other formats."""
    for extension in WAV_EXTENSIONS:
        name = item.stem + extension
        if name in item.files:
            require_regular_file(os.path.join(item.folder, name))
            return os.path.join(item.folder, name)
    others = [n for n in item.files if not n.endswith(".txt")]
    if item.stem + ".gsm" in others:
        problem = f"only the raw GSM recording {item.stem}.gsm is there"
    elif others:
        problem = "no WAV recording, only " + ", ".join(others)
    else:
        problem = f"no recording: {item.stem}.wav is missing"
    raise UmsError(f"{problem}; ums takes WAV (add wav to format= in voicemail.conf)")


def require_regular_file(path: str) -> None:
    """Refuse PATH when it is a link, a folder or a device."""
    if not stat.S_ISREG(os.lstat(path).st_mode):
        raise UmsError(f"{os.path.basename(path)} is not a regular file")


def delete_item(item: VoicemailItem) -> None:
    """Delete the files of ITEM, the message file last."""
    for name in ordered_files(item):
        os.unlink(os.path.join(item.folder, name))


def move_item(item: VoicemailItem, done_dir: str) -> str:
    """Move the files of ITEM to DONE_DIR/context/mailbox/; return that folder.

    A name already taken there gets a suffix (``msg0000.1.txt``), since
    Asterisk reuses message numbers.
    """
    target = os.path.join(done_dir, item.context, item.mailbox)
    os.makedirs(target, mode=0o700, exist_ok=True)
    stem = free_stem(item, target)
    for name in ordered_files(item):
        new_name = stem + name[len(item.stem) :]
        shutil.move(os.path.join(item.folder, name), os.path.join(target, new_name))
    return target


def ordered_files(item: VoicemailItem) -> list[str]:
    """Return the files of ITEM with the message file last."""
    info = item.stem + ".txt"
    return [n for n in item.files if n != info] + [info]


def free_stem(item: VoicemailItem, target: str) -> str:
    """Return a stem under which none of ITEM's files exists in TARGET."""
    taken = set(os.listdir(target))
    suffixes = [name[len(item.stem) :] for name in item.files]
    stem, count = item.stem, 0
    while any(stem + suffix in taken for suffix in suffixes):
        count += 1
        stem = f"{item.stem}.{count}"
    return stem
