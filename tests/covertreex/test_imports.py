"""Importing covertreex is cheap: the package, its errors and ``pcct --help`` load neither NumPy, Numba nor
SciPy, and every public name still resolves, whichever module a process imports first."""

import json
import subprocess
import sys

import pytest

import covertreex


def _run(code: str) -> str:
    """Standard output of `code` run by a fresh interpreter (which must succeed)."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _heavy_modules_after(code: str) -> list[str]:
    """Top-level packages among numba, scipy and numpy that a fresh interpreter holds after `code`."""
    listing = "sorted({m.split('.')[0] for m in sys.modules} & {'numba', 'scipy', 'numpy'})"
    return json.loads(_run(f"import json, sys\n{code}\nprint(json.dumps({listing}))").splitlines()[-1])


@pytest.mark.parametrize("code", ["import covertreex.errors", "import covertreex"])
def test_the_package_and_its_errors_import_no_numpy_numba_or_scipy(code):
    assert _heavy_modules_after(code) == []


@pytest.mark.parametrize("argv", [["--help"], ["query", "--help"], ["vecchia", "--help"],
                                  ["query", "--k", "0"], ["presets"]])
def test_pcct_help_argument_errors_and_presets_load_no_numpy_numba_or_scipy(argv):
    code = (
        "from covertreex.cli import main\n"
        f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
        "sys.stdout.flush()"
    )
    assert _heavy_modules_after(code) == []


@pytest.mark.parametrize("first", sorted({*covertreex._HOMES.values(), "covertreex.metrics.kernels",
                                           "covertreex.metrics.data", "covertreex.tree_structure",
                                           "covertreex.maximin_dense", "covertreex.hilbert_curve"}))
def test_every_public_name_resolves_whichever_module_is_imported_first(first):
    _run(f"import {first}\nimport covertreex\nfor name in covertreex.__all__:\n    getattr(covertreex, name)")


def test_an_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="module 'covertreex' has no attribute 'CoverTre'"):
        covertreex.CoverTre  # noqa: B018
    assert set(covertreex.__all__) <= set(dir(covertreex))


@pytest.mark.skipif(not covertreex.engine_available("rust"), reason="the rust extension is not built")
def test_a_euclidean_job_loads_no_scipy_linear_algebra():
    """SciPy's linear algebra (0.2-0.4 s to import: its array-API layer loads numpy.f2py) serves only the
    residual metric's Cholesky and triangular solve; a Euclidean job no longer imports it."""
    code = ("import numpy as np, covertreex as ct\n"
            "X = np.random.default_rng(0).random((500, 3))\n"
            "ct.CoverTree(engine='rust').fit(X).kneighbors(X[:5], k=3)\n"
            "print('scipy.linalg' in sys.modules)\n"
            "ct.CoverTree(engine='rust', metric='residual').fit(X, m=8).kneighbors(indices=[0], k=3)\n"
            "print('scipy.linalg' in sys.modules)")
    assert _run(f"import sys\n{code}").split() == ["False", "True"]


@pytest.mark.skipif(not covertreex.engine_available("rust"), reason="the rust extension is not built")
def test_a_rust_job_loads_no_numba():
    """Numba's import is 0.2 s of a fresh process, and loading its cached kernels as much again; a rust job
    needs none of them: V's building blocks, query points' V rows, the tree's subtree minima and the query
    blocks' Hilbert keys are the extension's twins. A gold job does load it."""
    code = ("import sys, numpy as np, covertreex as ct\n"
            "X = np.random.default_rng(0).random((3000, 3))\n"
            "ct.CoverTree(engine='rust').fit(X).kneighbors(X[:5] + 0.01, k=3)\n"
            "model = ct.CoverTree(engine='rust', metric='residual').fit(X, m=16)\n"
            "model.kneighbors(indices=[0, 1], k=3)\n"
            "model.kneighbors(X[:4] + 0.01, k=3)\n"
            "model.kneighbors(k=3, predecessor=True)\n"
            "ct.vecchia_neighbors(X, 5, ordering='maximin', m=16)\n"
            "ct.vecchia_neighbors(X, 5, ordering='maximin-residual', metric='euclidean', m=16)\n"
            "for metric, mode in (('euclidean', 'perf'), ('residual', 'perf'), ('residual', 'parity')):\n"
            "    tree = ct.CoverTree(engine='rust', metric=metric, mode=mode, path='tree')\n"
            "    tree.fit(X, **({'m': 16} if metric == 'residual' else {}))\n"
            "    tree.kneighbors(X[:70] + 0.01, k=3)\n"
            "    tree.kneighbors(k=3, predecessor=True)\n"
            "print('numba' in sys.modules)\n"
            "ct.CoverTree(engine='gold', path='tree').fit(X)\n"
            "print('numba' in sys.modules)")
    assert _run(code).split() == ["False", "True"]
