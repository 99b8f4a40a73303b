"""What the opt-in benchmark scripts share: argument types, the header line and the optional-dependency check.

The argument types raise ``argparse.ArgumentTypeError``, so that a bad value is a one-line usage error
(exit 2) before any work starts rather than a traceback after minutes of it. The header names what a
reader needs to reproduce or discount a figure: the command, nproc, CPU model, date and load average.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path


def positive_int(text: str) -> int:
    """An integer of at least 1 (a size, a count of runs or a block)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def int_list(text: str) -> tuple[int, ...]:
    """Comma-separated positive integers, e.g. ``1,64,512``."""
    try:
        return tuple(positive_int(part) for part in text.split(","))
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated positive integers (e.g. 1,64,512), got {text!r}") from None


def choice_list(known: tuple[str, ...]):
    """An argument type: comma-separated names, each one of `known`."""
    def parse(text: str) -> tuple[str, ...]:
        names = tuple(text.split(","))
        if not set(names) <= set(known):
            raise argparse.ArgumentTypeError(
                f"expected comma-separated names from {','.join(known)}, got {text!r}")
        return names
    return parse


def require(parser: argparse.ArgumentParser, module: str, extra: str, needed_for: str) -> None:
    """Stop with a usage error naming the extra to install when `module` is missing, before any work."""
    if importlib.util.find_spec(module) is None:
        parser.error(f"{module} is missing ({needed_for}): pip install -e \".[{extra}]\"")


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or "unknown"
    for line in out.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def header(*facts: str) -> None:
    """Print the command as run, then nproc, CPU model, date (UTC), load average and the script's `facts`."""
    command = shlex.join(["python", f"benchmarks/{Path(sys.argv[0]).name}", *sys.argv[1:]])
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"command: {command}")
    print("; ".join([f"nproc {len(os.sched_getaffinity(0))}", f"CPU {cpu_model()}",
                     f"date {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
                     f"load average {load}", *facts]), flush=True)
