"""BLAS calls differentiated by Enzyme's BLAS rules and run by the optimised BLAS: CBLAS
calls in C, ``np.dot``/``@``/``np.vdot`` in Python functions (numba lowers them to its BLAS
helpers, which the compile stage maps onto CBLAS).  Every gradient is checked against
central finite differences of the same compiled primal (the losses are quadratic in each
input, so a central difference is exact up to rounding, also in float32)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import threadpoolctl

import enzyme_py as ez
from enzyme_py._native import blas
from tests.support.fd import central_difference

pytestmark = pytest.mark.filterwarnings("ignore:.*is faster on contiguous arrays")

ROW, COL = 101, 102
NO, TR = 111, 112

_DECLS = """
void cblas_{t}gemm(int, int, int, int, int, int, {T}, const {T}*, int, const {T}*, int, {T}, {T}*, int);
void cblas_{t}gemv(int, int, int, int, {T}, const {T}*, int, const {T}*, int, {T}, {T}*, int);
{T} cblas_{t}dot(int, const {T}*, int, const {T}*, int);
void cblas_{t}axpy(int, {T}, const {T}*, int, {T}*, int);
void cblas_{t}scal(int, {T}, {T}*, int);
"""


def _types(dtype: type) -> dict[str, str]:
    return {"t": "d", "T": "double"} if dtype is np.float64 else {"t": "s", "T": "float"}


def _check(grad: np.ndarray, fd: np.ndarray, dtype: type) -> None:
    tol = 1e-7 if dtype is np.float64 else 2e-3
    scale = max(float(np.max(np.abs(fd))), 1.0)
    np.testing.assert_allclose(grad, fd, rtol=0, atol=tol * scale)


def _gemm_source(dtype: type, layout: int, ta: int, tb: int, m: int, n: int, k: int,
                 lda: int, ldb: int, ldc: int, beta: float) -> str:
    """``loss(A, B, C) = sum_ij w_ij C_ij^2`` after ``C = 1.5 op(A) op(B) + beta C``."""
    t = _types(dtype)
    idx = "i * {ldc} + j" if layout == ROW else "i + j * {ldc}"
    return (_DECLS + """
{T} loss(const {T} *A, const {T} *B, {T} *C) {{
    cblas_{t}gemm({layout}, {ta}, {tb}, {m}, {n}, {k}, 1.5, A, {lda}, B, {ldb}, {beta}, C, {ldc});
    {T} s = 0;
    for (int i = 0; i < {m}; i++)
        for (int j = 0; j < {n}; j++) {{
            {T} c = C[IDX];
            s += (1 + 0.25 * (i + 2 * j)) * c * c;
        }}
    return s;
}}
""").replace("IDX", idx).format(layout=layout, ta=ta, tb=tb, m=m, n=n, k=k, lda=lda, ldb=ldb,
                                 ldc=ldc, beta=beta, **t)


def _operand(rows: int, cols: int, layout: int, ld: int, rng: np.random.Generator,
             dtype: type) -> np.ndarray:
    """A buffer holding a rows x cols matrix in ``layout`` with leading dimension ``ld``."""
    size = (rows - 1) * ld + cols if layout == ROW else (cols - 1) * ld + rows
    return rng.uniform(-1, 1, size).astype(dtype)


CASES = [
    (layout, ta, tb, pad)
    for layout, ta, tb in itertools.product((ROW, COL), (NO, TR), (NO, TR))
    for pad in (0, 2)
]


@pytest.mark.parametrize(("layout", "ta", "tb", "pad"), CASES)
def test_c_gemm_matches_finite_differences(layout, ta, tb, pad):
    m, n, k = 3, 4, 5
    rng = np.random.default_rng(layout + ta + tb + pad)
    a_rows, a_cols = (m, k) if ta == NO else (k, m)
    b_rows, b_cols = (k, n) if tb == NO else (n, k)
    lead = (lambda r, c: c) if layout == ROW else (lambda r, c: r)
    lda, ldb, ldc = lead(a_rows, a_cols) + pad, lead(b_rows, b_cols) + pad, lead(m, n) + pad
    beta = 0.5 if pad else 0.0
    src = _gemm_source(np.float64, layout, ta, tb, m, n, k, lda, ldb, ldc, beta)
    loss = ez.Module.from_c(src, name="gemm").function("loss")
    A = _operand(a_rows, a_cols, layout, lda, rng, np.float64)
    B = _operand(b_rows, b_cols, layout, ldb, rng, np.float64)
    C = _operand(m, n, layout, ldc, rng, np.float64)

    def primal(a, b, c):
        return loss(a.copy(), b.copy(), c.copy())

    dA, dB, dC = np.zeros_like(A), np.zeros_like(B), np.zeros_like(C)
    ez.autodiff(ez.Reverse, loss, ez.Active, ez.Duplicated(A.copy(), dA), ez.Duplicated(B.copy(), dB),
                ez.Duplicated(C.copy(), dC))
    _check(dA, central_difference(lambda a: primal(a, B, C), A), np.float64)
    _check(dB, central_difference(lambda b: primal(A, b, C), B), np.float64)
    _check(dC, central_difference(lambda c: primal(A, B, c), C), np.float64)


def test_c_gemm_primal_is_numpys_product():
    src = _gemm_source(np.float64, ROW, NO, TR, 3, 4, 5, 5, 5, 4, 0.0) + """
