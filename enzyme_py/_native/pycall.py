"""Python-callable entry points: JIT-compiled functions with CPython's own calling
convention, so that a repeated call of a compiled derivative costs what a call of a C
extension function costs.

:func:`make_callable` turns a :class:`CallShape` (what the Python arguments must be, the
compiled entry point to call, how its results become Python objects) into a built-in
function object.  Its body is LLVM IR generated here and compiled into the process's JIT:

* ``METH_FASTCALL | METH_KEYWORDS``: CPython passes the arguments as a C array, no tuple
  is built; the function is a ``PyCFunction`` over a ``PyMethodDef`` owned, with the
  machine code, by the function's ``__self__`` (a :class:`NativeCallable`);
* guards: no keywords, the argument count, the *alive* words (of the code it calls,
  0 once that code is unloaded, and of its module, 0 once closed), the options object
  still in force, the identity of the leading arguments (the mode, the function, the
  return activity);
* each argument is checked exactly as the call layer's converter of that kind checks it
  (exact value type, annotation class, dtype object, dimensions, C-contiguity,
  writability, shadow shape, integer range) and unboxed (``PyFloat_AsDouble``,
  ``PyLong_AsLongLongAndOverflow``, the array's data pointer and shape);
* the entry point is called, with the GIL released around the call as ctypes does;
  the status array of a Python function lives on the C stack, the out-struct and the
  trap block of code that may call ``exit()`` (:mod:`.traps`) too;
* results are boxed (``PyFloat_FromDouble``, ``PyLong_FromLongLong``, ``PyBool_FromLong``,
  ``PyTuple_New``) into the tuple the public function returns.

Anything the generated code does not accept (another kind of argument, a value out of
range, keywords, unloaded code, changed options) is handed, unchanged, to the *fallback*
callable, which is the call layer's validating path: it gives the same results and raises
the same exceptions as before.  The generated code never raises by itself: an exception
comes from the fallback, from a failed allocation, or from the *raiser* (the exception a
Python function raised, read from its status array; or :class:`~enzyme_py.errors.ProgramExit`
for a trapped ``exit()``/``abort()``, raised by the *trap raiser*).

Reference counts: every new reference the code takes (an annotation's attribute, a fresh
shadow array) sits in a slot of a stack array that every exit releases; results are new
references handed to the tuples that steal them; a failed allocation releases what was
built.  CPython's C API is reached by address through :mod:`ctypes.pythonapi`, so the
code works whether the interpreter exports its symbols or not.

Only CPython with the GIL and the usual object layout (``ob_type`` at offset 8) is
supported (:func:`supported`); NumPy arrays are read at the offsets of NumPy's public
``PyArrayObject_fields`` after checking them on real arrays (:func:`arrays_supported`).
"""

from __future__ import annotations

import ctypes
import itertools
import sys
import sysconfig
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from .ffi import LOCK
from .handles import ContextRef
from .jit import JITObject, load_object, lookup
from .library import native
from .target import host_target_machine

__all__ = [
    "ArgIn",
    "ArrayIn",
    "CallShape",
    "NativeCallable",
    "ScalarIn",
    "arrays_supported",
    "make_callable",
    "supported",
]

_METH_FASTCALL = 0x0080
_METH_KEYWORDS = 0x0002

_IR_TYPES = {"f64": "double", "f32": "float", "i1": "i1", "i8": "i8", "i16": "i16", "i32": "i32",
             "i64": "i64", "ptr": "ptr"}
_INT_BITS = {"i1": 1, "i8": 8, "i16": 16, "i32": 32, "i64": 64}
_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1

#: Offsets in NumPy's PyArrayObject_fields (checked by :func:`arrays_supported`).
_ARR_DATA, _ARR_ND, _ARR_DIMS, _ARR_DESCR, _ARR_FLAGS = 16, 24, 32, 56, 64
_NPY_C_CONTIGUOUS, _NPY_WRITEABLE = 0x0001, 0x0400
_OB_TYPE = 8

