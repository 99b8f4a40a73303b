"""Hostile command lines (issue 16), each run as its own process: a one-line error naming the argument or
file, never a traceback, a thread storm or a silently wrong answer; `--out` reports the path written."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys

import numpy as np
import pytest

from covertreex.presets import ENV_VAR
from covertreex.resources import available_cpus

TINY = ["--n", "200", "--dims", "2", "--k", "3", "--queries", "5"]


def _pcct(*args, cwd=None, preexec_fn=None) -> subprocess.CompletedProcess:
    environ = {key: value for key, value in os.environ.items() if key != ENV_VAR}
    return subprocess.run([sys.executable, "-m", "covertreex", *map(str, args)], text=True, env=environ,
                          capture_output=True, timeout=300, cwd=cwd, preexec_fn=preexec_fn)


def test_build_out_reports_the_path_really_written(tmp_path):
    done = _pcct("build", *TINY[:4], "--out", "foo", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "saved   foo.npz" in done.stdout.splitlines()
    assert (tmp_path / "foo.npz").is_file() and not (tmp_path / "foo").exists()


def test_query_out_and_save_tree_report_the_paths_really_written(tmp_path):
    done = _pcct("query", *TINY, "--out", "answers", "--save-tree", "tree", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "saved   answers answers.npz" in lines and "saved   tree tree.npz" in lines
    assert (tmp_path / "answers.npz").is_file() and (tmp_path / "tree.npz").is_file()


def test_a_name_ending_in_npz_in_any_letter_case_is_written_as_given(tmp_path):
    """NumPy appends .npz unless a name ends in lowercase .npz: --out a.NPZ wrote a.NPZ.npz."""
    done = _pcct("query", *TINY, "--out", "a.NPZ", "--save-tree", "t.Npz", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["saved"] == {"tree": "t.Npz", "answers": "a.NPZ"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.NPZ", "t.Npz"]


def test_an_out_whose_npz_is_a_directory_fails_before_the_work(tmp_path):
    (tmp_path / "res.npz").mkdir()
    done = _pcct("vecchia", "x.npy", "--out", "res", cwd=tmp_path)  # x.npy missing: checked after --out
    assert done.returncode == 1, done.stderr
    assert done.stderr.splitlines() == [
        "pcct: error: res.npz is a directory; save the neighbours to a file such as res.npz/neighbours.npz"]


def _file_size_limit() -> None:
    """In the child: files may grow to 8 KiB (`ulimit -f 8`); a larger write fails with EFBIG."""
    resource.setrlimit(resource.RLIMIT_FSIZE, (8192, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))


@pytest.mark.parametrize("args", [
    ["vecchia", "points.npy", "--k", "20", "--m", "16"],
    ["query", "--n", "300", "--dims", "2", "--k", "20", "--queries", "1000"],
    ["build", "--n", "2000", "--dims", "2"],  # Tree.save
])
def test_a_failed_write_keeps_the_previous_file_and_names_it(tmp_path, args):
    """Every .npz was written in place: a write cut short (here by a file size limit) left a truncated
    file where the previous good one was, and NumPy's error named no file. The good file comes from the
    same command, which also leaves Numba's cache warm (a cold one fails writing its own cache files)."""
    np.save(tmp_path / "points.npy", np.random.default_rng(0).normal(size=(300, 2)))
    assert _pcct(*args, "--out", "good.npz", cwd=tmp_path).returncode == 0
    good = tmp_path / "good.npz"
    before = good.read_bytes()
    assert len(before) > 8192
    done = _pcct(*args, "--out", "good.npz", cwd=tmp_path, preexec_fn=_file_size_limit)
    assert done.returncode == 1
    assert good.read_bytes() == before
    assert done.stderr.splitlines() == ["pcct: error: [Errno 27] File too large: 'good.npz'"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good.npz", "points.npy"]  # no temporary left


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs Linux's /dev/full")
def test_a_telemetry_file_that_cannot_be_written_is_named(tmp_path):
    """A full disk surfaces at the flush, whose OSError names no file ("[Errno 28] No space left on
    device", an outside user's trial)."""
    done = _pcct("query", *TINY, "--telemetry", "/dev/full")
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == ("pcct: error: [Errno 28] cannot write telemetry to /dev/full: No "
                                            "space left on device")


@pytest.mark.parametrize("args", [["presets"], ["query", *TINY, "--json"]])
def test_a_closed_standard_output_is_an_error_not_a_silent_success(args):
    """`pcct presets >&-` exited 0 having written nothing (Python drops what is printed to a closed
    stdout)."""
    closed = ["sh", "-c", 'exec "$0" -m covertreex "$@" >&-', sys.executable, *args]  # as a shell user would
    done = subprocess.run(closed, text=True, stderr=subprocess.PIPE, timeout=300,
                          env={key: value for key, value in os.environ.items() if key != ENV_VAR})
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == ("pcct: error: standard output is closed: pcct writes its results "
                                            "there")


def test_query_refuses_a_symlink_to_its_tree_as_an_output(tmp_path):
    """A link to the --tree file is the same file (resolved before the comparison)."""
    assert _pcct("build", *TINY[:4], "--out", "tree.npz", cwd=tmp_path).returncode == 0
    (tmp_path / "link.npz").symlink_to(tmp_path / "tree.npz")
    done = _pcct("query", *TINY, "--tree", "tree.npz", "--save-tree", "link", cwd=tmp_path)
    assert done.stderr.splitlines() == [
        "pcct: error: --tree tree.npz and --save-tree link.npz name the same file; give each its own"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["query", *TINY, "--out", "same", "--save-tree", "same.npz"],  # one written over the other,
         "pcct: error: --out same.npz and --save-tree same.npz name the same file; give each its own"),
        (["query", *TINY, "--tree", "t.npz", "--out", "./t"],  # both reported saved
         "pcct: error: --tree t.npz and --out t.npz name the same file"),
        (["query", *TINY, "--out", "a.npz", "--telemetry", "a.npz"],
         "pcct: error: --out a.npz and --telemetry a.npz name the same file"),
        (["build", *TINY[:4], "--out", "."], "pcct: error: . is a directory; save the tree to a file"),
        (["query", *TINY, "--out", "."], "pcct: error: . is a directory; save the answers to a file"),
        (["query", *TINY, "--metric", "residual", "--m", "8", "--variance", "1e300"],
         "pcct: error: variance = 1e+300 is outside the accepted range"),
        (["query", *TINY, "--threads", "100000"],
         f"pcct: error: option 'threads' must be <= {available_cpus()} (the CPUs this process may use)"),
        (["query", *TINY, "--engine", "brute", "--tree", "missing.npz"],  # brute ignored it, even missing:
         "pcct: error: [Errno 2] No such file or directory (--tree): 'missing.npz'"),  # now checked as on
        # any engine
        (["query", *TINY, "--tree", "adir.npz"],
         "pcct: error: [Errno 21] Is a directory (--tree): 'adir.npz'"),
        (["query", *TINY, "--engine", "gold", "--build", "batch", "--path", "tree", "--build-block",
          "99999999999999999999999"], "pcct: error: option 'build_block' must be <= 2147483647"),
        (["query", *TINY, "--out", ""], "pcct: error: the path to save the answers to is empty"),
        (["query", *TINY, "--save-tree", ""], "pcct: error: the path to save the tree to is empty"),
        (["query", *TINY, "--telemetry", "nodir/t.jsonl"],  # was a bare errno message after the work
         "pcct: error: cannot save the telemetry to nodir/t.jsonl: the directory nodir does not exist"),
        (["query", *TINY, "--telemetry", "."],
         "pcct: error: . is a directory; save the telemetry to a file such as telemetry.jsonl"),
        (["build", *TINY[:4], "--out", ""], "pcct: error: the path to save the tree to is empty"),
        (["query", *TINY, "--repeat", "1000000000000"],  # was accepted and ran until killed
         "pcct query: error: argument --repeat: must be <= 1000, got 1000000000000"),
        (["query", "--n", "99999999999999999999"],  # NumPy's 'Maximum allowed dimension' traceback
         "pcct query: error: argument --n: must be <= 68719476736, got 99999999999999999999"),
        (["build", "--dims", "99999999999999999999"],
         "pcct build: error: argument --dims: must be <= 65536, got 99999999999999999999"),
        (["query", "--queries", "99999999999999999999"],
         "pcct query: error: argument --queries: must be <= 68719476736"),
        (["query", "--n", "68719476736", "--dims", "65536"], "pcct: error: out of memory"),
        (["build", "--k", "3"], "pcct: error: unrecognized arguments: --k 3"),  # taken for --kernel
        (["query", "--quer", "5"], "pcct: error: unrecognized arguments: --quer 5"),  # no abbreviations
    ],
)
def test_hostile_arguments_are_one_line_errors(tmp_path, args, message):
    (tmp_path / "adir.npz").mkdir()
    done = _pcct(*args, cwd=tmp_path)
    assert done.returncode in (1, 2)
    assert "Traceback" not in done.stderr + done.stdout
    [line] = done.stderr.splitlines()
    assert line.startswith(message), line
    assert not (tmp_path / "..npz").exists()


def test_telemetry_validate_of_deeply_nested_json_names_the_file(tmp_path):
    path = tmp_path / "deep.jsonl"
    path.write_text("[" * 100_000 + "]" * 100_000 + "\n")
    done = _pcct("telemetry", "validate", path)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    [line] = done.stderr.splitlines()
    assert line.startswith(f"pcct: error: {path}:1: not a plausible JSON record (maximum recursion depth")


def test_query_help_gives_the_defaults_a_run_really_uses():
    """With no --engine a run is rust in mode perf, not the knob's own default 'parity'."""
    done = _pcct("query", "--help")
    text = " ".join(done.stdout.split())
    assert ("(default: the fastest exact configuration: rust in mode perf, gold where the extension is not "
            "built)") in text
    assert "(default: parity; perf without --engine)" in text
    assert "(default: None)" not in text


def test_query_help_speaks_of_flags_not_python_values():
    """--threads said "(None: all cores)", from its knob's Python doc; no flag takes None."""
    text = " ".join(_pcct("query", "--help").stdout.split())
    assert "None" not in text
    assert ("--threads N worker threads for queries, the batch build and, for raw residual points, "
            "V's construction, at most") in text
    assert "(default: all available cores)" in text
