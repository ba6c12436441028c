"""C and LLVM IR sources of the functions differentiated by the enzyme_py public-API tests.

Every function exists three times with the same name and meaning: in C (``C_DOUBLE``, compiled by
``Module.from_c``), in typed-pointer LLVM IR (``double*``) and in opaque-pointer LLVM IR (``ptr``);
``ir_double(typed=...)`` produces the last two from one template. The float32 functions live in
``C_FLOAT`` and ``ir_float(typed=...)``.

Analytic derivatives of each function are written next to the tests that use them.
"""

from __future__ import annotations

__all__ = ["C_DOUBLE", "C_FLOAT", "ir_double", "ir_float"]

C_DOUBLE = r"""
#include <math.h>

double sq(double x) { return x * x; }

double sinexp(double x) { return sin(x) * x + exp(x); }

double prod3(double x, double y, double z) { return x * y * y * z * z * z; }

double powxy(double x, double y) { return pow(x, y); }

double mix4(double a, long k, double b, double c) {
    return a * b + (double)k * sin(c) + c * c * a;
}

double quad4(double a, double b, double c, double d) {
    return a * b + c * d * d + sin(a * d) + b * c * c;
}

double sumsq(const double *x, long n) {
    double s = 0.0;
    for (long i = 0; i < n; i++) s += x[i] * x[i];
    return s;
}

double dot(const double *x, const double *y, long n) {
    double s = 0.0;
    for (long i = 0; i < n; i++) s += x[i] * y[i];
    return s;
}

double rosen(const double *x, long n) {
    double s = 0.0;
    for (long i = 0; i + 1 < n; i++) {
        double a = x[i + 1] - x[i] * x[i];
        double b = 1.0 - x[i];
        s += 100.0 * a * a + b * b;
    }
    return s;
}

/* Numerically stable: subtract the maximum first. */
double logsumexp(const double *x, long n) {
    double m = x[0];
    for (long i = 1; i < n; i++)
        if (x[i] > m) m = x[i];
    double s = 0.0;
    for (long i = 0; i < n; i++) s += exp(x[i] - m);
    return m + log(s);
}

/* In-place output: y[i] = x[i]^2 + sin(x[i]). */
void sqsin_into(const double *x, double *y, long n) {
    for (long i = 0; i < n; i++) y[i] = x[i] * x[i] + sin(x[i]);
}

/* A coupled map for the forward/reverse dot-product test:
   y[i] = x[i] * x[n-1-i] + sin(x[i]) * k. */
void mixmap(const double *x, double *y, long n, double k) {
    for (long i = 0; i < n; i++) y[i] = x[i] * x[n - 1 - i] + sin(x[i]) * k;
}
"""

_IR_DOUBLE = r"""
declare double @llvm.sin.f64(double)
declare double @llvm.exp.f64(double)
declare double @llvm.pow.f64(double, double)

define double @sq(double %x) {
entry:
  %r = fmul double %x, %x
  ret double %r
}

define double @sinexp(double %x) {
entry:
  %s = call double @llvm.sin.f64(double %x)
  %a = fmul double %s, %x
  %e = call double @llvm.exp.f64(double %x)
  %r = fadd double %a, %e
  ret double %r
}

define double @prod3(double %x, double %y, double %z) {
entry:
  %yy = fmul double %y, %y
  %zz = fmul double %z, %z
  %zzz = fmul double %zz, %z
  %a = fmul double %x, %yy
  %r = fmul double %a, %zzz
  ret double %r
}

define double @powxy(double %x, double %y) {
entry:
  %r = call double @llvm.pow.f64(double %x, double %y)
  ret double %r
}

define double @mix4(double %a, i64 %k, double %b, double %c) {
entry:
  %ab = fmul double %a, %b
  %kf = sitofp i64 %k to double
  %sc = call double @llvm.sin.f64(double %c)
  %ksc = fmul double %kf, %sc
  %cc = fmul double %c, %c
  %cca = fmul double %cc, %a
  %t = fadd double %ab, %ksc
  %r = fadd double %t, %cca
  ret double %r
}

define double @quad4(double %a, double %b, double %c, double %d) {
entry:
  %ab = fmul double %a, %b
  %dd = fmul double %d, %d
  %cdd = fmul double %c, %dd
  %ad = fmul double %a, %d
  %s = call double @llvm.sin.f64(double %ad)
  %cc = fmul double %c, %c
  %bcc = fmul double %b, %cc
  %t1 = fadd double %ab, %cdd
  %t2 = fadd double %t1, %s
  %r = fadd double %t2, %bcc
  ret double %r
}

define double @sumsq({P} %x, i64 %n) {
entry:
  %c0 = icmp sgt i64 %n, 0
  br i1 %c0, label %loop, label %exit
loop:
  %i = phi i64 [ 0, %entry ], [ %i1, %loop ]
  %acc = phi double [ 0.0, %entry ], [ %acc1, %loop ]
  %p = getelementptr inbounds double, {P} %x, i64 %i
  %v = load double, {P} %p, align 8
  %v2 = fmul double %v, %v
  %acc1 = fadd double %acc, %v2
  %i1 = add nuw nsw i64 %i, 1
  %done = icmp eq i64 %i1, %n
  br i1 %done, label %exit, label %loop
exit:
  %r = phi double [ 0.0, %entry ], [ %acc1, %loop ]
  ret double %r
}

define double @dot({P} %x, {P} %y, i64 %n) {
entry:
  %c0 = icmp sgt i64 %n, 0
  br i1 %c0, label %loop, label %exit
loop:
  %i = phi i64 [ 0, %entry ], [ %i1, %loop ]
  %acc = phi double [ 0.0, %entry ], [ %acc1, %loop ]
  %p = getelementptr inbounds double, {P} %x, i64 %i
  %a = load double, {P} %p, align 8
  %q = getelementptr inbounds double, {P} %y, i64 %i
  %b = load double, {P} %q, align 8
  %ab = fmul double %a, %b
  %acc1 = fadd double %acc, %ab
  %i1 = add nuw nsw i64 %i, 1
  %done = icmp eq i64 %i1, %n
  br i1 %done, label %exit, label %loop
exit:
  %r = phi double [ 0.0, %entry ], [ %acc1, %loop ]
  ret double %r
}

define double @rosen({P} %x, i64 %n) {
entry:
  %m = add i64 %n, -1
  %c0 = icmp sgt i64 %m, 0
  br i1 %c0, label %loop, label %exit
loop:
  %i = phi i64 [ 0, %entry ], [ %i1, %loop ]
  %acc = phi double [ 0.0, %entry ], [ %acc1, %loop ]
  %p = getelementptr inbounds double, {P} %x, i64 %i
  %xi = load double, {P} %p, align 8
  %i1 = add nuw nsw i64 %i, 1
  %q = getelementptr inbounds double, {P} %x, i64 %i1
  %xj = load double, {P} %q, align 8
  %xi2 = fmul double %xi, %xi
  %a = fsub double %xj, %xi2
  %a2 = fmul double %a, %a
  %t = fmul double %a2, 100.0
  %b = fsub double 1.0, %xi
  %b2 = fmul double %b, %b
  %s = fadd double %t, %b2
  %acc1 = fadd double %acc, %s
  %done = icmp eq i64 %i1, %m
  br i1 %done, label %exit, label %loop
exit:
  %r = phi double [ 0.0, %entry ], [ %acc1, %loop ]
  ret double %r
}

define void @sqsin_into({P} %x, {P} %y, i64 %n) {
entry:
  %c0 = icmp sgt i64 %n, 0
  br i1 %c0, label %loop, label %exit
loop:
  %i = phi i64 [ 0, %entry ], [ %i1, %loop ]
  %p = getelementptr inbounds double, {P} %x, i64 %i
  %xi = load double, {P} %p, align 8
  %xx = fmul double %xi, %xi
  %s = call double @llvm.sin.f64(double %xi)
  %v = fadd double %xx, %s
  %q = getelementptr inbounds double, {P} %y, i64 %i
  store double %v, {P} %q, align 8
  %i1 = add nuw nsw i64 %i, 1
  %done = icmp eq i64 %i1, %n
  br i1 %done, label %exit, label %loop
exit:
  ret void
}
"""

