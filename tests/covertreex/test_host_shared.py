"""covertreex.host_shared: an index's arrays handed over through one memory file, copy-on-write, and the
socket for every worker that cannot open it (the real cluster: tests/covertreex/test_distributed.py)."""

from __future__ import annotations

import mmap
import os
import pickle
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass

import numpy as np
import pytest

from covertreex import host_shared

pytestmark = pytest.mark.skipif(not host_shared.SUPPORTED, reason="no memory files on this system")


@dataclass(frozen=True, eq=False)
class Holder:
    arrays: tuple
    label: str


def _holder() -> Holder:
    rng = np.random.default_rng(3)
    frozen = rng.normal(size=(300, 7))
    frozen.flags.writeable = False
    return Holder((rng.normal(size=(1000, 513)), frozen, np.arange(5, dtype=np.int32),
                   np.empty((0, 4)), rng.normal(size=(30, 20))[:, ::2]), "x")


class InProcess:
    """Dask's ``Client.run`` as it answers for workers that are this process, some told they see nothing
    (`blind`: as a worker on another machine would)."""

    def __init__(self, blind=()):
        self.blind, self.asked = set(blind), []

    def run(self, function, *args, workers, on_error):
        self.asked.append(list(workers))
        return {worker: False if worker in self.blind else function(*args) for worker in workers}


@pytest.fixture
def share_small(monkeypatch):
    """Publish any value, with no memory to spare asked; return the (path, inode) of the files made."""
    monkeypatch.setattr(host_shared, "SHARED_ABOVE", 0)
    monkeypatch.setattr(host_shared, "ROOM_TO_SPARE", 0)
    created, make = [], host_shared._created

    def recorded():
        made = make()
        if made is not None:
            created.append((made[1], os.fstat(made[0]).st_ino))
        return made

    monkeypatch.setattr(host_shared, "_created", recorded)
    return created


def _closed(path: str, inode: int) -> bool:
    """Whether the memory file made at `path` is closed (the descriptor's number may hold another file)."""
    try:
        return os.stat(path).st_ino != inode
    except FileNotFoundError:
        return True


def test_a_published_value_comes_back_equal_with_its_write_flags_and_its_writes_its_own(share_small):
    value = _holder()
    with host_shared.sharing(InProcess(), ["a", "b"], value, Holder, (value.arrays, value.label)) as values:
        published = values["a"]
        assert isinstance(published, host_shared.Published) and values["b"] is published
        first, second = pickle.loads(pickle.dumps(published)), pickle.loads(pickle.dumps(published))
    for copy in (first, second):
        assert copy.label == "x"
        for mine, theirs in zip(value.arrays, copy.arrays, strict=True):
            assert mine.dtype == theirs.dtype and mine.shape == theirs.shape
            assert mine.tobytes() == theirs.tobytes() and mine.flags.writeable == theirs.flags.writeable
    assert isinstance(_base(first.arrays[0]), mmap.mmap)  # over the file's map, not a copy
    assert first.arrays[0].ctypes.data % mmap.PAGESIZE == 0
    first.arrays[0][:] = 7.0  # a private page: neither the other copy nor the original sees it
    assert second.arrays[0].tobytes() == value.arrays[0].tobytes()


def _base(array: np.ndarray):
    while isinstance(array.base, np.ndarray):
        array = array.base
    return memoryview(array.base).obj


def test_the_file_is_gone_when_the_block_ends_even_by_an_error(share_small):
    value = _holder()
    with pytest.raises(RuntimeError, match="in the block"), \
            host_shared.sharing(InProcess(), ["a"], value, Holder, (value.arrays, value.label)) as values:
        assert [path for path, _ in share_small] == [values["a"].path] and not _closed(*share_small[0])
        raise RuntimeError("in the block")
    assert _closed(*share_small[0])
    with pytest.raises(pickle.UnpicklingError):  # a copy unpickled after the block has nothing to map
        pickle.loads(pickle.dumps(values["a"]))


def test_a_worker_that_does_not_see_the_file_gets_the_value_itself(share_small):
    value = _holder()
    client = InProcess(blind={"far"})
    with host_shared.sharing(client, ["far", "near"], value, Holder, (value.arrays, value.label)) as values:
        assert values["far"] is value and isinstance(values["near"], host_shared.Published)
    assert client.asked == [["far", "near"]]


def test_no_worker_seeing_the_file_leaves_it_empty(share_small, monkeypatch):
    written = []
    write = host_shared._write_all
    monkeypatch.setattr(host_shared, "_write_all", lambda *args: written.append(args[2]) or write(*args))
    value = _holder()
    blind = InProcess(blind={"a"})
    with host_shared.sharing(blind, ["a"], value, Holder, (value.arrays, value.label)) as values:
        assert values == {"a": value}
    assert written == [0]  # the token alone


def test_a_small_value_or_short_memory_asks_no_worker(monkeypatch):
    value, client = _holder(), InProcess()
    with host_shared.sharing(client, ["a"], value, Holder, (value.arrays, value.label)) as values:
        assert values == {"a": value}  # 4 MB, below SHARED_ABOVE
    monkeypatch.setattr(host_shared, "SHARED_ABOVE", 0)
    monkeypatch.setattr(host_shared, "ROOM_TO_SPARE", 1 << 62)
    with host_shared.sharing(client, ["a"], value, Holder, (value.arrays, value.label)) as values:
        assert values == {"a": value}
    assert client.asked == []


