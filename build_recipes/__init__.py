"""Build recipes for Enzyme's LLVM plugin: one recipe, many platforms and LLVM majors.

``build_recipes/enzyme.toml`` is the single source of truth (Enzyme version, release
tarball and separately fetched license, LLVM majors, platforms with their wheel policy, CI
runner and CMake options).  The command line, ``python -m build_recipes``, has these commands:

``plan``        the build matrix, the exact commands and the source (URL, sha256) (``--json`` for CI)
``build``       CMake configure + build of LLVMEnzyme-N, binary checks, tarball + fragment,
                named by the version read from the source
``repack``      a published wheel's binary turned into our tarball + fragment
``check``       the binary checks alone
``publish``     a mirror folder for ``ENZYME_ARTIFACTS_MIRROR`` and its merged manifest
``from-wheel``  the tarball + fragment recovered from an artifact wheel

Modules, one concern each: :mod:`.recipe` (parsing), :mod:`.plan` (matrix, command
lines), :mod:`.source` (tarball or checkout, version label, licenses), :mod:`._archive`
(safe extraction), :mod:`.build`, :mod:`.checks`, :mod:`.package` (reproducible tarballs,
fragments; the manifest text itself is :mod:`enzyme_artifacts.manifest_writer`'s),
:mod:`.repack`, :mod:`.publish`, :mod:`.wheel`, :mod:`.environment`, :mod:`.errors`,
:mod:`.cli`.  Importing this package imports none of them.

Environment (read in :mod:`.environment` through ``enzyme_artifacts._env``; empty means unset):

``ENZYME_RECIPES_RECIPE``     another recipe file (``--recipe`` wins)
``ENZYME_RECIPES_LLVM``       the LLVM major of a CI cell (cibuildwheel's commands; the wheel
                              project packs that artifact)
``ENZYME_RECIPES_PLATFORM``   the recipe platform of a CI cell (cibuildwheel's commands)
``ENZYME_RECIPES_ARTIFACTS``  the artifact folder the wheel project packs
``ENZYME_RECIPES_ROOT``       the repository the wheel project imports build_recipes from
``SOURCE_DATE_EPOCH``         member mtime in tarballs (default 0)
``ENZYME_RECIPES_INSTALL_ROUTE``, ``ENZYME_RECIPES_DRY_RUN``
                              read by ``build_recipes/ci/install-llvm.sh``: force its route
                              (debian, manylinux, alpine, macos, windows); print its commands
                              instead of running them

The former names ``ENZYME_RECIPE``, ``ENZYME_WHEEL_LLVM`` and ``ENZYME_WHEEL_ARTIFACTS`` are
refused with a message naming the new one.  The checks' libLLVM is found like the loader
finds it (``ENZYME_ARTIFACTS_LLVM_LIBRARY`` first).
"""

from __future__ import annotations

__all__: list[str] = []
