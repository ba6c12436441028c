"""The fast path of repeated calls: :func:`enzyme_py.autodiff`, :func:`enzyme_py.gradient`
and :class:`enzyme_py.Function` calls with the same argument *kinds* as an earlier call.

The slow path (:func:`enzyme_py.api.prepare`, then :meth:`Module._compiled`) validates a
request completely, builds its :class:`~enzyme_py.compiler.Plan` and finds its compiled
code.  Once a request of some kind has succeeded there, :func:`remember` stores a
:class:`CallPlan` for that kind: the loaded entry point, one small converter per argument
and how to shape the results.  The kind of a request is its route (autodiff, gradient,
primal), the mode object, the return activity, the function name and, per argument, the
annotation class and the type of each value (the dtype for arrays).

Invariants:

* The slow path stays the single source of truth.  A converter re-checks everything the
  slow path checks that can differ between two arguments of the same kind (array
  contiguity, writability, shadow shape, integer range, ...); when any check fails the
  fast path gives up (:data:`MISS`) and the caller runs the slow path, which returns the
  same result or raises the same exception with the same message.  Only kinds whose slow
  call succeeded get a plan.
* Plans live in their module (``Module._fast_plans``), at most :data:`MAX_PLANS` entries
  per module (the oldest are dropped); those of Python functions (the numba route) in a
  weak dictionary per function object, and are dropped with the module's compiled code
  (``Module.clear_cache``/``close``) and when the options of :mod:`enzyme_py.config`
  change (a plan remembers the options object it was compiled under).
* Converters check the exact argument kinds themselves, so the plan last used for a
  (route, mode, return activity, function) is tried first without computing the kind
  key; when it refuses the arguments, the plan is looked up by their kinds.
* Python functions (the numba route of :mod:`enzyme_py._numba._dispatch`) get plans too:
  the Python arguments are mapped straight to the lowered entry's ctypes values (arrays:
  data pointers, then the shape; a per-thread status buffer last), and the function's own
  exception is raised from that status as on the slow path (the function is never run
  twice for one call).
* Calls are thread-safe: a plan is immutable once built; the out-struct an entry point
  fills and the status buffer are one per plan and thread.
"""

from __future__ import annotations

import ctypes
import enum
import operator
import struct
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Any, Final, Literal

import numpy as np

from . import config
from .activity import Active, Const, Duplicated, DuplicatedNoNeed

__all__ = ["MAX_PLANS", "MISS", "CallPlan", "fast_autodiff", "fast_gradient", "fast_primal", "fast_python_autodiff",
           "fast_python_gradient", "remember", "remember_gradient", "remember_python"]

class _Sentinel(enum.Enum):
    MISS = "MISS"


#: Returned by the ``fast_*`` functions when the request must take the slow path.
MISS: Final = _Sentinel.MISS
#: What ``fast_autodiff`` and its kin return.
Result = tuple[Any, ...] | Literal[_Sentinel.MISS]
#: At most this many entries per module (a plan has up to three: by mode id, by mode
#: value, and the "recent" slot of its route, mode and function); the oldest go first.
MAX_PLANS = 256
#: Stored for a kind the fast path does not serve (so it is not analysed again).
_NO_PLAN: Any = object()

_STRUCT_CODES = {"f64": "d", "f32": "f", "i1": "?", "i8": "b", "i16": "h", "i32": "i", "i64": "q"}
_INT_RANGES = {
    "i1": (0, 1),
    "i8": (-(2**7), 2**8 - 1),
    "i16": (-(2**15), 2**16 - 1),
    "i32": (-(2**31), 2**32 - 1),
    "i64": (-(2**63), 2**64 - 1),
}
_FLOAT_TYPES = (float, int, np.float64, np.float32, np.float16, np.int64, np.int32, np.int16, np.int8,
                np.uint64, np.uint32, np.uint16, np.uint8)
_INT_TYPES = (int, bool, np.bool_, np.int64, np.int32, np.int16, np.int8,
              np.uint64, np.uint32, np.uint16, np.uint8)


class _Miss(Exception):
    """A per-call check failed: the request goes to the slow path."""


# --------------------------------------------------------------------------- addresses

_from_address = ctypes.c_void_p.from_address
#: Offset of the data pointer in NumPy's array object (right after the object header).
_DATA_OFFSET = object.__basicsize__


def _address_slow(arr: np.ndarray[Any, Any]) -> int:
    return int(arr.__array_interface__["data"][0])


def _address_direct(arr: np.ndarray[Any, Any]) -> int:
    return _from_address(id(arr) + _DATA_OFFSET).value or 0


