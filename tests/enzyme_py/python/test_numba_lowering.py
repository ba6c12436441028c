"""The lowering itself: entry ABI, pruning, caching, refusals, LLVM matching.

``ez.lower(f, *args)`` shows the Function a Python function becomes; these tests inspect its
layout and its module's IR (with llvmlite) and exercise every refusal the lowering promises
(a clear exception, never a crash).
"""

from __future__ import annotations

import math
import pickle
import subprocess
import sys
from pathlib import Path

import numba
import numpy as np
import pytest

import enzyme_py as ez
from enzyme_py._numba import STATUS_WORDS, raise_from_status


def dot(a, b):
    s = 0.0
    for i in range(a.shape[0]):
        s += a[i] * b[i]
    return s


def scale_rows_into(A, s, out):
    for i in range(A.shape[0]):
        for j in range(A.shape[1]):
            out[i, j] = A[i, j] * s[i]


def temporaries(a):
    return np.sum((a * 2.0) * a)


def raises(x):
    if x < 0:
        raise ValueError("negative input")
    return x


def count(x, n):
    return x * n


def _parse(ir: str):
    import llvmlite.binding as llvm

    module = llvm.parse_assembly(ir)
    module.verify()
    return module


def _entry(fn):
    """The entry function of a lowered Function, as llvmlite sees it."""
    return _parse(fn.module.ir).get_function(fn.name)


def test_entry_abi_for_arrays():
    a = np.ones(4)
    fn = ez.lower(dot, a, a)
    params = [str(p.type) for p in _entry(fn).arguments]
    assert params == ["double*", "i64", "double*", "i64", "i64*"]  # data, n, data, n, status
    assert [p.text for p in fn.layout.params] == ["float64[:]", "float64[:]"]
    assert fn.layout.result.text == "float64"
    assert fn(a, 2 * a) == 8.0


def test_entry_abi_for_2d_void_and_scalars():
    A = np.ones((2, 3))
    fn = ez.lower(scale_rows_into, A, np.ones(2), A.copy())
    assert len(list(_entry(fn).arguments)) == 3 + 2 + 3 + 1
    assert fn.layout.result.text == "None"
    out = np.zeros((2, 3))
    assert fn(A, np.array([2.0, 3.0]), out) is None
    np.testing.assert_array_equal(out, [[2.0] * 3, [3.0] * 3])
    fn = ez.lower(count, 1.0, 3)
    assert [str(p.type) for p in _entry(fn).arguments] == ["double", "i64", "i64*"]
    assert fn(1.5, 3) == 4.5
    fn32 = ez.lower(count, np.float32(1.0), 3)
    assert str(_entry(fn32).type).startswith("double (float, i64")  # float32 * int64: float64


def test_module_is_pruned_and_self_contained():
    fn = ez.lower(temporaries, np.ones(3))
    mod = _parse(fn.module.ir)
    defined = [f.name for f in mod.functions if not f.is_declaration]
    assert fn.name in defined
    assert not any(name.startswith(("cpython.", "_ZN5numba")) for name in defined), defined
    declared = {f.name for f in mod.functions if f.is_declaration}
    assert not any(d.startswith("NRT_") and d not in ("NRT_MemInfo_call_dtor",) for d in declared), declared
    assert fn(np.array([1.0, 2.0])) == 10.0


def test_exception_table_holds_the_pickled_exception():
    fn = ez.lower(raises, 1.0)
    payloads = [pickle.loads(p) for p in fn.layout.status.exceptions]
    assert any(exc is ValueError and args == ("negative input",) for exc, args, _ in payloads)


def test_lowering_is_cached_per_layout():
    a, b = np.ones(3), np.zeros(5)
    first = ez.lower(dot, a, a)
    assert ez.lower(dot, b, b) is first
    assert ez.lower(dot, ez.Duplicated(b, b), ez.Const(b)) is first
    assert ez.lower(dot, a.astype(np.float32), a.astype(np.float32)) is not first


def test_status_words_and_decoding():
    fn = ez.lower(raises, 1.0)
    payloads = fn.layout.status.exceptions
    assert STATUS_WORDS == fn.layout.status.words >= 3
    raise_from_status("raises", payloads, [0] * STATUS_WORDS)  # success: nothing raised
    k = next(i for i, p in enumerate(payloads, 1) if pickle.loads(p)[0] is ValueError)
    with pytest.raises(ValueError, match="negative input") as info:
        raise_from_status("raises", payloads, [1, k] + [0] * (STATUS_WORDS - 2))
    assert any("raises" in note for note in info.value.__notes__)
    with pytest.raises(RuntimeError, match="cannot identify"):
        raise_from_status("raises", payloads, [1, 99] + [0] * (STATUS_WORDS - 2))
    with pytest.raises(ValueError, match="negative input"):
        fn(-1.0)  # the primal through enzyme_py's JIT raises what the function raises


