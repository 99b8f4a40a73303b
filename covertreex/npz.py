"""Read named arrays from an .npz archive, checking every member's header before allocating its array.

NumPy allocates whatever a member's header claims before reading the data, so a damaged or hostile
header (say 1e11 elements) would try to allocate hundreds of GiB. Here the claimed size must equal the
bytes the member holds and fit in the available memory, and every problem is a CorruptFileError naming
the file and the member.
"""

from __future__ import annotations

import math
import zipfile
import zlib
from pathlib import Path

import numpy as np
from numpy.lib import format as npy

from covertreex.errors import CorruptFileError
from covertreex.resources import require_memory

_HEADER_READERS = {(1, 0): npy.read_array_header_1_0, (2, 0): npy.read_array_header_2_0}


def _claimed_bytes(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path, name: str) -> int:
    """The data size member `name`'s header claims, checked against the bytes the member holds."""
    with archive.open(info) as fh:
        version = npy.read_magic(fh)
        if version not in _HEADER_READERS:
            raise CorruptFileError(f"{path}: member {name!r} has unsupported .npy version {version}")
        shape, _, dtype = _HEADER_READERS[version](fh)
        header = fh.tell()
    if dtype.hasobject:
        raise CorruptFileError(f"{path}: member {name!r} holds Python objects (dtype {dtype})")
    claimed = math.prod(shape) * dtype.itemsize
    if header + claimed != info.file_size:
        raise CorruptFileError(
            f"{path}: member {name!r} claims shape {shape} of {dtype} ({claimed} bytes) but holds "
            f"{info.file_size - header} bytes of data"
        )
    return claimed


def read_arrays(path, names, what: str = ".npz file") -> dict[str, np.ndarray]:
    """The members `names` of the archive at `path` (a `what`, in errors), each read only after its
    header checks out."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            infos = {}
            for name in names:
                try:
                    infos[name] = archive.getinfo(f"{name}.npy")
                except KeyError:
                    raise CorruptFileError(f"{path}: no member {name!r}") from None
            total = sum(_claimed_bytes(archive, info, path, name) for name, info in infos.items())
            require_memory(total, f"{path}: reading the arrays", CorruptFileError)
            arrays = {}
            for name, info in infos.items():
                with archive.open(info) as fh:
                    arrays[name] = npy.read_array(fh, allow_pickle=False)
            return arrays
    except CorruptFileError:
        raise
    except (OSError, ValueError, EOFError, NotImplementedError, zlib.error, zipfile.BadZipFile,
            zipfile.LargeZipFile) as exc:
        raise CorruptFileError(f"{path}: not a readable {what} ({exc})") from exc
