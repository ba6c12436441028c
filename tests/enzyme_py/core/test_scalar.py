"""Scalar functions in C, typed-pointer IR and opaque-pointer IR: every mode and activity.

Each derivative is compared with its analytic value and with a central finite difference of the
JIT-compiled primal. The ``dmod`` fixture is parametrised over the three source kinds.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from enzyme_py import (
    Active,
    Const,
    Duplicated,
    DuplicatedNoNeed,
    Forward,
    ForwardWithPrimal,
    Reverse,
    ReverseWithPrimal,
    autodiff,
    gradient,
)

from ._support import FAST, assert_close, fd_partial

finite = st.floats(-3.0, 3.0, allow_nan=False, allow_infinity=False)
positive = st.floats(0.2, 3.0, allow_nan=False, allow_infinity=False)

RTOL_FD = 1e-6
ATOL_FD = 1e-7


def _is_float(v: object) -> bool:
    return isinstance(v, float) and not isinstance(v, bool)


def test_square_exact_tuples(dmod) -> None:  # type: ignore[no-untyped-def]
    f = dmod.function("sq")
    assert f.name == "sq"
    assert f.signature == "double (double)"
    assert f(3.0) == 9.0
    assert autodiff(Reverse, f, Active, Active(3.0)) == ((6.0,),)
    assert autodiff(ReverseWithPrimal, f, Active, Active(3.0)) == ((6.0,), 9.0)
    assert autodiff(Forward, f, Duplicated, Duplicated(3.0, 1.0)) == (6.0,)
    assert autodiff(ForwardWithPrimal, f, Duplicated, Duplicated(3.0, 1.0)) == (6.0, 9.0)
    assert autodiff(f, Active(1.0)) == ((2.0,),)
    # The shape of the results: tuples of Python floats.
    res = autodiff(Reverse, f, Active, Active(3.0))
    assert type(res) is tuple and type(res[0]) is tuple and _is_float(res[0][0])
    fwd = autodiff(ForwardWithPrimal, f, Duplicated, Duplicated(3.0, 1.0))
    assert type(fwd) is tuple and all(_is_float(v) for v in fwd)


def test_square_other_activities(dmod) -> None:  # type: ignore[no-untyped-def]
    f = dmod.function("sq")
    # Tangent scales the forward result; DuplicatedNoNeed behaves like Duplicated.
    assert autodiff(Forward, f, Duplicated, Duplicated(3.0, 2.0)) == (12.0,)
    assert autodiff(Forward, f, Duplicated, DuplicatedNoNeed(3.0, 1.0)) == (6.0,)
    assert autodiff(Forward, f, DuplicatedNoNeed, Duplicated(3.0, 1.0)) == (6.0,)
    # Const return in forward mode: nothing, or only the primal.
    assert autodiff(Forward, f, Const, Duplicated(3.0, 1.0)) == ()
    assert autodiff(ForwardWithPrimal, f, Const, Duplicated(3.0, 1.0)) == (9.0,)
    # Constant argument: no derivative, None in its slot.
    assert autodiff(Reverse, f, Active, Const(3.0)) == ((None,),)
    assert autodiff(Reverse, f, Active, 3.0) == ((None,),)
    assert autodiff(ReverseWithPrimal, f, Active, 3.0) == ((None,), 9.0)
    assert autodiff(Forward, f, Duplicated, Const(3.0)) == (0.0,)
    assert autodiff(ForwardWithPrimal, f, Duplicated, 3.0) == (0.0, 9.0)
    # Const return in reverse mode seeds nothing.
    assert autodiff(Reverse, f, Const, Active(3.0)) == ((0.0,),)
    assert autodiff(ReverseWithPrimal, f, Const, Active(3.0)) == ((0.0,), 9.0)
    # gradient: bare float is Active, Const gives None.
    assert gradient(Reverse, f, 3.0) == (6.0,)
    assert gradient(f, -1.5) == (-3.0,)
    assert gradient(f, Const(2.0)) == (None,)


@FAST
@given(x=finite)
def test_sinexp_every_mode(dmod, x: float) -> None:  # type: ignore[no-untyped-def]
    f = dmod.function("sinexp")
    primal = math.sin(x) * x + math.exp(x)
    exact = math.cos(x) * x + math.sin(x) + math.exp(x)
    fd = fd_partial(f, [x], 0)

    assert_close(f(x), primal, rtol=1e-13)
    assert_close(exact, fd, rtol=RTOL_FD, atol=ATOL_FD)  # the oracle itself is right

    ((d,),) = autodiff(Reverse, f, Active, Active(x))
    assert_close(d, exact, rtol=1e-12, atol=1e-14)
    assert_close(d, fd, rtol=RTOL_FD, atol=ATOL_FD)

    (d2,), p2 = autodiff(ReverseWithPrimal, f, Active, Active(x))
    assert_close(d2, exact, rtol=1e-12, atol=1e-14)
    assert_close(p2, primal, rtol=1e-13)

    (t,) = autodiff(Forward, f, Duplicated, Duplicated(x, 1.0))
    assert_close(t, exact, rtol=1e-12, atol=1e-14)
    assert_close(t, fd, rtol=RTOL_FD, atol=ATOL_FD)

    t3, p3 = autodiff(ForwardWithPrimal, f, Duplicated, Duplicated(x, -0.5))
    assert_close(t3, -0.5 * exact, rtol=1e-12, atol=1e-14)
    assert_close(p3, primal, rtol=1e-13)

    (t4,) = autodiff(Forward, f, DuplicatedNoNeed, DuplicatedNoNeed(x, 2.0))
    assert_close(t4, 2.0 * exact, rtol=1e-12, atol=1e-14)

    (g,) = gradient(f, x)
    assert_close(g, exact, rtol=1e-12, atol=1e-14)


@FAST
@given(x=finite, y=finite, z=finite)
def test_prod3_partials(dmod, x: float, y: float, z: float) -> None:  # type: ignore[no-untyped-def]
    f = dmod.function("prod3")
    exact = (y * y * z**3, 2 * x * y * z**3, 3 * x * y * y * z * z)
    fds = [fd_partial(f, [x, y, z], i) for i in range(3)]
    scale = 1.0 + max(abs(v) for v in exact)

    (d,) = autodiff(Reverse, f, Active, Active(x), Active(y), Active(z))
    assert len(d) == 3
    assert_close(d, exact, rtol=1e-12, atol=1e-12)
    assert_close(d, fds, rtol=RTOL_FD, atol=ATOL_FD * scale)

    # Some arguments constant: None in their slots, the others unchanged.
    assert autodiff(Reverse, f, Active, Active(x), Const(y), z)[0][1:] == (None, None)
    (dx, dy, dz), p = autodiff(ReverseWithPrimal, f, Active, Const(x), Active(y), Const(z))
    assert dx is None and dz is None
    assert_close(dy, exact[1], rtol=1e-12, atol=1e-12)
    assert_close(p, x * y * y * z**3, rtol=1e-13, atol=1e-13)

    # Forward: the tangent is the directional derivative along (vx, vy, vz); Const means 0.
    v = (0.5, -1.0, 2.0)
    (t,) = autodiff(Forward, f, Duplicated, Duplicated(x, v[0]), Duplicated(y, v[1]),
                    Duplicated(z, v[2]))
    assert_close(t, sum(a * b for a, b in zip(exact, v, strict=True)), rtol=1e-12, atol=1e-12)
    (t2,) = autodiff(Forward, f, Duplicated, Duplicated(x, 1.0), y, Const(z))
    assert_close(t2, exact[0], rtol=1e-12, atol=1e-12)

    g = gradient(Reverse, f, x, Const(y), z)
    assert g[1] is None
    assert_close([g[0], g[2]], [exact[0], exact[2]], rtol=1e-12, atol=1e-12)


@FAST
@given(x=positive, y=st.floats(-2.0, 2.0))
def test_pow_partials(dmod, x: float, y: float) -> None:  # type: ignore[no-untyped-def]
    f = dmod.function("powxy")
    exact = (y * x ** (y - 1.0), x**y * math.log(x))
    fds = [fd_partial(f, [x, y], i) for i in range(2)]
    scale = 1.0 + max(abs(v) for v in exact)
    d, p = autodiff(ReverseWithPrimal, f, Active, Active(x), Active(y))
    assert_close(p, x**y, rtol=1e-13)
    assert_close(d, exact, rtol=1e-11, atol=1e-13)
    assert_close(d, fds, rtol=RTOL_FD, atol=ATOL_FD * scale)
    (tx,) = autodiff(Forward, f, Duplicated, Duplicated(x, 1.0), Const(y))
    (ty,) = autodiff(Forward, f, Duplicated, x, Duplicated(y, 1.0))
    assert_close([tx, ty], exact, rtol=1e-11, atol=1e-13)


@FAST
@given(a=finite, k=st.integers(-5, 5), b=finite, c=finite)
def test_mixed_with_integer_and_const(dmod, a: float, k: int, b: float, c: float) -> None:  # type: ignore[no-untyped-def]
    """double mix4(double a, long k, double b, double c) = a*b + k*sin(c) + c*c*a."""
    f = dmod.function("mix4")
    primal = a * b + k * math.sin(c) + c * c * a
    da, db, dc = b + c * c, a, k * math.cos(c) + 2 * c * a
    assert_close(f(a, k, b, c), primal, rtol=1e-13, atol=1e-13)

    # Bare integer and Const(b): None in both slots.
    (d,) = autodiff(Reverse, f, Active, Active(a), k, Const(b), Active(c))
    assert d[1] is None and d[2] is None
    assert_close([d[0], d[3]], [da, dc], rtol=1e-12, atol=1e-12)
    assert_close(d[0], fd_partial(lambda *v: f(v[0], k, v[1], v[2]), [a, b, c], 0),
                 rtol=RTOL_FD, atol=ATOL_FD * (1 + abs(da)))
    assert_close(d[3], fd_partial(lambda *v: f(v[0], k, v[1], v[2]), [a, b, c], 2),
                 rtol=RTOL_FD, atol=ATOL_FD * (1 + abs(dc)))

    d2, p = autodiff(ReverseWithPrimal, f, Active, Const(a), Const(k), Active(b), c)
    assert d2[0] is None and d2[1] is None and d2[3] is None
    assert_close(d2[2], db, rtol=1e-12, atol=1e-12)
    assert_close(p, primal, rtol=1e-13, atol=1e-13)

    (t,) = autodiff(Forward, f, Duplicated, Duplicated(a, 1.0), k, Duplicated(b, 2.0), c)
    assert_close(t, da + 2 * db, rtol=1e-12, atol=1e-12)

    g = gradient(f, a, Const(k), b, Const(c))
    assert g[1] is None and g[3] is None
    assert_close([g[0], g[2]], [da, db], rtol=1e-12, atol=1e-12)


@FAST
@given(a=finite, b=finite, c=finite, d=finite)
def test_four_active_scalars(dmod, a: float, b: float, c: float, d: float) -> None:  # type: ignore[no-untyped-def]
    """Four Active arguments: Enzyme returns a 4-field struct, which the C ABI returns by memory.

    A direct ctypes call would read garbage here (FACTS §4): all four must be right.
    """
    f = dmod.function("quad4")
    primal = a * b + c * d * d + math.sin(a * d) + b * c * c
    exact = (
        b + d * math.cos(a * d),
        a + c * c,
        d * d + 2 * b * c,
        2 * c * d + a * math.cos(a * d),
    )
    args = [a, b, c, d]
    fds = [fd_partial(f, args, i) for i in range(4)]

    res = autodiff(Reverse, f, Active, Active(a), Active(b), Active(c), Active(d))
    assert len(res) == 1 and len(res[0]) == 4
    assert all(_is_float(v) for v in res[0])
    assert_close(res[0], exact, rtol=1e-12, atol=1e-12)
    assert_close(res[0], fds, rtol=RTOL_FD, atol=ATOL_FD * 10)

    derivs, p = autodiff(ReverseWithPrimal, f, Active, Active(a), Active(b), Active(c), Active(d))
    assert_close(derivs, exact, rtol=1e-12, atol=1e-12)
    assert_close(p, primal, rtol=1e-13, atol=1e-13)

    # Three Active scalars (the smallest struct that the C ABI returns through memory).
    (three,) = autodiff(Reverse, f, Active, Active(a), Active(b), Const(c), Active(d))
    assert three[2] is None
    assert_close([three[0], three[1], three[3]], [exact[0], exact[1], exact[3]],
                 rtol=1e-12, atol=1e-12)

    assert_close(gradient(f, a, b, c, d), exact, rtol=1e-12, atol=1e-12)

    # Forward: one tangent per argument, returned with the primal.
    v = (1.0, -2.0, 0.25, 3.0)
    t, p2 = autodiff(ForwardWithPrimal, f, Duplicated,
                     *(Duplicated(x, dx) for x, dx in zip(args, v, strict=True)))
    assert_close(t, sum(e * w for e, w in zip(exact, v, strict=True)), rtol=1e-12, atol=1e-11)
    assert_close(p2, primal, rtol=1e-13, atol=1e-13)


def test_reverse_is_repeatable(dmod) -> None:  # type: ignore[no-untyped-def]
    """Scalar results carry no state from one call to the next."""
    f = dmod.function("quad4")
    first = autodiff(Reverse, f, Active, Active(0.3), Active(-1.2), Active(2.0), Active(0.7))
    for _ in range(5):
        assert autodiff(
            Reverse, f, Active, Active(0.3), Active(-1.2), Active(2.0), Active(0.7)
        ) == first


@pytest.mark.parametrize("scale", [2.5, -1.0])
def test_c_flags_reach_the_compiler(scale: float) -> None:
    from enzyme_py import Module

    src = "double scaled(double x) { return SCALE * x * x; }\n"
    f = Module.from_c(src, flags=[f"-DSCALE={scale}"], name="flags").function("scaled")
    assert f(2.0) == scale * 4.0
    assert autodiff(Reverse, f, Active, Active(2.0)) == ((scale * 4.0,),)
