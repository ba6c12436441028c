"""The native layer: everything that calls into libLLVM or Enzyme, and nothing above it.

``ffi/`` holds the declaration tables (one per library, one per Enzyme C-API profile) and
the locked bindings; :mod:`.library` loads the libraries; :mod:`.handles` owns every
handle and carries the operations on them; :mod:`.types` reads signatures;
:mod:`.target` and :mod:`.jit` are the target machines and the one JIT;
:mod:`.trampolines` protects Enzyme calls with setjmp; :mod:`.enzyme` asks Enzyme for
derivatives; :mod:`.transforms` and :mod:`.tuning` edit IR; :mod:`.reports` collects what
Enzyme and LLVM report.  No module outside this package calls an ``LLVM*`` or Enzyme
symbol.
"""
