"""Where the plugins write at the end of a run: checked when the run starts.

A report path whose directory is missing, or that names a directory, failed with a traceback after the
whole run; an empty one silently wrote nothing. Both plugins check their file options here first.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CONFIGURATION_FILES = ("pytest.ini", ".pytest.ini", "tox.ini", "setup.cfg", "pyproject.toml", "conftest.py")
"""Files a report must never replace, whether or not this run read them."""


def check_report_file(value, option: str, config) -> None:
    """Refuse (pytest.UsageError naming `option`) a report file that cannot be written where the run
    ends (empty, a directory, or in a directory that does not exist) or that names a file the run is
    made of (a Python file, the ini file, a configuration file): the report replaced a test module
    without a word (an outside trial). None: the option was not given."""
    if value is None:
        return
    if not str(value).strip():
        raise pytest.UsageError(f"pytest-pcct: {option} is empty; name a file such as report.json")
    path = Path(config.invocation_params.dir, value)
    resolved = path.resolve()  # what the report's write replaces: a link's target
    inifile = config.inipath is not None and resolved == Path(config.inipath).resolve()
    if inifile or any(p.suffix == ".py" or p.name in CONFIGURATION_FILES for p in (path, resolved)):
        raise pytest.UsageError(f"pytest-pcct: {option}={value} names a file of the test run itself, which "
                                "the report would replace; name a file such as report.json")
    if path.is_dir():
        raise pytest.UsageError(f"pytest-pcct: {option}={value} is a directory; name a file inside it")
    if not path.parent.is_dir():
        raise pytest.UsageError(f"pytest-pcct: {option}={value}: the directory {path.parent} does not exist")


DEFAULT_BASELINES = "baselines"
"""The baseline directory (under the rootdir) when neither --pcct-baselines nor ini pcct_baselines names
one."""


def baselines_path(config) -> Path:
    """Where --pcct-baselines, else ini pcct_baselines, puts the gate's baselines (under the rootdir),
    unchecked."""
    return Path(config.rootpath, config.getoption("pcct_baselines") or config.getini("pcct_baselines"))


def baselines_directory(config) -> Path:
    """The gate's baseline directory: --pcct-baselines, else ini pcct_baselines, under the rootdir. Refused
    before any test runs (a traceback at the first write otherwise): a path naming a file, lying under a
    file, or a broken symbolic link; in an update run, one whose nearest existing directory is not
    writable."""
    path = baselines_path(config)
    where = f"pytest-pcct: --pcct-baselines / ini pcct_baselines names {path}"
    try:
        path.exists()
    except OSError as exc:  # a parent this process may not search
        raise pytest.UsageError(f"{where}, which cannot be looked up ({exc})") from None
    if path.exists() and not path.is_dir():
        raise pytest.UsageError(f"{where}, which is a file; name a directory")
    if path.is_symlink() and not path.exists():
        raise pytest.UsageError(f"{where}, a symbolic link to nothing; name a directory")
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise pytest.UsageError(f"{where}, which lies under {existing}, a file; name a directory")
    if config.getoption("pcct_update_baselines", False) and not os.access(existing, os.W_OK | os.X_OK):
        raise pytest.UsageError(f"{where}: {existing} is not writable, so no baseline can be recorded there")
    return path
