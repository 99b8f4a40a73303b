"""Baseline storage of the regression gate: strict reads, atomic writes, directory locks.

Two kinds of baseline live under one directory (``baselines/`` by default):

* ``counters/`` holds one JSON file per benchmark: its work counters plus the identity they are valid for
  (engine, dataset digest, configuration digest, counter schema and version) and the machine they were
  recorded on. One file per benchmark means xdist workers updating different benchmarks never touch the
  same file; every write still takes the directory's lock.
* ``benchmarks/`` is ordinary pytest-benchmark file storage (``<machine id>/NNNN_name.json``), so
  ``--benchmark-compare`` reads it unchanged. Entries carry the calibration timing of the run that made
  them in ``extra_info``, which lets one file mix entries recorded in different runs. A machine id's
  directory holds one saved run, the committed one: ``--benchmark-compare`` takes the newest of several, so
  a second file would silently become the baseline.

Every write goes to a temporary file in the same directory, is fsynced, then renamed over the target
(``os.replace`` is atomic on POSIX): a run killed mid-write leaves the old file intact. The exceptions are
written in place (:mod:`covertreex.whole_files`): a hard-linked file, a directory that takes no new file, a
file the rename is refused for (a bind mount), a device or a pipe. Every read is
strict: a truncated or hand-damaged file raises :class:`~pytest_pcct.gate.errors.CorruptFileError` naming it,
never a silent fallback to an older baseline.
"""

from __future__ import annotations

import fcntl
import fnmatch
import hashlib
import json
import os
import platform
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from pytest_pcct.gate.errors import CorruptFileError, GateInputError

COUNTER_FORMAT = "pytest_pcct.counter_baseline"
COUNTER_FORMAT_VERSION = 1
TIMING_RUN_GLOB = "[0-9][0-9][0-9][0-9]_"
"""pytest-benchmark's pattern for saved runs (what ``--benchmark-compare`` without a value searches)."""
DEFAULT_TIMING_FILE = "0001_pcct.json"
CALIBRATION_KEY = "pcct_calibration"
"""extra_info key of every gated pytest-benchmark entry: the calibration timings of the run that made it."""
PAIRED_KEY = "pcct_paired"
"""extra_info key of every gated pytest-benchmark entry: its paired rounds (ratios benchmark / calibration
per round, median round and calibration seconds); see :mod:`pytest_pcct.gate.paired`."""
MAX_COUNTER = 2**63 - 1
"""Counters are int64 in every engine; a larger stored value is damage, not a measurement."""
COUNTER_RANGE = "an integer in [0, 2**63)"
IDENTITY = {"engine": str, "dataset_digest": str, "config_digest": str, "schema": str, "schema_version": int}
"""The fields counters are valid for, with their types: counters of another identity are not comparable."""
PLAUSIBLE_SECONDS = {
    **dict.fromkeys(("min", "max", "mean", "median", "q1", "q3", "ld15iqr", "hd15iqr", "total"), 1e-9),
    **dict.fromkeys(("stddev", "iqr"), 0.0),
}
"""The pytest-benchmark stats checked when a run is read, with the least plausible value of each (a time
below a nanosecond is no measurement); the most is MAX_PLAUSIBLE_SECONDS. Outside that range the gate
could pass everything (a stored min of 1e308, or a calibration of 1e-300, makes any run look fast)."""
MAX_PLAUSIBLE_SECONDS = 1e5


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def machine_facts() -> dict:
    """What the baseline was recorded on (informative: counters are machine-independent)."""
    model = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "system": platform.system(),
        "machine": platform.machine(),
        "cpu_model": model,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "node": platform.node(),
    }