#: The C API functions the generated code calls: name -> IR declaration.
_API = {
    "PyFloat_AsDouble": "double (ptr)",
    "PyFloat_FromDouble": "ptr (double)",
    "PyLong_AsLongLongAndOverflow": "i64 (ptr, ptr)",
    "PyLong_FromLongLong": "ptr (i64)",
    "PyLong_FromVoidPtr": "ptr (ptr)",
    "PyBool_FromLong": "ptr (i64)",
    "PyTuple_New": "ptr (i64)",
    "PyTuple_SetItem": "i32 (ptr, i64, ptr)",
    "Py_IncRef": "void (ptr)",
    "Py_DecRef": "void (ptr)",
    "PyObject_GetAttr": "ptr (ptr, ptr)",
    "PyObject_CallOneArg": "ptr (ptr, ptr)",
    "PyObject_Vectorcall": "ptr (ptr, ptr, i64, ptr)",
    "PyDict_GetItem": "ptr (ptr, ptr)",
    "PyErr_Occurred": "ptr ()",
    "PyErr_Clear": "void ()",
    "PyEval_SaveThread": "ptr ()",
    "PyEval_RestoreThread": "void (ptr)",
}


# --------------------------------------------------------------------------- description


@dataclass(frozen=True)
class ScalarIn:
    """A number: a value of exactly type ``vtype``, passed as entry kind ``kind``.

    A float kind converts with ``PyFloat_AsDouble`` (a ``float`` cannot fail; another
    type may, and then the call falls back); an integer kind with
    ``PyLong_AsLongLongAndOverflow`` and must lie in ``lo..hi``.
    """

    vtype: type
    kind: str
    lo: int = 0
    hi: int = 0


@dataclass(frozen=True)
class ArrayIn:
    """A NumPy array: exactly ``numpy.ndarray``, dtype object ``dtype`` (identity),
    ``ndim`` dimensions, C-contiguous, writable when ``writable``; ``shape``: its
    dimensions follow the pointer(s) as ``i64`` entry values."""

    dtype: Any
    ndim: int
    writable: bool
    shape: bool


@dataclass(frozen=True)
class ArgIn:
    """One Python argument.

    ``wrapper``: the exact annotation class the argument must be (``None``: the value
    itself); its ``val`` is ``value``, its ``dval`` is ``shadow``.  ``const``: the
    wrapper is ``Const`` and its ``bounds_of`` must be None.  ``fresh``: the derivative
    goes into a new zero array like the value, made by the fresh helper and returned.
    Entry values, in order: the value (the array's data), the shadow or fresh array's
    data, then the value's dimensions when ``value.shape``.
    """

    value: ScalarIn | ArrayIn
    wrapper: type | None = None
    const: bool = False
    shadow: ScalarIn | ArrayIn | None = None
    fresh: bool = False


@dataclass(frozen=True)
class CallShape:
    """What one generated function does (see the module docstring).

    ``entry``: the address of the compiled entry point; ``params``/``result``/
    ``out_fields``: its C signature as in ``CompiledCode`` (``status``: the number of
    words of a Python function's status array, its parameter before the out-pointer;
    0 for none; ``traps``: the words of the trap block, the last parameter, 0 for none).  ``prefix``: objects
    the leading arguments must be (by identity).  ``results``: the tree of the returned
    object: a tuple of trees, or a leaf ``("raw", i)`` (result value ``i``, the return
    value first, then the out-struct's fields), ``("bool", i)``, ``("fresh", k)`` (the
    ``k``-th fresh array) or ``("none",)``.
    """

    name: str
    entry: int
    params: tuple[str, ...]
    result: str
    out_fields: tuple[str, ...]
    status: int
    prefix: tuple[Any, ...]
    args: tuple[ArgIn, ...]
    results: Any
    release_gil: bool = True
    traps: int = 0


class NativeCallable:
    """The ``__self__`` of a generated function: it owns the method definition, the
    machine code and every object the code refers to by address.  The code is removed
    from the JIT when this object is garbage (that is, with its function)."""

    def __init__(self, shape: CallShape, keep: tuple[Any, ...]) -> None:
        self.shape = shape
        self._keep = keep
        self._code: JITObject | None = None
        self._method: Any = None

    def __repr__(self) -> str:
        return f"<native entry {self.shape.name}>"

    def __del__(self) -> None:
        code, self._code = self._code, None
        if code is not None and not sys.is_finalizing():
            code.close()


