"""numba's runtime as Enzyme must see it: the allocation shim, helper policy, symbols.

numba allocates array temporaries with ``NRT_MemInfo_alloc_aligned`` and frees them with
``NRT_MemInfo_call_dtor``; both live in numba's private extension and free memory through a
destructor pointer Enzyme cannot follow.  Enzyme recognises allocations and frees by name
only, so the bridge links in a shim that *defines* both:

* ``NRT_MemInfo_alloc_aligned(size, align)``: one ``malloc(48 + size)`` holding numba's
  MemInfo header ``{refct, dtor, dtor_info, data, size, external_allocator}`` followed by the
  data, with ``data`` pointing into the same block (16-byte aligned, which is why the bridge
  lowers every ``align`` above 16 in the code to 16);
* ``NRT_MemInfo_call_dtor(meminfo)``: ``free(meminfo)``.

Enzyme then builds the shadow of a temporary (header included) like any other allocation.
Every other NRT allocator (lists, dicts, strings, dynamic exception arguments, ...) is
refused with :class:`UnsupportedError`.  Helpers that compute only integers (reshape
strides) are marked ``"enzyme_inactive"`` and ``nofree``; numba's BLAS helpers (``np.dot``,
``@``) are kept for the compile stage, which maps them onto CBLAS; every other helper that
would need a derivative is refused, naming it.  What still calls into numba's runtime is resolved
through :func:`runtime_symbols` (absolute addresses, since numba's extensions are loaded
``RTLD_LOCAL``).
"""

from __future__ import annotations

__all__ = [
    "ALLOCATION_SHIM",
    "DECREF",
    "INACTIVE_HELPERS",
    "MATH_FUNCTIONS",
    "classify_declarations",
    "runtime_symbols",
]

from collections.abc import Iterable, Mapping

from ..errors import UnsupportedError

#: Size of numba's MemInfo header in bytes (six pointer-sized fields).
MEMINFO_HEADER = 48

ALLOCATION_SHIM = f"""
declare noalias i8* @malloc(i64)
declare void @free(i8*)

define noalias i8* @NRT_MemInfo_alloc_aligned(i64 %size, i32 %align) {{
entry:
  %total = add i64 %size, {MEMINFO_HEADER}
  %base = call noalias i8* @malloc(i64 %total)
  %data = getelementptr inbounds i8, i8* %base, i64 {MEMINFO_HEADER}
  %hdr = bitcast i8* %base to {{ i64, i8*, i8*, i8*, i64, i8* }}*
  %f0 = getelementptr inbounds {{ i64, i8*, i8*, i8*, i64, i8* }}, {{ i64, i8*, i8*, i8*, i64, i8* }}* %hdr, i32 0, i32 0
  store i64 1, i64* %f0, align 8
  %f1 = getelementptr inbounds {{ i64, i8*, i8*, i8*, i64, i8* }}, {{ i64, i8*, i8*, i8*, i64, i8* }}* %hdr, i32 0, i32 1
  store i8* null, i8** %f1, align 8
  %f2 = getelementptr inbounds {{ i64, i8*, i8*, i8*, i64, i8* }}, {{ i64, i8*, i8*, i8*, i64, i8* }}* %hdr, i32 0, i32 2
  store i8* null, i8** %f2, align 8
  %f3 = getelementptr inbounds {{ i64, i8*, i8*, i8*, i64, i8* }}, {{ i64, i8*, i8*, i8*, i64, i8* }}* %hdr, i32 0, i32 3
  store i8* %data, i8** %f3, align 8
  %f4 = getelementptr inbounds {{ i64, i8*, i8*, i8*, i64, i8* }}, {{ i64, i8*, i8*, i8*, i64, i8* }}* %hdr, i32 0, i32 4
  store i64 %size, i64* %f4, align 8
  %f5 = getelementptr inbounds {{ i64, i8*, i8*, i8*, i64, i8* }}, {{ i64, i8*, i8*, i8*, i64, i8* }}* %hdr, i32 0, i32 5
  store i8* null, i8** %f5, align 8
  ret i8* %base
}}

define void @NRT_MemInfo_call_dtor(i8* %meminfo) {{
entry:
  call void @free(i8* %meminfo)
  ret void
}}
"""

#: numba's reference-count release, for the result arrays the entry copies out; linked in
#: when numba's module does not define it (the code itself never releases a reference).
DECREF = """
declare void @NRT_MemInfo_call_dtor(i8*)

define void @NRT_decref(i8* %mi) {
entry:
  %isnull = icmp eq i8* %mi, null
  br i1 %isnull, label %done, label %dec
dec:
  %count = bitcast i8* %mi to i64*
  %old = load i64, i64* %count, align 8
  %new = sub i64 %old, 1
  store i64 %new, i64* %count, align 8
  %last = icmp eq i64 %new, 0
  br i1 %last, label %free, label %done
free:
  call void @NRT_MemInfo_call_dtor(i8* %mi)
  br label %done
done:
  ret void
}
"""

#: NRT functions the shim defines.
SHIMMED = frozenset({"NRT_MemInfo_alloc_aligned", "NRT_MemInfo_call_dtor"})

#: numba helpers whose results are integers only: inactive for Enzyme, no memory freed.
INACTIVE_HELPERS = frozenset({"numba_attempt_nocopy_reshape", "numba_fptoui", "numba_fptouif"})

