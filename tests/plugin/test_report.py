"""The parity matrix: terminal section, --pcct-report JSON, and the same matrix under pytest-xdist."""

import json
import os
import resource
import signal
import stat
import subprocess
import sys

MATRIX_TESTS = """
import pytest

@pytest.mark.parametrize("k", [1, 3, 6])
@pytest.mark.parametrize("kind, params", [("gaussian", {}), ("lattice", {"side": 4})])
def test_pair(pcct_engine_pair, pcct_dataset, kind, params, k):
    problem = pcct_dataset(kind, n=150, d=2, n_queries=5, **params)
    pcct_engine_pair.check(problem, k, mode="tolerance", rtol=0.0, atol=0.0)
"""


def matrix_section(output: str) -> list[str]:
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if "pcct parity matrix" in line)
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith(("===", "parity report")))
    return lines[start:end]


def test_serial_and_xdist_runs_give_the_same_matrix(wrong_engines):
    wrong_engines.makepyfile(MATRIX_TESTS)
    engines = "--pcct-engines=gold,tieflip,ulp"
    serial = wrong_engines.runpytest("-p", "no:xdist", engines, "--pcct-report=serial.json")
    parallel = wrong_engines.runpytest_subprocess("-n", "2", engines, "--pcct-report=xdist.json")
    serial.assert_outcomes(passed=6, failed=6)
    parallel.assert_outcomes(passed=6, failed=6)
    parallel.stdout.fnmatch_lines(["created: 2/2 workers", "parity report written to xdist.json"])
    assert (wrong_engines.path / "serial.json").read_text() == (wrong_engines.path / "xdist.json").read_text()
    assert matrix_section(serial.stdout.str()) == matrix_section(parallel.stdout.str())
    report = json.loads((wrong_engines.path / "serial.json").read_text())
    assert report["engines"] == ["gold", "tieflip", "ulp"] and report["seed"] == 0
    assert report["totals"] == {"exact": 3, "tie-equal": 3, "failed": 6, "counters differ": 0}
    cell = next(c for c in report["cells"] if c["candidate"] == "ulp" and c["k"] == 3
                and c["dataset"].startswith("euclidean gaussian"))
    assert cell == {
        "reference": "gold", "candidate": "ulp", "k": 3, "status": "failed", "checks": 1,
        "dataset": "euclidean gaussian d=2 n=150 q=5 queries=points seed=0",
        "digests": [cell["digests"][0]], "max_abs_diff": None, "telemetry": "not compared",
        "failure": cell["failure"],
    }  # rejected on arrival (its distance is not the true one at rtol=0), so never compared: no gap
    assert cell["failure"].startswith(
        "engine 'ulp' on euclidean gaussian d=2 n=150 q=5 queries=points seed=0, k=3: query row 0, "
        "position 1, index ")


def test_terminal_section_lists_one_row_per_pair_and_dataset(wrong_engines):
    wrong_engines.makepyfile(MATRIX_TESTS)
    result = wrong_engines.runpytest("--pcct-engines=gold,tieflip")
    result.assert_outcomes(passed=6)
    assert matrix_section(result.stdout.str())[1:] == [
        "6 cells (engine pair x dataset x k): 3 exact, 3 tie-equal, 0 failed",
        "pair          dataset                                                       k      status  max|dd|"
        "  counters",
        "gold-tieflip  euclidean gaussian d=2 n=150 q=5 queries=points seed=0        1,3,6  EEE     0"
        "        not compared",
        "gold-tieflip  euclidean lattice d=2 n=150 q=5 queries=points seed=0 side=4  1,3,6  TTT     0"
        "        not compared",
        "status per k: E exact, T tie-equal (distances within the tolerance, not bitwise equal, or indices "
        "that differ only within ties), F failed; max|dd| = largest |distance difference|; counters: "
        "telemetry of one group compared (differ: a failure)",
        "",
    ]


def test_no_checks_print_no_section(pytester):
    pytester.makepyfile("def test_engine(pcct_engine):\n    pass\n")
    result = pytester.runpytest("--pcct-engines=gold,brute", "--pcct-report=empty.json")
    result.assert_outcomes(passed=2)
    assert "pcct parity matrix" not in result.stdout.str()
    report = json.loads((pytester.path / "empty.json").read_text())
    assert report["cells"] == [] and report["skipped_pair_tests"] == 0


def test_an_engine_that_changes_its_input_reports_alike_serially_and_under_xdist(wrong_engines):
    """The tests after the change failed as "changed after it was made", and which ones did followed how
    xdist shared them out: the report's failure text differed between the two runs (an outside user's
    trial). A changed problem is made afresh for the next test instead."""
    wrong_engines.makepyfile(MATRIX_TESTS)
    serial = wrong_engines.runpytest("-p", "no:xdist", "--pcct-engines=gold,writes", "--pcct-report=s.json")
    parallel = wrong_engines.runpytest_subprocess("-n", "2", "--pcct-engines=gold,writes",
                                                  "--pcct-report=x.json")
    serial.assert_outcomes(failed=6)
    parallel.assert_outcomes(failed=6)
    assert (wrong_engines.path / "s.json").read_text() == (wrong_engines.path / "x.json").read_text()


def test_a_report_through_a_link_leaves_the_link(wrong_engines):
    """The gate's report and baselines, and the parity report, are written beside their file and renamed
    over it, except where a rename would change what the path is: a link (followed), a pipe, a device
    (an outside trial's gate report replaced /dev/full with a regular file)."""
    wrong_engines.makepyfile(MATRIX_TESTS)
    (wrong_engines.path / "real.json").write_text("{}")
    (wrong_engines.path / "link.json").symlink_to("real.json")
    wrong_engines.runpytest("-p", "no:xdist", "--pcct-engines=gold,tieflip", "--pcct-report=link.json")
    assert (wrong_engines.path / "link.json").is_symlink()
    assert json.loads((wrong_engines.path / "real.json").read_text())["engines"] == ["gold", "tieflip"]


def _small_files():
    """A subprocess's regular files may hold at most 64 bytes; a longer write fails with EFBIG."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))


def test_a_report_that_cannot_be_written_is_one_line_and_a_failed_run(wrong_engines):
    """A full disk or a file size limit at the end of the run was a traceback from pytest_sessionfinish."""
    wrong_engines.makepyfile(MATRIX_TESTS)
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:xdist",
                           "--pcct-engines=gold,tieflip", "--pcct-report=parity.json"],
                          cwd=wrong_engines.path, capture_output=True, text=True, timeout=300,
                          preexec_fn=_small_files, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr and "INTERNALERROR" not in done.stdout
    [line] = [line for line in done.stdout.splitlines() if "pytest-pcct:" in line]
    assert line.startswith("pytest-pcct: --pcct-report could not be written: [Errno 27] File too large: '")
    assert line.endswith("/parity.json'")
    assert "parity report written" not in done.stdout
    assert not any(stat.S_ISREG(path.lstat().st_mode) and path.name.endswith(".tmp")
                   for path in wrong_engines.path.iterdir())  # the half-written file is gone
