"""Baseline storage: strict reads that name the damaged file, atomic writes, no lost concurrent writes."""

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time

import pytest

from pytest_pcct.gate import baselines
from pytest_pcct.gate.baselines import CounterBaseline, CounterStore, TimingStore
from pytest_pcct.gate.errors import CorruptFileError

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
     "counter 'distance_evaluations' must be an integer"),
    (lambda text: text.replace('"engine": "gold",', ""), "field 'engine' is missing"),
    (lambda text: text.replace('"format_version": 1', '"format_version": 9'), "format version 9"),
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


def test_latest_run_is_compared_even_if_older_runs_exist(tmp_path):
    for number, seconds in (("0001", 1.0), ("0002", 2.0)):
        (tmp_path / f"{number}_x.json").write_text(
            json.dumps({"benchmarks": [{"fullname": "a", "stats": {"min": seconds}}]}))
    entries, files = TimingStore(tmp_path).load()
    assert [f.name for f in files] == ["0002_x.json"] and entries["a"]["stats"]["min"] == 2.0
    entries, _ = TimingStore(tmp_path).load("0001")
    assert entries["a"]["stats"]["min"] == 1.0


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
