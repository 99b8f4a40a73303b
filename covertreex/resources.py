"""What this machine has: memory and CPUs, so absurd requests are clear errors instead of storms.

Sizes chosen by a caller or read from a file header are checked against the available memory before
anything is allocated (instead of a MemoryError, an abort or a machine driven into swap), and thread
counts against the CPUs this process may run on (instead of thousands of OS threads).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from covertreex.errors import InvalidInputError, KOutOfRangeError


def available_bytes() -> int:
    """Memory the process can still get: the least of MemAvailable (Linux; else the machine's physical
    memory), its container's memory limit less the container's usage (:func:`_cgroup_headroom`) and its
    address-space limit (``ulimit -v``) less the address space it holds, neither of which MemAvailable
    shows: under them an allocation that MemAvailable allows fails, and in the rust extension aborts."""
    limits = [_machine_available(), _cgroup_headroom(), _address_space_headroom()]
    return min(limit for limit in limits if limit is not None)


def _machine_available() -> int:
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


_CGROUP_FILES = (("memory.max", "memory.current", "memory.stat", "inactive_file"),  # cgroup v2
                 ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes", "memory/memory.stat",
                  "total_inactive_file"))  # cgroup v1
"""(limit, usage, statistics file, its reclaimable page cache entry) under /sys/fs/cgroup, as a container
sees its own group (the mount's root)."""


def _cgroup_headroom(root: str = "/sys/fs/cgroup") -> int | None:
    """The container's memory limit less what it uses, or None where no limit is set or none is readable.
    Its usage counts the page cache, which the kernel drops before it runs out: the inactive part is not
    counted (a container that had read a 7 GB file out of 8 GB refused a 0.5 GB answer otherwise)."""
    for limit_file, usage_file, stat_file, cache_key in _CGROUP_FILES:
        try:
            with open(os.path.join(root, limit_file), encoding="ascii") as fh:
                limit = fh.read().strip()
            with open(os.path.join(root, usage_file), encoding="ascii") as fh:
                usage = int(fh.read())
            if limit == "max" or int(limit) >= 1 << 60:  # v1 writes "no limit" as a huge number
                return None
            return max(0, int(limit) - usage + _stat(os.path.join(root, stat_file), cache_key))
        except (OSError, ValueError):
            continue
    return None


def _stat(path: str, key: str) -> int:
    """The value of `key` in a cgroup's memory.stat, 0 where it cannot be read."""
    try:
        with open(path, encoding="ascii") as fh:
            return next((int(value) for name, value in (line.split() for line in fh) if name == key), 0)
    except (OSError, ValueError):
        return 0


def _address_space_headroom() -> int | None:
    """RLIMIT_AS (``ulimit -v``) less the address space the process holds (VmSize), or None without one."""
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft == resource.RLIM_INFINITY:
            return None
        with open("/proc/self/status", encoding="ascii") as fh:
            held = next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmSize:"))
        return max(0, soft - held)
    except (ImportError, OSError, ValueError, IndexError, StopIteration):
        return None


ALWAYS_AFFORDABLE = 1 << 26
"""Sizes up to 64 MiB are not checked (no need to read /proc and the cgroup files on every small query)."""


def require_memory(nbytes: int, what: str, error: type[InvalidInputError] = InvalidInputError) -> None:
    """Raise `error` naming `what` when `nbytes` exceeds the memory available now."""
    if nbytes <= ALWAYS_AFFORDABLE:
        return
    available = available_bytes()
    if nbytes > available:
        raise error(
            f"{what} needs {nbytes:.3g} bytes, more than the {available:.3g} bytes of memory available"
        )


ANSWER_BYTES = 16
"""Bytes per answer cell: an int64 index and a float64 distance."""

ANSWER_HEADROOM = 2
"""The memory available must hold this many times an answer: the rest is the engine's working memory
(its buffers, threads' stacks and allocator arenas). With all of it allowed, a rust call under an
address-space limit got its 4.8 GB answer and then failed an 8 MB allocation, which aborts the process."""


def require_answer_memory(n_rows: int, k: int) -> None:
    """An answer of `n_rows` rows of k neighbours must fit, :data:`ANSWER_HEADROOM` times over, in the
    memory available: KOutOfRangeError, the same message from every engine and entry point (kneighbors,
    vecchia_neighbors, distributed jobs)."""
    require_memory(ANSWER_HEADROOM * n_rows * k * ANSWER_BYTES,
                   f"k = {k} is too large: the answer ({n_rows} rows of k indices and distances) with as "
                   "much again for the engine's working memory",
                   KOutOfRangeError)


def available_cpus() -> int:
    """CPUs this process may run on: its affinity mask where the OS has one (read on every call: it can
    shrink while the process runs), and no more than the rust extension (when built) allows, which also
    reads CPU quotas, so every engine accepts the same counts."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    limit = _rust_thread_limit(cpus)
    return cpus if limit is None else max(1, min(cpus, limit))


_THREAD_LIMIT: ContextVar[int | None] = ContextVar("covertreex_thread_limit", default=None)


@contextmanager
def thread_limit(threads: int | None) -> Iterator[None]:
    """Run the block's parallel steps outside the engines (V's kernel rows and triangular solve, the split
    screen's build, row gathers, the gold maximin pass's pool) on at most `threads` threads, as the
    ``threads`` knob runs the engines: without it they took every core while a caller asked for one.
    None adds no limit; a limit inside another keeps the smaller. `threads` is checked by the caller (the
    knob's rule). Held per thread and per asyncio task (a contextvars.ContextVar), so concurrent calls
    keep their own; a pool's worker threads do not inherit it, so the pools size themselves by
    :func:`worker_threads` when made, and no task they run reads it. The engines take the ``threads``
    knob, not this limit."""
    outer = _THREAD_LIMIT.get()
    if threads is None or (outer is not None and outer <= threads):
        yield
        return
    token = _THREAD_LIMIT.set(threads)
    try:
        yield
    finally:
        _THREAD_LIMIT.reset(token)


def limited_threads() -> int | None:
    """The :func:`thread_limit` in force here (None: none, every core the process may use)."""
    return _THREAD_LIMIT.get()


def worker_threads() -> int:
    """Threads a parallel step here may start: the CPUs this process may use, at most the
    :func:`thread_limit` in force."""
    cpus, limit = available_cpus(), _THREAD_LIMIT.get()
    return cpus if limit is None else max(1, min(cpus, limit))


@functools.cache
def _rust_thread_limit(affinity: int) -> int | None:
    """The extension's limit, read once per size of the affinity mask: it reads the cgroup quota files
    (about 40 us a call), and a quota that changes later is still refused by the extension itself, but its
    count includes the mask, which may grow (read once, a process started on one CPU refused 2 threads
    after it was allowed two)."""
    try:
        from covertreex import _rust
    except ImportError:
        return None
    limit = getattr(_rust, "available_threads", None)  # absent from extensions built before it
    return None if limit is None else limit()


def require_importable_numba_threads() -> None:
    """NUMBA_NUM_THREADS of 0 or below makes `import numba` itself fail with an error that does not name
    the variable; refused here, before anything imports Numba (it reads nothing else)."""
    value = os.environ.get("NUMBA_NUM_THREADS", "").strip()
    try:
        workers = int(value)
    except ValueError:  # unset, or not a number: Numba warns and uses its default
        return
    if workers < 1:
        raise InvalidInputError(f"NUMBA_NUM_THREADS = {value} must be at least 1; unset it or raise it")


def require_sane_numba_threads() -> None:
    """Numba starts NUMBA_NUM_THREADS workers at its first parallel call; an explicit value above the
    CPUs (say 100000) would be a thread storm, so it is refused before any parallel kernel runs."""
    if not os.environ.get("NUMBA_NUM_THREADS"):
        return
    import numba

    workers, cpus = numba.config.NUMBA_NUM_THREADS, available_cpus()
    if workers > cpus:
        raise InvalidInputError(
            f"NUMBA_NUM_THREADS = {workers} is more than the {cpus} CPUs this process may use; unset it "
            "or lower it"
        )
