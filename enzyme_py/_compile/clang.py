"""C source to bitcode, with the clang of the loaded LLVM.

Environment: ``ENZYME_PY_CLANG`` names the clang (default: ``clang-N`` on ``PATH``, then
``/usr/lib/llvm-N/bin/clang``, N the LLVM major of the loaded libLLVM).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from .. import config
from ..errors import CompileError, UnsupportedError
from . import sourcecache

__all__ = ["C_FLAGS", "check_c_source", "compile_c", "find_clang"]

#: Flags given to clang: optimise, but leave unrolling and vectorisation to the pipeline
#: after differentiation (``-disable-llvm-optzns``: the IR is optimised in-process); no
#: errno from libm calls (clang would declare them ``writeonly``, which conflicts with
#: what Enzyme adds).
C_FLAGS = ("-O2", "-fno-math-errno", "-Xclang", "-disable-llvm-optzns", "-emit-llvm", "-c")

#: Attributes of Enzyme's clang plugin that clang alone drops without a word.
_PLUGIN_ATTRIBUTES = re.compile(r"__attribute__\s*\(\(\s*(enzyme_\w+)")


def find_clang(major: int) -> Path:
    """The clang of LLVM ``major`` (see the module docstring); :class:`CompileError` when
    none exists."""
    env = config.clang_override()
    if env is not None:
        return env
    found = shutil.which(f"clang-{major}")
    if found:
        return Path(found)
    for cand in (Path(f"/usr/lib/llvm-{major}/bin/clang"), Path(f"/usr/local/opt/llvm@{major}/bin/clang")):
        if cand.exists():
            return cand
    raise CompileError(
        f"no clang for LLVM {major} was found; install clang-{major} "
        f"(e.g. `apt-get install clang-{major}`) or set ENZYME_PY_CLANG to its path"
    )


def check_c_source(source: str, name: str) -> None:
    """Refuse source that relies on attributes only Enzyme's clang plugin reads (clang
    would drop them and the derivative would silently ignore them)."""
    m = _PLUGIN_ATTRIBUTES.search(source)
    if m:
        line = source.count("\n", 0, m.start()) + 1
        hint = {
            "enzyme_inactive": "enzyme_py.inactive(module, name)",
        }.get(m.group(1), "enzyme_py.inactive or enzyme_py.with_derivative")
        raise UnsupportedError(
            f"C source {name!r} line {line} uses __attribute__(({m.group(1)})), which only "
            f"Enzyme's clang plugin reads (clang drops it); use {hint} on the module instead"
        )


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name) or "module"


def compile_c(source: str, flags: Sequence[str], name: str, major: int, *, suffix: str = ".c") -> bytes:
    """Bitcode of ``source`` (``suffix`` picks the language: ``.c`` or ``.cpp``); from the
    disk cache when the same source, command and clang compiled it before
    (:mod:`.sourcecache`)."""
    clang = find_clang(major)
    language = "c++" if suffix in (".cpp", ".cc", ".cxx") else "c"
    extra = list(map(str, flags))
    lang = [] if "-x" in extra else ["-x", language]  # a -x of the caller's decides
    args = [*C_FLAGS, *extra, *lang, "-"]
    disk = sourcecache.key(clang, args, source)
    if disk is not None:
        cached = sourcecache.load(disk)
        if cached is not None:
            return cached
    with tempfile.TemporaryDirectory(prefix="enzyme_py_") as tmp:
        out = Path(tmp) / f"{_safe(name)}.bc"
        deps = Path(tmp) / "deps.d"
        # The source comes on stdin: the bitcode holds no temporary path, so the same source
        # gives the same bitcode (and disk-cache keys) in every process; the caller's working
        # folder stays the one relative -I flags refer to.
        cmd = [str(clang), *args, "-o", str(out)]
        if disk is not None:
            cmd += sourcecache.dependency_flags(deps)
        try:
            proc = subprocess.run(
                cmd, input=source, capture_output=True, text=True, timeout=300, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            raise CompileError(f"could not run {clang}: {e}") from None
        if proc.returncode != 0 or not out.exists():
            raise CompileError(
                f"clang failed on source {name!r} (exit status {proc.returncode})", proc.stderr
            )
        data = out.read_bytes()
        if disk is not None and deps.exists():
            sourcecache.store(disk, data, sourcecache.read_dependencies(deps))
        return data
