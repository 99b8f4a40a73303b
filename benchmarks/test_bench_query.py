"""Query time and query work (the telemetry record's counters) per engine, metric and path (the tree
walk, and the dense GEMM screening path), gated against baselines/."""

import time

import pytest

pytestmark = [
    pytest.mark.benchmark(timer=time.process_time),  # see benchmarks/conftest.py
    pytest.mark.pcct_instructions,  # counted under callgrind by --pcct-gate=instructions
]


# The dense path's GEMM runs on BLAS threads (gold) whose CPU time includes their spin-waits: noisier than
# the single-threaded walk, so its time is gated with a wider threshold (its counters stay exact).
DENSE = pytest.param("dense", marks=pytest.mark.pcct_time(threshold=2.5))


# rust's residual tree query counted 81.5 M instructions run alone or in this repository's checkout and
# 83.3-83.6 M in .ci/run's clean clones (unexplained as of 2026-12-02; see the session note): 3% until
# the cause is found, instead of the default 1%.
RESIDUAL = pytest.param("residual", marks=pytest.mark.pcct_instructions(tolerance=0.03))


@pytest.mark.parametrize("path", ["tree", DENSE])
@pytest.mark.parametrize("metric", ["euclidean", RESIDUAL])
def test_query(benchmark, fitted, workloads, metric, path, pcct_gate):
    workload = workloads[metric]
    tree = fitted(workload, path)
    tree.query(**workload.query)  # first call compiles; not timed
    result = benchmark(tree.query, **workload.query)
    pcct_gate.record_telemetry(result.telemetry)