void product(const double *A, const double *B, double *C) {
    cblas_dgemm(101, 111, 112, 3, 4, 5, 1.0, A, 5, B, 5, 0.0, C, 4);
}
"""
    product = ez.Module.from_c(src, name="product").function("product")
    rng = np.random.default_rng(0)
    A, B, C = rng.normal(size=(3, 5)), rng.normal(size=(4, 5)), np.zeros((3, 4))
    product(A, B, C)
    np.testing.assert_allclose(C, A @ B.T, rtol=1e-14)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("trans", [NO, TR])
def test_c_gemv_dot_axpy_scal_with_strides(dtype, trans):
    """gemv with a padded matrix and strided vectors, dot/axpy/scal with increments of 2."""
    t = _types(dtype)
    m, n, lda = 4, 3, 5  # row-major 4 x 3 matrix, rows padded to 5
    xlen, ylen = (n, m) if trans == NO else (m, n)
    src = (_DECLS + """
{T} loss({T} *A, {T} *x, {T} *y, {T} *z) {{
    cblas_{t}gemv(101, {trans}, {m}, {n}, 0.75, A, {lda}, x, 2, 0.5, y, 2);
    cblas_{t}axpy({ylen}, 1.25, y, 2, z, 1);
    cblas_{t}scal({ylen}, -2.0, z, 1);
    {T} d = cblas_{t}dot({ylen}, y, 2, z, 1);
    return d * d + cblas_{t}dot({xlen}, x, 2, x, 2);
}}
""").format(trans=trans, m=m, n=n, lda=lda, xlen=xlen, ylen=ylen, **t)
    loss = ez.Module.from_c(src, name="gemv").function("loss")
    rng = np.random.default_rng(trans)
    A = rng.uniform(-1, 1, (m - 1) * lda + n).astype(dtype)
    x = rng.uniform(-1, 1, 2 * xlen).astype(dtype)
    y = rng.uniform(-1, 1, 2 * ylen).astype(dtype)
    z = rng.uniform(-1, 1, ylen).astype(dtype)
    vals = [A, x, y, z]

    def primal(i, v):
        args = [a.copy() for a in vals]
        args[i] = v.astype(dtype)
        return float(loss(*args))

    shadows = [np.zeros_like(a) for a in vals]
    ez.autodiff(ez.Reverse, loss, ez.Active, *(ez.Duplicated(a.copy(), s) for a, s in zip(vals, shadows)))
    eps = 1e-6 if dtype is np.float64 else 1e-2
    for i, (a, s) in enumerate(zip(vals, shadows)):
        fd = central_difference(lambda v, i=i: primal(i, v), a.astype(np.float64), eps=eps)
        _check(s, fd, dtype)


def test_c_sgemm_float32():
    src = _gemm_source(np.float32, COL, TR, NO, 2, 3, 4, 4, 4, 2, 0.0)
    loss = ez.Module.from_c(src, name="sgemm").function("loss")
    rng = np.random.default_rng(3)
    A = _operand(4, 2, COL, 4, rng, np.float32)
    B = _operand(4, 3, COL, 4, rng, np.float32)
    C = np.zeros(6, np.float32)
    dA, dB = np.zeros_like(A), np.zeros_like(B)
    ez.autodiff(ez.Reverse, loss, ez.Active, ez.Duplicated(A.copy(), dA), ez.Duplicated(B.copy(), dB),
                ez.Duplicated(C.copy(), np.zeros_like(C)))
    fd = central_difference(lambda a: float(loss(a.astype(np.float32), B.copy(), C.copy())),
                            A.astype(np.float64), eps=1e-2)
    _check(dA, fd, np.float32)


# --------------------------------------------------------------------------- Python


def _mm(A, B):
    return np.sum((A @ B) ** 2)


def _mm_transposed(A, B):
    return np.sum((A.T @ B.T) * (A.T @ B.T))


def _mv(A, x):
    y = np.dot(A, x)
    return np.dot(y, y)


def _vm(A, x):
    y = x @ A.T
    return np.sum(y * y * y)


def _views(A, B):
    # non-contiguous operands: numba copies them to contiguous ones, then calls BLAS
    return np.sum((A[:, ::2] @ B[::2, :]) ** 2)


def _vv(A, x):
    return np.dot(x, x) * np.vdot(A[0], x) + np.dot(A[:, 0], A[:, 1])


def _outer(A, x):
    return np.sum(np.outer(x, x) * A)


def _mlp(W, x):
    h = np.tanh(np.dot(W, np.tanh(W.T @ x)))
    return np.sum(h * h)


PY_CASES = [
    (_mm, (4, 5), (5, 3)),
    (_mm_transposed, (5, 4), (3, 5)),
    (_mv, (4, 5), (5,)),
    (_vm, (4, 5), (5,)),
    (_views, (4, 6), (6, 3)),
    (_vv, (5, 5), (5,)),
    (_outer, (4, 4), (4,)),
    (_mlp, (5, 5), (5,)),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("f", "shape_a", "shape_b"), PY_CASES, ids=[c[0].__name__ for c in PY_CASES])
def test_python_matrix_products_match_finite_differences(f, shape_a, shape_b, dtype):
    rng = np.random.default_rng(len(shape_a) + len(shape_b))
    A = rng.uniform(-1, 1, shape_a).astype(dtype)
    B = rng.uniform(-1, 1, shape_b).astype(dtype)
    if f is _outer and dtype is np.float32:
        # Enzyme reports the parent pointer numba stores into the float32 view's descriptor
        # as a mixed activity: an error naming it, never a number
        with pytest.raises(ez.EnzymeError, match="Mismatched activity"):
            ez.gradient(f, A, B)
        return
    gA, gB = ez.gradient(f, A, B)
    assert gA.dtype == dtype and gB.dtype == dtype
    primal = ez.lower(f, A, B)  # the compiled primal, in the same precision
    eps = 1e-6 if dtype is np.float64 else 1e-2
    fdA = central_difference(lambda a: float(primal(a.astype(dtype), B)), A.astype(np.float64), eps=eps)
    fdB = central_difference(lambda b: float(primal(A, b.astype(dtype))), B.astype(np.float64), eps=eps)
    tol = 1e-7 if dtype is np.float64 else 5e-3 if f is not _mlp else 2e-2
    for g, fd in ((gA, fdA), (gB, fdB)):
        np.testing.assert_allclose(g, fd, rtol=0, atol=tol * max(float(np.max(np.abs(fd))), 1.0))


def test_python_product_primal_runs_in_the_blas():
    rng = np.random.default_rng(5)
    A, B = rng.normal(size=(30, 20)), rng.normal(size=(20, 10))
    assert np.isclose(ez.lower(_mm, A, B)(A, B), np.sum((A @ B) ** 2), rtol=1e-13)
    assert blas.loaded() is not None and blas.loaded().address("cblas_dgemm")


def _broadcast(a, b):
    return np.sum(np.tanh(a * b + a) ** 2)


@pytest.mark.parametrize(("sa", "sb"), [((3, 4), (3, 4)), ((3, 1), (1, 4)), ((1, 4), (3, 4))])
def test_ufunc_loops_broadcast_and_differentiate(sa, sb):
    """The no-broadcast copy of numba's ufunc loops and the broadcast one both differentiate."""
    rng = np.random.default_rng(7)
    a, b = rng.uniform(-1, 1, sa), rng.uniform(-1, 1, sb)
    ga, gb = ez.gradient(_broadcast, a, b)
    primal = ez.lower(_broadcast, a, b)
    np.testing.assert_allclose(ga, central_difference(lambda v: primal(v, b), a), atol=1e-7)
    np.testing.assert_allclose(gb, central_difference(lambda v: primal(a, v), b), atol=1e-7)