def _pick_address() -> Callable[[np.ndarray[Any, Any]], int]:
    """Read the data pointer straight from the array object when this NumPy lays it out
    as expected (checked on a few arrays), else through ``__array_interface__``."""
    probes: list[np.ndarray[Any, Any]] = [np.zeros(3), np.zeros((2, 3), dtype=np.float32)[1:], np.arange(5)[2:]]
    try:
        if all(_address_direct(a) == _address_slow(a) for a in probes):
            return _address_direct
    except (ValueError, OverflowError):  # pragma: no cover - defensive
        pass
    return _address_slow  # pragma: no cover - other array layouts


def _address(arr: np.ndarray[Any, Any]) -> int:
    """The data pointer of ``arr``; the first call picks the reader (nothing runs at
    import time) and rebinds this name to it."""
    global _address
    _address = _pick_address()  # type: ignore[assignment]
    return _address(arr)


# --------------------------------------------------------------------------- kinds


def _vkind(v: Any) -> Any:
    t = type(v)
    if t is np.ndarray:
        return v.dtype
    return t


def _kind(a: Any) -> Any:
    t = type(a)
    if t is float or t is int:
        return t
    if t is np.ndarray:
        return a.dtype
    if t is Active:
        return (t, type(a.val))
    if t is Duplicated or t is DuplicatedNoNeed:
        return (t, _vkind(a.val), _vkind(a.dval))
    if t is Const:
        return (Const, _vkind(a.val))
    return t


def _keys(route: str, mode: Any, ret: Any, name: str, args: Sequence[Any]) -> tuple[Any, ...]:
    """The keys of a plan: by the mode object's id (the plan keeps the mode alive, so the
    id cannot be reused while the plan exists) and by the mode's value."""
    kinds = tuple(map(_kind, args))
    return (route, id(mode), ret, name, kinds), (route, mode, ret, name, kinds)


# --------------------------------------------------------------------------- converters
# Each converter takes the argument as the user passed it and returns the tuple of its
# ctypes values; it raises (anything) when the argument does not look exactly like the
# kind the plan was built for.


def _scalar_conv(kind: str, vtype: type) -> Callable[[Any], Any] | None:
    """Converter of one bare scalar value of exactly type ``vtype`` for an LLVM scalar
    ``kind`` (another type raises :class:`_Miss`)."""
    if kind in ("f64", "f32"):
        if vtype is float:

            def conv_float(v: Any) -> float:
                if type(v) is float:
                    return v
                raise _Miss

            return conv_float
        if vtype in _FLOAT_TYPES:

            def conv_real(v: Any) -> float:
                if type(v) is vtype:
                    return float(v)
                raise _Miss

            return conv_real
        return None
    lo, hi = _INT_RANGES[kind]
    if vtype in _INT_TYPES:

        def conv_int(v: Any) -> int:
            if type(v) is vtype:
                v = int(v)
                if lo <= v <= hi:
                    return v  # type: ignore[no-any-return]
            raise _Miss

        return conv_int
    return None


def _array_check(need_writable: bool, dtype: Any, ndim: int | None = None) -> Callable[[Any], int]:
    """Checks an array of exactly ``dtype`` (and ``ndim``): contiguity, writability when
    the function may write through the pointer; returns its address."""

    def check(x: Any) -> int:
        if type(x) is not np.ndarray:
            raise _Miss
        xd = x.dtype
        if xd is not dtype and xd != dtype:
            raise _Miss
        if ndim is not None and x.ndim != ndim:
            raise _Miss
        fl = x.flags
        if not fl.c_contiguous or (need_writable and not fl.writeable):
            raise _Miss
        return _address(x)

    return check


def _shadow_check(x: np.ndarray[Any, Any], dx: Any) -> int:
    """Checks a shadow against its (already checked) array; returns its address."""
    if type(dx) is not np.ndarray:
        raise _Miss
    dd = dx.dtype
    if dd is not x.dtype and dd != x.dtype:
        raise _Miss
    fl = dx.flags
    if dx.shape != x.shape or not fl.c_contiguous or not fl.writeable:
        raise _Miss
    return _address(dx)


