"""docs/plugin.md's example of the gate in another project runs as written (timed by a ticking clock, so
its verdicts do not depend on the machine)."""

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "plugin.md"
TICKING_CLOCK = '''
"""A clock that moves 1 ms per read: every round measures exactly 1 ms, whatever it does (the example
fixes its rounds with benchmark.pedantic, so pytest-benchmark never calibrates against this clock)."""

_now_ns = [0]


def clock():
    _now_ns[0] += 1_000_000
    return _now_ns[0] * 1e-9
'''


def example_files() -> dict[str, str]:
    """The section's code blocks, keyed by the file name in their first comment line."""
    section = DOC.read_text(encoding="utf-8").split("## The regression gate in other projects", 1)[1]
    blocks = re.findall(r"```(?:python|ini)\n(.*?)```", section, flags=re.S)
    return {re.match(r"# (\S+?):?\s", block).group(1): block for block in blocks}


def test_the_documented_gate_example_records_then_passes(pytester):
    files = example_files()
    assert sorted(files) == ["pytest.ini", "test_bench.py"]
    for name, text in files.items():
        (pytester.path / name).write_text(text)
    pytester.makepyfile(ticking_clock=TICKING_CLOCK)
    pytester.syspathinsert()  # --benchmark-timer imports the clock while options are parsed
    clock = ("-p", "no:cacheprovider", "--benchmark-timer=ticking_clock.clock", "--benchmark-max-time=0.01")
    pytester.runpytest(*clock, "-p", "no:xdist", "--pcct-update-baselines").assert_outcomes(passed=3)
    assert len(list((pytester.path / "baselines" / "counters").glob("*.json"))) == 1  # time-only: none
    result = pytester.runpytest(*clock, "-p", "no:xdist", "--benchmark-compare")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["*test_bench.py::test_counted*1 equal*1.00x (limit 1.50x)*PASSED",
                                 "*test_bench.py::test_time_only*-*1.00x (limit 1.30x)*PASSED"])