# --------------------------------------------------------------------------- the library


def test_blas_names():
    assert blas.is_blas_name("cblas_dgemm") and blas.is_blas_name("sgemv_")
    assert not blas.is_blas_name("dgemm") and not blas.is_blas_name("cblas_dgemm_")
    assert not blas.is_blas_name("cblas_zgemm") and not blas.is_blas_name("exp")


def test_blas_environment_override(monkeypatch, tmp_path):
    found = blas.candidates()
    assert found, "SciPy is installed, so its OpenBLAS is a candidate"
    monkeypatch.setenv("ENZYME_PY_BLAS", str(found[-1][1]))
    assert blas.candidates()[0] == ("ENZYME_PY_BLAS", found[-1][1])
    bogus = tmp_path / "libnotblas.so"
    bogus.write_bytes(b"not a library")
    with pytest.raises(ez.errors.LibraryError, match="could not be loaded"):
        blas._load("ENZYME_PY_BLAS", bogus)


def test_blas_threads_are_settable():
    old = blas.get_num_threads()
    try:
        blas.set_num_threads(1)
        assert blas.get_num_threads() == 1
    finally:
        blas.set_num_threads(old)
    with pytest.raises(ValueError):
        blas.set_num_threads(0)


def test_threadpoolctl_controls_the_blas_threads():
    lib = blas.library()
    infos = [i for i in threadpoolctl.threadpool_info() if i.get("filepath") and
             __import__("os").path.samefile(i["filepath"], lib.path)]
    assert infos, "threadpoolctl sees the BLAS enzyme_py calls"
    with threadpoolctl.threadpool_limits(1, user_api="blas"):
        assert blas.get_num_threads() == 1