# --------------------------------------------------------------------------- probes


@cache
def supported() -> bool:
    """Whether this interpreter is one the generated code is written for: CPython with a
    GIL, 64-bit, ``ob_type`` right after the reference count."""
    if sys.implementation.name != "cpython" or sys.maxsize != _I64_MAX:
        return False
    if sysconfig.get_config_var("Py_GIL_DISABLED") or object.__basicsize__ != 16:
        return False
    try:
        for obj in (1.5, 7, "s", (), None):
            if ctypes.c_void_p.from_address(id(obj) + _OB_TYPE).value != id(type(obj)):
                return False
        for name in _API:
            getattr(ctypes.pythonapi, name)
    except (AttributeError, ValueError):  # pragma: no cover - other interpreters
        return False
    return True


@cache
def arrays_supported() -> bool:
    """Whether NumPy arrays have the field offsets the generated code reads (checked on
    arrays of several dtypes, strides and flags)."""
    try:
        import numpy as np

        base = np.arange(12.0).reshape(3, 4)
        ro = np.zeros(5, dtype=np.int32)
        ro.flags.writeable = False
        probes = [base, base[:, 1:], base.T, np.zeros((2, 3), dtype=np.float32)[1:], ro, np.zeros(0)]
        for a in probes:
            addr = id(a)
            data = ctypes.c_void_p.from_address(addr + _ARR_DATA).value or 0
            nd = ctypes.c_int.from_address(addr + _ARR_ND).value
            dims_at = ctypes.c_void_p.from_address(addr + _ARR_DIMS).value or 0
            descr = ctypes.c_void_p.from_address(addr + _ARR_DESCR).value
            flags = ctypes.c_int.from_address(addr + _ARR_FLAGS).value
            if data != a.__array_interface__["data"][0] or nd != a.ndim or descr != id(a.dtype):
                return False
            if nd and tuple((ctypes.c_int64 * nd).from_address(dims_at)) != a.shape:
                return False
            if bool(flags & _NPY_C_CONTIGUOUS) != a.flags.c_contiguous:
                return False
            if bool(flags & _NPY_WRITEABLE) != a.flags.writeable:
                return False
    except Exception:  # noqa: BLE001 - any surprise: no native array arguments
        return False
    return True


@cache
def _api_addresses() -> dict[str, int]:
    return {name: ctypes.cast(getattr(ctypes.pythonapi, name), ctypes.c_void_p).value or 0 for name in _API}


# --------------------------------------------------------------------------- IR


def _p(obj_or_addr: Any) -> str:
    """An IR constant pointer to a Python object (or an address)."""
    addr = obj_or_addr if isinstance(obj_or_addr, int) else id(obj_or_addr)
    return f"inttoptr (i64 {addr} to ptr)"


