from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from enzyme_artifacts.errors import ManifestError, UnsupportedPlatformError
from enzyme_artifacts.manifest import (
    TarballSource,
    WheelSource,
    bundled_manifest_path,
    load_manifest,
    parse_manifest,
)
from enzyme_artifacts.platforms import Platform

HEX = "ab" * 32
MINIMAL = f"""
[[LLVMEnzyme]]
enzyme_version = "0.0.289"
llvm_version = 15
arch = "x86_64"
os = "linux"
libc = "glibc"
cxxstring_abi = "cxx11"
capi = "v0.0.289"
lazy = true
    [[LLVMEnzyme.download]]
    url = "https://mirror.invalid/Enzyme.v0.0.289.x86_64-linux-gnu-cxx11-llvm_version+15.tar.gz"
    sha256 = "{HEX}"
    size = 1234
"""


def test_bundled_manifest_has_the_real_entry() -> None:
    m = load_manifest()
    assert m.path == bundled_manifest_path()
    e = m.select(Platform("x86_64", "linux", "glibc", "cxx11"), 15)
    assert e.key == "LLVMEnzyme.v0.0.289.x86_64-linux-gnu-cxx11-llvm_version+15"
    assert e.library_relpath == "lib/LLVMEnzyme-15.so"
    assert e.capi == "v0.0.289" and e.lazy is True
    (src,) = e.sources
    assert isinstance(src, WheelSource)
    assert src.sha256 == "0332bdf11cf82dcef39e3b55e2c878c2d12e41e899458f437e58dc61bbe4befc"
    assert src.size == 8922897
    assert src.wheel_sha256 == "95f9c9a2d5a416ce2ded18e94e02416bb07ea142dd09f742800d84e3ffe1dfe6"
    assert dict(src.replace_needed) == {"libLLVM-15-a95c9aa1.so.1": "@libllvm"}


def test_minimal_manifest_is_accepted(tmp_path: Path) -> None:
    m = parse_manifest(MINIMAL, tmp_path / "A.toml")
    (e,) = m.entries
    assert e.platform == Platform("x86_64", "linux", "glibc", "cxx11")
    assert e.sources == (TarballSource(
        "https://mirror.invalid/Enzyme.v0.0.289.x86_64-linux-gnu-cxx11-llvm_version+15.tar.gz", HEX, 1234),)
    # a wildcard-ABI host still matches; another LLVM does not
    assert m.select(Platform("x86_64", "linux", "glibc"), 15) is e
    with pytest.raises(UnsupportedPlatformError, match="LLVM 16.*offers: x86_64-linux-gnu-cxx11 llvm 15"):
        m.select(Platform("x86_64", "linux", "glibc", "cxx11"), 16)
    with pytest.raises(UnsupportedPlatformError, match="aarch64-apple-darwin"):
        m.select(Platform("aarch64", "macos"), 15)


def test_macos_entry_without_libc_and_dylib_path() -> None:
    text = MINIMAL.replace('os = "linux"\nlibc = "glibc"\n', 'os = "macos"\n').replace('"x86_64"', '"aarch64"')
    (e,) = parse_manifest(text).entries
    assert e.libc is None and e.library_relpath == "lib/LLVMEnzyme-15.dylib"
    assert e.key == "LLVMEnzyme.v0.0.289.aarch64-apple-darwin-cxx11-llvm_version+15"


