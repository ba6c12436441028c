"""The artifact manifest (``Artifacts.toml``): which LLVMEnzyme binary exists for which
platform and LLVM major, and where its bytes come from.

The format follows Julia's Artifacts.toml.  Each ``[[LLVMEnzyme]]`` table is one
:class:`ArtifactEntry`; its ``[[LLVMEnzyme.download]]`` tables are its sources, tried in
order.  Two source kinds exist:

* ``kind = "tarball"`` (the default when ``url`` is given): ``url``, ``sha256``, ``size``
  of a ``.tar.gz``/``.tar.xz``/``.tar.bz2``/``.tar`` holding ``lib/LLVMEnzyme-N.so``
  (``.dylib``, ``.dll``) and license files;
* ``kind = "wheel"``: a wheel resolved through pip's own configuration (``requirement``,
  ``platform``, ``python_version``), one ``member`` of it with its ``sha256`` (and
  optionally ``size``), the wheel's own ``wheel_sha256``, the ``DT_NEEDED`` renames in
  ``replace_needed`` (the value ``"@libllvm"`` stands for the SONAME of the host
  libLLVM found at install time) and ``license_members`` to copy.

The parser is strict: an unknown key, a wrong type, a malformed digest or a duplicated
(name, Enzyme version, LLVM major, platform) raise :class:`ManifestError` naming the file,
the entry (``LLVMEnzyme[0].download[1]``) and the field.

Environment: ``ENZYME_ARTIFACTS_MANIFEST`` is the path of a manifest that replaces the
bundled one.  Parsed manifests are cached per (path, mtime, size): a second
:func:`load_manifest` of an unchanged file costs one ``stat``.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import Any

from . import _env
from .errors import DownloadError, ManifestError, UnsupportedPlatformError
from .platforms import ARCHES, CXXSTRING_ABIS, LIBCS, OSES, Platform

__all__ = [
    "LIBLLVM_PLACEHOLDER",
    "MANIFEST_ENV",
    "ArtifactEntry",
    "Manifest",
    "Source",
    "TarballSource",
    "WheelSource",
    "bundled_manifest_path",
    "load_manifest",
    "parse_manifest",
    "resolve_renames",
]

MANIFEST_ENV = "ENZYME_ARTIFACTS_MANIFEST"
LIBLLVM_PLACEHOLDER = "@libllvm"
"""A ``replace_needed`` value meaning "the SONAME of the host libLLVM that was found"."""

_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_VERSION = re.compile(r"[0-9]+(?:\.[0-9]+)*(?:[-+._a-zA-Z0-9]*)?")
_WHEEL_PLATFORM = re.compile(r"[a-z0-9_]+")
_PYTHON_VERSION = re.compile(r"[0-9](?:\.[0-9]+)?")


@dataclass(frozen=True, slots=True)
class TarballSource:
    """A tarball at ``url`` of exactly ``size`` bytes with the given ``sha256`` (lowercase hex)."""

    url: str
    sha256: str
    size: int
    replace_needed: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def __hash__(self) -> int:
        return hash((self.url, self.sha256, self.size, tuple(sorted(self.replace_needed.items()))))

    def describe(self) -> str:
        """A one-line human description, e.g. for the cache record."""
        return self.url


@dataclass(frozen=True, slots=True)
class WheelSource:
    """One member of a wheel obtained with ``pip download`` (pip's configuration decides
    the index).  ``sha256``/``size`` are those of the member as stored in the wheel,
    before any ``DT_NEEDED`` rewrite.  ``wheel_sha256``, when set, makes pip check the
    wheel itself with ``--require-hashes``."""

    requirement: str
    platform: str
    python_version: str
    member: str
    sha256: str
    size: int | None = None
    wheel_sha256: str | None = None
    replace_needed: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    license_members: tuple[str, ...] = ()

    def __hash__(self) -> int:
        return hash((self.requirement, self.platform, self.python_version, self.member, self.sha256))

    def describe(self) -> str:
        """A one-line human description, e.g. for the cache record."""
        return f"wheel {self.requirement} ({self.platform}, python {self.python_version}) member {self.member}"


Source = TarballSource | WheelSource


@dataclass(frozen=True, slots=True)
class ArtifactEntry:
    """One binary: a (name, Enzyme version, LLVM major, platform) and its sources.

    ``libc`` is set exactly for Linux; ``cxxstring_abi`` may be ``None`` (matches any).
    ``capi`` names the C-API profile (see :mod:`enzyme_artifacts.capi`).
    """

    name: str
    enzyme_version: str
    llvm_version: int
    arch: str
    os: str
    libc: str | None
    cxxstring_abi: str | None
    capi: str
    lazy: bool
    sources: tuple[Source, ...]

    @property
    def platform(self) -> Platform:
        """The entry's platform (its ``cxxstring_abi`` included)."""
        return Platform(self.arch, self.os, self.libc, self.cxxstring_abi)

    @property
    def library_relpath(self) -> str:
        """Where the library sits inside an installed artifact, e.g. ``lib/LLVMEnzyme-15.so``."""
        return f"lib/{self.name}-{self.llvm_version}{self.platform.shared_library_suffix}"

    @property
    def key(self) -> str:
        """A stable identifier in Julia's tarball spelling,
        e.g. ``LLVMEnzyme.v0.0.289.x86_64-linux-gnu-cxx11-llvm_version+15``."""
        return f"{self.name}.v{self.enzyme_version}.{self.platform}-llvm_version+{self.llvm_version}"


