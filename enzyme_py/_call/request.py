"""One argument specification per request, which makes both the validating first call
and the fast repeated call.

A request is a route (``primal``, ``autodiff``, ``gradient``, ``hvp``, ``split``), a mode,
a return activity and the *kinds* of its arguments (annotation class, value type, dtype,
number of dimensions, batch width: :func:`kind_of`).  :func:`build` checks everything that
depends only on the kinds (which activity fits which parameter in which mode, dtypes),
raising ``TypeError``/``ValueError`` that name the function and the argument, and returns
a :class:`Spec`: the compile :class:`~enzyme_py._compile.plan.Plan` and one converter per
argument.  A converter checks everything that can differ between two arguments of the
same kind (contiguity, writability, shapes, integer ranges) and returns the argument's
ctypes values.  Every call, the first and the repeated ones, goes through the same
converters, so each check exists once and both paths give the same result and the same
message.  A converter given an argument of another kind raises :class:`KindMismatch`
(internal): the caller looks the request up by its kinds instead.
"""

from __future__ import annotations

import ctypes
import threading
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from .. import config
from .._compile.plan import FORWARD, HVP, PRIMAL, REVERSE, SPLIT, ArgPlan, Plan, output_names
from .._native.ffi.enzyme import DiffeType
from .._native.pycall import ArgIn, ArrayIn, ScalarIn
from .._native.types import DTYPES, KIND_OF_DTYPE
from ..activity import (
    Active,
    Annotation,
    BatchDuplicated,
    BatchDuplicatedNoNeed,
    Const,
    Duplicated,
    DuplicatedNoNeed,
)
from ..modes import Mode
from . import batch, pointers
from . import run as _run
from .convert import ArgConv, Converter, KindMismatch
from .layout import (
    ArrayParam,
    ArrayResult,
    Layout,
    PointerParam,
    ScalarParam,
    ScalarResult,
    TupleResult,
    UnsupportedParam,
    UnsupportedResult,
    VoidResult,
)
from .run import Entry

__all__ = [
    "AUTODIFF",
    "GRADIENT",
    "HVP_ROUTE",
    "PRIMAL_ROUTE",
    "SPLIT_ROUTE",
    "HvpArg",
    "KindMismatch",
    "Spec",
    "build",
    "kind_of",
    "kinds",
    "primal_spec",
    "real_value",
]

PRIMAL_ROUTE = "primal"
AUTODIFF = "autodiff"
GRADIENT = "gradient"
HVP_ROUTE = "hvp"
SPLIT_ROUTE = "split"

_RETURN_ACTIVITIES = (Active, Const, Duplicated, DuplicatedNoNeed)
#: A batched return activity is the plain one at the request's width.
_UNBATCHED = {BatchDuplicated: Duplicated, BatchDuplicatedNoNeed: DuplicatedNoNeed}
_FLOAT_DTYPES = (np.dtype(np.float64), np.dtype(np.float32))
_ADDRESS_DTYPE = np.dtype(np.uintp)
_REAL_TYPES = (int, float, np.integer, np.floating)
_INT_TYPES = (int, np.integer, bool, np.bool_)


@dataclass(frozen=True, eq=False)
class HvpArg(Annotation):
    """The differentiated argument of a Hessian-vector product (internal): ``val`` with
    its gradient shadow, the direction ``v`` and the product's shadow ``hv``."""

    val: Any
    grad: Any
    v: Any
    hv: Any


# --------------------------------------------------------------------------- kinds


def _vkind(v: Any) -> Any:
    t = type(v)
    if t is np.ndarray:
        return (v.dtype, v.ndim)
    return t


def kind_of(a: Any) -> Any:
    """The kind of one argument (what a spec depends on)."""
    t = type(a)
    if t is float or t is int:
        return t
    if t is np.ndarray:
        return (a.dtype, a.ndim)
    if t is Const:
        return (t, _vkind(a.val), a.bounds_of is not None)
    if t is Active:
        return (t, _vkind(a.val))
    if t is Duplicated or t is DuplicatedNoNeed:
        return (t, _vkind(a.val), _vkind(a.dval))
    if t is BatchDuplicated or t is BatchDuplicatedNoNeed:
        return (t, _vkind(a.val), a.width, _vkind(a.dvals[0]))
    if t is HvpArg:
        return (t, _vkind(a.val))
    return t


def kinds(args: Sequence[Any]) -> tuple[Any, ...]:
    return tuple(map(kind_of, args))


# --------------------------------------------------------------------------- value checks
# Shared by every converter; each raises the user-facing error.


def real_value(v: Any, what: str) -> float:
    """``v`` as a float; ``TypeError`` naming ``what`` for anything but a real number."""
    return _real(v, what)


def _real(v: Any, what: str) -> float:
    if isinstance(v, np.ndarray):
        if v.ndim != 0:
            raise TypeError(f"{what} is a scalar; got an array of shape {v.shape}")
        v = v[()]
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, _REAL_TYPES):
        raise TypeError(f"{what} expects a real number, got {type(v).__name__}")
    try:
        return float(v)
    except OverflowError:
        raise ValueError(
            f"{what}: an integer of {len(str(abs(int(v))))} digits is too large for a "
            "floating-point number"
        ) from None


