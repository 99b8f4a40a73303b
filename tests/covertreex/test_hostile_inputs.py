"""Hostile calls of the Python API (issue 16): scale overflow, ownership, races, resources, raw exceptions.
Each case is refused with a covertreex error naming the argument, and the same way by every engine."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import threading

import numpy as np
import pytest

import covertreex as ct
from covertreex import datasets, engines
from covertreex.errors import (
    InputTypeError,
    InvalidInputError,
    KOutOfRangeError,
    NonFiniteError,
    UnknownNameError,
)
from covertreex.resources import available_cpus
from covertreex.vecchia import FARTHEST_MAX_WIDTH, _fused_pass

ENGINES = ("gold", "rust", "brute")
X = datasets.gaussian(300, 3, 0)


@pytest.mark.parametrize("variance", [1e155, 1e300, 1e-200])
def test_variance_outside_the_representable_range_is_refused(variance):
    with pytest.raises(NonFiniteError, match=re.escape(f"variance = {variance!r} is outside the accepted")):
        ct.CoverTree(metric="residual").fit(X, m=32, variance=variance)


def test_large_variance_inside_the_range_answers_like_variance_one():
    """The metric is scale-free; inside the accepted range nothing overflows."""
    big = ct.CoverTree(metric="residual").fit(X, m=32, variance=1e100).kneighbors(indices=np.arange(60), k=5)
    one = ct.CoverTree(metric="residual").fit(X, m=32).kneighbors(indices=np.arange(60), k=5)
    assert np.array_equal(big[1], one[1])
    np.testing.assert_allclose(big[0], one[0], rtol=1e-6, atol=1e-6)


def test_overflowing_v_is_blamed_on_v_by_every_engine():
    V = ct.residual_problem(X, m=16).V * 1e200
    with pytest.raises(NonFiniteError, match=r"^V row 0 has squared norm inf"):
        ct.ResidualProblem.from_arrays(X, V)


def test_coordinates_over_lengthscale_beyond_the_range_blame_x():
    with pytest.raises(NonFiniteError, match=r"^X\[0, 0\] = .* with lengthscale 1e-300 is outside"):
        ct.residual_problem(X, m=16, lengthscale=1e-300)
    fitted = ct.CoverTree(metric="residual").fit(X, m=16)
    with pytest.raises(NonFiniteError, match=r"^queries\[0, 1\] = 1e\+200"):
        fitted.kneighbors([[0.0, 1e200, 0.0]], k=2)


def test_fit_keeps_its_own_copy_of_the_points(check_same):
    data = X.copy()
    model = ct.CoverTree().fit(data)
    expected = ct.CoverTree().fit(X.copy()).kneighbors(indices=np.arange(40), k=4)
    data[:] = datasets.gaussian(300, 3, 1)
    check_same(model.kneighbors(indices=np.arange(40), k=4), expected)
    assert not model.space.data.X.flags.writeable


def test_residual_problem_keeps_its_own_copies(check_same):
    V = ct.residual_problem(X, m=16).V.copy()
    coords, ls = X.copy(), np.ones(3)
    problem = ct.ResidualProblem.from_arrays(coords, V, lengthscale=ls)
    model = ct.CoverTree(metric="residual").fit(problem)
    expected = model.kneighbors(indices=np.arange(40), k=4)
    coords[:], V[:], ls[:] = 5.0, 0.5, 0.1
    check_same(model.kneighbors(indices=np.arange(40), k=4), expected)


class _PausedGold:
    """The real gold engine, except that each query waits (after the call has read the fitted state)
    until the test lets it go, so a fit can be slotted in exactly there."""

    name = "paused-gold"
    uses_tree = True

    def __init__(self):
        self.gold = engines.get_engine("gold")
        self.entered, self.resume = threading.Event(), threading.Event()

    def available(self):
        return True

    def telemetry_mode(self, config):
        return "parity"

    def build(self, space, order, config):
        return self.gold.build(space, order, config)

    def query(self, tree, space, queries, k, config):
        self.entered.set()
        assert self.resume.wait(60)
        return self.gold.query(tree, space, queries, k, config)


def test_fit_during_a_query_never_mixes_two_fitted_states(monkeypatch, check_same):
    """Old code answered from one fit and described (telemetry) another, or crashed in telemetry."""
    engine = _PausedGold()
    monkeypatch.setitem(engines.ENGINES, engine.name, lambda: engine)
    monkeypatch.setitem(engines._INSTANCES, engine.name, engine)
    first, second = datasets.gaussian(400, 3, 3), datasets.clustered(300, 3, 4)
    model = ct.CoverTree(engine=engine.name, path="tree").fit(first)
    digest = model.space.digest
    results = []
    worker = threading.Thread(target=lambda: results.append(model.query(indices=np.arange(64), k=6)))
    worker.start()
    assert engine.entered.wait(60)
    model.fit(second)
    engine.resume.set()
    worker.join(60)
    [result] = results
    assert result.telemetry["dataset_digest"] == digest and result.telemetry["n_points"] == 400
    check_same((result.distances, result.indices),
               ct.CoverTree().fit(first).kneighbors(indices=np.arange(64), k=6))
    assert model.space.n_points == 300


@pytest.mark.parametrize("engine", ENGINES)
def test_huge_k_is_refused_alike_before_allocating(engine):
    model = ct.CoverTree(engine=engine).fit(X)
    text = r"^k = 4611686018427387904 is too large: the answer \(300 rows"
    with pytest.raises(KOutOfRangeError, match=text):
        model.kneighbors(k=2**62, predecessor=True)


UNDER_LIMIT = """
import resource
resource.setrlimit(resource.RLIMIT_AS, (6 * 10**9, resource.RLIM_INFINITY))  # as ulimit -v, before imports
import sys, numpy as np, covertreex as ct
X = np.random.default_rng(0).normal(size=(300, 2))
try:
    ct.CoverTree(engine=sys.argv[1]).fit(X).kneighbors(k=10**6, predecessor=True)
