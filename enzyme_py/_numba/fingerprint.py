"""What numba's compilation of a Python function depends on, as plain data (the key of its
lowering on disk), computed without importing numba.

numba compiles a function's bytecode with the values of the globals and closure cells it
reads frozen in (a global float is a constant of the machine code, a global function is
compiled with it), for the argument types, under the dispatcher's options and numba's
configuration.  :func:`describe` walks exactly that:

* the code object, recursively through nested code (bytecode, constants, names, line
  table, flags);
* every name the code reads that is a global of the function (or a builtin), and every
  closure cell, by value: numbers, strings, bytes, None, tuples, lists and dicts of
  those, NumPy arrays (dtype with a structured one's field names and offsets, shape and
  a SHA-256 of the data), NumPy scalars and dtypes, enum members (with their values),
  builtins, numba types (by name), other Python functions and numba dispatchers
  (recursively, cycles included: a recursive function refers to itself; a dispatcher with
  its ``locals=`` types and pipeline class), enzyme_py.jit functions;
* classes: those of the libraries below and exception classes by module and qualified
  name; an enum class with its members' names and values, a namedtuple class with its
  fields and defaults; any other class (a jitclass, a structref, a subclass with methods)
  cannot be identified;
* modules: the standard numerical ones (``numpy``, ``math``, ``cmath``, ``numba``,
  ``operator``, ...) by name, since what numba does with their functions is numba's (its
  version is in the key); any other module with the values of the names the code reads
  from it, a submodule among them likewise (``pkg.sub.K``);
* defaults, keyword defaults and the dispatcher's options (``fastmath``,
  ``boundscheck``, ``error_model``, ...).

A value it cannot identify (an object or a class other than those above, a jitclass, a
typed container, a ctypes function) makes :func:`describe` return None: that function's
lowering is not cached, never cached under a key that misses what it depends on.

Not covered: numba extensions registered elsewhere (``@overload``, ``@intrinsic``,
``@register_jitable`` implementations reached through another function's name) change
numba's behaviour without changing anything reachable from the function; after editing
one, clear the cache (``python -m enzyme_py cache clear``).
"""

from __future__ import annotations

__all__ = ["describe", "library_versions"]

import builtins
import enum
import hashlib
import importlib.util
import os
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np

#: Modules whose functions numba implements itself: identified by name (their behaviour
#: under numba is numba's, and numba's version is part of the key).
_LIBRARIES = frozenset({
    "numpy", "math", "cmath", "numba", "operator", "builtins", "random", "scipy",
    "functools", "itertools", "collections", "enzyme_py",
})
_SCALARS = (bool, int, float, complex, str, type(None))


class _Unknown(Exception):
    """A value the walk cannot identify (internal)."""


