"""Build recipes for Enzyme's LLVM plugin: one recipe, many platforms and LLVM majors.

``build_recipes/enzyme.toml`` is the single source of truth (Enzyme version and source,
LLVM majors, platforms with their wheel policy, CI runner and CMake options).  The
command line, ``python -m build_recipes``, has these commands:

``plan``        the build matrix and the exact commands (``--json`` for CI)
``build``       CMake configure + build of LLVMEnzyme-N, binary checks, tarball + fragment
``repack``      a published wheel's binary turned into our tarball + fragment
``check``       the binary checks alone
``publish``     a mirror folder for ``ENZYME_ARTIFACTS_MIRROR`` and its merged manifest
``from-wheel``  the tarball + fragment recovered from an artifact wheel

Modules, one concern each: :mod:`.recipe` (parsing), :mod:`.plan` (matrix, command
lines), :mod:`.source` (tarball or checkout), :mod:`.build`, :mod:`.checks`,
:mod:`.package` (reproducible tarballs, fragments), :mod:`.repack`, :mod:`.publish`,
:mod:`.wheel`, :mod:`.cli`.  Importing this package imports none of them.

Environment: ``ENZYME_RECIPE`` (another recipe file), ``SOURCE_DATE_EPOCH`` (member
mtime in tarballs, default 0).  The checks' libLLVM is found like the loader finds it
(``ENZYME_ARTIFACTS_LLVM_LIBRARY`` first).
"""

from __future__ import annotations

__all__: list[str] = []