def _arg_conv(p: Any, ro: bool, a: Any, reverse: bool) -> Callable[[Any], tuple[Any, ...]] | None:
    """The converter for arguments of the kind of ``a`` (as passed in a successful slow
    call) for parameter ``p``; None when the fast path does not serve that kind."""
    t = type(a)
    if p.is_pointer:
        if t is np.ndarray:
            check = _array_check(not ro, a.dtype)
            return lambda x: (check(x),)
        if t is Const and type(a.val) is np.ndarray:
            check = _array_check(not ro, a.val.dtype)

            def const(c: Any) -> tuple[int]:
                if type(c) is not Const:
                    raise _Miss
                return (check(c.val),)

            return const
        if (t is Duplicated or t is DuplicatedNoNeed) and type(a.val) is np.ndarray:
            check = _array_check(not ro, a.val.dtype)

            def dup(d: Any) -> tuple[int, int]:
                if type(d) is not t:
                    raise _Miss
                x = d.val
                return check(x), _shadow_check(x, d.dval)

            return dup
        return None
    if t is Active or t is Const:
        if type(a.val) is float and p.is_float:  # the commonest case, in one call

            def ann_float(b: Any) -> tuple[float]:
                if type(b) is t:
                    v = b.val
                    if type(v) is float:
                        return (v,)
                raise _Miss

            return ann_float
        sc_ann = _scalar_conv(p.kind, type(a.val))
        if sc_ann is None:
            return None

        def ann(b: Any) -> tuple[Any]:
            if type(b) is not t:
                raise _Miss
            return (sc_ann(b.val),)

        return ann
    if t is Duplicated or t is DuplicatedNoNeed:
        if reverse or not p.is_float:
            return None
        sv, sd = _scalar_conv(p.kind, type(a.val)), _scalar_conv(p.kind, type(a.dval))
        if sv is None or sd is None:
            return None

        def dup_scalar(d: Any) -> tuple[Any, Any]:
            if type(d) is not t:
                raise _Miss
            return sv(d.val), sd(d.dval)

        return dup_scalar
    sc = _scalar_conv(p.kind, t)
    if sc is None:
        return None
    return lambda v: (sc(v),)



# --------------------------------------------------------------------------- plans


def _shaper(
    mode: Any, primal_idx: int, dret_idx: int, deriv_idx: tuple[int, ...]
) -> Callable[[tuple[Any, ...]], tuple[Any, ...]]:
    """The function turning an entry point's raw results into what ``autodiff`` returns
    (see :func:`enzyme_py.autodiff`); -1 marks a value the entry does not produce."""
    if mode is None or not mode.reverse:
        with_primal = mode is not None and mode.with_primal
        if dret_idx >= 0:
            if with_primal:
                return lambda raw: (raw[dret_idx], raw[primal_idx] if primal_idx >= 0 else None)
            return lambda raw: (raw[dret_idx],)
        if with_primal:
            return lambda raw: (raw[primal_idx] if primal_idx >= 0 else None,)
        return lambda raw: ()
    n = len(deriv_idx)
    # -1 picks the None appended to the raw results
    getter = operator.itemgetter(*deriv_idx) if n else (lambda _raw: ())
    if n == 1 and deriv_idx[0] >= 0 and not mode.with_primal:
        k = deriv_idx[0]
        return lambda raw: ((raw[k],),)
    if n == 1:
        j = deriv_idx[0]

        def derivs(raw: tuple[Any, ...]) -> tuple[Any, ...]:
            return (raw[j] if j >= 0 else None,)

    else:

        def derivs(raw: tuple[Any, ...]) -> tuple[Any, ...]:
            return getter((*raw, None))

    if mode.with_primal:
        if primal_idx < 0:
            return lambda raw: (derivs(raw), None)
        return lambda raw: (derivs(raw), raw[primal_idx])
    return lambda raw: (derivs(raw),)


