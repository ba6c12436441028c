from __future__ import annotations

import io
import os
import stat
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from enzyme_artifacts._extract import EXPANSION_FLOOR, expansion_limit, safe_extract
from enzyme_artifacts.errors import CorruptArchiveError, UnsafeArchiveError

from ..support.child import check_python


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


# ---------------------------------------------------------------------- links (issue 12, item 10)
DEEP = "/".join(f"a{i}" for i in range(1, 25))


def chained_escape(path: Path, levels_up: int) -> Path:
    """Two links, each lexically inside the archive, whose composition leaves it by
    ``levels_up`` folders; the escaping one first, so no link exists yet when it is checked."""
    return build(
        path,
        special("lib/LLVMEnzyme-15.so", tarfile.SYMTYPE, f"{DEEP}/up/" + "../" * (21 + levels_up) + "victim.so"),
        special(f"lib/{DEEP}/up", tarfile.SYMTYPE, "../../../.."),
    )


def test_chained_links_cannot_escape(tmp_path: Path) -> None:
    victim = tmp_path / "victim.so"
    victim.write_bytes(b"victim")
    dest = tmp_path / "x" / "y" / "dest"
    dest.mkdir(parents=True)
    archive = chained_escape(tmp_path / "evil.tar", levels_up=3)
    with pytest.raises(UnsafeArchiveError, match=r"'lib/LLVMEnzyme-15.so' is a symbolic link .*nothing was extracted"):
        safe_extract(archive, dest)
    assert list(dest.iterdir()) == []
    assert victim.read_bytes() == b"victim"


@pytest.mark.parametrize(
    ("links", "why"),
    [
        ([("lib/libX.so", "../share/LICENSE")], "not a sibling|outside the archive"),
        ([("lib/libX.so", "sub/libX.so.1")], "not a sibling"),
        ([("lib/libX.so", "libY.so")], "not a regular file of the archive"),
        ([("lib/libX.so", "libX.so.1"), ("lib/libX.so.1", "libX.so")], "cycle of links"),
        ([("lib/libX.so", "sub")], "not a regular file of the archive"),
    ],
)
def test_only_sibling_links_to_files(tmp_path: Path, links: list[tuple[str, str]], why: str) -> None:
    members = [reg("lib/LLVMEnzyme-15.so", b"p"), reg("lib/sub/f", b"f"), reg("share/LICENSE", b"l")]
    members += [special(n, tarfile.SYMTYPE, t) for n, t in links]
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(UnsafeArchiveError, match=why):
        safe_extract(build(tmp_path / "a.tar.gz", *members), dest)
    assert list(dest.iterdir()) == []


def test_a_chain_of_sibling_links_is_fine(tmp_path: Path) -> None:
    archive = build(
        tmp_path / "ok.tar.gz",
        special("lib/libEnzyme.so", tarfile.SYMTYPE, "libEnzyme.so.1"),  # before its target: fine
        special("lib/libEnzyme.so.1", tarfile.SYMTYPE, "LLVMEnzyme-15.so"),
        reg("lib/LLVMEnzyme-15.so", b"plugin"),
    )
    dest = tmp_path / "dest"
    dest.mkdir()
    safe_extract(archive, dest)
    assert (dest / "lib/libEnzyme.so").read_bytes() == b"plugin"
    assert os.readlink(dest / "lib/libEnzyme.so") == "libEnzyme.so.1"


def test_a_member_below_a_later_link_is_refused(tmp_path: Path) -> None:
    archive = build(tmp_path / "a.tar", reg("lib/x/f", b"f"), special("lib/x", tarfile.SYMTYPE, "y"), reg("lib/y"))
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(UnsafeArchiveError, match="below the symbolic link 'lib/x'"):
        safe_extract(archive, dest)


# ---------------------------------------------------------------------- bounds and truncation (item 11)
def many_members(path: Path, n: int) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for i in range(n):
            info = tarfile.TarInfo(f"share/f{i}")
            info.size = 1
            tar.addfile(info, io.BytesIO(b"x"))
    return path


def test_member_count_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = many_members(tmp_path / "many.tar.gz", 20_000)
    dest = tmp_path / "dest"
    dest.mkdir()
    started = time.monotonic()
    with pytest.raises(UnsafeArchiveError, match=r"more than 1000 members.*nothing was extracted.*"
                                                 r"ENZYME_ARTIFACTS_MAX_MEMBERS"):
        safe_extract(archive, dest)
    assert time.monotonic() - started < 5  # stops at the bound instead of reading every header
    assert list(dest.iterdir()) == []
    smaller = many_members(tmp_path / "some.tar.gz", 1200)
    with pytest.raises(UnsafeArchiveError, match="more than 1000 members"):
        safe_extract(smaller, dest)
    monkeypatch.setenv("ENZYME_ARTIFACTS_MAX_MEMBERS", "1200")
    assert len(safe_extract(smaller, dest)) == 1200


def zeros_tarball(path: Path, size: int) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("lib/LLVMEnzyme-15.so")
        info.size = size
        tar.addfile(info, io.BytesIO(bytes(size)))
    return path


