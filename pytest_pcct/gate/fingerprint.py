"""A fingerprint of the calibration kernel: what it computes, so baselines measured against another kernel
are refused instead of compared (their ratios would mean nothing).

Stored with every timing baseline. It follows the code and the data the kernel runs on, and nothing that
changes from one run to the next (memory addresses, hash seeds, the module name pytest's import mode gives
a test file):

* a function: its name, bytecode, constants and names, default arguments, and, one by one, the globals
  its code names: functions it calls (the same digest, each once), numbers, strings and arrays by value,
  modules by name and other objects by type only (a dict global is usually state the kernel updates).
  A Numba dispatcher or a ``functools.wraps`` wrapper is followed to its Python function, a
  ``functools.partial`` to its function and bound arguments, a callable object to its class's
  ``__call__`` and its attributes;
* a value: arrays by dtype, shape and bytes (object arrays element by element), containers element by
  element (sets in sorted order), anything else by its repr, or by its type where the repr shows an
  address.

What it cannot see: code reached only through attributes of objects (``np.linalg.norm`` is a name
inside a module), and files or the environment the kernel reads.
"""

from __future__ import annotations

import functools
import hashlib
import types

_PLAIN = (int, float, complex, str, bytes, bool, type(None))


def kernel_fingerprint(function, args: tuple, kwargs: dict) -> str:
    """The digest of calling `function(*args, **kwargs)` as the calibration test does."""
    digest = hashlib.sha256()
    walk = _Digest(digest)
    walk.callable(function)
    walk.value(tuple(args))
    walk.value(dict(kwargs))
    return digest.hexdigest()


class _Digest:
    """One walk over a kernel and its data, each function visited once."""

    def __init__(self, digest):
        self.digest = digest
        self.seen: set[int] = set()

    def text(self, value: str) -> None:
        self.digest.update(value.encode())
        self.digest.update(b"\0")

    def callable(self, function) -> None:
        target = getattr(function, "py_func", function)  # a Numba dispatcher
        target = getattr(target, "__wrapped__", target)
        if isinstance(target, functools.partial):
            self.text("partial")
            self.callable(target.func)
            self.value(target.args)
            self.value(target.keywords)
            return
        if not isinstance(target, types.FunctionType):
            owners = [vars(cls) for cls in type(target).__mro__ if "__call__" in vars(cls)]
            call = owners[0]["__call__"] if owners else None
            self.text(type(target).__qualname__)
            if isinstance(call, types.FunctionType):
                self.callable(call)
                self.value(dict(getattr(target, "__dict__", {})))
            return
        if id(target) in self.seen:
            self.text(f"again {target.__qualname__}")
            return
        self.seen.add(id(target))
        self.text(target.__qualname__)
        self.code(target.__code__)
        self.value(target.__defaults__)
        self.value(target.__kwdefaults__)
        for name in sorted(_global_names(target.__code__)):
            if name in target.__globals__:
                self.text(name)
                self.global_value(target.__globals__[name])

    def code(self, code: types.CodeType) -> None:
        self.digest.update(code.co_code)
        self.text(repr(code.co_names))
        for constant in code.co_consts:
            if isinstance(constant, types.CodeType):
                self.code(constant)
            else:
                self.value(constant)

    def global_value(self, value) -> None:
        """A global the kernel names: functions by their code, numbers, strings and arrays by value;
        modules by name, and containers by type only (a dict or list global is usually state the kernel
        updates, such as a call counter, and would differ in every run)."""
        if isinstance(value, types.ModuleType):
            self.text(f"module {value.__name__}")
        elif callable(value) and not isinstance(value, type):
            self.callable(value)
        elif isinstance(value, _PLAIN) or all(hasattr(value, a) for a in ("tobytes", "dtype", "shape")):
            self.value(value)
        else:
            self.text(type(value).__qualname__)

    def value(self, value) -> None:
        if isinstance(value, _PLAIN):
            self.text(f"{type(value).__name__} {value!r}")
        elif all(hasattr(value, a) for a in ("tobytes", "dtype", "shape")):
            self.text(f"array {value.dtype} {value.shape}")
            if value.dtype.hasobject:
                self.value(value.tolist())
            else:
                self.digest.update(value.tobytes())
        elif isinstance(value, (list, tuple)):
            self.text(f"{type(value).__name__} {len(value)}")
            for item in value:
                self.value(item)
        elif isinstance(value, dict):
            self.text(f"dict {len(value)}")
            for key in sorted(value, key=repr):
                self.value(key)
                self.value(value[key])
        elif isinstance(value, (set, frozenset)):
            self.text(f"set {len(value)}")
            for item in sorted(value, key=repr):
                self.value(item)
        else:
            text = repr(value)
            self.text(type(value).__qualname__ if " at 0x" in text else text)


def _global_names(code: types.CodeType) -> set[str]:
    """Every name a function's code (nested code included) may look up among its globals."""
    names = set(code.co_names)
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            names |= _global_names(constant)
    return names
