"""The rust extension's twins of covertreex's Numba functions: the same formulas in the same operation order,
so the same bits (rust/core/src/kernel_matrix.rs, tree.rs, hilbert.rs; tests/covertreex/test_kernel_twins.py
compares each pair). Callers take the twin where the extension is built, so a rust job that builds its own
tree (or none) loads no Numba: its import is about 0.2 s of a fresh process, and loading its cached kernels
costs as much again. (Checking a saved tree, ``covertreex.load``, still runs Numba code.)"""

from __future__ import annotations


def rust_twin(name: str):
    """The extension's function `name` where the extension is built (and has it), else None."""
    from covertreex.engines.rust import _extension  # here: the engine's module imports the callers

    return getattr(_extension(), name, None)
