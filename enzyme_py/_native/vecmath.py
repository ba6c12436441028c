"""Vector math: calls of ``exp``, ``log``, ``sin``, ``cos``, ``tanh`` and ``pow`` (and
``cosh``/``sinh``, which Enzyme's derivatives of ``tanh``/``cosh`` call) in loops the
vectoriser widens become calls of glibc's libmvec (``_ZGVdN4v_exp``, ...).

LLVM's loop vectoriser widens a call when the call site names vector variants of its
callee (the ``"vector-function-abi-variant"`` attribute, in the vector function ABI's
mangling, ``_ZGVdN4v_exp(_ZGVdN4v_exp)``) and the module declares them.  That is what
``-vector-library=LIBMVEC-X86`` does through LLVM's TargetLibraryInfo (its
``inject-tli-mappings`` pass writes the same attributes), but LLVM 15's table for libmvec
lacks ``tanh``, and the option is a process-wide ``cl::opt`` of libLLVM that cannot be set
per compilation.  :func:`annotate` therefore writes the attributes itself, after Enzyme
and before the optimisation pipeline, for the primal and the derivative alike (Enzyme's
derivatives call the same functions: ``exp`` again in reverse, ``tanh`` for its
derivative ...).  The JIT resolves the vector names from libmvec (:func:`resolve`),
loaded on first use.

Which variants: the widths the host's instruction set has (``b``: SSE, 2 doubles or 4
floats; ``c``: AVX, ``d``: AVX2, 4/8; ``e``: AVX-512, 8/16), each only when libmvec
exports it (``tanh``, ``cosh``, ``sinh`` since glibc 2.35, the others since 2.22).  Elsewhere (no libmvec, not
x86-64) nothing is annotated and the code keeps its scalar calls.

Accuracy: libmvec's functions are within 4 ulp of the correctly rounded result (glibc's
manual; the tests check it against the scalar libm and NumPy), where the scalar libm is
within 1-2 ulp; results of vectorised loops may therefore differ from the scalar code's
in the last bits.  ``ENZYME_PY_VECTOR_MATH=0`` (or ``set_options(vector_math=False)``)
keeps the scalar calls.

Invariant: :func:`annotate` only adds call-site attributes, declarations and entries of
``llvm.compiler.used``; nothing else in the module changes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import platform
import threading
from collections.abc import Container
from dataclasses import dataclass

from .ffi.llvm import Linkage, Opcode
from .handles import ModuleRef, value_name
from .library import native

__all__ = ["VectorLibrary", "annotate", "library", "resolve"]

#: scalar callee -> (libmvec's base name, number of arguments, element kind)
FUNCTIONS: dict[str, tuple[str, int, str]] = {}
for _name in ("exp", "log", "sin", "cos", "tanh", "pow", "cosh", "sinh"):
    _arity = 2 if _name == "pow" else 1
    FUNCTIONS[_name] = (_name, _arity, "f64")
    FUNCTIONS[_name + "f"] = (_name + "f", _arity, "f32")
    if _name not in ("tanh", "cosh", "sinh"):  # LLVM 15 has no intrinsics of those
        FUNCTIONS[f"llvm.{_name}.f64"] = (_name, _arity, "f64")
        FUNCTIONS[f"llvm.{_name}.f32"] = (_name + "f", _arity, "f32")
del _name, _arity

#: ISA letter of the vector function ABI -> (host feature needed, doubles per vector)
_ISAS = (("b", "sse2", 2), ("c", "avx", 4), ("d", "avx2", 4), ("e", "avx512f", 8))
_ATTRIBUTE = b"vector-function-abi-variant"
_FUNCTION_INDEX = 0xFFFFFFFF


@dataclass(frozen=True)
class VectorLibrary:
    """libmvec as this host can use it: its handle and, per scalar callee, the vector
    variants ``(isa, lanes, vector name)`` it exports."""

    handle: ctypes.CDLL
    path: str
    variants: dict[str, tuple[tuple[str, int, str], ...]]


_lock = threading.Lock()


def _features(text: str) -> frozenset[str]:
    return frozenset(f[1:] for f in text.split(",") if f.startswith("+"))


@functools.lru_cache(maxsize=1)
def library() -> VectorLibrary | None:
    """libmvec with the variants this host supports, or None (not x86-64, no libmvec)."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return None
    name = ctypes.util.find_library("mvec") or "libmvec.so.1"
    try:
        handle = ctypes.CDLL(name)
    except OSError:
        return None
    have = _features(native().features)
    isas = [(isa, lanes) for isa, feature, lanes in _ISAS if feature in have or feature == "sse2"]
    variants: dict[str, tuple[tuple[str, int, str], ...]] = {}
    for scalar, (base, arity, kind) in FUNCTIONS.items():
        by_width: dict[int, tuple[str, int, str]] = {}
        for isa, lanes in isas:  # in order of ISA: the best one of each width wins
            n = lanes * (2 if kind == "f32" else 1)
            vector = f"_ZGV{isa}N{n}{'v' * arity}_{base}"
            if hasattr(handle, vector):
                by_width[n] = (isa, n, vector)
        if by_width:
            variants[scalar] = tuple(by_width[n] for n in sorted(by_width))
    return VectorLibrary(handle, name, variants) if variants else None


def resolve(name: str) -> int | None:
    """The address of the libmvec function ``name`` (``_ZGV...``), or None."""
    if not name.startswith("_ZGV"):
        return None
    lib = library()
    if lib is None:
        return None
    try:
        return ctypes.cast(getattr(lib.handle, name), ctypes.c_void_p).value
    except AttributeError:
        return None


