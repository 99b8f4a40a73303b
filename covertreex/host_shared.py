"""An index handed to the Dask workers on this machine through one memory file, not a socket.

A LocalCluster's workers run on the client's machine, yet Dask sends each its own copy of the index
through local TCP: at N = 32,768 two copies of about 155 MB took 0.35-0.42 s, 18-21% of the single
process's query (docs/benchmarks.md). Here the client writes the index's arrays once into an anonymous
memory file (``memfd_create``) and sends a worker that can open that file only the pickle's opcodes and the
file's path, ``/proc/<client pid>/fd/<descriptor>``: the worker maps the file copy-on-write
(:func:`attach`), so every worker on the machine reads the same pages and the arrays keep their write
flags (a write lands in a private page, never in the file).

Which workers see the file is asked, not guessed from addresses (:func:`sharing`): the file begins with a
random token, and a worker shares it only when the path names the same regular file (device and inode,
checked before the path is opened: in another container's process table it names another process's
descriptor, maybe a pipe) and it reads that token back. A worker on another machine, in another
container or under another user thus gets its copy through the socket, as before; so does every worker
where Linux's memory files or ``/proc`` are missing, or memory is short. Once written, the file is sealed:
no process may change it under the workers' maps.

The file has no name in any file system: it lives while the client holds its descriptor (the copies
being made) and any worker maps it. Dask unpickles a scattered value when it arrives, before the scatter
returns, so each worker has mapped the file by then; closed, its pages stay until the last worker drops
its copy. A client killed during the copies leaves nothing behind (a file in ``/dev/shm``, as this module
wrote until 2026-12-08, stayed until someone removed it), and a container's ``/dev/shm`` (64 MiB under
Docker) no longer limits the index that can be shared.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import pickle
import secrets
import stat
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from covertreex.resources import available_bytes

SUPPORTED = hasattr(os, "memfd_create") and hasattr(fcntl, "F_ADD_SEALS") and Path("/proc/self/fd").is_dir()
"""Whether this system makes memory files other processes can open by a path, and seals them (Linux)."""

SEALS = (fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SEAL) if SUPPORTED else 0
"""The file's seals once written: no size change, no write, no other seal (a worker's copy-on-write map is
still allowed), so that no process of this user can change the file under the workers' maps."""

SHARED_ABOVE = 8 << 20
"""An index whose arrays hold fewer bytes travels through the socket to every worker: its copies take
milliseconds either way (docs/benchmarks.md)."""

ROOM_TO_SPARE = 64 << 20
"""Bytes of memory that must stay available beyond the file (:func:`covertreex.resources.available_bytes`):
a memory file has no size limit of its own, and filling the memory would wake the kernel's OOM killer."""

TOKEN_BYTES = 16


@dataclass(frozen=True)
class Published:
    """A value's pickle whose buffers wait in the file at `path`, the regular file `identity` (device, inode):
    unpickled, it is the value again, its arrays over a copy-on-write map of that file (:func:`attach`)."""

    path: str
    token: bytes
    identity: tuple[int, int]
    constructor: object
    header: bytes
    spans: tuple[tuple[int, int], ...]

    def __reduce__(self):
        return attach, (self.path, self.token, self.identity, self.constructor, self.header, self.spans)


def attach(path: str, token: bytes, identity: tuple[int, int], constructor, header: bytes,
           spans: tuple[tuple[int, int], ...]):
    """``constructor(*args)``, the args unpickled from `header` over the buffers at `spans` (offset, bytes)
    of the file at `path`, mapped copy-on-write; the file must be the regular file `identity` and begin
    with `token` (an UnpicklingError otherwise: the file was not this value's)."""
    descriptor = _opened(path, identity, token)
    if descriptor is None:
        raise pickle.UnpicklingError(f"{path} does not hold the index it was written for")
    try:
        end = max((offset + nbytes for offset, nbytes in spans), default=0)
        memory = memoryview(mmap.mmap(descriptor, end, access=mmap.ACCESS_COPY)) if end else None
    finally:
        os.close(descriptor)
    buffers = [memory[offset:offset + nbytes] for offset, nbytes in spans]
    return constructor(*pickle.loads(header, buffers=buffers))


def sees(path: str, token: bytes, identity: tuple[int, int]) -> bool:
    """Whether this process finds the regular file `identity` at `path`, reads `token` at its start and can
    map it as :func:`attach` will (run on a worker)."""
    descriptor = _opened(path, identity, token)
    if descriptor is None:
        return False
    try:
        mmap.mmap(descriptor, len(token), access=mmap.ACCESS_COPY).close()
        return True
    except (OSError, ValueError):
        return False
    finally:
        os.close(descriptor)


def _opened(path: str, identity: tuple[int, int], token: bytes) -> int | None:
    """A read-only descriptor of the file at `path` if it is the regular file `identity` and begins with
    `token`, else None. The path is checked before it is opened: ``/proc/<pid>/fd/<n>`` names whatever that
    process holds as descriptor n, here or in another container's process table, and opening and reading a
    pipe there could take its data or block for good (a review). Checked again once opened, as the
    descriptor may have changed meanwhile."""
    try:
        if not _is(os.stat(path), identity):
            return None
        descriptor = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if _is(os.fstat(descriptor), identity) and os.pread(descriptor, len(token), 0) == token:
            return descriptor
    except OSError:
        pass
    os.close(descriptor)
    return None


def _is(stats: os.stat_result, identity: tuple[int, int]) -> bool:
    """Whether `stats` are those of the regular file `identity` (device, inode)."""
    return stat.S_ISREG(stats.st_mode) and (stats.st_dev, stats.st_ino) == identity


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
        stats = os.fstat(descriptor)
        identity = (stats.st_dev, stats.st_ino)
        try:
            _write_all(descriptor, token, 0)
            seen = client.run(sees, path, token, identity, workers=workers, on_error="return")
            local = {worker for worker, answer in seen.items() if answer is True}
            for raw, (offset, _) in zip(raws, spans, strict=True) if local else ():
                _write_all(descriptor, raw, offset)
            if local:  # nobody, this user's other programs included, may change it under the maps now
                fcntl.fcntl(descriptor, fcntl.F_ADD_SEALS, SEALS)
        except OSError:  # the memory went (ENOSPC, ENOMEM), or no seals: every copy through the socket
            local = set()
        published = Published(path, token, identity, constructor, header, tuple(spans))
        yield {worker: published if worker in local else value for worker in workers}
    finally:
        os.close(descriptor)


def _created() -> tuple[int, str] | None:
    """(descriptor, path) of a new memory file that other processes of this user may open by the path,
    or None where none can be made. Not inherited by child processes (close-on-exec)."""
    if not SUPPORTED:
        return None
    try:
        descriptor = os.memfd_create("covertreex-index", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
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