class CallPlan:
    """A precomputed call of one request kind (see the module docstring)."""

    __slots__ = (
        "code",
        "convs",
        "deriv_idx",
        "dret_idx",
        "grad_roles",
        "grad_shape",
        "has_result",
        "mode",
        "n_out",
        "options",
        "out_type",
        "primal_idx",
        "route",
        "shape",
        "tls",
        "unpack",
    )

    def __init__(self, route: str, mode: Any, code: Any, convs: tuple[Any, ...]) -> None:
        compiled = code.compiled
        self.route = route
        self.mode = mode  # kept: the key holds id(mode)
        self.code = code
        self.convs = convs
        self.options = config.options()
        self.has_result = compiled.result != "void"
        self.out_type = code.out_type
        self.n_out = len(compiled.out_fields)
        self.unpack = (
            struct.Struct("@" + "".join(_STRUCT_CODES[k] for k in compiled.out_fields)).unpack_from
            if compiled.out_fields
            else None
        )
        self.tls = threading.local()
        outputs = compiled.outputs
        self.primal_idx = outputs.index("primal") if "primal" in outputs else -1
        self.dret_idx = outputs.index("dret") if "dret" in outputs else -1
        self.deriv_idx = tuple(
            outputs.index(f"d{i}") if f"d{i}" in outputs else -1 for i in range(len(convs))
        )
        self.grad_roles: tuple[str, ...] = ()
        self.shape = _shaper(mode, self.primal_idx, self.dret_idx, self.deriv_idx)
        self.grad_shape: Callable[[tuple[Any, ...], list[Any]], tuple[Any, ...]] = lambda raw, _s: raw

    def run(self, args: Sequence[Any]) -> tuple[Any, ...]:
        """Convert ``args`` and call the entry point; the raw results in ``outputs`` order.
        Raises :class:`_Miss` (or the converter's exception) when a check fails."""
        cfunc = self.code._cfunc
        if cfunc is None or self.options is not config._current or len(args) != len(self.convs):
            raise _Miss
        if self.grad_roles:
            return self.run_gradient(cfunc, args)
        vals: list[Any] = []
        ext = vals.extend
        for conv, a in zip(self.convs, args):
            ext(conv(a))
        if self.unpack is None:
            r = cfunc(*vals)
            return (r,) if self.has_result else ()
        return self.call(cfunc, vals)

    def run_gradient(self, cfunc: Any, xs: Sequence[Any]) -> tuple[tuple[Any, ...], list[Any]]:
        """A gradient plan's call: the raw results and the fresh shadows of the arrays."""
        vals: list[Any] = []
        shadows: list[Any] = []
        for conv, role, x in zip(self.convs, self.grad_roles, xs):
            got = conv(x)
            if role == "shadow":
                vals += got[:2]
                shadows.append(got[2])
            else:
                vals += got
        return self.call(cfunc, vals), shadows

    def call(self, cfunc: Any, vals: list[Any]) -> tuple[Any, ...]:
        if self.unpack is None:
            r = cfunc(*vals)
            return (r,) if self.has_result else ()
        tls = self.tls
        try:
            out, addr = tls.out
        except AttributeError:
            out = self.out_type()
            addr = ctypes.addressof(out)
            tls.out = (out, addr)
        r = cfunc(*vals, addr)
        fields = self.unpack(out)
        return (r, *fields) if self.has_result else fields


def _plans(f: Any) -> dict[Any, Any] | None:
    return getattr(f.module, "_fast_plans", None)


def _build(route: str, mode: Any, f: Any, args: Sequence[Any], code: Any) -> Any:
    sig = f.llvm_signature
    if sig.variadic or len(args) != len(sig.params):
        return _NO_PLAN
    readonly = sig.readonly or (False,) * len(sig.params)
    reverse = mode is not None and mode.reverse
    if code.compiled.plan.width != 1:
        return _NO_PLAN
    convs = []
    for p, ro, a in zip(sig.params, readonly, args):
        c = _arg_conv(p, ro, a, reverse)
        if c is None:
            return _NO_PLAN
        convs.append(c)
    return CallPlan(route, mode, code, tuple(convs))


def remember(route: str, mode: Any, f: Any, ret: Any, args: Sequence[Any], code: Any) -> None:
    """Store the plan of a request that just succeeded on the slow path.

    ``route``: ``"autodiff"``, ``"primal"`` (``mode`` None) or ``"gradient"`` (``args``
    are the user's bare values; ``code`` the code of the annotated request).
    """
    plans = _plans(f)
    if plans is None:
        return
    try:
        keys = _keys(route, mode, ret, f.name, args)
        if route == "gradient":
            plan = _build_gradient(mode, f, args, code)
        else:
            plan = _build(route, mode, f, args, code)
    except Exception:  # noqa: BLE001 - a kind the fast path does not understand
        return
    while len(plans) > max(0, MAX_PLANS - 3):  # room for the two keys and the recent slot
        try:
            del plans[next(iter(plans))]
        except (StopIteration, KeyError, RuntimeError):
            break
    for key in keys:
        plans[key] = plan
    if plan is not _NO_PLAN:
        plans[(route, id(mode), ret, f.name)] = plan  # the recent slot of _serve


def _lookup(route: str, mode: Any, ret: Any, f: Any, args: Sequence[Any]) -> Any:
    module = f.module
    plans = module._fast_plans
    kinds = tuple(map(_kind, args))
    plan = plans.get((route, id(mode), ret, f.name, kinds))
    if plan is None or plan is _NO_PLAN or plan.mode is not mode:
        # another mode object with the same flags (e.g. set_runtime_activity(Reverse)
        # written in the call): found by value
        plan = plans.get((route, mode, ret, f.name, kinds))
        if plan is None or plan is _NO_PLAN:
            return None
    if module._module is None:
        return None
    return plan