def _calls(module: ModuleRef, wanted: Container[str]) -> list[tuple[int, str]]:
    lib = native().llvm
    out = []
    fn = lib.LLVMGetFirstFunction(module.handle)
    while fn:
        if not lib.LLVMIsDeclaration(fn):
            bb = lib.LLVMGetFirstBasicBlock(fn)
            while bb:
                inst = lib.LLVMGetFirstInstruction(bb)
                while inst:
                    if lib.LLVMGetInstructionOpcode(inst) == Opcode.CALL:
                        callee = lib.LLVMGetCalledValue(inst)
                        if callee and lib.LLVMIsAFunction(callee) and lib.LLVMIsDeclaration(callee):
                            name = value_name(callee)
                            if name in wanted:
                                out.append((int(inst), name))
                    inst = lib.LLVMGetNextInstruction(inst)
                bb = lib.LLVMGetNextBasicBlock(bb)
        fn = lib.LLVMGetNextFunction(fn)
    return out


def _declare(module: ModuleRef, vector: str, lanes: int, arity: int, kind: str) -> int:
    lib = native().llvm
    existing = lib.LLVMGetNamedFunction(module.handle, vector.encode())
    if existing:
        return int(existing)
    ctx = module.context.handle
    elem = lib.LLVMDoubleTypeInContext(ctx) if kind == "f64" else lib.LLVMFloatTypeInContext(ctx)
    vty = lib.LLVMVectorType(elem, lanes)
    params = (ctypes.c_void_p * arity)(*([vty] * arity))
    return int(lib.LLVMAddFunction(module.handle, vector.encode(), lib.LLVMFunctionType(vty, params, arity, 0)))


def _keep(module: ModuleRef, functions: list[int]) -> None:
    """Append ``functions`` to ``llvm.compiler.used`` (so that no dead-code pass drops
    the declarations before the vectoriser looks for them)."""
    lib = native().llvm
    ctx = module.context.handle
    i8p = lib.LLVMPointerType(lib.LLVMInt8TypeInContext(ctx), 0)
    values = []
    old = lib.LLVMGetNamedGlobal(module.handle, b"llvm.compiler.used")
    if old:
        init = lib.LLVMGetInitializer(old)
        if init:
            values = [lib.LLVMGetOperand(init, i) for i in range(lib.LLVMGetNumOperands(init))]
        lib.LLVMDeleteGlobal(old)
    values += [lib.LLVMConstBitCast(f, i8p) for f in functions]
    arr = (ctypes.c_void_p * len(values))(*values)
    used = lib.LLVMAddGlobal(module.handle, lib.LLVMArrayType(i8p, len(values)), b"llvm.compiler.used")
    lib.LLVMSetLinkage(used, Linkage.APPENDING)
    lib.LLVMSetSection(used, b"llvm.metadata")
    lib.LLVMSetInitializer(used, lib.LLVMConstArray(i8p, arr, len(values)))


def _vector_intrinsics(vl: VectorLibrary) -> dict[str, tuple[str, int, int, str]]:
    """``llvm.exp.v4f64`` -> (libmvec name, lanes, arity, kind) for the widths libmvec has."""
    out = {}
    for scalar, variants in vl.variants.items():
        if not scalar.startswith("llvm."):
            continue
        _, arity, kind = FUNCTIONS[scalar]
        stem = scalar.rsplit(".", 1)[0]  # llvm.exp
        for _isa, lanes, vector in variants:
            out[f"{stem}.v{lanes}{kind}"] = (vector, lanes, arity, kind)
    return out


def _replace_vector_intrinsics(module: ModuleRef, vl: VectorLibrary) -> int:
    """Calls of vector math intrinsics (``llvm.exp.v4f64``, made by a vectoriser that ran
    before, e.g. when a C module was optimised) call libmvec's function of that width
    instead (the code generator would otherwise split them into scalar calls)."""
    table = _vector_intrinsics(vl)
    calls = _calls(module, table)
    lib = native().llvm
    for inst, name in calls:
        vector, lanes, arity, kind = table[name]
        fn = _declare(module, vector, lanes, arity, kind)
        lib.LLVMSetOperand(inst, lib.LLVMGetNumArgOperands(inst), fn)  # the callee
    return len(calls)


def annotate(module: ModuleRef) -> int:
    """Give every call of a function in :data:`FUNCTIONS` its libmvec variants (see the
    module docstring), and let calls of vector math intrinsics call libmvec; the number of
    calls changed (0 when the host has no libmvec)."""
    vl = library()
    if vl is None:
        return 0
    replaced = _replace_vector_intrinsics(module, vl)
    calls = _calls(module, vl.variants)
    if not calls:
        return replaced
    lib = native().llvm
    ctx = module.context.handle
    declared: dict[str, int] = {}
    for inst, scalar in calls:
        _, arity, kind = FUNCTIONS[scalar]
        mangled = []
        for isa, lanes, vector in vl.variants[scalar]:
            if vector not in declared:
                declared[vector] = _declare(module, vector, lanes, arity, kind)
            mangled.append(f"_ZGV{isa}N{lanes}{'v' * arity}_{scalar}({vector})")
        value = ",".join(mangled).encode()
        attr = lib.LLVMCreateStringAttribute(ctx, _ATTRIBUTE, len(_ATTRIBUTE), value, len(value))
        lib.LLVMAddCallSiteAttribute(inst, _FUNCTION_INDEX, attr)
    _keep(module, list(declared.values()))
    return replaced + len(calls)


