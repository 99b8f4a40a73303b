"""Baseline storage: strict reads that name the damaged file, atomic writes, no lost concurrent writes, and
recorded counters checked by the reader's own rules."""

import json
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from pytest_pcct.gate import baselines
from pytest_pcct.gate.baselines import CounterBaseline, CounterStore, TimingStore
from pytest_pcct.gate.errors import CorruptFileError, GateInputError, GateTypeError
from pytest_pcct.gate.session import GateRecorder

NODE = "benchmarks/test_x.py::test_y[gold]"


def _baseline(steps=10, nodeid=NODE):
    return CounterBaseline(benchmark=nodeid, engine="gold", dataset_digest="d" * 64, config_digest="c" * 64,
                           schema="covertreex.query_telemetry", schema_version=1,
                           counters={"distance_evaluations": steps})


def test_counter_baseline_round_trip(tmp_path):
    store = CounterStore(tmp_path)
    assert store.load(NODE) is None
    path = store.save(_baseline())
    assert path.parent == tmp_path and path.name.startswith("benchmarks-test_x-test_y-gold.")
    assert store.load(NODE) == _baseline()
    assert store.stored() == {NODE: path}


@pytest.mark.parametrize(("damage", "message"), [
    (lambda text: text[: len(text) // 2], "counter baseline is not valid JSON"),
    (lambda text: "[1, 2]", "counter baseline must be a JSON object"),
    (lambda text: text.replace('"distance_evaluations": 10', '"distance_evaluations": "10"'),
     "counter 'distance_evaluations' must be an integer in [0, 2**63), got '10'"),  # the quotes: a string
    (lambda text: text.replace('"engine": "gold",', ""), "field 'engine' is missing"),
    (lambda text: text.replace('"format_version": 1', '"format_version": 9'), "format version 9"),
    (lambda text: text.replace('"format_version": 1', '"format_version": true'), "format version True"),
    (lambda text: text.replace('"format_version": 1', '"format_version": 1.0'), "format version 1.0"),
    (lambda text: text.replace("test_y[gold]", "test_z"), "holds the baseline of"),
])
def test_damaged_counter_baseline_names_the_file(tmp_path, damage, message):
    store = CounterStore(tmp_path)
    path = store.save(_baseline())
    path.write_text(damage(path.read_text()))
    with pytest.raises(CorruptFileError) as info:
        store.load(NODE)
    assert str(info.value).startswith(f"{path}: ") and message in str(info.value)


def test_damaged_timing_run_names_the_file(tmp_path):
    path = tmp_path / "0001_pcct.json"
    path.write_text(json.dumps({"benchmarks": [{"fullname": "a"}]}))
    with pytest.raises(CorruptFileError, match=f"^{path}: a benchmark entry lacks 'fullname' or 'stats'"):
        TimingStore(tmp_path).load()
    path.write_text('{"benchmarks": [')
    with pytest.raises(CorruptFileError, match=f"^{path}: pytest-benchmark run is not valid JSON"):
        TimingStore(tmp_path).load()


def _run(seconds):
    return json.dumps({"benchmarks": [{"fullname": "a", "stats": {"min": seconds}}]})


def test_a_second_saved_run_is_refused_naming_every_file(tmp_path):
    """A stray run beside the committed one was read as the baseline (--benchmark-compare takes the newest):
    a 2.5x slowdown passed against a 3x slower copy in an outside user's trial."""
    (tmp_path / "0001_pcct.json").write_text(_run(1.0))
    (tmp_path / "0002_manual.json").write_text(_run(3.0))
    store = TimingStore(tmp_path)
    refusal = re.escape(f"{tmp_path} must hold one saved pytest-benchmark run, the committed timing "
                        "baselines (0001_pcct.json as --pcct-update-baselines writes them), but it holds 2: "
                        "0001_pcct.json, 0002_manual.json. ")
    for selector in (True, "0001", "0002"):
        with pytest.raises(GateInputError, match="^" + refusal):
            store.load(selector)
    with pytest.raises(GateInputError, match="^" + refusal):
        store.merge_save({"benchmarks": []}, keep_old=lambda name: True)
    (tmp_path / "0002_manual.json").unlink()
    entries, files = store.load("0001")
    assert [f.name for f in files] == ["0001_pcct.json"] and entries["a"]["stats"]["min"] == 1.0
    assert store.load("0002") == ({}, [])


def test_two_entries_for_one_benchmark_are_refused_naming_the_file_and_benchmark(tmp_path):
    """A bad merge left two entries for one benchmark; the last, 3x slower, was its baseline."""
    path = tmp_path / "0001_pcct.json"
    entry = {"fullname": "t.py::test_a", "stats": {"min": 0.01}}
    path.write_text(json.dumps({"benchmarks": [entry, {**entry, "stats": {"min": 0.03}}]}))
    with pytest.raises(CorruptFileError, match="^" + re.escape(
            f"{path}: holds two entries for benchmark 't.py::test_a' (a bad merge?)")):
        TimingStore(tmp_path).load()


IDENTITY = {"engine": "toy", "dataset_digest": "d", "config_digest": "c", "schema": "s", "schema_version": 1}


@pytest.mark.parametrize(("counters", "identity"), [
    ({"steps": 0, "big": 2**63 - 1}, {}),
    ({"steps": -1}, {}), ({"steps": 2**63}, {}), ({"big": 2**64}, {}), ({"steps": True}, {}),
    ({"steps": 1.0}, {}), ({"steps": "40000"}, {}), ({"steps": None}, {}),
    ({"steps": 1}, {"schema_version": "1"}), ({"steps": 1}, {"schema_version": True}),
    ({"steps": 1}, {"engine": None}), ({"steps": 1}, {"dataset_digest": 5}),
])
def test_a_test_records_exactly_what_its_baseline_reader_accepts(tmp_path, counters, identity):
    """record() took -1 and 2**64, the update wrote them, the next run called the file damaged, and its
    re-record command wrote the same file again (an outside user's trial)."""
    fields = {**IDENTITY, **identity}
    try:
        GateRecorder().record(counters, **fields)
        refusal = None
    except (GateInputError, GateTypeError) as exc:
        refusal = str(exc)
    path = tmp_path / "baseline.json"
    path.write_text(json.dumps({**_baseline().to_json(), **fields, "counters": counters}))
    try:
        CounterBaseline.from_json(baselines.read_json_object(path, "counter baseline"), path)
        read_refusal = None
    except CorruptFileError as exc:
        read_refusal = str(exc)
    assert (refusal is None) == (read_refusal is None), (refusal, read_refusal)
    if refusal and not identity:  # one rule, one message
        assert refusal.removeprefix("pcct_gate.record: ") == read_refusal.removeprefix(f"{path}: ")


def test_recording_something_other_than_counters_is_a_type_error_saying_what_is_expected():
    """record(None) said only "'NoneType' object is not iterable"."""
    with pytest.raises(GateTypeError, match=re.escape(
            "pcct_gate.record: counters must be a mapping of counter names to ints, e.g. {'steps': 40000}, "
            "got None")):
        GateRecorder().record(None, **IDENTITY)
    with pytest.raises(GateInputError, match=re.escape("pcct_gate.record: counter 'steps' must be an integer "
                                                       "in [0, 2**63), got an integer of 16610 bits")):
        GateRecorder().record({"steps": 10**5000}, **IDENTITY)  # too long for repr


def test_failure_between_temp_write_and_rename_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "b.json"
    baselines.atomic_write_json(path, {"version": 1})

    def broken_replace(src, dst):
        raise OSError("disk vanished")

    monkeypatch.setattr(baselines.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk vanished"):
        baselines.atomic_write_json(path, {"version": 2})
    assert json.loads(path.read_text()) == {"version": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.json"]  # the temp file was cleaned up


KILLED_WRITER = """
import os, sys, time
from pathlib import Path
from pytest_pcct.gate import baselines

target, ready = Path(sys.argv[1]), Path(sys.argv[2])
real_fsync = os.fsync

def stall(fd):
    real_fsync(fd)
    ready.write_text("temp file written")
    time.sleep(60)

os.fsync = stall
baselines.atomic_write_json(target, {"version": 2, "padding": "x" * 1_000_000})
"""


def test_a_writer_killed_mid_write_leaves_the_old_baseline_intact(tmp_path):
    store = CounterStore(tmp_path / "counters")
    path = store.save(_baseline(steps=10))
    ready = tmp_path / "ready"
    writer = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(path), str(ready)])
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert writer.poll() is None and time.monotonic() < deadline, "writer never reached the write"
            time.sleep(0.01)
    finally:
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
    assert writer.returncode == -signal.SIGKILL
    leftovers = [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")]
    assert len(leftovers) == 1  # killed after writing the temp file, before the rename
    assert store.load(NODE) == _baseline(steps=10)
    assert store.stored() == {NODE: path}  # readers ignore the orphaned temp file


def _merge_many(directory, worker, count):
    store = TimingStore(directory)
    for i in range(count):
        entry = {"fullname": f"w{worker}-{i}", "stats": {"min": 1.0}}
        store.merge_save({"benchmarks": [entry], "machine_info": {}}, keep_old=lambda name: True)


def test_concurrent_merges_into_one_run_file_lose_nothing(tmp_path):
    workers, count = 4, 12
    context = multiprocessing.get_context("fork")
    processes = [context.Process(target=_merge_many, args=(tmp_path, w, count)) for w in range(workers)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(120)
        assert process.exitcode == 0
    entries, files = TimingStore(tmp_path).load()
    assert [f.name for f in files] == [baselines.DEFAULT_TIMING_FILE]
    assert set(entries) == {f"w{w}-{i}" for w in range(workers) for i in range(count)}


def test_locks_leave_no_file_among_the_baselines(tmp_path):
    store = CounterStore(tmp_path / "counters")
    store.save(_baseline(steps=10))
    store.remove(NODE)
    TimingStore(tmp_path / "timing").merge_save({"benchmarks": [{"fullname": "a", "stats": {}}]},
                                                keep_old=lambda name: True)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["0001_pcct.json", "counters", "timing"]


def test_a_json_error_reads_as_one_sentence(tmp_path):
    path = tmp_path / "run.json"
    path.write_text('{\n  "benchmarks": [\n    {"fullname": "a')
    with pytest.raises(CorruptFileError) as info:
        baselines.read_json_object(path, "pytest-benchmark run")
    assert str(info.value) == (f"{path}: pytest-benchmark run is not valid JSON (Unterminated string "
                               "starting at: line 3 column 18 (char 37); truncated or edited by hand?)")
