"""Read named arrays from an .npz archive (or one .npy file), checking every header before allocating its
array; write an archive so that a failed write leaves the file it replaces intact.

NumPy allocates whatever a member's header claims before reading the data, so a damaged or hostile
header (say 1e11 elements) would try to allocate hundreds of GiB. Here the claimed size must equal the
bytes the member holds and fit in the available memory, and every problem is a CorruptFileError naming
the file and the member.
"""

from __future__ import annotations

import io
import math
import os
import stat
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import numpy as np
from numpy.lib import format as npy

from covertreex.errors import CorruptFileError
from covertreex.resources import available_bytes, require_memory
from covertreex.whole_files import write_whole

_HEADER_READERS = {(1, 0): npy.read_array_header_1_0, (2, 0): npy.read_array_header_2_0,
                   (3, 0): npy.read_array_header_2_0}
"""Version 3.0 lays its header out as 2.0 does, only UTF-8 encoded (for unicode field names); a numeric
array's header is ASCII, which both read alike (NumPy has no public 3.0 reader)."""


def _claimed_bytes(fh, size: int, where: str) -> tuple[tuple[int, ...], int]:
    """The shape and data size the .npy header at the start of `fh` claims, checked against the `size`
    bytes the file or member holds (`where` names it in errors)."""
    version = npy.read_magic(fh)
    if version not in _HEADER_READERS:
        raise CorruptFileError(f"{where} has unsupported .npy version {version}")
    shape, _, dtype = _HEADER_READERS[version](fh)
    header = fh.tell()
    if dtype.hasobject:
        raise CorruptFileError(f"{where} holds Python objects (dtype {dtype})")
    claimed = math.prod(shape) * dtype.itemsize
    if header + claimed != size:
        raise CorruptFileError(
            f"{where} claims shape {shape} of {dtype} ({claimed} bytes) but holds {size - header} bytes of "
            "data"
        )
    return shape, claimed


def read_npy(path, what: str) -> np.ndarray:
    """The array in the .npy file at `path` (`what` names it in errors), read only after its header
    checks out: a header claiming more than the file holds, or than memory holds, is a CorruptFileError
    naming the file, never a huge allocation."""
    path = Path(path)
    try:
        with open(path, "rb") as raw:
            fh, size = _seekable(raw, path)
            _, claimed = _claimed_bytes(fh, size, f"{path} ({what})")
            require_memory(claimed, f"{path}: reading {what}", CorruptFileError)
            fh.seek(0)
            return npy.read_array(fh, allow_pickle=False)
    except CorruptFileError:
        raise
    except (ValueError, EOFError) as exc:
        reason = " ".join(str(exc).split())
        raise CorruptFileError(f"{path}: cannot read {what} ({reason})") from None


def read_arrays(path, names, what: str = ".npz file",
                shapes_problem: Callable[[dict[str, tuple[int, ...]]], str] | None = None,
                source: BinaryIO | None = None) -> dict[str, np.ndarray]:
    """The members `names` of the archive at `path` (a `what`, in errors), each read only after its
    header checks out, and all of them only when `shapes_problem` (given the shapes the headers claim)
    finds none: a compressed member can claim a gigabyte of zeros in a kilobyte, within the memory
    available but out of all proportion to the others. A file that cannot be opened raises what `open`
    raises (FileNotFoundError, IsADirectoryError, PermissionError, naming the path); one that opens but is
    no such archive is a CorruptFileError. `source`: the file `path` already :func:`opened` (a pipe can be
    opened only once)."""
    path = Path(path)
    if source is not None:
        return _members(source, path, names, what, shapes_problem)
    with opened(path) as fh:
        return _members(fh, path, names, what, shapes_problem)


@contextmanager
def opened(path) -> Iterator[BinaryIO]:
    """The file at `path`, open for reading, seekable (:func:`_seekable`)."""
    with open(path, "rb") as raw:
        yield _seekable(raw, Path(path))[0]


def _seekable(fh, path: Path) -> tuple[BinaryIO, int]:
    """`fh` and its size in bytes; a pipe's bytes are read into memory first (NumPy's header reader and
    zipfile seek, which a pipe cannot: 'Illegal seek', and 'File is not a zip file' for a valid archive),
    at most the memory available (a pipe that never ends is a CorruptFileError, not an exhausted machine).
    Anything else but a regular file (a device: /dev/zero never ends either) is refused."""
    status = os.fstat(fh.fileno())
    if stat.S_ISREG(status.st_mode):
        return fh, status.st_size
    if not stat.S_ISFIFO(status.st_mode):
        raise CorruptFileError(f"{path} is not a regular file or a pipe")
    most = available_bytes() // 2
    data = fh.read(most + 1)
    if len(data) > most:
        raise CorruptFileError(f"{path}: the pipe holds more than the {most} bytes of memory available")
    return io.BytesIO(data), len(data)


def _members(fh, path: Path, names, what: str, shapes_problem) -> dict[str, np.ndarray]:
    try:
        with zipfile.ZipFile(fh) as archive:
            infos = {}
            for name in names:
                try:
                    infos[name] = archive.getinfo(f"{name}.npy")
                except KeyError:
                    raise CorruptFileError(f"{path}: no member {name!r}") from None
            total, shapes = 0, {}
            for name, info in infos.items():
                with archive.open(info) as member:
                    shapes[name], claimed = _claimed_bytes(member, info.file_size, f"{path}: member {name!r}")
                    total += claimed
            problem = shapes_problem(shapes) if shapes_problem is not None else ""
            if problem:
                raise CorruptFileError(f"{path}: {problem}")
            require_memory(total, f"{path}: reading the arrays", CorruptFileError)
            arrays = {}
            for name, info in infos.items():
                with archive.open(info) as member:
                    arrays[name] = npy.read_array(member, allow_pickle=False)
            return arrays
    except CorruptFileError:
        raise
    except (OSError, ValueError, EOFError, NotImplementedError, zlib.error, zipfile.BadZipFile,
            zipfile.LargeZipFile, RuntimeError) as exc:  # RuntimeError: a member flagged as encrypted
        raise CorruptFileError(f"{path}: not a readable {what} ({exc})") from exc


def write_arrays(path, arrays: dict) -> None:
    """Write `arrays` as the .npz archive `path` all at once or not at all, without turning a link, a
    device or a hard-linked file into a new file (:func:`covertreex.whole_files.write_whole`)."""
    write_whole(path, lambda fh: np.savez(fh, **arrays))
