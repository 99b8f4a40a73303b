"""The command lines a gate error prints: the user's own invocation, adjusted to fix the problem."""

from __future__ import annotations

import shlex

XDIST = ("-n", "--numprocesses", "--dist", "--maxprocesses")
TIMING_OFF = ("--benchmark-disable", "--benchmark-skip")
COMPARE = ("--benchmark-compare",)
UPDATE = ("--pcct-update-baselines",)
SAVING = ("--benchmark-save", "--benchmark-autosave")
_VALUED = {"-n", "--numprocesses", "--dist", "--maxprocesses", "--pcct-gate", "--benchmark-min-rounds",
           "--benchmark-save"}
"""Options whose value may be the next argument (dropped together with it)."""


def _drop(args: list[str], names: set[str]) -> list[str]:
    kept, skip_next = [], False
    for arg in args:
        if skip_next:
            skip_next = False
            continue
        name = arg.split("=", 1)[0]
        glued = any(len(n) == 2 and arg.startswith(n) and len(arg) > 2 for n in names)  # -n2
        if name in names or glued:
            skip_next = name in _VALUED and "=" not in arg and not glued
            continue
        kept.append(arg)
    return kept


def command(args, *, drop=(), add=()) -> str:
    """``python -m pytest ARGS`` with the options in `drop` removed and `add` appended."""
    return shlex.join(["python", "-m", "pytest", *_drop(list(args), set(drop)), *add])


xdist_loaded = True
"""Whether pytest-xdist is loaded in this run (set by the gate plugin when pytest configures it): it may be
installed yet switched off by ``-p no:xdist`` in addopts or PYTEST_ADDOPTS, where ``-n`` is unknown."""


def serial(args) -> tuple[str, ...]:
    """Options that make the run serial: ``-n 0`` where pytest-xdist is loaded (``-p no:xdist`` would
    make an ``-n`` in the project's addopts an unrecognized argument), nothing where it is not."""
    return ("-n", "0") if xdist_loaded and "no:xdist" not in args else ()


def compared(args) -> tuple[str, ...]:
    """--benchmark-compare, unless the run already compares or records baselines: a timed check needs it."""
    recording = any(arg.split("=", 1)[0] in (*COMPARE, *UPDATE) for arg in args)
    return () if recording else COMPARE


def timed_command(args, time_gate: bool) -> str:
    """The same run with benchmarks neither disabled nor skipped (and compared, for the time gate)."""
    return command(args, drop=TIMING_OFF, add=compared(args) if time_gate else ())


def update_command(args, mode: str) -> str:
    """How to (re)record the baselines of this selection in gate mode `mode` (all, counters, instructions)."""
    if mode == "counters":
        return command(args, drop=(*COMPARE, *UPDATE, "--pcct-gate"),
                       add=("--pcct-gate=counters", *UPDATE))
    if mode == "instructions":
        return instructions_command(args, add=UPDATE)
    return command(args, drop=(*XDIST, *TIMING_OFF, *COMPARE, *UPDATE), add=(*serial(args), *UPDATE))


def instructions_command(args, add=()) -> str:
    """The same run counting instructions (serial; the gate relaunches it under callgrind)."""
    return command(args, drop=(*XDIST, *TIMING_OFF, *COMPARE, *UPDATE, "--pcct-gate"),
                   add=(*serial(args), "--pcct-gate=instructions", *add))


def serial_command(args) -> str:
    """The same run without xdist, so timings can be trusted."""
    return command(args, drop=XDIST, add=(*serial(args), *compared(args)))


def more_rounds_command(args, rounds: int) -> str:
    """The same run with at least `rounds` rounds per benchmark (an inconclusive time verdict's rerun)."""
    return command(args, drop=("--benchmark-min-rounds",), add=(f"--benchmark-min-rounds={rounds}",))


def counters_command(args) -> str:
    """The same run gating work counters only (valid under xdist and with benchmarks disabled)."""
    return command(args, drop=("--pcct-gate",), add=("--pcct-gate=counters",))