def _serve(route: str, mode: Any, ret: Any, f: Any, args: Sequence[Any]) -> tuple[CallPlan, Any]:
    """Run the plan that accepts ``args``: first the plan last used for this (route, mode,
    return activity, function), whose converters check the argument kinds themselves,
    then the plan stored for the arguments' kinds.  Raises when there is none or a check
    fails (the caller then takes the slow path)."""
    module = f.module
    plans = module._fast_plans
    recent_key = (route, id(mode), ret, f.name)
    plan = plans.get(recent_key)
    if plan is not None and plan.mode is mode and module._module is not None:
        try:
            return plan, plan.run(args)
        except Exception:  # noqa: BLE001, S110 - another kind: look it up
            pass
    plan = _lookup(route, mode, ret, f, args)
    if plan is None:
        raise _Miss
    result = plan.run(args)
    if plan.mode is mode:
        plans[recent_key] = plan
    return plan, result


def fast_autodiff(mode: Any, f: Any, ret: Any, args: Sequence[Any]) -> Result:
    """``autodiff(mode, f, ret, *args)`` through a stored plan, or :data:`MISS`."""
    try:
        module = f.module
        plan: CallPlan | None = module._fast_plans.get(("autodiff", id(mode), ret, f.name))  # recent
        if plan is not None and plan.mode is mode and module._module is not None:
            try:
                return plan.shape(plan.run(args))
            except Exception:  # noqa: BLE001, S110 - another kind: look it up
                pass
        plan, raw = _serve("autodiff", mode, ret, f, args)
    except Exception:  # noqa: BLE001 - any failed check: the slow path decides
        return MISS
    return plan.shape(raw)


def fast_primal(f: Any, args: Sequence[Any]) -> Any:
    """``f(*args)`` through a stored plan, or :data:`MISS`."""
    try:
        plan, raw = _serve("primal", None, None, f, args)
    except Exception:  # noqa: BLE001
        return MISS
    return raw[plan.primal_idx] if plan.primal_idx >= 0 else None


# --------------------------------------------------------------------------- gradient


def _build_gradient(mode: Any, f: Any, xs: Sequence[Any], code: Any) -> Any:
    """A gradient plan: bare floats Active, bare float arrays Duplicated with a fresh zero
    shadow, bare integers/integer arrays and ``Const(v)`` Const (as :func:`gradient`)."""
    sig = f.llvm_signature
    if sig.variadic or len(xs) != len(sig.params) or code.compiled.plan.width != 1:
        return _NO_PLAN
    readonly = sig.readonly or (False,) * len(sig.params)
    convs: list[Callable[[Any], tuple[Any, ...]]] = []
    roles = []
    for p, ro, x in zip(sig.params, readonly, xs):
        t = type(x)
        if p.is_pointer and t is np.ndarray and x.dtype in (np.dtype(np.float64), np.dtype(np.float32)):
            check = _array_check(not ro, x.dtype)

            def zero_dup(x: np.ndarray[Any, Any], check: Any = check) -> tuple[Any, ...]:
                a = check(x)
                dx = np.zeros(x.shape, dtype=x.dtype)
                return (a, _address(dx), dx)

            convs.append(zero_dup)
            roles.append("shadow")
            continue
        c = _arg_conv(p, ro, x, True)
        if c is None or (t is not Const and not p.is_pointer and p.is_float and t is np.ndarray):
            return _NO_PLAN
        if t is Const or p.is_pointer or not p.is_float:
            roles.append("none")
        elif t in (Active, Duplicated, DuplicatedNoNeed):
            return _NO_PLAN
        else:
            roles.append("active")
        convs.append(c)
    plan = CallPlan("gradient", mode, code, tuple(convs))
    plan.grad_roles = tuple(roles)
    plan.grad_shape = _grad_shaper(mode, plan.grad_roles, plan.deriv_idx, plan.primal_idx)
    return plan


def _grad_shaper(
    mode: Any, roles: tuple[str, ...], deriv_idx: tuple[int, ...], primal_idx: int
) -> Callable[[tuple[Any, ...], list[Any]], tuple[Any, ...]]:
    """``(raw results, fresh shadows) -> gradient(...)'s result`` (see :func:`gradient`)."""
    if roles == ("active",) and deriv_idx[0] >= 0 and not mode.with_primal:
        j = deriv_idx[0]
        return lambda raw, _shadows: (raw[j],)

    def shape(raw: tuple[Any, ...], shadows: list[Any]) -> tuple[Any, ...]:
        it = iter(shadows)
        grads = tuple(
            next(it) if role == "shadow" else (raw[j] if role == "active" and j >= 0 else None)
            for role, j in zip(roles, deriv_idx)
        )
        if mode.with_primal:
            return grads, (raw[primal_idx] if primal_idx >= 0 else None)
        return grads

    return shape


