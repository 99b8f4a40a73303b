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
