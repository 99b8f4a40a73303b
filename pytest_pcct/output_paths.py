"""Where the plugins write at the end of a run: checked when the run starts.

A report path whose directory is missing, or that names a directory, failed with a traceback after the
whole run; an empty one silently wrote nothing. Both plugins check their file options here first.
"""

from __future__ import annotations

from pathlib import Path

import pytest


def check_report_file(value, option: str, base: Path) -> None:
    """Refuse (pytest.UsageError naming `option`) a report file that cannot be written where the run
    ends: empty, a directory, or in a directory that does not exist. None: the option was not given."""
    if value is None:
        return
    if not str(value).strip():
        raise pytest.UsageError(f"pytest-pcct: {option} is empty; name a file such as report.json")
    path = Path(base, value)
    if path.is_dir():
        raise pytest.UsageError(f"pytest-pcct: {option}={value} is a directory; name a file inside it")
    if not path.parent.is_dir():
        raise pytest.UsageError(f"pytest-pcct: {option}={value}: the directory {path.parent} does not exist")


def baselines_directory(config) -> Path:
    """The gate's baseline directory: --pcct-baselines, else ini pcct_baselines, under the rootdir. A path
    naming an existing file is refused."""
    path = Path(config.rootpath, config.getoption("pcct_baselines") or config.getini("pcct_baselines"))
    if path.exists() and not path.is_dir():
        raise pytest.UsageError(f"pytest-pcct: --pcct-baselines / ini pcct_baselines names {path}, which is "
                                "a file; name a directory")
    return path
