"""An index handed to the Dask workers on this machine through one memory file, not a socket.

A LocalCluster's workers run on the client's machine, yet Dask sends each its own copy of the index
through local TCP: at N = 32,768 two copies of about 155 MB took 0.35-0.42 s, 18-21% of the single
process's query (docs/benchmarks.md). Here the client writes the index's arrays once into an anonymous
memory file (``memfd_create``) and sends a worker that can open that file only the pickle's opcodes and the
file's path, ``/proc/<client pid>/fd/<descriptor>``: the worker maps the file copy-on-write
(:func:`attach`), so every worker on the machine reads the same pages and the arrays keep their write
flags (a write lands in a private page, never in the file).

Which workers see the file is asked, not guessed from addresses (:func:`sharing`): the file begins with a
random token, and a worker shares it only when it opens the path and reads that token back. A worker on
another machine, in another container (another process table) or under another user reads nothing there
and gets its copy through the socket, as before; so does every worker where Linux's memory files or
``/proc`` are missing, or memory is short.

The file has no name in any file system: it lives while the client holds its descriptor (the copies
being made) and any worker maps it. Dask unpickles a scattered value when it arrives, before the scatter
returns, so each worker has mapped the file by then; closed, its pages stay until the last worker drops
its copy. A client killed during the copies leaves nothing behind (a file in ``/dev/shm``, as this module
wrote until 2026-12-08, stayed until someone removed it), and a container's ``/dev/shm`` (64 MiB under
Docker) no longer limits the index that can be shared.
"""

from __future__ import annotations

import mmap
import os
import pickle
import secrets
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from covertreex.resources import available_bytes

SUPPORTED = hasattr(os, "memfd_create") and Path("/proc/self/fd").is_dir()
"""Whether this system makes memory files other processes can open by a path (Linux)."""

SHARED_ABOVE = 8 << 20
"""An index whose arrays hold fewer bytes travels through the socket to every worker: its copies take
milliseconds either way (docs/benchmarks.md)."""

ROOM_TO_SPARE = 64 << 20
"""Bytes of memory that must stay available beyond the file (:func:`covertreex.resources.available_bytes`):
a memory file has no size limit of its own, and filling the memory would wake the kernel's OOM killer."""

TOKEN_BYTES = 16


@dataclass(frozen=True)
class Published:
    """A value's pickle whose buffers wait in the file at `path`: unpickled, it is the value again, its
    arrays over a copy-on-write map of that file (:func:`attach`)."""

    path: str
    token: bytes
    constructor: object
    header: bytes
    spans: tuple[tuple[int, int], ...]

    def __reduce__(self):
        return attach, (self.path, self.token, self.constructor, self.header, self.spans)


def attach(path: str, token: bytes, constructor, header: bytes, spans: tuple[tuple[int, int], ...]):
    """``constructor(*args)``, the args unpickled from `header` over the buffers at `spans` (offset, bytes)
    of the file at `path`, mapped copy-on-write; the file must begin with `token` (an UnpicklingError
    otherwise: the file was not this value's)."""
    with open(path, "rb") as file:
        if file.read(len(token)) != token:
            raise pickle.UnpicklingError(f"{path} does not hold the index it was written for")
        end = max((offset + nbytes for offset, nbytes in spans), default=0)
        memory = memoryview(mmap.mmap(file.fileno(), end, access=mmap.ACCESS_COPY)) if end else None
    buffers = [memory[offset:offset + nbytes] for offset, nbytes in spans]
    return constructor(*pickle.loads(header, buffers=buffers))


def sees(path: str, token: bytes) -> bool:
    """Whether this process finds the file at `path`, reads `token` at its start and can map it as
    :func:`attach` will (run on a worker)."""
    try:
        with open(path, "rb") as file:
            if file.read(len(token)) != token:
                return False
            mmap.mmap(file.fileno(), len(token), access=mmap.ACCESS_COPY).close()
            return True
    except (OSError, ValueError):
        return False


@contextmanager
def sharing(client, workers: list[str], value, constructor, args: tuple):
    """Yield {worker: what to scatter to it}: a :class:`Published` ``constructor(*args)`` for each worker of
    `workers` that sees this process's file, `value` itself (which ``constructor(*args)`` rebuilds) for
    the others. The file is closed when the block ends (a copy unpickled later finds nothing)."""
    buffers: list[pickle.PickleBuffer] = []
    header = pickle.dumps(args, protocol=5, buffer_callback=buffers.append)
    raws = [buffer.raw() for buffer in buffers]
    spans, end = [], TOKEN_BYTES
    for raw in raws:  # each on a page of its own, an empty one where the file ends
        offset = -(-end // mmap.PAGESIZE) * mmap.PAGESIZE if raw.nbytes else end
        spans.append((offset, raw.nbytes))
        end = offset + raw.nbytes
    created = _room_for(end) and end >= SHARED_ABOVE and _created()
    if not created:
        yield dict.fromkeys(workers, value)
        return
    descriptor, path = created
    try:
        token = secrets.token_bytes(TOKEN_BYTES)
        try:
            _write_all(descriptor, token, 0)
            seen = client.run(sees, path, token, workers=workers, on_error="return")
            local = {worker for worker, answer in seen.items() if answer is True}
            for raw, (offset, _) in zip(raws, spans, strict=True) if local else ():
                _write_all(descriptor, raw, offset)
        except OSError:  # the memory went meanwhile (ENOSPC, ENOMEM): every copy through the socket
            local = set()
        published = Published(path, token, constructor, header, tuple(spans))
        yield {worker: published if worker in local else value for worker in workers}
    finally:
        os.close(descriptor)


def _created() -> tuple[int, str] | None:
    """(descriptor, path) of a new memory file that other processes of this user may open by the path,
    or None where none can be made. Not inherited by child processes (close-on-exec)."""
    if not SUPPORTED:
        return None
    try:
        descriptor = os.memfd_create("covertreex-index", os.MFD_CLOEXEC)
    except OSError:
        return None
    return descriptor, f"/proc/{os.getpid()}/fd/{descriptor}"


def _room_for(nbytes: int) -> bool:
    """Whether memory for `nbytes` more stays available beyond :data:`ROOM_TO_SPARE`."""
    return available_bytes() >= nbytes + ROOM_TO_SPARE


def _write_all(descriptor: int, data, offset: int) -> None:
    """Write all of `data` at `offset` (pwrite may write less than asked)."""
    view = memoryview(data).cast("B")
    while view.nbytes:
        written = os.pwrite(descriptor, view, offset)
        view, offset = view[written:], offset + written