except ct.errors.KOutOfRangeError as exc:
    print(exc)
"""


@pytest.mark.parametrize("engine", ENGINES)
def test_a_k_the_address_space_limit_cannot_hold_is_refused_not_aborted(engine):
    """Under ``ulimit -v`` 6 GB (an outside user's trial) a 4.8 GB answer passed the check against
    MemAvailable, and rust then failed an 8 MB allocation, which aborted the interpreter (exit 134). The
    limit less the address space held counts, and an answer may take half of what is left."""
    if engine == "rust" and not engines.engine_available("rust"):
        pytest.skip("the rust extension is not built")
    run = subprocess.run([sys.executable, "-c", UNDER_LIMIT, engine], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert re.match(r"k = 1000000 is too large: the answer \(300 rows of k indices and distances\) with as "
                    r"much again for the engine's working memory needs 9.6e\+09 bytes, more than the "
                    r"[0-9.e+]+ bytes of memory available", run.stdout), run.stdout


@pytest.mark.parametrize("limit, usage, cache, headroom", [
    ("max", "123", 0, None), ("1000", "300", 0, 700), ("100", "300", 0, 0),
    ("9223372036854771712", "5", 0, None),
    ("1000", "900", 250, 350),  # page cache the kernel would drop is not counted as used
])
def test_a_containers_memory_limit_counts(tmp_path, limit, usage, cache, headroom):
    """A container's cgroup limit less its usage, which MemAvailable (the host's) does not show: cgroup v2
    files, and v1's, whose 'no limit' is a huge number; inactive page cache counts as free."""
    from covertreex.resources import _cgroup_headroom

    (tmp_path / "memory.max").write_text(limit + "\n")
    (tmp_path / "memory.current").write_text(usage + "\n")
    (tmp_path / "memory.stat").write_text(f"anon 5\nactive_file 7\ninactive_file {cache}\n")
    assert _cgroup_headroom(str(tmp_path)) == headroom
    v1 = tmp_path / "v1"
    (v1 / "memory").mkdir(parents=True)
    (v1 / "memory" / "memory.limit_in_bytes").write_text(limit if limit != "max" else "9223372036854771712")
    (v1 / "memory" / "memory.usage_in_bytes").write_text(usage)
    (v1 / "memory" / "memory.stat").write_text(f"cache 9\ntotal_inactive_file {cache}\n")
    assert _cgroup_headroom(str(v1)) == headroom
    assert _cgroup_headroom(str(tmp_path / "none")) is None