def _integer(v: Any, p: ScalarParam, what: str) -> int:
    if isinstance(v, np.ndarray):
        if v.ndim != 0:
            raise TypeError(f"{what} is a scalar; got an array of shape {v.shape}")
        v = v[()]
    if not isinstance(v, _INT_TYPES):
        raise TypeError(f"{what} expects an integer, got {type(v).__name__}")
    iv = int(v)
    if not p.lo <= iv <= p.hi:
        hint = "; pass np.uint64(v) for an unsigned value" if p.dtype == "int64" and 0 <= iv < 2**64 else ""
        raise ValueError(f"{what}: {iv} does not fit in {p.text}{hint}")
    return iv


def _number(p: ScalarParam, what: str) -> Callable[[Any], Any]:
    if p.is_float:
        return lambda v: _real(v, what)
    return lambda v: _integer(v, p, what)


def _contiguous(arr: np.ndarray[Any, Any], what: str) -> None:
    if not arr.flags.c_contiguous:
        raise ValueError(f"{what}: the array must be C-contiguous (use np.ascontiguousarray)")


def _writable(arr: np.ndarray[Any, Any], readonly: bool, what: str) -> None:
    if not readonly and not arr.flags.writeable:
        raise ValueError(
            f"{what}: the array is read-only but the function may write through this "
            "pointer (it is not marked readonly); pass a writable array"
        )


def _shadow_ok(x: np.ndarray[Any, Any], dx: np.ndarray[Any, Any], what: str) -> None:
    if dx.shape != x.shape:
        raise ValueError(f"{what}: shadow shape {dx.shape} differs from the array's {x.shape}")
    if not dx.flags.c_contiguous:
        raise ValueError(f"{what}: the shadow must be C-contiguous")
    if not dx.flags.writeable:
        raise ValueError(f"{what}: the shadow is read-only; Enzyme writes into shadows")


# --------------------------------------------------------------------------- kind checks


def _array_kind(value: Any, p: PointerParam | ArrayParam, what: str, *, float_only: bool) -> str:
    """Check an array's type and dtype against a pointer or array parameter; its element
    kind."""
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{what} expects a NumPy array, got {type(value).__name__}")
    kind = KIND_OF_DTYPE.get(value.dtype)
    if value.dtype == _ADDRESS_DTYPE and isinstance(p, PointerParam) and p.pointee in ("ptr", None):
        kind = "ptr"  # an array of addresses (np.uintp) for a pointer to pointers
    if isinstance(p, ArrayParam):
        if value.dtype != p.dtype or value.ndim != p.ndim:
            raise TypeError(
                f"{what} expects a {p.dtype} array of {p.ndim} dimension(s), got a "
                f"{value.dtype} array of {value.ndim}"
            )
    else:
        if p.pointee == "unsupported":
            raise TypeError(f"{what}: pointers to this element type are not supported")
        if p.pointee is not None and kind != p.pointee:
            raise TypeError(f"{what} expects a {DTYPES[p.pointee]} array, got dtype {value.dtype}")
    if kind is None:
        raise TypeError(
            f"{what}: arrays of dtype {value.dtype} are not supported "
            "(use float64, float32 or a native-endian integer dtype)"
        )
    if float_only and kind not in ("f64", "f32"):
        raise TypeError(
            f"{what}: only float64/float32 arrays can be differentiated; an integer array is Const"
        )
    return kind


def _shadow_kind(x: Any, dx: Any, what: str) -> None:
    if not isinstance(dx, np.ndarray):
        raise TypeError(f"{what}: the shadow must be a NumPy array, got {type(dx).__name__}")
    if dx.dtype != x.dtype:
        raise TypeError(f"{what}: shadow dtype {dx.dtype} differs from the array's {x.dtype}")


def _scalar_kind(value: Any, p: ScalarParam, what: str) -> None:
    if isinstance(value, np.ndarray) and value.ndim != 0:
        raise TypeError(f"{what} is a scalar; got an array of shape {value.shape}")
    if p.is_float:
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (*_REAL_TYPES, np.ndarray)):
            raise TypeError(f"{what} expects a real number, got {type(value).__name__}")
    elif not isinstance(value, (*_INT_TYPES, np.ndarray)):
        raise TypeError(f"{what} expects an integer, got {type(value).__name__}")


# --------------------------------------------------------------------------- converters
# A converter takes the argument as the user passed it and returns its ctypes values
# (the values kept alive for the call come last, after the marker _KEEP).


def _value_type_check(a_val: Any) -> Callable[[Any], bool]:
    vk = _vkind(a_val)
    if isinstance(vk, tuple):
        dt, nd = vk
        return lambda v: type(v) is np.ndarray and v.dtype == dt and v.ndim == nd
    return lambda v: type(v) is vk


def _scalar_in(value: Any, p: ScalarParam) -> ScalarIn | None:
    """The native conversion of a scalar of ``value``'s type for ``p`` (None for a 0-d
    array, which the converter unwraps)."""
    t = type(value)
    if t is np.ndarray:
        return None
    return ScalarIn(t, p.kind, p.lo, p.hi)


def _array_in(value: np.ndarray[Any, Any], p: PointerParam | ArrayParam) -> ArrayIn:
    return ArrayIn(value.dtype, value.ndim, not p.readonly, isinstance(p, ArrayParam))


def _native_arg(value: ScalarIn | ArrayIn | None, **kw: Any) -> ArgIn | None:
    return None if value is None else ArgIn(value, **kw)


def _shape_plans(p: PointerParam | ArrayParam) -> tuple[ArgPlan, ...]:
    if isinstance(p, ArrayParam):
        return (ArgPlan("i64", None, DiffeType.CONSTANT),) * p.ndim
    return ()