def test_expansion_is_bounded_by_the_archive_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = zeros_tarball(tmp_path / "bomb.tar.gz", 40 * 1024 * 1024)  # ~40 KiB of gzip
    size = archive.stat().st_size
    assert size < 100_000
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(UnsafeArchiveError, match=rf"more than {expansion_limit(size)} bytes, over {size} "
                                                 r"bytes of archive.*ENZYME_ARTIFACTS_MAX_EXPANSION"):
        safe_extract(archive, dest)
    assert list(dest.iterdir()) == []
    assert expansion_limit(size) == EXPANSION_FLOOR
    monkeypatch.setenv("ENZYME_ARTIFACTS_MAX_EXPANSION", "5000")
    safe_extract(archive, dest)
    assert (dest / "lib/LLVMEnzyme-15.so").stat().st_size == 40 * 1024 * 1024


def plain_tar(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


TWO = {"share/LICENSE": b"license\n" * 100, "lib/LLVMEnzyme-15.so": os.urandom(5000)}


@pytest.mark.parametrize(
    "cut",
    [
        pytest.param(lambda raw: raw[: 512 + 1024 + 512 + 2000], id="last-member-data"),
        pytest.param(lambda raw: raw[: 512 + 1024 + 100], id="last-header"),
        pytest.param(lambda raw: raw[: 512 + 1024 + 512 + 5120], id="end-marker"),
    ],
)
def test_truncation_is_corruption(tmp_path: Path, cut: Callable[[bytes], bytes]) -> None:
    import gzip

    raw = plain_tar(TWO)
    for name, data in (("t.tar", cut(raw)), ("t.tar.gz", gzip.compress(cut(raw)))):
        archive = tmp_path / name
        archive.write_bytes(data)
        dest = tmp_path / ("dest-" + name)
        dest.mkdir()
        with pytest.raises(CorruptArchiveError, match="corrupt: .*nothing was extracted"):
            safe_extract(archive, dest)
        assert list(dest.iterdir()) == []


def test_a_cut_compressed_stream_is_corruption(tmp_path: Path) -> None:
    import gzip

    data = gzip.compress(plain_tar(TWO))
    archive = tmp_path / "cut.tar.gz"
    archive.write_bytes(data[: len(data) * 2 // 3])
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(CorruptArchiveError):
        safe_extract(archive, dest)
    assert list(dest.iterdir()) == []


def test_the_whole_archive_intact_extracts(tmp_path: Path) -> None:
    archive = tmp_path / "ok.tar"
    archive.write_bytes(plain_tar(TWO))
    dest = tmp_path / "dest"
    dest.mkdir()
    assert sorted(safe_extract(archive, dest)) == sorted(TWO)
    assert (dest / "lib/LLVMEnzyme-15.so").read_bytes() == TWO["lib/LLVMEnzyme-15.so"]


def test_a_failure_while_writing_removes_what_was_written_and_says_so(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    (dest / "lib").mkdir(parents=True)
    (dest / "lib/LLVMEnzyme-15.so").write_bytes(b"already here")
    archive = tmp_path / "a.tar"
    archive.write_bytes(plain_tar(TWO))  # share/LICENSE is written before lib/LLVMEnzyme-15.so
    with pytest.raises(UnsafeArchiveError, match="would overwrite.*the files extracted so far were removed") as info:
        safe_extract(archive, dest)
    assert "nothing was extracted" not in str(info.value)
    assert sorted(str(p.relative_to(dest)) for p in dest.rglob("*")) == ["lib", "lib/LLVMEnzyme-15.so"]
    assert (dest / "lib/LLVMEnzyme-15.so").read_bytes() == b"already here"


def test_modes_follow_the_data_filter(tmp_path: Path) -> None:
    def mode(name: str, m: int) -> Callable[[tarfile.TarFile], None]:
        def add(tar: tarfile.TarFile) -> None:
            info = tarfile.TarInfo(name)
            info.size = 1
            info.mode = m
            tar.addfile(info, io.BytesIO(b"x"))
        return add

    archive = build(tmp_path / "m.tar", mode("lib/suid", 0o4777), mode("share/ro", 0o400), mode("share/gx", 0o654))
    dest = tmp_path / "dest"
    dest.mkdir()
    safe_extract(archive, dest)
    assert stat.S_IMODE((dest / "lib/suid").stat().st_mode) == 0o755
    assert stat.S_IMODE((dest / "share/ro").stat().st_mode) == 0o600
    assert stat.S_IMODE((dest / "share/gx").stat().st_mode) == 0o644


def test_the_checks_do_not_depend_on_tarfile_filters(tmp_path: Path) -> None:
    """Python 3.11.0-3.11.3 has no tarfile.data_filter: with it removed, the same archives
    extract and the same ones are refused, on any interpreter."""
    good = build(tmp_path / "good.tar.gz", GOOD, special("lib/libEnzyme.so", tarfile.SYMTYPE, "LLVMEnzyme-15.so"))
    evil = chained_escape(tmp_path / "evil.tar", levels_up=2)
    code = f"""
import tarfile
for name in ("data_filter", "FilterError", "fully_trusted_filter", "tar_filter"):
    if hasattr(tarfile, name):
        delattr(tarfile, name)
from pathlib import Path
from enzyme_artifacts._extract import safe_extract
from enzyme_artifacts.errors import UnsafeArchiveError
base = Path({str(tmp_path)!r})
(base / "d1").mkdir(); (base / "d2").mkdir()
print(sorted(safe_extract(base / "good.tar.gz", base / "d1")))
try:
    safe_extract(base / "evil.tar", base / "d2")
except UnsafeArchiveError as e:
    print("refused", list((base / "d2").iterdir()))
"""
    out = check_python(code).splitlines()
    assert out == ["['lib/LLVMEnzyme-15.so', 'lib/libEnzyme.so']", "refused []"]
    assert good.exists() and evil.exists()
