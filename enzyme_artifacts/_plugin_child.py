"""The check of an LLVMEnzyme library, run in a child process by :mod:`enzyme_artifacts.plugin`.

Run as ``python -I -S _plugin_child.py`` with a JSON request on stdin::

    {"llvm": "/usr/lib/llvm-15/lib/libLLVM-15.so.1",
     "library": "/path/LLVMEnzyme-15.so",
     "profiles": [{"name": "v0.0.289", "symbols": [...], "calls": "logic+type-analysis"}]}

It loads the libLLVM ``RTLD_GLOBAL``, then the library, then for each profile checks the
exported symbols and runs the profile's call sequence.  Before each step it prints
``{"step": ...}`` (flushed), so that when the process dies -- a constructor that aborts,
a C-API call that crashes -- the parent knows in which step; at the end it prints
``{"result": ...}``.  This file imports nothing but the standard library (it runs
without ``site``) and is not imported by the package.

Adding a call sequence: a function ``(handle) -> None | str`` in :data:`CALLS` that
returns an error text, and its name in the profile of :mod:`enzyme_artifacts.capi`.
A sequence that identifies a profile by differentiating a known function fits here too.
"""

from __future__ import annotations

import ctypes
import json
import sys
from collections.abc import Callable
from typing import Any


def _say(**data: Any) -> None:
    sys.stdout.write(json.dumps(data) + "\n")
    sys.stdout.flush()


def _logic_and_type_analysis(h: ctypes.CDLL) -> str | None:
    """``CreateEnzymeLogic(u8 postOpt)``, ``CreateTypeAnalysis(logic, char**, void*, size_t)``,
    ``FreeTypeAnalysis(ta)``, ``FreeEnzymeLogic(logic)``: both creates must be non-NULL."""
    create_logic = h.CreateEnzymeLogic
    create_logic.restype = ctypes.c_void_p
    create_logic.argtypes = [ctypes.c_uint8]
    free_logic = h.FreeEnzymeLogic
    free_logic.restype = None
    free_logic.argtypes = [ctypes.c_void_p]
    create_ta = h.CreateTypeAnalysis
    create_ta.restype = ctypes.c_void_p
    create_ta.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_char_p), ctypes.c_void_p, ctypes.c_size_t]
    free_ta = h.FreeTypeAnalysis
    free_ta.restype = None
    free_ta.argtypes = [ctypes.c_void_p]
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


CALLS: dict[str, Callable[[ctypes.CDLL], str | None]] = {
    "logic+type-analysis": _logic_and_type_analysis,
}


def main() -> int:
    req = json.load(sys.stdin)
    _say(step="load libLLVM")
    try:
        ctypes.CDLL(req["llvm"], mode=ctypes.RTLD_GLOBAL)
    except OSError as e:
        _say(result={"error": f"cannot load libLLVM {req['llvm']}: {e}", "check": "load"})
        return 3
    _say(step="load library")
    try:
        h = ctypes.CDLL(req["library"])
    except OSError as e:
        _say(result={"error": f"it cannot be loaded against {req['llvm']}: {e}", "check": "load"})
        return 3
    results: dict[str, Any] = {}
    for prof in req["profiles"]:
        name = prof["name"]
        _say(step=f"symbols of {name}")
        missing = [s for s in prof["symbols"] if not hasattr(h, s)]
        if missing:
            results[name] = {"ok": False, "check": "symbols", "missing": missing}
            continue
        calls = CALLS.get(prof["calls"])
        if calls is None:
            results[name] = {"ok": False, "check": "calls", "error": f"unknown call sequence {prof['calls']!r}"}
            continue
        error = calls(h)
        results[name] = {"ok": error is None, "check": "calls", "error": error}
    _say(result={"profiles": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