def remember_gradient(mode: Any, f: Any, xs: Sequence[Any], annotated: Sequence[Any]) -> None:
    """Store the gradient plan of ``gradient(mode, f, *xs)``, which just succeeded as
    ``autodiff(mode, f, Active, *annotated)`` (whose plan gives the code)."""
    plan = _lookup("autodiff", mode, Active, f, annotated)
    if plan is not None:
        remember("gradient", mode, f, None, xs, plan.code)


def fast_gradient(mode: Any, f: Any, xs: Sequence[Any]) -> Result:
    """``gradient(mode, f, *xs)`` through a stored plan, or :data:`MISS`."""
    try:
        module = f.module
        recent: CallPlan | None = module._fast_plans.get(("gradient", id(mode), None, f.name))
        got = None
        if recent is not None and recent.mode is mode and module._module is not None:
            try:
                got = recent.run(xs)
                plan = recent
            except Exception:  # noqa: BLE001 - another kind: look it up
                got = None
        if got is None:
            plan, got = _serve("gradient", mode, None, f, xs)
        raw, shadows = got
    except Exception:  # noqa: BLE001
        return MISS
    return plan.grad_shape(raw, shadows)


# --------------------------------------------------------------------------- Python functions
# The numba route (enzyme_py._numba._dispatch): a Python function's call is mapped onto
# its lowered entry function (arrays become their data pointer plus shape, a status array
# is appended) and differentiated as that entry.  The plan maps the Python arguments
# straight to the entry's ctypes values, reusing the entry's own plan for scalars.

#: function object (plain function, numba dispatcher or enzyme_py.jit object) -> plans
_py_plans: weakref.WeakKeyDictionary[Any, dict[Any, Any]] = weakref.WeakKeyDictionary()
_py_lock = threading.Lock()
_INT64_MIN, _INT64_END = -(2**63), 2**63


def _pkind(a: Any) -> Any:
    t = type(a)
    if t is float or t is int:
        return t
    if t is np.ndarray:
        return (a.dtype, a.ndim)
    if t is Active:
        return (t, type(a.val))
    if t is Duplicated or t is DuplicatedNoNeed:
        v, d = a.val, a.dval
        return (t, (v.dtype, v.ndim) if type(v) is np.ndarray else type(v), _vkind(d))
    if t is Const:
        v = a.val
        return (Const, (v.dtype, v.ndim) if type(v) is np.ndarray else type(v))
    return t


class PythonPlan:
    """A precomputed call of a Python function's entry for one request kind."""

    __slots__ = (
        "boundscheck",
        "convs",
        "entry",
        "fold_idx",
        "grad_roles",
        "lowered",
        "mode",
        "numba_config",
        "plan",
        "shape",
    )

    def __init__(self, entry: Any, plan: CallPlan, lowered: Any, convs: tuple[Any, ...],
                 fold_idx: tuple[int, ...], numba_config: Any) -> None:
        self.entry = entry
        self.plan = plan
        self.lowered = lowered
        self.convs = convs
        self.fold_idx = fold_idx
        self.numba_config = numba_config
        self.boundscheck = numba_config.BOUNDSCHECK
        self.grad_roles: tuple[str, ...] = ()
        self.mode = plan.mode
        self.shape: Callable[[tuple[Any, ...]], tuple[Any, ...]] = _shaper(
            plan.mode, plan.primal_idx, plan.dret_idx, fold_idx
        )

    def values(self, args: Sequence[Any]) -> tuple[list[Any], list[Any]]:
        """The entry's ctypes values for ``args`` (without the status) and the fresh zero
        shadows of a gradient's arrays; raises when an argument is of another kind."""
        if len(args) != len(self.convs):
            raise _Miss
        vals: list[Any] = []
        shadows: list[Any] = []
        if not self.grad_roles:
            ext = vals.extend
            for conv, a in zip(self.convs, args):
                ext(conv(a))
            return vals, shadows
        for conv, role, x in zip(self.convs, self.grad_roles, args):
            got = conv(x)
            if role == "shadow":
                vals += got[:-1]
                shadows.append(got[-1])
            else:
                vals += got
        return vals, shadows

    def call(self, vals: list[Any]) -> tuple[Any, ...]:
        """Call the entry with ``vals`` (the status address is appended); raises the
        function's own exception when its status says it raised one."""
        plan = self.plan
        cfunc = plan.code._cfunc
        if (
            cfunc is None
            or plan.options is not config._current
            or self.entry.module._module is None
            or self.numba_config.BOUNDSCHECK != self.boundscheck
        ):
            raise _Miss
        tls = plan.tls
        try:
            status, status_addr = tls.status
        except AttributeError:
            status = (ctypes.c_int64 * 2)()
            status_addr = ctypes.addressof(status)
            tls.status = (status, status_addr)
        status[0] = status[1] = 0
        vals.append(status_addr)
        raw = plan.call(cfunc, vals)
        if status[0] not in (0, -2):
            raise _Raised(self.lowered, np.array(status[:], dtype=np.int64))
        return raw