@contextmanager
def locked(directory: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on `directory` itself (flock on the directory) for the block, so
    no lock file lands among baselines that users commit."""
    directory.mkdir(parents=True, exist_ok=True)
    handle = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
    finally:
        os.close(handle)


def atomic_write_json(path: Path, payload) -> None:
    """Write `payload` as JSON to `path` so readers see the old file or the new one, never a mix (but for
    the module docstring's exceptions), and a link, a device or a pipe stays one
    (:func:`covertreex.whole_files.write_whole`, standard library only; imported here, at the first write,
    so that loading the gate imports no covertreex module)."""
    from covertreex.whole_files import write_whole

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(payload, indent=2, sort_keys=True) + "\n"
    write_whole(path, lambda handle: handle.write(text.encode("utf-8")))


def read_json_object(path: Path, what: str) -> dict:
    """Parse `path` as one JSON object; anything else raises CorruptFileError naming the file."""
    from covertreex import strict_json

    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CorruptFileError(f"{path}: cannot read {what} ({exc})") from exc
    try:
        data = strict_json.loads(text)
    except json.JSONDecodeError as exc:
        raise CorruptFileError(f"{path}: {what} is not valid JSON ({exc}; truncated or edited by hand?)") \
            from exc
    except (ValueError, RecursionError) as exc:  # non-finite numbers, huge integers, a key twice, nesting
        raise CorruptFileError(f"{path}: {what} is not a plausible JSON document ({exc})") from exc
    if not isinstance(data, dict):
        raise CorruptFileError(f"{path}: {what} must be a JSON object, got {type(data).__name__}")
    return data


def _plausible_seconds(stats, path: Path, where: str) -> None:
    """Every timing stat present must be a number of seconds in its plausible range."""
    if not isinstance(stats, dict):
        return
    for name, least in PLAUSIBLE_SECONDS.items():
        if name not in stats:
            continue
        value = stats[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
            least <= value <= MAX_PLAUSIBLE_SECONDS
        ):
            raise CorruptFileError(
                f"{path}: {where} stat {name!r} = {value!r} is not a plausible time ({least:g} to "
                f"{MAX_PLAUSIBLE_SECONDS:g} seconds); the file is damaged, regenerate it"
            )


def has_type(value, kind: type) -> bool:
    """isinstance, except that a bool is no int (JSON tells true from 1; a counter of True is a mistake)."""
    return isinstance(value, kind) and not (isinstance(value, bool) and kind is not bool)


def counter_problem(name: str, value) -> str | None:
    """Why `value` cannot be the counter `name` (None when it can). The one rule for what a test records
    and what a baseline may hold, so a recorded counter is never refused when read back."""
    if has_type(value, int) and 0 <= value <= MAX_COUNTER:
        return None
    huge = has_type(value, int) and value.bit_length() > 128  # repr refuses ints beyond 4300 digits
    shown = f"an integer of {value.bit_length()} bits" if huge else f"{value!r:.40}"
    return f"counter {name!r} must be {COUNTER_RANGE}, got {shown}"


def _require(data: dict, key: str, kind, path: Path, what: str):
    value = data.get(key)
    if not has_type(value, kind):
        raise CorruptFileError(f"{path}: {what} field {key!r} is missing or not a {kind.__name__}")
    return value


@dataclass(frozen=True)
class CounterBaseline:
    """The work counters of one benchmark and the identity they are valid for."""

    benchmark: str
    engine: str
    dataset_digest: str
    config_digest: str
    schema: str
    schema_version: int
    counters: dict
    machine: dict = field(default_factory=dict)
    created: str = ""

    def identity(self) -> dict:
        """The fields that must match for counters to be comparable at all."""
        return {key: getattr(self, key) for key in IDENTITY}

    def to_json(self) -> dict:
        return {"format": COUNTER_FORMAT, "format_version": COUNTER_FORMAT_VERSION, **asdict(self)}

    @classmethod
    def from_json(cls, data: dict, path: Path) -> CounterBaseline:
        what = "counter baseline"
        if data.get("format") != COUNTER_FORMAT:
            raise CorruptFileError(f"{path}: not a {what} (format {data.get('format')!r})")
        version = data.get("format_version")
        if type(version) is not int or version != COUNTER_FORMAT_VERSION:  # true and 1.0 equal 1
            raise CorruptFileError(
                f"{path}: {what} format version {data.get('format_version')!r} is not "
                f"{COUNTER_FORMAT_VERSION}; regenerate it"
            )
        fields = {key: _require(data, key, kind, path, what)
                  for key, kind in {"benchmark": str, **IDENTITY}.items()}
        counters = _require(data, "counters", dict, path, what)
        for name, value in counters.items():
            problem = counter_problem(name, value)
            if problem:
                raise CorruptFileError(f"{path}: {problem}")
        return cls(
            **fields,
            counters=counters,
            machine=data.get("machine") if isinstance(data.get("machine"), dict) else {},
            created=data.get("created") if isinstance(data.get("created"), str) else "",
        )


def slug(nodeid: str) -> str:
    """A readable, collision-free file name for a test node id."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "-", nodeid.replace(".py::", "-")).strip("-")[:120]
    return f"{readable}.{hashlib.sha256(nodeid.encode()).hexdigest()[:10]}.json"


class CounterStore:
    """The per-benchmark counter baselines in one directory."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)

    def path_for(self, nodeid: str) -> Path:
        return self.directory / slug(nodeid)

    def load(self, nodeid: str) -> CounterBaseline | None:
        """The stored baseline of `nodeid`, or None when there is none."""
        path = self.path_for(nodeid)
        if not path.exists():
            return None
        baseline = CounterBaseline.from_json(read_json_object(path, "counter baseline"), path)
        if baseline.benchmark != nodeid:
            raise CorruptFileError(f"{path}: holds the baseline of {baseline.benchmark!r}, not {nodeid!r}")
        return baseline

    def save(self, baseline: CounterBaseline) -> Path:
        path = self.path_for(baseline.benchmark)
        with locked(self.directory):
            atomic_write_json(path, baseline.to_json())
        return path

    def stored(self) -> dict[str, Path]:
        """Benchmark node id -> file, for every stored baseline (strict: a bad file raises)."""
        if not self.directory.is_dir():
            return {}
        found = {}
        for path in sorted(self.directory.glob("*.json")):
            data = read_json_object(path, "counter baseline")
            found[CounterBaseline.from_json(data, path).benchmark] = path
        return found

    def remove(self, nodeid: str) -> None:
        with locked(self.directory):
            self.path_for(nodeid).unlink(missing_ok=True)


class TimingStore:
    """The one saved pytest-benchmark run of a machine id, read strictly and written atomically."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)

    def saved_runs(self) -> list[Path]:
        """The saved runs here: none, or the committed one. ``--benchmark-compare`` takes the newest run (or,
        given a selector, every run it matches, the last one winning), so a second file, a hand-made copy or
        one left by a merge, would silently replace the committed baseline: refused, naming them all."""
        runs = sorted(self.directory.glob("*.json")) if self.directory.is_dir() else []
        if len(runs) > 1:
            raise GateInputError(
                f"{self.directory} must hold one saved pytest-benchmark run, the committed timing baselines "
                f"({DEFAULT_TIMING_FILE} as --pcct-update-baselines writes them), but it holds {len(runs)}: "
                f"{', '.join(run.name for run in runs)}. --benchmark-compare would take the newest, which "
                "need not be the committed one: delete every file there but the committed run (git status "
                "lists the files not committed)"
            )
        return runs

    def run_files(self, selector: str | bool = True) -> list[Path]:
        """The saved run ``--benchmark-compare[=selector]`` compares with ([] when it selects none)."""
        pattern = (TIMING_RUN_GLOB if selector is True else str(selector)).rstrip("*") + "*.json"
        return [run for run in self.saved_runs() if fnmatch.fnmatchcase(run.name, pattern)]

    def load(self, selector: str | bool = True) -> tuple[dict[str, dict], list[Path]]:
        """(fullname -> benchmark entry, files read) of the selected run; a bad file raises, naming it."""
        files = self.run_files(selector)
        return (_timing_entries(files[0]) if files else {}), files

    def merge_save(self, run: dict, keep_old) -> Path:
        """Merge `run` (a pytest-benchmark JSON document) into the saved run, under the lock.

        Entries of the saved run that `run` does not contain survive when ``keep_old(fullname)`` is true,
        so updating a subset of benchmarks never drops the others' baselines.
        """
        with locked(self.directory):
            saved = self.saved_runs()
            target = saved[0] if saved else self.directory / DEFAULT_TIMING_FILE
            old = _timing_entries(target) if saved else {}
            fresh = {bench["fullname"] for bench in run["benchmarks"]}
            kept = [
                {k: v for k, v in bench.items() if k not in ANNOTATIONS}
                for name, bench in sorted(old.items()) if name not in fresh and keep_old(name)
            ]
            merged = {**run, "benchmarks": sorted(run["benchmarks"] + kept, key=lambda b: b["fullname"])}
            atomic_write_json(target, merged)
        return target

    def remove_entries(self, names: set[str]) -> None:
        """Drop the named entries from the saved run (stale baselines), under the lock."""
        with locked(self.directory):
            saved = self.saved_runs()
            if not saved:
                return
            data = read_json_object(saved[0], "pytest-benchmark run")
            data["benchmarks"] = [b for b in data.get("benchmarks", []) if b.get("fullname") not in names]
            atomic_write_json(saved[0], data)


ANNOTATIONS = ("_file", "_cpu")
"""Keys the gate adds to each timing entry it reads (the file it came from, the processor of its run),
never written back."""


def _timing_entries(path: Path) -> dict[str, dict]:
    """fullname -> benchmark entry of the saved run in `path`, read strictly. Two entries for one benchmark
    (a bad merge) are refused: pytest-benchmark and the gate would take the last, whatever it holds."""
    data = read_json_object(path, "pytest-benchmark run")
    benches = data.get("benchmarks")
    if not isinstance(benches, list):
        raise CorruptFileError(f"{path}: pytest-benchmark run has no 'benchmarks' list")
    entries = {}
    for bench in benches:
        if not (isinstance(bench, dict) and isinstance(bench.get("fullname"), str)
                and isinstance(bench.get("stats"), dict)):
            raise CorruptFileError(f"{path}: a benchmark entry lacks 'fullname' or 'stats'")
        label = f"benchmark {bench['fullname']!r}"
        if bench["fullname"] in entries:
            raise CorruptFileError(f"{path}: holds two entries for {label} (a bad merge?), so which one is "
                                   "its baseline is unknown")
        _plausible_seconds(bench["stats"], path, label)
        extra = bench.get("extra_info")
        if isinstance(extra, dict):
            _plausible_seconds(extra.get(CALIBRATION_KEY), path, f"{label} calibration")
        cpu = cpu_identity(data.get("machine_info"))
        entries[bench["fullname"]] = {**bench, "_file": str(path), "_cpu": cpu}
    return entries


def cpu_identity(machine_info) -> str | None:
    """The processor a pytest-benchmark run measured on (brand, model, stepping, advertised clock, count),
    or None where its machine_info does not say: pytest-benchmark keys stored runs by platform only, so
    runs on different processors share a directory."""
    cpu = machine_info.get("cpu") if isinstance(machine_info, dict) else None
    if not isinstance(cpu, dict):
        return None
    fields = [cpu.get(key) for key in ("brand_raw", "model", "stepping", "hz_advertised", "count")]
    return json.dumps(fields, default=str)  # a tuple in memory is a list in the file
