"""The Euclidean maximin job whose rows are answered while its order is placed
(covertreex/vecchia_overlap.py): the bytes of the job answered after its order, exact against brute force,
progress heard on the caller's thread only, and no ordering thread left behind by a failure."""

from __future__ import annotations

import itertools
import threading

import numpy as np
import pytest

import covertreex as ct
from covertreex import interrupts, vecchia_overlap

pytestmark = pytest.mark.skipif(not ct.engine_available("rust"), reason="the rust extension is not built")

ORDERING_THREAD = "covertreex maximin order"


@pytest.fixture
def small_prefixes(monkeypatch):
    """Prefixes from 1,024 points, so that a job of a few thousand points hands several over (the
    extension hands one over at each multiple of 4,096 placements that passes a size)."""
    monkeypatch.setattr(vecchia_overlap, "FIRST_PREFIX", 1024)


def _points(name: str) -> np.ndarray:
    rng = np.random.default_rng(8)
    if name == "uniform":
        return rng.uniform(size=(20_000, 2))
    if name == "lattice+duplicates":  # ties in the order and in every row
        lattice = np.array(list(itertools.product(range(20), repeat=3)), dtype=float)
        return np.concatenate([lattice, lattice[::2], lattice[:1000]])
    return np.concatenate([1e-3 * rng.normal(size=(9000, 2)), 50 + rng.normal(size=(4000, 2))])  # clusters


def _job(X, k, **options):
    return ct.vecchia_neighbors(X, k, metric="euclidean", ordering="maximin", **options)


def _same(a, b) -> bool:
    return all(getattr(a, name).tobytes() == getattr(b, name).tobytes()
               for name in ("ordering", "neighbors", "distances"))


def test_prefix_sizes_halve_down_to_the_first_prefix_and_above_k():
    assert vecchia_overlap.prefix_sizes(10**6, 30) == [31250, 62500, 125000, 250000, 500000]
    assert vecchia_overlap.prefix_sizes(10**6, 100_000) == [125000, 250000, 500000]
    assert vecchia_overlap.prefix_sizes(30_000, 5) == []  # N/2 below FIRST_PREFIX: nothing to overlap


def test_the_extension_hands_over_each_prefix_at_the_next_report():
    from covertreex.engines.rust import maximin_order

    X = np.random.default_rng(0).uniform(size=(20_000, 2))
    handed = []
    order, _ = maximin_order(X, 0, prefixes=[100, 5000, 8192, 8193, 12000, 20_000], on_prefix=handed.append)
    assert [len(prefix) for prefix in handed] == [4096, 8192, 12288]  # never the whole order
    assert all(np.array_equal(prefix, order[: len(prefix)]) for prefix in handed)


@pytest.mark.parametrize("k", [1, 7, 40])
@pytest.mark.parametrize("name", ["uniform", "lattice+duplicates", "clusters"])
def test_rows_answered_while_the_order_is_placed_are_the_jobs_after_it(small_prefixes, monkeypatch, name, k):
    """Two threads overlap; one thread orders, then answers: the same bytes. The spy proves rows were
    answered on prefixes (else the test would compare the sequential job with itself)."""
    prefixes = []
    real = vecchia_overlap._while_placed
    monkeypatch.setattr(vecchia_overlap, "_while_placed",
                        lambda prefix, *rest: prefixes.append(len(prefix)) or real(prefix, *rest))
    X = _points(name)
    overlapped = _job(X, k, threads=2)
    assert len(prefixes) >= 2 and overlapped.neighbor_seconds > 0.0
    before = len(prefixes)
    sequential = _job(X, k, threads=1)
    assert len(prefixes) == before  # one thread: no overlap
    assert _same(overlapped, sequential)