#: numba's BLAS helpers (``np.dot``, ``@``, ``np.vdot`` of float arrays): the compile stage
#: turns their calls into CBLAS calls Enzyme differentiates
#: (:func:`enzyme_py._native.linalg.map_numba_blas`); their addresses are still given to
#: the JIT for the calls it leaves (complex element kinds, which no derivative reaches).
BLAS_HELPERS = frozenset({"numba_xxgemm", "numba_xxgemv", "numba_xxdot"})
#: What numba calls when one of its BLAS helpers fails (it aborts the process); the path
#: is dead once the helpers are CBLAS calls, and allowed only next to them.
_BLAS_ERROR_PATH = frozenset({"numba_gil_ensure", "Py_FatalError"})

#: C math functions Enzyme differentiates by name (resolved from the process's libm).
MATH_FUNCTIONS = frozenset(
    name + suffix
    for name in (
        "exp", "exp2", "expm1", "log", "log2", "log10", "log1p", "sqrt", "cbrt", "pow",
        "sin", "cos", "tan", "asin", "acos", "atan", "atan2", "sinh", "cosh", "tanh",
        "asinh", "acosh", "atanh", "hypot", "erf", "erfc", "fabs", "floor", "ceil", "trunc",
        "round", "fmod", "copysign", "fmin", "fmax", "ldexp", "nextafter",
    )
    for suffix in ("", "f")
) | {"malloc", "free"}

#: What a refused NRT function is used for, for messages.
_NRT_USES = {
    "NRT_Allocate": "a raise with runtime values (dynamic exception arguments) or a typed container",
    "NRT_Allocate_External": "an external allocator",
    "NRT_MemInfo_alloc": "an unaligned runtime allocation",
    "NRT_MemInfo_alloc_safe_aligned": "a debug allocation (NUMBA_NRT_STATS/NRT debug mode)",
    "NRT_MemInfo_alloc_dtor": "an allocation with a destructor (lists, dicts, jitclasses)",
    "NRT_MemInfo_new_varsize": "a variable-size allocation (strings, lists)",
    "NRT_MemInfo_new_varsize_dtor": "a variable-size allocation (lists, dicts)",
    "NRT_MemInfo_varsize_alloc": "a growable buffer (list.append, string building)",
    "NRT_MemInfo_varsize_realloc": "a growable buffer (list.append, string building)",
    "NRT_MemInfo_varsize_free": "a growable buffer",
    "NRT_Free": "a runtime free of a raw buffer",
}


def classify_declarations(names: Iterable[str], qualname: str) -> frozenset[str]:
    """Check the functions the pruned module still declares; return those needing symbols.

    Raises:
        UnsupportedError: a declaration is an NRT allocator other than the shimmed one, or a
            numba helper that would need a derivative; the message names it and its use.
    """
    need: set[str] = set()
    helpers: list[str] = []
    python_api: list[str] = []
    other: list[str] = []
    names = set(names)
    blas = bool(names & BLAS_HELPERS)
    for name in sorted(names):
        if name.startswith("llvm.") or name in MATH_FUNCTIONS:
            continue
        if name in INACTIVE_HELPERS or name in BLAS_HELPERS:
            need.add(name)
        elif blas and name in _BLAS_ERROR_PATH:
            if name.startswith("numba_"):
                need.add(name)
        elif name.startswith("NRT_"):
            use = _NRT_USES.get(name, "a numba runtime service")
            raise UnsupportedError(
                f"{qualname} uses numba's {name} ({use}); only array temporaries allocated with "
                "NRT_MemInfo_alloc_aligned (np.empty, a * 2.0, np.sum(x ** 2), ...) are supported"
            )
        elif name.startswith("numba_"):
            helpers.append(name)
        elif name.startswith(("Py", "_Py")):
            python_api.append(name)
        else:
            other.append(name)
    if helpers:
        raise UnsupportedError(
            f"{qualname} calls numba's runtime helper(s) {', '.join(helpers)}, which Enzyme cannot "
            "differentiate (LAPACK wrappers such as np.linalg, special functions, random numbers, "
            "Python objects; np.dot, @ and np.vdot are supported); write the computation with "
            "loops, matrix products or math functions"
        )
    if python_api:
        raise UnsupportedError(
            f"{qualname} calls the Python C API ({', '.join(python_api)}); code that touches Python "
            "objects cannot be differentiated"
        )
    # Other external functions (numba's types.ExternalFunction, libm names Enzyme does not
    # know) are left to the JIT, which resolves them from the process or the module's
    # symbols; Enzyme reports those it cannot differentiate (give them a rule with
    # enzyme_py.with_derivative).
    return frozenset(need)


def runtime_symbols(names: Iterable[str]) -> Mapping[str, int]:
    """Absolute addresses of numba runtime functions, by symbol name (imports numba)."""
    from numba import _helperlib
    from numba.core.runtime import _nrt_python

    table: dict[str, int] = {}
    for key, address in _helperlib.c_helpers.items():
        table[f"numba_{key}"] = int(address)
    for key, address in _nrt_python.c_helpers.items():
        table[f"NRT_{key}"] = int(address)
    out: dict[str, int] = {}
    for name in names:
        if name not in table:
            raise LookupError(f"numba's runtime exports no {name}; the installed numba is not supported")
        out[name] = table[name]
    return out