@pytest.mark.parametrize(
    ("old", "new", "where", "field"),
    [
        ("lazy = true", "lazy = true\nbogus = 1", "LLVMEnzyme[0]", "bogus"),
        ("llvm_version = 15", 'llvm_version = "15"', "LLVMEnzyme[0]", "llvm_version"),
        ("lazy = true", 'lazy = "yes"', "LLVMEnzyme[0]", "lazy"),
        ('arch = "x86_64"', 'arch = "sparc"', "LLVMEnzyme[0]", "arch"),
        ('libc = "glibc"\n', "", "LLVMEnzyme[0]", "libc"),
        ('capi = "v0.0.289"\n', "", "LLVMEnzyme[0]", "capi"),
        (f'sha256 = "{HEX}"', 'sha256 = "xyz"', "LLVMEnzyme[0].download[0]", "sha256"),
        (f'sha256 = "{HEX}"', f'sha256 = "{HEX[:-1]}g"', "LLVMEnzyme[0].download[0]", "sha256"),
        ("size = 1234", "size = -1", "LLVMEnzyme[0].download[0]", "size"),
        ("size = 1234", "size = true", "LLVMEnzyme[0].download[0]", "size"),
        ("size = 1234", "size = 1234\n    mirror = 2", "LLVMEnzyme[0].download[0]", "mirror"),
        ('url = "https://', 'url = "ftp://', "LLVMEnzyme[0].download[0]", "url"),
        ("size = 1234", 'size = 1234\n    kind = "zip"', "LLVMEnzyme[0].download[0]", "kind"),
    ],
)
def test_errors_name_file_entry_and_field(tmp_path: Path, old: str, new: str, where: str, field: str) -> None:
    assert old in MINIMAL
    path = tmp_path / "Bad.toml"
    path.write_text(MINIMAL.replace(old, new, 1))
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    msg = str(info.value)
    assert str(path) in msg and where in msg and repr(field) in msg, msg


def test_duplicate_entries_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "Dup.toml"
    path.write_text(MINIMAL + MINIMAL)
    with pytest.raises(ManifestError, match=r"LLVMEnzyme\[1\] duplicates LLVMEnzyme\[0\]"):
        load_manifest(path)
    # another LLVM major is not a duplicate
    path.write_text(MINIMAL + MINIMAL.replace("llvm_version = 15", "llvm_version = 16"))
    assert len(load_manifest(path).entries) == 2


def test_wheel_source_rules(tmp_path: Path) -> None:
    wheel = f"""
    [[LLVMEnzyme.download]]
    kind = "wheel"
    requirement = "demo-enzyme>=0.1"
    platform = "manylinux_2_17_x86_64"
    python_version = "3.11"
    wheel_sha256 = "{HEX}"
    member = "demo/LLVMEnzyme-15.so"
    sha256 = "{HEX}"
"""
    head = MINIMAL.split("    [[LLVMEnzyme.download]]")[0]
    with pytest.raises(ManifestError, match="'requirement'.*pin one version"):
        parse_manifest(head + wheel)
    ok = head + wheel.replace(">=0.1", "==0.1.0")
    (e,) = parse_manifest(ok).entries
    assert isinstance(e.sources[0], WheelSource) and e.sources[0].size is None
    with pytest.raises(ManifestError, match="'member'"):
        parse_manifest(ok.replace("demo/LLVM", "../LLVM"))
    with pytest.raises(ManifestError, match="'replace_needed'.*placeholder"):
        parse_manifest(ok + '    replace_needed = { "a.so" = "@other" }\n')
    with pytest.raises(ManifestError, match="'license_members'"):
        parse_manifest(ok + '    license_members = "LICENSE"\n')


def test_not_toml_and_missing_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = tmp_path / "Broken.toml"
    bad.write_text("[[LLVMEnzyme]\n")
    with pytest.raises(ManifestError, match="Broken.toml: not valid TOML"):
        load_manifest(bad)
    monkeypatch.setenv("ENZYME_ARTIFACTS_MANIFEST", str(tmp_path / "missing.toml"))
    with pytest.raises(ManifestError, match="missing.toml.*ENZYME_ARTIFACTS_MANIFEST"):
        load_manifest()


def test_env_manifest_and_reload_on_change(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "Artifacts.toml"
    path.write_text(MINIMAL)
    monkeypatch.setenv("ENZYME_ARTIFACTS_MANIFEST", str(path))
    first = load_manifest()
    assert first.path == path and load_manifest() is first  # cached
    time.sleep(0.01)
    path.write_text(MINIMAL.replace("llvm_version = 15", "llvm_version = 16"))
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert load_manifest().entries[0].llvm_version == 16