@dataclass(frozen=True, slots=True)
class Manifest:
    """A parsed manifest: its file and its entries, in file order."""

    path: Path
    entries: tuple[ArtifactEntry, ...]

    def for_platform(self, platform: Platform) -> tuple[ArtifactEntry, ...]:
        """Entries whose platform matches ``platform`` (``None`` ABIs match any ABI)."""
        return tuple(e for e in self.entries if e.platform.matches(platform))

    def select(self, platform: Platform, llvm: int, *, name: str = "LLVMEnzyme") -> ArtifactEntry:
        """The entry for ``platform`` and LLVM major ``llvm``.

        When several fit, an entry whose ``cxxstring_abi`` equals the platform's wins over
        a wildcard, then the highest Enzyme version.  Raises
        :class:`UnsupportedPlatformError` listing what the manifest offers otherwise.
        """
        fits = [
            e for e in self.entries
            if e.name == name and e.llvm_version == llvm and e.platform.matches(platform)
        ]
        if fits:
            return max(fits, key=lambda e: (
                e.cxxstring_abi is not None and e.cxxstring_abi == platform.cxxstring_abi,
                _version_key(e.enzyme_version),
            ))
        offered = sorted({f"{e.platform} llvm {e.llvm_version}" for e in self.entries if e.name == name})
        same_platform = sorted(
            {e.llvm_version for e in self.entries if e.name == name and e.platform.matches(platform)}
        )
        hint = (
            f"for {platform} it has LLVM {', '.join(map(str, same_platform))}; "
            "install one of those LLVM versions or "
            if same_platform
            else ""
        )
        raise UnsupportedPlatformError(
            f"{self.path} has no {name} entry for {platform} with LLVM {llvm} "
            f"(it offers: {'; '.join(offered) or 'nothing'}); {hint}"
            "build Enzyme locally and point ENZYME_ARTIFACTS_LIBRARY (or `enzyme-artifacts dev PATH`) at it"
        )


def _version_key(v: str) -> tuple[Any, ...]:
    from packaging.version import InvalidVersion, Version

    try:
        return (1, Version(v))
    except InvalidVersion:
        return (0, v)


def resolve_renames(source: Source, llvm_soname: str | None) -> dict[str, str]:
    """``replace_needed`` with ``"@libllvm"`` replaced by ``llvm_soname``.

    Raises :class:`~enzyme_artifacts.errors.DownloadError` when a placeholder needs a SONAME and none was given.
    """
    out: dict[str, str] = {}
    for old, new in source.replace_needed.items():
        if new == LIBLLVM_PLACEHOLDER:
            if not llvm_soname:
                raise DownloadError(
                    f"{source.describe()} must be bound to the host's libLLVM (DT_NEEDED {old} -> "
                    f"{LIBLLVM_PLACEHOLDER}), but no libLLVM SONAME was given; pass llvm_soname "
                    "(the loader finds it with find_libllvm) or set ENZYME_ARTIFACTS_LLVM_LIBRARY"
                )
            new = llvm_soname
        out[old] = new
    return out


