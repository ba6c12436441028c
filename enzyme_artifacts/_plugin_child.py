"""The check of an LLVMEnzyme library, run in a child process by :mod:`enzyme_artifacts.plugin`.

Run as ``python -I -S _plugin_child.py`` with a JSON request on stdin::

    {"llvm": "/usr/lib/llvm-15/lib/libLLVM-15.so.1",
     "library": "/path/LLVMEnzyme-15.so",
     "stop_at_first_pass": true,
     "profiles": [{"name": "v0.0.289", "symbols": [...], "calls": "probe",
                   "signatures": {"EnzymeCreatePrimalAndGradient": [["logic", "EnzymeLogicRef"], ...], ...}}]}

It loads the libLLVM ``RTLD_GLOBAL``, then the library, then for each profile in turn
checks the exported symbols and runs the profile's call sequence.  ``"probe"``:

1. ``CreateEnzymeLogic(0)`` and ``CreateTypeAnalysis(logic, NULL, NULL, 0)`` must be
   non-NULL;
2. in a fresh context, with the profile's parameter lists (so a library of another C API
   gets its arguments in the wrong slots, and aborts or computes garbage):

   * reverse mode (combined) of ``void f(double *x, double *y) { *y = x[0] * x[0]; }`` with
     both pointers duplicated: at x = 3, dx = 0.5, dy = 1 it must leave dx = 6.5 (shadows
     accumulate), dy = 0 (the seed is consumed) and y = 9;
   * forward mode of ``double g(double x) { return x * x * x; }``: at x = 2, dx = 1.5 it
     must return 18;
   * split mode of ``f`` (the augmented primal, then the gradient consuming its tape): the
     forward pass sets y = 9, the reverse pass with dy = 2 gives dx = 12;

   the module is printed, parsed again in a new context, verified, and run with LLVM's
   interpreter (``LLVMCreateInterpreterForModule``, ``LLVMRunFunction``): no target, no
   JIT, no external symbol is needed, so the probe is the same on every architecture.

Before each step it prints ``{"step": ...}`` (flushed), so that when the process dies -- a
constructor that aborts, an assertion in a call whose arguments are in the wrong slots
-- the parent knows where; after each profile it prints ``{"profile": name, "outcome":
{...}}``.  It stops after a profile that did not pass (the next one runs in a fresh
process, so garbage left by a wrong binding cannot spoil it) and, with
``stop_at_first_pass``, after the first that passed.  At the end it prints
``{"result": ...}``.  This file imports nothing but the standard library (it runs without
``site``) and is not imported by the package.

Adding a call sequence: a function ``(handle, llvm, profile) -> None | str`` in
:data:`CALLS` that returns an error text, and its name in the profile of
:mod:`enzyme_artifacts.capi`.
"""

from __future__ import annotations

import ctypes
import json
import sys
import time
from collections.abc import Callable
from ctypes import POINTER, c_char_p, c_double, c_int, c_int64, c_size_t, c_uint, c_uint8, c_void_p
from typing import Any


def _say(**data: Any) -> None:
    sys.stdout.write(json.dumps(data) + "\n")
    sys.stdout.flush()


class _IntList(ctypes.Structure):
    _fields_ = [("data", POINTER(c_int64)), ("size", c_size_t)]


class _CFnTypeInfo(ctypes.Structure):
    _fields_ = [("Arguments", POINTER(c_void_p)), ("Return", c_void_p), ("KnownValues", POINTER(_IntList))]


_CTYPES: dict[str, Any] = {
    "EnzymeLogicRef": c_void_p, "LLVMValueRef": c_void_p, "LLVMBuilderRef": c_void_p, "LLVMTypeRef": c_void_p,
    "EnzymeTypeAnalysisRef": c_void_p, "EnzymeAugmentedReturnPtr": c_void_p,
    "CDIFFE_TYPE": c_int, "CDIFFE_TYPE*": POINTER(c_int), "CDerivativeMode": c_int, "CFnTypeInfo": _CFnTypeInfo,
    "size_t": c_size_t, "uint8_t": c_uint8, "uint8_t*": POINTER(c_uint8), "unsigned int": c_uint,
}

# CDIFFE_TYPE, CDerivativeMode, CConcreteType
_DUP_ARG, _CONSTANT = 1, 2
_FORWARD, _GRADIENT, _COMBINED = 0, 2, 3
_POINTER, _DOUBLE = 2, 5

