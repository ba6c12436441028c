"""300 compile/free cycles: resident memory stays flat and no handle leaks.

Runs in a fresh interpreter so that the measurement sees only this workload. Each cycle builds a
module with distinct content (so nothing is served from a cache), compiles one thing from it
(in turn: a reverse derivative, a forward derivative, the primal), checks the numbers, and drops
every reference. Half of the cycles free explicitly (``with Module...``), half by garbage
collection alone.
"""

from __future__ import annotations

import re

CYCLES = 300
WARMUP = 30
#: Allowed growth of resident memory over CYCLES cycles after warm-up. A leaked LLVM context,
#: module or JIT library per cycle costs well over 100 kB, i.e. > 30 MB over 300 cycles.
MAX_GROWTH_MB = 12.0

LIFECYCLE = r'''
import gc
import os

IR = """
declare double @llvm.sin.f64(double)

define double @f(double %x, ptr %a, i64 %n) {{
entry:
  %s = call double @llvm.sin.f64(double %x)
  %t = fmul double %s, {k}.0
  %c0 = icmp sgt i64 %n, 0
  br i1 %c0, label %loop, label %exit
loop:
  %i = phi i64 [ 0, %entry ], [ %i1, %loop ]
  %acc = phi double [ %t, %entry ], [ %acc1, %loop ]
  %p = getelementptr inbounds double, ptr %a, i64 %i
  %v = load double, ptr %p, align 8
  %vx = fmul double %v, %x
  %acc1 = fadd double %acc, %vx
  %i1 = add nuw nsw i64 %i, 1
  %done = icmp eq i64 %i1, %n
  br i1 %done, label %exit, label %loop
exit:
  %r = phi double [ %t, %entry ], [ %acc1, %loop ]
  ret double %r
}}
"""

def rss_kb():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024

def fds():
    return len(os.listdir("/proc/self/fd"))

a = np.array([1.0, -2.0, 0.5])

def use(f, k, x):
    """One compilation per cycle, rotating over reverse, forward and the primal."""
    import math
    exact_x = k * math.cos(x) + a.sum()
    if k % 3 == 0:
        da = make_zero(a)
        ((dx, _, _),) = autodiff(Reverse, f, Active, Active(x), Duplicated(a, da), 3)
        assert abs(dx - exact_x) < 1e-12 * (1 + abs(exact_x)), (k, dx, exact_x)
        assert np.allclose(da, x, rtol=1e-15), (k, da)
    elif k % 3 == 1:
        (t,) = autodiff(Forward, f, Duplicated, Duplicated(x, 1.0), a, 3)
        assert abs(t - exact_x) < 1e-12 * (1 + abs(exact_x)), (k, t, exact_x)
    else:
        p = f(x, a, 3)
        assert abs(p - (k * math.sin(x) + x * a.sum())) < 1e-12 * (1 + abs(p)), (k, p)

def cycle(k, explicit):
    x = 0.3 + (k % 7) * 0.1
    if explicit:
        with Module.from_ir(IR.format(k=k), name=f"cycle{k}") as m:
            use(m.function("f"), k, x)
    else:
        f = Module.from_ir(IR.format(k=k), name=f"cycle{k}").function("f")
        use(f, k, x)
        del f

for k in range(1, __WARMUP__ + 1):
    cycle(k, (k // 3) % 2 == 0)
gc.collect()
rss0, fd0 = rss_kb(), fds()
for k in range(__WARMUP__ + 1, __WARMUP__ + __CYCLES__ + 1):
    cycle(k, (k // 3) % 2 == 0)
gc.collect()
rss1, fd1 = rss_kb(), fds()
assert gc.garbage == [], gc.garbage
print(f"RSS0 {rss0} RSS1 {rss1} FD0 {fd0} FD1 {fd1}")
'''


def test_compile_free_cycles_keep_memory_flat(run_child) -> None:  # type: ignore[no-untyped-def]
    script = LIFECYCLE.replace("__WARMUP__", str(WARMUP)).replace("__CYCLES__", str(CYCLES))
    out = run_child(script, timeout=240)
    m = re.search(r"RSS0 (\d+) RSS1 (\d+) FD0 (\d+) FD1 (\d+)", out)
    assert m is not None, out
    rss0, rss1, fd0, fd1 = (int(v) for v in m.groups())
    growth_mb = (rss1 - rss0) / 1024
    print(f"RSS {rss0 / 1024:.1f} MB -> {rss1 / 1024:.1f} MB over {CYCLES} cycles "
          f"({growth_mb:+.1f} MB); fds {fd0} -> {fd1}")
    assert growth_mb < MAX_GROWTH_MB, out
    assert fd1 <= fd0, out
