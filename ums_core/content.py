"""Content files in the instance: written durably, named by the core."""

from __future__ import annotations

import datetime as dt
import errno
import hashlib
import os
import secrets
import shutil
import threading

import attrs

from .errors import NoSpaceError, UmsError

CHUNK = 1 << 20
_FOLDER_LOCK = threading.Lock()
NO_SPACE = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)


@attrs.frozen
class StoredFile:
    """A file the core wrote: its name relative to the instance, size, digest."""

    name: str
    size: int
    sha256: str


def fsync_dir(path: str) -> None:
    """Make a rename in folder PATH durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_folders(path: str) -> None:
    """Create folder PATH and the parents it lacks, each one durably.

    A new folder is an entry in its parent, so the parent is fsynced after
    each one made. Without that a power failure may lose a new day's folder
    with every fsynced file in it (ext4 and XFS commit the mkdir with the
    file's fsync; other file systems need not).
    """
    # Threads making folders hold the lock until each is synced, so a folder
    # another thread sees is synced already. (A folder another process has
    # just made may still be seen before its parent is synced.)
    with _FOLDER_LOCK:
        _make_folders(path)


def _make_folders(path: str) -> None:
    if os.path.isdir(path):
        return
    parent = os.path.dirname(path)
    if parent and parent != path:
        _make_folders(parent)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        # Made by another process, which may not have synced the parent yet.
        if not os.path.isdir(path):
            message = f"{path} is in the way: it is not a folder"
            raise NotADirectoryError(errno.ENOTDIR, message) from None
    fsync_dir(parent or os.curdir)


def new_name(area: str, extension: str, now: dt.datetime | None = None) -> str:
    """Return a fresh relative name such as content/2026/12/04/ab12….tif."""
    now = now or dt.datetime.now(dt.UTC)
    token = secrets.token_hex(8)
    return os.path.join(area, now.strftime("%Y/%m/%d"), token + extension)


def store_file(
    home: str, area: str, source: str, extension: str, sync_folder: bool = True
) -> StoredFile:
    """Copy SOURCE into the instance durably (temp name, fsync, rename).

    Without SYNC_FOLDER the caller fsyncs the folder (see folder_of), once
    for a group of files, before it commits them.
    """
    name = new_name(area, extension)
    with open(source, "rb") as handle:
        return _write_stream(home, name, handle, sync_folder)


def folder_of(home: str, stored: StoredFile) -> str:
    """Return the folder that holds the stored file."""
    return os.path.dirname(os.path.join(home, stored.name))


def store_bytes(home: str, area: str, data: bytes, extension: str) -> StoredFile:
    """Write DATA into the instance durably; return what was written."""
    return store_chunks(home, area, [data], extension)


def store_chunks(home: str, area: str, chunks, extension: str) -> StoredFile:
    """Write the byte strings CHUNKS, one after the other, into the instance."""
    return _write_chunks(home, new_name(area, extension), iter(chunks))


def _write_stream(home: str, name: str, stream, sync_folder=True) -> StoredFile:
    chunks = iter(lambda: stream.read(CHUNK), b"")
    return _write_chunks(home, name, chunks, sync_folder)


def _write_chunks(home: str, name: str, chunks, sync_folder=True) -> StoredFile:
    final = os.path.join(home, name)
    folder = os.path.dirname(final)
    tmp = final + ".part"
    digest = hashlib.sha256()
    size = 0
    try:
        make_folders(folder)
        with open(tmp, "xb") as out:
            for chunk in chunks:
                digest.update(chunk)
                size += len(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, final)
        if sync_folder:
            fsync_dir(folder)
    except OSError as exc:
        _remove_quietly(tmp)
        if exc.errno in NO_SPACE:
            raise NoSpaceError(
                f"no space to write {name} ({exc.strerror}); nothing was stored",
                hint="free disk space in the instance folder, then try again",
            ) from None
        raise UmsError(f"cannot write {name}: {exc.strerror or exc}") from None
    return StoredFile(name=name, size=size, sha256=digest.hexdigest())


def _remove_quietly(path: str) -> None:
    """Remove the temporary file PATH if there is one (a failed write's)."""
    try:
        os.unlink(path)
    except OSError:
        # Missing, or its folder is the problem the caller reports.
        pass


def export_file(home: str, name: str, target: str) -> None:
    """Copy the instance file NAME to TARGET."""
    shutil.copyfile(os.path.join(home, name), target)
