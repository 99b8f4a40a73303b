"""Under pytest-xdist each worker has a Numba cache directory of its own (see tests/conftest.py)."""

import os

import pytest


def test_each_xdist_worker_caches_in_its_own_directory():
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker is None:
        pytest.skip("a serial run shares no cache between processes")
    import numba.core.config

    import covertreex.metrics.kernels as kernels

    assert os.path.basename(numba.core.config.CACHE_DIR) == worker
    locator = kernels.kernel_block._cache._cache_path
    assert os.path.commonpath([locator, numba.core.config.CACHE_DIR]) == numba.core.config.CACHE_DIR
