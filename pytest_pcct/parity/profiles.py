"""Hypothesis profiles for k-NN property tests, derived from Hypothesis' built-in ``ci`` profile.

``ci`` is derandomized (the same examples on every run and every xdist worker, while the property tests
pass: docs/plugin.md says why a failure may change later draws) and keeps no example database; ours add
``deadline=None`` because Numba compiles on first call. ``pcct`` is the quick default of a property
suite, ``pcct-thorough`` an opt-in deep run (``--hypothesis-profile=pcct-thorough``).
"""

from __future__ import annotations

PROFILES = {"pcct": 30, "pcct-thorough": 1000}
"""Profile name -> max_examples."""


def register_profiles() -> None:
    """Register the pcct profiles with Hypothesis (idempotent)."""
    from hypothesis import settings

    ci = settings.get_profile("ci")
    for name, examples in PROFILES.items():
        settings.register_profile(name, ci, deadline=None, max_examples=examples)


def suite_settings(name: str = "pcct"):
    """Settings for a property suite: profile `name`, unless the run loaded a profile of its own.

    Hypothesis loads 'default' (or 'ci' on CI machines) by itself; any other loaded profile was chosen by
    the user, e.g. ``--hypothesis-profile=pcct-thorough``, and wins.
    """
    from hypothesis import settings

    register_profiles()
    if name not in PROFILES:
        from covertreex.errors import unknown_name

        raise unknown_name("pcct profile", name, PROFILES)
    if settings.get_current_profile_name() in ("default", "ci"):
        return settings.get_profile(name)
    return settings.default
