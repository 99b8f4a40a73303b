"""An index handed to the Dask workers on this machine through one file in shared memory, not a socket.

A LocalCluster's workers run on the client's machine, yet Dask sends each its own copy of the index
through local TCP: at N = 32,768 two copies of about 155 MB took 0.35-0.42 s, 18-21% of the single
process's query (docs/benchmarks.md). Here the client writes the index's arrays once into a file in
``/dev/shm`` and sends a worker that can open that file only the pickle's opcodes and the file's name: the
worker maps the file copy-on-write (:func:`attach`), so every worker on the machine reads the same pages
and the arrays keep their write flags (a write lands in a private page, never in the file).

Which workers see the file is asked, not guessed from addresses (:func:`sharing`): the file begins with a
random token, and a worker shares it only when it opens the path and reads that token back. A worker on
another machine, in another container or under another user reads nothing there and gets its copy through
the socket, as before; so does every worker when ``/dev/shm`` is missing or lacks the room.

The file lives only while the copies are made. Dask unpickles a scattered value when it arrives, before
the scatter returns, so each worker has mapped the file by then; unlinked, its pages stay until the last
worker drops its copy. A client killed during the copies leaves the file behind (``covertreex-*`` in
``/dev/shm``).
"""

from __future__ import annotations

import mmap
import os
import pickle
import secrets
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SHARED_DIR = Path("/dev/shm")
"""Linux's shared-memory file system: files there are memory, never written to a disk."""

SHARED_ABOVE = 8 << 20
"""An index whose arrays hold fewer bytes travels through the socket to every worker: its copies take
milliseconds either way (docs/benchmarks.md)."""

ROOM_TO_SPARE = 64 << 20
"""Bytes ``/dev/shm`` must keep free beyond the file: other programs use it too."""

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
    the others. The file is removed when the block ends."""
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
        except OSError:  # the room went meanwhile (ENOSPC): every copy through the socket
            local = set()
        published = Published(path, token, constructor, header, tuple(spans))
        yield {worker: published if worker in local else value for worker in workers}
    finally:
        os.close(descriptor)
        os.unlink(path)


def _created() -> tuple[int, str] | None:
    """(descriptor, path) of a new file in ``/dev/shm`` only this user may read, or None where none can be
    made."""
    try:
        return tempfile.mkstemp(prefix="covertreex-", dir=SHARED_DIR)
    except OSError:
        return None


def _room_for(nbytes: int) -> bool:
    """Whether ``/dev/shm`` exists and has `nbytes` free beyond :data:`ROOM_TO_SPARE`."""
    try:
        stats = os.statvfs(SHARED_DIR)
    except OSError:
        return False
    return stats.f_bavail * stats.f_frsize >= nbytes + ROOM_TO_SPARE


def _write_all(descriptor: int, data, offset: int) -> None:
    """Write all of `data` at `offset` (pwrite may write less than asked)."""
    view = memoryview(data).cast("B")
    while view.nbytes:
        written = os.pwrite(descriptor, view, offset)
        view, offset = view[written:], offset + written
