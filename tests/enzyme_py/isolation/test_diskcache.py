"""The disk cache: miss, hit (also in a fresh process), corrupted entries, concurrent
writers, the size bound, the switch-off variable and ``python -m enzyme_py cache``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import enzyme_py as ez
from enzyme_py import diskcache
from enzyme_py._compile import diskcache as _diskcache
from enzyme_py._compile import memcache as _cache

from .conftest import IR_ARRAY, IR_SCALAR, last_json, run_python, scaled_ir


def _entries(folder: Path) -> list[Path]:
    return sorted(folder.glob("v2/*/*.ezc"))


def _forget(module: Any) -> None:
    module.clear_cache()
    _cache.clear()


def test_miss_then_hit(cache_dir: Path, scalar_module: Any) -> None:
    f = scalar_module.function("g")
    (dx, dy), = ez.autodiff(ez.Reverse, f, ez.Active, ez.Active(2.0), ez.Active(3.0))
    assert diskcache.stats()["misses"] == 1 and diskcache.stats()["stores"] == 1
    assert len(_entries(cache_dir)) == 1
    _forget(scalar_module)
    (dx2, dy2), = ez.autodiff(ez.Reverse, f, ez.Active, ez.Active(2.0), ez.Active(3.0))
    assert diskcache.stats()["hits"] == 1
    assert (dx2, dy2) == (dx, dy) == pytest.approx((3.0 + np.cos(2.0), 2.0))
    # another mode, another activity: other keys
    ez.autodiff(ez.Reverse, f, ez.Active, ez.Active(2.0), 3.0)
    ez.autodiff(ez.Forward, f, ez.Duplicated, ez.Duplicated(2.0, 1.0), 3.0)
    assert len(_entries(cache_dir)) == 3
    assert diskcache.stats()["misses"] == 3


def test_key_covers_options(cache_dir: Path, scalar_module: Any) -> None:
    f = scalar_module.function("sq")
    ez.autodiff(ez.Reverse, f, ez.Active, ez.Active(2.0))
    old = ez.config.set_options(pipeline="default<O1>")
    try:
        assert ez.autodiff(ez.Reverse, f, ez.Active, ez.Active(2.0)) == ((4.0,),)
    finally:
        ez.config.set_options(**vars(old))
    assert len(_entries(cache_dir)) == 2
    # isolation does not change the code: same key
    _forget(scalar_module)
    with ez.isolated():
        assert ez.autodiff(ez.Reverse, f, ez.Active, ez.Active(2.0)) == ((4.0,),)
    assert len(_entries(cache_dir)) == 2
    assert diskcache.stats()["hits"] == 1


def test_corrupted_entry_is_detected_and_recompiled(cache_dir: Path, scalar_module: Any) -> None:
    f = scalar_module.function("g")
    expected = ez.autodiff(ez.Reverse, f, ez.Active, ez.Active(0.5), ez.Active(1.5))
    (entry,) = _entries(cache_dir)
    data = bytearray(entry.read_bytes())
    data[-20] ^= 0xFF  # flip bits in the object code
    entry.write_bytes(bytes(data))
    _forget(scalar_module)
    got = ez.autodiff(ez.Reverse, f, ez.Active, ez.Active(0.5), ez.Active(1.5))
    assert got == expected
    st = diskcache.stats()
    assert st["corrupt"] == 1 and st["hits"] == 0 and st["stores"] == 2
    assert _diskcache._decode(entry.read_bytes(), entry.stem, scalar_module_plan(scalar_module)) is not None


def scalar_module_plan(module: Any) -> Any:
    from enzyme_py._call import request

    args = (ez.Active(0.5), ez.Active(1.5))
    return request.build(module.function("g"), request.AUTODIFF, ez.Reverse, ez.Active, args).plan


def test_an_entry_with_another_entrys_bytes_is_not_a_hit(cache_dir: Path) -> None:
    """The x*x entry's file copied over the x*x*x one: dropped and recompiled, never a
    wrong derivative (the entry holds its key)."""
    square = ez.Module.from_ir("define double @f(double %x) {\n  %y = fmul double %x, %x\n  ret double %y\n}\n")
    cube = ez.Module.from_ir(
        "define double @f(double %x) {\n  %y = fmul double %x, %x\n  %z = fmul double %y, %x\n  ret double %z\n}\n"
    )
    assert ez.autodiff(ez.Reverse, square.function("f"), ez.Active, ez.Active(3.0)) == ((6.0,),)
    (sq_entry,) = _entries(cache_dir)
    assert ez.autodiff(ez.Reverse, cube.function("f"), ez.Active, ez.Active(3.0)) == ((27.0,),)
    (cube_entry,) = [e for e in _entries(cache_dir) if e != sq_entry]
    sq_entry.write_bytes(cube_entry.read_bytes())  # the x*x entry now holds x*x*x's code
    _forget(square)
    assert ez.autodiff(ez.Reverse, square.function("f"), ez.Active, ez.Active(3.0)) == ((6.0,),)
    assert diskcache.stats()["corrupt"] == 1
    square.close()
    cube.close()


def test_truncated_and_foreign_files(cache_dir: Path, scalar_module: Any) -> None:
    f = scalar_module.function("sq")
    ez.autodiff(ez.Reverse, f, ez.Active, ez.Active(1.0))
    (entry,) = _entries(cache_dir)
    for junk in (b"", b"EZPYC2\n\0short", b"not a cache entry at all" * 10):
        entry.parent.mkdir(parents=True, exist_ok=True)
        entry.write_bytes(junk)
        _forget(scalar_module)
        assert ez.autodiff(ez.Reverse, f, ez.Active, ez.Active(1.0)) == ((2.0,),)
    assert diskcache.stats()["corrupt"] == 3


def test_disabled(cache_dir: Path, monkeypatch: pytest.MonkeyPatch, scalar_module: Any) -> None:
    monkeypatch.setenv("ENZYME_PY_DISK_CACHE", "0")
    ez.autodiff(ez.Reverse, scalar_module.function("sq"), ez.Active, ez.Active(1.0))
    assert not cache_dir.exists()
    assert diskcache.stats() == {k: 0 for k in diskcache.stats()}


def test_size_bound_evicts_least_recently_used(
    cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mods = [ez.Module.from_ir(scaled_ir(k), name=f"k{k}") for k in range(8)]
    try:
        ez.autodiff(ez.Reverse, mods[0].function("f"), ez.Active, ez.Active(1.0))
        (first,) = _entries(cache_dir)
        size = first.stat().st_size
        # room for about 4 entries
        monkeypatch.setenv("ENZYME_PY_CACHE_MAX_BYTES", str(int(size * 4.5)))
        for k, m in enumerate(mods[1:], start=1):
            (d,), = ez.autodiff(ez.Reverse, m.function("f"), ez.Active, ez.Active(1.0))
            assert d == 2.0 * k
            if k == 5:  # touch entry 0: it becomes recently used
                _forget(mods[0])
                ez.autodiff(ez.Reverse, mods[0].function("f"), ez.Active, ez.Active(1.0))
        entries = _entries(cache_dir)
        total = sum(p.stat().st_size for p in entries)
        assert total <= size * 4.5
        assert diskcache.stats()["evicted"] >= 3
        assert first in entries  # kept: used recently
        info = diskcache.DiskCache().info()
        assert info.entries == len(entries) and info.total_bytes == total
        # the oldest went first: 1 is gone, 7 (newest) and 0 (touched) are there
        monkeypatch.setenv("ENZYME_PY_CACHE_MAX_BYTES", "1G")
        for k, hit in ((7, True), (0, True), (1, False)):
            _forget(mods[k])
            before = diskcache.stats()["hits"]
            ez.autodiff(ez.Reverse, mods[k].function("f"), ez.Active, ez.Active(1.0))
            assert (diskcache.stats()["hits"] == before + 1) is hit, k
    finally:
        for m in mods:
            m.close()


def test_max_bytes_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    for raw, want in (("1000", 1000), ("64K", 65536), ("2M", 2 << 20), ("1GiB", 1 << 30)):
        monkeypatch.setenv("ENZYME_PY_CACHE_MAX_BYTES", raw)
        assert diskcache.max_bytes() == want
    monkeypatch.setenv("ENZYME_PY_CACHE_MAX_BYTES", "lots")
    with pytest.raises(ValueError, match="ENZYME_PY_CACHE_MAX_BYTES"):
        diskcache.max_bytes()


_CHILD = """
import json, sys, time
import numpy as np
import enzyme_py as ez
from enzyme_py import diskcache
ir_scalar, ir_array = sys.argv[1], sys.argv[2]
m = ez.Module.from_ir(ir_scalar)
a = ez.Module.from_ir(ir_array)
x = np.arange(1.0, 6.0)
t = time.perf_counter()
(d,), = ez.autodiff(ez.Reverse, m.function("sq"), ez.Active, ez.Active(3.0))
first_ms = (time.perf_counter() - t) * 1e3
g, _ = ez.gradient(a.function("ssq"), x, ez.Const(5))
fwd = ez.autodiff(ez.Forward, m.function("g"), ez.Duplicated, ez.Duplicated(1.0, 1.0), 2.0)
print(json.dumps({"d": d, "g": g.tolist(), "fwd": fwd[0], "stats": diskcache.stats(),
                  "first_ms": first_ms}))