def bundled_manifest_path() -> Path:
    """The ``Artifacts.toml`` shipped inside this package."""
    return Path(__file__).with_name("Artifacts.toml")


_CACHE: dict[Path, tuple[tuple[int, int], Manifest]] = {}
_CACHE_LOCK = threading.Lock()


def load_manifest(path: str | os.PathLike[str] | None = None) -> Manifest:
    """Parse and validate a manifest.

    ``path=None`` means ``$ENZYME_ARTIFACTS_MANIFEST`` when set, else the bundled file.
    Results are cached per (path, mtime, size).  Raises :class:`ManifestError` for a
    missing, unreadable or malformed file.
    """
    env = _env.path(MANIFEST_ENV) if path is None else None
    if path is None:
        p = env or bundled_manifest_path()
    else:
        p = Path(path)
    try:
        st = p.stat()
    except OSError as e:
        where = f" (from {MANIFEST_ENV})" if env is not None else ""
        raise ManifestError(
            f"cannot read manifest {p}{where}: {e.strerror or e}; "
            f"point {MANIFEST_ENV} at an existing Artifacts.toml or unset it"
        ) from None
    stamp = (st.st_mtime_ns, st.st_size)
    with _CACHE_LOCK:
        hit = _CACHE.get(p)
        if hit is not None and hit[0] == stamp:
            return hit[1]
    try:
        text = p.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ManifestError(f"cannot read manifest {p}: {e}") from None
    manifest = parse_manifest(text, p)
    with _CACHE_LOCK:
        _CACHE[p] = (stamp, manifest)
    return manifest


def clear_cache() -> None:
    """Forget every cached manifest (tests)."""
    with _CACHE_LOCK:
        _CACHE.clear()


