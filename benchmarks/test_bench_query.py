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


@pytest.mark.parametrize("path", ["tree", DENSE])
@pytest.mark.parametrize("metric", ["euclidean", "residual"])
def test_query(benchmark, fitted, workloads, metric, path, pcct_gate):
    workload = workloads[metric]
    tree = fitted(workload, path)
    tree.query(**workload.query)  # first call compiles; not timed
    result = benchmark(tree.query, **workload.query)
    pcct_gate.record_telemetry(result.telemetry)