def _const_conv(p: Any, a: Any, what: str, wrapped: bool) -> ArgConv:
    value = a.val if wrapped else a
    if isinstance(p, PointerParam) and pointers.is_pointer_data(value):
        return pointers.pointer_conv(p, a, what, activity=None, wrapped=wrapped)
    if isinstance(p, ScalarParam):
        _scalar_kind(value, p, what)
        num = _number(p, what)
        vcheck = _value_type_check(value)
        if wrapped and a.bounds_of is not None:
            if p.is_float:
                raise TypeError(f"{what}: bounds_of= is for an integer length, not a float")

            def bounded(c: Any) -> Any:
                if type(c) is not Const or not vcheck(c.val) or c.bounds_of is None:
                    raise KindMismatch
                n = num(c.val)
                for arr in c.bounds_of:
                    if not 0 <= n <= arr.size:
                        raise ValueError(
                            f"{what}: {n} is outside 0..{arr.size}, the elements of an array it "
                            "bounds; the function would read or write past the array's end"
                        )
                return (n,), (), None

            return ArgConv(bounded, (ArgPlan(p.kind, None, DiffeType.CONSTANT),))
        native = _native_arg(_scalar_in(value, p), wrapper=Const, const=True) if wrapped else None
        conv: Converter
        if wrapped:

            def const_scalar(c: Any) -> Any:
                if type(c) is not Const or not vcheck(c.val) or c.bounds_of is not None:
                    raise KindMismatch
                return (num(c.val),), (), None

            conv = const_scalar
        else:
            native = _native_arg(_scalar_in(value, p))
            t = type(a)
            if t is float and p.is_float:

                def bare_float(v: Any) -> Any:
                    if type(v) is not float:
                        raise KindMismatch
                    return (v,), (), None

                conv = bare_float
            else:

                def bare_scalar(v: Any) -> Any:
                    if not vcheck(v):
                        raise KindMismatch
                    return (num(v),), (), None

                conv = bare_scalar
        return ArgConv(conv, (ArgPlan(p.kind, None, DiffeType.CONSTANT),), native=native)
    kind = _array_kind(value, p, what, float_only=False)
    ro = p.readonly
    dt, nd = value.dtype, value.ndim
    shaped = isinstance(p, ArrayParam)

    def bare_array(x: Any) -> Any:
        if type(x) is not np.ndarray or x.dtype != dt or x.ndim != nd:
            raise KindMismatch
        _contiguous(x, what)
        _writable(x, ro, what)
        if shaped:
            return (_run.address_of(x), *x.shape), (x,), None
        return (_run.address_of(x),), (x,), None

    array_conv: Converter
    if wrapped:

        def const_array(c: Any) -> Any:
            if type(c) is not Const:
                raise KindMismatch
            return bare_array(c.val)

        array_conv = const_array
    else:
        array_conv = bare_array
    native = ArgIn(_array_in(value, p), wrapper=Const if wrapped else None)
    return ArgConv(array_conv, (ArgPlan("ptr", kind, DiffeType.CONSTANT), *_shape_plans(p)), native=native)


def _active_conv(p: Any, a: Any, what: str, reverse: bool) -> ArgConv:
    if not isinstance(p, ScalarParam):
        raise TypeError(
            f"{what}: Active applies to float scalars only; an array is Duplicated(x, dx) "
            "(or Const), not Active"
        )
    if not p.is_float:
        raise TypeError(
            f"{what}: Active applies to float scalars only (only float64/float32 values can be "
            "differentiated); pass an integer bare or Const"
        )
    if not reverse:
        raise TypeError(f"{what}: Active is not allowed in forward mode; use Duplicated(x, dx)")
    _scalar_kind(a.val, p, what)
    vcheck = _value_type_check(a.val)
    conv: Converter
    if type(a.val) is float:

        def active_float(b: Any) -> Any:
            if type(b) is Active:
                v = b.val
                if type(v) is float:
                    return (v,), (), None
            raise KindMismatch

        conv = active_float
    else:

        def active_scalar(b: Any) -> Any:
            if type(b) is not Active or not vcheck(b.val):
                raise KindMismatch
            return (_real(b.val, what),), (), None

        conv = active_scalar
    native = _native_arg(_scalar_in(a.val, p), wrapper=Active)
    return ArgConv(conv, (ArgPlan(p.kind, None, DiffeType.OUT_DIFF),), native=native)


