"""covertreex.malloc_thresholds in a fresh process whose environment pins glibc's trim threshold, as Dask's
workers do: inside `retained()` a freed 2 MiB buffer is reused (no page faults on the next one), outside
it every buffer is a fresh mapping that faults page by page. Counted in minor page faults, not time."""

import json
import os
import subprocess
import sys

import pytest

CHILD = """
import json, resource
import numpy as np
from covertreex.malloc_thresholds import retained

def faults(rounds=50):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(rounds):
        np.ones(256 * 1024)  # 2 MiB: above glibc's pinned 128 KiB mmap threshold, below numpy's hugepage size
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

counts = {"before": faults()}
with retained():
    with retained():  # nested blocks: the thresholds are restored when the outer one ends
        counts["nested"] = faults()
    counts["inside"] = faults()
counts["after"] = faults()
print(json.dumps(counts))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_memory_is_reused_only_inside_the_block():
    env = dict(os.environ, MALLOC_TRIM_THRESHOLD_="65536")
    out = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, check=True)
    counts = json.loads(out.stdout)
    pages = 50 * (2 << 20) // os.sysconf("SC_PAGE_SIZE")
    assert counts["before"] > pages // 2 and counts["after"] > pages // 2, counts
    assert counts["nested"] < pages // 10 and counts["inside"] < pages // 10, counts
