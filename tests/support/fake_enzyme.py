"""A fake LLVMEnzyme plugin built from ``fake_enzyme.c`` with the system C compiler: it
exports Enzyme's C API, takes the parameter lists of one C-API profile, and builds (with
LLVM-C) the derivatives the profile probe asks for -- right ones, or scaled by a wrong
factor.  The tests of the probe use it where a real Enzyme of that profile is not at
hand: a library with the right names and another ABI, or the right ABI and wrong numbers."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

__all__ = ["SOURCE", "build_fake_enzyme", "fake_enzyme_source"]

SOURCE = Path(__file__).with_name("fake_enzyme.c")


def build_fake_enzyme(folder: Path, *, profile: str = "v0.0.289", factor: float = 1.0,
                      markers: tuple[str, ...] = (), name: str = "LLVMEnzyme-15.so") -> Path:
    """Compile the fake into ``folder/name``: ``profile`` ``"v0.0.289"`` or ``"v0.0.173"``
    (its parameter lists), ``factor`` multiplies every derivative, ``markers`` are
    embedded as an assertions build embeds its signatures."""
    if profile not in ("v0.0.289", "v0.0.173"):
        raise ValueError(f"the fake knows the profiles v0.0.289 and v0.0.173, not {profile}")
    cc = shutil.which("cc") or shutil.which("gcc")
    assert cc, "a C compiler (cc or gcc) is needed to build the fake Enzyme"
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / name
    cmd = [cc, "-shared", "-fPIC", "-O1", "-o", str(out), str(SOURCE), f"-DFAKE_FACTOR={factor!r}"]
    if profile == "v0.0.289":
        cmd.append("-DFAKE_STRONG_ZERO")
    if markers:
        text = "\\0".join(markers).replace('"', '\\"')
        cmd.append(f'-DFAKE_MARKERS="{text}"')
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return out


def fake_enzyme_source(*, profile: str = "v0.0.289", factor: float = 1.0, markers: tuple[str, ...] = ()) -> str:
    """The fake's C source with its choices written in (for a build system that compiles
    it, as the Enzyme-shaped source trees of the build_recipes tests do)."""
    if profile not in ("v0.0.289", "v0.0.173"):
        raise ValueError(f"the fake knows the profiles v0.0.289 and v0.0.173, not {profile}")
    lines = [f"#define FAKE_FACTOR {factor!r}"]
    if profile == "v0.0.289":
        lines.append("#define FAKE_STRONG_ZERO 1")
    if markers:
        text = "\\0".join(markers).replace('"', '\\"')
        lines.append(f'#define FAKE_MARKERS "{text}"')
    return "\n".join(lines) + "\n" + SOURCE.read_text()
