"""The content-addressed cache: install, lookup, verify, remove, clean; concurrency and
crashes with real child processes against a real HTTP server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from enzyme_artifacts.cache import RECORD_NAME, Cache, cache_root
from enzyme_artifacts.errors import (
    CorruptArchiveError,
    DownloadError,
    HashMismatchError,
    OfflineError,
    UnsafeArchiveError,
)
from enzyme_artifacts.hashes import sha256_file
from enzyme_artifacts.manifest import ArtifactEntry, load_manifest

from ..support.http import ScriptedServer
from ._support import artifact_tarball, make_tarball, sha256, tarball_manifest

TARBALL = artifact_tarball()

CHILD = """
import json
from enzyme_artifacts.cache import Cache
from enzyme_artifacts.manifest import load_manifest
entry = load_manifest().entries[0]
art = Cache().install(entry)
print(json.dumps({"path": str(art.path), "library": str(art.library)}))
"""


def entry_for(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sources: list[tuple[str, bytes]]) -> ArtifactEntry:
    path = tarball_manifest(tmp_path / "Artifacts.toml", sources)
    monkeypatch.setenv("ENZYME_ARTIFACTS_MANIFEST", str(path))
    return load_manifest().entries[0]


def visible(cache: Cache) -> list[str]:
    """Everything lookup could ever read: the index and the artifact folders."""
    out: list[str] = []
    for d in (cache.index_dir, cache.artifacts_dir):
        if d.is_dir():
            out += [str(p.relative_to(cache.root)) for p in d.iterdir()]
    return sorted(out)


def test_cache_root_from_env_and_never_created(isolated_env: Path) -> None:
    assert cache_root() == isolated_env
    Cache().lookup  # noqa: B018 - constructing and reading attributes writes nothing
    assert not isolated_env.exists()


def test_install_lookup_verify(server: ScriptedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                               isolated_env: Path) -> None:
    url = server.route("/Enzyme.tar.gz", server.ok(TARBALL))
    entry = entry_for(tmp_path, monkeypatch, [(url, TARBALL)])
    cache = Cache()
    assert cache.lookup(entry) is None
    art = cache.install(entry)
    assert art.path.parent == isolated_env / "artifacts"
    assert art.library == art.path / "lib/LLVMEnzyme-15.so" and art.library.is_file()
    assert art.key == entry.key and art.source == url and art.llvm_soname is None
    assert art.files["lib/LLVMEnzyme-15.so"] == sha256_file(art.library)
    assert set(art.files) == {"lib/LLVMEnzyme-15.so", "share/licenses/LLVMEnzyme/LICENSE"}
    record = json.loads((art.path / RECORD_NAME).read_text())
    assert record["source_sha256"] == sha256(TARBALL) and record["installed_at"].endswith("+00:00")
    assert cache.verify(art) == []
    # a second install and a lookup (with any soname) are served from the cache
    assert cache.install(entry) == art
    assert cache.lookup(entry, llvm_soname="libLLVM-15.so.1") == art
    assert len(server.log) == 1
    assert cache.installed() == [art]
    assert list(cache.tmp_dir.iterdir()) == []


def test_verify_reports_tampering_and_reinstall_repairs(server: ScriptedServer, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    url = server.route("/Enzyme.tar.gz", server.ok(TARBALL))
    entry = entry_for(tmp_path, monkeypatch, [(url, TARBALL)])
    cache = Cache()
    art = cache.install(entry)
    art.library.write_bytes(b"corrupted")
    (art.path / "extra.txt").write_text("x")
    problems = cache.verify(art)
    assert any("LLVMEnzyme-15.so: sha256 is" in p for p in problems)
    assert any("extra.txt: not part of the artifact" in p for p in problems)
    (art.path / "share/licenses/LLVMEnzyme/LICENSE").unlink()
    assert any("LICENSE: missing" in p for p in cache.verify(art))
    cache.remove(art)
    assert cache.lookup(entry) is None and visible(cache) == []
    fresh = cache.install(entry)
    assert fresh.path == art.path and cache.verify(fresh) == []
    assert len(server.log) == 2


def test_wrong_bytes_leave_nothing_in_the_cache(server: ScriptedServer, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    other = TARBALL[:-10] + bytes(b ^ 0xFF for b in TARBALL[-10:])  # same size, other bytes
    url = server.route("/Enzyme.tar.gz", server.ok(other))
    entry = entry_for(tmp_path, monkeypatch, [(url, TARBALL)])
    cache = Cache()
    with pytest.raises(HashMismatchError, match=f"expected {sha256(TARBALL)}, got {sha256(other)}.*deleted"):
        cache.install(entry)
    assert visible(cache) == [] and list(cache.tmp_dir.iterdir()) == []


def test_unsafe_tarball_leaves_nothing(server: ScriptedServer, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    evil = make_tarball({"lib/LLVMEnzyme-15.so": b"p", "../escape.txt": b"e"})
    url = server.route("/Enzyme.tar.gz", server.ok(evil))
    entry = entry_for(tmp_path, monkeypatch, [(url, evil)])
    cache = Cache()
    with pytest.raises(UnsafeArchiveError, match="'../escape.txt'"):
        cache.install(entry)
    assert visible(cache) == [] and list(cache.tmp_dir.iterdir()) == []
    assert not (cache.root / "escape.txt").exists() and not (cache.tmp_dir.parent / "escape.txt").exists()


def test_tarball_without_the_library_is_refused(server: ScriptedServer, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    body = make_tarball({"lib/LLVMEnzyme-16.so": b"p"})
    url = server.route("/Enzyme.tar.gz", server.ok(body))
    entry = entry_for(tmp_path, monkeypatch, [(url, body)])
    with pytest.raises(DownloadError, match="does not contain lib/LLVMEnzyme-15.so"):
        Cache().install(entry)


def test_sources_are_tried_in_order(server: ScriptedServer, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    first = server.url("/gone/Enzyme.tar.gz")
    second = server.route("/mirror2/Enzyme.tar.gz", server.ok(TARBALL))
    entry = entry_for(tmp_path, monkeypatch, [(first, TARBALL), (second, TARBALL)])
    art = Cache().install(entry)
    assert art.source == second
    assert [r.path for r in server.log] == ["/gone/Enzyme.tar.gz", "/mirror2/Enzyme.tar.gz"]


def test_every_source_failing_lists_each(server: ScriptedServer, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    entry = entry_for(tmp_path, monkeypatch, [(server.url("/a/E.tar.gz"), TARBALL),
                                              (server.url("/b/E.tar.gz"), TARBALL)])
    with pytest.raises(DownloadError, match=r"every source .* failed: \[1\] .*/a/E.tar.gz.*\[2\] .*/b/E.tar.gz"):
        Cache().install(entry)


def test_offline_makes_zero_requests(server: ScriptedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     isolated_env: Path) -> None:
    url = server.route("/Enzyme.tar.gz", server.ok(TARBALL))
    entry = entry_for(tmp_path, monkeypatch, [(url, TARBALL)])
    monkeypatch.setenv("ENZYME_ARTIFACTS_OFFLINE", "1")
    with pytest.raises(OfflineError, match="ENZYME_ARTIFACTS_OFFLINE is set"):
        Cache().install(entry)
    assert server.log == [] and not isolated_env.exists()
    # once installed, offline use works and still makes no request
    monkeypatch.delenv("ENZYME_ARTIFACTS_OFFLINE")
    art = Cache().install(entry)
    monkeypatch.setenv("ENZYME_ARTIFACTS_OFFLINE", "1")
    assert Cache().install(entry) == art
    assert len(server.log) == 1


def test_mirror_env_is_used_and_recorded(server: ScriptedServer, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    mirrored = server.route("/m/Enzyme.tar.gz", server.ok(TARBALL))
    entry = entry_for(tmp_path, monkeypatch, [("https://origin.invalid/rel/Enzyme.tar.gz", TARBALL)])
    monkeypatch.setenv("ENZYME_ARTIFACTS_MIRROR", server.url("/m"))
    art = Cache().install(entry)
    assert art.source == mirrored
    assert [r.path for r in server.log] == ["/m/Enzyme.tar.gz"]


def test_changed_manifest_digest_invalidates_the_binding(server: ScriptedServer, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    url = server.route("/Enzyme.tar.gz", server.ok(TARBALL))
    entry = entry_for(tmp_path, monkeypatch, [(url, TARBALL)])
    Cache().install(entry)
    newer = artifact_tarball(b"rebuilt plugin")
    (tmp_path / "m2").mkdir()
    path = tarball_manifest(tmp_path / "m2" / "Artifacts.toml", [(url, newer)])
    assert Cache().lookup(load_manifest(path).entries[0]) is None


def test_clean_removes_orphans_and_leftovers(server: ScriptedServer, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    url = server.route("/Enzyme.tar.gz", server.ok(TARBALL))
    entry = entry_for(tmp_path, monkeypatch, [(url, TARBALL)])
    cache = Cache()
    art = cache.install(entry)
    orphan = cache.artifacts_dir / ("0" * 64)
    orphan.mkdir()
    leftover = cache.tmp_dir / "install-dead"
    leftover.mkdir()
    (cache.index_dir / "broken.json").write_text("{not json")
    would = cache.clean(dry_run=True)
    assert set(would) == {orphan, leftover, cache.index_dir / "broken.json"}
    assert orphan.exists() and leftover.exists()
    assert cache.clean() == would
    assert not orphan.exists() and not leftover.exists()
    assert cache.lookup(entry) == art
    index_files = set(cache.index_dir.iterdir())
    assert len(index_files) == 1
    assert set(cache.clean(everything=True)) == {art.path, *index_files}
    assert cache.lookup(entry) is None


def run_children(n: int) -> list[subprocess.Popen[str]]:
    return [
        subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(n)
    ]


def test_eight_processes_one_download(server: ScriptedServer, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    body = artifact_tarball(os.urandom(400_000))
    # a slow body keeps the first download in flight while the others start and wait
    url = server.route("/Enzyme.tar.gz", server.ok(body, chunk=32_768, chunk_delay=0.05))
    entry = entry_for(tmp_path, monkeypatch, [(url, body)])
    children = run_children(8)
    results = []
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        results.append(json.loads(out))
    assert len(server.requests_to("/Enzyme.tar.gz")) == 1
    assert len({r["path"] for r in results}) == 1
    cache = Cache()
    assert len(list(cache.artifacts_dir.iterdir())) == 1
    art = cache.lookup(entry)
    assert art is not None and str(art.path) == results[0]["path"] and cache.verify(art) == []


def test_sigkill_half_way_leaves_nothing_visible(server: ScriptedServer, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    body = artifact_tarball(os.urandom(600_000))
    url = server.route("/Enzyme.tar.gz", server.ok(body, chunk=16_384, chunk_delay=0.05), server.ok(body))
    entry = entry_for(tmp_path, monkeypatch, [(url, body)])
    cache = Cache()
    (child,) = run_children(1)
    deadline = time.monotonic() + 60
    while server.bytes_sent.get("/Enzyme.tar.gz", 0) < len(body) // 3:
        assert time.monotonic() < deadline and child.poll() is None
        assert cache.lookup(entry) is None and visible(cache) == []
        time.sleep(0.02)
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    assert cache.lookup(entry) is None and visible(cache) == []
    assert any(cache.tmp_dir.iterdir())  # the partial download is there, under tmp/ only
    art = cache.install(entry)
    assert cache.verify(art) == [] and list(cache.tmp_dir.iterdir()) == []
    assert len(server.requests_to("/Enzyme.tar.gz")) == 2


def test_lock_timeout_is_a_clear_error(tmp_path: Path) -> None:
    from filelock import FileLock

    from enzyme_artifacts._lock import locked
    from enzyme_artifacts.errors import CacheError

    path = tmp_path / "locks" / "install.lock"
    with locked(path, timeout=1):
        pass  # creates the folder and the lock file
    holder = FileLock(str(path))
    with holder, pytest.raises(CacheError, match="waited 0.1 s for the lock .*ENZYME_ARTIFACTS_LOCK_TIMEOUT"), \
            locked(path, timeout=0.1, purpose="install X"):
        pass


def test_lost_index_reuses_the_intact_folder(server: ScriptedServer, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    url = server.route("/Enzyme.tar.gz", server.ok(TARBALL))
    entry = entry_for(tmp_path, monkeypatch, [(url, TARBALL)])
    cache = Cache()
    art = cache.install(entry)
    before = (art.path / RECORD_NAME).read_text()
    for p in cache.index_dir.iterdir():
        p.unlink()
    assert cache.lookup(entry) is None
    again = cache.install(entry)
    assert again.path == art.path and (art.path / RECORD_NAME).read_text() == before
    assert len(list(cache.artifacts_dir.iterdir())) == 1 and cache.verify(again) == []


def test_tarball_replace_needed_binds_to_the_host_soname(
    server: ScriptedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shared_lib_pair
) -> None:
    """A tarball built against one distribution's libLLVM is rebound to the host's SONAME,
    and the binding is part of the cache key."""
    from enzyme_artifacts.elf import read_needed

    plugin = shared_lib_pair("libLLVM-15-built.so.1")
    body = make_tarball({"lib/LLVMEnzyme-15.so": plugin.read_bytes(), "share/licenses/L": b"license\n"})
    url = server.route("/Enzyme.tar.gz", server.ok(body))
    path = tarball_manifest(tmp_path / "Artifacts.toml", [(url, body)])
    path.write_text(path.read_text() + '    replace_needed = { "libLLVM-15-built.so.1" = "@libllvm" }\n')
    monkeypatch.setenv("ENZYME_ARTIFACTS_MANIFEST", str(path))
    entry = load_manifest().entries[0]
    assert dict(entry.sources[0].replace_needed) == {"libLLVM-15-built.so.1": "@libllvm"}
    cache = Cache()
    with pytest.raises(DownloadError, match="no libLLVM SONAME"):
        cache.install(entry)  # the placeholder needs the host's SONAME: fail before fetching
    assert server.log == []
    art = cache.install(entry, llvm_soname="libLLVM-15.so.1")
    assert art.llvm_soname == "libLLVM-15.so.1"
    assert "libLLVM-15.so.1" in read_needed(art.library)
    assert "libLLVM-15-built.so.1" not in read_needed(art.library)
    assert cache.verify(art) == []
    assert cache.lookup(entry, llvm_soname="libLLVM-15.so.1") == art
    assert cache.lookup(entry, llvm_soname="libLLVM-15.so") is None


# ---------------------------------------------------------------------- issue 12, items 10 and 11
def test_chained_links_escaping_the_archive_install_nothing_and_touch_nothing(
    server: ScriptedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolated_env: Path, shared_lib_pair
) -> None:
    """The reproduction: two links, each lexically inside the archive, composing to a path
    outside it; with a replace_needed rewrite that would edit that outside file in place."""
    import io
    import tarfile

    victim = shared_lib_pair("libLLVM-15-built.so.1")  # an ELF file outside the cache
    before = victim.read_bytes()
    # from <cache>/tmp/install-*/tree, 4 folders up is tmp_path; the victim sits below it
    rel_victim = victim.relative_to(tmp_path)
    deep = "/".join(f"a{i}" for i in range(1, 25))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, target in ((("lib/LLVMEnzyme-15.so", f"{deep}/up/" + "../" * 25 + str(rel_victim))),
                             (f"lib/{deep}/up", "../../../..")):
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    body = buf.getvalue()
    url = server.route("/Enzyme.tar.gz", server.ok(body))
    path = tarball_manifest(tmp_path / "Artifacts.toml", [(url, body)])
    path.write_text(path.read_text() + '    replace_needed = { "libLLVM-15-built.so.1" = "@libllvm" }\n')
    monkeypatch.setenv("ENZYME_ARTIFACTS_MANIFEST", str(path))
    cache = Cache()
    with pytest.raises(UnsafeArchiveError, match="symbolic link"):
        cache.install(load_manifest().entries[0], llvm_soname="libLLVM-15.so.1")
    assert victim.read_bytes() == before
    assert visible(cache) == [] and list(cache.tmp_dir.iterdir()) == []


def test_a_library_resolving_outside_its_artifact_is_not_installed(
    server: ScriptedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = server.route("/Enzyme.tar.gz", server.ok(TARBALL))
    entry = entry_for(tmp_path, monkeypatch, [(url, TARBALL)])
    cache = Cache()
    art = cache.install(entry)
    outside = tmp_path / "elsewhere.so"
    outside.write_bytes(art.library.read_bytes())
    art.library.unlink()
    art.library.symlink_to(outside)
    assert cache.lookup(entry) is None  # never handed out
    assert any("outside the artifact" in p for p in cache.verify(art))


def test_an_archive_bomb_is_bounded_by_the_manifest_size(
    server: ScriptedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bomb = make_tarball({"lib/LLVMEnzyme-15.so": bytes(40 * 1024 * 1024)})
    assert len(bomb) < 100_000
    url = server.route("/Enzyme.tar.gz", server.ok(bomb))
    entry = entry_for(tmp_path, monkeypatch, [(url, bomb)])
    cache = Cache()
    with pytest.raises(UnsafeArchiveError, match=f"over {len(bomb)} bytes of archive"):
        cache.install(entry)
    assert visible(cache) == [] and list(cache.tmp_dir.iterdir()) == []


def test_a_truncated_tarball_is_corrupt_and_leaves_nothing(
    server: ScriptedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gzip
    import io
    import tarfile

    raw = gzip.decompress(TARBALL)
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        last = tar.getmembers()[-1]
    cut = gzip.compress(raw[: last.offset_data + last.size // 2])  # the last member cut in its data
    url = server.route("/Enzyme.tar.gz", server.ok(cut))
    entry = entry_for(tmp_path, monkeypatch, [(url, cut)])  # the manifest matches the damaged file
    cache = Cache()
    with pytest.raises(CorruptArchiveError, match="corrupt"):
        cache.install(entry)
    assert visible(cache) == [] and list(cache.tmp_dir.iterdir()) == []