_IR = b"""
define void @f(ptr %x, ptr %y) {
entry:
  %a = load double, ptr %x, align 8
  %m = fmul double %a, %a
  store double %m, ptr %y, align 8
  ret void
}

define double @g(double %x) {
entry:
  %a = fmul double %x, %x
  %b = fmul double %a, %x
  ret double %b
}
"""


def _fn(lib: ctypes.CDLL, name: str, restype: Any, argtypes: list[Any]) -> Any:
    f = getattr(lib, name)
    f.restype = restype
    f.argtypes = argtypes
    return f


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-12 * max(1.0, abs(b))


def _logic_and_type_analysis(h: ctypes.CDLL) -> str | None:
    """``CreateEnzymeLogic(u8 postOpt)``, ``CreateTypeAnalysis(logic, char**, void*, size_t)``,
    ``FreeTypeAnalysis(ta)``, ``FreeEnzymeLogic(logic)``: both creates must be non-NULL."""
    create_logic = _fn(h, "CreateEnzymeLogic", c_void_p, [c_uint8])
    free_logic = _fn(h, "FreeEnzymeLogic", None, [c_void_p])
    create_ta = _fn(h, "CreateTypeAnalysis", c_void_p, [c_void_p, POINTER(c_char_p), c_void_p, c_size_t])
    free_ta = _fn(h, "FreeTypeAnalysis", None, [c_void_p])
    _say(step="call CreateEnzymeLogic")
    logic = create_logic(0)
    if not logic:
        return "CreateEnzymeLogic(0) returned NULL"
    try:
        _say(step="call CreateTypeAnalysis")
        ta = create_ta(logic, None, None, 0)
        if not ta:
            return "CreateTypeAnalysis(logic, NULL, NULL, 0) returned NULL"
        _say(step="call FreeTypeAnalysis")
        free_ta(ta)
    finally:
        _say(step="call FreeEnzymeLogic")
        free_logic(logic)
    return None


