"""covertreex.small_frames: values travel in pieces below NumPy's huge-page threshold and come back equal."""

from __future__ import annotations

import mmap
import pickle
from dataclasses import dataclass

import numpy as np
import pytest

import covertreex as ct
from covertreex import distributed, small_frames
from covertreex.small_frames import PIECE_BYTES


@dataclass(frozen=True)
class Holder:
    arrays: tuple
    label: str
    split_above: int = 0  # every buffer with a byte in it travels in pieces

    def __reduce_ex__(self, protocol):
        return small_frames.reduce_in_pieces(Holder, (self.arrays, self.label, self.split_above), protocol,
                                             split_above=self.split_above)


def _read_only(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


def _arrays() -> tuple:
    rng = np.random.default_rng(7)
    return (
        np.empty((0, 5)),                                           # no bytes at all
        np.arange(3, dtype=np.int32),                               # a few bytes
        rng.normal(size=PIECE_BYTES // 8),                          # exactly one piece
        _read_only(rng.normal(size=(1000, 517))),                   # several pieces, the last one short
        np.asfortranarray(rng.integers(0, 9, size=(700, 600))),     # Fortran order
        rng.normal(size=(40, 30))[:, ::3],                          # not contiguous: pickled in band
    )


def _base_object(array: np.ndarray):
    while isinstance(array.base, np.ndarray):
        array = array.base
    return memoryview(array.base).obj if array.base is not None else None


def _dumped(value) -> tuple[bytes, list[pickle.PickleBuffer]]:
    """The pickle of `value` with its out-of-band buffers, as Dask makes it."""
    buffers: list[pickle.PickleBuffer] = []
    header = pickle.dumps(value, protocol=5, buffer_callback=buffers.append)
    return header, buffers


def test_every_buffer_travels_in_pieces_and_comes_back_equal():
    value = Holder(_arrays(), "x")
    header, buffers = _dumped(value)
    sizes = [buffer.raw().nbytes for buffer in buffers]
    assert max(sizes) == PIECE_BYTES and sum(sizes) > 4 * PIECE_BYTES
    back = pickle.loads(header, buffers=buffers)
    assert back.label == "x"
    for sent, got in zip(value.arrays, back.arrays, strict=True):
        assert got.dtype == sent.dtype and got.shape == sent.shape
        assert got.tobytes() == sent.tobytes()
        assert got.flags.writeable == sent.flags.writeable
        assert got.flags.f_contiguous == sent.flags.f_contiguous
    # a large buffer lands in a memory map of its own, never in a NumPy buffer that asks for huge pages
    assert isinstance(_base_object(back.arrays[3]), mmap.mmap)
    assert back.arrays[3].ctypes.data % mmap.PAGESIZE == 0


def test_buffers_up_to_the_split_size_travel_whole_and_are_not_copied():
    value = Holder(_arrays(), "whole", split_above=4 * PIECE_BYTES)
    header, buffers = _dumped(value)
    sizes = sorted(buffer.raw().nbytes for buffer in buffers)
    assert sizes[-1] == value.arrays[3].nbytes > PIECE_BYTES  # whole: one buffer of its own
    received = [bytearray(buffer.raw()) for buffer in buffers]  # as Dask receives them
    back = pickle.loads(header, buffers=received)
    assert all(a.tobytes() == b.tobytes() for a, b in zip(value.arrays, back.arrays, strict=True))
    assert _base_object(back.arrays[3]) in received  # a view of the received buffer, not a copy


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_in_band_pickling_round_trips(protocol):
    value = Holder(_arrays(), "y")
    back = pickle.loads(pickle.dumps(value, protocol=protocol))
    assert all(got.tobytes() == sent.tobytes() for sent, got in zip(value.arrays, back.arrays, strict=True))


def test_pieces_that_do_not_add_up_are_an_error():
    constructor, args = small_frames.reduce_in_pieces(Holder, (_arrays(), "z"), 5, split_above=0)
    with pytest.raises(pickle.UnpicklingError, match="pieces left over after the last buffer: 1"):
        constructor(*args, pickle.PickleBuffer(b"extra"))
    with pytest.raises(pickle.UnpicklingError, match="lacks its last"):
        constructor(*args[:-1])
    overrun = (*args[:-1], pickle.PickleBuffer(bytes(PIECE_BYTES + 8)))
    with pytest.raises(pickle.UnpicklingError, match="overruns its buffer"):
        constructor(*overrun)
    constructor, args = small_frames.reduce_in_pieces(Holder, (_arrays(), "z"), 5)  # all whole
    with pytest.raises(pickle.UnpicklingError, match="did not come whole"):
        constructor(*args[:-1])
    with pytest.raises(pickle.UnpicklingError, match="did not come whole"):
        constructor(*args[:-1], pickle.PickleBuffer(b"short"))


def test_a_rebuilt_value_travels_again():
    """A worker that received the index sends it on to the next (Dask's replication)."""
    header, buffers = _dumped(Holder(_arrays(), "w"))
    once = pickle.loads(header, buffers=buffers)
    header, buffers = _dumped(once)
    twice = pickle.loads(header, buffers=buffers)
    assert all(a.tobytes() == b.tobytes() and a.flags.writeable == b.flags.writeable
               for a, b in zip(_arrays(), twice.arrays, strict=True))


def test_dask_serialisation_keeps_every_frame_small_and_the_value_whole():
    protocol = pytest.importorskip("distributed.protocol.serialize")
    value = Holder(_arrays(), "dask")
    header, frames = protocol.serialize_and_split(value)
    assert max(memoryview(frame).nbytes for frame in frames) <= PIECE_BYTES
    back = protocol.merge_and_deserialize(header, frames)
    assert all(a.tobytes() == b.tobytes() for a, b in zip(value.arrays, back.arrays, strict=True))
    assert isinstance(_base_object(back.arrays[3]), mmap.mmap)


def test_a_dask_index_travels_in_pieces_and_answers_the_same(monkeypatch):
    monkeypatch.setattr(small_frames, "SPLIT_ABOVE", PIECE_BYTES)  # V is 6 MB here, a shard is 64 MiB
    problem = ct.residual_problem(np.random.default_rng(3).normal(size=(1500, 3)), m=512, seed=3)
    index = distributed.prepare(problem, 7, metric="residual", predecessor=True)
    header, buffers = _dumped(index)
    assert max(buffer.raw().nbytes for buffer in buffers) <= PIECE_BYTES
    assert sum(buffer.raw().nbytes for buffer in buffers) > problem.V.nbytes
    back = pickle.loads(header, buffers=buffers)
    assert isinstance(_base_object(back.space.problem.V), mmap.mmap)
    assert not back.space.problem.V.flags.writeable
    sent = distributed.answer_range(index, 0, 1500)
    got = distributed.answer_range(back, 0, 1500)
    assert np.array_equal(sent[0], got[0]) and sent[1].tobytes() == got[1].tobytes()
