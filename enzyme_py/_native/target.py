"""The process's target machines: the host triple, and this machine's CPU name and
features unless ``options().host_cpu`` is false (as ``-march=native`` does).

One target machine per (host CPU or generic, code generator level) is created on first
use and kept for the life of the process.
"""

from __future__ import annotations

import ctypes

from .. import config
from ..errors import CompileError
from .handles import TargetMachineRef
from .library import native, take_message

__all__ = ["host_target_machine"]

_machines: dict[tuple[bool, int], TargetMachineRef] = {}


def host_target_machine(codegen_level: int | None = None) -> TargetMachineRef:
    """The target machine for ``codegen_level`` (default ``options().codegen_level``)."""
    opts = config.options()
    host = opts.host_cpu
    level = opts.codegen_level if codegen_level is None else codegen_level
    cached = _machines.get((host, level))
    if cached is not None:
        return cached
    nat = native()
    lib = nat.llvm
    target = ctypes.c_void_p()
    err = ctypes.c_void_p()
    triple = nat.triple.encode()
    if lib.LLVMGetTargetFromTriple(triple, ctypes.byref(target), ctypes.byref(err)):
        msg = take_message(lib, err.value)
        raise CompileError(f"LLVM has no target for {nat.triple}: {msg}")
    cpu = nat.cpu.encode() if host else b"generic"
    features = nat.features.encode() if host else b""
    tm = TargetMachineRef(lib.LLVMCreateTargetMachine(target, triple, cpu, features, level, 2, 0))
    _machines[(host, level)] = tm
    return tm
