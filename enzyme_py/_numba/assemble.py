"""Assemble one self-contained module around numba's native function.

Input: numba's optimised module and the argument layout.  Output: LLVM IR text (typed
pointers, as llvmlite prints them) holding

* a plain-ABI entry function (see :func:`entry_source`) that builds numba's native
  arguments, calls the native function and stores its status and exception info;
* numba's code reachable from it, with the allocation shim of :mod:`._runtime` linked in,
  inlined into the entry and simplified with the entry's constants (null MemInfo and parent
  of input arrays, unit strides);
* nothing else: Python wrappers, environments and unreachable NRT helpers are pruned.

numba's static exceptions are numbered (``Lowered.exceptions``) and the entry stores the
number of the raised one, computed by pointer comparisons: it never stores the excinfo
pointer itself, because a pointer to a constant global flowing into memory makes Enzyme look
for a shadow of that global.

Rewrites applied before Enzyme sees the module (each one for a reason measured on these
machines): ``llvm.memset`` of a struct alloca becomes one typed store per field (Enzyme
cannot deduce the type of a memset), alignments above 16 become 16 (the shim's data and
Enzyme's shadows are only 16-byte aligned), integer-only helpers become
``"enzyme_inactive" nofree``, reference-count calls on the null MemInfo of an input array
are dropped (they do nothing, but Enzyme would see a ``free`` of an argument).
"""

from __future__ import annotations

__all__ = ["ENTRY_PREFIX", "STATUS_WORDS", "assemble", "entry_source"]

import re
from collections.abc import Sequence
from typing import Any

from .compile import Compiled
from .runtime import ALLOCATION_SHIM, DECREF, INACTIVE_HELPERS, SHIMMED, classify_declarations
from .types import ArgSpec

ENTRY_PREFIX = "enzyme_py_numba_entry"

_EXCINFO = "{ i8*, i32, i8*, i8*, i32 }"
# Replaced by :func:`_exception_table` before the module is optimised (see the docstring).
_EXC_PLACEHOLDER = "  %excaddr = add i64 0, 0"
_ELEM_SIZE = {"double": 8, "float": 4, "i64": 8, "i32": 4, "i16": 2, "i8": 1, "i1": 1}
#: Words of the status array: numba's status, the exception number, the result flag
#: (1: the output array had another shape than the result) and the result's shape.
STATUS_WORDS = 8
_ZERO = {"double": "0.0", "float": "0.0"}


def _entry_name(qualname: str) -> str:
    return f"{ENTRY_PREFIX}.{re.sub(r'[^A-Za-z0-9_]', '_', qualname)}"


def _zero(ty: str) -> str:
    if ty in _ZERO:
        return _ZERO[ty]
    if re.fullmatch(r"i\d+", ty):
        return "0"
    if ty.endswith("*"):
        return "null"
    return "zeroinitializer"


