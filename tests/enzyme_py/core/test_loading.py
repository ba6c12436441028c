"""Loading: nothing native at import, LibraryError (an OSError) when the libraries cannot be had.

Each case runs in a fresh interpreter, since loading is once per process.
"""

from __future__ import annotations

LAZY_IMPORT = r'''
import sys

def native_loaded():
    with open("/proc/self/maps") as fh:
        maps = fh.read()
    return [name for name in ("libLLVM", "LLVMEnzyme") if name in maps]

# (the prelude imported enzyme_py and its public names already)
assert native_loaded() == [], native_loaded()
assert "numba" not in sys.modules and "llvmlite" not in sys.modules
assert set(enzyme_py.__all__) >= {
    "Module", "autodiff", "gradient", "make_zero", "Const", "Active", "Duplicated",
    "DuplicatedNoNeed", "Reverse", "ReverseWithPrimal", "Forward", "ForwardWithPrimal",
    "EnzymePyError", "IRParseError", "CompileError", "EnzymeError", "LibraryError",
}, enzyme_py.__all__
m = Module.from_ir(SQ_IR, name="lazy")
# parsing needs libLLVM only; the plugin loads with the first derivative
assert native_loaded() == ["libLLVM"], native_loaded()
assert m.function("sq")(3.0) == 9.0
assert native_loaded() == ["libLLVM"], native_loaded()
assert autodiff(Reverse, m.function("sq"), Active, Active(3.0)) == ((6.0,),)
assert native_loaded() == ["libLLVM", "LLVMEnzyme"], native_loaded()
print("LAZY-OK")
'''

BAD_LLVM_VERSION = r'''
import os
for value in ("99", "fifteen"):
    os.environ["ENZYME_PY_LLVM_VERSION"] = value
    e = expect_raises(enzyme_py.LibraryError, lambda: Module.from_ir(SQ_IR, name="nolib"))
    assert isinstance(e, OSError) and isinstance(e, enzyme_py.EnzymePyError)
    assert ("99" if value == "99" else "fifteen") in str(e), str(e)
# The failure is not remembered: with the variable gone, the default LLVM loads.
del os.environ["ENZYME_PY_LLVM_VERSION"]
'''


def test_import_loads_nothing_native(run_child) -> None:  # type: ignore[no-untyped-def]
    out = run_child(LAZY_IMPORT + "\nstill_alive()\n")
    assert "LAZY-OK" in out and out.rstrip().endswith("ALIVE"), out


def test_missing_llvm_is_a_library_error(run_child) -> None:  # type: ignore[no-untyped-def]
    out = run_child(
        BAD_LLVM_VERSION + "\nstill_alive()\n",
        env={"ENZYME_ARTIFACTS_OFFLINE": "1"},
    )
    assert out.count("RAISED LibraryError") == 2, out
    assert out.rstrip().endswith("ALIVE"), out