def parse_manifest(text: str, path: str | os.PathLike[str] = "<string>") -> Manifest:
    """Parse manifest ``text``; ``path`` is used in error messages and stored."""
    import tomllib

    p = Path(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ManifestError(f"{p}: not valid TOML: {e}") from None
    entries: list[ArtifactEntry] = []
    seen: dict[tuple[str, str, int, Platform], str] = {}
    if not data:
        raise ManifestError(f"{p}: the manifest has no entries; add at least one [[LLVMEnzyme]] table")
    for name, tables in data.items():
        if not _NAME.fullmatch(name):
            raise ManifestError(f"{p}: top-level key {name!r} is not an artifact name")
        if not isinstance(tables, list) or not tables or not all(isinstance(t, dict) for t in tables):
            raise ManifestError(
                f"{p}: {name!r} must be an array of tables written [[{name}]], not {_tname(tables)}"
            )
        for i, table in enumerate(tables):
            entry = _Ctx(p, f"{name}[{i}]").entry(name, table)
            ident = (entry.name, entry.enzyme_version, entry.llvm_version, entry.platform)
            if ident in seen:
                raise ManifestError(
                    f"{p}: {name}[{i}] duplicates {seen[ident]} (same enzyme_version "
                    f"{entry.enzyme_version}, llvm_version {entry.llvm_version}, platform {entry.platform}); "
                    "merge their download tables into one entry"
                )
            seen[ident] = f"{name}[{i}]"
            entries.append(entry)
    return Manifest(p, tuple(entries))


def _tname(v: object) -> str:
    return {
        str: "a string", int: "an integer", bool: "a boolean", float: "a float",
        list: "an array", dict: "a table",
    }.get(type(v), type(v).__name__)


_ENTRY_KEYS = {
    "enzyme_version", "llvm_version", "arch", "os", "libc", "cxxstring_abi", "capi", "lazy", "download",
}
_TARBALL_KEYS = {"kind", "url", "sha256", "size", "replace_needed"}
_WHEEL_KEYS = {
    "kind", "requirement", "platform", "python_version", "wheel_sha256", "member", "sha256", "size",
    "replace_needed", "license_members",
}


class _Ctx:
    """Error context: file and the dotted place of the table being read."""

    def __init__(self, path: Path, where: str) -> None:
        self.path = path
        self.where = where

    def fail(self, key: str | None, msg: str) -> ManifestError:
        at = f"{self.where}, field {key!r}" if key else self.where
        return ManifestError(f"{self.path}: {at}: {msg}")

    def check_keys(self, table: Mapping[str, Any], allowed: set[str], required: tuple[str, ...]) -> None:
        for key in table:
            if key not in allowed:
                raise self.fail(key, f"unknown key; allowed keys are {', '.join(sorted(allowed))}")
        for key in required:
            if key not in table:
                raise self.fail(key, "missing required key")

    def str_(self, table: Mapping[str, Any], key: str, *, pattern: re.Pattern[str] | None = None,
             choices: tuple[str, ...] | None = None) -> str:
        v = table[key]
        if not isinstance(v, str):
            raise self.fail(key, f"expected a string, got {_tname(v)} {v!r}")
        if not v.strip():
            raise self.fail(key, "must not be empty")
        if choices is not None and v not in choices:
            raise self.fail(key, f"{v!r} is not one of {', '.join(choices)}")
        if pattern is not None and not pattern.fullmatch(v):
            raise self.fail(key, f"malformed value {v!r}")
        return v

    def int_(self, table: Mapping[str, Any], key: str, *, minimum: int) -> int:
        v = table[key]
        if isinstance(v, bool) or not isinstance(v, int):
            raise self.fail(key, f"expected an integer, got {_tname(v)} {v!r}")
        if v < minimum:
            raise self.fail(key, f"must be at least {minimum}, got {v}")
        return v

    def hex_(self, table: Mapping[str, Any], key: str) -> str:
        v = table[key]
        if not isinstance(v, str) or not _HEX64.fullmatch(v):
            raise self.fail(key, f"expected a sha256 of 64 hexadecimal digits, got {v!r}")
        return v.lower()

    def relpath(self, value: object, key: str) -> str:
        if not isinstance(value, str) or not value:
            raise self.fail(key, f"expected a non-empty string path, got {value!r}")
        pp = PurePosixPath(value)
        if value.startswith("/") or "\\" in value or any(part in ("..", "") for part in value.split("/")) \
                or pp.is_absolute():
            raise self.fail(key, f"{value!r} must be a relative path inside the wheel without '..'")
        return value

    def entry(self, name: str, t: Mapping[str, Any]) -> ArtifactEntry:
        self.check_keys(t, _ENTRY_KEYS, ("enzyme_version", "llvm_version", "arch", "os", "capi", "download"))
        enzyme_version = self.str_(t, "enzyme_version", pattern=_VERSION)
        llvm_version = self.int_(t, "llvm_version", minimum=1)
        arch = self.str_(t, "arch", choices=ARCHES)
        os_name = self.str_(t, "os", choices=OSES)
        libc: str | None = None
        if "libc" in t:
            libc = self.str_(t, "libc", choices=LIBCS)
        if os_name == "linux" and libc is None:
            raise self.fail("libc", "a linux entry needs libc = \"glibc\" or \"musl\"")
        if os_name != "linux" and libc is not None:
            raise self.fail("libc", f"libc is only meaningful for os = \"linux\", not {os_name!r}")
        cxx = self.str_(t, "cxxstring_abi", choices=CXXSTRING_ABIS) if "cxxstring_abi" in t else None
        capi = self.str_(t, "capi")
        lazy = True
        if "lazy" in t:
            if not isinstance(t["lazy"], bool):
                raise self.fail("lazy", f"expected true or false, got {_tname(t['lazy'])} {t['lazy']!r}")
            lazy = t["lazy"]
        downloads = t["download"]
        if not isinstance(downloads, list) or not downloads or not all(isinstance(d, dict) for d in downloads):
            raise self.fail("download", f"expected one or more [[{name}.download]] tables")
        sources = tuple(
            _Ctx(self.path, f"{self.where}.download[{j}]").source(d) for j, d in enumerate(downloads)
        )
        return ArtifactEntry(name, enzyme_version, llvm_version, arch, os_name, libc, cxx, capi, lazy, sources)

    def source(self, d: Mapping[str, Any]) -> Source:
        kind = d.get("kind", "tarball" if "url" in d else None)
        if kind is None:
            raise self.fail("kind", "missing: give url (a tarball) or kind = \"wheel\"")
        if kind == "tarball":
            return self.tarball(d)
        if kind == "wheel":
            return self.wheel(d)
        raise self.fail("kind", f"{kind!r} is not \"tarball\" or \"wheel\"")

    def tarball(self, d: Mapping[str, Any]) -> TarballSource:
        self.check_keys(d, _TARBALL_KEYS, ("url", "sha256", "size"))
        url = self.str_(d, "url")
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise self.fail("url", f"{url!r} is not an http(s) URL with a host")
        if not parts.path.rsplit("/", 1)[-1]:
            raise self.fail("url", f"{url!r} does not end with a file name")
        return TarballSource(
            url, self.hex_(d, "sha256"), self.int_(d, "size", minimum=1), self.renames(d)
        )

    def renames(self, d: Mapping[str, Any]) -> Mapping[str, str]:
        """The optional ``replace_needed`` table: DT_NEEDED old name -> new name."""
        renames: dict[str, str] = {}
        if "replace_needed" in d:
            rn = d["replace_needed"]
            if not isinstance(rn, dict):
                raise self.fail("replace_needed", f"expected a table of old = new names, got {_tname(rn)}")
            for old, new in rn.items():
                if not isinstance(new, str) or not new or "\0" in new or not old:
                    raise self.fail("replace_needed", f"{old!r} must map to a non-empty string, got {new!r}")
                if new.startswith("@") and new != LIBLLVM_PLACEHOLDER:
                    raise self.fail(
                        "replace_needed", f"unknown placeholder {new!r}; the only one is {LIBLLVM_PLACEHOLDER!r}"
                    )
                renames[old] = new
        return MappingProxyType(renames)

    def wheel(self, d: Mapping[str, Any]) -> WheelSource:
        self.check_keys(d, _WHEEL_KEYS, ("requirement", "platform", "python_version", "member", "sha256"))
        requirement = self.str_(d, "requirement")
        from packaging.requirements import InvalidRequirement, Requirement

        try:
            req = Requirement(requirement)
        except InvalidRequirement as e:
            raise self.fail("requirement", f"{requirement!r} is not a valid requirement: {e}") from None
        if req.url or req.marker or req.extras:
            raise self.fail("requirement", f"{requirement!r}: give a plain 'name==version' requirement")
        wheel_sha = self.hex_(d, "wheel_sha256") if "wheel_sha256" in d else None
        if wheel_sha is not None:
            specs = list(req.specifier)
            if len(specs) != 1 or specs[0].operator not in ("==", "==="):
                raise self.fail(
                    "requirement", f"{requirement!r} must pin one version with == when wheel_sha256 is given"
                )
        platform = self.str_(d, "platform", pattern=_WHEEL_PLATFORM)
        python_version = self.str_(d, "python_version", pattern=_PYTHON_VERSION)
        member = self.relpath(d["member"], "member")
        sha = self.hex_(d, "sha256")
        size = self.int_(d, "size", minimum=1) if "size" in d else None
        licenses: tuple[str, ...] = ()
        if "license_members" in d:
            lm = d["license_members"]
            if not isinstance(lm, list):
                raise self.fail("license_members", f"expected an array of wheel member paths, got {_tname(lm)}")
            licenses = tuple(self.relpath(m, "license_members") for m in lm)
        return WheelSource(
            requirement, platform, python_version, member, sha, size, wheel_sha,
            self.renames(d), licenses,
        )
