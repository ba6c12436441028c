"""Arguments whose memory holds pointers or structs: what ``Duplicated`` means for them.

* A **pointer to pointers** (``double **xs``) takes a sequence of arrays (one dtype,
  any shapes): ``Duplicated([x0, x1], [dx0, dx1])`` passes an array of the data
  pointers and an array of the shadows' data pointers.
* A **pointer to a struct** (``struct S *s``) takes a ``ctypes.Structure`` instance (or
  a ctypes array of them) or a NumPy structured array: ``Duplicated(s, ds)`` with ``ds``
  of the same type.  Float fields of ``ds`` are the fields' shadows (reverse mode adds
  into them, forward mode reads tangents from them); each pointer field of ``ds`` must
  point at the shadow of what ``s``'s field points at — :func:`zero_struct` (what
  :func:`enzyme_py.make_zero` calls for a struct) builds such a shadow, allocating the
  buffers it is given sizes for.  Integer fields are not differentiated.

Everything is checked before native code runs: dtypes, contiguity, lengths and shapes
of the shadows, a non-NULL and distinct shadow for every non-NULL pointer field.  Enzyme
is told the layout (``ptr>f64``, ``{0:ptr>f64;8:f64;16:i32}``: see
:func:`enzyme_py._native.enzyme._layout_tree`), which it cannot always deduce alone.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .._compile.plan import ArgPlan
from .._native.ffi.enzyme import DiffeType
from .._native.types import KIND_OF_DTYPE
from . import run as _run
from .convert import ArgConv, KindMismatch
from .layout import PointerParam

__all__ = ["ctypes_layout", "dtype_layout", "is_pointer_data", "pointer_conv", "zero_struct"]

_FLOATS = ("f64", "f32")
#: ctypes scalar types -> element kinds
_CTYPES_KINDS: dict[Any, str] = {
    ctypes.c_double: "f64",
    ctypes.c_float: "f32",
    ctypes.c_int8: "i8",
    ctypes.c_uint8: "i8",
    ctypes.c_int16: "i16",
    ctypes.c_uint16: "i16",
    ctypes.c_int32: "i32",
    ctypes.c_uint32: "i32",
    ctypes.c_int64: "i64",
    ctypes.c_uint64: "i64",
    ctypes.c_bool: "i8",
    ctypes.c_char: "i8",
}
for _t in (ctypes.c_int, ctypes.c_uint, ctypes.c_long, ctypes.c_ulong, ctypes.c_longlong,
           ctypes.c_ulonglong, ctypes.c_short, ctypes.c_ushort, ctypes.c_byte, ctypes.c_ubyte,
           ctypes.c_size_t, ctypes.c_ssize_t):
    _CTYPES_KINDS.setdefault(_t, f"i{8 * ctypes.sizeof(_t)}")


def _item_type(t: Any) -> Any:
    """``_type_`` of the ctypes array or pointer type ``t`` (a class attribute; the typeshed
    stubs declare it on instances only)."""
    return t._type_


def _array_length(t: Any) -> int:
    """``_length_`` of the ctypes array type ``t`` (a class attribute; the typeshed stubs
    declare it on instances only)."""
    return int(t._length_)


def _is_struct_type(t: Any) -> bool:
    return isinstance(t, type) and issubclass(t, ctypes.Structure)


def is_pointer_data(v: Any) -> bool:
    """Whether ``v`` is pointer-rich data of this module: a list/tuple (of arrays), a
    ctypes Structure (or array of them), or a NumPy structured array."""
    if isinstance(v, (list, tuple)):
        return True
    if isinstance(v, ctypes.Structure):
        return True
    if isinstance(v, ctypes.Array) and _is_struct_type(v._type_):
        return True
    return isinstance(v, np.ndarray) and v.dtype.fields is not None


# --------------------------------------------------------------------------- layouts


def ctypes_layout(t: Any, what: str = "the struct") -> str:
    """The layout description of a ctypes type (see the module docstring);
    :class:`TypeError` for what has none (unions, bit fields, function pointers)."""
    if t in _CTYPES_KINDS:
        return _CTYPES_KINDS[t]
    if t is ctypes.c_void_p or t is ctypes.c_char_p or t is ctypes.c_wchar_p:
        return "ptr>i8" if t is ctypes.c_char_p else "ptr"
    if isinstance(t, type) and issubclass(t, ctypes._Pointer):
        inner = t._type_
        if _is_struct_type(inner) or inner in _CTYPES_KINDS or (
            isinstance(inner, type) and issubclass(inner, (ctypes._Pointer, ctypes.Array))
        ):
            return "ptr>" + ctypes_layout(inner, what)
        return "ptr"
    if isinstance(t, type) and issubclass(t, ctypes.Array):
        item = _item_type(t)
        elem = ctypes_layout(item, what)
        size = ctypes.sizeof(item)
        return "{" + ";".join(f"{i * size}:{elem}" for i in range(_array_length(t))) + "}"
    if _is_struct_type(t):
        parts = []
        for field in t._fields_:
            name, ftype = field[0], field[1]
            if len(field) > 2:
                raise TypeError(f"{what}: bit field {t.__name__}.{name} cannot be differentiated")
            offset = getattr(t, name).offset
            parts.append(f"{offset}:{ctypes_layout(ftype, what)}")
        return "{" + ";".join(parts) + "}"
    if isinstance(t, type) and issubclass(t, ctypes.Union):
        raise TypeError(f"{what}: unions ({t.__name__}) cannot be differentiated")
    raise TypeError(f"{what}: fields of ctypes type {getattr(t, '__name__', t)!r} are not supported")


def dtype_layout(dt: np.dtype[Any], what: str = "the array") -> str:
    """The layout description of one element of a NumPy structured dtype."""
    if dt.fields is None:
        if dt.subdtype is not None:
            base, shape = dt.subdtype
            n = int(np.prod(shape))
            elem = dtype_layout(base, what)
            return "{" + ";".join(f"{i * base.itemsize}:{elem}" for i in range(n)) + "}"
        kind = KIND_OF_DTYPE.get(dt)
        if kind is None and dt.kind in "ui" and dt.isnative:
            kind = f"i{8 * dt.itemsize}"
        if kind is None:
            raise TypeError(f"{what}: fields of dtype {dt} are not supported")
        return "i8" if kind == "i1" else kind
    parts = []
    for name in dt.names or ():
        fdt, offset = dt.fields[name][:2]
        parts.append(f"{offset}:{dtype_layout(fdt, what)}")
    return "{" + ";".join(parts) + "}"


def _floats_in(t: Any) -> bool:
    if t in (ctypes.c_double, ctypes.c_float):
        return True
    if _is_struct_type(t):
        return any(_floats_in(f[1]) for f in t._fields_)
    if isinstance(t, type) and issubclass(t, (ctypes.Array, ctypes._Pointer)):
        return _floats_in(t._type_)
    return False


def _pointer_fields(obj: Any, prefix: str = "") -> list[tuple[str, int]]:
    """``(dotted name, address it holds)`` of every pointer field of a ctypes struct
    instance (nested structs and arrays of them included)."""
    out: list[tuple[str, int]] = []
    t = type(obj)
    for field in t._fields_:
        name, ftype = field[0], field[1]
        full = f"{prefix}{name}"
        if _is_struct_type(ftype):
            out += _pointer_fields(getattr(obj, name), full + ".")
        elif isinstance(ftype, type) and issubclass(ftype, ctypes.Array) and _is_struct_type(ftype._type_):
            arr = getattr(obj, name)
            for i in range(len(arr)):
                out += _pointer_fields(arr[i], f"{full}[{i}].")
        elif ftype in (ctypes.c_void_p, ctypes.c_char_p) or (
            isinstance(ftype, type) and issubclass(ftype, ctypes._Pointer)
        ):
            raw = ctypes.c_void_p.from_buffer(obj, getattr(t, name).offset).value
            out.append((full, int(raw or 0)))
    return out


# --------------------------------------------------------------------------- shadows


def zero_struct(s: Any, fields: dict[str, Any] | None = None) -> Any:
    """A shadow for the ctypes struct ``s`` (or ctypes array of structs): a new instance
    of its type with every float zero, integers copied from ``s`` and each pointer field
    pointing at a shadow buffer: ``fields`` maps a pointer field's name (dotted for a
    nested struct, ``arr[1].p`` in an array) to a NumPy array (its data is used; the
    array is kept alive by the shadow) or to an element count (a zeroed buffer of the
    pointee's type is allocated).  :class:`ValueError` names the pointer fields of ``s``
    that are set and have no shadow given.  Reading a field's derivative afterwards:
    ``shadow.w`` for a float, ``shadow.data[i]`` through a pointer."""
    fields = dict(fields or {})
    if isinstance(s, ctypes.Array):
        shadows = type(s)()
        ctypes.memmove(ctypes.addressof(shadows), ctypes.addressof(s), ctypes.sizeof(s))
        elems: list[Any] = []
        for i in range(len(s)):
            sub = {k[len(f"[{i}]."):]: v for k, v in fields.items() if k.startswith(f"[{i}].")}
            elem = zero_struct(s[i], sub)
            ctypes.memmove(ctypes.addressof(shadows) + i * ctypes.sizeof(s._type_), ctypes.addressof(elem),
                           ctypes.sizeof(s._type_))
            elems.append(elem)
        _keep(shadows, elems)
        return shadows
    if not isinstance(s, ctypes.Structure):
        raise TypeError(f"expected a ctypes Structure instance, got {type(s).__name__}")
    shadow = type(s)()
    ctypes.memmove(ctypes.addressof(shadow), ctypes.addressof(s), ctypes.sizeof(s))
    keep: list[Any] = []
    _zero_floats(shadow)
    missing = []
    for name, addr in _pointer_fields(s):
        given = fields.pop(name, None)
        slot = _field_slot(shadow, name)
        if given is None:
            if addr:
                missing.append(name)
            ctypes.c_void_p.from_address(slot).value = None
            continue
        if isinstance(given, (int, np.integer)) and not isinstance(given, bool):
            dtype = _pointee_dtype(s, name)
            buf = np.zeros(int(given), dtype=dtype)
        elif isinstance(given, np.ndarray):
            if not given.flags.c_contiguous or not given.flags.writeable:
                raise ValueError(f"zero_struct: the shadow of field {name!r} must be a C-contiguous, writable array")
            buf = given
        else:
            raise TypeError(
                f"zero_struct: field {name!r} takes a NumPy array or an element count, got {type(given).__name__}"
            )
        ctypes.c_void_p.from_address(slot).value = _run.address_of(buf) if buf.size else None
        keep.append(buf)
    if fields:
        raise ValueError(f"zero_struct: {type(s).__name__} has no pointer field(s) {', '.join(sorted(fields))}")
    if missing:
        raise ValueError(
            f"zero_struct: pointer field(s) {', '.join(missing)} of {type(s).__name__} are set and need a "
            "shadow: pass each as a keyword, a NumPy array of the pointee's shape or its element count, "
            f"e.g. make_zero(s, {missing[0].split('.')[-1]}=n)"
        )
    _keep(shadow, keep)
    return shadow


def _keep(shadow: Any, objs: list[Any]) -> None:
    try:
        shadow._enzyme_py_keep = objs
    except AttributeError:  # pragma: no cover - ctypes instances take attributes
        pass


def _field_slot(obj: Any, dotted: str) -> int:
    """The address of the field ``dotted`` (``a.b``, ``arr[2].p``) of a ctypes struct."""
    addr = ctypes.addressof(obj)
    t = type(obj)
    parts = dotted.replace("[", ".[").split(".")
    for part in parts:
        if not part:
            continue
        if part.startswith("["):
            idx = int(part[1:-1])
            addr += idx * ctypes.sizeof(t._type_)
            t = t._type_
            continue
        desc = getattr(t, part)
        addr += desc.offset
        t = {f[0]: f[1] for f in t._fields_}[part]
    return addr


def _pointee_dtype(s: Any, dotted: str) -> np.dtype[Any]:
    t = type(s)
    for part in dotted.replace("[", ".[").split("."):
        if not part:
            continue
        if part.startswith("["):
            t = t._type_
            continue
        t = {f[0]: f[1] for f in t._fields_}[part]
    inner = getattr(t, "_type_", None)
    kind = _CTYPES_KINDS.get(inner)
    if kind in _FLOATS:
        return np.dtype(np.float64 if kind == "f64" else np.float32)
    raise TypeError(
        f"zero_struct: field {dotted!r} does not point at floats; give its shadow as an array"
    )


def _zero_floats(obj: Any) -> None:
    t = type(obj)
    for field in t._fields_:
        name, ftype = field[0], field[1]
        if ftype in (ctypes.c_double, ctypes.c_float):
            setattr(obj, name, 0.0)
        elif _is_struct_type(ftype):
            _zero_floats(getattr(obj, name))
        elif isinstance(ftype, type) and issubclass(ftype, ctypes.Array):
            arr = getattr(obj, name)
            item = _item_type(ftype)
            if item in (ctypes.c_double, ctypes.c_float):
                for i in range(len(arr)):
                    arr[i] = 0.0
            elif _is_struct_type(item):
                for i in range(len(arr)):
                    _zero_floats(arr[i])


# --------------------------------------------------------------------------- converters


def _kind_of_list(v: Any, what: str, float_only: bool) -> str:
    if not v:
        raise ValueError(f"{what}: an empty sequence has no element type; pass at least one array")
    kinds = set()
    for k, x in enumerate(v):
        if not isinstance(x, np.ndarray):
            raise TypeError(f"{what}: element {k} of the sequence must be a NumPy array, got {type(x).__name__}")
        kinds.add(KIND_OF_DTYPE.get(x.dtype))
    if len(kinds) != 1 or None in kinds:
        raise TypeError(
            f"{what}: the arrays of a pointer-to-pointer argument must share one supported dtype, "
            f"got {', '.join(sorted({str(x.dtype) for x in v}))}"
        )
    kind = kinds.pop()
    assert kind is not None
    if float_only and kind not in _FLOATS:
        raise TypeError(f"{what}: only float64/float32 arrays can be differentiated; integer arrays are Const")
    return kind


def _check_arrays(v: Sequence[Any], kind: str, what: str, label: str) -> None:
    for k, x in enumerate(v):
        if type(x) is not np.ndarray or KIND_OF_DTYPE.get(x.dtype) != kind:
            raise KindMismatch
        if not x.flags.c_contiguous:
            raise ValueError(f"{what}: {label} {k} must be C-contiguous (use np.ascontiguousarray)")
        if not x.flags.writeable:
            raise ValueError(f"{what}: {label} {k} is read-only; the function may write through it")


def _list_conv(p: PointerParam, a: Any, what: str, activity: int | None, wrapped: Callable[[Any], Any]) -> ArgConv:
    val = wrapped(a)
    kind = _kind_of_list(val, what, float_only=activity is not None)
    if p.pointee not in (None, "ptr"):
        raise TypeError(f"{what}: the function reads {p.pointee} values through this pointer, not pointers")
    elem = f"ptr>{kind}"
    if activity is None:

        def const_list(c: Any) -> Any:
            xs = wrapped(c)
            if not isinstance(xs, (list, tuple)) or not xs:
                raise KindMismatch
            _check_arrays(xs, kind, what, "array")
            addrs = np.array([_run.address_of(x) for x in xs], dtype=np.uintp)
            return (_run.address_of(addrs),), (addrs, *xs), None

        return ArgConv(const_list, (ArgPlan("ptr", elem, DiffeType.CONSTANT),))
    annotation = type(a)
    if not isinstance(a.dval, (list, tuple)):
        raise TypeError(f"{what}: the shadow of a sequence of arrays is a sequence of arrays, got {type(a.dval).__name__}")

    def dup_list(d: Any) -> Any:
        if type(d) is not annotation:
            raise KindMismatch
        xs, dxs = d.val, d.dval
        if not isinstance(xs, (list, tuple)) or not isinstance(dxs, (list, tuple)) or not xs:
            raise KindMismatch
        _check_arrays(xs, kind, what, "array")
        if len(dxs) != len(xs):
            raise ValueError(f"{what}: {len(dxs)} shadow(s) for {len(xs)} array(s); give one shadow per array")
        for k, (x, dx) in enumerate(zip(xs, dxs)):
            if not isinstance(dx, np.ndarray) or dx.dtype != x.dtype:
                raise TypeError(f"{what}: shadow {k} must be a {x.dtype} array like array {k}")
            if dx.shape != x.shape:
                raise ValueError(f"{what}: shadow {k} has shape {dx.shape}; array {k} has shape {x.shape}")
            if dx is x or (dx.size and _run.address_of(dx) == _run.address_of(x)):
                raise ValueError(f"{what}: shadow {k} is array {k} itself; a shadow needs memory of its own")
        _check_arrays(dxs, kind, what, "shadow")
        addrs = np.array([_run.address_of(x) for x in xs], dtype=np.uintp)
        daddrs = np.array([_run.address_of(x) for x in dxs], dtype=np.uintp)
        return (_run.address_of(addrs), _run.address_of(daddrs)), (addrs, daddrs, *xs, *dxs), None

    return ArgConv(dup_list, (ArgPlan("ptr", elem, activity),))


def _struct_kind(v: Any, what: str) -> tuple[Any, str]:
    """``(type key, layout)`` of a struct argument."""
    if isinstance(v, np.ndarray):
        if not v.flags.c_contiguous:
            raise ValueError(f"{what}: the structured array must be C-contiguous")
        return v.dtype, dtype_layout(v.dtype, what)
    t = type(v)
    elem = t._type_ if isinstance(v, ctypes.Array) else t
    return t, ctypes_layout(elem, what)


def _struct_address(v: Any) -> int:
    if isinstance(v, np.ndarray):
        return _run.address_of(v)
    return ctypes.addressof(v)


def _struct_conv(p: PointerParam, a: Any, what: str, activity: int | None, wrapped: Callable[[Any], Any]) -> ArgConv:
    val = wrapped(a)
    key, layout = _struct_kind(val, what)
    if p.pointee == "ptr":
        raise TypeError(f"{what}: the function reads pointers through this parameter; pass a sequence of arrays")
    numpy = isinstance(val, np.ndarray)

    def same(v: Any) -> bool:
        return (type(v) is np.ndarray and v.dtype == key) if numpy else type(v) is key

    if activity is None:

        def const_struct(c: Any) -> Any:
            v = wrapped(c)
            if not same(v):
                raise KindMismatch
            if numpy and not v.flags.c_contiguous:
                raise ValueError(f"{what}: the structured array must be C-contiguous")
            return (_struct_address(v),), (v,), None

        return ArgConv(const_struct, (ArgPlan("ptr", layout, DiffeType.CONSTANT),))
    annotation = type(a)
    if not numpy and not _floats_in(type(val)._type_ if isinstance(val, ctypes.Array) else type(val)):
        raise TypeError(f"{what}: {type(val).__name__} holds no float field to differentiate; pass it as Const")

    def dup_struct(d: Any) -> Any:
        if type(d) is not annotation or not same(d.val):
            raise KindMismatch
        v, dv = d.val, d.dval
        if numpy:
            if type(dv) is not np.ndarray or dv.dtype != v.dtype:
                raise TypeError(f"{what}: the shadow must be a structured array of dtype {v.dtype}")
            if dv.shape != v.shape:
                raise ValueError(f"{what}: shadow shape {dv.shape} differs from the array's {v.shape}")
            if not v.flags.c_contiguous or not dv.flags.c_contiguous:
                raise ValueError(f"{what}: the structured arrays must be C-contiguous")
            if not dv.flags.writeable:
                raise ValueError(f"{what}: the shadow is read-only; Enzyme writes into shadows")
            if dv.size and _run.address_of(dv) == _run.address_of(v):
                raise ValueError(f"{what}: the shadow is the array itself; a shadow needs memory of its own")
        else:
            if type(dv) is not type(v):
                raise TypeError(
                    f"{what}: the shadow must be a {type(v).__name__} like the argument (enzyme_py.make_zero(s, ...) "
                    f"builds one), got {type(dv).__name__}"
                )
            if ctypes.addressof(dv) == ctypes.addressof(v):
                raise ValueError(f"{what}: the shadow is the struct itself; a shadow needs memory of its own")
            elems = [(v[i], dv[i], f"[{i}].") for i in range(len(v))] if isinstance(v, ctypes.Array) else [(v, dv, "")]
            for sv, sdv, pre in elems:
                shadows = dict(_pointer_fields(sdv))
                for name, addr in _pointer_fields(sv):
                    sh = shadows.get(name, 0)
                    if addr and not sh:
                        raise ValueError(
                            f"{what}: pointer field {pre}{name} is set but its shadow is NULL; build the shadow "
                            f"with enzyme_py.make_zero(s, {name.split('.')[-1]}=<array or length>)"
                        )
                    if addr and sh == addr:
                        raise ValueError(
                            f"{what}: pointer field {pre}{name} of the shadow points at the primal's memory; "
                            "a shadow needs buffers of its own"
                        )
        return (_struct_address(v), _struct_address(dv)), (v, dv), None

    return ArgConv(dup_struct, (ArgPlan("ptr", layout, activity),))


def pointer_conv(p: PointerParam, a: Any, what: str, *, activity: int | None, wrapped: bool) -> ArgConv:
    """The converter of pointer-rich data (see the module docstring) for the pointer
    parameter ``p``: ``activity`` is the ``DiffeType`` of a ``Duplicated``-like
    annotation ``a``, None for ``Const(a)`` (``wrapped``) or a bare value."""
    unwrap: Callable[[Any], Any]
    if activity is not None:
        unwrap = _val
    elif wrapped:
        unwrap = _const_val(type(a))
    else:
        unwrap = _bare
    if isinstance(unwrap(a), (list, tuple)):
        return _list_conv(p, a, what, activity, unwrap)
    return _struct_conv(p, a, what, activity, unwrap)


def _val(c: Any) -> Any:
    return c.val


def _bare(c: Any) -> Any:
    return c


def _const_val(t: type[Any]) -> Callable[[Any], Any]:
    def unwrap(c: Any) -> Any:
        if type(c) is not t:
            raise KindMismatch
        return c.val

    return unwrap