def _dup_conv(p: Any, a: Any, what: str, reverse: bool) -> ArgConv:
    t = type(a)
    act = DiffeType.DUP_NONEED if isinstance(a, DuplicatedNoNeed) else DiffeType.DUP_ARG
    if isinstance(p, PointerParam) and pointers.is_pointer_data(a.val):
        return pointers.pointer_conv(p, a, what, activity=act, wrapped=True)
    if isinstance(p, ScalarParam):
        if not p.is_float:
            raise TypeError(f"{what}: an integer cannot be {t.__name__}; use Const")
        if reverse:
            raise TypeError(f"{what}: a scalar is Active in reverse mode, not {t.__name__}")
        _scalar_kind(a.val, p, what)
        _scalar_kind(a.dval, p, what + " (tangent)")
        vc, dc = _value_type_check(a.val), _value_type_check(a.dval)

        def dup_scalar(d: Any) -> Any:
            if type(d) is not t or not vc(d.val) or not dc(d.dval):
                raise KindMismatch
            return (_real(d.val, what), _real(d.dval, what + " (tangent)")), (), None

        sv, sd = _scalar_in(a.val, p), _scalar_in(a.dval, p)
        native = ArgIn(sv, wrapper=t, shadow=sd) if sv is not None and sd is not None else None
        return ArgConv(dup_scalar, (ArgPlan(p.kind, None, act),), native=native)
    kind = _array_kind(a.val, p, what, float_only=True)
    _shadow_kind(a.val, a.dval, what)
    ro = p.readonly
    dt, nd, dnd = a.val.dtype, a.val.ndim, a.dval.ndim
    shaped = isinstance(p, ArrayParam)

    def dup_array(d: Any) -> Any:
        if type(d) is not t:
            raise KindMismatch
        x, dx = d.val, d.dval
        if (type(x) is not np.ndarray or x.dtype != dt or x.ndim != nd or type(dx) is not np.ndarray
                or dx.dtype != dt or dx.ndim != dnd):
            raise KindMismatch
        _contiguous(x, what)
        _writable(x, ro, what)
        _shadow_ok(x, dx, what)
        if shaped:
            return (_run.address_of(x), _run.address_of(dx), *x.shape), (x, dx), None
        return (_run.address_of(x), _run.address_of(dx)), (x, dx), None

    native = None
    if dnd == nd:  # otherwise every call raises (shapes differ): the converter's message
        native = ArgIn(_array_in(a.val, p), wrapper=t, shadow=ArrayIn(dt, dnd, True, False))
    return ArgConv(dup_array, (ArgPlan("ptr", kind, act), *_shape_plans(p)), native=native)


def _batch_conv(p: Any, a: Any, what: str, reverse: bool) -> ArgConv:
    t = type(a)
    act = DiffeType.DUP_NONEED if isinstance(a, BatchDuplicatedNoNeed) else DiffeType.DUP_ARG
    w = a.width
    if isinstance(p, PointerParam) and pointers.is_pointer_data(a.val):
        raise TypeError(
            f"{what}: {t.__name__} of a sequence of arrays or a struct is not supported; "
            "use Duplicated (one shadow) per call"
        )
    if isinstance(p, ScalarParam):
        if not p.is_float:
            raise TypeError(f"{what}: an integer cannot be {t.__name__}; use Const")
        if reverse:
            raise TypeError(
                f"{what}: a scalar is Active in reverse mode (its derivative comes back once "
                "per lane), not BatchDuplicated"
            )
        _scalar_kind(a.val, p, what)

        def batch_scalar(d: Any) -> Any:
            if type(d) is not t or d.width != w:
                raise KindMismatch
            tangents = [_real(tv, f"{what}: tangent {k}") for k, tv in enumerate(d.dvals)]
            val = _real(d.val, what)
            if w == 1:
                return (val, tangents[0]), (), None
            arr = batch.tangent_array(p.kind, tangents)
            return (val, _addr(arr)), (arr,), None

        return ArgConv(batch_scalar, (ArgPlan(p.kind, None, act),))
    kind = _array_kind(a.val, p, what, float_only=True)
    for k, dx in enumerate(a.dvals):
        _shadow_kind(a.val, dx, f"{what} (shadow {k})")
    ro = p.readonly
    dt, nd = a.val.dtype, a.val.ndim
    shaped = isinstance(p, ArrayParam)

    def batch_array(d: Any) -> Any:
        if type(d) is not t or d.width != w:
            raise KindMismatch
        x = d.val
        if type(x) is not np.ndarray or x.dtype != dt or x.ndim != nd:
            raise KindMismatch
        _contiguous(x, what)
        _writable(x, ro, what)
        for k, dx in enumerate(d.dvals):
            _shadow_kind(x, dx, f"{what} (shadow {k})")
            _shadow_ok(x, dx, f"{what} (shadow {k})")
        if len({id(dx) for dx in d.dvals} | {id(x)}) != w + 1:
            raise ValueError(
                f"{what}: the {w} shadows and the array must be distinct arrays "
                "(Enzyme writes each lane into its own shadow)"
            )
        shape = tuple(x.shape) if shaped else ()
        if w == 1:
            dx = d.dvals[0]
            return (_run.address_of(x), _run.address_of(dx), *shape), (x, dx), None
        addrs = batch.lane_values([_run.address_of(dx) for dx in d.dvals])
        return (_run.address_of(x), _addr(addrs), *shape), (x, addrs, *d.dvals), None

    return ArgConv(batch_array, (ArgPlan("ptr", kind, act), *_shape_plans(p)))


def _addr(obj: Any) -> int:
    return ctypes.addressof(obj)


def _fresh_conv(p: PointerParam | ArrayParam, a: Any, what: str) -> ArgConv:
    """A bare float array of a gradient: Duplicated with a fresh zero shadow (returned)."""
    kind = _array_kind(a, p, what, float_only=True)
    ro = p.readonly
    dt, nd = a.dtype, a.ndim
    shaped = isinstance(p, ArrayParam)

    def conv(x: Any) -> Any:
        if type(x) is not np.ndarray or x.dtype != dt or x.ndim != nd:
            raise KindMismatch
        _contiguous(x, what)
        _writable(x, ro, what)
        dx = np.zeros(x.shape, dtype=dt)
        if shaped:
            return (_run.address_of(x), _run.address_of(dx), *x.shape), (x, dx), dx
        return (_run.address_of(x), _run.address_of(dx)), (x, dx), dx

    native = ArgIn(_array_in(a, p), fresh=True)
    return ArgConv(conv, (ArgPlan("ptr", kind, DiffeType.DUP_ARG), *_shape_plans(p)), fresh=True, native=native)


