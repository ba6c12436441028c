"""C source to bitcode, with the clang of the loaded LLVM.

Environment: ``ENZYME_PY_CLANG`` names the clang (default: ``clang-N`` on ``PATH``, then
``/usr/lib/llvm-N/bin/clang``, N the LLVM major of the loaded libLLVM).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from .. import config
from ..errors import CompileError, UnsupportedError
from . import sourcecache

__all__ = ["C_FLAGS", "PLUGIN_ATTRIBUTES", "compile_c", "find_clang", "rewrite_plugin_attributes"]

#: Flags given to clang: optimise, but leave unrolling and vectorisation to the pipeline
#: after differentiation (``-disable-llvm-optzns``: the IR is optimised in-process); no
#: errno from libm calls (clang would declare them ``writeonly``, which conflicts with
#: what Enzyme adds).
C_FLAGS = ("-O2", "-fno-math-errno", "-Xclang", "-disable-llvm-optzns", "-emit-llvm", "-c")

#: Attributes of Enzyme's clang plugin (which no artifact ships; clang alone drops them):
#: name -> the annotation Enzyme's pass reads (``{arg}``: the attribute's string argument)
#: and the registration global the plugin declares for an external declaration.
PLUGIN_ATTRIBUTES = {
    "inactive": ("enzyme_inactive", "__enzyme_inactivefn"),
    "nofree": ("enzyme_nofree", "__enzyme_nofree"),
    "function_like": ("enzyme_function_like={arg}", "__enzyme_function_like"),
    "shouldrecompute": ("enzyme_shouldrecompute", "__enzyme_shouldrecompute"),
    "sparse_accumulate": ("enzyme_sparse_accumulate", "__enzyme_sparse_accumulate"),
}
_GNU = re.compile(r"__attribute__\s*\(\(")
_CXX11 = re.compile(r"\[\[\s*enzyme(?:_|::)(\w+)\s*(?:\(\s*(\"[^\"]*\")\s*\))?\s*\]\]")
_IN_ATTR = re.compile(r"\benzyme_(\w+)\s*(?:\(\s*(\"[^\"]*\")\s*\))?")
_SCOPE_OPEN = re.compile(r"(?:\bnamespace\b[\w\s:]*|\bextern\s*\"C(?:\+\+)?\"\s*)$")
_DECLARED = re.compile(r"([A-Za-z_]\w*)\s*(?:\[[^\]]*\]\s*)*(?:\(|;|=|$)")


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


def _closing(source: str, at: int) -> int:
    """The index just past the ``))`` closing the ``__attribute__((`` whose inner text
    starts at ``at`` (or -1)."""
    depth = 2
    i = at
    while i < len(source):
        c = source[i]
        if c == '"':
            j = source.find('"', i + 1)
            i = len(source) if j < 0 else j + 1
            continue
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return -1


def _namespace_scope(source: str, at: int) -> bool:
    """Whether ``at`` lies at file or namespace scope (every enclosing brace opens a
    namespace or an ``extern "C"`` block), where a registration global may be declared."""
    stack: list[bool] = []
    for m in re.finditer(r"[{}]", source[:at]):
        if m.group() == "{":
            stack.append(bool(_SCOPE_OPEN.search(source[max(0, m.start() - 200) : m.start()])))
        elif stack:
            stack.pop()
    return all(stack)


def _registration(source: str, end: int, key: str, arg: str | None, tag: int) -> str:
    """The registration global the plugin would declare for the external declaration
    that follows an attribute (ending at ``;``), or "" when the declaration defines what
    it declares (clang then keeps the annotation itself) or is not at namespace scope."""
    semi = source.find(";", end)
    brace = source.find("{", end)
    if semi < 0 or (0 <= brace < semi) or not _namespace_scope(source, end):
        return ""
    decl = source[end:semi]
    is_function = "(" in decl
    if not is_function and not re.search(r"\bextern\b", decl):
        return ""  # a variable definition: its annotation is kept
    head = decl.split("(", 1)[0] if is_function else decl.split("=", 1)[0]
    names = _DECLARED.findall(head + (";" if not is_function else "("))
    if not names:
        return ""
    name = names[-1]
    ref = f"(void*)&{name}"
    reg = f"{key}_autoreg_enzpy{tag}_{name}"
    if key == "__enzyme_inactivefn" and not is_function:
        reg = f"__enzyme_inactive_global_autoreg_enzpy{tag}_{name}"
    if arg is not None:
        return f" static void* {reg}[2] __attribute__((used)) = {{{ref}, (void*){arg}}};"
    return f" static void* {reg} __attribute__((used)) = {ref};"


def rewrite_plugin_attributes(source: str, *, cpp: bool = False, name: str = "source") -> str:
    """``source`` with the attributes of Enzyme's clang plugin (:data:`PLUGIN_ATTRIBUTES`,
    GNU ``__attribute__((enzyme_inactive))`` and C++11 ``[[enzyme::inactive]]``
    spellings) turned into what the plugin turns them into: ``annotate`` attributes that
    Enzyme's pass reads from ``llvm.global.annotations``, and for an external declaration
    (which clang emits no annotation for) the plugin's registration global after it.
    Lines keep their numbers.  :class:`UnsupportedError` for an ``enzyme_*`` attribute
    the plugin does not define.

    >>> rewrite_plugin_attributes("__attribute__((enzyme_inactive)) double f(double x) { return x; }")
    '__attribute__((annotate("enzyme_inactive"))) double f(double x) { return x; }'
    """
    if "enzyme" not in source:
        return source
    out: list[str] = []
    pos = 0
    tag = 0
    edits: list[tuple[int, int, str, int]] = []  # (start, end, replacement, insert-at)
    for m in _GNU.finditer(source):
        end = _closing(source, m.end())
        if end < 0:
            continue
        inner = source[m.end() : end - 2]
        found: list[tuple[str, str | None]] = []

        def sub(a: re.Match[str], at: int = m.start(), found: list[tuple[str, str | None]] = found) -> str:
            key, arg = a.group(1), a.group(2)
            if key not in PLUGIN_ATTRIBUTES:
                raise _unknown(source, at, f"enzyme_{key}", name)
            found.append((key, arg))
            ann = PLUGIN_ATTRIBUTES[key][0].format(arg=(arg or '""')[1:-1])
            return f'annotate("{ann}")'

        new_inner = _IN_ATTR.sub(sub, inner)
        if found:
            edits.append((m.end(), end - 2, new_inner, end))
            for key, arg in found:
                tag += 1
                reg = _registration(source, end, PLUGIN_ATTRIBUTES[key][1], arg, tag)
                if reg:
                    edits.append((-1, -1, reg, source.find(";", end) + 1))
    for m in _CXX11.finditer(source):
        key, arg = m.group(1), m.group(2)
        if key not in PLUGIN_ATTRIBUTES:
            raise _unknown(source, m.start(), f"enzyme::{key}", name)
        ann = PLUGIN_ATTRIBUTES[key][0].format(arg=(arg or '""')[1:-1])
        edits.append((m.start(), m.end(), f'[[clang::annotate("{ann}")]]', m.end()))
        tag += 1
        reg = _registration(source, m.end(), PLUGIN_ATTRIBUTES[key][1], arg, tag)
        if reg:
            edits.append((-1, -1, reg, source.find(";", m.end()) + 1))
    if not edits:
        return source
    # apply: replacements (start >= 0) and insertions (start == -1) in source order
    items = sorted(edits, key=lambda e: (e[0] if e[0] >= 0 else e[3], e[0] < 0))
    for start, end, text, at in items:
        if start >= 0:
            out.append(source[pos:start])
            out.append(text)
            pos = end
        else:
            out.append(source[pos:at])
            out.append(text)
            pos = at
    out.append(source[pos:])
    return "".join(out)


def _unknown(source: str, at: int, attr: str, name: str) -> UnsupportedError:
    line = source.count("\n", 0, at) + 1
    known = ", ".join(f"enzyme_{k}" for k in PLUGIN_ATTRIBUTES)
    return UnsupportedError(
        f"source {name!r} line {line} uses the attribute {attr}, which Enzyme's clang plugin does not define "
        f"(it defines {known}); clang would drop it and the derivative would ignore it"
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
        started = time.time_ns()
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
            sourcecache.store(disk, data, sourcecache.read_dependencies(deps), started)
        return data
