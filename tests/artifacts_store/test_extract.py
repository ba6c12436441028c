from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from enzyme_artifacts._extract import safe_extract
from enzyme_artifacts.errors import UnsafeArchiveError


def build(path: Path, *members: Callable[[tarfile.TarFile], None]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for add in members:
            add(tar)
    return path


def reg(name: str, data: bytes = b"x") -> Callable[[tarfile.TarFile], None]:
    def add(tar: tarfile.TarFile) -> None:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return add


def special(name: str, kind: bytes, link: str = "") -> Callable[[tarfile.TarFile], None]:
    def add(tar: tarfile.TarFile) -> None:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.linkname = link
        tar.addfile(info)
    return add


GOOD = reg("lib/LLVMEnzyme-15.so", b"plugin")


@pytest.mark.parametrize(
    ("members", "why"),
    [
        ([GOOD, reg("../evil.sh")], "contains '..'"),
        ([GOOD, reg("lib/../../evil.sh")], "contains '..'"),
        ([GOOD, reg("/tmp/evil.sh")], "absolute"),
        ([GOOD, special("lib/link", tarfile.SYMTYPE, "../../outside")], "outside the archive"),
        ([GOOD, special("lib/link", tarfile.SYMTYPE, "/etc/passwd")], "absolute"),
        ([GOOD, special("lib/hard", tarfile.LNKTYPE, "../outside")], "hard link"),
        ([GOOD, special("lib/hard", tarfile.LNKTYPE, "lib/not-there")], "not an earlier regular member"),
        ([special("lib", tarfile.SYMTYPE, "."), reg("lib/LLVMEnzyme-15.so")], "below the symbolic link"),
        ([GOOD, special("lib/dev", tarfile.CHRTYPE)], "device"),
        ([GOOD, special("lib/fifo", tarfile.FIFOTYPE)], "device, FIFO"),
        ([GOOD, GOOD], "appears twice"),
        ([reg("lib/a/b"), reg("lib/a")], "both a file and the folder"),
        ([GOOD, reg("lib/.")], "'.' path component"),
        ([GOOD, reg("lib//x")], "'.' path component"),
    ],
)
def test_unsafe_members_refused_and_nothing_extracted(tmp_path: Path, members: list, why: str) -> None:
    archive = build(tmp_path / "bad.tar.gz", *members)
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(UnsafeArchiveError, match=why) as info:
        safe_extract(archive, dest)
    assert "nothing was extracted" in str(info.value)
    assert list(dest.iterdir()) == []
    assert not (tmp_path / "evil.sh").exists() and not Path("/tmp/evil.sh").exists()


def test_safe_archive_with_internal_links(tmp_path: Path) -> None:
    archive = build(
        tmp_path / "ok.tar.gz",
        reg("./lib/LLVMEnzyme-15.so", b"plugin"),
        special("lib/libEnzyme.so", tarfile.SYMTYPE, "LLVMEnzyme-15.so"),
        special("lib/same.so", tarfile.LNKTYPE, "lib/LLVMEnzyme-15.so"),
        reg("share/licenses/LLVMEnzyme/LICENSE", b"license"),
    )
    dest = tmp_path / "dest"
    dest.mkdir()
    names = safe_extract(archive, dest)
    assert len(names) == 4
    assert (dest / "lib/libEnzyme.so").read_bytes() == b"plugin"
    assert (dest / "lib/libEnzyme.so").is_symlink()
    assert (dest / "lib/same.so").read_bytes() == b"plugin"


def test_not_a_tarball(tmp_path: Path) -> None:
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"not a tar archive at all" * 10)
    with pytest.raises(UnsafeArchiveError, match="not a readable tar archive"):
        safe_extract(junk, tmp_path)


_PART = st.sampled_from(["lib", "share", "..", ".", "a", "b.so", ""])


@settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    names=st.lists(st.lists(_PART, min_size=1, max_size=4).map("/".join), min_size=1, max_size=4),
    links=st.lists(st.tuples(st.lists(_PART, min_size=1, max_size=3).map("/".join),
                             st.lists(_PART, min_size=1, max_size=4).map("/".join),
                             st.booleans()), max_size=2),
    absolute=st.booleans(),
)
def test_nothing_ever_lands_outside(tmp_path_factory: pytest.TempPathFactory, names: list[str],
                                    links: list[tuple[str, str, bool]], absolute: bool) -> None:
    base = tmp_path_factory.mktemp("fuzz")
    members = [reg(("/" if absolute and i == 0 else "") + n) for i, n in enumerate(names)]
    members += [special(n, tarfile.SYMTYPE if sym else tarfile.LNKTYPE, t) for n, t, sym in links]
    archive = base / "a.tar"
    try:
        build(archive, *members)
    except (ValueError, OSError):
        return  # tarfile itself refuses to write some names
    dest = base / "root" / "dest"
    dest.mkdir(parents=True)
    try:
        safe_extract(archive, dest)
    except UnsafeArchiveError:
        assert list(dest.iterdir()) == []
    for p in [*dest.rglob("*"), *(base / "root").iterdir()]:
        assert p == dest or dest in p.parents
        if p.is_symlink():
            assert dest in Path(os.path.realpath(p)).parents or Path(os.path.realpath(p)) == dest
