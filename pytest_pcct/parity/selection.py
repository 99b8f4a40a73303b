"""Which engines and seed a run uses, read from the command line or the ini file (no heavy imports)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest


@dataclass(frozen=True)
class Selection:
    """The engines under test (the first is the reference), where they were chosen, and the base seed."""

    engines: tuple[str, ...]
    source: str
    seed: int
    oracle: str | None = None
    """The engine chosen as oracle (--pcct-oracle / ini pcct_oracle); None keeps the registered one."""

    @property
    def pairs(self) -> list[tuple[str, str]]:
        """(reference, candidate) for every other selected engine."""
        return [(self.engines[0], other) for other in self.engines[1:]]


def read(config: pytest.Config) -> Selection:
    """The selection from --pcct-engines/--pcct-seed, else the ini keys pcct_engines/pcct_seed."""
    text, source = config.getoption("pcct_engines"), "--pcct-engines"
    if text is None:
        text, source = config.getini("pcct_engines"), "ini option pcct_engines"
    names = [part.strip() for part in text.split(",")] if text.strip() else []
    if any(not name for name in names):
        raise pytest.UsageError(f"pytest-pcct: empty engine name in {source}={text!r}")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise pytest.UsageError(f"pytest-pcct: engine {repeated[0]!r} is listed twice in {source}={text!r}")
    seed = config.getoption("pcct_seed")
    if seed is None:
        raw = config.getini("pcct_seed")
        try:
            seed = int(raw)
        except ValueError:
            raise pytest.UsageError(
                f"pytest-pcct: ini option pcct_seed must be an integer, got {raw!r}"
            ) from None
    if seed < 0:  # numpy.random.default_rng refuses it, inside every test
        raise pytest.UsageError(
            f"pytest-pcct: the pcct seed (--pcct-seed or ini pcct_seed) must be >= 0, got {seed}")
    oracle = config.getoption("pcct_oracle")
    if oracle is not None and not oracle.strip():  # was silently the registered oracle
        raise pytest.UsageError("pytest-pcct: --pcct-oracle needs an engine name, got an empty value")
    oracle = oracle or config.getini("pcct_oracle").strip() or None
    return Selection(tuple(names), source, seed, oracle)
