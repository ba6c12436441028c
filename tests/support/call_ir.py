"""The LLVM IR the call-layer tests share (``test_fast_path``, ``test_native_calls``):
scalar functions of one and two doubles, a float, an ``i8`` argument, a sum of squares
and an elementwise square into an output array."""

IR = """
declare double @llvm.sin.f64(double)
declare double @llvm.exp.f64(double)
declare float @llvm.sin.f32(float)

define double @p1(double %x) {
  %s = call double @llvm.sin.f64(double %x)
  %m = fmul double %s, %x
  %e = call double @llvm.exp.f64(double %x)
  %r = fadd double %m, %e
  ret double %r
}

define double @two(double %x, double %y) {
  %xy = fmul double %x, %y
  %s = call double @llvm.sin.f64(double %x)
  %r = fadd double %xy, %s
  ret double %r
}

define float @f32(float %x) {
  %s = call float @llvm.sin.f32(float %x)
  %r = fmul float %s, %x
  ret float %r
}

define double @addi(double %x, i8 %k) {
  %kf = sitofp i8 %k to double
  %m = fmul double %x, %kf
  %r = fmul double %m, %x
  ret double %r
}

define double @sumsq(double* %x, i64 %n) {
entry:
  br label %loop
loop:
  %i = phi i64 [0, %entry], [%i1, %loop]
  %acc = phi double [0.0, %entry], [%acc1, %loop]
  %p = getelementptr double, double* %x, i64 %i
  %v = load double, double* %p
  %vv = fmul double %v, %v
  %acc1 = fadd double %acc, %vv
  %i1 = add i64 %i, 1
  %c = icmp slt i64 %i1, %n
  br i1 %c, label %loop, label %done
done:
  ret double %acc1
}

define void @twice(double* %x, double* %y, i64 %n) {
entry:
  br label %loop
loop:
  %i = phi i64 [0, %entry], [%i1, %loop]
  %px = getelementptr double, double* %x, i64 %i
  %py = getelementptr double, double* %y, i64 %i
  %v = load double, double* %px
  %w = fmul double %v, %v
  store double %w, double* %py
  %i1 = add i64 %i, 1
  %c = icmp slt i64 %i1, %n
  br i1 %c, label %loop, label %done
done:
  ret void
}
"""
