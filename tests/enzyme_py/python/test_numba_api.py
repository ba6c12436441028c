"""The public API on Python functions: the four modes, ``gradient``, ``@enzyme_py.jit``
(primal, ``.grad``, ``.autodiff``, caching, pickling), errors surfacing unchanged, and the
LLVM-major checks (in child processes, where another major is asked for)."""

from __future__ import annotations

import math
import os
import pickle
import subprocess
import sys
import textwrap
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numba
import numpy as np
import pytest

import enzyme_py as ez
from enzyme_py.errors import LibraryError


def f1(x):
    return x * x


def sum_of_squares(a):
    s = 0.0
    for i in range(a.shape[0]):
        s += a[i] * a[i]
    return s


def weighted(a, w, n):
    s = 0.0
    for i in range(n):
        s += w * math.sin(a[i])
    return s


def square_into(x, out):
    for i in range(x.shape[0]):
        out[i] = x[i] * x[i]


def count_positive(x):
    n = 0
    for i in range(x.shape[0]):
        if x[i] > 0:
            n += 1
    return n


@ez.jit
def jitted_loss(w, x):
    s = 0.0
    for i in range(x.shape[0]):
        s += math.tanh(w[i] * x[i]) ** 2
    return s


@ez.jit(boundscheck=True)
def jitted_at(a, i):
    return a[i] * a[i]


def _grad_in_worker(x):
    return jitted_loss.grad(x, np.ones_like(x))[0]


def test_headline_all_four_modes():
    assert ez.autodiff(f1, ez.Active(1.0))[0][0] == 2.0
    assert ez.autodiff(ez.Reverse, f1, ez.Active, ez.Active(3.0)) == ((6.0,),)
    assert ez.autodiff(ez.ReverseWithPrimal, f1, ez.Active, ez.Active(3.0)) == ((6.0,), 9.0)
    assert ez.autodiff(ez.Forward, f1, ez.Duplicated, ez.Duplicated(3.0, 1.0)) == (6.0,)
    assert ez.autodiff(ez.ForwardWithPrimal, f1, ez.Duplicated, ez.Duplicated(3.0, 1.0)) == (6.0, 9.0)
    assert ez.autodiff(ez.Forward, f1, ez.DuplicatedNoNeed, ez.Duplicated(3.0, 0.5)) == (3.0,)
    assert ez.autodiff(ez.Forward, f1, ez.Const, ez.Duplicated(3.0, 1.0)) == ()
    assert ez.autodiff(ez.ForwardWithPrimal, f1, ez.Const, 3.0) == (9.0,)
    assert ez.autodiff(ez.Reverse, f1, ez.Const, ez.Active(3.0)) == ((0.0,),)


def test_dispatcher_float32_and_int_scalars():
    d = numba.njit(f1)
    assert ez.autodiff(d, ez.Active(-2.5)) == ((-5.0,),)
    ((g,),) = ez.autodiff(f1, ez.Active(np.float32(1.5)))
    assert g == 3.0 and isinstance(g, float)
    assert ez.autodiff(ez.ForwardWithPrimal, f1, ez.Const, 7) == (49,)


def test_gradient_annotates_bare_values():
    a = np.array([0.3, -1.2, 2.0])
    ga, gw, gn = ez.gradient(weighted, a, 1.5, 2)
    np.testing.assert_allclose(ga, [1.5 * math.cos(0.3), 1.5 * math.cos(-1.2), 0.0], rtol=1e-14)
    assert gw == pytest.approx(math.sin(0.3) + math.sin(-1.2), rel=1e-14)
    assert gn is None
    (ga2, gw2, gn2), primal = ez.gradient(ez.ReverseWithPrimal, weighted, a, ez.Const(1.5), 2)
    np.testing.assert_array_equal(ga2, ga)
    assert gw2 is None and gn2 is None
    assert primal == pytest.approx(weighted(a, 1.5, 2), rel=1e-14)
    assert ez.gradient(sum_of_squares, ez.Const(a)) == (None,)


def test_arrays_in_all_modes_agree():
    rng = np.random.default_rng(0)
    a = rng.normal(size=5)
    t = rng.normal(size=5)
    (g,) = ez.gradient(sum_of_squares, a)
    np.testing.assert_allclose(g, 2 * a, rtol=1e-14)
    da = np.zeros_like(a)
    (none,), primal = ez.autodiff(ez.ReverseWithPrimal, sum_of_squares, ez.Active, ez.Duplicated(a, da))
    assert none is None and primal == pytest.approx(np.sum(a * a), rel=1e-14)
    np.testing.assert_allclose(da, 2 * a, rtol=1e-14)
    (dret, value) = ez.autodiff(ez.ForwardWithPrimal, sum_of_squares, ez.Duplicated, ez.Duplicated(a, t))
    assert dret == pytest.approx(g @ t, rel=1e-12)
    assert value == pytest.approx(primal, rel=1e-15)


