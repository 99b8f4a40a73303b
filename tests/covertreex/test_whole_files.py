"""covertreex.whole_files.write_whole: all or nothing, and a path stays what it was (a link, a pipe, a
hard-linked file). The gate's baselines and reports and every .npz the library writes go through it."""

from __future__ import annotations

import errno
import os
import stat

import pytest

from covertreex.whole_files import write_whole
from pytest_pcct.gate.baselines import atomic_write_json


def _text(data: bytes):
    return lambda fh: fh.write(data)


def test_a_file_is_replaced_whole_and_keeps_its_mode(tmp_path):
    target = tmp_path / "a.json"
    target.write_text("old")
    target.chmod(0o640)
    write_whole(target, _text(b"new"))
    assert target.read_bytes() == b"new" and stat.S_IMODE(target.stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "a.json"
    target.write_text("old")

    def half(fh):
        fh.write(b"ne")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="a.json"):  # named as given
        write_whole(target, half)
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_a_link_stays_a_link_and_its_file_gets_the_bytes(tmp_path):
    (tmp_path / "real.json").write_text("{}")
    (tmp_path / "link.json").symlink_to("real.json")
    atomic_write_json(tmp_path / "link.json", {"a": 1})  # the gate's writer replaced the link
    assert (tmp_path / "link.json").is_symlink()
    assert (tmp_path / "real.json").read_text() == '{\n  "a": 1\n}\n'


def test_a_hard_linked_file_is_written_in_place(tmp_path):
    (tmp_path / "one.json").write_text("{}")
    os.link(tmp_path / "one.json", tmp_path / "two.json")
    atomic_write_json(tmp_path / "two.json", {"b": 2})
    assert (tmp_path / "one.json").read_text() == (tmp_path / "two.json").read_text() == '{\n  "b": 2\n}\n'


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes")
def test_a_pipe_stays_a_pipe_and_its_reader_gets_the_bytes(tmp_path):
    pipe = tmp_path / "report.json"
    os.mkfifo(pipe)
    reader = os.open(pipe, os.O_RDONLY | os.O_NONBLOCK)  # open before the write, as a waiting reader is
    try:
        atomic_write_json(pipe, {"c": 3})  # replaced by a regular file; the reader got nothing
        assert os.read(reader, 1 << 16) == b'{\n  "c": 3\n}\n' and stat.S_ISFIFO(pipe.lstat().st_mode)
    finally:
        os.close(reader)


def test_a_loop_of_links_is_refused_not_replaced(tmp_path):
    (tmp_path / "a").symlink_to("b")
    (tmp_path / "b").symlink_to("a")
    with pytest.raises(OSError, match="symbolic links") as caught:
        write_whole(tmp_path / "a", _text(b"x"))
    assert caught.value.errno == errno.ELOOP and (tmp_path / "a").is_symlink()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes")
@pytest.mark.timeout(60)  # the write waited forever for a reader
def test_a_pipe_without_a_reader_fails_at_once(tmp_path):
    pipe = tmp_path / "report.json"
    os.mkfifo(pipe)
    with pytest.raises(OSError, match="no process reads the pipe"):
        write_whole(pipe, _text(b"x"))


def test_a_refused_rename_writes_in_place(tmp_path, monkeypatch):
    """A bind-mounted file (EBUSY) or another user's file in a sticky directory (EPERM) cannot be renamed
    over, but can be written."""
    target = tmp_path / "bound.json"
    target.write_text("old")

    def busy(source, destination):
        raise OSError(errno.EBUSY, "Device or resource busy")

    monkeypatch.setattr(os, "replace", busy)
    write_whole(target, _text(b"new"))
    assert target.read_bytes() == b"new" and sorted(p.name for p in tmp_path.iterdir()) == ["bound.json"]


def test_an_empty_path_is_named_as_such():
    with pytest.raises(FileNotFoundError, match="the path is empty"):
        write_whole("", _text(b"x"))
