"""The diagnosis behind ``enzyme-artifacts status`` and ``enzyme-artifacts verify [--fix]``.

:func:`diagnose` answers "what would be loaded, from where, and what is missing" as a
:class:`Diagnosis`: every place tried for the shared libLLVM (per candidate major when
none was found) and for the LLVMEnzyme library (``ENZYME_ARTIFACTS_LIBRARY``, the
override, the cache, an installed package, a fetch), each with the command that would
fix it when it gave nothing.  It downloads nothing and writes nothing.  ``ok`` is false
when something asked for cannot work -- no libLLVM, no Enzyme for this platform, an
override that is refused, offline with nothing installed -- and ``error`` is then the
error that use would raise.  An artifact that is merely not downloaded yet is not a
problem: the first use fetches it.

:func:`verify` re-hashes every installed artifact and validates every override;
``fix=True`` re-fetches broken artifacts (and removes those the manifest no longer has).

Both return plain data (``.data``, JSON-ready, stable keys); :mod:`.cli` renders it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from . import _env
from .errors import ArtifactError, LLVMNotFoundError

__all__ = ["Diagnosis", "VerifyReport", "diagnose", "llvm_dict", "platform_dict", "summary", "verify"]

PROG = "enzyme-artifacts"


def summary(e: BaseException) -> str:
    """One line for an error: a missing libLLVM in a few words (its full list of places
    tried is shown once, by ``status``), anything else its message joined on one line."""
    if isinstance(e, LLVMNotFoundError) and e.major is not None:
        from .llvm import install_commands

        cmds = install_commands(e.major)
        return (
            f"no usable shared libLLVM of LLVM {e.major} was found; install it "
            f"({cmds['debian']} | {cmds['homebrew']} | {cmds['conda']}) or set "
            f"ENZYME_ARTIFACTS_LLVM_LIBRARY; `{PROG} status` lists every place that was tried"
        )
    text = " ".join(line.strip() for line in str(e).splitlines() if line.strip())
    return text or type(e).__name__


@dataclass
class Diagnosis:
    """The result of :func:`diagnose`: ``data`` to render, ``ok``, and the ``error``
    that stops a use when not ok."""

    data: dict[str, Any]
    ok: bool
    error: BaseException | None = None


@dataclass
class VerifyReport:
    """The result of :func:`verify`: ``data`` to render; ``ok`` when nothing is broken
    (after ``--fix``)."""

    data: dict[str, Any]
    ok: bool
    errors: list[BaseException] = field(default_factory=list)


def llvm_dict(lib: Any) -> dict[str, Any]:
    """A libLLVM found (:class:`enzyme_artifacts.llvm.LLVMLibrary`) as JSON."""
    return {
        "path": str(lib.path),
        "major": lib.major,
        "version": lib.version,
        "cxx11_abi": lib.cxx11_abi,
        "assertions": lib.assertions,
        "soname": lib.soname,
        "origin": lib.origin,
    }


def platform_dict(p: Any) -> dict[str, Any]:
    """A platform as JSON."""
    return {
        "platform": str(p),
        "triplet": p.triplet,
        "arch": p.arch,
        "os": p.os,
        "libc": p.libc,
        "cxxstring_abi": p.cxxstring_abi,
    }


def _attempt_dict(a: Any) -> dict[str, Any]:
    return {"origin": a.origin, "where": a.where, "path": a.path, "outcome": a.outcome,
            "accepted": a.accepted, "fix": a.fix}


def _step_dict(s: Any) -> dict[str, Any]:
    return {"origin": s.origin, "where": s.where, "outcome": s.outcome, "accepted": s.accepted, "fix": s.fix}


def _major(llvm: int | None) -> tuple[int | None, str | None, list[Any], BaseException | None]:
    """The major to diagnose, how it was chosen, and the libLLVM searches made to choose it."""
    from pathlib import Path

    from .llvm import search_libllvm
    from .plugin import plugin_llvm_major
    from .selection import LIBRARY_ENV, LLVM_VERSION_ENV, candidate_majors, env_library, env_major

    if llvm is not None:
        return llvm, "--llvm", [], None
    try:
        env = env_major()
    except ValueError as e:
        return None, None, [], e
    if env is not None:
        return env, LLVM_VERSION_ENV, [], None
    lib = env_library()
    if lib:
        major, how = plugin_llvm_major(Path(lib).expanduser())
        if major is not None:
            return major, f"{LIBRARY_ENV} ({how})", [], None
    try:
        majors = candidate_majors()
    except ArtifactError as e:
        return None, None, [], e
    if not majors:
        from .errors import UnsupportedPlatformError
        from .platforms import host_platform

        return None, None, [], UnsupportedPlatformError(
            f"no Enzyme for {host_platform()}: the manifest has no entry for it and no override is set; "
            f"build Enzyme and run `{PROG} dev PATH --llvm N`, or set {LIBRARY_ENV}"
        )
    searches = [search_libllvm(m) for m in majors]
    for s in searches:
        if s.found is not None:
            return s.major, "highest major with a manifest entry or an override, and a libLLVM", searches, None
    return None, None, searches, searches[0].error()


def diagnose(llvm: int | None = None) -> Diagnosis:
    """What would be loaded, from where, and what is missing (see the module docstring)."""
    from .cache import Cache
    from .llvm import install_commands, search_libllvm
    from .manifest import load_manifest
    from .overrides import load_overrides
    from .paths import dev_root, overrides_path
    from .platforms import host_platform
    from .resolver import explain

    data: dict[str, Any] = {"environment": _env.with_prefix("ENZYME_ARTIFACTS_")}
    next_steps: list[str] = []
    error: BaseException | None = None

    # -- the LLVM major, and libLLVM
    major, source, searches, major_error = _major(llvm)
    data["llvm_major"] = {
        "value": major, "source": source,
        "error": None if major_error is None else summary(major_error),
    }
    lib = None
    if major is not None:
        search = search_libllvm(major)
        searches = [search]
    if searches:
        first = next((s for s in searches if s.found is not None), searches[0])
        lib = first.found
        data["libllvm"] = {
            "found": lib is not None,
            "major": first.major,
            "library": llvm_dict(lib) if lib is not None else None,
            "attempts": [_attempt_dict(a) for a in first.attempts],
            "searches": [
                {"major": s.major, "found": s.found is not None, "attempts": [_attempt_dict(a) for a in s.attempts]}
                for s in searches
            ],
            "install": None if lib is not None else install_commands(first.major),
            "not_searched": None,
        }
        if lib is None:
            error = error or first.error()
            for s in searches:
                cmds = install_commands(s.major)
                next_steps.append(f"install a shared libLLVM {s.major}: {cmds['debian']} (Debian/Ubuntu), "
                                  f"{cmds['homebrew']} (macOS), {cmds['conda']} (conda), or set "
                                  "ENZYME_ARTIFACTS_LLVM_LIBRARY")
    else:
        data["libllvm"] = {"found": False, "major": None, "library": None, "attempts": None, "searches": [],
                           "install": None,
                           "not_searched": summary(major_error) if major_error else "no LLVM major to search for"}
        error = error or major_error

    # -- platform
    try:
        plat = host_platform(lib.cxxstring_abi if lib is not None else None)
        data["platform"] = platform_dict(plat)
    except ArtifactError as e:
        plat = None
        data["platform"] = {"error": summary(e)}
        error = error or e

    # -- the plugin: every step resolve() takes, without downloading
    plugin: dict[str, Any] = {"found": False, "library": None, "origin": None, "capi": None, "key": None,
                              "attempts": [], "error": None, "would_fetch": False}
    would: dict[str, Any] = {"library": None, "origin": None, "capi": None, "key": None, "llvm": None,
                             "enzyme_version": None, "missing": None}
    if major is not None:
        explanation = explain(major)
        plugin["attempts"] = [_step_dict(s) for s in explanation.steps]
        r = explanation.resolved
        if r is not None:
            key = r.entry.key if r.entry is not None else None
            plugin.update(found=True, library=str(r.library), origin=r.origin, capi=r.capi, key=key)
            would.update(library=str(r.library), origin=r.origin, capi=r.capi, key=key, llvm=str(r.llvm.path),
                         enzyme_version=r.enzyme_version)
        elif explanation.error is not None:
            err = explanation.error
            plugin["would_fetch"] = explanation.would_fetch
            if isinstance(err, LLVMNotFoundError):
                plugin["attempts"].append({
                    "origin": "libllvm", "where": f"a shared libLLVM {major}",
                    "outcome": "stopped here: no shared libLLVM (see libLLVM)", "accepted": False,
                    "fix": install_commands(major)["debian"],
                })
                would["missing"] = f"a shared libLLVM {major} (see libLLVM)"
            else:
                plugin["error"] = summary(err)
                would["missing"] = summary(err)
                if not explanation.would_fetch:
                    error = error or err
                fixes = [s.fix for s in explanation.steps if s.fix and not s.accepted]
                next_steps += [f"run `{f}`" if f.startswith(PROG) else f for f in fixes]
    else:
        plugin["attempts"] = [{"origin": "libllvm", "where": "an LLVM major", "outcome": "not looked for: "
                               + (data["libllvm"]["not_searched"] or "no libLLVM"), "accepted": False,
                               "fix": None}]
        would["missing"] = "a shared libLLVM (see libLLVM)"
    data["plugin"] = plugin
    data["would_load"] = would

    # -- manifest and cache
    cache = Cache()
    installed_all = cache.installed()
    data["cache"] = {
        "root": str(cache.root),
        "exists": cache.root.is_dir(),
        "artifacts": [
            {"key": a.key, "path": str(a.path), "library": str(a.library), "source": a.source,
             "installed_at": a.installed_at, "llvm_soname": a.llvm_soname}
            for a in installed_all
        ],
    }
    try:
        manifest = load_manifest()
        entries = manifest.for_platform(plat) if plat is not None else ()
        rows = []
        for ent in entries:
            inst = cache.lookup(ent, llvm_soname=lib.soname if lib is not None else None)
            rows.append({
                "key": ent.key, "enzyme_version": ent.enzyme_version, "llvm_version": ent.llvm_version,
                "capi": ent.capi, "platform": str(ent.platform), "lazy": ent.lazy,
                "sources": [s.describe() for s in ent.sources],
                "installed": inst is not None, "path": str(inst.library) if inst is not None else None,
            })
        data["manifest"] = {"path": str(manifest.path), "entries": rows, "total_entries": len(manifest.entries),
                            "error": None}
    except ArtifactError as e:
        data["manifest"] = {"path": None, "entries": [], "total_entries": 0, "error": summary(e)}
        error = error or e

    # -- overrides
    try:
        ovs = load_overrides()
        data["overrides"] = {
            "file": str(overrides_path()), "dev_dir": str(dev_root()), "error": None,
            "entries": [
                {"llvm": o.llvm, "library": str(o.library), "kind": o.kind, "capi": o.capi,
                 "exists": o.library.exists(), "resolves_to": os.path.realpath(o.library)}
                for o in ovs.values()
            ],
        }
    except ArtifactError as e:
        data["overrides"] = {"file": str(overrides_path()), "dev_dir": str(dev_root()), "entries": [],
                             "error": summary(e)}
        error = error or e

    ok = error is None
    data["next_steps"] = list(dict.fromkeys(next_steps))
    data["ok"] = ok
    return Diagnosis(data, ok, error)


def verify(fix: bool = False) -> VerifyReport:
    """Re-hash every installed artifact and validate every override (see the module docstring)."""
    from .cache import Cache
    from .develop import use_override
    from .llvm import find_libllvm
    from .manifest import load_manifest
    from .overrides import load_overrides

    cache = Cache()
    rows: list[dict[str, Any]] = []
    bad = False
    manifest = None
    errors: list[BaseException] = []
    for inst in cache.installed():
        problems = cache.verify(inst)
        row: dict[str, Any] = {"key": inst.key, "path": str(inst.path), "problems": problems, "fixed": False}
        if problems and fix:
            manifest = manifest or load_manifest()
            entry = next((e for e in manifest.entries if e.key == inst.key), None)
            cache.remove(inst)
            if entry is None:
                row["fixed"] = True
                row["action"] = "removed (no longer in the manifest)"
            else:
                new = cache.install(entry, llvm_soname=inst.llvm_soname, progress=None)
                left = cache.verify(new)
                row["fixed"] = not left
                row["action"] = "re-fetched"
                row["path"] = str(new.path)
                row["problems_after_fix"] = left
        if problems and not row["fixed"]:
            bad = True
        rows.append(row)
    ov_rows: list[dict[str, Any]] = []
    for ov in load_overrides().values():
        problem = None
        try:
            use_override(ov, find_libllvm(ov.llvm))
        except (ArtifactError, ValueError) as e:
            problem = summary(e)
            errors.append(e)
            bad = True
        ov_rows.append({"llvm": ov.llvm, "library": str(ov.library), "problem": problem})
    data = {"ok": not bad, "artifacts": rows, "overrides": ov_rows, "cache": str(cache.root)}
    return VerifyReport(data, not bad, errors)