class _Raised(Exception):
    """The function raised: carries what :func:`raise_from_status` needs (raised outside
    the fast path's fallback handler)."""


def _py_array_conv(kind: Any, entry_ro: bool, x: np.ndarray[Any, Any]) -> Callable[[Any], tuple[Any, ...]]:
    """An array argument of the kind of ``x`` (``kind``: "bare" or the annotation class):
    its data pointer(s), then its shape."""
    x_check = _array_check(not entry_ro, x.dtype, x.ndim)
    if kind == "bare":
        return lambda x: (x_check(x), *x.shape)
    if kind is Const:

        def const(c: Any) -> tuple[Any, ...]:
            if type(c) is not Const:
                raise _Miss
            x = c.val
            return (x_check(x), *x.shape)

        return const

    def dup(d: Any) -> tuple[Any, ...]:
        if type(d) is not kind:
            raise _Miss
        x = d.val
        return (x_check(x), _shadow_check(x, d.dval), *x.shape)

    return dup


def _py_convs(
    low: Any, entry: Any, call: Any, args: Sequence[Any], roles: Sequence[str], reverse: bool
) -> Any:
    """Per Python argument (as passed: ``args``) its converter to entry values, and the
    entry parameter whose derivative is its reverse-mode result (-1: None)."""
    sig = entry.llvm_signature
    readonly = sig.readonly or (False,) * len(sig.params)
    convs: list[Any] = []
    fold = []
    for i, (spec, a) in enumerate(zip(low.arg_layout, args)):
        k = call.first_param[i]
        t = type(a)
        if spec.kind == "scalar":
            v = a.val if t in (Active, Const, Duplicated, DuplicatedNoNeed) else a
            if type(v) not in (float, int, np.float64, np.float32, np.int64):
                return None
            c = _arg_conv(sig.params[k], readonly[k], a, reverse)
            if c is None:
                return None
            if type(v) is int:
                c = _int64_guard(c, t is int)
            convs.append(c)
            fold.append(k)
            continue
        fold.append(-1)
        if roles and roles[i] == "shadow" and t is np.ndarray:
            convs.append(_py_zero_shadow_conv(readonly[k], a))
        elif t is np.ndarray:
            convs.append(_py_array_conv("bare", readonly[k], a))
        elif t is Const and type(a.val) is np.ndarray:
            convs.append(_py_array_conv(Const, readonly[k], a.val))
        elif t in (Duplicated, DuplicatedNoNeed) and type(a.val) is np.ndarray and type(a.dval) is np.ndarray:
            convs.append(_py_array_conv(t, readonly[k], a.val))
        else:
            return None
    return tuple(convs), tuple(fold)


def _py_zero_shadow_conv(entry_ro: bool, like: np.ndarray[Any, Any]) -> Callable[[Any], tuple[Any, ...]]:
    """Bare float array ``x`` of a gradient: ``x`` with a fresh zero shadow, which is
    returned last (it is the gradient)."""
    x_check = _array_check(not entry_ro, like.dtype, like.ndim)

    def conv(x: np.ndarray[Any, Any]) -> tuple[Any, ...]:
        a = x_check(x)
        dx = np.zeros_like(x)
        return (a, _address(dx), *x.shape, dx)

    return conv


def _int64_guard(conv: Callable[[Any], Any], bare: bool) -> Callable[[Any], Any]:
    """An int scalar must fit int64 (the numba bridge's own check) before the entry's."""

    def guarded(a: Any) -> Any:
        v = a if bare else a.val
        if _INT64_MIN <= v < _INT64_END:
            return conv(a)
        raise _Miss

    return guarded


def _py_store(f: Any, keys: tuple[Any, ...], plan: Any) -> None:
    with _py_lock:
        try:
            plans = _py_plans.setdefault(f, {})
        except TypeError:
            return
        if len(plans) >= MAX_PLANS:
            plans.clear()
        for key in keys:
            plans[key] = plan
        plans[keys[0][:3]] = plan  # the recent slot of _py_serve