def _copy_array_result(slot_t: str, ndim: int, lines: list[str]) -> None:
    """Copy numba's result array (in ``%retslot``) into the caller's ``%out`` when the
    shapes agree (strided: the result may be a view); otherwise record the result's shape
    in the status array.  The result's reference is released either way."""
    lines += [
        f"  %res = load {slot_t}, {slot_t}* %retslot, align 8",
        "  %res.mi = extractvalue " + slot_t + " %res, 0",
        "  %res.data = extractvalue " + slot_t + " %res, 4",
        "  %res.raw = bitcast %elem* %res.data to i8*".replace("%elem*", "ELEMPTR"),
    ]
    match = "true"
    for d in range(ndim):
        lines.append(f"  %res.n{d} = extractvalue {slot_t} %res, 5, {d}")
        lines.append(f"  %res.st{d} = extractvalue {slot_t} %res, 6, {d}")
        lines.append(f"  %res.eq{d} = icmp eq i64 %res.n{d}, %out.n{d}")
        lines.append(f"  %res.m{d} = and i1 {match}, %res.eq{d}")
        match = f"%res.m{d}"
    lines.append(f"  br i1 {match}, label %copy0, label %mismatch")
    lines.append("mismatch:")
    lines.append("  %st2 = getelementptr inbounds i64, i64* %status, i64 2")
    lines.append("  store i64 1, i64* %st2, align 8")
    for d in range(ndim):
        lines.append(f"  %stn{d} = getelementptr inbounds i64, i64* %status, i64 {3 + d}")
        lines.append(f"  store i64 %res.n{d}, i64* %stn{d}, align 8")
    lines.append("  br label %release")
    # the loop nest: for i0 < n0: for i1 < n1: ... out[flat] = *(data + sum(i_d * st_d))
    for d in range(ndim):
        prev_flat = "0" if d == 0 else f"%flat{d - 1}"
        prev_off = "0" if d == 0 else f"%off{d - 1}"
        head, body, latch = f"loop{d}", f"body{d}", f"latch{d}"
        after = "release" if d == 0 else f"latch{d - 1}"
        enter = f"copy{d}"
        lines.append(f"{enter}:")
        lines.append(f"  br label %{head}")
        lines.append(f"{head}:")
        lines.append(f"  %i{d} = phi i64 [ 0, %{enter} ], [ %i{d}.next, %{latch} ]")
        lines.append(f"  %more{d} = icmp slt i64 %i{d}, %out.n{d}")
        lines.append(f"  br i1 %more{d}, label %{body}, label %{after}")
        lines.append(f"{body}:")
        lines.append(f"  %flat{d}.a = mul i64 {prev_flat}, %out.n{d}")
        lines.append(f"  %flat{d} = add i64 %flat{d}.a, %i{d}")
        lines.append(f"  %off{d}.a = mul i64 %i{d}, %res.st{d}")
        lines.append(f"  %off{d} = add i64 {prev_off}, %off{d}.a")
        if d + 1 < ndim:
            lines.append(f"  br label %copy{d + 1}")
        else:
            lines.append(f"  %src{d}.b = getelementptr inbounds i8, i8* %res.raw, i64 %off{d}")
            lines.append(f"  %src{d} = bitcast i8* %src{d}.b to ELEMPTR")
            lines.append(f"  %v{d} = load ELEM, ELEMPTR %src{d}")
            lines.append(f"  %dst{d} = getelementptr inbounds ELEM, ELEMPTR %out, i64 %flat{d}")
            lines.append(f"  store ELEM %v{d}, ELEMPTR %dst{d}")
            lines.append(f"  br label %{latch}")
        lines.append(f"{latch}:")
        lines.append(f"  %i{d}.next = add nuw nsw i64 %i{d}, 1")
        lines.append(f"  br label %{head}")
    # the latch of an outer loop is reached from the inner loop's exit; fix the order:
    # the inner loops' blocks are emitted inside the outer loop's body above.
    lines.append("release:")
    lines.append("  call void @NRT_decref(i8* %res.mi)")
    lines.append("  br label %done")


