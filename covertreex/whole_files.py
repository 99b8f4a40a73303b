"""Write a file all at once or not at all, without changing what its path is.

A write that fails (a full disk, a file size limit, Ctrl-C) used to leave a truncated file where the previous
good one was, so a new file is written beside the real target (a symbolic link is followed, and stays a link)
and renamed over it only when complete, with the old file's mode (and owner, where the process may set it).
A rename would change what some paths are, or cannot happen, so those are written in place instead: a device
or a pipe (an outside trial's gate report replaced /dev/full with a regular file), a file with other hard
links (they would keep the old data), a file in a directory that takes no new file, and one the rename is
refused for (a bind-mounted file, another user's file in a sticky directory). A pipe must have a reader: with
none the write fails at once instead of waiting forever. Only the standard library is imported: the
regression gate, which loads none of covertreex's dependencies, writes its baselines and reports through here
too (importing this module at its first write).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

_RENAME_REFUSED = (errno.EBUSY, errno.EPERM, errno.EXDEV, errno.EACCES)
"""Why a rename over a file that could be written in place fails: a bind mount, a sticky directory, another
file system, a directory whose entries this process may not change."""


def write_whole(path, write: Callable[[BinaryIO], None]) -> None:
    """Run `write(fh)` into the file `path` (see the module docstring). An existing file must be writable
    itself (a rename would replace a write-protected one); a new file gets the permissions open() gives
    (0666 less the umask). An OSError names `path` as given."""
    if not os.fspath(path):
        raise FileNotFoundError(errno.ENOENT, "the path is empty", os.fspath(path))
    try:
        target = Path(os.path.realpath(path))
        if os.path.islink(target):  # realpath stops inside a loop of links
            raise OSError(errno.ELOOP, "too many levels of symbolic links")
        existing = target.stat() if target.exists() else None
        if existing is not None and not os.access(target, os.W_OK):
            raise PermissionError(errno.EACCES, "the file is not writable")
        if existing is not None and stat.S_ISFIFO(existing.st_mode):
            _write_to_pipe(target, write)
        elif existing is None or (stat.S_ISREG(existing.st_mode) and existing.st_nlink == 1
                                  and os.access(target.parent, os.W_OK)):
            _write_and_rename(target, write, existing)
        else:
            _write_in_place(target, write)
    except OSError as exc:
        if exc.errno is None:
            raise
        raise type(exc)(exc.errno, exc.strerror or str(exc), os.fspath(path)) from None


def _write_in_place(target: Path, write: Callable[[BinaryIO], None]) -> None:
    """Truncate `target` and write it, flushed to disk where it is a regular file."""
    with open(target, "wb") as fh:
        write(fh)
        fh.flush()
        if stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            os.fsync(fh.fileno())


def _write_to_pipe(target: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write into the pipe `target`, refused at once (ENXIO) when no process reads it."""
    try:
        descriptor = os.open(target, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ENXIO:
            raise OSError(errno.ENXIO, "no process reads the pipe") from None
        raise
    flags = fcntl.fcntl(descriptor, fcntl.F_GETFL)
    fcntl.fcntl(descriptor, fcntl.F_SETFL, flags & ~os.O_NONBLOCK)  # the reader sets the pace from here
    with os.fdopen(descriptor, "wb") as fh:
        write(fh)


def _write_and_rename(target: Path, write: Callable[[BinaryIO], None],
                      existing: os.stat_result | None) -> None:
    """Write a new file beside `target` (with the mode and, where allowed, the owner of the `existing` one
    it replaces), flush it to disk, rename it over `target` (in place where the rename is refused), then
    flush the directory where it can be read, so that the rename survives a crash."""
    temporary = target.with_name(f".pcct-{secrets.token_hex(8)}.tmp")  # short: `target` may be NAME_MAX long
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(descriptor, "wb") as fh:
            if existing is not None:
                os.fchmod(fh.fileno(), stat.S_IMODE(existing.st_mode))
                _keep_owner(fh.fileno(), existing)
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.replace(temporary, target)
        except OSError as exc:
            if existing is None or exc.errno not in _RENAME_REFUSED:
                raise
            temporary.unlink(missing_ok=True)
            _write_in_place(target, write)
            return
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    try:
        directory = os.open(target.parent, os.O_RDONLY)
    except OSError:  # a directory this process may write but not read (a drop box): the rename stands
        return
    try:
        os.fsync(directory)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.EACCES):  # a file system that does not sync directories
            raise
    finally:
        os.close(directory)


def _keep_owner(descriptor: int, existing: os.stat_result) -> None:
    """The replaced file's owner and group on the new one, where this process may set them (root may;
    others may keep their own uid and set a group they belong to)."""
    if (existing.st_uid, existing.st_gid) == (os.geteuid(), os.getegid()):
        return
    with contextlib.suppress(PermissionError):
        os.fchown(descriptor, existing.st_uid, existing.st_gid)