@pytest.mark.parametrize("full_from", [0, 1])
def test_room_running_out_while_writing_sends_every_copy_through_the_socket(share_small, monkeypatch,
                                                                            full_from):
    """The memory taken by others after the room was checked: at the token (`full_from` 0) or after it."""
    write = host_shared._write_all

    def full(descriptor, data, offset):
        if offset >= full_from:
            raise OSError(28, "No space left on device")
        write(descriptor, data, offset)

    monkeypatch.setattr(host_shared, "_write_all", full)
    value = _holder()
    with host_shared.sharing(InProcess(), ["a", "b"], value, Holder, (value.arrays, value.label)) as values:
        assert values == {"a": value, "b": value}
    assert len(share_small) == 1 and _closed(*share_small[0])


def test_a_file_that_is_not_the_values_is_refused(share_small, tmp_path):
    """Another regular file holding the same bytes (the token included) is not the value's file."""
    value = _holder()
    with host_shared.sharing(InProcess(), ["a"], value, Holder, (value.arrays, value.label)) as values:
        published = values["a"]
        other = tmp_path / "other"
        with open(published.path, "rb") as source:
            other.write_bytes(source.read())
        with pytest.raises(pickle.UnpicklingError, match="does not hold the index it was written for"):
            host_shared.attach(str(other), *published.__reduce__()[1][1:])
        assert host_shared.attach(*published.__reduce__()[1]).label == "x"


def _identity(path) -> tuple[int, int]:
    stats = os.stat(path)
    return stats.st_dev, stats.st_ino


def test_sees_reads_the_token_and_maps_the_file(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"0123456789abcdef rest")
    token, identity = b"0123456789abcdef", _identity(path)
    assert host_shared.sees(str(path), token, identity)
    assert not host_shared.sees(str(path), b"0123456789abcdeX", identity)
    assert not host_shared.sees(str(path), token, (identity[0], identity[1] + 1))
    assert not host_shared.sees(str(tmp_path / "missing"), token, identity)


def test_a_path_that_now_names_a_pipe_is_never_read(share_small, tmp_path):
    """The descriptor's number taken by a pipe once the file is closed (here by this process; in another
    container's process table by another's): reading it took the pipe's data, and opening a named pipe
    with no writer blocks for good (a review). The path is checked to be the file before it is opened."""
    value = _holder()
    with host_shared.sharing(InProcess(), ["a"], value, Holder, (value.arrays, value.label)) as values:
        published = values["a"]
    number = int(published.path.rsplit("/", 1)[1])
    reader, writer = os.pipe()
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    try:
        os.dup2(reader, number)
        os.write(writer, b"the pipe's own data")
        assert not host_shared.sees(published.path, published.token, published.identity)
        with pytest.raises(pickle.UnpicklingError, match="does not hold the index"):
            pickle.loads(pickle.dumps(published))
        assert os.read(number, 100) == b"the pipe's own data"
        os.dup2(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK), number)
        answers = []
        asking = threading.Thread(target=lambda: answers.append(
            host_shared.sees(published.path, published.token, published.identity)), daemon=True)
        asking.start()
        asking.join(timeout=60)  # microseconds when right; blocked until a writer comes when wrong
        assert answers == [False]
    finally:
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))  # releases an opener that blocked
        for descriptor in {reader, writer, number}:
            os.close(descriptor)


def test_the_written_file_is_sealed(share_small):
    """Once written, no process (this user's other programs included) may change the file under the maps."""
    value = _holder()
    with host_shared.sharing(InProcess(), ["a"], value, Holder, (value.arrays, value.label)) as values:
        path = values["a"].path

        def write():
            descriptor = os.open(path, os.O_RDWR)
            try:
                os.pwrite(descriptor, b"x", 0)
            finally:
                os.close(descriptor)

        for change in (write, lambda: os.truncate(path, 10)):
            with pytest.raises(PermissionError):
                change()


def test_no_memory_files_or_none_to_make_sends_every_copy_through_the_socket(monkeypatch):
    monkeypatch.setattr(host_shared, "SHARED_ABOVE", 0)
    monkeypatch.setattr(host_shared, "ROOM_TO_SPARE", 0)
    value, client = _holder(), InProcess()

    def no_descriptors(*args):
        raise OSError(24, "Too many open files")

    monkeypatch.setattr(os, "memfd_create", no_descriptors)
    with host_shared.sharing(client, ["a"], value, Holder, (value.arrays, value.label)) as values:
        assert values == {"a": value}
    monkeypatch.setattr(host_shared, "SUPPORTED", False)
    with host_shared.sharing(client, ["a"], value, Holder, (value.arrays, value.label)) as values:
        assert values == {"a": value}
    assert client.asked == []


SHARING_THEN_WAITING = """
import sys, time
sys.path[:0] = [{tests!r}]
from covertreex import host_shared
from test_host_shared import Holder, InProcess, _holder
host_shared.SHARED_ABOVE = host_shared.ROOM_TO_SPARE = 0
value = _holder()
with host_shared.sharing(InProcess(), ["a"], value, Holder, (value.arrays, value.label)) as values:
    print(values["a"].path, flush=True)
    time.sleep(60)
"""


def test_a_client_killed_during_the_copies_leaves_no_file_behind():
    """A file in /dev/shm (this module's way until 2026-12-08) outlived a killed client, holding the
    index's memory until someone removed it; a memory file goes with the last process that holds it."""
    code = SHARING_THEN_WAITING.format(tests=os.path.dirname(__file__))
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        path = child.stdout.readline().strip()
        inode = os.stat(path).st_ino  # another process of this user opens it by the path
        assert os.stat(path).st_size > 4_000_000
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
        child.stdout.close()
    assert _closed(path, inode)