class _Probe:
    """The differentiation probe of one profile (see the module docstring)."""

    def __init__(self, h: ctypes.CDLL, llvm: ctypes.CDLL, profile: dict[str, Any]) -> None:
        self.h = h
        self.llvm = llvm
        self.name = profile["name"]
        self.signatures: dict[str, list[tuple[str, str]]] = {
            fn: [(str(n), str(t)) for n, t in params] for fn, params in profile["signatures"].items()
        }
        self.keep: list[Any] = []

    # -- LLVM
    def parse(self, ctx: int, text: bytes, what: str) -> int:
        buf = _fn(self.llvm, "LLVMCreateMemoryBufferWithMemoryRangeCopy", c_void_p, [c_char_p, c_size_t, c_char_p])(
            text, len(text), what.encode())
        mod = c_void_p()
        err = c_void_p()
        failed = _fn(self.llvm, "LLVMParseIRInContext", c_int, [c_void_p, c_void_p, POINTER(c_void_p),
                                                                POINTER(c_void_p)])(
            ctx, buf, ctypes.byref(mod), ctypes.byref(err))
        if failed:
            raise _Failed(f"the {what} module did not parse: {self.message(err.value)}")
        return int(mod.value or 0)

    def message(self, ptr: int | None) -> str:
        if not ptr:
            return ""
        text = ctypes.string_at(ptr).decode("utf-8", "replace")
        _fn(self.llvm, "LLVMDisposeMessage", None, [c_void_p])(ptr)
        return text

    # -- Enzyme
    def type_tree(self, ctx: int, kind: str) -> int:
        new_ct = _fn(self.h, "EnzymeNewTypeTreeCT", c_void_p, [c_int, c_void_p])
        only_eq = _fn(self.h, "EnzymeTypeTreeOnlyEq", None, [c_void_p, c_int64])
        if kind == "void":
            return int(_fn(self.h, "EnzymeNewTypeTree", c_void_p, [])() or 0)
        inner = new_ct(_DOUBLE, ctx)
        only_eq(inner, -1)
        if kind == "double":
            return int(inner or 0)
        tree = new_ct(_POINTER, ctx)
        _fn(self.h, "EnzymeMergeTypeTree", c_uint8, [c_void_p, c_void_p])(tree, inner)
        only_eq(tree, -1)
        return int(tree or 0)

    def type_info(self, ctx: int, args: list[str], ret: str) -> _CFnTypeInfo:
        trees = (c_void_p * len(args))(*(self.type_tree(ctx, a) for a in args))
        known = (_IntList * len(args))()
        self.keep += [trees, known]
        return _CFnTypeInfo(ctypes.cast(trees, POINTER(c_void_p)), self.type_tree(ctx, ret),
                            ctypes.cast(known, POINTER(_IntList)))

    def array(self, ctype: Any, *values: int) -> Any:
        arr = (ctype * max(len(values), 1))(*values)
        self.keep.append(arr)
        return ctypes.cast(arr, POINTER(ctype))

    def call(self, function: str, values: dict[str, Any]) -> int:
        params = self.signatures[function]
        missing = [n for n, _ in params if n not in values]
        if missing:
            raise _Failed(f"the profile's {function} has parameters the probe does not know: {', '.join(missing)}")
        f = _fn(self.h, function, c_void_p, [_CTYPES[t] for _, t in params])
        _say(step=f"{self.name}: call {function} ({values['what']})")
        return int(f(*(values[n] for n, _ in params)) or 0)

    def run(self) -> dict[str, Any]:
        llvm = self.llvm
        ctx = _fn(llvm, "LLVMContextCreate", c_void_p, [])()
        mod = self.parse(ctx, _IR, "probe")
        named = _fn(llvm, "LLVMGetNamedFunction", c_void_p, [c_void_p, c_char_p])
        f, g = named(mod, b"f"), named(mod, b"g")
        logic = _fn(self.h, "CreateEnzymeLogic", c_void_p, [c_uint8])(0)
        ta = _fn(self.h, "CreateTypeAnalysis", c_void_p, [c_void_p, POINTER(c_char_p), c_void_p, c_size_t])(
            logic, None, None, 0)
        if not logic or not ta:
            raise _Failed("CreateEnzymeLogic or CreateTypeAnalysis returned NULL")
        common: dict[str, Any] = {
            "logic": logic, "request_req": None, "request_ip": None, "type_analysis": ta, "runtime_activity": 0,
            "strong_zero": 0, "width": 1, "free_memory": 1, "additional_arg": None, "force_anonymous_tape": 0,
            "subsequent_calls_may_write": 0, "augmented": None, "atomic_add": 0, "return_value": 0, "dret_used": 0,
            "return_used": 0, "shadow_return_used": 0,
        }
        pointers = {"todiff": f, "ret_type": _CONSTANT, "n_args": 2, "n_overwritten": 2, "n_nowrite": 2}

        def ptr_info() -> _CFnTypeInfo:
            return self.type_info(ctx, ["ptr", "ptr"], "void")

        reverse = self.call("EnzymeCreatePrimalAndGradient", {
            **common, **pointers, "what": "reverse mode", "mode": _COMBINED,
            "arg_activities": self.array(c_int, _DUP_ARG, _DUP_ARG), "type_info": ptr_info(),
            "overwritten_args": self.array(c_uint8, 0, 0)})
        if not reverse:
            raise _Failed("EnzymeCreatePrimalAndGradient (reverse mode) returned NULL")
        forward = self.call("EnzymeCreateForwardDiff", {
            **common, "what": "forward mode", "todiff": g, "ret_type": _DUP_ARG, "n_args": 1, "n_overwritten": 1,
            "mode": _FORWARD, "arg_activities": self.array(c_int, _DUP_ARG),
            "type_info": self.type_info(ctx, ["double"], "double"), "overwritten_args": self.array(c_uint8, 0)})
        if not forward:
            raise _Failed("EnzymeCreateForwardDiff (forward mode) returned NULL")
        aug = self.call("EnzymeCreateAugmentedPrimal", {
            **common, **pointers, "what": "split mode, augmented primal", "subsequent_calls_may_write": 1,
            "arg_activities": self.array(c_int, _DUP_ARG, _DUP_ARG), "type_info": ptr_info(),
            "overwritten_args": self.array(c_uint8, 0, 0), "nowrite_shadows": self.array(c_uint8, 0, 0)})
        if not aug:
            raise _Failed("EnzymeCreateAugmentedPrimal returned NULL")
        _say(step=f"{self.name}: read the augmentation")
        augmented_fn = _fn(self.h, "EnzymeExtractFunctionFromAugmentation", c_void_p, [c_void_p])(aug)
        tape = _fn(self.h, "EnzymeExtractTapeTypeFromAugmentation", c_void_p, [c_void_p])(aug)
        if not augmented_fn:
            raise _Failed("EnzymeExtractFunctionFromAugmentation returned NULL")
        gradient = self.call("EnzymeCreatePrimalAndGradient", {
            **common, **pointers, "what": "split mode, gradient", "mode": _GRADIENT, "additional_arg": tape,
            "subsequent_calls_may_write": 1, "augmented": aug,
            "arg_activities": self.array(c_int, _DUP_ARG, _DUP_ARG), "type_info": ptr_info(),
            "overwritten_args": self.array(c_uint8, 0, 0)})
        if not gradient:
            raise _Failed("EnzymeCreatePrimalAndGradient (split mode, gradient) returned NULL")
        _say(step=f"{self.name}: print the derivatives")
        value_name = _fn(llvm, "LLVMGetValueName2", c_void_p, [c_void_p, POINTER(c_size_t)])

        def name_of(value: int) -> bytes:
            size = c_size_t(0)
            return ctypes.string_at(value_name(value, ctypes.byref(size)), size.value)

        names = [name_of(v) for v in (reverse, forward, augmented_fn, gradient)]
        text = ctypes.string_at(_fn(llvm, "LLVMPrintModuleToString", c_void_p, [c_void_p])(mod))
        return self.execute(text, names)

    def execute(self, text: bytes, names: list[bytes]) -> dict[str, Any]:
        """Parse ``text`` again in a new context, verify it, and run the derivatives with
        LLVM's interpreter.  (Running Enzyme's in-memory module directly works for the
        first function only: the interpreter then reads past its argument list.)"""
        llvm = self.llvm
        _say(step=f"{self.name}: parse and verify the derivatives")
        ctx = _fn(llvm, "LLVMContextCreate", c_void_p, [])()
        mod = self.parse(ctx, text, "differentiated")
        msg = c_void_p()
        if _fn(llvm, "LLVMVerifyModule", c_int, [c_void_p, c_int, POINTER(c_void_p)])(mod, 2, ctypes.byref(msg)):
            raise _Failed(f"the module Enzyme returned does not verify: {self.message(msg.value)[:300]}")
        self.message(msg.value)
        named = _fn(llvm, "LLVMGetNamedFunction", c_void_p, [c_void_p, c_char_p])
        reverse, forward, augmented, gradient = (named(mod, n) for n in names)
        count = _fn(llvm, "LLVMCountParams", c_uint, [c_void_p])
        for what, fn, want in (("reverse", reverse, 4), ("forward", forward, 2), ("augmented", augmented, 4)):
            if count(fn) != want:
                raise _Failed(f"the {what} derivative has {count(fn)} parameters, not {want}")
        if count(gradient) not in (4, 5):
            raise _Failed(f"the split-mode gradient has {count(gradient)} parameters, not 4 or 5 (with a tape)")
        _fn(llvm, "LLVMLinkInInterpreter", None, [])()
        engine = c_void_p()
        err = c_void_p()
        if _fn(llvm, "LLVMCreateInterpreterForModule", c_int, [POINTER(c_void_p), c_void_p, POINTER(c_void_p)])(
                ctypes.byref(engine), mod, ctypes.byref(err)):
            raise _Failed(f"LLVM's interpreter refused the module: {self.message(err.value)}")
        run = _fn(llvm, "LLVMRunFunction", c_void_p, [c_void_p, c_void_p, c_uint, POINTER(c_void_p)])
        of_pointer = _fn(llvm, "LLVMCreateGenericValueOfPointer", c_void_p, [c_void_p])
        of_float = _fn(llvm, "LLVMCreateGenericValueOfFloat", c_void_p, [c_void_p, c_double])
        to_float = _fn(llvm, "LLVMGenericValueToFloat", c_double, [c_void_p, c_void_p])
        double = _fn(llvm, "LLVMDoubleTypeInContext", c_void_p, [c_void_p])(ctx)
        cells = (c_double * 4)()
        base = ctypes.addressof(cells)
        args = (c_void_p * 5)(*(of_pointer(base + 8 * i) for i in range(4)))
        found: dict[str, Any] = {}

        def expect(what: str, got: list[float], want: list[float | None]) -> None:
            found[what] = got
            if not all(w is None or _close(g, w) for g, w in zip(got, want, strict=True)):
                shown = ", ".join(f"{n}={g:g}" for n, g, w in zip(("x", "dx", "y", "dy"), got, want, strict=False)
                                  if w is not None)
                wanted = ", ".join(f"{n}={w:g}" for n, w in zip(("x", "dx", "y", "dy"), want, strict=False)
                                   if w is not None)
                raise _Failed(f"{what} gave {shown} where Enzyme gives {wanted}", found)

        _say(step=f"{self.name}: run reverse mode")
        cells[:] = [3.0, 0.5, 0.0, 1.0]
        run(engine, reverse, 4, args)
        expect("reverse mode of y = x*x at x = 3", list(cells), [3.0, 6.5, 9.0, 0.0])
        _say(step=f"{self.name}: run forward mode")
        result = run(engine, forward, 2, (c_void_p * 2)(of_float(double, 2.0), of_float(double, 1.5)))
        got = to_float(double, result)
        found["forward mode of x*x*x at x = 2"] = got
        if not _close(got, 18.0):
            raise _Failed(f"forward mode of x*x*x at x = 2 with dx = 1.5 gave {got:g} where Enzyme gives 18", found)
        _say(step=f"{self.name}: run split mode")
        cells[:] = [3.0, 0.0, 0.0, 0.0]
        tape_value = run(engine, augmented, 4, args)
        expect("the augmented primal of y = x*x at x = 3", list(cells), [3.0, 0.0, 9.0, 0.0])
        cells[3] = 2.0
        args[4] = tape_value
        run(engine, gradient, count(gradient), args)
        expect("the split-mode gradient of y = x*x at x = 3 with dy = 2", list(cells), [3.0, 12.0, None, 0.0])
        return found


