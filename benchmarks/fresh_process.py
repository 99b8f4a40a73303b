"""A user's whole wait in a fresh process: the interpreter, the imports and one small job, against peers.

A script that asks one question pays, besides the job, for starting Python and importing what answers it.
Each row runs its job in a new interpreter (``python -c``), alternating the systems round by round so that
they share the machine's load, and reports the median wall time (and its range) over ``--runs`` rounds:

* ``euclidean``: N = 32,768 points in d = 3 (``default_rng(0).normal``), 1,024 queries (``default_rng(1)``),
  k = 50: covertreex's default ``CoverTree().fit(X).kneighbors(Q, k=50)`` against scipy's cKDTree
  (build + query) and scikit-learn's KDTree where installed;
* ``residual``: N = 2,000 points, RBF, m = 64 inducing points, 5 new query points, k = 5: covertreex's
  ``CoverTree(metric="residual").fit(X, m=64).kneighbors(Q, k=5)``; its peer is the floor of the imports
  it cannot avoid (NumPy and SciPy's linear algebra, for V's Cholesky factor and triangular solve);
* ``floor``: ``import numpy`` alone, the least any NumPy-based answer costs.

Before timing, untimed processes check that each checkout's rows import that checkout and its rust
extension, and that covertreex's Euclidean answer equals cKDTree's (indices).
``--checkout NAME=DIR`` adds covertreex rows run from another checkout of the repository (its directory
first on ``PYTHONPATH``), to compare two versions in one run.

    python benchmarks/fresh_process.py --runs 9 --checkout before=/tmp/ab/old
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_args import header, positive_int  # noqa: E402

EUCLIDEAN_DATA = ("import numpy as np\n"
                  "X = np.random.default_rng(0).normal(size=(32768, 3))\n"
                  "Q = np.random.default_rng(1).normal(size=(1024, 3))\n")
RESIDUAL_DATA = ("import numpy as np\n"
                 "X = np.random.default_rng(0).normal(size=(2000, 3))\n"
                 "Q = np.random.default_rng(1).normal(size=(5, 3))\n")
JOBS = {
    "euclidean": {
        "covertreex": EUCLIDEAN_DATA + "import covertreex as ct\n"
                      "idx = ct.CoverTree().fit(X).kneighbors(Q, k=50)[1]\n",
        "scipy cKDTree": EUCLIDEAN_DATA + "from scipy.spatial import cKDTree\n"
                         "idx = cKDTree(X).query(Q, k=50)[1]\n",
        "scikit-learn KDTree": EUCLIDEAN_DATA + "from sklearn.neighbors import KDTree\n"
                               "idx = KDTree(X).query(Q, k=50)[1]\n",
    },
    "euclidean, tree path": {  # a kept index: the tree is built and walked
        "covertreex": EUCLIDEAN_DATA + "import covertreex as ct\n"
                      "idx = ct.CoverTree(path='tree').fit(X).kneighbors(Q, k=50)[1]\n",
        "scipy cKDTree": EUCLIDEAN_DATA + "from scipy.spatial import cKDTree\n"
                         "idx = cKDTree(X).query(Q, k=50)[1]\n",
    },
    "residual": {
        "covertreex": RESIDUAL_DATA + "import covertreex as ct\n"
                      "ct.CoverTree(metric='residual').fit(X, m=64, seed=0).kneighbors(Q, k=5)\n",
        "imports floor (numpy + scipy.linalg)": "import numpy, scipy.linalg\n",
    },
    "floor": {"import numpy": "import numpy\n"},
}
"""Each job's systems and the code a fresh interpreter runs for each."""

NEEDS = {"scikit-learn KDTree": "sklearn", "scipy cKDTree": "scipy"}


REPOSITORY = str(Path(__file__).resolve().parents[1])
"""The checkout this script belongs to: its covertreex rows import this one."""


def wall_seconds(code: str, pythonpath: str | None) -> float:
    """Wall seconds of a fresh interpreter running `code` (it must succeed), from a neutral directory
    (``python -c`` puts the working directory before PYTHONPATH on sys.path)."""
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [pythonpath, env.get("PYTHONPATH")]))
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          cwd=tempfile.gettempdir())
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"a fresh process failed:\n{code}\n{done.stderr}")
    return seconds


def check_checkouts(checkouts: list[tuple[str, str]]) -> None:
    """In untimed processes: each checkout's rows import that checkout and its rust extension (a checkout
    without one would time gold), and covertreex's Euclidean indices equal cKDTree's (no ties here)."""
    for name, directory in checkouts:
        code = ("import os, covertreex as ct\n"
                f"assert ct.__file__.startswith(os.path.join({directory!r}, '')), ct.__file__\n"
                f"assert ct.engine_available('rust'), 'checkout {name} has no built rust extension'\n")
        wall_seconds(code, directory)
    code = (EUCLIDEAN_DATA + "import covertreex as ct\nfrom scipy.spatial import cKDTree\n"
            "ours = ct.CoverTree().fit(X).kneighbors(Q, k=50)[1]\n"
            "assert (ours == cKDTree(X).query(Q, k=50)[1]).all(), 'covertreex differs from cKDTree'\n")
    wall_seconds(code, REPOSITORY)


def checkout(text: str) -> tuple[str, str]:
    name, _, directory = text.partition("=")
    if not name or not Path(directory, "covertreex", "__init__.py").is_file():
        raise argparse.ArgumentTypeError(f"expected NAME=DIR with DIR a checkout of covertreex, got {text!r}")
    return name, directory


def rows(checkouts: list[tuple[str, str]]) -> list[tuple[str, str, str, str | None]]:
    """(job, system, code, PYTHONPATH) of every row, covertreex once per checkout."""
    out = []
    for job, systems in JOBS.items():
        for system, code in systems.items():
            if system in NEEDS and importlib.util.find_spec(NEEDS[system]) is None:
                continue
            if system == "covertreex":
                out += [(job, f"covertreex ({name})", code, directory) for name, directory in checkouts]
            else:
                out.append((job, system, code, None))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=positive_int, default=7, help="rounds; the median is reported")
    parser.add_argument("--checkout", type=checkout, action="append", default=[],
                        help="NAME=DIR: also run covertreex from the checkout in DIR")
    args = parser.parse_args()
    checkouts = [("this checkout", REPOSITORY), *args.checkout]
    table = rows(checkouts)
    header(f"{args.runs} rounds, systems alternating within each")
    check_checkouts(checkouts)
    for _, _, code, path in table:  # warm-up: Numba's and Python's caches, the page cache
        wall_seconds(code, path)
    times = {(job, system): [] for job, system, _, _ in table}
    for _ in range(args.runs):
        for job, system, code, path in table:
            times[job, system].append(wall_seconds(code, path))
    print("\n| job | system | fresh-process wall s (median) | min - max | vs first row of the job |")
    print("|---|---|---|---|---|")
    first = {}
    for job, system, _, _ in table:
        median = statistics.median(times[job, system])
        first.setdefault(job, median)
        print(f"| {job} | {system} | {median:.3f} | {min(times[job, system]):.3f} - "
              f"{max(times[job, system]):.3f} | {median / first[job]:.2f}x |")


if __name__ == "__main__":
    main()