def _list_use(x):
    items = [x, 2.0 * x]
    return items[0] + items[1]


def _dynamic_raise(x):
    if x < 0:
        raise ValueError("bad value", x)
    return x


def _lapack_cholesky(a):
    return np.linalg.cholesky(a)


def _generator(x):
    yield x


def _identity(x):
    return x


def _gamma(x):
    return math.gamma(x)


def _first(x):
    return x.ravel()[0]


def _untyped(x):
    return x.no_such_attribute


@pytest.mark.parametrize(
    ("f", "args", "error", "match"),
    [
        (_list_use, [1.0], ez.UnsupportedError, "NRT_MemInfo_new_varsize"),
        (_dynamic_raise, [1.0], ez.UnsupportedError, "NRT_Allocate.*dynamic exception"),
        (_lapack_cholesky, [np.eye(3)], ez.UnsupportedError, "numba_xxpotrf"),
        (_gamma, [1.5], ez.UnsupportedError, "numba_gamma"),
        (_generator, [1.0], ez.UnsupportedError, "generator"),
        (_identity, [(1.0, 2.0)], ez.UnsupportedError, "tuple"),
        (_identity, [1j], ez.UnsupportedError, "complex"),
        (_identity, [np.ones(3, np.complex128)], ez.UnsupportedError, "complex"),
        (_identity, [np.ones((2, 2, 2, 2))], ez.UnsupportedError, "4-D"),
        (_identity, [np.zeros(2, dtype=[("a", "f8")])], ez.UnsupportedError, "record"),
        (_first, [ez.Const(np.ones((4, 4))[:, ::2])], ValueError, "C-contiguous"),
        (_first, [ez.Const(np.asfortranarray(np.ones((3, 2))))], ValueError, "C-contiguous"),
        (_identity, [np.array(1.0)], TypeError, "0-d"),
        (_identity, ["text"], TypeError, "str"),
        (_identity, [None], TypeError, "NoneType"),
        (_identity, [np.ones(3, np.int8)], TypeError, "int8"),
        (count, [1.0, 10**30], ValueError, "argument 1 of count .*does not fit in int64"),
        (_untyped, [1.0], TypeError, "nopython mode"),
        (numba.njit(parallel=True)(_identity), [1.0], ez.UnsupportedError, "parallel"),
        (numba.jit(forceobj=True)(_identity), [1.0], ez.UnsupportedError, "object-mode"),
        (3, [1.0], TypeError, "Python function"),
    ],
)
def test_unsupported_constructs_are_refused(f, args, error, match):
    with pytest.raises(error, match=match):
        ez.autodiff(ez.Reverse, f, ez.Active, *args)


def test_llvm_major_without_artifact_names_the_pairing(monkeypatch, tmp_path):
    from enzyme_artifacts import manifest as manifest_mod
    from enzyme_artifacts.errors import UnsupportedPlatformError
    from enzyme_py._numba.versions import check_artifact_for_major, llvmlite_major

    assert llvmlite_major() == 15
    monkeypatch.delenv("ENZYME_ARTIFACTS_LIBRARY", raising=False)
    bundled = manifest_mod.bundled_manifest_path().read_text()
    moved = tmp_path / "Artifacts.toml"
    moved.write_text(bundled.replace("llvm_version = 15", "llvm_version = 16"))
    monkeypatch.setenv("ENZYME_ARTIFACTS_MANIFEST", str(moved))
    manifest_mod.clear_cache()
    try:
        check_artifact_for_major(16)
        with pytest.raises(UnsupportedPlatformError) as info:
            check_artifact_for_major(15)
        message = str(info.value)
        assert "LLVM 15" in message and "numba 0.61" in message and "LLVM 16" in message
        assert str(moved) in message
    finally:
        manifest_mod.clear_cache()
    monkeypatch.delenv("ENZYME_ARTIFACTS_MANIFEST")
    check_artifact_for_major(15)  # the bundled manifest pairs with this numba


def test_importing_enzyme_py_does_not_import_numba():
    code = (
        "import sys, enzyme_py, enzyme_py._numba\n"
        "assert 'numba' not in sys.modules and 'llvmlite' not in sys.modules, "
        "sorted(m for m in sys.modules if m.startswith(('numba', 'llvmlite')))\n"
        "print('clean')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120,
        cwd=Path(__file__).parent,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "clean"