def test_output_array_function_in_reverse_and_forward():
    x = np.array([1.0, -2.0, 3.0])
    out = np.zeros(3)
    seed = np.array([1.0, 0.5, -1.0])
    dx = np.zeros(3)
    # A function returning None: the return activity is taken as Const, the output's shadow seeds.
    assert ez.autodiff(square_into, ez.Duplicated(x, dx), ez.Duplicated(out, seed.copy())) == ((None, None),)
    np.testing.assert_allclose(dx, 2 * x * seed, rtol=1e-15)
    np.testing.assert_array_equal(out, x * x)
    dout = np.zeros(3)
    assert ez.autodiff(ez.Forward, square_into, ez.Duplicated, ez.Duplicated(x, np.ones(3)), ez.Duplicated(out, dout)) == ()
    np.testing.assert_allclose(dout, 2 * x, rtol=1e-15)


def test_activity_errors_name_the_python_argument():
    a = np.ones(3)
    with pytest.raises(TypeError, match=r"argument 0 of sum_of_squares .*not Active"):
        ez.autodiff(sum_of_squares, ez.Active(a))
    with pytest.raises(TypeError, match=r"argument 0 of f1 .*forward mode"):
        ez.autodiff(ez.Forward, f1, ez.Duplicated, ez.Active(1.0))
    with pytest.raises(TypeError, match=r"argument 0 of f1 .*Active in reverse mode"):
        ez.autodiff(ez.Reverse, f1, ez.Active, ez.Duplicated(1.0, 1.0))
    with pytest.raises(TypeError, match=r"argument 2 of weighted .*int64.*only float64/float32"):
        ez.autodiff(weighted, a, 1.0, ez.Active(2))
    with pytest.raises(TypeError, match="count_positive returns an integer"):
        ez.autodiff(count_positive, ez.Duplicated(a, np.zeros(3)))
    with pytest.raises(TypeError, match="square_into returns None"):
        ez.gradient(square_into, a, np.zeros(3))
    with pytest.raises(TypeError, match="instance such as Active"):
        ez.autodiff(ez.Reverse, f1, ez.Active, ez.Active)
    with pytest.raises(TypeError, match="return activity must be one of the classes"):
        ez.autodiff(ez.Reverse, square_into, ez.Active(1.0), a, np.zeros(3))
    with pytest.raises(TypeError, match="takes 1 positional argument but 2 were given|argument"):
        ez.autodiff(f1, ez.Active(1.0), ez.Active(2.0))
    with pytest.raises(ValueError, match=r"argument 0 of sum_of_squares .*shadow shape"):
        ez.autodiff(sum_of_squares, ez.Duplicated(a, np.zeros(4)))


def test_jit_primal_grad_autodiff():
    w = np.array([0.5, -1.0, 2.0])
    x = np.array([1.0, 0.25, -0.5])
    expected = np.sum(np.tanh(w * x) ** 2)
    assert jitted_loss(w, x) == pytest.approx(expected, rel=1e-14)
    assert isinstance(jitted_loss.dispatcher, numba.core.dispatcher.Dispatcher)
    assert jitted_loss.dispatcher.signatures  # the primal ran through numba itself
    gw, gx = jitted_loss.grad(w, x)
    s = 2 * np.tanh(w * x) * (1 - np.tanh(w * x) ** 2)
    np.testing.assert_allclose(gw, s * x, rtol=1e-12)
    np.testing.assert_allclose(gx, s * w, rtol=1e-12)
    assert jitted_loss.autodiff(ez.ForwardWithPrimal, ez.Duplicated, ez.Duplicated(w, x.copy()), x) == (
        pytest.approx(np.dot(s * x, x), rel=1e-12),
        pytest.approx(expected, rel=1e-14),
    )
    assert ez.gradient(jitted_loss, w, ez.Const(x))[0] == pytest.approx(s * x, rel=1e-12)
    assert jitted_loss.__name__ == "jitted_loss" and "jitted_loss" in repr(jitted_loss)
    with pytest.raises(TypeError, match="is a mode"):
        jitted_loss.autodiff(ez.Active, w, x)


def test_jit_options_and_forms():
    a = np.arange(1.0, 5.0)
    assert jitted_at.grad(a, 2)[0] == pytest.approx(2 * a * (np.arange(4) == 2))
    with pytest.raises(IndexError):
        jitted_at.grad(a, 9)
    with pytest.raises(IndexError):
        jitted_at(a, 9)
    plain = ez.jit(f1)
    assert plain(3.0) == 9.0 and plain.grad(3.0) == (6.0,)
    assert ez.jit(plain) is plain
    kept = ez.jit(numba.njit(boundscheck=True)(jitted_at.py_func))
    assert kept.dispatcher.targetoptions["boundscheck"] is True
    with pytest.raises(NotImplementedError, match="parallel"):
        ez.jit(parallel=True)(f1)
    with pytest.raises(NotImplementedError, match="parallel or object-mode"):
        ez.jit(numba.njit(parallel=True)(f1))
    with pytest.raises(TypeError, match="Python function"):
        ez.jit(3)


