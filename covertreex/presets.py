"""Named presets (DESIGN section 8): a metric plus values for knobs of covertreex.config.KNOBS.

A preset is chosen by ``preset=`` in Python, ``--preset`` on the command line, or the
``COVERTREEX_PRESET`` environment variable, read once when a call resolves its configuration.
Explicit arguments always win over the preset; knobs a preset does not name keep their defaults.
Every preset computes in float64 (covertreex has no other precision), so precision is not a knob.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from covertreex.config import Config
from covertreex.errors import InputTypeError, UnknownNameError, unknown_name

ENV_VAR = "COVERTREEX_PRESET"
DEFAULT_METRIC = "euclidean"


@dataclass(frozen=True)
class Preset:
    """A metric and the knob values that make one named way of running covertreex."""

    name: str
    description: str
    metric: str
    options: dict = field(default_factory=dict)

    def config(self) -> Config:
        """The full configuration this preset resolves to (its options over the defaults)."""
        return Config.from_options(**self.options)


PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        Preset(
            "residual_parity",
            "residual metric, float64, canonical operation order (rust mode 'parity'), the tree path "
            "(its counters stay comparable), every fast path off, one shared static tree built by the "
            "reference builder, telemetry on",
            "residual",
            {"mode": "parity", "order": "natural", "brute_variant": "direct", "shared_tree": True,
             "path": "tree", "telemetry": True},
        ),
        Preset(
            "residual_perf",
            "residual metric, float64, every fast path that keeps the answer exact (rust mode "
            "'perf', path 'auto'; on the tree path the level walk in query blocks with the schedule "
            "knobs level_cache, block_sizing and early_stop: the fastest schedule measured on the gold "
            "workload, 16.4% fewer evaluations than the defaults, docs/benchmarks.md), all cores, each "
            "engine builds its own tree, telemetry off",
            "residual",
            {"mode": "perf", "brute_variant": "auto", "shared_tree": False, "threads": None,
             "path": "auto", "telemetry": False, "level_cache": True, "block_sizing": True,
             "early_stop": True},
        ),
    )
}


def get_preset(name: str) -> Preset:
    """The preset registered as `name`; unknown names list the known ones."""
    if not isinstance(name, str):
        raise InputTypeError(f"preset must be a name (str), got {type(name).__name__} {name!r}")
    if name not in PRESETS:
        raise unknown_name("preset", name, PRESETS)
    return PRESETS[name]


@dataclass(frozen=True)
class Resolved:
    """What one call runs with: the preset's name (or None), the metric and the immutable Config."""

    preset: str | None
    metric: str
    config: Config


def resolve(preset: str | None = None, metric: str | None = None, *, defaults: dict | None = None,
            **options) -> Resolved:
    """Apply `defaults` (a caller's own defaults, e.g. the fastest engine's mode), then `preset` (None: the
    COVERTREEX_PRESET environment variable, if set and non-empty), then the explicit `metric` and
    `options` on top."""
    if preset is not None:
        name, chosen = preset, get_preset(preset)
    else:
        name = os.environ.get(ENV_VAR) or None
        try:
            chosen = get_preset(name) if name is not None else None
        except UnknownNameError as exc:
            raise UnknownNameError(f"environment variable {ENV_VAR}={name!r}: {exc}") from exc
    base = Config.from_options(**defaults) if defaults else None
    if chosen:
        base = Config.from_options(base, **chosen.options)
    if metric is None:
        metric = chosen.metric if chosen else DEFAULT_METRIC
    return Resolved(name, metric, Config.from_options(base, **options))
