"""The README's "Using the plugin" example runs as written, in a fresh project."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def example_files() -> dict[str, str]:
    """The section's python blocks, keyed by the file name in their first comment line."""
    section = README.read_text(encoding="utf-8").split("## Using the plugin", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    return {re.match(r"# (\S+):", block).group(1): block for block in blocks}


def test_readme_example_runs(pytester):
    files = example_files()
    assert sorted(files) == ["conftest.py", "test_parity.py"]
    pytester.makeconftest(files["conftest.py"])
    pytester.makepyfile(test_parity=files["test_parity.py"])
    result = pytester.runpytest("--pcct-engines=gold,numpy", "--pcct-report=parity.json")
    result.assert_outcomes(passed=11)
    result.stdout.fnmatch_lines(
        ["*= pcct parity matrix =*", "9 cells (engine pair x dataset x k): *, 0 failed"]
    )
    assert (pytester.path / "parity.json").exists()


def test_readme_engine_is_exact_in_more_dimensions_and_pads_k_beyond_the_points(pytester):
    """Its distances summed the squares with NumPy's pairwise sum(axis=2): ulps off covertreex's canonical
    ones from d = 8 on, so it failed exact mode there, and it returned n columns for k > n (an outside
    user's trial). It passed only as the README used it: tolerance mode, d = 3, k <= n."""
    pytester.makeconftest(example_files()["conftest.py"])
    pytester.makepyfile(test_exact="""
        import pytest

        @pytest.mark.parametrize("d", [8, 24])
        def test_exact(pcct_engine_pair, pcct_dataset, d):
            pcct_engine_pair.check(pcct_dataset("gaussian", n=200, d=d, seed=3), 10)

        def test_k_beyond_the_points(pcct_engine_pair, pcct_dataset):
            pcct_engine_pair.check(pcct_dataset("gaussian", n=7, d=3, n_queries=4), 10)
    """)
    pytester.runpytest("--pcct-engines=gold,numpy").assert_outcomes(passed=3)
