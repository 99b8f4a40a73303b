"""Presets: resolution order (explicit > preset= > COVERTREEX_PRESET > defaults), errors, and that the
presets keep the answer exact."""

from __future__ import annotations

import numpy as np
import pytest

import covertreex as ct
from covertreex import datasets
from covertreex.config import KNOBS, Config
from covertreex.engines import ENGINES
from covertreex.errors import UnknownNameError
from covertreex.presets import ENV_VAR, PRESETS, get_preset, resolve


@pytest.fixture(autouse=True)
def no_env_preset(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)


@pytest.fixture(scope="module")
def problem():
    X = datasets.make("gaussian", 400, 3, 7).points
    return ct.residual_problem(X, m=24, seed=3)


def test_registry_lists_the_two_design_presets_over_known_knobs():
    assert set(PRESETS) == {"residual_parity", "residual_perf"}
    for preset in PRESETS.values():
        assert set(preset.options) <= set(KNOBS)
        assert preset.metric == "residual"


def test_residual_parity_settings():
    config = get_preset("residual_parity").config()
    assert (config.mode, config.order, config.brute_variant) == ("parity", "natural", "direct")
    assert config.shared_tree is True and config.telemetry is True


def test_residual_perf_settings():
    config = get_preset("residual_perf").config()
    assert config.telemetry is False and config.shared_tree is False
    assert config.mode == "perf" and config.threads is None and config.brute_variant == "auto"
    assert config.level_cache and config.block_sizing and config.early_stop and not config.best_first


def test_no_preset_gives_the_defaults():
    resolved = resolve()
    assert resolved.preset is None and resolved.metric == "euclidean" and resolved.config == Config()
    model = ct.CoverTree(engine="gold")
    assert model.preset is None and model.metric == "euclidean" and model.config == Config()


def test_the_default_engine_is_the_fastest_exact_configuration():
    """CoverTree() is rust in mode 'perf' (gold where the extension is missing) on path 'auto'; a preset or
    an explicit mode still wins."""
    model = ct.CoverTree()
    expected = "rust" if ct.engine_available("rust") else "gold"
    assert model.engine.name == expected and model.config == Config(mode="perf")
    assert ct.CoverTree(mode="parity").config.mode == "parity"
    assert ct.CoverTree(preset="residual_parity").config.mode == "parity"


def test_environment_variable_selects_the_preset(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "residual_parity")
    model = ct.CoverTree()
    assert model.preset == "residual_parity"
    assert model.metric == "residual"
    assert model.config == get_preset("residual_parity").config()


def test_empty_environment_variable_means_no_preset(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "")
    assert resolve().preset is None


def test_explicit_preset_beats_the_environment(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "residual_parity")
    assert ct.CoverTree(preset="residual_perf").config == get_preset("residual_perf").config()


def test_explicit_options_override_the_preset(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "residual_parity")
    model = ct.CoverTree(metric="euclidean", telemetry=False, brute_variant="gemm")
    assert model.metric == "euclidean"
    assert model.config.telemetry is False and model.config.brute_variant == "gemm"
    assert model.config.shared_tree is True and model.config.mode == "parity"  # still from the preset


@pytest.mark.parametrize("via_env", [False, True])
def test_unknown_preset_lists_the_known_ones(monkeypatch, via_env):
    if via_env:
        monkeypatch.setenv(ENV_VAR, "fastest")
    with pytest.raises(UnknownNameError, match="unknown preset 'fastest'.*residual_parity, residual_perf"):
        ct.CoverTree(preset=None if via_env else "fastest")


def test_unknown_option_next_to_a_preset_is_still_an_error():
    with pytest.raises(UnknownNameError, match="unknown option 'fast'"):
        ct.CoverTree(preset="residual_perf", fast=True)


@pytest.mark.parametrize("name", sorted(PRESETS))
@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_every_preset_answers_exactly(problem, check_same, oracle, name, engine):
    try:
        model = ct.CoverTree(engine=engine, preset=name)
    except ValueError as exc:  # an engine whose extension is not built here
        pytest.skip(str(exc))
    idx = np.arange(0, 400, 9)
    check_same(model.fit(problem).kneighbors(indices=idx, k=7),
               oracle("residual", problem, 7, indices=idx), f"{engine}/{name}")
    assert (model.last_result.telemetry is not None) == model.config.telemetry


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_shared_tree_is_gold_s_tree_for_the_same_options(problem, engine):
    try:
        model = ct.CoverTree(engine=engine, preset="residual_parity", order="hilbert")
    except ValueError as exc:  # an engine whose extension is not built here
        pytest.skip(str(exc))
    model.fit(problem)
    if not model.engine.uses_tree:
        assert model.tree is None
        return
    assert model.tree.same_as(ct.CoverTree("gold", "residual", order="hilbert").fit(problem).tree)
    assert not model.tree.same_as(ct.CoverTree("gold", "residual").fit(problem).tree)  # order applies
