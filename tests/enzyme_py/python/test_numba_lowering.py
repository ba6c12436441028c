"""The lowering itself: entry ABI, pruning, rewrites, caching, refusals, LLVM matching.

These tests need numba and llvmlite but no Enzyme: they inspect the module text with
llvmlite and exercise every refusal the bridge promises (a clear exception, never a crash).
"""

from __future__ import annotations

import math
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numba
import numpy as np
import pytest

from enzyme_py._numba import STATUS_WORDS, expand_args, lower, new_status, raise_from_status


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


def test_entry_abi_for_arrays():
    a = np.ones(4)
    low = lower(dot, [a, a])
    assert low.returns == "f64"
    assert low.llvm_major == 15
    assert [(s.kind, s.dtype, s.ir_params) for s in low.arg_layout] == [("array1d", "float64", 2)] * 2
    assert low.n_params == 5
    fn = _parse(low.ir).get_function(low.entry)
    assert str(fn.type) == "double (double*, i64, double*, i64, i64*)*"


def test_entry_abi_for_2d_void_and_scalars():
    A = np.ones((2, 3))
    low = lower(scale_rows_into, [A, np.ones(2), A.copy()])
    assert low.returns == "void"
    assert str(_parse(low.ir).get_function(low.entry).type) == (
        "void (double*, i64, i64, double*, i64, double*, i64, i64, i64*)*"
    )
    low = lower(count, [1.0, 3])
    assert low.returns == "f64"
    assert str(_parse(low.ir).get_function(low.entry).type) == "double (double, i64, i64*)*"
    low32 = lower(count, [np.float32(1.0), 3])
    assert low32.returns == "f64"  # float32 * int64 is float64 in numba
    assert low32.arg_layout[0].dtype == "float32"


def test_module_is_pruned_and_self_contained():
    low = lower(temporaries, [np.ones(3)])
    module = _parse(low.ir)
    defined = [f for f in module.functions if not f.is_declaration]
    external = [f.name for f in defined if str(f.linkage) != "Linkage.internal"]
    assert external == [low.entry]
    declared = {f.name for f in module.functions if f.is_declaration}
    assert all(n.startswith("llvm.") or n in {"malloc", "free"} for n in declared), declared
    assert "cpython" not in low.ir and "NumbaEnv" not in low.ir
    assert "NRT_MemInfo_alloc_aligned" not in declared
    assert not re.search(r"\balign (32|64|128)\b", low.ir)
    assert "llvm.memset" not in "\n".join(
        line for line in low.ir.splitlines() if line.lstrip().startswith(("call", "tail call"))
    )
    assert dict(low.symbols) == {}


def test_exception_table_holds_the_pickled_exception():
    low = lower(raises, [1.0])
    payloads = [pickle.loads(p) for p in low.exceptions]
    assert any(exc is ValueError and args == ("negative input",) for exc, args, _ in payloads)


def test_lowering_is_cached_per_layout():
    a, b = np.ones(3), np.zeros(7)
    first = lower(dot, [a, a])
    assert lower(dot, [b, b]) is first
    assert lower(dot, [a.astype(np.float32), a.astype(np.float32)]) is not first


def test_status_words_and_decoding():
    low = lower(raises, [1.0])
    status = new_status()
    assert status.shape == (STATUS_WORDS,) and status.dtype == np.int64
    raise_from_status(low, status)  # zero: success
    status[0] = -2  # numba's "returned None": success too
    raise_from_status(low, status)
    k = next(i for i, p in enumerate(low.exceptions) if pickle.loads(p)[0] is ValueError) + 1
    status[:] = (1, k)
    with pytest.raises(ValueError, match="negative input"):
        raise_from_status(low, status)
    status[:] = (1, 10_000)
    with pytest.raises(RuntimeError, match="cannot identify"):
        raise_from_status(low, status)
    with pytest.raises(TypeError, match="int64 array"):
        raise_from_status(low, np.zeros(2))


def test_expand_args_maps_arrays_to_data_and_shapes():
    A = np.arange(6.0).reshape(2, 3)
    s = np.ones(2)
    low = lower(scale_rows_into, [A, s, A.copy()])
    dA = np.zeros_like(A)
    ex = expand_args(low, [A, s, A.copy()], [dA, None, None])
    assert len(ex.params) == low.n_params
    assert ex.params[1:3] == (2, 3)
    assert ex.params[-1] is ex.status
    assert ex.owner == (0, 0, 0, 1, 1, 2, 2, 2, None)
    assert np.shares_memory(ex.params[0], A) and ex.params[0].shape == (6,)
    assert np.shares_memory(ex.shadows[0], dA)
    assert ex.shadows[1:] == (None,) * 8


@pytest.mark.parametrize(
    ("values", "shadows", "error", "match"),
    [
        ([np.ones(3)], None, TypeError, "lowered for 2 arguments"),
        ([np.ones(3), np.ones(3, np.float32)], None, TypeError, "lowered for a array1d of float64"),
        ([np.ones(3), np.ones(3)], [np.ones(4), None], ValueError, "shape"),
        ([np.ones(3), np.ones(3)], [np.ones(3, np.float32), None], ValueError, "dtype"),
        ([np.ones(3), np.ones(6)[::2]], None, TypeError, "C-contiguous"),
    ],
)
def test_expand_args_validates(values, shadows, error, match):
    low = lower(dot, [np.ones(3), np.ones(3)])
    with pytest.raises(error, match=match):
        expand_args(low, values, shadows)