def remember_python(
    route: str, mode: Any, f: Any, ret: Any, args: Sequence[Any], low: Any, entry: Any,
    entry_ret: Any, call: Any, grad_roles: tuple[str, ...] = (), user_args: Sequence[Any] = (),
) -> None:
    """Store the plan of a Python-function request that just succeeded on the slow path.

    ``args``: the annotated arguments given to the entry mapping (``call``, from
    :func:`~enzyme_py._numba._calls.map_call`); for ``route="gradient"``, ``user_args``
    are the user's bare values and ``grad_roles`` says per argument ``active``,
    ``shadow`` (a fresh zero shadow) or ``none``.
    """
    try:
        from numba.core import config as numba_config

        plan = _lookup("autodiff", mode, entry_ret, entry, call.args)
        if not isinstance(plan, CallPlan):
            return
        keyargs = user_args if route == "gradient" else args
        built = _py_convs(low, entry, call, keyargs, grad_roles, mode.reverse)
        if built is None:
            return
        convs, fold = built
        pplan = PythonPlan(entry, plan, low, convs, tuple(plan.deriv_idx[k] if k >= 0 else -1 for k in fold),
                           numba_config)
        pplan.grad_roles = grad_roles
        pplan.mode = mode  # kept: the key holds id(mode)
        kinds = tuple(map(_pkind, keyargs))
        _py_store(f, ((route, id(mode), ret, kinds), (route, mode, ret, kinds)), pplan)
    except Exception:  # noqa: BLE001 - a kind the fast path does not understand
        return


def _py_lookup(route: str, mode: Any, ret: Any, f: Any, args: Sequence[Any]) -> Any:
    plans = _py_plans.get(f)
    if not plans:
        return None
    kinds = tuple(map(_pkind, args))
    pplan = plans.get((route, id(mode), ret, kinds))
    if pplan is None or pplan.mode is not mode:
        return plans.get((route, mode, ret, kinds))
    return pplan


def _py_serve(
    route: str, mode: Any, ret: Any, f: Any, args: Sequence[Any]
) -> tuple[PythonPlan, Any, list[Any]]:
    """As :func:`_serve` for a Python function: ``(plan, raw results, fresh shadows)``.
    :class:`_Raised` when the function raised (it ran: never run it again)."""
    plans = _py_plans.get(f)
    if not plans:
        raise _Miss
    recent_key = (route, id(mode), ret)
    pplan = plans.get(recent_key)
    if pplan is not None and pplan.mode is mode:
        try:
            vals, shadows = pplan.values(args)
        except Exception:  # noqa: BLE001 - another kind: look it up
            pplan = None
        else:
            return pplan, pplan.call(vals), shadows
    pplan = _py_lookup(route, mode, ret, f, args)
    if pplan is None:
        raise _Miss
    vals, shadows = pplan.values(args)
    if pplan.mode is mode:
        plans[recent_key] = pplan
    return pplan, pplan.call(vals), shadows


def fast_python_autodiff(mode: Any, f: Any, ret: Any, args: Sequence[Any]) -> Result:
    """``autodiff(mode, f, ret, *args)`` of a Python function through a stored plan, or
    :data:`MISS`.  The function's own exception is raised as on the slow path."""
    try:
        pplan, raw, _ = _py_serve("autodiff", mode, ret, f, args)
    except _Raised as r:
        raised = r.args
    except Exception:  # noqa: BLE001 - any failed check: the slow path decides
        return MISS
    else:
        raised = ()
    if raised:
        _reraise(raised)
    return pplan.shape(raw)


def fast_python_gradient(mode: Any, f: Any, xs: Sequence[Any]) -> Result:
    """``gradient(mode, f, *xs)`` of a Python function through a stored plan, or
    :data:`MISS`."""
    try:
        pplan, raw, shadows = _py_serve("gradient", mode, None, f, xs)
    except _Raised as r:
        raised = r.args
    except Exception:  # noqa: BLE001
        return MISS
    else:
        raised = ()
    if raised:
        _reraise(raised)
    it = iter(shadows)
    grads = tuple(
        next(it) if role == "shadow" else (raw[j] if role == "active" and j >= 0 else None)
        for role, j in zip(pplan.grad_roles, pplan.fold_idx)
    )
    if mode.with_primal:
        plan = pplan.plan
        return grads, (raw[plan.primal_idx] if plan.primal_idx >= 0 else None)
    return grads


def _reraise(raised: tuple[Any, ...]) -> None:
    """Raise the Python function's own exception, as the slow path does."""
    from ._numba import raise_from_status

    raise_from_status(*raised)
    raise RuntimeError("the entry reported an exception that could not be raised")
