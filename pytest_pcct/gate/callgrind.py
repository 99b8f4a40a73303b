"""The instruction leg of the gate: count the instructions of one benchmarked call under valgrind's callgrind.

Instruction counts do not depend on load, frequency or a noisy neighbour, so they are gated like work
counters (exact or within a small relative tolerance) while time stays a noisy, calibrated second opinion.
Hardware counters (``perf_event_open``) would be cheaper, but virtual machines often expose no PMU (this
project's CI machine kind answers ENOENT), while valgrind runs everywhere; callgrind is the tool iai and
Gungraun use for the same reason.

How a session runs: ``pytest ... --pcct-gate=instructions`` first runs the same selection natively once
with the pinned environment below and benchmarks disabled (so JIT compilers fill their on-disk caches at
native speed), then replaces itself (``exec``) with ``valgrind --tool=callgrind --instr-atstart=no`` running
the same command. Inside, every benchmark marked ``pcct_instructions`` gets a probe in place of
pytest-benchmark's fixture (disabled in that session): the call runs once through it to warm up, a dump
closes what came before, the call runs once more, and a labelled dump gives its instruction count (``Ir``);
the probe asks callgrind for these itself (`client_request`), so the count spans exactly the call. The
counted call runs with Python's garbage collector collected beforehand and then paused: otherwise a
collection owed by the objects earlier tests left behind (more in a long session, or with more stored
benchmark files) falls inside the count, and the same code counts differently depending on what ran
before it.

The environment is pinned so the count describes the code, not the machine: one thread everywhere (thread
interleavings change spin-wait counts), a fixed hash seed, Numba compiling for a generic x86-64 CPU (its cache
is keyed by the host CPU, which valgrind reports differently from the real one) and OpenBLAS's Haswell
kernels (valgrind emulates no AVX-512).
"""

from __future__ import annotations

import gc
import os
import re
import subprocess
import sys
from pathlib import Path

from pytest_pcct.gate import client_request
from pytest_pcct.gate import commands as gate_commands
from pytest_pcct.gate.baselines import MAX_COUNTER
from pytest_pcct.gate.errors import GateError, GateInputError

OUT_DIR_ENV = "PCCT_CALLGRIND_DIR"
"""Set in the relaunched session: the directory callgrind writes its dumps to."""
PINNED_ENV = {
    "PYTHONHASHSEED": "0",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMBA_NUM_THREADS": "1",
    "RAYON_NUM_THREADS": "1",
    "NUMBA_CPU_NAME": "generic",
    "OPENBLAS_CORETYPE": "Haswell",
}
NUMBA_CACHE_SUBDIR = ".pcct/numba-generic"
"""Numba's cache for the generic CPU, under the rootdir (kept between runs; not the native cache)."""
OUT_SUBDIR = ".pcct/callgrind"
WARM_UP_CACHE_SUBDIR = ".pcct/warm-up-cache"
"""pytest's cache for the native warm-up run, apart from the project's (--lf and --sw read it)."""


class CallgrindError(GateError, RuntimeError):
    """valgrind is missing, the warm-up run failed, or callgrind wrote no readable dump."""


def under_callgrind() -> bool:
    """True inside the session the gate relaunched under callgrind."""
    return bool(os.environ.get(OUT_DIR_ENV)) and "vgpreload" in os.environ.get("LD_PRELOAD", "")


def pinned_environment(rootdir: Path) -> dict[str, str]:
    return {**os.environ, **PINNED_ENV, "NUMBA_CACHE_DIR": str(Path(rootdir, NUMBA_CACHE_SUBDIR))}


def _require_tools() -> None:
    client_request.check_machine()
    if not any(Path(d, "valgrind").is_file() for d in os.environ.get("PATH", "").split(os.pathsep) if d):
        raise GateInputError(
            "--pcct-gate=instructions needs valgrind on PATH (Debian/Ubuntu: apt-get install valgrind)")


