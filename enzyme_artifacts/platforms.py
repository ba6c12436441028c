"""Platforms in Julia's spelling: ``x86_64-linux-gnu``, ``aarch64-apple-darwin`` ...

A :class:`Platform` is the value the manifest is matched against.  The host's is derived
from :mod:`packaging.tags` (the most specific tag pip would install for this interpreter),
so it agrees with what pip believes about the machine (glibc versus musl included).

Triplets, as Julia's ``BinaryPlatforms.triplet`` writes them:

>>> Platform("x86_64", "linux", "glibc").triplet
'x86_64-linux-gnu'
>>> Platform("aarch64", "linux", "musl").triplet
'aarch64-linux-musl'
>>> Platform("aarch64", "macos").triplet
'aarch64-apple-darwin'
>>> Platform("x86_64", "windows").triplet
'x86_64-w64-mingw32'
>>> Platform.parse("x86_64-linux-gnu-cxx11")
Platform(arch='x86_64', os='linux', libc='glibc', cxxstring_abi='cxx11')
"""

from __future__ import annotations

import functools
import platform as _stdlib_platform
import re
import sys
from dataclasses import dataclass

from .errors import UnsupportedPlatformError

__all__ = ["ARCHES", "CXXSTRING_ABIS", "LIBCS", "OSES", "Platform", "host_platform"]

ARCHES = ("x86_64", "aarch64", "i686", "armv7l", "armv6l", "powerpc64le", "riscv64")
OSES = ("linux", "macos", "windows", "freebsd")
LIBCS = ("glibc", "musl")
CXXSTRING_ABIS = ("cxx03", "cxx11")

_ARCH_ALIASES = {
    "amd64": "x86_64",
    "x86_64": "x86_64",
    "x64": "x86_64",
    "arm64": "aarch64",
    "aarch64": "aarch64",
    "i386": "i686",
    "i586": "i686",
    "i686": "i686",
    "x86": "i686",
    "win32": "i686",
    "armv7l": "armv7l",
    "armv6l": "armv6l",
    "ppc64le": "powerpc64le",
    "powerpc64le": "powerpc64le",
    "riscv64": "riscv64",
}
_OS_VENDOR = {"linux": "linux", "macos": "apple-darwin", "windows": "w64-mingw32", "freebsd": "unknown-freebsd"}
_LIBC_SUFFIX = {"glibc": "gnu", "musl": "musl"}


@dataclass(frozen=True, slots=True)
class Platform:
    """One binary platform: architecture, OS, C library (Linux only) and C++ string ABI.

    Invariants: ``arch`` is in :data:`ARCHES`, ``os`` in :data:`OSES`; ``libc`` is set
    exactly when ``os == "linux"``; ``cxxstring_abi`` is ``None`` (unknown or irrelevant),
    ``"cxx03"`` or ``"cxx11"``.  Equality and hashing use all four fields; use
    :meth:`matches` to compare with a manifest entry, where ``None`` is a wildcard.
    """

    arch: str
    os: str
    libc: str | None = None
    cxxstring_abi: str | None = None

    def __post_init__(self) -> None:
        if self.arch not in ARCHES:
            raise ValueError(f"unknown architecture {self.arch!r}; expected one of {', '.join(ARCHES)}")
        if self.os not in OSES:
            raise ValueError(f"unknown operating system {self.os!r}; expected one of {', '.join(OSES)}")
        if self.os == "linux" and self.libc not in LIBCS:
            raise ValueError(f"a linux platform needs libc 'glibc' or 'musl', not {self.libc!r}")
        if self.os != "linux" and self.libc is not None:
            raise ValueError(f"libc is only meaningful on linux, not on {self.os}")
        if self.cxxstring_abi is not None and self.cxxstring_abi not in CXXSTRING_ABIS:
            raise ValueError(f"cxxstring_abi must be 'cxx03' or 'cxx11', not {self.cxxstring_abi!r}")

    @property
    def triplet(self) -> str:
        """Julia's triplet without tags, e.g. ``x86_64-linux-gnu``."""
        base = f"{self.arch}-{_OS_VENDOR[self.os]}"
        if self.os == "linux":
            base += "-" + _LIBC_SUFFIX[self.libc or "glibc"]
        return base

    @property
    def shared_library_suffix(self) -> str:
        """``.so``, ``.dylib`` or ``.dll``."""
        return {"macos": ".dylib", "windows": ".dll"}.get(self.os, ".so")

    def with_cxxstring_abi(self, abi: str | None) -> Platform:
        """A copy with another C++ string ABI."""
        return Platform(self.arch, self.os, self.libc, abi)

    def matches(self, other: Platform) -> bool:
        """True when both describe the same arch/os/libc and the ABIs do not conflict.

        A ``cxxstring_abi`` of ``None`` on either side matches any ABI.
        """
        if (self.arch, self.os, self.libc) != (other.arch, other.os, other.libc):
            return False
        return self.cxxstring_abi is None or other.cxxstring_abi is None or (
            self.cxxstring_abi == other.cxxstring_abi
        )

    def __str__(self) -> str:
        if self.cxxstring_abi:
            return f"{self.triplet}-{self.cxxstring_abi}"
        return self.triplet

    @classmethod
    def parse(cls, text: str) -> Platform:
        """Parse a triplet, optionally followed by ``-cxx03``/``-cxx11``.

        Raises :class:`ValueError` naming the text when it is not a known triplet.
        """
        m = re.fullmatch(
            r"(?P<arch>[a-z0-9_]+)-(?P<rest>linux-gnu|linux-musl|apple-darwin|w64-mingw32|unknown-freebsd)"
            r"(?:-(?P<abi>cxx03|cxx11))?",
            text.strip(),
        )
        if not m:
            raise ValueError(f"{text!r} is not a platform triplet such as 'x86_64-linux-gnu'")
        arch = _ARCH_ALIASES.get(m["arch"], m["arch"])
        rest = m["rest"]
        os_name = {"apple-darwin": "macos", "w64-mingw32": "windows", "unknown-freebsd": "freebsd"}.get(
            rest, "linux"
        )
        libc = {"linux-gnu": "glibc", "linux-musl": "musl"}.get(rest)
        return cls(arch, os_name, libc, m["abi"])


