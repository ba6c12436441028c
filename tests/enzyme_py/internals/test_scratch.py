"""Scratch memory (:mod:`enzyme_py._native.scratch`): compiled code keeps the large blocks
it frees for its next call.  The helper is checked directly (reuse, zeroing, limits,
threads), then through derivatives with large temporaries, compared with analytic values
and central finite differences, with the option on and off."""

from __future__ import annotations

import ctypes
import threading

import numpy as np
import pytest

import enzyme_py as ez
from enzyme_py import config
from enzyme_py._native import jit, scratch
from tests.support.fd import central_difference

pytestmark = pytest.mark.skipif(not scratch.supported(), reason="no malloc_usable_size here")

_MALLOC = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_uint64)
_CALLOC = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint64)
_FREE = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


@pytest.fixture()
def helpers():
    scratch.ensure_scratch()
    scratch.release()
    yield (
        _MALLOC(jit.lookup("enzpy_scratch_malloc")),
        _CALLOC(jit.lookup("enzpy_scratch_calloc")),
        _FREE(jit.lookup("enzpy_scratch_free")),
    )
    scratch.release()
    assert scratch.held_bytes() == 0


def test_a_freed_block_is_reused(helpers):
    malloc, _, free = helpers
    n = 300_000
    p = malloc(n)
    assert p
    ctypes.memset(p, 7, n)
    free(p)
    assert scratch.held_bytes() >= n
    q = malloc(n - 1000)  # n - 1000 .. 2 (n - 1000) usable bytes: the same block
    assert q == p
    assert scratch.held_bytes() == 0
    free(q)


