"""Build time and build work (distance evaluations) per engine and metric, gated against baselines/."""

import time

import pytest

pytestmark = [
    pytest.mark.benchmark(timer=time.process_time),  # see benchmarks/conftest.py
    pytest.mark.pcct_instructions,  # counted under callgrind by --pcct-gate=instructions
]


@pytest.mark.parametrize("metric", ["euclidean", "residual"])
def test_build(benchmark, fitted, workloads, metric, pcct_build_counters):
    workload = workloads[metric]
    tree = fitted(workload)
    benchmark(tree.fit, workload.data)
    pcct_build_counters(tree)
