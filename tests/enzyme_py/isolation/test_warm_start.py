"""A fresh process with a warm disk cache: Python functions without numba's compiler, C
without clang, the native libraries without asking enzyme_artifacts again.

Every case runs real child processes: a first one fills a private cache folder, later ones
must give bit-identical results without running the step the cache covers (numba is never
imported for a plain function, and numba's compiler is made to fail for an
``enzyme_py.jit`` one; clang is a wrapper that logs every run; ``enzyme_artifacts.resolve``
is made to fail; the Enzyme plugin is not even loaded).  Then each part of the key is changed
in turn (a global's value, a closure cell, the code, numba's version, the argument layout,
a header, the flags, the working folder of a relative include, a library file) and the
step must run again, with the new result.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from .conftest import run_python

FUNCS = '''
import math
import numpy as np

SCALE = {scale}


def p1(x):
    return math.sin(x) * x + math.exp(x) * SCALE


def make(k):
    def closure(x):
        return k * x * x
    return closure


CLOSED = make({k})


def rosen(x):
    s = 0.0
    for i in range(x.shape[0] - 1):
        a = x[i + 1] - x[i] * x[i]
        b = 1.0 - x[i]
        s += 100.0 * a * a + b * b
    return s


# numba freezes a global namedtuple; the key does not know such values: not cached
import collections

THING = collections.namedtuple("Thing", "factor")(2.0)


def uses_opaque(x):
    return x * THING.factor


def raises(x):
    if x > 10.0:
        raise ValueError("x is too large")
    return x * x
'''

#: A function calling a jitted helper (numba is imported by the module itself).
FUNCS_NJIT = '''
import numba

SCALE = {scale}


@numba.njit
def helper(x):
    return x * x * SCALE


def uses_helper(x):
    return helper(x) + 1.0
'''

CHILD = r'''
import json, os, sys, time
sys.path.insert(0, {folder!r})
if os.environ.get("FAIL_COMPILER") == "1":
    import numba.core.compiler

    def refuse(*a, **k):
        raise AssertionError("numba's compiler ran")

    numba.core.compiler.compile_extra = refuse
if os.environ.get("FAIL_RESOLVE") == "1":
    import enzyme_artifacts

    def refuse_resolve(*a, **k):
        raise AssertionError("enzyme_artifacts.resolve ran")

    enzyme_artifacts.resolve = refuse_resolve
import numpy as np
import enzyme_py as ez
from enzyme_py import diskcache
import importlib
module, name = sys.argv[1].split(":") if ":" in sys.argv[1] else ("funcs", sys.argv[1])
f = getattr(importlib.import_module(module), name)
if os.environ.get("JIT") == "1":
    f = ez.jit(f)
arg = np.linspace(-1.0, 1.5, 7) if name == "rosen" else 0.7
if os.environ.get("FLOAT32") == "1":
    arg = np.float32(arg) if name != "rosen" else arg.astype(np.float32)
t = time.perf_counter()
g = ez.gradient(f, arg)
ms = (time.perf_counter() - t) * 1e3
out = {{"grad": [np.asarray(v).tobytes().hex() for v in g], "ms": ms,
       "stats": {{k: v for k, v in diskcache.stats().items() if v}},
       "numba": "numba" in sys.modules,
       "enzyme_loaded": ez._native.library.loaded()._enzyme is not None}}
if name == "raises":
    try:
        ez.gradient(f, 20.0)
    except ValueError as e:
        out["raised"] = str(e)
print(json.dumps(out))
'''


def _write(folder: Path, scale: float = 2.5, k: float = 3.0) -> None:
    (folder / "funcs.py").write_text(FUNCS.format(scale=repr(scale), k=repr(k)))
    (folder / "funcs_njit.py").write_text(FUNCS_NJIT.format(scale=repr(scale)))
    pycache = folder / "__pycache__"
    if pycache.exists():
        for p in pycache.iterdir():
            p.unlink()


def _child(folder: Path, name: str, **env: str) -> Any:
    script = folder / "child.py"
    script.write_text(CHILD.format(folder=str(folder)))
    code = f"import runpy, sys; sys.argv = ['child', {name!r}]; runpy.run_path({str(script)!r})"
    return run_python(code, {"PYTHONDONTWRITEBYTECODE": "1", **env})


def _run(folder: Path, name: str, **env: str) -> Any:
    proc = _child(folder, name, **env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    d = tmp_path / "src"
    d.mkdir()
    _write(d)
    return d


def test_a_warm_start_runs_no_numba_and_gives_identical_gradients(folder: Path) -> None:
    for name in ("p1", "CLOSED", "rosen"):
        cold = _run(folder, name)
        assert cold["stats"].get("lowered_stores") == 1 and cold["numba"], name
        warm = _run(folder, name)
        assert warm["grad"] == cold["grad"], name
        assert warm["stats"].get("lowered_hits") == 1 and warm["stats"].get("hits") == 1, name
        assert not warm["numba"] and not warm["enzyme_loaded"], name
    # a function calling a jitted helper: its module imports numba; the compiler is not run
    cold = _run(folder, "funcs_njit:uses_helper")
    warm = _run(folder, "funcs_njit:uses_helper", FAIL_COMPILER="1")
    assert warm["grad"] == cold["grad"] and warm["stats"].get("lowered_hits") == 1
    # the enzyme_py.jit form: numba is imported (the decorator needs it), its compiler is not run
    jit_cold = _run(folder, "p1", JIT="1")
    jit_warm = _run(folder, "p1", JIT="1", FAIL_COMPILER="1")
    assert jit_warm["grad"] == jit_cold["grad"]
    assert jit_warm["stats"].get("lowered_hits") == 1


def test_the_function_s_exceptions_survive_the_cache(folder: Path) -> None:
    cold = _run(folder, "raises")
    warm = _run(folder, "raises")
    assert cold["raised"] == warm["raised"] == "x is too large"
    assert warm["grad"] == cold["grad"] and warm["stats"].get("lowered_hits") == 1


def test_a_changed_global_closure_or_code_is_lowered_again(folder: Path) -> None:
    first = {name: _run(folder, name) for name in ("p1", "funcs_njit:uses_helper", "CLOSED")}
    _write(folder, scale=4.0)  # SCALE changes: read by p1 directly, by uses_helper through helper
    for name in ("p1", "funcs_njit:uses_helper"):
        again = _run(folder, name)
        assert again["stats"].get("lowered_misses") == 1 and again["grad"] != first[name]["grad"], name
    again = _run(folder, "CLOSED")  # its closure did not change
    assert again["stats"].get("lowered_hits") == 1 and again["grad"] == first["CLOSED"]["grad"]
    _write(folder, scale=4.0, k=5.0)  # the closure cell changes
    again = _run(folder, "CLOSED")
    assert again["stats"].get("lowered_misses") == 1 and again["grad"] != first["CLOSED"]["grad"]
    src = (folder / "funcs.py").read_text().replace("return k * x * x", "return k * x * x * x")
    (folder / "funcs.py").write_text(src)  # the code changes
    again = _run(folder, "CLOSED")
    assert again["stats"].get("lowered_misses") == 1
    assert bytes.fromhex(again["grad"][0]) != bytes.fromhex(first["CLOSED"]["grad"][0])


def test_layout_and_numba_version_are_in_the_key(folder: Path, tmp_path: Path) -> None:
    _run(folder, "rosen")
    f32 = _run(folder, "rosen", FLOAT32="1")
    assert f32["stats"].get("lowered_misses") == 1
    assert _run(folder, "rosen", FLOAT32="1")["stats"].get("lowered_hits") == 1
    # numba "upgraded": another numba package (same code, other files) on the path first
    import numba

    fake_root = tmp_path / "site"
    fake_root.mkdir()
    (fake_root / "numba").symlink_to(Path(numba.__file__).parent, target_is_directory=True)
    other = _run(folder, "rosen", PYTHONPATH=os.pathsep.join([str(fake_root), os.environ.get("PYTHONPATH", "")]))
    assert other["stats"].get("lowered_misses") == 1


def test_values_that_cannot_be_identified_are_not_cached(folder: Path) -> None:
    first = _run(folder, "uses_opaque")
    assert "lowered_stores" not in first["stats"] and "lowered_misses" not in first["stats"]
    second = _run(folder, "uses_opaque")
    assert second["numba"] and second["grad"] == first["grad"]


def test_a_corrupt_lowering_is_recompiled(folder: Path, cache_dir: Path) -> None:
    cold = _run(folder, "p1")
    (entry,) = cache_dir.glob("v2/*/*.ezl")
    data = bytearray(entry.read_bytes())
    data[-30] ^= 0xFF
    entry.write_bytes(bytes(data))
    again = _run(folder, "p1")
    assert again["stats"].get("lowered_corrupt") == 1 and again["grad"] == cold["grad"]
    assert _run(folder, "p1")["stats"].get("lowered_hits") == 1


def test_the_native_choice_is_remembered(folder: Path, cache_dir: Path, tmp_path: Path) -> None:
    cold = _run(folder, "p1")
    assert list(cache_dir.glob("v2/*/*.ezn"))
    warm = _run(folder, "p1", FAIL_RESOLVE="1")  # enzyme_artifacts is not asked again
    assert warm["grad"] == cold["grad"]
    # another environment asks again
    other = _child(folder, "p1", FAIL_RESOLVE="1", ENZYME_ARTIFACTS_OFFLINE="1")
    assert other.returncode != 0 and "enzyme_artifacts.resolve ran" in other.stderr
    # a library that changed is not trusted: the plugin copied, remembered, then touched
    from enzyme_py._native.library import native

    plugin = tmp_path / "LLVMEnzyme-15.so"
    plugin.write_bytes(native().enzyme_path.read_bytes())
    env = {"ENZYME_ARTIFACTS_LIBRARY": str(plugin)}
    assert _run(folder, "p1", **env)["grad"] == cold["grad"]
    assert _run(folder, "p1", FAIL_RESOLVE="1", **env)["grad"] == cold["grad"]
    os.utime(plugin, ns=(plugin.stat().st_atime_ns, plugin.stat().st_mtime_ns + 10**9))
    touched = _child(folder, "p1", FAIL_RESOLVE="1", **env)
    assert touched.returncode != 0 and "enzyme_artifacts.resolve ran" in touched.stderr
    # the cache off: nothing is remembered
    off = run_python("import enzyme_py._native.library as L; L.native(); print('ok')",
                     {"ENZYME_PY_DISK_CACHE": "0", "ENZYME_PY_CACHE_DIR": str(cache_dir / "off")})
    assert off.returncode == 0 and not (cache_dir / "off").exists()


# --------------------------------------------------------------------------- C

C_SOURCE = '''
#include <math.h>
#include "scale.h"
double p1(double x) { return sin(x) * x + exp(x) * SCALE; }
'''

C_CHILD = r'''
import json, os, sys
import numpy as np
import enzyme_py as ez
from enzyme_py import diskcache
src = open(sys.argv[1]).read()
flags = json.loads(sys.argv[2])
m = ez.Module.from_c(src, flags=flags, name="p1")
(d,) = ez.gradient(m.function("p1"), 0.7)
print(json.dumps({"d": d.hex(), "stats": {k: v for k, v in diskcache.stats().items() if v}}))
'''


def _clang_wrapper(folder: Path) -> tuple[Path, Path]:
    """An ``ENZYME_PY_CLANG`` that logs each run, then runs the real clang."""
    from enzyme_py.module import find_clang

    log = folder / "clang.log"
    wrapper = folder / "clang-logging"
    wrapper.write_text(f'#!/bin/sh\necho run >> "{log}"\nexec "{find_clang(15)}" "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return wrapper, log


def _run_c(folder: Path, cwd: Path, flags: list[str], **env: str) -> Any:
    script = folder / "c_child.py"
    script.write_text(C_CHILD)
    proc = run_python(
        f"import runpy, sys; sys.argv = ['c', {str(folder / 'p1.c')!r}, {json.dumps(flags)!r}]; "
        f"import os; os.chdir({str(cwd)!r}); runpy.run_path({str(script)!r})",
        env,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _runs(log: Path) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


def test_from_c_reuses_clang_s_bitcode(tmp_path: Path) -> None:
    folder = tmp_path / "c"
    (folder / "inc").mkdir(parents=True)
    (folder / "p1.c").write_text(C_SOURCE)
    header = folder / "inc" / "scale.h"
    header.write_text("#define SCALE 2.0\n")
    wrapper, log = _clang_wrapper(folder)
    env = {"ENZYME_PY_CLANG": str(wrapper)}
    flags = ["-Iinc"]  # relative: found from the working folder
    cold = _run_c(folder, folder, flags, **env)
    assert _runs(log) == 1 and cold["stats"].get("bitcode_stores") == 1
    warm = _run_c(folder, folder, flags, **env)
    assert _runs(log) == 1 and warm["d"] == cold["d"] and warm["stats"].get("bitcode_hits") == 1
    # the header changes: clang again, another derivative
    header.write_text("#define SCALE 3.0\n")  # same size: seen by its content
    changed = _run_c(folder, folder, flags, **env)
    assert _runs(log) == 2 and changed["d"] != cold["d"]
    assert _run_c(folder, folder, flags, **env)["d"] == changed["d"] and _runs(log) == 2
    # other flags: another key
    _run_c(folder, folder, [*flags, "-DUNUSED=1"], **env)
    assert _runs(log) == 3
    # the same relative include from another working folder: not trusted, clang again
    other = tmp_path / "elsewhere"
    (other / "inc").mkdir(parents=True)
    (other / "inc" / "scale.h").write_text("#define SCALE 5.0\n")
    moved = _run_c(folder, other, flags, **env)
    assert _runs(log) == 4 and moved["d"] not in (cold["d"], changed["d"])


def test_a_new_clang_is_a_new_key(tmp_path: Path) -> None:
    folder = tmp_path / "c"
    (folder / "inc").mkdir(parents=True)
    (folder / "p1.c").write_text(C_SOURCE)
    (folder / "inc" / "scale.h").write_text("#define SCALE 2.0\n")
    wrapper, log = _clang_wrapper(folder)
    flags = [f"-I{folder / 'inc'}"]
    _run_c(folder, tmp_path, flags, ENZYME_PY_CLANG=str(wrapper))
    _run_c(folder, tmp_path, flags, ENZYME_PY_CLANG=str(wrapper))
    assert _runs(log) == 1
    text = wrapper.read_text()
    wrapper.write_text(text + "\n")  # "upgraded": same path, other file
    _run_c(folder, tmp_path, flags, ENZYME_PY_CLANG=str(wrapper))
    assert _runs(log) == 2
