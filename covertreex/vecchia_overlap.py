"""The Euclidean maximin job with its rows answered while the order is still being placed.

The packed boxes place a Euclidean maximin order one point after another, on one thread
(rust/core/src/maximin/farthest.rs), and the predecessor query that finds the rows waited for all of it
while the other cores stayed idle: at N = 10^6 in 3-D the order took 2.7 of the job's 8.9 s. A prefix of
the order is final once placed, and the row of the point at position i depends on positions 0..i-1 alone,
so the rows of positions [a, b) are exact on the points of the first b positions (packed on their own),
bit for bit the rows the query on all N points gives. So the ordering hands over its prefix at the sizes
:func:`prefix_sizes` names (N/2, N/4, ... down to :data:`FIRST_PREFIX`), the job's other threads answer
each prefix's new rows meanwhile, and the rows after the last prefix are answered on every thread once
the order is complete. Which rows are answered on which prefix depends on N alone, and every row is exact,
so the answer is the sequential job's byte for byte, whatever the threads or the timing.

Only the main thread calls the caller's progress callback and runs the queries; the ordering thread only
places points and hands over messages. A failure or Ctrl-C in the main thread stops the ordering at its
next report (every 4,096 placements) before the job ends.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
import time
from collections.abc import Callable

import numpy as np

from covertreex import interrupts

FIRST_PREFIX = 1 << 14
"""The smallest prefix whose rows are answered while the order is placed (chosen, not tuned: a smaller one
holds few rows for its packing and calls; at N = 100,000 the job gained nothing measurable either way)."""


def prefix_sizes(n: int, k: int) -> list[int]:
    """The sizes (ascending) at which the ordering of n points hands over its prefix: n/2, n/4, ... while at
    least :data:`FIRST_PREFIX` and above k (a prefix of k points or fewer has only padded rows). Halving
    keeps the prefixes' packings within one more packing of all n points."""
    sizes = []
    size = n // 2
    while size >= max(FIRST_PREFIX, k + 1):
        sizes.append(size)
        size //= 2
    return sorted(sizes)


class _Cancelled(Exception):
    """Raised in the ordering thread's callbacks once the job ended early: stops the placements."""


ROWS_PER_CALL = 1 << 14
"""Rows of a prefix answered per call while the order is placed: between calls the job looks whether the
order is complete, and answers the rest of the prefix on every thread from then on (answered on one, the
prefix of N/2 points kept a core idle for a second and a half after the order of 10^6 points was done)."""


def ordered_with_rows(points: np.ndarray, first: int, k: int, engine: str, threads: int,
                      report: Callable[[str, int], None], heard: bool, start: float):
    """(order, canonical evaluations of the order, seconds from `start` (a perf_counter reading) until the
    order was complete, indices, distances) of the Euclidean maximin job on `points` from row `first` with
    k neighbours per row, on `threads` threads (at least 2: one places while the others answer).
    `report(stage, n)` hears both stages from this thread; `heard`: whether it listens (the rows after the
    order then come in ranges it hears of)."""
    from covertreex.engines.rust import maximin_order

    n = points.shape[0]
    messages: queue.SimpleQueue = queue.SimpleQueue()
    stopped, finished = threading.Event(), threading.Event()

    def told(kind: str):
        def tell(value) -> None:
            if stopped.is_set():
                raise _Cancelled
            messages.put((kind, value))

        return tell

    def order() -> None:
        try:
            placed = maximin_order(points, first, told("placed"), threads=threads,
                                   prefixes=prefix_sizes(n, k), on_prefix=told("prefix"))
            finished.set()
            messages.put(("order", (*placed, time.perf_counter() - start)))
        except BaseException as exc:  # handed to the main thread, which raises it (or has ended already)
            messages.put(("failed", exc))

    indices, distances = np.empty((n, k), dtype=np.int64), np.empty((n, k))
    done = 0
    worker = threading.Thread(target=order, name="covertreex maximin order", daemon=True)
    try:
        worker.start()  # in the block: a Ctrl-C just after it still stops the ordering
        while True:
            kind, value = _next(messages)
            if kind == "failed":
                raise value
            if kind == "order":
                break
            if kind == "placed":
                report("ordering", value)
            else:
                done = _while_placed(points[value], done, value.shape[0], k, engine, threads, finished,
                                     indices, distances, report)
        order, evaluations, ordering_seconds = value  # its last report ("placed", n) came before
        _after_placed(points[order], done, k, engine, threads, indices, distances, report, heard)
    finally:
        stopped.set()
        if worker.is_alive():
            worker.join()
    return order, evaluations, ordering_seconds, indices, distances


def _next(messages: queue.SimpleQueue):
    """The ordering thread's next message, looking for a held Ctrl-C meanwhile (covertreex.interrupts)."""
    while True:
        try:
            return messages.get(timeout=interrupts.POLL_SECONDS)
        except queue.Empty:
            interrupts.check()


def _index(prefix: np.ndarray, k: int, engine: str, threads: int):
    """The predecessor query of the points `prefix` (covertreex.distributed.prepare) on `threads` threads."""
    from covertreex import distributed

    return distributed.prepare(prefix, k, metric="euclidean", engine=engine, predecessor=True,
                               threads=threads)


def _while_placed(prefix: np.ndarray, start: int, stop: int, k: int, engine: str, threads: int,
                  finished: threading.Event, indices: np.ndarray, distances: np.ndarray, report) -> int:
    """The rows start..stop-1 on the points `prefix` (the first `stop` positions' points), into `indices`
    and `distances`, in calls of ROWS_PER_CALL rows: on one thread fewer than the job's while the order is
    placed, on all of them once it is complete; returns `stop`."""
    from covertreex import distributed

    index = _index(prefix, k, engine, threads - 1)
    for a in range(start, stop, ROWS_PER_CALL):
        if finished.is_set() and index.config.threads != threads:
            index = dataclasses.replace(index, config=dataclasses.replace(index.config, threads=threads))
        b = min(stop, a + ROWS_PER_CALL)
        indices[a:b], distances[a:b] = distributed.answer_range(index, a, b)
        report("neighbours", b)
    return stop


def _after_placed(points: np.ndarray, start: int, k: int, engine: str, threads: int, indices: np.ndarray,
                  distances: np.ndarray, report, heard: bool) -> None:
    """The rows from `start` on, on every point (in the order) and every thread, once it is complete."""
    from covertreex.vecchia import answer_rows

    n = points.shape[0]
    if start < n:
        answer_rows(_index(points, k, engine, threads), start, n, indices, distances,
                    (lambda done: report("neighbours", done)) if heard else None)
    report("neighbours", n)