def entry_source(compiled: Compiled, specs: Sequence[ArgSpec]) -> tuple[str, str]:
    """Return (entry name, IR text of a module declaring the native function and defining the entry).

    Entry signature: each scalar as itself, each array as ``(T* data, i64 n0, ...)``, then
    the output of an array or tuple result ``(T* out, i64 out_n0, ...)``, then
    ``i64* status``; returns the scalar result or void.  ``status[0]`` receives numba's status
    code (0 or -2: success; >= 1: a user exception), ``status[1]`` the 1-based index of the
    raised exception in the table :func:`assemble` returns (0 when none was raised or it is
    not in the table), ``status[2]`` 1 when the result's shape differs from the output's,
    which is then in ``status[3:]`` (the output is left untouched).
    """
    native = compiled.native_params
    name = _entry_name(compiled.qualname)
    expected = 2 + sum(1 if s.kind == "scalar" else 5 + 2 * s.ndim for s in specs)
    if len(native) != expected:
        raise RuntimeError(
            f"numba's native function for {compiled.qualname} has {len(native)} parameters, "
            f"expected {expected} for {[s.kind for s in specs]}: unsupported numba version"
        )
    ret_ptr_type = native[0]
    slot_t = ret_ptr_type[:-1]
    params: list[str] = []
    body: list[str] = []
    call: list[str] = []
    k = 2
    for i, spec in enumerate(specs):
        if spec.kind == "scalar":
            params.append(f"{native[k]} %a{i}")
            call.append(f"{native[k]} %a{i}")
            k += 1
            continue
        data_t = native[k + 4]
        size = _ELEM_SIZE[data_t[:-1]]
        params.append(f"{data_t} %a{i}.data")
        params += [f"i64 %a{i}.n{d}" for d in range(spec.ndim)]
        # C-contiguous strides: stride[d] = size * n[d+1] * ... * n[ndim-1]
        strides = [""] * spec.ndim
        strides[-1] = str(size)
        for d in range(spec.ndim - 2, -1, -1):
            body.append(f"  %a{i}.s{d} = mul i64 %a{i}.n{d + 1}, {strides[d + 1]}")
            strides[d] = f"%a{i}.s{d}"
        nitems = f"%a{i}.n0"
        for d in range(1, spec.ndim):
            body.append(f"  %a{i}.c{d} = mul i64 {nitems}, %a{i}.n{d}")
            nitems = f"%a{i}.c{d}"
        call += [
            f"{native[k]} null",
            f"{native[k + 1]} null",
            f"i64 {nitems}",
            f"i64 {size}",
            f"{data_t} %a{i}.data",
            *(f"i64 %a{i}.n{d}" for d in range(spec.ndim)),
            *(f"i64 {st}" for st in strides),
        ]
        k += 5 + 2 * spec.ndim
    kind, dtype, count = compiled.result
    elem = _IR_OF_DTYPE.get(dtype, "")
    if kind == "array":
        params.append(f"{elem}* %out")
        params += [f"i64 %out.n{d}" for d in range(count)]
    elif kind == "tuple":
        params.append(f"{elem}* %out")
    params.append("i64* %status")

    ret = slot_t if kind == "scalar" else "void"
    lines = [
        f"declare i32 @\"{compiled.native_name}\"({', '.join(native)})",
        "declare void @NRT_decref(i8*)" if kind == "array" else "",
        "",
        f"define {ret} @\"{name}\"({', '.join(params)}) {{",
        "entry:",
        f"  %retslot = alloca {slot_t}, align 8",
        f"  store {slot_t} {_zero(slot_t)}, {ret_ptr_type} %retslot, align 8",
        f"  %excslot = alloca {_EXCINFO}*, align 8",
        f"  store {_EXCINFO}* null, {_EXCINFO}** %excslot, align 8",
        *body,
        (
            f"  %rc = call i32 @\"{compiled.native_name}\"({ret_ptr_type} %retslot, "
            f"{_EXCINFO}** %excslot, {', '.join(call)})"
        ),
        "  %rc64 = sext i32 %rc to i64",
        "  store i64 %rc64, i64* %status, align 8",
        f"  %exc = load {_EXCINFO}*, {_EXCINFO}** %excslot, align 8",
        _EXC_PLACEHOLDER,
        "  %status1 = getelementptr inbounds i64, i64* %status, i64 1",
        "  store i64 %excaddr, i64* %status1, align 8",
    ]
    if kind == "scalar":
        lines += [f"  %result = load {ret}, {ret}* %retslot, align 8", f"  ret {ret} %result"]
    elif kind == "void":
        lines.append("  ret void")
    else:
        lines += ["  %ok = icmp eq i32 %rc, 0", "  br i1 %ok, label %have, label %done", "have:"]
        if kind == "tuple":
            lines.append(f"  %res = load {slot_t}, {slot_t}* %retslot, align 8")
            for j in range(count):
                lines.append(f"  %t{j} = extractvalue {slot_t} %res, {j}")
                lines.append(f"  %o{j} = getelementptr inbounds {elem}, {elem}* %out, i64 {j}")
                lines.append(f"  store {elem} %t{j}, {elem}* %o{j}")
            lines.append("  br label %done")
        else:
            copy: list[str] = []
            _copy_array_result(slot_t, count, copy)
            lines += [c.replace("ELEMPTR", f"{elem}*").replace("ELEM", elem) for c in copy]
        lines += ["done:", "  ret void"]
    lines.append("}")
    return name, "\n".join(lines) + "\n"


_IR_OF_DTYPE = {"float64": "double", "float32": "float", "int64": "i64", "int32": "i32"}