def _hvp_conv(p: PointerParam | ArrayParam, a: HvpArg, what: str) -> ArgConv:
    kind = _array_kind(a.val, p, what, float_only=True)
    ro = p.readonly
    shaped = isinstance(p, ArrayParam)

    def conv(h: Any) -> Any:
        if type(h) is not HvpArg:
            raise KindMismatch
        x = h.val
        _contiguous(x, what)
        _writable(x, ro, what)
        vals = (_run.address_of(x), _run.address_of(h.v), _run.address_of(h.grad), _run.address_of(h.hv))
        shape = tuple(x.shape) if shaped else ()
        return (*vals, *shape), (x, h.v, h.grad, h.hv), None

    return ArgConv(conv, (ArgPlan("ptr", kind, DiffeType.DUP_ARG), *_shape_plans(p)))




def _bare_active_conv(p: ScalarParam, a: Any, what: str) -> ArgConv:
    """A bare number of a gradient for a float parameter: Active."""
    _scalar_kind(a, p, what)
    t = type(a)
    conv: Converter
    if t is float:

        def bare_float(v: Any) -> Any:
            if type(v) is not float:
                raise KindMismatch
            return (v,), (), None

        conv = bare_float
    else:
        vcheck = _value_type_check(a)

        def bare_scalar(v: Any) -> Any:
            if not vcheck(v):
                raise KindMismatch
            return (_real(v, what),), (), None

        conv = bare_scalar
    return ArgConv(conv, (ArgPlan(p.kind, None, DiffeType.OUT_DIFF),), native=_native_arg(_scalar_in(a, p)))


def _arg_conv(layout: Layout, i: int, a: Any, route: str, reverse: bool) -> ArgConv:
    """The converter for argument ``i`` of the kind of ``a`` (kind-level checks here)."""
    p = layout.params[i]
    what = layout.describe(i)
    if isinstance(a, type) and issubclass(a, Annotation):
        raise TypeError(f"{what}: pass an instance such as {a.__name__}(x), not the class")
    if isinstance(p, UnsupportedParam):
        raise TypeError(f"{what}: parameters of type {p.text} are not supported")
    if route == PRIMAL_ROUTE and isinstance(a, Annotation) and not isinstance(a, Const):
        raise TypeError(f"{what}: a primal call takes plain values, got {type(a).__name__}")
    if route == GRADIENT and not isinstance(a, Annotation):
        if isinstance(p, ScalarParam) and p.is_float:
            return _bare_active_conv(p, a, what)
        if isinstance(p, (PointerParam, ArrayParam)) and isinstance(a, np.ndarray) and a.dtype in _FLOAT_DTYPES:
            return _fresh_conv(p, a, what)
    if type(a) is HvpArg:
        if isinstance(p, ScalarParam):
            raise TypeError(f"{what}: the argument differentiated must be a float array")
        return _hvp_conv(p, a, what)
    if isinstance(a, Active):
        return _active_conv(p, a, what, reverse)
    if isinstance(a, BatchDuplicated):
        return _batch_conv(p, a, what, reverse)
    if isinstance(a, Duplicated):
        return _dup_conv(p, a, what, reverse)
    if isinstance(a, Const):
        return _const_conv(p, a, what, True)
    if isinstance(a, Annotation):
        raise TypeError(f"{what}: {type(a).__name__} is not supported for this argument")
    return _const_conv(p, a, what, False)


# --------------------------------------------------------------------------- results


def _returns(layout: Layout) -> str:
    """``returns None`` / ``returns an integer`` / ``returns <type>`` for messages."""
    r = layout.result
    if isinstance(r, VoidResult):
        return "returns None" if layout.python else "returns void"
    if isinstance(r, ScalarResult) and not r.is_float:
        return f"returns an integer ({r.text})"
    return f"returns {r.text}"


def _return_activity(layout: Layout, mode: Mode, ret: Any) -> int:
    """The ``DiffeType`` of the return value (of the hidden output for array results),
    after the checks of the return activity against the result and the mode."""
    r = layout.result
    ret = _UNBATCHED.get(ret, ret)
    if not (isinstance(ret, type) and issubclass(ret, Annotation)) or ret not in _RETURN_ACTIVITIES:
        raise TypeError(
            "the return activity must be one of the classes Active, Const, Duplicated, "
            "DuplicatedNoNeed, BatchDuplicated, BatchDuplicatedNoNeed (the class itself), "
            f"got {ret!r}"
        )
    name = layout.name
    if isinstance(r, UnsupportedResult) and (ret is not Const or r.kind != "ptr"):
        raise TypeError(f"{name} returns {r.text}; only Const fits that return type")
    if isinstance(r, VoidResult):
        if ret is not Const and not layout.python:
            raise TypeError(f"{name} returns void: its return activity must be Const")
        return DiffeType.CONSTANT
    if isinstance(r, ScalarResult) and not r.is_float and ret is not Const:
        raise TypeError(f"{name} {_returns(layout)}: its return activity must be Const")
    if isinstance(r, (ArrayResult, TupleResult)) and r.kind not in ("f64", "f32") and ret is not Const:
        raise TypeError(f"{name} returns an integer {r.text}: its return activity must be Const")
    if mode.reverse:
        if isinstance(r, (ArrayResult, TupleResult)):
            if ret is Active:
                raise TypeError(
                    f"{name} returns a {r.text}: in reverse mode its return activity is "
                    "Duplicated (the result's seed is given with seed=...) or Const, not Active"
                )
            return DiffeType.CONSTANT if ret is Const else DiffeType.DUP_ARG
        if ret in (Duplicated, DuplicatedNoNeed):
            raise TypeError(
                f"{ret.__name__} return activity is for forward mode; a scalar return is "
                "Active (or Const) in reverse mode"
            )
        return DiffeType.OUT_DIFF if ret is Active else DiffeType.CONSTANT
    if ret is Active:
        raise TypeError(
            "Active is not allowed in forward mode; use Duplicated (or Const) as the return activity"
        )
    if ret is Const:
        return DiffeType.CONSTANT
    return DiffeType.DUP_ARG if mode.with_primal else DiffeType.DUP_NONEED