class _Gen:
    """Emits the body of one generated function (see :func:`_ir`)."""

    def __init__(self, shape: CallShape, names: dict[str, Any], fallback: Any, raiser: Any, fresh: Any,
                 alive: Sequence[int], guard: tuple[Any, Any, Any] | None, trap_raiser: Any = None) -> None:
        self.s = shape
        self.names = names
        self.fallback = fallback
        self.raiser = raiser
        self.trap_raiser = trap_raiser
        self.fresh_helper = fresh
        self.alive = alive
        self.guard = guard
        self.lines: list[str] = []
        self._n = itertools.count()
        self.slots = 0  # held references (released at every exit)
        self.fresh: list[str] = []  # SSA values of the fresh arrays, in order

    # small helpers
    def tmp(self, stem: str = "t") -> str:
        return f"%{stem}{next(self._n)}"

    def label(self, stem: str = "b") -> str:
        return f"{stem}{next(self._n)}"

    def emit(self, text: str) -> None:
        self.lines.append("  " + text)

    def block(self, name: str) -> None:
        self.lines.append(f"{name}:")

    def check(self, cond: str, otherwise: str = "fallback") -> None:
        nxt = self.label()
        self.emit(f"br i1 {cond}, label %{nxt}, label %{otherwise}")
        self.block(nxt)

    def call(self, name: str, *args: str, ret: str = "ptr") -> str:
        """A call of the C API function ``name``, by its address in this process."""
        callee = _p(_api_addresses()[name])
        if ret == "void":
            self.emit(f"call void {callee}({', '.join(args)})")
            return ""
        r = self.tmp()
        self.emit(f"{r} = call {ret} {callee}({', '.join(args)})")
        return r

    def hold(self, value: str) -> None:
        """Keep a new reference in a slot released at every exit."""
        slot = self.tmp("slot")
        self.emit(f"{slot} = getelementptr inbounds ptr, ptr %held, i64 {self.slots}")
        self.emit(f"store ptr {value}, ptr {slot}")
        self.slots += 1

    def type_is(self, obj: str, tp: Any) -> None:
        at = self.tmp()
        self.emit(f"{at} = getelementptr inbounds i8, ptr {obj}, i64 {_OB_TYPE}")
        ty = self.tmp()
        self.emit(f"{ty} = load ptr, ptr {at}")
        c = self.tmp()
        self.emit(f"{c} = icmp eq ptr {ty}, {_p(tp)}")
        self.check(c)

    def field(self, obj: str, offset: int, ty: str) -> str:
        at = self.tmp()
        self.emit(f"{at} = getelementptr inbounds i8, ptr {obj}, i64 {offset}")
        v = self.tmp()
        self.emit(f"{v} = load {ty}, ptr {at}")
        return v

    def getattr(self, obj: str, name: str) -> str:
        v = self.call("PyObject_GetAttr", f"ptr {obj}", f"ptr {_p(self.names[name])}")
        self.hold(v)
        c = self.tmp()
        self.emit(f"{c} = icmp ne ptr {v}, null")
        self.check(c, "clear_fallback")
        return v

    def error_if(self, maybe: str) -> None:
        """Where the i1 ``maybe`` says a conversion may have failed (it returned -1), fall
        back (clearing the error) if a Python error is set, else go on."""
        err = self.label("err")
        ok = self.label()
        self.emit(f"br i1 {maybe}, label %{err}, label %{ok}")
        self.block(err)
        occurred = self.call("PyErr_Occurred")
        c = self.tmp()
        self.emit(f"{c} = icmp eq ptr {occurred}, null")
        self.emit(f"br i1 {c}, label %{ok}, label %clear_fallback")
        self.block(ok)

    # arguments
    def scalar(self, obj: str, sc: ScalarIn) -> str:
        self.type_is(obj, sc.vtype)
        if sc.kind in ("f64", "f32"):
            v = self.call("PyFloat_AsDouble", f"ptr {obj}", ret="double")
            if sc.vtype is not float:
                bad = self.tmp()
                self.emit(f"{bad} = fcmp oeq double {v}, -1.0")
                self.error_if(bad)
            if sc.kind == "f32":
                f = self.tmp()
                self.emit(f"{f} = fptrunc double {v} to float")
                return f"float {f}"
            return f"double {v}"
        v = self.call("PyLong_AsLongLongAndOverflow", f"ptr {obj}", "ptr %overflow", ret="i64")
        ovf = self.tmp()
        self.emit(f"{ovf} = load i32, ptr %overflow")
        c = self.tmp()
        self.emit(f"{c} = icmp eq i32 {ovf}, 0")
        self.check(c)
        minus = self.tmp()
        self.emit(f"{minus} = icmp eq i64 {v}, -1")
        self.error_if(minus)
        lo, hi = max(sc.lo, _I64_MIN), min(sc.hi, _I64_MAX)
        c1, c2, c3 = self.tmp(), self.tmp(), self.tmp()
        self.emit(f"{c1} = icmp sge i64 {v}, {lo}")
        self.emit(f"{c2} = icmp sle i64 {v}, {hi}")
        self.emit(f"{c3} = and i1 {c1}, {c2}")
        self.check(c3)
        bits = _INT_BITS[sc.kind]
        if bits == 64:
            return f"i64 {v}"
        t = self.tmp()
        self.emit(f"{t} = trunc i64 {v} to i{bits}")
        return f"i{bits} {t}"

    def array(self, obj: str, ar: ArrayIn) -> tuple[str, list[str]]:
        """Check an array; its data pointer and its dimensions (SSA values)."""
        import numpy as np

        self.type_is(obj, np.ndarray)
        descr = self.field(obj, _ARR_DESCR, "ptr")
        c = self.tmp()
        self.emit(f"{c} = icmp eq ptr {descr}, {_p(ar.dtype)}")
        self.check(c)
        nd = self.field(obj, _ARR_ND, "i32")
        c = self.tmp()
        self.emit(f"{c} = icmp eq i32 {nd}, {ar.ndim}")
        self.check(c)
        flags = self.field(obj, _ARR_FLAGS, "i32")
        need = _NPY_C_CONTIGUOUS | (_NPY_WRITEABLE if ar.writable else 0)
        m, c = self.tmp(), self.tmp()
        self.emit(f"{m} = and i32 {flags}, {need}")
        self.emit(f"{c} = icmp eq i32 {m}, {need}")
        self.check(c)
        data = self.field(obj, _ARR_DATA, "ptr")
        dims: list[str] = []
        if ar.ndim:
            dp = self.field(obj, _ARR_DIMS, "ptr")
            for k in range(ar.ndim):
                at, d = self.tmp(), self.tmp()
                self.emit(f"{at} = getelementptr inbounds i64, ptr {dp}, i64 {k}")
                self.emit(f"{d} = load i64, ptr {at}")
                dims.append(d)
        return data, dims

    def argument(self, index: int, arg: ArgIn) -> list[str]:
        at, obj = self.tmp(), self.tmp("arg")
        self.emit(f"{at} = getelementptr inbounds ptr, ptr %args, i64 {index}")
        self.emit(f"{obj} = load ptr, ptr {at}")
        value_obj, shadow_obj = obj, None
        if arg.wrapper is not None:
            self.type_is(obj, arg.wrapper)
            value_obj = self.getattr(obj, "val")
            if arg.const:
                b = self.getattr(obj, "bounds_of")
                c = self.tmp()
                self.emit(f"{c} = icmp eq ptr {b}, {_p(None)}")
                self.check(c)
            if arg.shadow is not None:
                shadow_obj = self.getattr(obj, "dval")
        out: list[str] = []
        dims: list[str] = []
        if isinstance(arg.value, ScalarIn):
            out.append(self.scalar(value_obj, arg.value))
        else:
            data, dims = self.array(value_obj, arg.value)
            out.append(f"ptr {data}")
        if arg.shadow is not None:
            assert shadow_obj is not None
            if isinstance(arg.shadow, ScalarIn):
                out.append(self.scalar(shadow_obj, arg.shadow))
            else:
                sdata, sdims = self.array(shadow_obj, arg.shadow)
                for a, b in zip(dims, sdims):
                    c = self.tmp()
                    self.emit(f"{c} = icmp eq i64 {a}, {b}")
                    self.check(c)
                out.append(f"ptr {sdata}")
        if arg.fresh:
            fr = self.call("PyObject_CallOneArg", f"ptr {_p(self.fresh_helper)}", f"ptr {value_obj}")
            self.hold(fr)
            c = self.tmp()
            self.emit(f"{c} = icmp ne ptr {fr}, null")
            self.check(c, "fail")
            self.fresh.append(fr)
            out.append(f"ptr {self.field(fr, _ARR_DATA, 'ptr')}")
        if isinstance(arg.value, ArrayIn) and arg.value.shape:
            out += [f"i64 {d}" for d in dims]
        return out

    # results
    def results(self, raw: list[str]) -> str:
        owned: list[str] = []

        def failed(value: str) -> None:
            """Branch to a block releasing what is owned when ``value`` is NULL."""
            c = self.tmp()
            self.emit(f"{c} = icmp eq ptr {value}, null")
            err, ok = self.label("err"), self.label()
            self.emit(f"br i1 {c}, label %{err}, label %{ok}")
            self.block(err)
            for o in owned:
                self.call("Py_DecRef", f"ptr {o}", ret="void")
            self.emit("br label %fail")
            self.block(ok)

        def build(node: Any) -> str:
            if isinstance(node, tuple) and node and isinstance(node[0], str):
                tag = node[0]
                if tag == "none":
                    self.call("Py_IncRef", f"ptr {_p(None)}", ret="void")
                    owned.append(_p(None))
                    return _p(None)
                if tag == "fresh":
                    fr = self.fresh[node[1]]
                    self.call("Py_IncRef", f"ptr {fr}", ret="void")
                    owned.append(fr)
                    return fr
                kind, value = raw_kinds[node[1]], raw[node[1]]
                if tag == "bool" or kind == "i1":
                    w = self.tmp()
                    op = "zext" if kind == "i1" else "sext"
                    self.emit(f"{w} = {op} {_IR_TYPES[kind]} {value} to i64" if kind != "i64" else f"{w} = add i64 {value}, 0")
                    r = self.call("PyBool_FromLong", f"i64 {w}")
                elif kind in ("f64", "f32"):
                    if kind == "f32":
                        w = self.tmp()
                        self.emit(f"{w} = fpext float {value} to double")
                        value = w
                    r = self.call("PyFloat_FromDouble", f"double {value}")
                else:
                    w = self.tmp()
                    if kind == "i64":
                        w = value
                    else:
                        self.emit(f"{w} = sext {_IR_TYPES[kind]} {value} to i64")
                    r = self.call("PyLong_FromLongLong", f"i64 {w}")
                failed(r)
                owned.append(r)
                return r
            items = [build(child) for child in node]
            t = self.call("PyTuple_New", f"i64 {len(items)}")
            failed(t)
            for k, item in enumerate(items):
                self.call("PyTuple_SetItem", f"ptr {t}", f"i64 {k}", f"ptr {item}", ret="i32")
                owned.remove(item)
            owned.append(t)
            return t

        raw_kinds = ([self.s.result] if self.s.result != "void" else []) + list(self.s.out_fields)
        return build(self.s.results)