# ---------------------------------------------------------------------------------------
# Text rewrites


_ALIGN = re.compile(r"\balign (\d+)")
_MEMSET = re.compile(
    r"^(\s*)(?:tail |notail |musttail )?call void @llvm\.memset\.p0i8\.i64\(i8\*(?: (?:align \d+|[a-z_]+(?:\(\d+\))?))* (%[-\w.$]+|%\"[^\"]+\"), "
    r"i8 0, i64 (\d+), i1 false\)"
)
_ALLOCA = re.compile(r"^\s*(%[-\w.$]+|%\"[^\"]+\") = alloca (.+?)(?:, align \d+)?$")
_BITCAST = re.compile(r"^\s*(%[-\w.$]+|%\"[^\"]+\") = bitcast (.+?)\* (%[-\w.$]+|%\"[^\"]+\") to i8\*$")


def _clamp_alignment(line: str) -> str:
    if line.startswith(("@", "!", "attributes", ";")):
        return line
    return _ALIGN.sub(lambda m: m.group(0) if int(m.group(1)) <= 16 else "align 16", line)


def _split_struct(body: str) -> list[str]:
    """Split the field list of a literal struct type at top-level commas."""
    fields, depth, start = [], 0, 0
    for i, ch in enumerate(body):
        if ch in "{[<(":
            depth += 1
        elif ch in "}]>)":
            depth -= 1
        elif ch == "," and depth == 0:
            fields.append(body[start:i].strip())
            start = i + 1
    fields.append(body[start:].strip())
    return [f for f in fields if f]


_SCALAR_SIZE = {"i1": 1, "i8": 1, "i16": 2, "i32": 4, "i64": 8, "half": 2, "float": 4, "double": 8}