def _list_use(x):
    items = [x, 2.0 * x]
    return items[0] + items[1]


def _dynamic_raise(x):
    if x < 0:
        raise ValueError("bad value", x)
    return x


def _blas_dot(a, b):
    return np.dot(a, b)


def _array_return(a):
    return a * 2.0


def _generator(x):
    yield x


def _identity(x):
    return x


def _gamma(x):
    return math.gamma(x)


def _bool_return(x):
    return x > 0


def _untyped(x):
    return x.no_such_attribute


@pytest.mark.parametrize(
    ("f", "args", "error", "match"),
    [
        (_list_use, [1.0], NotImplementedError, "NRT_MemInfo_new_varsize"),
        (_dynamic_raise, [1.0], NotImplementedError, "NRT_Allocate.*dynamic exception"),
        (_blas_dot, [np.ones(3), np.ones(3)], NotImplementedError, "numba_xxdot"),
        (_gamma, [1.5], NotImplementedError, "numba_gamma"),
        (_array_return, [np.ones(3)], NotImplementedError, "array returns are not supported"),
        (_bool_return, [1.0], NotImplementedError, "returns bool"),
        (_generator, [1.0], NotImplementedError, "generator"),
        (_identity, [(1.0, 2.0)], NotImplementedError, "tuple"),
        (_identity, [1j], NotImplementedError, "complex"),
        (_identity, [np.ones(3, np.complex128)], NotImplementedError, "complex"),
        (_identity, [np.ones((2, 2, 2))], NotImplementedError, "3-D"),
        (_identity, [np.zeros(2, dtype=[("a", "f8")])], NotImplementedError, "record"),
        (_identity, [np.ones((4, 4))[:, ::2]], TypeError, "C-contiguous"),
        (_identity, [np.asfortranarray(np.ones((3, 2)))], TypeError, "C-contiguous"),
        (_identity, [True], TypeError, "bool"),
        (_identity, ["text"], TypeError, "str"),
        (_identity, [np.ones(3, np.int8)], TypeError, "int8"),
        (_untyped, [1.0], TypeError, "nopython mode"),
        (numba.njit(parallel=True)(_identity), [1.0], NotImplementedError, "parallel"),
        (numba.jit(forceobj=True)(_identity), [1.0], NotImplementedError, "object-mode"),
        (3, [1.0], TypeError, "or a Python function"),
    ],
)
def test_unsupported_constructs_are_refused(f, args, error, match):
    import enzyme_py as ez

    with pytest.raises(error, match=match):
        ez.autodiff(ez.Reverse, f, ez.Active, *args)


def test_llvm_major_without_artifact_names_the_pairing(monkeypatch, tmp_path):
    from enzyme_artifacts import manifest as manifest_mod
    from enzyme_artifacts.errors import UnsupportedPlatformError
    from enzyme_py._numba._versions import check_artifact_for_major, llvmlite_major

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


def test_map_call_keeps_annotations_on_data_and_folds_back():
    from enzyme_py import Active, Const, Duplicated
    from enzyme_py._numba import map_call

    A = np.arange(6.0).reshape(2, 3)
    dA = np.zeros_like(A)
    low = lower(scale_rows_into, [A, np.ones(2), A.copy()])
    out = A.copy()
    call = map_call(low, [Duplicated(A, dA), Const(np.ones(2)), Duplicated(out, np.ones_like(out))])
    assert len(call.args) == low.n_params
    assert isinstance(call.args[0], Duplicated) and call.args[0].val.shape == (6,)
    assert np.shares_memory(call.args[0].dval, dA)
    assert call.args[1:3] == (2, 3)
    assert isinstance(call.args[3], Const)
    assert isinstance(call.args[-1], Const) and call.args[-1].val is call.status
    assert call.first_param == (0, 3, 5)
    assert call.fold([None] * low.n_params) == (None, None, None)
    scalar = lower(count, [1.0, 3])
    call = map_call(scalar, [Active(2.0), 3])
    assert call.args[:2] == (call.args[0], 3) and isinstance(call.args[0], Active)
    assert call.fold([4.0, None, None]) == (4.0, None)


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda ez, a: [ez.Active(a), a], TypeError, "not Active"),
        (lambda ez, a: [ez.Duplicated(a, np.zeros(4)), a], ValueError, "shadow of argument 0"),
        (lambda ez, a: [ez.Duplicated(a, a.astype(np.float32)), a], ValueError, "dtype"),
        (lambda ez, a: [a], TypeError, "takes 2 argument"),
        (lambda ez, a: [ez.Const(a.astype(np.float32)), a], TypeError, "lowered for a array1d of float64"),
    ],
)
def test_map_call_validates(make, error, match):
    import enzyme_py as ez
    from enzyme_py._numba import map_call

    a = np.ones(3)
    low = lower(dot, [a, a])
    with pytest.raises(error, match=match):
        map_call(low, make(ez, a))