class _Walk:
    def __init__(self) -> None:
        self.functions: dict[int, int] = {}
        self.keep: list[Any] = []  # the functions walked, alive until the walk ends

    def value(self, v: Any, depth: int = 0) -> Any:
        if depth > 50:
            raise _Unknown("too deep")
        t = type(v)
        if t in _SCALARS:
            if t is float:
                return ["float", v.hex()]
            if t is complex:
                return ["complex", v.real.hex(), v.imag.hex()]
            return [t.__name__, v]
        if t is bytes:
            return ["bytes", hashlib.sha256(v).hexdigest()]
        if t in (tuple, list, frozenset, set):
            items = [self.value(x, depth + 1) for x in v]
            return [t.__name__, sorted(items, key=repr) if t in (frozenset, set) else items]
        if t is dict:
            return ["dict", sorted(([self.value(k, depth + 1), self.value(x, depth + 1)] for k, x in v.items()), key=repr)]
        if t is np.ndarray:
            data = np.ascontiguousarray(v)
            return ["ndarray", _dtype(v.dtype), list(v.shape), bool(v.flags.f_contiguous and not v.flags.c_contiguous),
                    hashlib.sha256(data.tobytes()).hexdigest()]
        if isinstance(v, np.generic):
            return ["numpy-scalar", _dtype(v.dtype), v.tobytes().hex()]
        if t is np.dtype or isinstance(v, np.dtype):
            return ["dtype", _dtype(v)]
        if isinstance(v, enum.Enum):
            return ["enum", type(v).__module__, type(v).__qualname__, v.name, self.value(v.value, depth + 1)]
        if t is types.ModuleType:
            return ["module", v.__name__]
        if t is types.FunctionType:
            return self.function(v, {}, depth + 1)
        if t in (types.BuiltinFunctionType, np.ufunc):
            return ["builtin", getattr(v, "__module__", None) or "", getattr(v, "__qualname__", v.__name__)]
        if isinstance(v, type):
            return self.cls(v, depth)
        target = getattr(v, "__enzyme_py_target__", None)  # enzyme_py.jit
        if target is not None and target is not v:
            return ["jit", self.value(target, depth + 1)]
        py_func = getattr(v, "py_func", None)  # a numba dispatcher
        if isinstance(py_func, types.FunctionType) and hasattr(v, "targetoptions"):
            compiler = getattr(v, "_compiler", None)
            return ["dispatcher", self.function(py_func, dict(v.targetoptions), depth + 1),
                    self.value(dict(getattr(v, "locals", None) or {}), depth + 1),
                    self.value(getattr(compiler, "pipeline_class", None), depth + 1)]
        if type(v).__module__.startswith("numba.") and hasattr(v, "name"):  # a numba type
            return ["numba-type", type(v).__qualname__, str(v)]
        raise _Unknown(type(v).__qualname__)

    def cls(self, v: type, depth: int) -> Any:
        if v.__module__.split(".")[0] in _LIBRARIES or issubclass(v, BaseException):
            return ["type", v.__module__, v.__qualname__]  # numba's own, or raised by name
        if issubclass(v, enum.Enum):  # members are constants of the code
            members = [[m.name, self.value(m.value, depth + 1)] for m in v.__members__.values()]
            return ["enum-class", v.__module__, v.__qualname__, members]
        fields = getattr(v, "_fields", None)
        if issubclass(v, tuple) and v.__bases__ == (tuple,) and isinstance(fields, tuple):  # a namedtuple
            defaults = self.value(dict(getattr(v, "_field_defaults", {})), depth + 1)
            return ["namedtuple-class", v.__module__, v.__qualname__, self.value(fields, depth + 1), defaults]
        raise _Unknown(v.__qualname__)  # a jitclass, a structref, ...: its methods are not walked

    def module_names(self, mod: types.ModuleType, names: set[str], depth: int, within: tuple[str, ...] = ()) -> Any:
        top = mod.__name__.split(".")[0]
        if top in _LIBRARIES:
            return ["module", mod.__name__]
        if mod.__name__ in within:  # pkg.sub.pkg: described already
            return ["same-module", mod.__name__]
        inner = (*within, mod.__name__)
        attrs = {}
        for n in sorted(names):
            if hasattr(mod, n):
                a = getattr(mod, n)  # a submodule (pkg.sub.K): the same names, read from it
                attrs[n] = (self.module_names(a, names, depth + 1, inner) if isinstance(a, types.ModuleType)
                            else self.value(a, depth + 1))
        return ["module", mod.__name__, attrs]

    def code(self, code: types.CodeType, depth: int) -> Any:
        consts = [
            self.code(c, depth + 1) if isinstance(c, types.CodeType) else self.value(c, depth + 1)
            for c in code.co_consts
        ]
        return [
            code.co_code.hex(), consts, list(code.co_names), list(code.co_varnames),
            list(code.co_freevars), list(code.co_cellvars), code.co_argcount,
            code.co_posonlyargcount, code.co_kwonlyargcount, code.co_flags, code.co_filename,
            code.co_firstlineno, getattr(code, "co_linetable", b"").hex(),
            getattr(code, "co_exceptiontable", b"").hex(),
        ]

    def function(self, f: types.FunctionType, options: dict[str, Any], depth: int = 0) -> Any:
        seen = self.functions.get(id(f))
        if seen is not None:
            return ["same-function", seen]
        self.functions[id(f)] = len(self.functions)
        self.keep.append(f)
        names = _names(f.__code__)
        globals_: dict[str, Any] = {}
        g = f.__globals__
        for n in sorted(names):
            if n in g:
                v = g[n]
                globals_[n] = (
                    self.module_names(v, names, depth) if isinstance(v, types.ModuleType) else self.value(v, depth + 1)
                )
            elif hasattr(builtins, n):
                globals_[n] = ["builtin-name", n]
        cells = []
        for cell in f.__closure__ or ():
            try:
                content = cell.cell_contents
            except ValueError:
                cells.append(["empty-cell"])
                continue
            cells.append(
                self.module_names(content, names, depth) if isinstance(content, types.ModuleType)
                else self.value(content, depth + 1)
            )
        return [
            "function", f.__module__, f.__qualname__, self.code(f.__code__, depth),
            globals_, cells, self.value(f.__defaults__, depth + 1), self.value(f.__kwdefaults__, depth + 1),
            self.value({k: v for k, v in sorted(options.items()) if k not in ("cache",)}, depth + 1),
        ]


def _dtype(d: np.dtype[Any]) -> Any:
    """A dtype by byte order, kind and size, and for a structured one its fields (names,
    types, offsets: ``d.str`` is ``|V16`` for every 16-byte record)."""
    return [d.str, repr(d.descr)] if d.fields is not None or d.subdtype is not None else d.str


def _names(code: types.CodeType) -> set[str]:
    """Every name the code (and its nested code) reads by name."""
    out = set(code.co_names)
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            out |= _names(c)
    return out


def describe(func: Any) -> Any:
    """What numba's compile of ``func`` (a Python function, a numba dispatcher or an
    ``enzyme_py.jit`` function) reads, as JSON-able data; None when a value cannot be
    identified (see the module docstring)."""
    walk = _Walk()
    try:
        return walk.value(func)
    except (_Unknown, RecursionError, TypeError, ValueError, AttributeError):
        return None


def _file_stamp(path: Path) -> list[Any]:
    try:
        st = path.stat()
    except OSError:
        return [str(path)]
    return [str(path), st.st_size, st.st_mtime_ns]


def library_versions() -> dict[str, Any]:
    """numba's, llvmlite's and NumPy's identity, and Python's version, without importing
    numba or llvmlite: the files that carry their versions, by path, size and
    modification time (an upgrade rewrites them)."""
    out: dict[str, Any] = {"python": sys.version, "numpy": np.__version__}
    for name in ("numba", "llvmlite"):
        mod = sys.modules.get(name)
        origin = getattr(mod, "__file__", None) if mod is not None else None
        if origin is None:
            try:
                spec = importlib.util.find_spec(name)
            except (ImportError, ValueError):
                spec = None
            origin = spec.origin if spec is not None else None
        if origin is None:
            out[name] = None
            continue
        folder = Path(origin).parent
        out[name] = [_file_stamp(folder / "__init__.py"), _file_stamp(folder / "_version.py")]
    out["numba_yaml"] = os.path.exists(".numba_config.yaml")
    return out
