"""Safe extraction without tarfile's filters (Debian 12's Python 3.11.2 has none): each
refusal on a small real archive, nothing written when refused, modes normalised.  Every
case also runs in a child interpreter whose ``tarfile.data_filter`` was removed, so the
path of Pythons before 3.11.4 is exercised wherever the suite runs."""

from __future__ import annotations

import io
import json
import os
import stat
import tarfile
from pathlib import Path

import pytest

from build_recipes._archive import extract_tar
from build_recipes.errors import SourceError, UnsafeArchiveError
from tests.support.child import run_python

from .conftest import REPO


def _archive(path: Path, members: list[tuple[str, str, dict]]) -> Path:
    """A .tar.gz of (name, kind, attributes): kind file/dir/sym/lnk/chr/fifo."""
    with tarfile.open(path, "w:gz") as tar:
        for name, kind, attrs in members:
            info = tarfile.TarInfo(name)
            data = attrs.get("data", b"")
            info.mode = attrs.get("mode", 0o644)
            info.type = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "sym": tarfile.SYMTYPE,
                         "lnk": tarfile.LNKTYPE, "chr": tarfile.CHRTYPE, "fifo": tarfile.FIFOTYPE}[kind]
            info.linkname = attrs.get("link", "")
            if kind == "file":
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return path


BAD = {
    "absolute": ([("/etc/evil", "file", {"data": b"x"})], "absolute or Windows-style path"),
    "dotdot": ([("top/../../evil", "file", {"data": b"x"})], "contains '..'"),
    "windows": ([("C:evil", "file", {"data": b"x"})], "absolute or Windows-style path"),
    "symlink-out": ([("top/l", "sym", {"link": "../../etc"})], "outside the archive"),
    "symlink-absolute": ([("top/l", "sym", {"link": "/etc/passwd"})], "absolute or empty"),
    "below-symlink": ([("top/l", "sym", {"link": "sub"}), ("top/l/x", "file", {"data": b"x"})],
                      "lies below the symbolic link"),
    "below-a-later-symlink": ([("top/l/x", "file", {"data": b"x"}), ("top/l", "sym", {"link": "sub"})],
                              "lies below the symbolic link"),
    # each link lexically inside; composed, the second leaves the archive
    "chained-symlinks": ([("top/a/up", "sym", {"link": "../.."}),
                          ("top/x", "sym", {"link": "a/up/../../etc"})], "outside the archive"),
    "chain-written-first": ([("top/x", "sym", {"link": "a/up/../../etc"}),
                             ("top/a/up", "sym", {"link": "../.."})], "outside the archive"),
    "symlink-loop": ([("top/p", "sym", {"link": "q"}), ("top/q", "sym", {"link": "p"})], "loop of links"),
    "hardlink-out": ([("top/h", "lnk", {"link": "/etc/passwd"})], "not an earlier regular member"),
    "device": ([("top/dev", "chr", {})], "device, FIFO or other special file"),
    "fifo": ([("top/fifo", "fifo", {})], "device, FIFO or other special file"),
    "twice": ([("top/a", "file", {"data": b"1"}), ("top/a", "file", {"data": b"2"})], "appears twice"),
    "file-and-folder": ([("top/a", "file", {"data": b"1"}), ("top/a/b", "file", {"data": b"2"})],
                        "both a file and the folder"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_unsafe_members_are_refused_and_nothing_is_written(tmp_path: Path, case: str) -> None:
    members, message = BAD[case]
    archive = _archive(tmp_path / "a.tar.gz", [("top/ok.txt", "file", {"data": b"fine"}), *members])
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(UnsafeArchiveError, match=message) as info:
        extract_tar(archive, dest)
    assert isinstance(info.value, SourceError) and "nothing was extracted" in str(info.value)
    assert list(dest.iterdir()) == []


_GOOD = [
    ("top", "dir", {"mode": 0o777}),
    ("top/run.sh", "file", {"data": b"#!/bin/sh\n", "mode": 0o4775}),   # setuid, group-writable
    ("top/data.txt", "file", {"data": b"text\n", "mode": 0o666}),
    ("top/sub/link", "sym", {"link": "../data.txt"}),
    ("top/copy.txt", "lnk", {"link": "top/data.txt"}),
    ("top/sub/deep", "sym", {"link": "../sub/./link"}),  # through another link, still inside
]


def test_a_safe_archive_with_internal_links(tmp_path: Path) -> None:
    archive = _archive(tmp_path / "a.tar.gz", _GOOD)
    dest = tmp_path / "dest"
    dest.mkdir()
    names = extract_tar(archive, dest)
    assert names == [m[0] for m in _GOOD]
    top = dest / "top"
    assert stat.S_IMODE((top / "run.sh").stat().st_mode) == 0o755
    assert stat.S_IMODE((top / "data.txt").stat().st_mode) == 0o644
    assert os.readlink(top / "sub" / "link") == "../data.txt"
    assert (top / "sub" / "link").read_bytes() == b"text\n" == (top / "copy.txt").read_bytes()
    assert not (top / "copy.txt").is_symlink()
    assert (top / "sub" / "deep").read_bytes() == b"text\n"


def test_not_an_archive(tmp_path: Path) -> None:
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"not a tarball")
    (tmp_path / "d").mkdir()
    with pytest.raises(UnsafeArchiveError, match="is not a readable tar archive"):
        extract_tar(junk, tmp_path / "d")


_WITHOUT_FILTER = r"""
import json, sys, tarfile
for name in ("data_filter", "tar_filter", "fully_trusted_filter"):
    if hasattr(tarfile, name):
        delattr(tarfile, name)
from build_recipes._archive import extract_tar, _DATA_FILTER
from build_recipes.errors import UnsafeArchiveError
assert _DATA_FILTER is None
results = {}
for case, archive, dest in json.loads(sys.argv[1]):
    try:
        extract_tar(archive, dest)
        results[case] = "extracted"
    except UnsafeArchiveError as e:
        results[case] = str(e)
print(json.dumps(results))
"""


def test_the_same_without_tarfiles_filter(tmp_path: Path) -> None:
    jobs = []
    for case, (members, _) in sorted(BAD.items()) + [("good", (_GOOD, ""))]:
        archive = _archive(tmp_path / f"{case}.tar.gz", members)
        dest = tmp_path / f"dest-{case}"
        dest.mkdir()
        jobs.append([case, str(archive), str(dest)])
    proc = run_python(_WITHOUT_FILTER, args=[json.dumps(jobs)], cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout)
    assert results.pop("good") == "extracted"
    for case, (_, message) in BAD.items():
        assert message in results[case], case
        assert list((tmp_path / f"dest-{case}").iterdir()) == []
    assert stat.S_IMODE((tmp_path / "dest-good" / "top" / "run.sh").stat().st_mode) == 0o755