def _platform_from_tag(tag_platform: str) -> Platform | None:
    """Map one wheel platform tag (``manylinux_2_17_x86_64``, ``macosx_11_0_arm64``...)."""
    if tag_platform.startswith(("manylinux", "linux_")):
        arch = tag_platform.split("_", 3)[-1] if tag_platform.startswith("manylinux_") else (
            tag_platform.split("_", 1)[1]
        )
        libc = "glibc"
    elif tag_platform.startswith("musllinux_"):
        arch = tag_platform.split("_", 3)[-1]
        libc = "musl"
    elif tag_platform.startswith("macosx_"):
        arch = tag_platform.split("_", 3)[-1]
        if arch in ("universal2", "universal", "intel", "fat", "fat3", "fat64"):
            return None
        return _make(arch, "macos", None)
    elif tag_platform.startswith("win"):
        win_arch = {"win_amd64": "x86_64", "win32": "i686", "win_arm64": "aarch64"}.get(tag_platform)
        return _make(win_arch, "windows", None)
    elif tag_platform.startswith("freebsd"):
        return _make(tag_platform.rsplit("_", 1)[-1], "freebsd", None)
    else:
        return None
    return _make(arch, "linux", libc)


def _make(arch: str | None, os_name: str, libc: str | None) -> Platform | None:
    arch = _ARCH_ALIASES.get((arch or "").lower())
    if arch is None:
        return None
    return Platform(arch, os_name, libc)


@functools.cache
def host_platform(cxxstring_abi: str | None = None) -> Platform:
    """This interpreter's platform, from the first :func:`packaging.tags.sys_tags` entry
    that names a binary platform.

    ``cxxstring_abi`` is attached as given: the loader fills it from the libLLVM it
    found (an LLVM built with the cxx11 string ABI needs a cxx11 plugin).  Raises
    :class:`~enzyme_artifacts.errors.UnsupportedPlatformError` when no tag maps to a known
    platform.  Cached; tests clear it with ``host_platform.cache_clear()``.
    """
    from packaging import tags  # ~10 ms: keep it off the import path

    for tag in tags.sys_tags():
        plat = _platform_from_tag(tag.platform)
        if plat is not None:
            return plat.with_cxxstring_abi(cxxstring_abi)
    machine = _stdlib_platform.machine()
    raise UnsupportedPlatformError(
        f"cannot name this platform ({sys.platform}, {machine}) as a binary triplet; "
        "set ENZYME_ARTIFACTS_LIBRARY to a locally built LLVMEnzyme library instead"
    )