def test_calloc_zeroes_a_reused_block(helpers):
    malloc, calloc, free = helpers
    n = 200_000
    p = malloc(n)
    ctypes.memset(p, 0xAB, n)
    free(p)
    q = calloc(n // 8, 8)
    assert q == p
    assert not any(ctypes.string_at(q, n))
    free(q)


def test_small_huge_and_ill_fitting_blocks(helpers):
    malloc, calloc, free = helpers
    small = malloc(1000)
    free(small)
    assert scratch.held_bytes() == 0  # below MIN_BLOCK: freed
    huge = malloc(scratch.MAX_BLOCK + 4096)
    free(huge)
    assert scratch.held_bytes() == 0  # above MAX_BLOCK: freed
    big = malloc(1_000_000)
    free(big)
    held = scratch.held_bytes()
    assert held >= 1_000_000
    p = malloc(100_000)  # the held block is more than twice as large: not handed out
    assert p != big
    assert scratch.held_bytes() == held
    free(p)
    assert not calloc(1 << 62, 1 << 4)  # overflowing count: calloc's own failure, no block
    free(None)  # free(NULL) does nothing


def test_slots_and_total_are_bounded(helpers):
    malloc, _, free = helpers
    blocks = [malloc(20_000) for _ in range(scratch.SLOTS + 4)]
    for b in blocks:
        free(b)
    assert 0 < scratch.held_bytes() <= scratch.SLOTS * 2 * 20_000
    scratch.release()
    size = scratch.MAX_BLOCK - 8192
    blocks = [malloc(size) for _ in range(3)]
    for b in blocks:
        free(b)
    assert scratch.held_bytes() <= scratch.MAX_HELD


def test_threads_share_the_slots(helpers):
    malloc, calloc, free = helpers
    errors = []

    def work(seed: int) -> None:
        rng = np.random.default_rng(seed)
        for _ in range(300):
            n = int(rng.integers(16_384, 400_000))
            p = calloc(n, 1) if rng.integers(2) else malloc(n)
            if not p:
                errors.append("allocation failed")
                return
            ctypes.memset(p, seed & 0xFF, n)  # a block handed to two threads would be clobbered
            if ctypes.string_at(p, n) != bytes([seed & 0xFF]) * n:
                errors.append("block shared between threads")
            free(p)

    threads = [threading.Thread(target=work, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def _loss(w, x):
    h = np.tanh(x @ w)
    return float(np.sum(h * h))


def _analytic(w, x):
    h = np.tanh(x @ w)
    return x.T @ (2 * h * (1 - h * h))


def test_derivative_with_large_temporaries_uses_scratch():
    rng = np.random.default_rng(3)
    w = rng.normal(0, 0.3, (16, 40))
    x = rng.normal(0, 1, (600, 16))  # temporaries of 600 x 40 doubles (192 kB)
    f = ez.jit(_loss)
    scratch.release()
    grads = [f.grad(w, ez.Const(x))[0].copy() for _ in range(4)]
    assert scratch.held_bytes() > 0
    for g in grads[1:]:
        assert np.array_equal(g, grads[0])
    np.testing.assert_allclose(grads[0], _analytic(w, x), rtol=1e-12, atol=1e-12)
    fd = central_difference(lambda v: _loss(v, x), w)
    np.testing.assert_allclose(grads[0], fd, rtol=1e-6, atol=1e-6)


_C_SOURCE = """
#include <stdlib.h>
double f(const double *x, long n) {
    double *t = malloc(n * sizeof(double));
    double *u = calloc(n, sizeof(double));
    for (long i = 0; i < n; i++) { t[i] = x[i] * x[i]; u[i] += t[i] * x[i]; }
    double s = 0;
    for (long i = 0; i < n; i++) s += u[i] + t[i];
    free(t);
    free(u);
    return s;
}
"""


def _c_gradient(name: str) -> tuple[np.ndarray, bool]:
    m = ez.Module.from_c(_C_SOURCE, name=name)
    f = m.function("f")
    x = np.linspace(-1.0, 1.0, 20_000)
    g = ez.gradient(f, x, ez.Const(x.size))[0]
    (plan,) = m.program.plans()
    return g, m.program.code(plan).compiled.scratch


def test_c_code_on_and_off():
    x = np.linspace(-1.0, 1.0, 20_000)
    expected = 3 * x * x + 2 * x
    g_on, used = _c_gradient("scratch_on")
    assert used
    old = config.set_options(scratch_memory=False)
    try:
        g_off, used_off = _c_gradient("scratch_off")  # a new module: compiled with the option off
    finally:
        config.set_options(**vars(old))
    assert not used_off
    np.testing.assert_allclose(g_on, expected, rtol=1e-14, atol=1e-14)
    assert np.array_equal(g_on, g_off)
    xs = np.linspace(-1.0, 1.0, 7)
    fd = central_difference(lambda v: float(np.sum(v**3 + v**2)), xs)
    np.testing.assert_allclose(3 * xs * xs + 2 * xs, fd, rtol=1e-8, atol=1e-8)


_OWN_MALLOC = """
define i8* @malloc(i64 %n) {
  ret i8* null
}
define double @g(double %x) {
  %p = call i8* @malloc(i64 8)
  %r = fmul double %x, %x
  ret double %r
}
"""


def test_a_module_defining_malloc_is_left_alone():
    m = ez.Module.from_ir(_OWN_MALLOC, name="own_malloc")
    (d,) = ez.autodiff(ez.Reverse, m.function("g"), ez.Active, ez.Active(3.0))
    assert d == (6.0,)
    (plan,) = m.program.plans()
    assert not m.program.code(plan).compiled.scratch


def test_environment_variable(monkeypatch):
    monkeypatch.setenv("ENZYME_PY_SCRATCH_MEMORY", "0")
    assert config.Options.from_environment().scratch_memory is False
    monkeypatch.setenv("ENZYME_PY_SCRATCH_MEMORY", "1")
    assert config.Options.from_environment().scratch_memory is True
    monkeypatch.setenv("ENZYME_PY_SCRATCH_MEMORY", "maybe")
    with pytest.raises(ValueError, match="ENZYME_PY_SCRATCH_MEMORY"):
        config.Options.from_environment()
