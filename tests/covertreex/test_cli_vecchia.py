"""`pcct vecchia`: points file in, the same ordering and neighbours as vecchia_neighbors out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import covertreex as ct
from covertreex.engines import engine_available


def run(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "covertreex", "vecchia", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def points(tmp_path_factory):
    folder = tmp_path_factory.mktemp("vecchia")
    X = np.random.default_rng(7).normal(size=(150, 2))
    np.save(folder / "x.npy", X)
    np.savetxt(folder / "x.csv", X, delimiter=",", header="x,y", fmt="%.17g")
    np.savetxt(folder / "perm.csv", np.random.default_rng(1).permutation(150), fmt="%d")
    np.savetxt(folder / "permf.csv", np.random.default_rng(1).permutation(150), fmt="%.6e")  # 1.2e+01
    np.save(folder / "perm2d.npy", np.random.default_rng(1).permutation(150).reshape(75, 2))
    (folder / "half.csv").write_text("0\n1.5\n")
    (folder / "bad.csv").write_text("1,2\n3,oops\n")
    (folder / "header.csv").write_text("x,1\n1,2\n")  # names only some columns
    (folder / "ragged.csv").write_text("# x,y\n1,2\n\n3,4,5\n")
    (folder / "nan.csv").write_text("# x,y\n1,2\n\n3,nan\n")
    (folder / "latin1.csv").write_bytes("# x,\xe9\n1,2\n".encode("latin-1"))
    (folder / "uminus.csv").write_text("\u22121.5,\u22122.5\n1,3\n2,6\n")  # a word processor's minus
    (folder / "hexadecimal.csv").write_text("0x10,0x20\n1,3\n")
    (folder / "endash.csv").write_text("\u20131,\u20132\n1,3\n")  # a word processor's autocorrect
    (folder / "yearnames.csv").write_text('"2019 sales","2020 sales"\n1,3\n2,4\n')  # R's quoted names
    (folder / "ordinals.csv").write_text("1st,2nd\n1,3\n2,4\n")
    (folder / "semicolons.csv").write_text("1;2\n3;4\n")  # a spreadsheet's export in some locales
    (folder / "macbyte.csv").write_bytes(b"0,0\r1,0\r0,\xe9\r")
    (folder / "bomlatin1.csv").write_bytes(b"\xef\xbb\xbf# x\n1,\xe9\n")
    (folder / "underscore.csv").write_text("# x,y\n1,2\n3,1_000\n5,x\n")
    (folder / "mac.csv").write_bytes(b"0,0\r1,0\r0,2\r")  # classic Mac OS line ends
    (folder / "spaces.csv").write_text("# x,y\n0,0 # the origin\n  \n1,0\r\n\t# z\n0,2\n   \n")
    (folder / "empty.csv").write_text("")
    np.save(folder / "big.npy", np.array([[1e200, 0.0], [0.0, 1.0], [1.0, 1.0]]))
    (folder / "bom.csv").write_bytes("\ufeff0,0\n1,0\n0,2\n".encode())  # Excel's "CSV UTF-8"
    (folder / "names.csv").write_text("lon,lat\n0,0\n1,0\n0,2\n")  # pandas' to_csv(index=False)
    (folder / "quotednames.csv").write_text('# saved by R\n"lon","lat"\n0,0\n1,0\n0,2\n')  # row.names = FALSE
    (folder / "bigint.csv").write_text("# id,t\n9007199254740992,0\n9007199254740993,0\n0,1\n")
    (folder / "wideint.csv").write_text(f"2,1\n{'9' * 400},0\n")  # float64 reads inf
    (folder / "longint.csv").write_text(f"2,1\n1,{'9' * 5000}\n")  # beyond int()'s 4,300 digits
    (folder / "labels.csv").write_text("0,1\n0.5,0.25\n0.1,0.9\n")  # a frame of an array: to_csv(index=False)
    (folder / "labeled.csv").write_text("x,y\n0,1\n0.5,0.25\n0.1,0.9\n")  # (0, 1) is a point here
    (folder / "pandasindex.csv").write_text(",0,1\n0,0.5,0.25\n1,0.1,0.9\n")  # pandas' to_csv()
    (folder / "namedindex.csv").write_text(",x,y\n0,0.5,0.25\n1,0.1,0.9\n")  # to_csv() of named columns
    np.savetxt(folder / "naturalrow.csv", np.arange(150)[None, :], fmt="%d", delimiter=",")  # 0,1,...,149
    np.save(folder / "m8.npy", np.arange(150).astype("m8[s]"))  # NumPy counts timedelta64 as an integer
    (folder / "inexact.csv").write_text("4.99999999999999999\n")  # float64 rounds it to 5
    (folder / "huge.csv").write_text("9223372036854775807\n")
    (folder / "tiny.csv").write_text("1e-999999999\n")  # float64 reads 0.0; an exact parse must not expand it
    (folder / "beyond.csv").write_text("1e-99999999999999999999\n")  # beyond Decimal's exponents
    (folder / "xlink.npz").symlink_to(folder / "x.npy")
    (folder / "quoted.csv").write_text('"1","2"\n"3","4"\n')  # R's write.csv, pandas' QUOTE_ALL
    (folder / "rownames.csv").write_text('"","lon","lat"\n"1",0,0\n"2",1,0\n')  # R's write.csv defaults
    (folder / "adir.npy").mkdir()
    (folder / "tablenames.csv").write_text("lon,lat\n1,0,0\n2,1,0\n3,0,2\n")  # R's write.table(sep = ",")
    (folder / "wideheader.csv").write_text("x,y,z\n0,0\n1,0\n0,2\n")
    (folder / "underflow.csv").write_text("x,y\n0,0\n1e-400,0\n0,2\n")  # float64 reads 0.0
    (folder / "zeros.csv").write_text("x,y\n0,0.0\n-0,1\n.0e5,2\n+00.00E-3,3\n")  # zeros as people write them
    np.save(folder / "perm1.npy", np.random.default_rng(1).permutation(150) + 1)  # R's and GpGp's, from 1
    np.save(folder / "permfloat.npy", np.random.default_rng(1).permutation(150).astype(float))  # R's doubles
    np.save(folder / "halves.npy", np.arange(150) + 0.5)
    np.savetxt(folder / "perm1.csv", np.arange(1, 151), fmt="%d")
    np.save(folder / "nan.npy", np.where(np.arange(8)[:, None] == 3, np.nan, np.ones((8, 2))))
    with open(folder / "huge.npy", "wb") as fh:  # a header claiming 24 TB over 100 bytes of data
        np.lib.format.write_array_header_1_0(fh, {"descr": "<f8", "fortran_order": False,
                                                  "shape": (10**12, 3)})
        fh.write(bytes(100))
    return folder, X


@pytest.mark.parametrize("source, flags, expected", [
    ("x.npy", ["--metric", "residual", "--m", "12", "--seed", "3"],
     {"metric": "residual", "ordering": "maximin", "m": 12, "seed": 3}),
    ("x.csv", ["--metric", "euclidean", "--ordering", "random", "--seed", "4"],
     {"metric": "euclidean", "ordering": "random", "seed": 4}),
    ("x.npy", ["--metric", "euclidean", "--ordering-file", "perm.csv"],
     {"metric": "euclidean", "ordering": np.random.default_rng(1).permutation(150)}),
    ("x.npy", ["--metric", "euclidean", "--ordering-file", "permf.csv"],  # whole numbers written as floats
     {"metric": "euclidean", "ordering": np.random.default_rng(1).permutation(150)}),
    ("x.npy", ["--metric", "residual", "--m", "400"],
     {"metric": "residual", "ordering": "maximin", "m": 400}),
    ("x.npy", ["--metric", "residual", "--m", "12", "--threads", "1"],
     {"metric": "residual", "ordering": "maximin", "m": 12}),
])
def test_writes_what_vecchia_neighbors_returns(points, tmp_path, source, flags, expected):
    folder, X = points
    flags = [str(folder / f) if f.endswith(".csv") else f for f in flags]
    done = run(folder / source, "--k", "4", *flags, "--out", tmp_path / "nn", "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["n"] == 150 and summary["dims"] == 2 and summary["k"] == 4
    assert summary["out"] == str(tmp_path / "nn.npz")
    fastest = "rust" if engine_available("rust") else "gold"
    assert (summary["engine"], summary["engine_ran"]) == ("auto", fastest)
    assert "order " in done.stderr and "saved " in done.stderr
    result = ct.vecchia_neighbors(X, 4, **expected)
    saved = np.load(tmp_path / "nn.npz")  # no pickles: the summary is a string
    assert json.loads(str(saved["summary"])) == summary  # how the arrays were made (k, metric, m, seed...)
    np.testing.assert_array_equal(saved["ordering"], result.ordering)
    np.testing.assert_array_equal(saved["neighbors"], result.neighbors)
    np.testing.assert_array_equal(saved["distances"].view(np.int64), result.distances.view(np.int64))
    assert summary["ordering"] == result.ordering_name
    assert summary["threads"] == (1 if "--threads" in flags else None)
    fused = isinstance(expected["ordering"], str) and expected["ordering"] == "maximin"
    assert summary["neighbours_found"] == ("with the ordering" if fused else "here")
    if "m" in expected:  # the inducing points taken: every point when more were asked for
        assert summary["residual"]["m"] == min(expected["m"], 150)


ERROR_CASES = [
    (["x.txt"], 1, "x.txt: the points must be a .npy or .csv file, got '.txt'"),
    (["missing.npy"], 1, "[Errno 2] No such file or directory (the points): '"),
    (["missing.csv"], 1, "[Errno 2] No such file or directory (the points): '"),  # was "... not found."
    (["x.npy", "--metric", "euclidean", "--ordering-file", "missing.csv"], 1,
     "[Errno 2] No such file or directory (the ordering): '"),
    (["bad.csv"], 1, "bad.csv: cannot read the points as comma-separated numbers, one row per point: line 2, "
     "column 2 is 'oops', not a number"),  # NumPy's "at row 1": rows of values from 0, columns from 1
    (["header.csv"], 1, "header.csv: cannot read the points as comma-separated numbers, one row per point: "
     "line 1, column 1 is 'x', not a number; a header line must name every column (or start with '#')"),
    (["ragged.csv"], 1, "ragged.csv: cannot read the points as comma-separated numbers, one row per point: "
     "line 4 holds 3 entries where line 2 holds 2"),  # NumPy's "at row 3" advised its `usecols` argument
    (["nan.csv"], 1, "nan.csv: the points must be finite; line 4, column 2 is nan"),  # "first at row 1"
    (["latin1.csv"], 1, "latin1.csv: cannot read the points as comma-separated numbers, one row per point: "
     "line 1, byte 5 of it (0xe9) is not UTF-8 text (invalid continuation byte); save the file as UTF-8"),
    (["uminus.csv"], 1, "uminus.csv: cannot read the points as comma-separated numbers, one row per point: "
     "line 1, column 1 is '\u22121.5', not a number; write numbers with the ASCII digits"),  # skipped as a
    # header: a point lost without a word
    (["hexadecimal.csv"], 1, "hexadecimal.csv: cannot read the points as comma-separated numbers, one row "
     "per point: line 1, column 1 is '0x10', not a number; write numbers with the ASCII digits"),
    (["endash.csv"], 1, "endash.csv: cannot read the points as comma-separated numbers, one row per point: "
     "line 1, column 1 is '\u20131', not a number; write numbers with the ASCII digits"),
    (["semicolons.csv"], 1, "semicolons.csv: cannot read the points as comma-separated numbers, one row per "
     "point: line 1, column 1 is '1;2', not a number; values must be separated by commas"),  # was: a header
    (["macbyte.csv"], 1, "macbyte.csv: cannot read the points as comma-separated numbers, one row per "
     "point: line 3, byte 3 of it (0xe9)"),  # a lone '\r' ends a line here too (it said line 1)
    (["bomlatin1.csv"], 1, "bomlatin1.csv: cannot read the points as comma-separated numbers, one row per "
     "point: line 2, byte 3 of it (0xe9) is not UTF-8 text"),  # counted from after the byte-order mark
    (["underscore.csv"], 1, "underscore.csv: cannot read the points as comma-separated numbers, one row per "
     "point: line 3, column 2 is '1_000', not a number"),  # Python's float() reads it, NumPy does not:
    # NumPy's "at row 1" came through, with a hint about a header the file has
    (["x.npy", "--ordering-file", "x.npy"], 1, "x.npy: the ordering must be one column or one row (a "
     "permutation of 0..149), got shape (150, 2)"),  # was "must be a name (natural, ...) or ...": a file
    # holds no name
    (["x.npy", "--ordering-file", "halves.npy"], 1, "halves.npy: ordering must hold whole numbers, a "
     "permutation of range(150); entry 0 is 0.5"),
    (["x.npy", "--ordering", "maxmin"], 2, "invalid choice: 'maxmin'"),
    (["x.npy", "--k", "0"], 2, "--k: must be >= 1"),
    (["x.npy", "--engine", "fast"], 2, "argument --engine: invalid choice: 'fast'"),  # was exit 1 while
    # --kernel's choices exited 2: both are a bad command line
    (["x.npy", "--metric", "euclidean", "--lengthscale", "2", "--m", "3"], 2,
     "pcct vecchia: error: --lengthscale, --m: only for the residual metric or --ordering maximin-residual "
     "(the metric is euclidean, the ordering maximin)"),  # was silently ignored, then exit 1: a bad command
    # line exits 2
    (["x.npy", "--out", ""], 1, "the path to save the neighbours to is empty"),  # wrote nothing, exit 0
    (["huge.npy"], 1, "huge.npy (the points) claims shape (1000000000000, 3) of float64"),  # was "out of
    # memory (try a smaller --n, ...)", naming neither the file nor an option pcct vecchia has
    (["nan.npy"], 1, "nan.npy (the points) contains NaN or inf (first at row 3)"),  # named "X"
    (["empty.csv"], 1, "empty.csv: the file holds no rows of the points (only blank or '#' lines)"),  # was
    # "must not be empty, got shape (0, 1)", a shape the file does not have
    (["x.npy", "--ordering-file", "perm2d.npy"], 1, "perm2d.npy: the ordering must be one column or one row "
     "(a permutation of 0..149), got shape (75, 2)"),  # was the API's "must be a name (natural, ...)"
    (["x.npy", "--ordering-file", "half.csv"], 1, "half.csv: the ordering must hold integers, a permutation "
     "of 0..149; entry 1 (line 2, column 1) is 1.5"),
    (["bigint.csv", "--metric", "euclidean"], 1, "bigint.csv: the points hold the integer 9007199254740993 "
     "(line 3, column 1), which float64 cannot represent exactly"),  # rounded to a duplicate of row 0
    (["wideint.csv"], 1, f"wideint.csv: the points hold the integer {'9' * 400} (line 2, column 1), "
     "which float64 cannot represent exactly"),  # an OverflowError traceback
    (["longint.csv"], 1, f"longint.csv: the points hold the integer {'9' * 5000} (line 2, column 2)"),  # a
    # ValueError traceback (int() takes at most 4,300 digits)
    (["x.npy", "--out", "nodir/nn.npz"], 1, "nodir/nn.npz: the directory"),  # after all the work
    (["x.npy", "--ordering-file", "m8.npy"], 1, "m8.npy: the ordering must hold integers, a permutation of "
     "0..149, got dtype timedelta64[s]"),  # an IndexError traceback
    (["x.npy", "--ordering-file", "inexact.csv"], 1, "inexact.csv: the ordering must hold integers, a "
     "permutation of 0..149; entry 0 (line 1, column 1) is 4.99999999999999999"),  # was taken for 5
    (["x.npy", "--ordering-file", "tiny.csv"], 1, "tiny.csv: the ordering must hold integers, a permutation "
     "of 0..149; entry 0 (line 1, column 1) is 1e-999999999"),  # was taken for 0
    (["x.npy", "--ordering-file", "beyond.csv"], 1, "beyond.csv: the ordering must hold integers, a "
     "permutation of 0..149; entry 0 (line 1, column 1) is 1e-99999999999999999999"),
    # was decimal.InvalidOperation
    (["x.npy", "--ordering-file", "huge.csv"], 1, "huge.csv: the ordering must be a permutation of 0..149; "
     "entry 0 (line 1, column 1) is 9223372036854775807, out of range"),
    # was "the ordering hold the integer ... float64"
    (["x.npy", "--variance", "1e-300"], 1, "pcct: error: variance = 1e-300 is outside"),  # was prefixed
    (["x.npy", "--metric", "euclidean", "--ordering", "natural", "--seed", "5"], 2,  # was ignored silently
     "pcct vecchia: error: --seed: only for --ordering random or a residual problem's inducing points"),
    # "x.npy (the points): ", as if the points were at fault
    (["x.npy", "--out", "xlink.npz"], 1, "xlink.npz name the same file; give each its own"),  # a link to
    # the points file, which the write replaced
    (["big.npy", "--metric", "euclidean"], 1, "big.npy (the points): X has coordinates beyond"),  # no file
    (["quoted.csv"], 1, "quoted.csv: cannot read the points as comma-separated numbers, one row per point: "
     "line 1, column 1 is '\"1\"', not a number; numbers must be written without quotes"),  # called a header
    (["rownames.csv"], 1, "rownames.csv: cannot read the points as comma-separated numbers, one row per "
     "point: line 2, column 1 is '\"1\"', not a number; numbers must be written without quotes (a first "
     "column of quoted numbers is R's row names: write.csv(..., row.names = FALSE) leaves them out)"),
    (["labels.csv"], 1, "labels.csv: cannot tell whether line 1, '0,1', names the columns or is one of the "
     "points: pandas writes 0,1,... as the header of a frame made from an array"),  # read as a point
    (["pandasindex.csv"], 1, "pandasindex.csv: cannot read the points as comma-separated numbers, one row "
     "per point: line 1, column 1 is '', not a number; a first column without a name is pandas' index, "
     "which to_csv(index=False) leaves out"),
    (["namedindex.csv"], 1, "namedindex.csv: cannot read the points as comma-separated numbers, one row per "
     "point: the first line names every column but the first, the header pandas writes over its index "
     "column"),  # skipped as a header, the index was read as a coordinate
    (["adir.npy"], 1, "adir.npy: the points must be a .npy or .csv file, got a directory"),  # [Errno 21]
    ([""], 1, "pcct: error: the path of the points is empty"),  # was named ".", a directory
    (["tablenames.csv"], 1, "tablenames.csv: cannot read the points as comma-separated numbers, one row per "
     "point: the header (line 1) names 2 columns but line 2 holds 3 entries (R's write.table writes row "
     "names under a header that does not name them: row.names = FALSE leaves them out)"),  # row names
    # were read as a coordinate
    (["wideheader.csv"], 1, "wideheader.csv: cannot read the points as comma-separated numbers, one row per "
     "point: the header (line 1) names 3 columns but line 2 holds 2 entries (a column is missing"),
    (["underflow.csv"], 1, "underflow.csv: the points hold 1e-400 (line 3, column 1), which float64 reads as "
     "0 (it underflows)"),  # read as 0 while the larger 1e-300 was refused
    (["x.npy", "--ordering-file", "adir.npy"], 1, "adir.npy: the ordering must be a .npy or .csv file, got "
     "a directory"),
    (["x.npy", "--metric", "euclidean", "--ordering-file", "perm1.npy"], 1, "perm1.npy: ordering must be a "
     "permutation of range(150); entry 74 is 150, outside it (it holds 1..150: orderings count from 0 here; "
     "subtract 1 from a 1-based one, as R's)"),
    (["x.npy", "--metric", "euclidean", "--ordering-file", "perm1.csv"], 1, "perm1.csv: the ordering must "
     "be a permutation of 0..149; entry 149 (line 150, column 1) is 150, out of range (it holds 1..150"),
    (["x.npy", "--threads", "0"], 2, "argument --threads: must be >= 1, got 0"),
    (["x.npy", "--threads", "100000"], 1, "pcct: error: option '--threads' must be <= "),  # the CPUs it may
    # use; named 'threads', the library's argument, not the flag
    (["x.npy", "--variance", "0"], 2, "argument --variance: must be positive and finite, got '0'"),  # was
    # the library's "variance must be positive", exit 1, naming no flag
    (["x.npy", "--lengthscale", "1,-2"], 2, "argument --lengthscale: must be positive and finite, got '-2'"),
    (["x.npy", "--lengthscale", "1e-300"], 1, "x.npy (the points) with --lengthscale: X[0, 0] = "),  # the
    # points alone were blamed
]


@pytest.fixture(scope="module")
def error_runs(points):
    """Every error case, run concurrently (separate processes: only the wall time is shared)."""
    folder, _ = points
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda case: run(*[str(folder / a) if "." in a else a for a in case[0]]),
                             ERROR_CASES))


@pytest.mark.parametrize("case", range(len(ERROR_CASES)), ids=[" ".join(c[0]) for c in ERROR_CASES])
def test_errors_are_one_line(error_runs, case):
    flags, status, words = ERROR_CASES[case]
    done = error_runs[case]
    assert done.returncode == status
    [line] = done.stderr.splitlines()
    assert line.startswith("pcct") and words in line, line
    if "cannot read the points" in words:  # a header hint only where the first line is the problem
        header = "line 1, column" in words and not any(
            other in words for other in ("separated by commas", "quotes", "pandas' index", "ASCII digits"))
        assert ("a header line must name every column" in line) == header, line


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_an_ordering_from_a_named_pipe_is_read_once(points, tmp_path):
    """The whole-number check read an ordering .csv a second time: from a named pipe it waited forever."""
    folder, X = points
    pipe = tmp_path / "order.csv"
    os.mkfifo(pipe)
    order = np.random.default_rng(1).permutation(150)
    writer = threading.Thread(target=pipe.write_text, args=("\n".join(map(str, order)) + "\n",))
    writer.start()
    done = run(folder / "x.npy", "--k", "2", "--metric", "euclidean", "--ordering-file", pipe,
               "--out", tmp_path / "nn")
    writer.join()
    assert done.returncode == 0, done.stderr
    expected = ct.vecchia_neighbors(X, 2, metric="euclidean", ordering=order)
    np.testing.assert_array_equal(np.load(tmp_path / "nn.npz")["neighbors"], expected.neighbors)


def test_points_from_a_named_pipe_are_read(points, tmp_path):
    """A .npy from a named pipe was "[Errno 29] Illegal seek (the points)": its header check seeks."""
    folder, X = points
    pipe = tmp_path / "points.npy"
    os.mkfifo(pipe)
    writer = threading.Thread(target=pipe.write_bytes, args=((folder / "x.npy").read_bytes(),), daemon=True)
    writer.start()
    done = run(pipe, "--k", "2", "--metric", "euclidean", "--out", tmp_path / "nn")
    writer.join(timeout=60)
    assert done.returncode == 0, done.stderr
    expected = ct.vecchia_neighbors(X, 2, metric="euclidean")
    np.testing.assert_array_equal(np.load(tmp_path / "nn.npz")["neighbors"], expected.neighbors)


def test_a_run_without_out_says_nothing_was_saved(points):
    folder, _ = points
    done = run(folder / "x.npy", "--k", "2", "--metric", "euclidean", "--ordering", "random", "--seed", "3")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "saved   nothing (pass --out FILE.npz to keep the result)"


def test_the_file_is_written_before_the_summary_lines(points, tmp_path):
    """`pcct vecchia ... --out nn.npz | true`: the reader left before the first summary line, whose
    BrokenPipeError ended the run before the file was written."""
    folder, X = points
    with subprocess.Popen([sys.executable, "-m", "covertreex", "vecchia", str(folder / "x.npy"), "--k", "3",
                           "--metric", "euclidean", "--out", str(tmp_path / "nn.npz")],
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) as child:
        child.stdout.close()  # before the child can print: its start-up alone takes longer
        child.wait(timeout=300)
    expected = ct.vecchia_neighbors(X, 3, metric="euclidean")
    np.testing.assert_array_equal(np.load(tmp_path / "nn.npz")["neighbors"], expected.neighbors)


@pytest.mark.parametrize("name", ["bom.csv", "spaces.csv", "mac.csv", "names.csv", "quotednames.csv"])
def test_a_csv_with_a_byte_order_mark_or_whitespace_lines_is_read(points, tmp_path, name):
    """Excel's "CSV UTF-8" starts with a byte-order mark, which was refused as a header without '#'; a line
    of spaces (or spaces before a comment) was "the number of columns changed", with advice about NumPy's
    `usecols`; a first line naming the columns (pandas, R) was refused unless it started with '#'. Every
    file holds the points (0, 0), (1, 0), (0, 2)."""
    folder, _ = points
    done = run(folder / name, "--k", "1", "--metric", "euclidean", "--ordering", "natural",
               "--out", tmp_path / "nn", "--json")
    assert done.returncode == 0, done.stderr
    saved = np.load(tmp_path / "nn.npz")
    assert saved["neighbors"][1:, 0].tolist() == [0, 0] and saved["distances"][1:, 0].tolist() == [1.0, 2.0]


@pytest.mark.parametrize("name", ["yearnames.csv", "ordinals.csv"])
def test_a_header_of_names_that_start_with_digits_is_skipped(points, tmp_path, name):
    """Names written like numbers only in part ('2019 sales', quoted or not; '1st') still name columns."""
    folder, _ = points
    done = run(folder / name, "--k", "1", "--metric", "euclidean", "--ordering", "natural", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["n"] == 2


def test_zeros_written_in_every_form_are_read_as_zeros(points, tmp_path):
    """The refusal of a nonzero entry that float64 reads as 0 (error_runs) takes '-0', '.0e5' and
    '+00.00E-3' for the zeros they are."""
    folder, _ = points
    done = run(folder / "zeros.csv", "--k", "1", "--metric", "euclidean", "--ordering", "natural",
               "--out", tmp_path / "nn", "--json")
    assert done.returncode == 0, done.stderr
    assert np.load(tmp_path / "nn.npz")["distances"][1:, 0].tolist() == [1.0, 1.0, 1.0]


def test_an_ordering_file_of_whole_floats_is_read(points, tmp_path):
    """A float64 .npy of whole numbers (R's doubles) was refused where the same numbers in a .csv passed."""
    folder, X = points
    done = run(folder / "x.npy", "--k", "2", "--metric", "euclidean", "--ordering-file",
               folder / "permfloat.npy", "--out", tmp_path / "nn")
    assert done.returncode == 0, done.stderr
    assert np.array_equal(np.load(tmp_path / "nn.npz")["ordering"], np.random.default_rng(1).permutation(150))


def test_position_labels_are_refused_only_where_a_header_could_stand(points, tmp_path):
    """pandas heads a frame made from an array with 0,1,...: read as a point, it added one (an outside
    trial: every ordering entry and row moved). Refused there (error_runs), such a line is a point after a
    header line, and an ordering written as a row is 0,1,... itself."""
    folder, X = points
    done = run(folder / "labeled.csv", "--k", "1", "--metric", "euclidean", "--ordering", "natural",
               "--out", tmp_path / "nn", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["n"] == 3
    done = run(folder / "x.npy", "--k", "2", "--metric", "euclidean", "--ordering-file",
               folder / "naturalrow.csv", "--out", tmp_path / "nat", "--json")
    assert done.returncode == 0, done.stderr
    assert np.array_equal(np.load(tmp_path / "nat.npz")["ordering"], np.arange(150))


def test_an_npy_file_of_every_format_version_numpy_writes_is_read(tmp_path):
    """A valid version 3.0 file was refused as 'unsupported .npy version (3, 0)' (an outside trial)."""
    from covertreex.npz import read_npy

    points = np.random.default_rng(2).normal(size=(20, 3))
    for version in ((1, 0), (2, 0), (3, 0)):
        path = tmp_path / f"v{version[0]}.npy"
        with open(path, "wb") as fh:
            np.lib.format.write_array(fh, points, version=version)
        assert path.read_bytes()[6:8] == bytes(version)
        assert np.array_equal(read_npy(path, "the points"), points)


def test_a_warning_of_the_job_is_one_line_and_in_the_summary(tmp_path):
    """Neighbours without any residual correlation (covertreex.vecchia.UncorrelatedNeighboursWarning):
    Python showed the warning with the CLI's source line under it."""
    np.save(tmp_path / "far.npy", np.random.default_rng(0).uniform(0, 1000, size=(300, 2)))
    done = run(tmp_path / "far.npy", "--k", "3", "--m", "16", "--json")
    assert done.returncode == 0, done.stderr
    [line] = [text for text in done.stderr.splitlines() if text.startswith("pcct vecchia: warning: ")]
    assert line.startswith("pcct vecchia: warning: 9") and line.endswith("of the points' spacing?")
    assert json.loads(done.stdout)["warnings"] == [line.removeprefix("pcct vecchia: warning: ")]
    np.save(tmp_path / "near.npy", np.random.default_rng(0).uniform(size=(300, 2)))  # the other extreme
    done = run(tmp_path / "near.npy", "--k", "3", "--m", "16", "--lengthscale", "1e8", "--json")
    assert done.returncode == 0, done.stderr
    [line] = [text for text in done.stderr.splitlines() if text.startswith("pcct vecchia: warning: ")]
    assert "at residual distance 0 from their nearest predecessor" in line
    assert json.loads(done.stdout)["warnings"] == [line.removeprefix("pcct vecchia: warning: ")]
    np.save(tmp_path / "columns.npy", np.random.default_rng(0).normal(size=(3, 40)))  # points as columns
    done = run(tmp_path / "columns.npy", "--k", "5", "--metric", "euclidean", "--json")
    assert done.returncode == 0, done.stderr
    [line] = [text for text in done.stderr.splitlines() if text.startswith("pcct vecchia: warning: ")]
    assert line.endswith("if yours are the columns, transpose X")
    assert json.loads(done.stdout)["warnings"] == [line.removeprefix("pcct vecchia: warning: ")]