def test_jit_caches_per_signature(monkeypatch):
    import enzyme_py.python_functions as pf

    @ez.jit
    def cubic(x, y):
        return x * x * x + y

    lowerings = []
    real = pf.numba_lower
    monkeypatch.setattr(pf, "numba_lower", lambda *a: lowerings.append(a) or real(*a))
    for _ in range(3):
        assert cubic.grad(2.0, 1.0) == (12.0, 1.0)
    assert cubic.autodiff(ez.Forward, ez.Duplicated, ez.Duplicated(2.0, 1.0), 1.0) == (12.0,)
    assert len(lowerings) == 1 and cubic.signatures == ((("scalar", "float64", 0), ("scalar", "float64", 0)),)
    program = ez.lower(cubic, 2.0, 1.0).program
    compiled = len(program.plans())
    for _ in range(5):
        cubic.grad(-1.0, 3.0)
    assert len(program.plans()) == compiled  # the derivative was not compiled again
    assert cubic.grad(np.float32(2.0), 1.0) == (12.0, 1.0)
    assert len(lowerings) == 2 and len(cubic.signatures) == 2


def test_jit_pickles_and_runs_in_spawn_workers(monkeypatch):
    w = np.array([0.1, 0.2])
    jitted_loss.grad(w, np.ones(2))
    clone = pickle.loads(pickle.dumps(jitted_loss))
    assert clone.signatures == () and jitted_loss.signatures  # rebuilt on first use
    np.testing.assert_array_equal(clone.grad(w, np.ones(2))[0], jitted_loss.grad(w, np.ones(2))[0])
    # The worker imports this test module by name, as it would import a user's module.
    here = str(Path(__file__).parent)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, (here, os.environ.get("PYTHONPATH")))))
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        got = pool.submit(_grad_in_worker, w).result(timeout=240)
    np.testing.assert_allclose(got, 2 * np.tanh(w) * (1 - np.tanh(w) ** 2), rtol=1e-12)


def _child(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, **env}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], check=False, capture_output=True, text=True,
        timeout=240, env=full,
    )


def test_llvm_version_other_than_llvmlites_is_refused():
    out = _child(
        """
        import enzyme_py as ez
        def f(x):
            return x * x
        try:
            ez.autodiff(f, ez.Active(1.0))
        except ez.LibraryError as e:
            print("REFUSED", e)
        """,
        ENZYME_PY_LLVM_VERSION="16",
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("REFUSED"), out.stdout
    for part in ("LLVM 15", "LLVM 16", "ENZYME_PY_LLVM_VERSION", "numba 0.61", "llvmlite 0.44", "f, to be compiled by"):
        assert part in out.stdout


def test_libraries_of_another_major_already_loaded_are_refused():
    out = _child(
        """
        import enzyme_py as ez, enzyme_py._numba as bridge
        ez.Module.from_ir("define double @g(double %x) {\\n  ret double %x\\n}\\n").function("g")(1.0)
        bridge.llvm_major = lambda: 16      # as if llvmlite embedded LLVM 16
        def f(x):
            return x * x
        try:
            ez.autodiff(f, ez.Active(1.0))
        except ez.LibraryError as e:
            print("REFUSED", e)
        """
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("REFUSED"), out.stdout
    assert "needs LLVM 16" in out.stdout and "already loaded" in out.stdout and "LLVM 15" in out.stdout


def test_no_artifact_for_llvmlites_major_surfaces_as_library_error(monkeypatch, tmp_path):
    import enzyme_py._numba as bridge
    from enzyme_artifacts import manifest as manifest_mod

    monkeypatch.delenv("ENZYME_ARTIFACTS_LIBRARY", raising=False)
    moved = tmp_path / "Artifacts.toml"
    moved.write_text(manifest_mod.bundled_manifest_path().read_text().replace("llvm_version = 15", "llvm_version = 16"))
    monkeypatch.setenv("ENZYME_ARTIFACTS_MANIFEST", str(moved))
    manifest_mod.clear_cache()
    bridge.llvm_major.cache_clear()
    try:
        def g(x):
            return 3.0 * x

        with pytest.raises(LibraryError, match=r"LLVM 15.*numba 0\.61.*LLVM 16"):
            ez.autodiff(g, ez.Active(1.0))
    finally:
        monkeypatch.delenv("ENZYME_ARTIFACTS_MANIFEST")
        manifest_mod.clear_cache()
        bridge.llvm_major.cache_clear()
    assert ez.autodiff(g, ez.Active(1.0)) == ((3.0,),)