@pytest.mark.parametrize("engine", ["auto", *ENGINES])
@pytest.mark.parametrize("k", [2**63 - 1, 10**30])
def test_huge_k_is_refused_alike_by_the_vecchia_job(engine, k):
    """The rust fused pass (auto's choice) took k + 1 as its candidate room and failed with a type error
    naming 'room' (an outside user's trial)."""
    with pytest.raises(KOutOfRangeError, match=rf"^k = {k} is too large: the answer \(300 rows"):
        ct.vecchia_neighbors(X, k, m=8, engine=engine)



@pytest.mark.parametrize("engine", ["rust", "gold"])
def test_a_fused_maximin_pass_too_large_for_memory_is_refused_before_it_starts(engine, monkeypatch):
    """Its answer fits, but its candidates and operand copies (several times the answer at large k) do
    not: refused naming the pass, not an allocation failure or the OOM killer mid-way. (vecchia_neighbors
    runs gold's pass only when the extension is not built, so gold's is called directly.)"""
    if engine == "rust" and not engines.engine_available("rust"):
        pytest.skip("the rust extension is not built")
    lattice = np.stack(np.meshgrid(*[np.arange(10.0)] * 3), axis=-1).reshape(-1, 3)
    monkeypatch.setattr("covertreex.resources.available_bytes", lambda: 80 * 2**20)
    text = r"^the maximin pass over 1000 points with k = 999 neighbours each needs 9.6\d*e\+07 bytes, more"
    for k, refused in ((50, False), (999, True)):
        with pytest.raises(InvalidInputError, match=text) if refused else contextlib.nullcontext():
            _fused_pass("euclidean", lattice, k, engine, None)
    if engine == "rust":  # and through the job, before any work (in more coordinates than the boxes order)
        wide = np.hstack([lattice, np.zeros((len(lattice), FARTHEST_MAX_WIDTH + 1 - 3))])
        with pytest.raises(InvalidInputError, match=text):
            ct.vecchia_neighbors(wide, 999, ordering="maximin", metric="euclidean", engine=engine)

BLOCK_KNOBS = ["build_block", "gemm_block", "dense_query_block", "dense_point_block", "query_block"]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("knob", BLOCK_KNOBS)
def test_block_sizes_beyond_the_range_are_refused_naming_the_knob(engine, knob):
    """A gold build_block of 2**63 failed inside Numba, and rust named its own argument ('block',
    'query_block' for dense_query_block): now every engine refuses it when the model is made."""
    for value in (2**31, 2**63, 10**30):
        with pytest.raises(InvalidInputError, match=rf"^option '{knob}' must be <= 2147483647 \(2\*\*31 - 1"):
            ct.CoverTree(engine=engine, **{knob: value})


@pytest.mark.parametrize("engine", ENGINES)
def test_the_largest_block_sizes_answer_as_the_defaults(engine, check_same):
    largest = dict.fromkeys(BLOCK_KNOBS, 2**31 - 1)
    for path in ("tree", "dense"):
        model = ct.CoverTree(engine=engine, path=path, build="batch", **largest).fit(X)
        check_same(model.kneighbors(k=5, predecessor=True),
                   ct.CoverTree(engine="brute").fit(X).kneighbors(k=5, predecessor=True))


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("threads", [2**63, 10**9, available_cpus() + 1])
def test_threads_above_the_cpu_count_are_refused_alike(engine, threads):
    text = rf"option 'threads' must be <= {available_cpus()} \(the CPUs"
    with pytest.raises(InvalidInputError, match=text):
        ct.CoverTree(engine=engine, threads=threads)


@pytest.mark.parametrize("engine", ENGINES)
def test_threads_accept_numpy_integers_like_k(engine, check_same):
    model = ct.CoverTree(engine=engine, threads=np.int64(1)).fit(X)
    assert model.config.threads == 1 and type(model.config.threads) is int
    check_same(model.kneighbors(indices=np.arange(9), k=np.int64(3)), ct.CoverTree().fit(X).kneighbors(
        indices=np.arange(9), k=3))


