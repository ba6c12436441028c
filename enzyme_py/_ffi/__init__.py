"""ctypes declarations of the native libraries: LLVM-C (:mod:`.llvm`) and Enzyme's C API
(:mod:`.enzyme`, one module per C-API profile).  Declarations only: no logic, no state."""

from __future__ import annotations

__all__: list[str] = []
