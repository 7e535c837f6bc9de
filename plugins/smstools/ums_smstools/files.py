"""Files in smsd's folders and the plugin's own: read safely, write atomically."""

from __future__ import annotations

import errno
import hashlib
import os
import stat

from .fileformat import SmsFileError

MAX_FILE_BYTES = 64 * 1024


def read_spool_file(path: str, limit: int = MAX_FILE_BYTES) -> bytes:
    """Return the content of the regular file PATH; refuse links, devices, huge ones."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise SmsFileError(
                "a symbolic link: ums reads only regular files"
            ) from None
        raise SmsFileError(f"cannot read it: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise SmsFileError("not a regular file")
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise SmsFileError(
            f"{max(info.st_size, len(data))} bytes is too large for an SMS file"
            f" (at most {limit})"
        )
    return data


def fsync_dir(path: str) -> None:
    """Make a rename in folder PATH durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durably(path: str, data: bytes, mode: int | None = None) -> None:
    """Write DATA to PATH and fsync it; MODE sets the permissions despite the umask."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as handle:
        if mode is not None:
            os.fchmod(handle.fileno(), mode)
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def write_atomically(path: str, data: bytes, tmp: str = "", mode=None) -> None:
    """Write DATA to PATH by way of TMP (fsynced, renamed): all or nothing."""
    tmp = tmp or path + ".tmp"
    write_durably(tmp, data, mode)
    os.replace(tmp, path)
    fsync_dir(os.path.dirname(path) or ".")


def move_into(path: str, folder: str, data: bytes) -> str:
    """Move PATH (whose content is DATA) into FOLDER under a free name; return it.

    On another file system the content is written there durably first and
    only then is PATH removed.
    """
    os.makedirs(folder, mode=0o700, exist_ok=True)
    target = free_name(folder, os.path.basename(path), data)
    try:
        os.rename(path, target)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        write_atomically(target, data)
        os.unlink(path)
    fsync_dir(folder)
    fsync_dir(os.path.dirname(path) or ".")
    return target


def free_name(folder: str, name: str, data: bytes) -> str:
    """Return a path in FOLDER for NAME that no file has yet."""
    target = os.path.join(folder, name)
    suffix = hashlib.sha256(data).hexdigest()[:12]
    count = 0
    while os.path.lexists(target):
        count += 1
        target = os.path.join(folder, f"{name}.{suffix}.{count}")
    return target


def remove_file(path: str) -> None:
    """Delete PATH durably."""
    os.unlink(path)
    fsync_dir(os.path.dirname(path) or ".")