def test_the_rust_engines_parity_mode_answers_after_the_order(small_prefixes, monkeypatch):
    """engine='rust' (parity mode) answers on the tree path, where each prefix would build a tree of its
    own: the job was 15-25% slower overlapped (a review), so it answers after the order there."""
    prefixes = []
    real = vecchia_overlap._while_placed
    monkeypatch.setattr(vecchia_overlap, "_while_placed",
                        lambda prefix, *rest: prefixes.append(len(prefix)) or real(prefix, *rest))
    X = _points("uniform")[:12_000]
    assert _same(_job(X, 5, threads=2, engine="rust"), _job(X, 5, threads=2))
    assert len(prefixes) == 2  # the second job's (handed at 4,096 and 8,192), none of the first's


def test_rows_answered_on_prefixes_are_brute_force(small_prefixes):
    X = _points("lattice+duplicates")
    job = _job(X, 9, threads=2)
    oracle = ct.CoverTree(engine="brute", metric="euclidean").fit(X[job.ordering])
    oracle = oracle.query(k=9, predecessor=True)
    assert job.neighbors.tobytes() == oracle.indices.tobytes()
    assert job.distances.tobytes() == oracle.distances.tobytes()


def test_progress_is_heard_on_the_callers_thread_rows_before_the_order_ends(small_prefixes):
    heard = []
    X = _points("uniform")
    _job(X, 5, threads=2, progress=lambda stage, n: heard.append((stage, n, threading.get_ident())))
    assert {ident for _, _, ident in heard} == {threading.get_ident()}
    for stage in ("ordering", "neighbours"):
        counts = [n for s, n, _ in heard if s == stage]
        assert counts == sorted(counts) and counts[-1] == len(X), stage
    ordered = [n for s, n, _ in heard if s == "ordering"]
    assert len(set(ordered)) == len(ordered)  # N once (it was heard twice)
    order_done = heard.index(("ordering", len(X), threading.get_ident()))
    assert any(stage == "neighbours" and 0 < n < len(X) for stage, n, _ in heard[:order_done])


def _ordering_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == ORDERING_THREAD]


def test_a_failure_of_the_caller_stops_the_ordering_at_its_next_report(small_prefixes, monkeypatch):
    """The caller's progress raises on the first rows of a prefix; the ordering, held at its third report
    until then (no timing: it waits for the failure), stops there instead of placing every point, and its
    thread has ended when the job raises."""
    from covertreex.engines import rust

    real, failed, reports = rust.maximin_order, threading.Event(), []

    def held(X, first, progress=None, **options):
        def heard(n):
            reports.append(n)
            if len(reports) == 3:
                assert failed.wait(60)
            progress(n)

        return real(X, first, heard, **options)

    def progress(stage, n):
        if stage == "neighbours" and n > 0:
            failed.set()
            raise RuntimeError("the caller gave up")

    monkeypatch.setattr(rust, "maximin_order", held)
    X = _points("uniform")
    with pytest.raises(RuntimeError, match="the caller gave up"):
        _job(X, 5, threads=2, progress=progress)
    assert not _ordering_threads()
    assert reports == [4096, 8192, 12288]  # of 20,000: stopped at the report after the failure


def test_an_error_of_the_ordering_reaches_the_caller(small_prefixes, monkeypatch):
    from covertreex.engines import rust

    def failing(*args, **kwargs):
        raise MemoryError("no room to place the points")

    monkeypatch.setattr(rust, "maximin_order", failing)
    with pytest.raises(MemoryError, match="no room to place the points"):
        _job(_points("uniform"), 5, threads=2)
    assert not _ordering_threads()


def test_an_interrupt_ends_the_job_and_its_ordering_thread(small_prefixes, monkeypatch):
    """Ctrl-C held back by covertreex.interrupts: the check raises wherever it is polled (the main thread
    between messages and during its queries, the ordering's own call), and the job ends with it."""
    class Stopped(Exception):
        pass

    def check():
        raise Stopped

    monkeypatch.setattr(interrupts, "check", check)
    with pytest.raises(Stopped):
        _job(_points("uniform"), 5, threads=2)
    assert not _ordering_threads()
