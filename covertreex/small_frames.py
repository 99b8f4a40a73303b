"""Pickling in pieces small enough to land in plain pages: how an index travels to Dask workers.

A worker receives every out-of-band buffer of a message into a fresh NumPy buffer of its own (Dask's
``host_array``), and NumPy asks the kernel for transparent huge pages on any buffer of 4 MiB or more; a buffer
larger than Dask's shard size (``distributed.comm.shard``, 64 MiB) also travels in shards that the receiver
copies into one more such buffer. On this project's virtual machine fresh huge pages fault in slowly (0.25 s
per 128 MB against 0.04 s for small pages, docs/vecchia.md), so a 128 MB V cost 256 MB of them per worker.

:func:`reduce_in_pieces` pickles a value's arrays out of band (protocol 5, no copy) and hands each buffer
larger than a shard (:data:`SPLIT_ABOVE`) to the outer pickler in pieces of at most :data:`PIECE_BYTES`, so
no receiving buffer of such an array asks for huge pages and none is sharded; :func:`rebuild` copies the
pieces of each into one anonymous private memory map (page-aligned, returned to the system when the last
array over it is freed). A worker thus writes each byte of V twice in small pages, where it wrote it twice
in huge pages before. (Small pages where the kernel's THP mode is ``madvise`` or ``never``; under
``always`` any large mapping may get huge pages.) Smaller buffers travel whole, as Dask would send them.

The inner pickling is the standard library's: a value that only cloudpickle could pickle (a lambda, a class
defined in ``__main__``) cannot travel this way.
"""

from __future__ import annotations

import mmap
import pickle

PIECE_BYTES = 2 << 20
"""Largest piece a buffer travels in: below NumPy's 4 MiB huge-page threshold and Dask's shard size."""

SPLIT_ABOVE = 64 << 20
"""Buffers up to this size travel whole, one frame that Dask receives without a copy; larger ones, which
Dask would cut into shards of this size (``distributed.comm.shard``'s default) and copy back into one more
buffer, travel in pieces. The scatter of a Dask index to 2 local workers (2026-12-03, this project's VM):
N = 8,192 (V 32 MB) took 0.06-0.16 s whole against 0.11-0.14 s in pieces; N = 32,768 (V 128 MB) took
0.21-0.74 s whole against 0.29-0.38 s in pieces."""


def _plain_pages(nbytes: int) -> mmap.mmap:
    """An anonymous private map of `nbytes`, its pages faulted in by the kernel at once where it can
    (Linux's MAP_POPULATE: joining 128 MB took 0.051 s against 0.064 s faulting page by page, 2026-12-03
    on this project's VM). Windows has no flags: its anonymous maps are private to the process."""
    if not hasattr(mmap, "MAP_PRIVATE"):
        return mmap.mmap(-1, nbytes)
    flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | getattr(mmap, "MAP_POPULATE", 0)
    return mmap.mmap(-1, nbytes, flags=flags)


def reduce_in_pieces(constructor, args: tuple, protocol: int, split_above: int | None = None):
    """A ``__reduce_ex__`` value that rebuilds ``constructor(*args)``, sending every contiguous buffer
    of `args` larger than `split_above` (default :data:`SPLIT_ABOVE`) in pieces of at most
    :data:`PIECE_BYTES`, the others whole (in-band, the plain reduction, below protocol 5)."""
    if protocol < 5:
        return constructor, args
    split_above = max(0, SPLIT_ABOVE if split_above is None else split_above)  # an empty buffer is whole
    buffers: list[pickle.PickleBuffer] = []
    header = pickle.dumps(args, protocol=5, buffer_callback=buffers.append)
    layout, pieces = [], []
    for buffer in buffers:
        raw = buffer.raw()
        split = raw.nbytes > split_above
        layout.append((raw.nbytes, split))
        if not split:
            pieces.append(buffer)
            continue
        pieces.extend(pickle.PickleBuffer(raw[start:start + PIECE_BYTES])
                      for start in range(0, raw.nbytes, PIECE_BYTES))
    return rebuild, (constructor, header, tuple(layout), *pieces)


def rebuild(constructor, header: bytes, layout: tuple, *pieces):
    """Join each split buffer's pieces in a memory map of its own, take each whole one as it came, and
    unpickle `constructor`'s arguments over them (the arrays are views of that memory; NumPy keeps each
    array's own write flag)."""
    buffers, position = [], 0
    for nbytes, split in layout:
        if not split:
            if position == len(pieces) or memoryview(pieces[position]).nbytes != nbytes:
                raise pickle.UnpicklingError(f"a buffer of {nbytes} bytes did not come whole")
            buffers.append(pieces[position])
            position += 1
            continue
        memory = memoryview(_plain_pages(nbytes))
        filled = 0
        while filled < nbytes:
            if position == len(pieces):
                raise pickle.UnpicklingError(f"a buffer of {nbytes} bytes lacks its last {nbytes - filled}")
            piece = memoryview(pieces[position]).cast("B")
            if filled + piece.nbytes > nbytes:
                raise pickle.UnpicklingError(f"a piece overruns its buffer of {nbytes} bytes")
            memory[filled:filled + piece.nbytes] = piece
            filled += piece.nbytes
            position += 1
        buffers.append(memory)
    if position != len(pieces):
        raise pickle.UnpicklingError(f"pieces left over after the last buffer: {len(pieces) - position}")
    return constructor(*pickle.loads(header, buffers=buffers))
