"""A fingerprint of the calibration kernel: what it computes, so baselines measured against another kernel
are refused instead of compared (their ratios would mean nothing).

Stored with every timing baseline. It follows the code and the data the kernel runs on, and nothing that
changes from one run to the next (memory addresses, hash seeds, the module name pytest's import mode gives
a test file):

* a function: its name, bytecode, constants and names, default arguments, the values its closure holds,
  and, one by one, the globals its code names: functions it calls (the same digest, each once), numbers,
  strings, tuples and arrays by value, classes by their methods' code (properties included; data
  attributes by type, since a class attribute may count what earlier tests made), modules by name, and
  other objects by type only (a dict or list global is usually state the kernel updates). A Numba
  dispatcher is followed to its Python function; a ``functools.wraps`` wrapper is digested itself (its
  closure holds its settings) and then what it wraps; a ``functools.partial`` by its function and bound
  arguments; a bound method by its function and its object's class and attributes (``__slots__``
  included); a method of a built-in type (``array.sum``) by the object it runs on; a callable object by
  its class's ``__call__`` and its attributes. What a closure or an object holds is state captured at run
  time, so it is digested by its size, not its contents: code by digest, integers by value, arrays by
  dtype and shape, floats, strings and other objects by type (unseeded data, a temporary path or a fitted
  model's tolerance must not make unchanged code "another kernel"). The digest is taken before the
  kernel's first call, so counters it updates do not change it;
* a value (the arguments, a default, a global): arrays by dtype, shape and bytes (object arrays element by
  element), containers element by element (sets in sorted order), functions by their code, anything else
  by its repr, or by its type where the repr shows an address. So the arguments and the module globals
  a kernel names are its declared data, digested by value: seed them.

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
        self.seen: set[int] = set()  # functions, classes and objects visited (kept alive by the kernel)
        self.open: set[int] = set()  # the containers being walked now (a temporary's id may be reused)

    def text(self, value: str) -> None:
        self.digest.update(value.encode())
        self.digest.update(b"\0")

    def callable(self, function) -> None:
        target = getattr(function, "py_func", function)  # a Numba dispatcher
        if isinstance(target, functools.partial):
            self.text("partial")
            self.callable(target.func)
            self.value(target.args)
            self.value(target.keywords)
            return
        if isinstance(target, types.MethodType):
            self.text("method")
            self.callable(target.__func__)
            self.instance(target.__self__)
            return
        if isinstance(target, types.BuiltinMethodType) and not isinstance(
                getattr(target, "__self__", None), (types.ModuleType, type(None))):
            self.text(f"builtin method {target.__qualname__}")  # array.sum: the array it runs on
            self.state(target.__self__)
            return
        if not isinstance(target, types.FunctionType) and hasattr(target, "__wrapped__"):
            self.text(f"wrapper {type(target).__qualname__}")  # a C-level wrapper (lru_cache): what it wraps
            self.callable(target.__wrapped__)
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
        for cell in target.__closure__ or ():
            try:
                self.state(cell.cell_contents)
            except ValueError:  # a cell not filled yet
                self.text("empty cell")
        for name in sorted(_global_names(target.__code__)):
            if name in target.__globals__:
                self.text(name)
                self.global_value(target.__globals__[name])
        if hasattr(target, "__wrapped__"):  # functools.wraps: the wrapped function as well as the wrapper
            self.text("wraps")
            self.callable(target.__wrapped__)

    def state(self, value) -> None:
        """A value a kernel holds in its closure or its object: code and numbers (the workload's size) by
        value, but arrays by dtype and shape only (their data may be drawn unseeded) and strings by type
        only (a temporary path); everything else by type."""
        if isinstance(value, (types.ModuleType, type)) or callable(value):
            self.global_value(value)
        elif value is None:
            self.text("None")
        elif isinstance(value, (bool, int)) or _is_integer_scalar(value):
            self.text(f"int {int(value)}")  # a size, a count
        elif isinstance(value, (float, complex)):  # derived from data (a fitted model's tolerance)
            self.text(type(value).__qualname__)
        elif isinstance(value, (tuple, frozenset)):
            self.text(f"{type(value).__name__} {len(value)}")
            for item in sorted(value, key=repr) if isinstance(value, frozenset) else value:
                self.state(item)
        elif _is_array(value):
            self.text(f"array {value.dtype} {value.shape}")
        else:
            self.text(type(value).__qualname__)

    def instance(self, obj) -> None:
        """An object a bound method runs on: its class, and its attributes as its closure's values are."""
        if id(obj) in self.seen:  # an attribute holding another of its own bound methods
            self.text(f"again {type(obj).__qualname__} object")
            return
        self.seen.add(id(obj))
        self.cls(type(obj))
        for name, attribute in sorted(_attributes(obj).items()):
            self.text(name)
            self.state(attribute)

    def cls(self, klass: type) -> None:
        """A class: its name and its own methods by code; its other attributes by type only (a class
        attribute may count instances made by earlier tests)."""
        if id(klass) in self.seen:
            self.text(f"again class {klass.__qualname__}")
            return
        self.seen.add(id(klass))
        self.text(f"class {klass.__qualname__}")
        for name, attribute in sorted(vars(klass).items()):
            if name.startswith("__") and name.endswith("__"):  # the machinery every class has
                continue
            self.text(name)
            function = getattr(attribute, "__func__", attribute)  # staticmethod, classmethod
            if isinstance(function, types.FunctionType):
                self.callable(function)
            elif isinstance(attribute, property):
                for accessor in (attribute.fget, attribute.fset, attribute.fdel):
                    self.text("accessor")
                    if accessor is not None:
                        self.callable(accessor)
            else:
                self.text(type(attribute).__qualname__)

    def code(self, code: types.CodeType) -> None:
        self.digest.update(code.co_code)
        self.text(repr(code.co_names))
        for constant in code.co_consts:
            if isinstance(constant, types.CodeType):
                self.code(constant)
            else:
                self.value(constant)

    def global_value(self, value) -> None:
        """A global the kernel names: functions by their code, classes by their contents, numbers, strings,
        tuples and arrays by value; modules by name, and mutable containers by type only (a dict or list
        global is usually state the kernel updates, such as a call counter, and would differ in every
        run)."""
        if isinstance(value, types.ModuleType):
            self.text(f"module {value.__name__}")
        elif isinstance(value, type):
            if value.__module__ == "builtins":
                self.text(f"builtin {value.__qualname__}")
            else:
                self.cls(value)
        elif callable(value):
            self.callable(value)
        elif isinstance(value, (*_PLAIN, tuple, frozenset)) or _is_array(value):
            self.value(value)
        else:
            self.text(type(value).__qualname__)

    def value(self, value) -> None:
        if isinstance(value, _PLAIN):
            self.text(f"{type(value).__name__} {value!r}")
        elif isinstance(value, type):  # before the array test: NumPy's scalar classes have its attributes
            self.text(f"type {value.__module__}.{value.__qualname__}")
        elif isinstance(value, types.FunctionType):
            self.callable(value)
        elif isinstance(value, (list, tuple, dict, set, frozenset)):
            if id(value) in self.open:  # a container holding itself
                self.text("again container")
                return
            self.open.add(id(value))
            try:
                self.container(value)
            finally:
                self.open.discard(id(value))
        elif _is_array(value):
            self.text(f"array {value.dtype} {value.shape}")
            if value.dtype.hasobject:
                self.value(value.tolist())
            else:
                self.digest.update(value.tobytes())
        else:
            text = repr(value)
            self.text(type(value).__qualname__ if " at 0x" in text else text)

    def container(self, value) -> None:
        """A list or tuple element by element, a dict by its sorted keys, a set in sorted order."""
        if isinstance(value, (list, tuple)):
            self.text(f"{type(value).__name__} {len(value)}")
            for item in value:
                self.value(item)
        elif isinstance(value, dict):
            self.text(f"dict {len(value)}")
            for key in sorted(value, key=repr):
                self.value(key)
                self.value(value[key])
        else:
            self.text(f"set {len(value)}")
            for item in sorted(value, key=repr):
                self.value(item)


def _attributes(obj) -> dict:
    """An object's instance attributes: its __dict__ and the __slots__ of its classes that are set."""
    found = dict(getattr(obj, "__dict__", {}))
    for klass in type(obj).__mro__:
        slots = vars(klass).get("__slots__", ())
        for name in (slots,) if isinstance(slots, str) else slots:
            if name not in ("__dict__", "__weakref__") and hasattr(obj, name):
                found[name] = getattr(obj, name)
    return found


def _is_integer_scalar(value) -> bool:
    """A NumPy integer scalar (a size read from an array), which looks like a 0-d array otherwise."""
    dtype = getattr(value, "dtype", None)
    return not isinstance(value, type) and getattr(value, "shape", None) == () and \
        getattr(dtype, "kind", "") in ("i", "u")


def _is_array(value) -> bool:
    """A NumPy array or anything shaped like one (not a class: NumPy's scalar types have these names too)."""
    return not isinstance(value, type) and all(hasattr(value, a) for a in ("tobytes", "dtype", "shape"))


def _global_names(code: types.CodeType) -> set[str]:
    """Every name a function's code (nested code included) may look up among its globals."""
    names = set(code.co_names)
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            names |= _global_names(constant)
    return names