class _Failed(Exception):
    def __init__(self, message: str, found: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.found = found or {}


def _probe(h: ctypes.CDLL, llvm: ctypes.CDLL, profile: dict[str, Any]) -> dict[str, Any]:
    error = _logic_and_type_analysis(h)
    if error is not None:
        return {"ok": False, "check": "calls", "error": error}
    start = time.perf_counter()
    try:
        found = _Probe(h, llvm, profile).run()
    except _Failed as e:
        return {"ok": False, "check": "probe", "error": str(e), "found": e.found,
                "seconds": round(time.perf_counter() - start, 4)}
    return {"ok": True, "check": "probe", "error": None, "found": found,
            "seconds": round(time.perf_counter() - start, 4)}


def _smoke(h: ctypes.CDLL, llvm: ctypes.CDLL, profile: dict[str, Any]) -> dict[str, Any]:
    error = _logic_and_type_analysis(h)
    return {"ok": error is None, "check": "calls", "error": error}


CALLS: dict[str, Callable[[ctypes.CDLL, ctypes.CDLL, dict[str, Any]], dict[str, Any]]] = {
    "probe": _probe,
    "logic+type-analysis": _smoke,
}


def _no_core_dumps() -> None:
    """A wrong binding is expected to abort: no core file for that."""
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (ImportError, ValueError, OSError):
        pass


def main() -> int:
    req = json.load(sys.stdin)
    _no_core_dumps()
    _say(step="load libLLVM")
    try:
        llvm = ctypes.CDLL(req["llvm"], mode=ctypes.RTLD_GLOBAL)
    except OSError as e:
        _say(result={"error": f"cannot load libLLVM {req['llvm']}: {e}", "check": "load"})
        return 3
    _say(step="load library")
    try:
        h = ctypes.CDLL(req["library"])
    except OSError as e:
        _say(result={"error": f"it cannot be loaded against {req['llvm']}: {e}", "check": "load"})
        return 3
    for prof in req["profiles"]:
        name = prof["name"]
        _say(step=f"symbols of {name}")
        missing = [s for s in prof["symbols"] if not hasattr(h, s)]
        if missing:
            outcome: dict[str, Any] = {"ok": False, "check": "symbols", "missing": missing}
        else:
            calls = CALLS.get(prof["calls"])
            if calls is None:
                outcome = {"ok": False, "check": "calls", "error": f"unknown call sequence {prof['calls']!r}"}
            else:
                outcome = calls(h, llvm, prof)
        _say(profile=name, outcome=outcome)
        if not outcome["ok"] and outcome["check"] != "symbols":
            break  # what a wrong binding left behind must not spoil the next profile
        if outcome["ok"] and req.get("stop_at_first_pass"):
            break
    _say(result={"done": True})
    return 0


if __name__ == "__main__":
    sys.exit(main())
