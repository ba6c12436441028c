"""The install lock names its holder: a waiter is told who holds it, and a timeout says so
(issue 12, item 12), with real processes holding the lock."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import time
from pathlib import Path

import pytest

from enzyme_artifacts._lock import describe_holder, locked, read_holder
from enzyme_artifacts.errors import CacheError, LockTimeoutError

from ..support.child import spawn_python
from ._support import artifact_tarball, tarball_manifest

HOLD = """
import sys, time
from pathlib import Path
from enzyme_artifacts._lock import locked
with locked(Path(sys.argv[1]), purpose=sys.argv[2]):
    print("held", flush=True)
    time.sleep(float(sys.argv[3]))
"""


def hold(path: Path, purpose: str, seconds: float = 60.0):  # type: ignore[no-untyped-def]
    code = HOLD.replace("sys.argv[1]", repr(str(path))).replace("sys.argv[2]", repr(purpose)).replace(
        "float(sys.argv[3])", repr(seconds))
    child = spawn_python(code)
    assert child.stdout is not None
    line = child.stdout.readline()
    assert line.strip() == "held", child.stderr.read() if child.stderr else ""
    return child


def test_the_holder_writes_who_it_is(tmp_path: Path) -> None:
    lock = tmp_path / "install.lock"
    child = hold(lock, "install LLVMEnzyme.test")
    try:
        holder = read_holder(lock)
        assert holder["pid"] == child.pid and holder["host"] == socket.gethostname()
        assert holder["purpose"] == "install LLVMEnzyme.test" and holder["since"].endswith("Z")
        assert json.loads(lock.with_name("install.lock.owner").read_text()) == holder
    finally:
        child.kill()
        child.wait()


def test_a_waiter_is_told_who_holds_it_and_the_timeout_names_the_holder(tmp_path: Path) -> None:
    lock = tmp_path / "install.lock"
    child = hold(lock, "install LLVMEnzyme.test")
    notices: list[str] = []
    try:
        started = time.monotonic()
        with pytest.raises(LockTimeoutError) as info, locked(lock, timeout=1.0, notice_after=0.2,
                                                             notify=notices.append, purpose="install it too"):
            pass
        assert 0.9 < time.monotonic() - started < 5
        assert isinstance(info.value, CacheError) and isinstance(info.value, TimeoutError)
        assert info.value.holder["pid"] == child.pid
        msg = str(info.value)
        assert f"pid {child.pid} on {socket.gethostname()} since " in msg and "to install LLVMEnzyme.test" in msg
        assert "ENZYME_ARTIFACTS_LOCK_TIMEOUT" in msg
        assert len(notices) == 1 and f"held by pid {child.pid}" in notices[0]
    finally:
        child.kill()
        child.wait()


def test_the_notice_goes_to_the_log_by_default(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    lock = tmp_path / "install.lock"
    child = hold(lock, "install X", seconds=1.5)
    with caplog.at_level(logging.WARNING, logger="enzyme_artifacts.lock"), locked(lock, timeout=30, notice_after=0.2):
        pass  # obtained once the child lets go
    child.wait()
    assert any(f"held by pid {child.pid}" in r.getMessage() for r in caplog.records)
    assert read_holder(lock) == {}  # the child removed its sidecar


def test_a_killed_holder_frees_the_lock_and_its_stale_note_says_so(tmp_path: Path) -> None:
    lock = tmp_path / "install.lock"
    child = hold(lock, "install X")
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    stale = read_holder(lock)
    assert stale["pid"] == child.pid  # left behind by SIGKILL
    assert "that process is gone" in describe_holder(stale)
    with locked(lock, timeout=2):
        assert read_holder(lock)["pid"] == os.getpid()


def test_cache_install_reports_the_holder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from enzyme_artifacts.cache import Cache
    from enzyme_artifacts.manifest import load_manifest

    body = artifact_tarball()
    monkeypatch.setenv("ENZYME_ARTIFACTS_MANIFEST",
                       str(tarball_manifest(tmp_path / "Artifacts.toml", [("http://127.0.0.1:9/E.tar.gz", body)])))
    monkeypatch.setenv("ENZYME_ARTIFACTS_LOCK_TIMEOUT", "0.5")
    cache = Cache()
    cache.root.mkdir(parents=True)
    child = hold(cache.lock_path, "install LLVMEnzyme.v0.0.289.x86_64-linux-gnu-cxx11-llvm_version+15")
    try:
        with pytest.raises(LockTimeoutError, match=rf"held by pid {child.pid} .*to install LLVMEnzyme"):
            cache.install(load_manifest().entries[0])
    finally:
        child.kill()
        child.wait()
