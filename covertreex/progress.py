"""Progress of the command line's long steps, drawn by tqdm on stderr, only when stderr is a terminal.

A phase with a known amount of work (points placed by a maximin ordering) shows a bar; one without shows its
name and the time spent so far. A small ticker thread redraws the line while a step holds the caller's thread
(the rust engine and Numba's parallel loops let it run; a step that keeps the GIL redraws when it returns).
The line is erased when the phase ends.
"""

from __future__ import annotations

import shutil
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

TICK_SECONDS = 0.5


@contextmanager
def phase(label: str, total: int | None = None, stream=None) -> Iterator[Callable[[int, str], None]]:
    """Show `label` while the block runs; yields ``done(n, label)``, which moves a bar of `total` to n
    and renames it (``done.shown``: whether the bar is drawn at all)."""
    stream = sys.stderr if stream is None else stream
    shown = stream.isatty()
    size = shutil.get_terminal_size()  # 80 x 24 where the terminal reports no size (tqdm would draw nothing)
    from tqdm import tqdm  # 0.1 s to import: only when a phase runs, never for --help

    bar = tqdm(total=total, desc=label, file=stream, disable=not shown, leave=False, ncols=size.columns,
               nrows=size.lines,
               bar_format=None if total else "{desc} ... {elapsed}")
    stop = threading.Event()

    def tick():
        while not stop.wait(TICK_SECONDS):
            bar.refresh()

    def done(n: int, label: str) -> None:
        bar.set_description(label, refresh=False)
        bar.update(n - bar.n)

    done.shown = shown  # a caller may skip work that only a drawn bar needs

    ticker = threading.Thread(target=tick, name="pcct-progress", daemon=True)
    if shown:
        ticker.start()
    try:
        yield done
    finally:
        stop.set()
        if shown:
            ticker.join()
        bar.close()
