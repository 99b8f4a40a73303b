"""The package shape: two plugins (parity, gate) and covertreex's engines, each behind its own pytest11 entry
point, each switched off on its own with ``-p no:NAME`` and each cheap to load.

The entry points pytest loads come from the installed metadata, so the tests that run pytest also fail when
the install is older than pyproject.toml (reinstall then).
"""

import subprocess
import sys
from pathlib import Path

import pytest

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
PLUGINS = {
    "pcct": "pytest_pcct.parity_plugin",
    "pcct_gate": "pytest_pcct.gate_plugin",
    "pcct_covertreex": "pytest_pcct.covertreex_plugin",
}
HEAVY = ("covertreex", "numpy", "numba")

LOAD_AND_VALIDATE = """
import importlib, sys
import pytest
from pytest_pcct.parity import hooks

module = importlib.import_module({module!r})
print(sorted(name for name in {heavy!r} if name in sys.modules))
manager = pytest.PytestPluginManager()
manager.add_hookspecs(hooks)
manager.register(module)
manager.check_pending()  # raises on a hook implementation no specification knows
print(sorted(caller.name for caller in manager.get_hookcallers(module)))
"""


def test_pyproject_declares_one_entry_point_per_plugin():
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")
    declared = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]["entry-points"]["pytest11"]
    assert declared == PLUGINS


@pytest.mark.parametrize("module", PLUGINS.values())
def test_each_plugin_module_loads_light_and_implements_only_known_hooks(module):
    code = LOAD_AND_VALIDATE.format(module=module, heavy=HEAVY)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    heavy, hooks = run.stdout.splitlines()
    assert heavy == "[]", f"importing {module} imported {heavy}"
    assert hooks != "[]", f"{module} implements no pytest hook"
    if module == PLUGINS["pcct_covertreex"]:
        assert hooks == "['pytest_pcct_register_engines']"


def test_a_project_not_using_pcct_loads_the_plugins_but_none_of_covertreex(pytester):
    """Every plugin is active, under its entry-point name, and costs no import of covertreex or NumPy."""
    pytester.makepyfile(f"""
        import sys

        def test_nothing_heavy(request):
            manager = request.config.pluginmanager
            assert [name for name in {sorted(PLUGINS)!r} if not manager.has_plugin(name)] == []
            assert sorted(name for name in {HEAVY!r} if name in sys.modules) == []
    """)
    pytester.runpytest_subprocess().assert_outcomes(passed=1)


@pytest.mark.parametrize("off", sorted(PLUGINS))
def test_each_plugin_switches_off_alone(pytester, off):
    """``-p no:NAME`` (here from ini addopts, a project's permanent choice) removes that plugin and leaves the
    others loaded. With the parity plugin off nothing specifies the registration hook: the adapter's
    implementation is optional, so pytest does not reject it as an unknown hook."""
    pytester.makeini(f"[pytest]\naddopts = -p no:{off}\n")
    pytester.makepyfile(f"""
        def test_only_that_plugin_is_off(request):
            active = [name for name in {sorted(PLUGINS)!r} if request.config.pluginmanager.has_plugin(name)]
            assert active == {sorted(set(PLUGINS) - {off})!r}
    """)
    pytester.runpytest().assert_outcomes(passed=1)
