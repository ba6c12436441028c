"""Artifacts installed as Python packages: the ``py3-none-<platform>`` wheels that
``build_recipes`` makes for machines that cannot download at run time.

Such a wheel holds a package whose folder is an artifact prefix (``lib/LLVMEnzyme-N.so``,
``share/licenses/``) and announces it through the entry point group
:data:`ENTRY_POINT_GROUP`: the entry point's name is the manifest entry's key and its value
a function returning the prefix.  :func:`find_installed` is consulted by
:func:`enzyme_artifacts.resolve` after the cache and before any download, so the warm
path (a cache hit) never scans the installed distributions.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .manifest import ArtifactEntry

__all__ = ["ENTRY_POINT_GROUP", "find_installed"]

ENTRY_POINT_GROUP = "enzyme_artifacts.prefixes"


def find_installed(entry: ArtifactEntry, llvm_soname: str | None) -> Path | None:
    """The library of an installed package that provides ``entry``, or ``None``.

    A candidate is skipped when its entry point does not load, when the library is
    missing or resolves (through links) outside the prefix, or when its ``DT_NEEDED`` names a libLLVM other than ``llvm_soname`` (the
    host's), since the dynamic loader could not bind it here.
    """
    from importlib.metadata import entry_points

    from .elf import NotElfError, read_needed

    for ep in entry_points(group=ENTRY_POINT_GROUP, name=entry.key):
        try:
            prefix = Path(ep.load()())
        except (ImportError, AttributeError, TypeError, ValueError, OSError) as e:
            # a broken package must not stop the search, nor go unnoticed
            logging.getLogger(__name__).warning(
                "ignoring the %s entry point %r: %s", ENTRY_POINT_GROUP, ep.value, e
            )
            continue
        library = prefix / entry.library_relpath
        if not library.is_file():
            continue
        if not Path(os.path.realpath(library)).is_relative_to(os.path.realpath(prefix)):
            logging.getLogger(__name__).warning(
                "ignoring the %s entry point %r: its %s resolves outside its prefix %s",
                ENTRY_POINT_GROUP, ep.value, entry.library_relpath, prefix,
            )
            continue
        if llvm_soname is not None:
            try:
                llvms = [n for n in read_needed(library) if n.startswith("libLLVM")]
            except (NotElfError, OSError):
                continue
            if llvms and llvm_soname not in llvms:
                continue
        return library
    return None