def _ir(shape: CallShape, symbol: str, gen: _Gen) -> str:
    s = shape
    n_prefix = len(s.prefix)
    total = n_prefix + len(s.args)
    g = gen
    g.block("entry")
    body_start = len(g.lines)
    g.emit("%overflow = alloca i32")
    if s.status:
        g.emit(f"%status = alloca [{s.status} x i64], align 8")
        g.emit(f"store [{s.status} x i64] zeroinitializer, ptr %status")
    out_type = "{ " + ", ".join(_IR_TYPES[kind] for kind in s.out_fields) + " }" if s.out_fields else ""
    if out_type:
        g.emit(f"%out = alloca {out_type}, align 8")
    if s.traps:
        g.emit(f"%trap = alloca [{s.traps} x i64], align 8")
        g.emit(f"store [{s.traps} x i64] zeroinitializer, ptr %trap")
    c = g.tmp()
    g.emit(f"{c} = icmp eq ptr %kwnames, null")
    g.check(c)
    c = g.tmp()
    g.emit(f"{c} = icmp eq i64 %nargs, {total}")
    g.check(c)
    for word in g.alive:
        live = g.tmp()
        g.emit(f"{live} = load volatile i32, ptr {_p(word)}")
        c = g.tmp()
        g.emit(f"{c} = icmp ne i32 {live}, 0")
        g.check(c)
    if g.guard is not None:
        d, key, value = g.guard
        cur = g.call("PyDict_GetItem", f"ptr {_p(d)}", f"ptr {_p(key)}")
        c = g.tmp()
        g.emit(f"{c} = icmp eq ptr {cur}, {_p(value)}")
        g.check(c)
    for j, obj in enumerate(s.prefix):
        at, a = g.tmp(), g.tmp()
        g.emit(f"{at} = getelementptr inbounds ptr, ptr %args, i64 {j}")
        g.emit(f"{a} = load ptr, ptr {at}")
        c = g.tmp()
        g.emit(f"{c} = icmp eq ptr {a}, {_p(obj)}")
        g.check(c)
    values: list[str] = []
    for i, arg in enumerate(s.args):
        values += g.argument(n_prefix + i, arg)
    n_values = len(s.params) - (1 if s.status else 0) - (1 if s.out_fields else 0) - (1 if s.traps else 0)
    if len(values) != n_values:
        raise ValueError(f"{s.name}: {len(values)} argument values for an entry point taking {n_values}")
    for v, k in zip(values, s.params):
        if v.split(" ", 1)[0] != _IR_TYPES[k]:
            raise ValueError(f"{s.name}: value {v} where the entry point takes {k}")
    if s.status:
        values.append("ptr %status")
    if out_type:
        values.append("ptr %out")
    if s.traps:
        values.append("ptr %trap")
    fn = g.tmp("fn")
    g.emit(f"{fn} = inttoptr i64 {s.entry} to ptr")
    ts = ""
    if s.release_gil:
        ts = g.call("PyEval_SaveThread")
    ret = _IR_TYPES.get(s.result, "void") if s.result != "void" else "void"
    r = ""
    if ret == "void":
        g.emit(f"call void {fn}({', '.join(values)})")
    else:
        r = g.tmp("r")
        g.emit(f"{r} = call {ret} {fn}({', '.join(values)})")
    if s.release_gil:
        g.call("PyEval_RestoreThread", f"ptr {ts}", ret="void")
    if s.traps:
        t0 = g.tmp()
        g.emit(f"{t0} = load i64, ptr %trap")
        c = g.tmp()
        g.emit(f"{c} = icmp eq i64 {t0}, 0")
        trapped, fine = g.label("trapped"), g.label()
        g.emit(f"br i1 {c}, label %{fine}, label %{trapped}")
        g.block(trapped)
        pa = g.call("PyLong_FromVoidPtr", "ptr %trap")
        c = g.tmp()
        g.emit(f"{c} = icmp ne ptr {pa}, null")
        g.check(c, "fail")
        rr = g.call("PyObject_CallOneArg", f"ptr {_p(g.trap_raiser)}", f"ptr {pa}")
        g.call("Py_DecRef", f"ptr {pa}", ret="void")
        g.call("Py_DecRef", f"ptr {rr}", ret="void")  # NULL: it raised, as it should
        g.emit("br label %fail")
        g.block(fine)
    if s.status:
        s0 = g.tmp()
        g.emit(f"{s0} = load i64, ptr %status")
        a, b, ok = g.tmp(), g.tmp(), g.tmp()
        g.emit(f"{a} = icmp eq i64 {s0}, 0")
        g.emit(f"{b} = icmp eq i64 {s0}, -2")
        g.emit(f"{ok} = or i1 {a}, {b}")
        raise_block, done = g.label("raise"), g.label()
        g.emit(f"br i1 {ok}, label %{done}, label %{raise_block}")
        g.block(raise_block)
        pa = g.call("PyLong_FromVoidPtr", "ptr %status")
        c = g.tmp()
        g.emit(f"{c} = icmp ne ptr {pa}, null")
        g.check(c, "fail")
        rr = g.call("PyObject_CallOneArg", f"ptr {_p(g.raiser)}", f"ptr {pa}")
        g.call("Py_DecRef", f"ptr {pa}", ret="void")
        c = g.tmp()
        g.emit(f"{c} = icmp ne ptr {rr}, null")
        g.check(c, "fail")
        g.call("Py_DecRef", f"ptr {rr}", ret="void")
        g.emit(f"br label %{done}")
        g.block(done)
    raw: list[str] = [r] if r else []
    for index, kind in enumerate(s.out_fields):
        at, v = g.tmp(), g.tmp()
        g.emit(f"{at} = getelementptr inbounds {out_type}, ptr %out, i32 0, i32 {index}")
        g.emit(f"{v} = load {_IR_TYPES[kind]}, ptr {at}")
        raw.append(v)
    result = g.results(raw)
    g.emit("call void @release(ptr %held)")
    g.emit(f"ret ptr {result}")
    g.block("clear_fallback")
    g.call("PyErr_Clear", ret="void")
    g.emit("br label %fallback")
    g.block("fallback")
    g.emit("call void @release(ptr %held)")
    fb = g.call("PyObject_Vectorcall", f"ptr {_p(g.fallback)}", "ptr %args", "i64 %nargs", "ptr %kwnames")
    g.emit(f"ret ptr {fb}")
    g.block("fail")
    g.emit("call void @release(ptr %held)")
    g.emit("ret ptr null")
    slots = max(g.slots, 1)
    g.lines[body_start:body_start] = [
        f"  %held = alloca [{slots} x ptr], align 8",
        f"  store [{slots} x ptr] zeroinitializer, ptr %held",
    ]
    release = ["define internal void @release(ptr %held) {", "entry:"]
    for slot in range(g.slots):
        release.append(f"  %p{slot} = getelementptr inbounds ptr, ptr %held, i64 {slot}")
        release.append(f"  %v{slot} = load ptr, ptr %p{slot}")
        release.append(f"  call void {_p(_api_addresses()['Py_DecRef'])}(ptr %v{slot})")
    release += ["  ret void", "}"]
    head = f"define ptr @{symbol}(ptr %self, ptr %args, i64 %nargs, ptr %kwnames) {{"
    return "\n".join([*release, head, *g.lines, "}"]) + "\n"