@dataclass
class OutSpec:
    """The hidden output array of a Python function returning an array or a tuple."""

    result: ArrayResult | TupleResult
    activity: int
    width: int
    reverse: bool
    what: str

    @property
    def dtype(self) -> np.dtype[Any]:
        return self.result.dtype

    @property
    def ndim(self) -> int:
        return self.result.ndim if isinstance(self.result, ArrayResult) else 0

    def plans(self) -> tuple[ArgPlan, ...]:
        shape = (ArgPlan("i64", None, DiffeType.CONSTANT),) * self.ndim
        return (ArgPlan("ptr", self.result.kind, self.activity), *shape)

    def shaped(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The array shape of the hidden output (a tuple result is a 1-D array)."""
        if isinstance(self.result, TupleResult):
            return (self.result.length,)
        return shape

    def seeds(self, seed: Any, shape: tuple[int, ...]) -> list[np.ndarray[Any, Any]]:
        """The output's shadows for one call: copies of the seed(s) in reverse mode (the
        derivative consumes them), zeros to receive the tangent(s) in forward mode."""
        full = self.shaped(shape)
        if not self.reverse:
            return [np.zeros(full, dtype=self.dtype) for _ in range(self.width)]
        if seed is None:
            raise TypeError(
                f"{self.what}: reverse mode with a Duplicated array result needs its seed: "
                "autodiff(Reverse, f, Duplicated, *args, seed=dy) with dy shaped like the result"
            )
        lanes = list(seed) if self.width > 1 else [seed]
        if self.width > 1 and (not isinstance(seed, (tuple, list)) or len(lanes) != self.width):
            raise TypeError(
                f"{self.what}: a batched call of width {self.width} takes seed=(dy1, ..., "
                f"dy{self.width}), one seed per lane"
            )
        out = []
        for k, s in enumerate(lanes):
            arr = np.array(s, dtype=self.dtype, copy=True)
            if arr.shape != full:
                which = f"seed {k}" if self.width > 1 else "the seed"
                raise ValueError(f"{self.what}: {which} has shape {arr.shape}; the result has shape {full}")
            out.append(np.ascontiguousarray(arr))
        return out

    def present(self, arr: np.ndarray[Any, Any]) -> Any:
        """The result as the function returns it (a tuple for a tuple result)."""
        if isinstance(self.result, TupleResult):
            return tuple(arr.tolist())
        return arr


# --------------------------------------------------------------------------- specs

_shapes: weakref.WeakKeyDictionary[Any, dict[tuple[Any, ...], tuple[int, ...]]] = weakref.WeakKeyDictionary()
_shapes_lock = threading.Lock()


class Runner(Protocol):
    """``run(args, seed=None)`` of a :class:`Spec`."""

    def __call__(self, args: Sequence[Any], seed: Any = None, /) -> Any: ...


@dataclass(eq=False)
class Spec:
    """A validated request kind (see the module docstring).  ``run(args, seed=None)``
    converts the arguments, calls the entry point (compiled on first use) and shapes the
    results as :func:`enzyme_py.autodiff` (or the route's public function) returns them;
    :class:`KindMismatch` for arguments of another kind, the user-facing error for an
    invalid value.  ``run`` is an attribute, specialised for this spec when it is built
    (see :meth:`_runner`): the fast path calls it with no call level in between."""

    target: Any
    route: str
    mode: Mode | None
    ret: Any
    convs: tuple[ArgConv, ...]
    plan: Plan
    width: int
    batched: bool
    out: OutSpec | None
    options: config.Options
    outputs: tuple[str, ...]
    _entry: Entry | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    #: one call of this spec (see the class docstring), set by ``__post_init__``
    run: Runner = field(init=False, repr=False)
    #: calls served through the call layer (a native entry is built after a few)
    uses: int = 0
    #: native entries built for this spec, per form (:mod:`enzyme_py._call.native`)
    natives: dict[Any, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.run = self._runner()

    # ------------------------------------------------------------------ compile

    def entry(self) -> Entry:
        """The loaded entry point (compiled on first use)."""
        e = self._entry
        if e is not None and not e.code.closed:
            return e
        with self._lock:
            if self._entry is None or self._entry.code.closed:
                code = self.target.program.code(self.plan)
                self._entry = Entry(code, self.target.layout.status)
            return self._entry

    def stale(self) -> bool:
        """Built under other options (the code must be looked up again)."""
        return self.options is not config.current

    # ------------------------------------------------------------------ values

    def convert(self, args: Sequence[Any]) -> tuple[list[Any], list[Any], list[Any]]:
        """``(ctypes values, objects to keep, fresh shadows)`` of ``args``."""
        if len(args) != len(self.convs):
            raise KindMismatch
        vals: list[Any] = []
        keep: list[Any] = []
        fresh: list[Any] = []
        for conv, a in zip(self.convs, args):
            v, k, f = conv.convert(a)
            vals += v
            if k:
                keep += k
            if f is not None:
                fresh.append(f)
        return vals, keep, fresh

    def _result_shape(self, args: Sequence[Any]) -> tuple[int, ...]:
        assert self.out is not None
        if isinstance(self.out.result, TupleResult):
            return ()
        values = [a.val if isinstance(a, Annotation) else a for a in args]
        key = tuple(v.shape for v in values if isinstance(v, np.ndarray))
        with _shapes_lock:
            cache = _shapes.setdefault(self.target, {})
            hit = cache.get(key)
        if hit is not None:
            return hit
        primal = primal_spec(self.target, values)
        shape = primal.probe(values)
        with _shapes_lock:
            cache[key] = shape
        return shape

    def probe(self, values: Sequence[Any]) -> tuple[int, ...]:
        """Run the primal with an empty output and read the result's shape from the
        status array (the function runs once)."""
        assert self.out is not None
        entry = self.entry()
        vals, _keep, _ = self.convert(values)
        guess = (0,) * self.out.ndim
        empty = np.empty(guess, dtype=self.out.dtype)
        entry.call([*vals, _run.address_of(empty), *guess])
        words = entry.last_status()
        if words[2] == 1:
            return tuple(int(n) for n in words[3 : 3 + self.out.ndim])
        return guess

    # ------------------------------------------------------------------ running

    def _runner(self) -> Runner:
        """The call of this spec, with what does not change between calls looked up once:
        the converters, the result shaper, the entry (once loaded)."""
        if self.out is not None:
            return self._run_out
        convs = tuple(c.convert for c in self.convs)
        n = len(convs)
        shape = self._shaper()
        name = self.target.layout.name
        spec = self

        def run(args: Sequence[Any], seed: Any = None) -> Any:
            if len(args) != n:
                raise KindMismatch
            if seed is not None:
                raise TypeError(f"{name} returns no array: seed= does not apply")
            vals: list[Any] = []
            keep: list[Any] = []
            fresh: list[Any] = []
            for conv, a in zip(convs, args):
                v, k, f = conv(a)
                vals += v
                if k:
                    keep.append(k)
                if f is not None:
                    fresh.append(f)
            e = spec._entry
            if e is None or e.code.closed:
                e = spec.entry()
            return shape(e.call(vals), fresh)

        return run

    def _shaper(self) -> Callable[[tuple[Any, ...], list[Any]], Any]:
        """``(raw results, fresh shadows) -> result`` of this route, with the output
        indices looked up once; the common cases get a closure of their own."""
        outputs = self.outputs
        mode = self.mode
        if self.width == 1 and not self.batched:
            p = outputs.index("primal") if "primal" in outputs else -1
            if self.route == PRIMAL_ROUTE:
                r = self.target.layout.result
                if isinstance(r, ScalarResult) and r.dtype == "bool":
                    return lambda raw, fresh: bool(raw[p])
                return (lambda raw, fresh: raw[p]) if p >= 0 else (lambda raw, fresh: None)
            assert mode is not None
            derivs = [
                outputs.index(f"d{c.deriv}") if c.deriv >= 0 and f"d{c.deriv}" in outputs else -1
                for c in self.convs
            ]
            if mode.reverse and self.route != GRADIENT and not mode.with_primal and derivs == [0]:
                return lambda raw, fresh: ((raw[0],),)
            if self.route == GRADIENT and not mode.with_primal and derivs == [0]:
                return lambda raw, fresh: (raw[0],)
        return lambda raw, fresh: self.shape(raw, fresh, None)

    def _run_out(self, args: Sequence[Any], seed: Any = None) -> Any:
        out = self.out
        assert out is not None
        shape = self._result_shape(args)
        for _attempt in range(2):
            vals, keep, fresh = self.convert(args)
            full = out.shaped(shape)
            res = np.empty(full, dtype=out.dtype)
            shadows = [] if out.activity == DiffeType.CONSTANT else out.seeds(seed, shape)
            vals.append(_run.address_of(res))
            if len(shadows) == 1:
                vals.append(_run.address_of(shadows[0]))
            elif shadows:
                lanes = batch.lane_values([_run.address_of(s) for s in shadows])
                keep.append(lanes)
                vals.append(_addr(lanes))
            vals += shape
            entry = self.entry()
            raw = entry.call(vals)
            words = entry.last_status()
            if isinstance(out.result, TupleResult) or words[2] != 1:
                return self.shape(raw, fresh, (res, shadows))
            shape = tuple(int(n) for n in words[3 : 3 + out.ndim])
            with _shapes_lock:
                _shapes.setdefault(self.target, {})[
                    tuple(v.shape for v in (a.val if isinstance(a, Annotation) else a for a in args)
                          if isinstance(v, np.ndarray))
                ] = shape
        raise RuntimeError(
            f"{self.target.layout.name}: the shape of its result changed between two runs on the "
            "same inputs; enzyme_py needs a result shape that depends on the input shapes only"
        )

    def _value(self, raw: tuple[Any, ...], name: str) -> Any:
        outputs = self.outputs
        if self.width == 1:
            if name not in outputs:
                return None
            v = raw[outputs.index(name)]
            return (v,) if self.batched else v
        if f"{name}@0" not in outputs:
            return None
        return tuple(raw[outputs.index(f"{name}@{k}")] for k in range(self.width))

    def shape(self, raw: tuple[Any, ...], fresh: list[Any], out: Any) -> Any:
        """The route's result from the entry's raw results (see :func:`enzyme_py.autodiff`)."""
        mode = self.mode
        primal = None
        if out is not None:
            primal = self.out.present(out[0]) if self.out is not None else None
        elif "primal" in self.outputs:
            primal = raw[self.outputs.index("primal")]
        if self.route == PRIMAL_ROUTE:
            return primal
        assert mode is not None
        if self.route == GRADIENT:
            it = iter(fresh)
            grads = tuple(
                next(it) if c.fresh else (self._value(raw, f"d{c.deriv}") if c.deriv >= 0 else None)
                for c in self.convs
            )
            return (grads, primal) if mode.with_primal else grads
        if mode.reverse:
            derivs = tuple(self._value(raw, f"d{c.deriv}") if c.deriv >= 0 else None for c in self.convs)
            return (derivs, primal) if mode.with_primal else (derivs,)
        result: tuple[Any, ...] = ()
        if out is not None:
            shadows = out[1]
            if shadows:
                dret = [self.out.present(s) for s in shadows]  # type: ignore[union-attr]
                result = (tuple(dret) if self.width > 1 or self.batched else dret[0],)
        elif "dret" in self.outputs or "dret@0" in self.outputs:
            result = (self._value(raw, "dret"),)
        if mode.with_primal:
            result += (primal,)
        return result


_primal: weakref.WeakKeyDictionary[Any, dict[tuple[Any, ...], Spec]] = weakref.WeakKeyDictionary()


def primal_spec(target: Any, values: Sequence[Any]) -> Spec:
    """The primal spec of ``target`` for these (bare) values, built once per kinds."""
    key = kinds(values)
    with _shapes_lock:
        table = _primal.setdefault(target, {})
        spec = table.get(key)
    if spec is None or spec.stale():
        spec = build(target, PRIMAL_ROUTE, None, None, values)
        with _shapes_lock:
            table[key] = spec
    return spec


def build(target: Any, route: str, mode: Mode | None, ret: Any, args: Sequence[Any]) -> Spec:
    """Validate a request kind and build its :class:`Spec` (see the module docstring).

    ``route``: ``primal`` (``mode``/``ret`` None), ``autodiff``, ``gradient`` (``ret``
    ignored: the float return is Active), ``hvp`` (one :class:`HvpArg`), ``split`` (the
    plan of split mode; run by :mod:`enzyme_py.split`).
    """
    layout: Layout = target.layout
    name = layout.name
    if layout.variadic:
        raise TypeError(f"{name} is variadic ({layout.signature}); it cannot be called from Python")
    if len(args) != len(layout.params):
        raise TypeError(f"{name} takes {len(layout.params)} argument(s) ({layout.signature}), {len(args)} given")
    r = layout.result
    if route == PRIMAL_ROUTE:
        if isinstance(r, UnsupportedResult):
            raise TypeError(f"{name} returns {r.text}, which cannot be returned to Python")
        reverse = False
        width = 1
    else:
        assert mode is not None
        reverse = mode.reverse
        if route in (GRADIENT, HVP_ROUTE) and not (isinstance(r, ScalarResult) and r.is_float):
            verb = "gradient" if route == GRADIENT else "hvp"
            raise TypeError(f"{verb} needs a function returning a float; {name} {_returns(layout)}")
        width = batch.batch_width(args, ret, name)
    convs = [_arg_conv(layout, i, a, route, reverse) for i, a in enumerate(args)]
    index = layout.entry_index()
    for i, c in enumerate(convs):
        if c.plans[0].activity == DiffeType.OUT_DIFF:
            c.deriv = index[i]
    plans = [p for c in convs for p in c.plans]
    out: OutSpec | None = None
    if route == PRIMAL_ROUTE:
        ret_act = DiffeType.CONSTANT
    elif route == GRADIENT or route == HVP_ROUTE:
        ret_act = DiffeType.OUT_DIFF
    else:
        assert mode is not None
        ret_act = _return_activity(layout, mode, ret)
    if layout.out_param:
        assert isinstance(r, (ArrayResult, TupleResult))
        out_width = width if ret_act != DiffeType.CONSTANT else 1
        out = OutSpec(r, ret_act, out_width, reverse, name)
        plans += out.plans()
        ret_act = DiffeType.CONSTANT
    if layout.status is not None:
        plans.append(ArgPlan("ptr", "i64", DiffeType.CONSTANT))
    ret_kind = r.kind if isinstance(r, (ScalarResult, UnsupportedResult)) else "void"
    if route == PRIMAL_ROUTE:
        compile_mode, with_primal = PRIMAL, True
    elif route == HVP_ROUTE:
        compile_mode, with_primal = HVP, False
    elif route == SPLIT_ROUTE:
        compile_mode, with_primal = SPLIT, bool(mode and mode.with_primal)
    else:
        assert mode is not None
        if mode.split:
            raise TypeError(
                f"{mode!r} is for autodiff_thunk(mode, f, ReturnActivity, *argtypes); "
                "use Reverse or ReverseWithPrimal with autodiff"
            )
        compile_mode, with_primal = (REVERSE if reverse else FORWARD), mode.with_primal
    plan = Plan(
        target.name,
        compile_mode,
        with_primal,
        tuple(plans),
        ret_kind,
        ret_act,
        width=width,
        runtime_activity=bool(mode and mode.runtime_activity),
        strong_zero=bool(mode and mode.strong_zero),
        fast_math=mode.fast_math if mode is not None else True,
    )
    return Spec(
        target,
        route,
        mode,
        ret,
        tuple(convs),
        plan,
        width,
        any(isinstance(a, BatchDuplicated) for a in args),
        out,
        config.options(),
        output_names(plan),
    )