C_FLOAT = r"""
float cubef(float x) { return x * x * x + 2.0f * x; }

float prodf(float x, float y) { return x * x * y; }

float sumsqf(const float *x, long n) {
    float s = 0.0f;
    for (long i = 0; i < n; i++) s += x[i] * x[i];
    return s;
}

void scale_intof(const float *x, float *y, long n) {
    for (long i = 0; i < n; i++) y[i] = 3.0f * x[i] * x[i];
}
"""

_IR_FLOAT = r"""
define float @cubef(float %x) {
entry:
  %xx = fmul float %x, %x
  %xxx = fmul float %xx, %x
  %tx = fmul float %x, 2.0
  %r = fadd float %xxx, %tx
  ret float %r
}

define float @prodf(float %x, float %y) {
entry:
  %xx = fmul float %x, %x
  %r = fmul float %xx, %y
  ret float %r
}

define float @sumsqf({P} %x, i64 %n) {
entry:
  %c0 = icmp sgt i64 %n, 0
  br i1 %c0, label %loop, label %exit
loop:
  %i = phi i64 [ 0, %entry ], [ %i1, %loop ]
  %acc = phi float [ 0.0, %entry ], [ %acc1, %loop ]
  %p = getelementptr inbounds float, {P} %x, i64 %i
  %v = load float, {P} %p, align 4
  %v2 = fmul float %v, %v
  %acc1 = fadd float %acc, %v2
  %i1 = add nuw nsw i64 %i, 1
  %done = icmp eq i64 %i1, %n
  br i1 %done, label %exit, label %loop
exit:
  %r = phi float [ 0.0, %entry ], [ %acc1, %loop ]
  ret float %r
}

define void @scale_intof({P} %x, {P} %y, i64 %n) {
entry:
  %c0 = icmp sgt i64 %n, 0
  br i1 %c0, label %loop, label %exit
loop:
  %i = phi i64 [ 0, %entry ], [ %i1, %loop ]
  %p = getelementptr inbounds float, {P} %x, i64 %i
  %xi = load float, {P} %p, align 4
  %xx = fmul float %xi, %xi
  %v = fmul float %xx, 3.0
  %q = getelementptr inbounds float, {P} %y, i64 %i
  store float %v, {P} %q, align 4
  %i1 = add nuw nsw i64 %i, 1
  %done = icmp eq i64 %i1, %n
  br i1 %done, label %exit, label %loop
exit:
  ret void
}
"""


def ir_double(*, typed: bool) -> str:
    """The float64 functions as LLVM 15 IR, with ``double*`` pointers if *typed*, else ``ptr``."""
    return _IR_DOUBLE.replace("{P}", "double*" if typed else "ptr")


def ir_float(*, typed: bool) -> str:
    """The float32 functions as LLVM 15 IR, with ``float*`` pointers if *typed*, else ``ptr``."""
    return _IR_FLOAT.replace("{P}", "float*" if typed else "ptr")
