"""Reproducible tarballs and manifest fragments that enzyme_artifacts reads back."""

from __future__ import annotations

import gzip
import tarfile
from pathlib import Path

import pytest

from build_recipes.package import package_library, write_fragment, write_tarball
from enzyme_artifacts.hashes import sha256_file
from enzyme_artifacts.manifest import ArtifactEntry, TarballSource, load_manifest

FIELDS = {"name": "LLVMEnzyme", "enzyme_version": "0.0.289", "llvm_version": 16, "arch": "aarch64",
          "os": "linux", "libc": "musl", "cxxstring_abi": "cxx11", "capi": "v0.0.289", "lazy": True}


def _files(tmp_path: Path) -> dict[str, Path | bytes]:
    lib = tmp_path / "lib.so"
    lib.write_bytes(b"\x7fELF" + bytes(range(256)) * 10)
    return {"share/licenses/LICENSE": b"license text\n", "lib/LLVMEnzyme-16.so": lib,
            "share/licenses/PROVENANCE": b"where from\n"}


def test_tarball_is_deterministic_and_normalised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = _files(tmp_path)
    a = write_tarball(tmp_path / "a.tar.gz", files, executables=["lib/LLVMEnzyme-16.so"])
    (tmp_path / "lib.so").touch()  # a new mtime on the input must not matter
    b = write_tarball(tmp_path / "b.tar.gz", dict(reversed(list(files.items()))),
                      executables=["lib/LLVMEnzyme-16.so"])
    assert a.read_bytes() == b.read_bytes()
    with gzip.open(a) as gz:
        gz.read()
    assert a.read_bytes()[4:8] == b"\0\0\0\0"  # gzip header mtime
    with tarfile.open(a) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == ["lib", "lib/LLVMEnzyme-16.so", "share", "share/licenses",
                                         "share/licenses/LICENSE", "share/licenses/PROVENANCE"]
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname) for m in members} == {(0, 0, 0, "", "")}
    modes = {m.name: (m.type, m.mode) for m in members}
    assert modes["lib"] == (tarfile.DIRTYPE, 0o755)
    assert modes["lib/LLVMEnzyme-16.so"] == (tarfile.REGTYPE, 0o755)
    assert modes["share/licenses/LICENSE"] == (tarfile.REGTYPE, 0o644)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    c = write_tarball(tmp_path / "c.tar.gz", files)
    with tarfile.open(c) as tar:
        assert {m.mtime for m in tar.getmembers()} == {1700000000}
    assert not list(tmp_path.glob("*.partial"))


@pytest.mark.parametrize("bad", ["/etc/passwd", "../x", "lib/../../x", "a\\b"])
def test_tarball_refuses_escaping_paths(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError, match="must be relative"):
        write_tarball(tmp_path / "x.tar.gz", {bad: b"x"})


def test_package_library_writes_tarball_fragment_and_info(tmp_path: Path) -> None:
    files = _files(tmp_path)
    out = tmp_path / "out"
    art = package_library(library=tmp_path / "lib.so", licenses={"LICENSE": b"license text\n"}, out_dir=out,
                          entry_fields=FIELDS, tarball_name="T.tar.gz", base_url="https://example.invalid/r/",
                          notes=["built for a test"], info={"wheel_tag": "musllinux_1_2_aarch64"})
    assert art.tarball == out / "T.tar.gz"
    assert art.sha256 == sha256_file(art.tarball) and art.size == art.tarball.stat().st_size
    (entry,) = load_manifest(art.fragment).entries
    assert entry == art.entry
    assert entry.key == "LLVMEnzyme.v0.0.289.aarch64-linux-musl-cxx11-llvm_version+16"
    assert art.fragment.name == entry.key + ".toml"
    assert entry.sources == (TarballSource("https://example.invalid/r/T.tar.gz", art.sha256, art.size),)
    assert "# built for a test" in art.fragment.read_text()
    import json

    info = json.loads(art.info.read_text())
    assert info["sha256"] == art.sha256 and info["wheel_tag"] == "musllinux_1_2_aarch64"
    with tarfile.open(art.tarball) as tar:
        assert tar.extractfile("lib/LLVMEnzyme-16.so").read() == files["lib/LLVMEnzyme-16.so"].read_bytes()


def test_write_fragment_checks_with_the_parser(tmp_path: Path) -> None:
    bad = ArtifactEntry(**{**FIELDS, "capi": "v0.0.289", "arch": "x86_64"},
                        sources=(TarballSource("ftp://x/y.tar.gz", "0" * 64, 1),))
    from enzyme_artifacts.errors import ManifestError

    with pytest.raises(ManifestError, match="not an http"):
        write_fragment(tmp_path / "f.toml", bad)

    assert not (tmp_path / "f.toml").exists()
    assert not list(tmp_path.glob("*.partial"))


@pytest.mark.parametrize("value", ["yesterday", "-5"])
def test_a_bad_source_date_epoch_names_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    value: str) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", value)
    with pytest.raises(ValueError, match=f"SOURCE_DATE_EPOCH='{value}' is not valid"):
        write_tarball(tmp_path / "x.tar.gz", {"a": b"x"})