def _layout(ty: str) -> tuple[int, int]:
    """(size, alignment) in bytes of an LLVM type written as text (x86-64 data layout)."""
    ty = ty.strip()
    if ty.endswith("*"):
        return 8, 8
    if ty in _SCALAR_SIZE:
        return _SCALAR_SIZE[ty], _SCALAR_SIZE[ty]
    if ty.startswith("{") and ty.endswith("}"):
        offset, align = 0, 1
        for field_ty in _split_struct(ty[1:-1]):
            size, a = _layout(field_ty)
            offset = -(-offset // a) * a + size
            align = max(align, a)
        return -(-offset // align) * align, align
    m = re.fullmatch(r"\[(\d+) x (.+)\]", ty)
    if m:
        size, a = _layout(m.group(2))
        return int(m.group(1)) * size, a
    raise ValueError(ty)


def _leaves(ty: str, path: tuple[int, ...], offset: int = 0) -> list[tuple[str, tuple[int, ...], int]]:
    """Scalar leaves (type, index path, byte offset) of an LLVM type written as text."""
    ty = ty.strip()
    if ty.startswith("{") and ty.endswith("}"):
        out, pos = [], 0
        for j, field_ty in enumerate(_split_struct(ty[1:-1])):
            size, a = _layout(field_ty)
            pos = -(-pos // a) * a
            out += _leaves(field_ty, path + (j,), offset + pos)
            pos += size
        return out
    m = re.fullmatch(r"\[(\d+) x (.+)\]", ty)
    if m:
        out = []
        size, _ = _layout(m.group(2))
        for j in range(int(m.group(1))):
            out += _leaves(m.group(2), path + (j,), offset + j * size)
        return out
    _layout(ty)
    return [(ty, path, offset)]


def _zero_of(ty: str) -> str:
    if ty.endswith("*"):
        return "null"
    if ty in ("double", "float", "half"):
        return "0.0"
    if re.fullmatch(r"i\d+", ty):
        return "0"
    raise ValueError(ty)


def _rewrite_memsets(lines: list[str]) -> list[str]:
    """Replace a zeroing memset of a struct alloca (a prefix of whole fields) by typed stores."""
    allocas: dict[str, str] = {}
    casts: dict[str, tuple[str, str]] = {}
    out: list[str] = []
    counter = 0
    for line in lines:
        if line.startswith("define "):
            allocas.clear()
            casts.clear()
        m = _ALLOCA.match(line)
        if m:
            allocas[m.group(1)] = m.group(2)
        m = _BITCAST.match(line)
        if m:
            casts[m.group(1)] = (m.group(2), m.group(3))
        m = _MEMSET.match(line)
        if m and m.group(2) in casts:
            ty, base = casts[m.group(2)]
            if allocas.get(base) == ty and ty.startswith("{"):
                try:
                    nbytes = int(m.group(3))
                    leaves = _leaves(ty, ())
                    covered = [(t, p) for t, p, off in leaves if off + _layout(t)[0] <= nbytes]
                    if sum(_layout(t)[0] for t, _ in covered) != nbytes:
                        raise ValueError("memset does not cover whole fields")
                    stores = []
                    for leaf_ty, path in covered:
                        counter += 1
                        gep = f"%enzyme_py.zero.{counter}"
                        idx = ", ".join(f"i32 {p}" for p in path)
                        stores.append(f"{m.group(1)}{gep} = getelementptr inbounds {ty}, {ty}* {base}, i32 0, {idx}")
                        stores.append(f"{m.group(1)}store {leaf_ty} {_zero_of(leaf_ty)}, {leaf_ty}* {gep}")
                    out += stores
                    continue
                except ValueError:
                    pass
        out.append(line)
    return out


_DECLARE = re.compile(r'^declare (.*?)@("?)([-\w.$]+)\2\((.*)\)(.*)$')


_INT_POINTER = '"enzyme_type"="{[-1]:Pointer, [-1,-1]:Integer}"'


def _mark_inactive(line: str) -> str:
    m = _DECLARE.match(line)
    if not m or m.group(3) not in INACTIVE_HELPERS:
        return line
    # integer-only helpers: their pointer arguments point at integers (shapes, strides), which
    # Enzyme's type analysis is told, or a zero stored next to them in an array descriptor
    # holding an active data pointer looks like a pointer to it (numba's reshapes, np.outer)
    params = ", ".join(
        f"{p.strip()} {_INT_POINTER}" if p.strip() == "i64*" else p.strip()
        for p in _split_struct(m.group(4))
    )
    return f'declare {m.group(1)}@{m.group(2)}{m.group(3)}{m.group(2)}({params}){m.group(5)} "enzyme_inactive" nofree'


_REFCOUNT_DEFINE = re.compile(r"^(define [^\n]*@NRT_(?:incref|decref)\([^\n]*\)[^\n#]*?) #\d+ \{", re.MULTILINE)
_NULL_REFCOUNT = re.compile(r"^\s*(?:tail )?call void @NRT_(?:incref|decref)\(i8\* null\)")


def rewrite(text: str) -> str:
    """Apply the text rewrites listed in the module docstring."""
    lines = [line for line in text.splitlines() if not _NULL_REFCOUNT.match(line)]
    lines = _rewrite_memsets(lines)
    lines = [_mark_inactive(_clamp_alignment(line)) for line in lines]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------


_PICKLEBUF = re.compile(
    r"^(@[-\w.$]+) = internal (?:unnamed_addr )?constant \{ i8\*, i32, i8\*, i8\*, i32 \} "
    r"\{ i8\* getelementptr inbounds \(\[(\d+) x i8\], \[\d+ x i8\]\* (@[-\w.$]+), i32 0, i32 0\), "
    r"i32 (\d+), .*\bi8\* null, i32 0 \}",
    re.MULTILINE,
)
_BYTES = re.compile(r'^(@[-\w.$]+) = internal (?:unnamed_addr )?constant \[(\d+) x i8\] c"(.*)"', re.MULTILINE)


def _decode_c_string(text: str) -> bytes:
    """Decode an LLVM ``c"..."`` string body (``\\XX`` hex escapes, ``\\\\``, the rest literal)."""
    out = bytearray()
    i = 0
    while i < len(text):
        if text[i] == "\\" and text[i + 1 : i + 2] == "\\":
            out.append(0x5C)
            i += 2
        elif text[i] == "\\":
            out.append(int(text[i + 1 : i + 3], 16))
            i += 3
        else:
            out += text[i].encode("latin-1")
            i += 1
    return bytes(out)


def _exception_table(text: str) -> tuple[str, tuple[bytes, ...]]:
    """Number numba's static exceptions and make the entry store the number of the raised one.

    Returns the rewritten text and the pickled ``(class, args, location)`` payloads, the
    first one numbered 1.
    """
    data = {m.group(1): _decode_c_string(m.group(3)) for m in _BYTES.finditer(text)}
    payloads: list[bytes] = []
    chain: list[str] = []
    previous = "0"
    for m in _PICKLEBUF.finditer(text):
        name, blob, size = m.group(1), m.group(3), int(m.group(4))
        if blob not in data or len(data[blob]) < size:
            continue
        payloads.append(data[blob][:size])
        k = len(payloads)
        chain.append(f"  %exc.is.{k} = icmp eq {_EXCINFO}* %exc, {name}")
        chain.append(f"  %exc.id.{k} = select i1 %exc.is.{k}, i64 {k}, i64 {previous}")
        previous = f"%exc.id.{k}"
    chain.append(f"  %excaddr = add i64 {previous}, 0")
    return text.replace(_EXC_PLACEHOLDER, "\n".join(chain)), tuple(payloads)


def assemble(compiled: Compiled, specs: Sequence[ArgSpec]) -> tuple[str, str, frozenset[str], tuple[bytes, ...]]:
    """Build the final module; return (IR text, entry name, runtime symbols it needs,
    pickled exception payloads numbered from 1 as the entry reports them in ``status[1]``).

    Raises:
        NotImplementedError: the code uses a numba runtime service the bridge does not support.
    """
    import llvmlite.binding as llvm

    module: Any = compiled.module
    entry, source = entry_source(compiled, specs)
    entry_mod = llvm.parse_assembly(source)
    entry_mod.triple = module.triple
    entry_mod.data_layout = module.data_layout
    module.link_in(entry_mod)
    declared = {f.name for f in module.functions if f.is_declaration}
    if "NRT_decref" in declared:  # the entry releases the result; numba's code never does
        decref = llvm.parse_assembly(DECREF)
        decref.triple = module.triple
        decref.data_layout = module.data_layout
        module.link_in(decref)
        declared = {f.name for f in module.functions if f.is_declaration}
    if declared & SHIMMED:
        shim = llvm.parse_assembly(ALLOCATION_SHIM)
        shim.triple = module.triple
        shim.data_layout = module.data_layout
        module.link_in(shim)
    for fn in module.functions:
        if not fn.is_declaration and fn.name != entry:
            fn.linkage = llvm.Linkage.internal
    for gv in module.global_variables:
        if not gv.is_declaration:
            gv.linkage = llvm.Linkage.internal
    # Number the static exceptions while the entry still loads the excinfo pointer, and let
    # numba's reference-count helpers be inlined (they are ``noinline``): Enzyme then sees each
    # temporary's malloc and free in one function.
    text, exceptions = _exception_table(str(module))
    text = _REFCOUNT_DEFINE.sub(r"\1 {", text)
    module = llvm.parse_assembly(text)
    # Inline numba's function into the entry and fold the constants the entry passes (null
    # meminfo/parent, unit strides): a null parent pointer stored next to an active data
    # pointer would otherwise be a "mismatched activity" for Enzyme.  The native function is
    # internal with one call site, so the inliner always takes it.
    pm = llvm.create_module_pass_manager()
    pm.add_function_inlining_pass(225)
    pm.add_sroa_pass()
    pm.add_sccp_pass()
    pm.add_instruction_combining_pass()
    # GVN forwards the shim's header stores to numba's loads of ``meminfo->data``: the
    # temporary's data pointer is then visibly the malloc'd block, which alias analysis (and
    # so Enzyme's cache analysis) knows cannot alias the input arrays.
    pm.add_gvn_pass()
    pm.add_cfg_simplification_pass()
    pm.add_dead_code_elimination_pass()
    pm.add_global_dce_pass()
    pm.add_strip_dead_prototypes_pass()
    pm.run(module)
    remaining = {f.name for f in module.functions if f.is_declaration}
    needed = classify_declarations(remaining, compiled.qualname)
    text = rewrite(str(module))
    llvm.parse_assembly(text).verify()
    return text, entry, needed, exceptions
