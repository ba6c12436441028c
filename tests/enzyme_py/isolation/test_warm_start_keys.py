"""What a Python function's lowering depends on, beyond its own globals: each case writes a
module, differentiates one of its functions in a fresh process (filling a private disk
cache), changes one thing the result depends on, and checks that a later process does not
reuse the first lowering: its gradient is the new analytic value.

Covered here: an enum member's value (read through the class or a global member), the
fields of a namedtuple class, a constant read through a submodule (``pkg.sub.K``), the
``locals=`` types of a jitted helper, the field names of a global structured array; for C,
a header edited with its size and modification time kept, a response file's flags, and the
compiler libraries the clang driver loads.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from .conftest import run_python

CHILD = r'''
import json, sys
sys.path.insert(0, {folder!r})
import importlib
import numpy as np
import enzyme_py as ez
from enzyme_py import diskcache
f = getattr(importlib.import_module({module!r}), {name!r})
g = ez.gradient(f, 0.7)
print(json.dumps({{"grad": float(np.asarray(g[0])), "stats": {{k: v for k, v in diskcache.stats().items() if v}}}}))
'''


def _grad(folder: Path, module: str, name: str) -> Any:
    proc = run_python(CHILD.format(folder=str(folder), module=module, name=name), {"PYTHONDONTWRITEBYTECODE": "1"})
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


ENUMS = '''
import enum


class Scale(enum.Enum):
    A = {a}


MEMBER = Scale.A


def through_class(x):
    return x * x * Scale.A.value


def through_member(x):
    return x * x * MEMBER.value
'''


def test_an_enum_member_s_value_is_in_the_key(tmp_path: Path) -> None:
    _write(tmp_path / "enums.py", ENUMS.format(a=2.0))
    for name in ("through_class", "through_member"):
        first = _grad(tmp_path, "enums", name)
        assert math.isclose(first["grad"], 2 * 2 * 0.7) and first["stats"].get("lowered_stores") == 1, name
    _write(tmp_path / "enums.py", ENUMS.format(a=3.0))
    for name in ("through_class", "through_member"):
        assert math.isclose(_grad(tmp_path, "enums", name)["grad"], 2 * 3 * 0.7), name


TUPLES = '''
import collections

Pair = collections.namedtuple("Pair", "{fields}")


def first_field(x):
    p = Pair(x, 3.0 * x)
    return p.a * x
'''


def test_a_namedtuple_class_s_fields_are_in_the_key(tmp_path: Path) -> None:
    _write(tmp_path / "tuples.py", TUPLES.format(fields="a b"))
    assert math.isclose(_grad(tmp_path, "tuples", "first_field")["grad"], 2 * 0.7)
    _write(tmp_path / "tuples.py", TUPLES.format(fields="b a"))
    assert math.isclose(_grad(tmp_path, "tuples", "first_field")["grad"], 6 * 0.7)


def test_a_constant_read_through_a_submodule_is_in_the_key(tmp_path: Path) -> None:
    _write(tmp_path / "pkg" / "__init__.py", "from . import sub\n")
    _write(tmp_path / "pkg" / "sub.py", "K = 2.0\n")
    _write(tmp_path / "user.py", "import pkg\n\n\ndef f(x):\n    return x * x * pkg.sub.K\n")
    first = _grad(tmp_path, "user", "f")
    assert math.isclose(first["grad"], 2 * 2.0 * 0.7) and first["stats"].get("lowered_stores") == 1
    _write(tmp_path / "pkg" / "sub.py", "K = 5.0\n")
    assert math.isclose(_grad(tmp_path, "user", "f")["grad"], 2 * 5.0 * 0.7)


LOCALS = '''
import numba


@numba.njit{options}
def inner(x):
    y = x * 0.1
    return y


def f(x):
    return inner(x) * inner(x)
'''


def test_a_jitted_helper_s_locals_are_in_the_key(tmp_path: Path) -> None:
    _write(tmp_path / "withlocals.py", LOCALS.format(options="(locals={'y': numba.float32})"))
    single = _grad(tmp_path, "withlocals", "f")
    y32 = float(np.float32(0.7 * 0.1))
    assert math.isclose(single["grad"], 2 * y32 * 0.1, rel_tol=1e-12)
    _write(tmp_path / "withlocals.py", LOCALS.format(options=""))
    double = _grad(tmp_path, "withlocals", "f")
    assert math.isclose(double["grad"], 2 * (0.7 * 0.1) * 0.1, rel_tol=1e-15), double


RECORDS = '''
import numpy as np

REC = np.array([(2.0, 5.0)], dtype=[({first!r}, "f8"), ({second!r}, "f8")])


def f(x):
    return x * x * REC[0].a
'''


def test_a_structured_array_s_field_names_are_in_the_key(tmp_path: Path) -> None:
    _write(tmp_path / "records.py", RECORDS.format(first="a", second="b"))
    assert math.isclose(_grad(tmp_path, "records", "f")["grad"], 2 * 2.0 * 0.7)
    _write(tmp_path / "records.py", RECORDS.format(first="b", second="a"))  # same bytes
    assert math.isclose(_grad(tmp_path, "records", "f")["grad"], 2 * 5.0 * 0.7)


# --------------------------------------------------------------------------- C

C_CHILD = r'''
import json, sys
import enzyme_py as ez
from enzyme_py import diskcache
m = ez.Module.from_c("double f(double x) {{ return SCALE * x * x; }}\n", flags={flags!r}, name="f")
(d,) = ez.gradient(m.function("f"), 0.7)
print(json.dumps({{"d": d, "stats": {{k: v for k, v in diskcache.stats().items() if v}}}}))
'''


def _c_grad(cwd: Path, flags: list[str]) -> Any:
    code = f"import os; os.chdir({str(cwd)!r})\n" + C_CHILD.format(flags=flags)
    proc = run_python(code)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_a_header_edited_without_changing_its_size_or_time_is_seen(tmp_path: Path) -> None:
    header = tmp_path / "scale.h"
    header.write_text("#define SCALE 2.0\n")
    flags = ["-include", str(header)]
    first = _c_grad(tmp_path, flags)
    assert math.isclose(first["d"], 2 * 2.0 * 0.7) and first["stats"].get("bitcode_stores") == 1
    assert _c_grad(tmp_path, flags)["stats"].get("bitcode_hits") == 1
    st = header.stat()
    header.write_text("#define SCALE 3.0\n")  # same size; the time put back (cp -p, touch -r, rsync)
    os.utime(header, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert math.isclose(_c_grad(tmp_path, flags)["d"], 2 * 3.0 * 0.7)


def test_a_response_file_s_flags_are_not_assumed_unchanged(tmp_path: Path) -> None:
    rsp = tmp_path / "flags.rsp"
    rsp.write_text("-DSCALE=2.0\n")
    flags = [f"@{rsp}"]
    assert math.isclose(_c_grad(tmp_path, flags)["d"], 2 * 2.0 * 0.7)
    rsp.write_text("-DSCALE=5.0\n")
    assert math.isclose(_c_grad(tmp_path, flags)["d"], 2 * 5.0 * 0.7)


def test_clang_s_own_libraries_are_in_the_key(tmp_path: Path) -> None:
    """libclang-cpp holds the compiler (the clang binary is a small driver): upgrading it
    alone must not reuse bitcode the old one produced."""
    from enzyme_py.module import find_clang

    real = Path(os.path.realpath(find_clang(15)))
    tree = tmp_path / "llvm"
    (tree / "bin").mkdir(parents=True)
    (tree / "lib").mkdir()
    shutil.copy2(real, tree / "bin" / "clang")  # a copy: $ORIGIN/../lib is the tree's
    libs = {p.name: p for p in (real.parent.parent / "lib").iterdir() if p.name.startswith("libclang-cpp.so")}
    for name, lib in libs.items():
        (tree / "lib" / name).symlink_to(os.path.realpath(lib))
    code = C_CHILD.format(flags=["-DSCALE=2.0"])
    env = {"ENZYME_PY_CLANG": str(tree / "bin" / "clang")}

    def run() -> Any:
        proc = run_python(code, env)
        assert proc.returncode == 0, proc.stderr[-4000:]
        return json.loads(proc.stdout.strip().splitlines()[-1])

    assert run()["stats"].get("bitcode_stores") == 1
    assert run()["stats"].get("bitcode_hits") == 1
    # "upgraded in place": the library the driver loads is another file
    from enzyme_py._compile import sourcecache

    before = sourcecache.key(tree / "bin" / "clang", ["-x", "c", "-"], "")
    upgraded = tmp_path / "new" / next(iter(libs))
    upgraded.parent.mkdir()
    upgraded.write_bytes(b"\x7fELF not really")
    for name in libs:
        (tree / "lib" / name).unlink()
        (tree / "lib" / name).symlink_to(upgraded)
    assert sourcecache.key(tree / "bin" / "clang", ["-x", "c", "-"], "") != before