def relaunch(args: list[str], rootdir: Path, caching: bool) -> None:
    """Warm the JIT caches natively, then replace this process with the same pytest run under callgrind.
    `caching`: pytest's cache plugin is loaded (the warm-up then gets a cache of its own, so the run's
    --lf/--sw state stays the run's; without the plugin, ``-o cache_dir`` would be an unknown option).

    Returns only by raising (the exec does not return). The dumps go to ``.pcct/callgrind`` under the rootdir,
    emptied first, so only the last run's files are kept."""
    _require_tools()
    env = pinned_environment(rootdir)
    base = [sys.executable, "-m", "pytest", *args]
    serial = gate_commands.serial(args)
    own_cache = ("-o", f"cache_dir={Path(rootdir, WARM_UP_CACHE_SUBDIR)}") if caching else ()
    warm = subprocess.run([*base, "--pcct-gate=off", "--benchmark-disable", *serial, "-q", *own_cache],
                          env=env, capture_output=True, text=True)
    if warm.returncode not in (0, 5):
        raise CallgrindError("the native warm-up run (same selection, gate off) failed; fix it first:\n"
                             + (warm.stdout + warm.stderr)[-3000:])
    out_dir = Path(rootdir, OUT_SUBDIR)
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("cg.*"):
        old.unlink()
    env[OUT_DIR_ENV] = str(out_dir)
    command = ["valgrind", "--quiet", "--tool=callgrind", "--instr-atstart=no", "--trace-children=no",
               f"--callgrind-out-file={out_dir}/cg.%p", *base, "--benchmark-disable", *serial]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvpe("valgrind", command, env)


def out_dir() -> Path:
    return Path(os.environ[OUT_DIR_ENV])


_SUMMARY = re.compile(r"^summary:\s*(\d+)\s*$", re.MULTILINE)


def dumped_instructions(out_dir: Path, label: str) -> int:
    """The instruction count of the dump callgrind wrote for `label` (strict: exactly one such dump)."""
    trigger = f"desc: Trigger: Client Request: {label}\n"
    found = [p for p in Path(out_dir).glob(f"cg.{os.getpid()}.*") if trigger in p.read_text(errors="replace")]
    if len(found) != 1:
        raise CallgrindError(f"expected one callgrind dump labelled {label!r} in {out_dir}, "
                             f"found {len(found)}")
    match = _SUMMARY.search(found[0].read_text(errors="replace"))
    if match is None:
        raise CallgrindError(f"{found[0]}: callgrind dump without a 'summary:' line")
    count = int(match.group(1))
    if count > MAX_COUNTER:  # callgrind's unsigned arithmetic wrapped: never recorded as a baseline
        raise CallgrindError(f"{found[0]}: callgrind reported {count} instructions, an impossible count")
    return count


class InstructionProbe:
    """Stands in for pytest-benchmark's ``benchmark`` fixture: counts the instructions of one call.

    Attributes other than the call (``extra_info``, ...) are the real fixture's, so tests run unchanged.
    """

    _count = 0

    def __init__(self, fixture):
        self.fixture = fixture
        self.instructions: int | None = None

    def __getattr__(self, name):
        return getattr(self.fixture, name)

    def _measure(self, warm_up, target, arguments, teardown=None):
        """`warm_up(args, kwargs)` goes through pytest-benchmark's fixture (disabled in this session, so it
        calls once and the fixture counts as used); then `target` is called once more and counted. The
        arguments come from `arguments()` (a pedantic setup) and `teardown` runs after each call, both
        outside the count."""
        if self.instructions is not None:
            raise GateInputError("the benchmark fixture may be called only once per test")
        args, kwargs = arguments()
        warm_up(args, kwargs)  # lazy initialisation and first-call caches are not the code's steady cost
        if teardown is not None:
            teardown(*args, **kwargs)
        args, kwargs = arguments()
        InstructionProbe._count += 1
        label = f"pcct-{InstructionProbe._count}"
        start = client_request.prepared(client_request.START_INSTRUMENTATION)
        opening = client_request.prepared_dump(f"pcct-start-{InstructionProbe._count}")
        closing = client_request.prepared_dump(label)
        collecting = gc.isenabled()
        gc.collect()
        gc.disable()
        try:
            start()
            opening()
            result = target(*args, **kwargs)
            closing()
        finally:  # also when the call raises: the rest of the session must not run instrumented
            client_request.request(client_request.STOP_INSTRUMENTATION)
            if collecting:
                gc.enable()
        if teardown is not None:
            teardown(*args, **kwargs)
        self.instructions = dumped_instructions(out_dir(), label)
        return result

    def __call__(self, function, *args, **kwargs):
        return self._measure(lambda a, kw: self.fixture(function, *a, **kw), function, lambda: (args, kwargs))

    def pedantic(self, target, args=(), kwargs=None, setup=None, teardown=None, **_timing_options):
        """Like pytest-benchmark's ``pedantic``: `setup` may supply the arguments and `teardown` hears them
        after the call; neither is counted."""

        def arguments():
            if setup is not None:
                supplied = setup()
                if supplied is not None:
                    return supplied
            return args, kwargs or {}

        return self._measure(lambda a, kw: self.fixture.pedantic(target, args=a, kwargs=kw), target,
                             arguments, teardown)
