"""Exception classes shared by every engine.

Each subclasses ``ValueError`` or ``TypeError`` so callers can catch the builtin they expect, while tests can
check that two engines raise the *same* class for the same bad input.
"""

from __future__ import annotations


class CovertreexError(Exception):
    """Base of every error this package raises on purpose."""


class InvalidInputError(CovertreexError, ValueError):
    """An argument has the right type but an unusable value (empty, wrong shape, out of range)."""


class NonFiniteError(InvalidInputError):
    """An array argument contains NaN or +/-inf."""


class DimensionMismatchError(InvalidInputError):
    """Queries and data (or two related arrays) disagree on a dimension."""


class KOutOfRangeError(InvalidInputError):
    """k is below 1 or above the number of eligible points."""


class UnknownNameError(InvalidInputError):
    """A name (engine, metric, kernel, preset, option) is not in its registry."""


class InputTypeError(CovertreexError, TypeError):
    """An argument has a type (or dtype) that cannot be converted to what is expected."""


class NotANameError(UnknownNameError, InputTypeError):
    """Something other than a str where a name is expected (``metric=3``): a TypeError, and still an
    UnknownNameError for callers that catch that."""


class CorruptFileError(InvalidInputError):
    """A saved tree, baseline or telemetry file opened but cannot be read back (one that cannot be opened
    raises what ``open`` raises: FileNotFoundError, IsADirectoryError, PermissionError)."""


class ClusterError(CovertreexError, RuntimeError):
    """A Dask cluster failed a job: no worker ran; each died during its copy of the index, or with it,
    scatter after scatter; a range was lost with more workers than Dask's allowed-failures; the scheduler
    went away; the workers run another covertreex, or cannot run it; or (reported by `pcct vecchia
    --scheduler`, where the API raises Dask's own error) a task failed otherwise on the cluster."""


def unknown_name(kind: str, name: object, known) -> UnknownNameError:
    """Build the standard 'unknown X' error that lists the known names (a :class:`NotANameError` when
    `name` is not a str at all)."""
    listing = ", ".join(sorted(str(k) for k in known))
    kinds = f"{kind[:-1]}ies" if kind.endswith("y") and kind[-2:-1] not in "aeiou" else f"{kind}s"
    if not isinstance(name, str):
        return NotANameError(f"{kind} must be a name (str), got {type(name).__name__} {name!r:.60}; known "
                             f"{kinds}: {listing}")
    return UnknownNameError(f"unknown {kind} {name!r}; known {kinds}: {listing}")
