"""How much memory an allocation may take: sizes chosen by a caller or read from a file header are checked
against the memory this machine has before anything is allocated, so an absurd size is a clear error
instead of a MemoryError, an abort or a machine driven into swap."""

from __future__ import annotations

import os

from covertreex.errors import InvalidInputError


def available_bytes() -> int:
    """Memory the process can still get: MemAvailable (Linux), else the machine's physical memory."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 62


def require_memory(nbytes: int, what: str, error: type[InvalidInputError] = InvalidInputError) -> None:
    """Raise `error` naming `what` when `nbytes` exceeds the memory available now."""
    available = available_bytes()
    if nbytes > available:
        raise error(
            f"{what} needs {nbytes:.3g} bytes, more than the {available:.3g} bytes of memory available"
        )