def test_counts_and_scalars_take_zero_d_arrays_and_refuse_timedelta64():
    """k=np.timedelta64(3) answered with k = 3 (NumPy makes timedelta64 an integer type) while point arrays
    of that dtype are refused; variance=np.array(2.0) was refused while lengthscale took it (an outside
    trial)."""
    model = ct.CoverTree(threads=np.array(1)).fit(X)
    assert model.config.threads == 1 and type(model.config.threads) is int
    assert model.kneighbors(indices=[0], k=np.array(3))[1].shape == (1, 3)
    for k in (np.timedelta64(3), np.array(np.timedelta64(3)), np.array([3]), np.array(True)):
        with pytest.raises(InputTypeError, match="^k must be an integer, got"):
            model.kneighbors(indices=[0], k=k)
    with pytest.raises(InputTypeError, match="^option 'threads' must be an integer, got timedelta64"):
        ct.CoverTree(threads=np.timedelta64(1))
    two_d = ct.residual_problem(X, m=8, variance=np.array(2.0))
    assert two_d.variance == 2.0 and type(two_d.variance) is float
    with pytest.raises(InputTypeError, match="^variance must be a real number, got timedelta64"):
        ct.residual_problem(X, m=8, variance=np.timedelta64(2))


def test_rust_extension_refuses_more_threads_than_cpus_when_called_directly():
    from covertreex.config import Config
    from covertreex.engines.rust import RustEngine

    model = ct.CoverTree(engine="rust").fit(X)
    config = Config()
    object.__setattr__(config, "threads", available_cpus() + 1)  # bypass the Python check on purpose
    queries = model.space.indexed_queries([0, 1])
    with pytest.raises(InvalidInputError, match="threads must be between 1 and the number of CPUs"):
        RustEngine().query(model.tree, model.space, queries, 2, config)


