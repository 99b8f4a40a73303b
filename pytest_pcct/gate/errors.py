"""The gate's errors: ValueError and TypeError subclasses naming the argument or file and what was expected.

They are the gate's own (not covertreex.errors) so that the gate loads without covertreex and its NumPy and
Numba imports: a project gating its own benchmarks pays for none of them.
"""


class GateError(Exception):
    """Base of every error the gate raises on purpose."""


class GateInputError(GateError, ValueError):
    """An option, marker argument or recorded value has an unusable value."""


class GateTypeError(GateError, TypeError):
    """An option, marker argument or recorded value has the wrong type."""


class CorruptFileError(GateInputError):
    """A baseline file is unreadable, truncated or not what it claims to be."""