# --------------------------------------------------------------------------- building

_counter = itertools.count()
_PIPELINE = "function(instcombine,simplifycfg)"


class _MethodDef(ctypes.Structure):
    _fields_ = [
        ("ml_name", ctypes.c_char_p),
        ("ml_meth", ctypes.c_void_p),
        ("ml_flags", ctypes.c_int),
        ("ml_doc", ctypes.c_char_p),
    ]


def _new_cfunction() -> Any:
    fn = ctypes.pythonapi.PyCFunction_NewEx
    fn.restype = ctypes.py_object
    fn.argtypes = [ctypes.c_void_p, ctypes.py_object, ctypes.c_void_p]
    return fn


def make_callable(
    shape: CallShape,
    *,
    fallback: Any,
    alive: Sequence[Any],
    raiser: Any = None,
    fresh: Any = None,
    guard: tuple[dict[str, Any], str, Any] | None = None,
    keep: Sequence[Any] = (),
    doc: str = "",
    trap_raiser: Any = None,
) -> Any:
    """The built-in function for ``shape`` (see the module docstring).

    ``fallback``: called with the very arguments (and keywords) whenever the generated
    code does not take them.  ``alive``: ctypes ``c_int32`` words, all non-zero while
    the code at ``shape.entry`` may be called (it is loaded, its module is open).  ``raiser``: called with the address of the
    status array when a Python function raised (it raises).  ``fresh``: makes the zero
    array of a fresh shadow from the value.  ``guard``: ``(dict, key, value)``; the call
    falls back unless ``dict[key] is value``.  ``keep``: objects the shape refers to
    (kept alive with the function).  ``trap_raiser``: called with the address of the trap
    block when the code called ``exit()`` or ``abort()`` (it raises).
    """
    if not supported():
        raise RuntimeError("native entry points need CPython with a GIL on a 64-bit platform")
    if shape.status and raiser is None:
        raise ValueError("a status array needs a raiser")
    if shape.traps and trap_raiser is None:
        raise ValueError("a trap block needs a trap raiser")
    if any(a.fresh for a in shape.args) and fresh is None:
        raise ValueError("a fresh shadow needs the fresh helper")
    names = {n: sys.intern(n) for n in ("val", "dval", "bounds_of")}
    symbol = f"enzpy_pycall_{next(_counter)}"
    gen = _Gen(shape, names, fallback, raiser, fresh, [ctypes.addressof(a) for a in alive], guard, trap_raiser)
    text = _ir(shape, symbol, gen)
    owner = NativeCallable(
        shape, (fallback, raiser, trap_raiser, fresh, tuple(alive), guard, names, tuple(keep), shape)
    )
    nat = native()
    with LOCK:
        # A light pipeline and the fast code generator: the body is calls and compares
        # (about 2 ms to build; default<O2> would take 7 ms for calls 7% faster).
        tm = host_target_machine(0)
        with ContextRef.create() as ctx:
            mod = ctx.parse_ir(text, symbol)
            with mod:
                mod.prepare(nat.triple, tm)
                mod.run_passes(_PIPELINE, tm, loop_transforms=False)
                obj = mod.emit_object(tm)
        owner._code = load_object(obj, f"{symbol}.o")
        address = lookup(symbol)
    method = _MethodDef()
    method.ml_name = shape.name.encode()
    method.ml_meth = address
    method.ml_flags = _METH_FASTCALL | _METH_KEYWORDS
    method.ml_doc = doc.encode() if doc else None
    owner._method = method
    return _new_cfunction()(ctypes.addressof(method), owner, None)