@pytest.mark.parametrize(
    ("engine", "variable", "metric"),
    [("rust", "RAYON_NUM_THREADS", "euclidean"), ("gold", "NUMBA_NUM_THREADS", "euclidean"),
     ("brute", "NUMBA_NUM_THREADS", "euclidean"), ("rust", "RAYON_NUM_THREADS", "residual"),
     ("gold", "RAYON_NUM_THREADS", "residual"), ("brute", "RAYON_NUM_THREADS", "residual")],
)
def test_absurd_pool_size_variables_are_refused_instead_of_starting_that_many_threads(engine, variable,
                                                                                        metric):
    """rayon sizes its global pool from RAYON_NUM_THREADS, Numba from NUMBA_NUM_THREADS, when first used.
    A residual job builds V with the rust extension's kernels whatever the engine (gold's started a
    thread per unit of an absurd RAYON_NUM_THREADS). Run apart, since a regression would start 100,000
    threads in this process."""
    script = (
        "import numpy as np, covertreex as ct\n"
        f"model = ct.CoverTree(engine={engine!r}, metric={metric!r})\n"
        "X = np.arange(40.0).reshape(20, 2)\n"
        f"model.fit(X{', m=4' if metric == 'residual' else ''})\n"
        "model.kneighbors(indices=[0], k=2)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={**os.environ, variable: "100000"})
    assert done.returncode == 1
    assert f"InvalidInputError: {variable}" in done.stderr and "100000" in done.stderr


@pytest.mark.parametrize("value", ["abc", "2.5", " 1", "1e3"])
def test_a_pool_size_variable_rayon_cannot_read_is_refused_not_ignored(value):
    """rayon reads RAYON_NUM_THREADS as an unsigned integer and, for any other text, silently starts one
    thread per CPU: a typo would go unnoticed (an outside trial's RAYON_NUM_THREADS=abc ran on every core).
    Run apart: the variable is read when the process first uses the pool."""
    script = ("import numpy as np, covertreex as ct\n"
              "model = ct.CoverTree(engine='rust').fit(np.arange(40.0).reshape(20, 2))\n"
              "model.kneighbors(indices=[0], k=2)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "RAYON_NUM_THREADS": value})
    assert done.returncode == 1
    assert "InvalidInputError: RAYON_NUM_THREADS must be a whole number" in done.stderr
    assert repr(value).replace("'", '"') in done.stderr


@pytest.mark.skipif(available_cpus() < 2 or not hasattr(os, "sched_setaffinity"),
                    reason="needs two CPUs to give up one")
def test_a_thread_count_above_the_cpus_left_is_refused_by_every_engine_at_query_time():
    """The count is checked when the model is made; the process may lose CPUs after that (affinity, or
    the model unpickled elsewhere). Rust refused, gold and brute ran anyway. Apart: it pins the process."""
    script = (
        "import os, numpy as np, covertreex as ct\n"
        "X = np.arange(400.0).reshape(200, 2)\n"
        "models = [ct.CoverTree(engine=e, threads=2, path=p).fit(X) for e in ('gold', 'brute', 'rust')\n"
        "          for p in ('tree', 'dense')]\n"
        "os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})\n"
        "for model in models:\n"
        "    try:\n"
        "        model.kneighbors(X[:3], k=2)\n"
        "        print('answered')\n"
        "    except ct.errors.InvalidInputError as exc:\n"
        "        print(str(exc).split(' (')[0])\n"
    )
    assert _printed(script) == ["threads must be between 1 and the number of CPUs this process may use"] * 6


def _printed(script: str) -> list[str]:
    """The lines `script` prints, run in a process of its own (which it may pin), which must succeed."""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


@pytest.mark.skipif(available_cpus() < 2 or not hasattr(os, "sched_setaffinity"),
                    reason="needs two CPUs to grant one")
def test_a_process_granted_more_cpus_may_use_them():
    """The CPUs are read when a count is checked: a process started on one CPU and granted two refused
    threads=2 (the limit was read when covertreex was imported). Apart: it pins the process."""
    script = (
        "import os, numpy as np\n"
        "cpus = os.sched_getaffinity(0)\n"
        "os.sched_setaffinity(0, {min(cpus)})\n"
        "import covertreex as ct\n"
        "X = np.arange(400.0).reshape(200, 2)\n"
        "try:\n"
        "    ct.CoverTree(threads=2)\n"
        "except ct.errors.InvalidInputError:\n"
        "    print('refused on one CPU')\n"
        "os.sched_setaffinity(0, cpus)\n"
        "for engine in ('gold', 'brute', 'rust'):\n"
        "    print(ct.CoverTree(engine=engine, threads=2).fit(X).kneighbors(X[:3], k=2)[1][:, 0].tolist())\n"
    )
    assert _printed(script) == ["refused on one CPU"] + ["[0, 1, 2]"] * 3


@pytest.mark.parametrize("value", ["0", "-2"])
def test_a_numba_thread_count_below_one_is_named_before_numba_is_imported(value):
    """Numba's own import fails on it, with 'Number of threads specified must be > 0.' and no name."""
    env = {**os.environ, "NUMBA_NUM_THREADS": value}
    script = "import covertreex as ct\nct.vecchia_neighbors\n"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env=env)
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == (
        f"covertreex.errors.InvalidInputError: NUMBA_NUM_THREADS = {value} must be at least 1; unset it or "
        "raise it")
    done = subprocess.run([sys.executable, "-m", "covertreex", "vecchia", "missing.npy"], capture_output=True,
                          text=True, timeout=300, env=env)
    assert (done.returncode, done.stderr) == (
        1, f"pcct: error: NUMBA_NUM_THREADS = {value} must be at least 1; unset it or raise it\n")


@pytest.mark.parametrize(
    ("call", "error", "text"),
    [
        (lambda: ct.CoverTree().fit([[1, 2, 3], [1, 2]]), InputTypeError, "X must be a rectangular array"),
        (lambda: ct.residual_problem(X, seed=-1), InvalidInputError, "seed must be >= 0"),
        (lambda: ct.residual_problem(X, lengthscale=["a", "b", "c"]), InputTypeError,
         r"lengthscale\[0\] must be a real number, got str"),
        (lambda: ct.residual_problem(X, lengthscale=[1.0, True, 1.0]), InputTypeError,
         r"lengthscale\[1\] must be a real number, got bool"),  # as True alone is refused (NumPy made it 1.0)
        (lambda: ct.residual_problem(X, lengthscale=np.array([1 + 1j, 1, 1])), InputTypeError,
         "lengthscale must hold real numbers, got dtype complex128"),  # NumPy cut it to 1.0, with a warning
        (lambda: ct.residual_problem(X, lengthscale=np.ma.masked_array([9.0, 1, 1], mask=[1, 0, 0])),
         InputTypeError, "lengthscale must not be a masked array"),  # NumPy used the masked 9.0
        (lambda: ct.residual_problem(X, variance=10**400), InvalidInputError,
         "variance must be positive and finite, got an integer beyond the float64 range"),  # OverflowError
        (lambda: ct.residual_problem(X, lengthscale=[1.0, 10**400, 1.0]), InvalidInputError,
         r"lengthscale\[1\] must be positive and finite, got an integer beyond the float64 range"),
        (lambda: ct.CoverTree().fit(X).kneighbors(indices=[2**63], k=1), InvalidInputError,
         r"indices must lie in \[0, 300\), got 9223372036854775808 at position 0"),
        (lambda: ct.CoverTree().fit(X).kneighbors(indices=np.array([1, 2], dtype="m8[s]"), k=1),
         InputTypeError, r"indices must hold integers, got dtype timedelta64\[s\]"),
        (lambda: ct.CoverTree().fit(X).kneighbors(k=2, predecessor="no"), InputTypeError,
         "predecessor must be True or False, got str 'no'"),
        (lambda: ct.CoverTree(engine=["gold"]), InputTypeError, r"engine must be a name \(str\), got list"),
        (lambda: ct.CoverTree(preset=["residual_parity"]), InputTypeError, "preset must be a name"),
        (lambda: ct.CoverTree(order=["natural"]), InvalidInputError, "option 'order' must be one of"),
        (lambda: ct.CoverTree(telemetry="yes"), InputTypeError, "option 'telemetry' must be True or False"),
    ],
)
def test_raw_exceptions_became_errors_naming_the_argument(call, error, text):
    with pytest.raises(error, match=text):
        call()


def test_lengthscales_of_any_array_library_or_zero_d_entries_are_numbers():
    """Checking entries one by one must not refuse what NumPy reads as real numbers: an array of another
    library (its dtype says what it holds) or a list of 0-d arrays (a reviewer's case)."""
    given = [np.array(0.5), np.float32(1.0), 2]
    for lengthscale in (given, np.array([0.5, 1.0, 2.0], dtype=np.float32)):
        assert ct.residual_problem(X, m=8, lengthscale=lengthscale).lengthscale.tolist() == [0.5, 1.0, 2.0]


def test_preset_from_the_environment_names_the_variable(monkeypatch):
    monkeypatch.setenv("COVERTREEX_PRESET", " residual_parity")
    text = r"^environment variable COVERTREEX_PRESET=' residual_parity': unknown preset"
    with pytest.raises(UnknownNameError, match=text):
        ct.CoverTree()


def test_save_returns_the_path_written_and_refuses_a_directory(tmp_path):
    tree = ct.CoverTree().fit(X).tree
    assert tree.save(tmp_path / "plain") == tmp_path / "plain.npz"
    assert tree.save(tmp_path / "named.npz") == tmp_path / "named.npz"
    assert (tmp_path / "plain.npz").is_file() and (tmp_path / "named.npz").is_file()
    text = r"is a directory; save the tree to a file such as .*tree\.npz"
    with pytest.raises(InvalidInputError, match=text):
        tree.save(tmp_path)


def test_save_checks_the_file_it_will_really_write(tmp_path):
    """`res` is written as res.npz, so a directory of that name is refused before any work (it failed
    after the whole job with IsADirectoryError); a path written as a directory that does not exist is
    refused (NumPy wrote `results.npz` beside it)."""
    tree = ct.CoverTree().fit(X).tree
    (tmp_path / "res.npz").mkdir()
    with pytest.raises(InvalidInputError, match=r"res\.npz is a directory; save the tree to a file such as"):
        tree.save(tmp_path / "res")
    with pytest.raises(InvalidInputError, match=r"results/ names a directory, which does not exist"):
        tree.save(f"{tmp_path}/results/")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["res.npz"]
    for path in (None, 3, os.fsencode(tmp_path / "t.npz")):
        with pytest.raises(InputTypeError, match=r"^path must be a file path \(str or os\.PathLike\), got"):
            tree.save(path)
        with pytest.raises(InputTypeError, match=r"^path must be a file path"):
            ct.load(path)