"""


def _child(cache_dir: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _CHILD, IR_SCALAR, IR_ARRAY],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**__import__("os").environ, "ENZYME_PY_CACHE_DIR": str(cache_dir)},
    )


def test_two_processes_fill_the_cache_at_once_then_a_third_hits(cache_dir: Path) -> None:
    procs = [_child(cache_dir), _child(cache_dir)]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=240)
        assert p.returncode == 0, err[-3000:]
        outs.append(json.loads(out.strip().splitlines()[-1]))
    for o in outs:
        assert o["d"] == 6.0
        assert o["g"] == [2.0, 4.0, 6.0, 8.0, 10.0]
        assert o["fwd"] == pytest.approx(2.0 + np.cos(1.0))
    entries = _entries(cache_dir)
    assert len(entries) == 3
    assert not list(cache_dir.glob("v1/*/.tmp-*"))  # no leftovers of the atomic writes
    third = _child(cache_dir)
    out, err = third.communicate(timeout=240)
    assert third.returncode == 0, err[-3000:]
    o = json.loads(out.strip().splitlines()[-1])
    assert o["stats"]["hits"] == 3 and o["stats"]["misses"] == 0 and o["stats"]["corrupt"] == 0
    assert o["g"] == [2.0, 4.0, 6.0, 8.0, 10.0]


def test_cli_info_and_clear(cache_dir: Path, scalar_module: Any) -> None:
    ez.autodiff(ez.Reverse, scalar_module.function("sq"), ez.Active, ez.Active(1.0))
    ez.autodiff(ez.Forward, scalar_module.function("sq"), ez.Duplicated, ez.Duplicated(1.0, 1.0))
    env = {"ENZYME_PY_CACHE_DIR": str(cache_dir)}
    info = last_json(run_python("from enzyme_py.__main__ import main; main(['cache', 'info', '--json'])", env))
    assert info["entries"] == 2 and info["path"] == str(cache_dir) and info["enabled"] is True
    assert info["total_bytes"] == sum(p.stat().st_size for p in _entries(cache_dir))
    proc = run_python("import runpy, sys; sys.argv = ['x', 'cache', 'info']; runpy.run_module('enzyme_py', run_name='__main__')", env)
    assert "entries:  2" in proc.stdout
    cleared = subprocess.run(
        [sys.executable, "-m", "enzyme_py", "cache", "clear", "--json"],
        capture_output=True, text=True, env={**__import__("os").environ, **env}, timeout=120, check=True,
    )
    assert json.loads(cleared.stdout)["removed"] == 2
    assert _entries(cache_dir) == []
    again = subprocess.run(
        [sys.executable, "-m", "enzyme_py", "cache", "clear"],
        capture_output=True, text=True, env={**__import__("os").environ, **env}, timeout=120, check=True,
    )
    assert "removed 0 entries" in again.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "enzyme_py", "cache", "info"],
        capture_output=True, text=True, timeout=120, check=False,
        env={**__import__("os").environ, **env, "ENZYME_PY_CACHE_MAX_BYTES": "huge"},
    )
    assert bad.returncode == 2 and "ENZYME_PY_CACHE_MAX_BYTES" in bad.stderr
