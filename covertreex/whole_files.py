"""Write a file all at once or not at all, without changing what its path is.

A write that fails (a full disk, a file size limit, Ctrl-C) used to leave a truncated file where the previous
good one was, so a new file is written beside the real target (a symbolic link is followed, and stays a link)
and renamed over it only when complete. A rename would change what some paths are, so those are written in
place instead: a device or a pipe (an outside trial's gate report replaced /dev/full with a regular file), a
file with other hard links (they would keep the old data), or a file in a directory that takes no new file.
Only the standard library is imported: the regression gate, which loads none of covertreex's dependencies,
writes its baselines and reports through here too.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def write_whole(path, write: Callable[[BinaryIO], None]) -> None:
    """Run `write(fh)` into the file `path` (see the module docstring). An existing file must be writable
    itself (a rename would replace a write-protected one); a new file gets the permissions open() gives
    (0666 less the umask), a replaced one keeps its own. An OSError names `path` as given."""
    target = Path(os.path.realpath(path))
    try:
        existing = target.stat() if target.exists() else None
        if existing is not None and not os.access(target, os.W_OK):
            raise PermissionError(errno.EACCES, "the file is not writable")
        if existing is None or (stat.S_ISREG(existing.st_mode) and existing.st_nlink == 1
                                and os.access(target.parent, os.W_OK)):
            _write_and_rename(target, write, existing)
        else:
            with open(target, "wb") as fh:
                write(fh)
    except OSError as exc:
        raise type(exc)(exc.errno, exc.strerror or str(exc), os.fspath(path)) from None


def _write_and_rename(target: Path, write: Callable[[BinaryIO], None],
                      existing: os.stat_result | None) -> None:
    """Write a new file beside `target` (with the permissions of the `existing` one it replaces), flush it
    to disk, rename it over `target`, then flush the directory so that the rename survives a crash."""
    temporary = target.with_name(f".pcct-{secrets.token_hex(8)}.tmp")  # short: `target` may be NAME_MAX long
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(descriptor, "wb") as fh:
            if existing is not None:
                os.fchmod(fh.fileno(), stat.S_IMODE(existing.st_mode))
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    directory = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
