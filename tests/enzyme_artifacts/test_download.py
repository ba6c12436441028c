"""The transport, against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from enzyme_artifacts.download import (
    DownloadSettings,
    check_url_allowed,
    download,
    format_size,
    mirror_url,
    progress_enabled,
)
from enzyme_artifacts.errors import (
    DownloadError,
    DownloadTimeoutError,
    HashMismatchError,
    OfflineError,
)

from ..support.http import ScriptedServer
from ._support import sha256

BODY = os.urandom(300_000)
FAST = DownloadSettings(connect_timeout=2, read_timeout=2, retries=2, backoff_factor=0.01)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_200(server: ScriptedServer, tmp_path: Path) -> None:
    url = server.route("/a.tar.gz", server.ok(BODY))
    out = download(url, tmp_path / "a.tar.gz", sha256=sha256(BODY), size=len(BODY), settings=FAST)
    assert out.read_bytes() == BODY
    assert leftovers(tmp_path) == ["a.tar.gz"]
    assert server.requests_to("/a.tar.gz")[0].headers["Accept-Encoding"] == "identity"


def test_404_is_not_retried(server: ScriptedServer, tmp_path: Path) -> None:
    url = server.url("/missing.tar.gz")
    with pytest.raises(DownloadError, match="HTTP 404.*not there") as info:
        download(url, tmp_path / "m.tar.gz", sha256=sha256(BODY), settings=FAST)
    assert url in str(info.value)
    assert len(server.requests_to("/missing.tar.gz")) == 1
    assert leftovers(tmp_path) == []


def test_500_then_200_is_retried(server: ScriptedServer, tmp_path: Path) -> None:
    url = server.route("/b.tar.gz", server.status(500), server.status(503), server.ok(BODY))
    download(url, tmp_path / "b.tar.gz", sha256=sha256(BODY), size=len(BODY), settings=FAST)
    assert len(server.requests_to("/b.tar.gz")) == 3


def test_500_forever_gives_up(server: ScriptedServer, tmp_path: Path) -> None:
    url = server.route("/c.tar.gz", server.status(502))
    with pytest.raises(DownloadError, match="HTTP 502"):
        download(url, tmp_path / "c.tar.gz", sha256=sha256(BODY), settings=FAST)
    assert len(server.requests_to("/c.tar.gz")) == FAST.retries + 1
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("content_length", [True, False])
def test_cut_short_body_is_resumed_with_range(server: ScriptedServer, tmp_path: Path,
                                              content_length: bool) -> None:
    url = server.route("/d.tar.gz", server.cut(BODY, 100_000, content_length=content_length),
                       server.ok(BODY, content_length=content_length))
    download(url, tmp_path / "d.tar.gz", sha256=sha256(BODY), size=len(BODY), settings=FAST)
    assert (tmp_path / "d.tar.gz").read_bytes() == BODY
    reqs = server.requests_to("/d.tar.gz")
    assert len(reqs) == 2
    assert "Range" not in reqs[0].headers
    # resumed after the bytes received intact (urllib3 drops a partial last read)
    start = int(reqs[1].headers["Range"].removeprefix("bytes=").removesuffix("-"))
    assert 0 < start <= 100_000


def test_cut_short_every_time_fails_and_leaves_nothing(server: ScriptedServer, tmp_path: Path) -> None:
    url = server.route("/e.tar.gz", server.cut(BODY, 1000, content_length=False),
                       server.cut(BODY, 2000, content_length=False), server.cut(BODY, 3000, content_length=False))
    with pytest.raises(DownloadError, match="attempts failed.*ended after 3000 of 300000"):
        download(url, tmp_path / "e.tar.gz", sha256=sha256(BODY), size=len(BODY), settings=FAST)
    assert leftovers(tmp_path) == []


def test_server_ignoring_range_still_gives_a_correct_file(server: ScriptedServer, tmp_path: Path) -> None:
    url = server.route("/f.tar.gz", server.cut(BODY, 50_000, content_length=False),
                       server.ok(BODY, honor_range=False))
    download(url, tmp_path / "f.tar.gz", sha256=sha256(BODY), size=len(BODY), settings=FAST)
    assert (tmp_path / "f.tar.gz").read_bytes() == BODY
    assert server.requests_to("/f.tar.gz")[1].headers["Range"] == "bytes=50000-"


def test_wrong_bytes_are_deleted_and_both_digests_named(server: ScriptedServer, tmp_path: Path) -> None:
    evil = bytes(reversed(BODY))
    url = server.route("/g.tar.gz", server.ok(evil))
    with pytest.raises(HashMismatchError) as info:
        download(url, tmp_path / "g.tar.gz", sha256=sha256(BODY), size=len(BODY), settings=FAST)
    msg = str(info.value)
    assert sha256(BODY) in msg and sha256(evil) in msg and "deleted" in msg
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("content_length", [True, False])
def test_wrong_size_is_refused_without_writing_it_all(server: ScriptedServer, tmp_path: Path,
                                                      content_length: bool) -> None:
    url = server.route("/h.tar.gz", server.ok(BODY + BODY, content_length=content_length))
    announced = f"has {2 * len(BODY)} bytes" if content_length else f"gave {len(BODY) + 1} bytes"
    with pytest.raises(HashMismatchError, match=f"{announced}, the manifest says {len(BODY)}"):
        download(url, tmp_path / "h.tar.gz", sha256=sha256(BODY), size=len(BODY), settings=FAST)
    assert leftovers(tmp_path) == []
    assert len(server.requests_to("/h.tar.gz")) == 1


def test_shorter_file_with_honest_length_is_not_retried(server: ScriptedServer, tmp_path: Path) -> None:
    url = server.route("/short.tar.gz", server.ok(BODY[:1000]))
    with pytest.raises(HashMismatchError, match="has 1000 bytes, the manifest says 300000"):
        download(url, tmp_path / "h.tar.gz", sha256=sha256(BODY), size=len(BODY), settings=FAST)
    assert len(server.requests_to("/short.tar.gz")) == 1


def test_server_slower_than_the_timeout(server: ScriptedServer, tmp_path: Path) -> None:
    url = server.route("/slow.tar.gz", server.ok(BODY, header_delay=1.0))
    quick = DownloadSettings(connect_timeout=1, read_timeout=0.2, retries=0)
    with pytest.raises(DownloadError, match="did not answer within 0.2 s"):
        download(url, tmp_path / "s.tar.gz", sha256=sha256(BODY), settings=quick)
    assert leftovers(tmp_path) == []


def test_stall_in_the_middle_of_the_body_is_retried(server: ScriptedServer, tmp_path: Path) -> None:
    url = server.route("/stall.tar.gz", server.ok(BODY, chunk=100_000, chunk_delay=1.0), server.ok(BODY))
    quick = DownloadSettings(connect_timeout=1, read_timeout=0.3, retries=1)
    download(url, tmp_path / "st.tar.gz", sha256=sha256(BODY), size=len(BODY), settings=quick)
    reqs = server.requests_to("/stall.tar.gz")
    # every byte that arrived before the stall is kept (reads return what arrived)
    assert len(reqs) == 2 and reqs[1].headers["Range"] == "bytes=100000-"


def test_offline_makes_no_request(server: ScriptedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = server.route("/o.tar.gz", server.ok(BODY))
    monkeypatch.setenv("ENZYME_ARTIFACTS_OFFLINE", "1")
    with pytest.raises(OfflineError, match="ENZYME_ARTIFACTS_OFFLINE"):
        download(url, tmp_path / "o.tar.gz", sha256=sha256(BODY))
    assert server.log == []


def test_mirror_replaces_the_base(server: ScriptedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server.route("/mirror/sub/Enzyme.tar.gz", server.ok(BODY))
    monkeypatch.setenv("ENZYME_ARTIFACTS_MIRROR", server.url("/mirror/sub/"))
    assert mirror_url("https://origin.invalid/x/y/Enzyme.tar.gz") == server.url("/mirror/sub/Enzyme.tar.gz")
    download("https://origin.invalid/x/y/Enzyme.tar.gz", tmp_path / "m.tar.gz", sha256=sha256(BODY),
             settings=FAST)
    assert [r.path for r in server.log] == ["/mirror/sub/Enzyme.tar.gz"]


def test_plain_http_only_for_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    check_url_allowed("http://127.0.0.1:9/x")
    check_url_allowed("http://[::1]:9/x")
    check_url_allowed("http://localhost/x")
    check_url_allowed("https://example.invalid/x")
    with pytest.raises(DownloadError, match="ENZYME_ARTIFACTS_ALLOW_HTTP=1"):
        check_url_allowed("http://example.invalid/x")
    with pytest.raises(DownloadError, match="only https"):
        check_url_allowed("ftp://example.invalid/x")
    monkeypatch.setenv("ENZYME_ARTIFACTS_ALLOW_HTTP", "1")
    check_url_allowed("http://example.invalid/x")


def test_progress_switch(monkeypatch: pytest.MonkeyPatch, server: ScriptedServer, tmp_path: Path,
                         capfd: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("ENZYME_ARTIFACTS_PROGRESS")
    assert progress_enabled() is False  # stderr is captured, not a terminal
    monkeypatch.setenv("ENZYME_ARTIFACTS_PROGRESS", "1")
    assert progress_enabled() is True
    assert progress_enabled(False) is False
    url = server.route("/p.tar.gz", server.ok(BODY))
    download(url, tmp_path / "p.tar.gz", sha256=sha256(BODY), size=len(BODY), settings=FAST)
    out, err = capfd.readouterr()
    assert out == "" and "p.tar.gz" in err
    monkeypatch.setenv("ENZYME_ARTIFACTS_PROGRESS", "0")
    download(url, tmp_path / "q.tar.gz", sha256=sha256(BODY), size=len(BODY), settings=FAST)
    assert capfd.readouterr() == ("", "")
    monkeypatch.setenv("ENZYME_ARTIFACTS_PROGRESS", "maybe")
    with pytest.raises(ValueError, match="ENZYME_ARTIFACTS_PROGRESS='maybe'"):
        progress_enabled()


def test_redirects_are_followed_within_the_rules(server: ScriptedServer, tmp_path: Path) -> None:
    target = server.route("/real/r.tar.gz", server.ok(BODY))
    redirect = server.redirect
    url = server.route("/moved/r.tar.gz", redirect(target))
    download(url, tmp_path / "r.tar.gz", sha256=sha256(BODY), size=len(BODY), settings=FAST)
    assert [r.path for r in server.log] == ["/moved/r.tar.gz", "/real/r.tar.gz"]
    bad = server.route("/evil/r.tar.gz", redirect("http://example.invalid/r.tar.gz"))
    with pytest.raises(DownloadError, match="refusing plain http for http://example.invalid"):
        download(bad, tmp_path / "x.tar.gz", sha256=sha256(BODY), settings=FAST)


def test_content_encoding_does_not_change_the_hashed_bytes(server: ScriptedServer, tmp_path: Path) -> None:
    import gzip

    tarball = gzip.compress(BODY)  # a .tar.gz some servers label Content-Encoding: gzip
    url = server.route("/enc.tar.gz", server.ok(tarball, headers={"Content-Encoding": "gzip"}))
    out = download(url, tmp_path / "enc.tar.gz", sha256=sha256(tarball), size=len(tarball), settings=FAST)
    assert out.read_bytes() == tarball


# ---------------------------------------------------------------------- issue 12, item 12
def test_a_drip_that_never_trips_the_read_timeout_hits_the_minimum_rate(
    server: ScriptedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reproduction: one byte every 1.5 s against a 2 s read timeout."""
    url = server.route("/drip.tar.gz", server.drip(BODY[:100], every=1.5))
    monkeypatch.setenv("ENZYME_ARTIFACTS_READ_TIMEOUT", "2")
    monkeypatch.setenv("ENZYME_ARTIFACTS_RETRIES", "0")
    started = time.monotonic()
    with pytest.raises(DownloadTimeoutError, match=r"less than the minimum of 4096 B/s.*ENZYME_ARTIFACTS_MIN_RATE"):
        download(url, tmp_path / "d.tar.gz", sha256=sha256(BODY[:100]), size=100)
    assert time.monotonic() - started < 6  # one window (2 s) and the byte that closes it
    assert leftovers(tmp_path) == []


def test_the_total_deadline(server: ScriptedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # fast enough for any rate check, too slow for a 1.5 s deadline (about 6 s in all)
    url = server.route("/slow.tar.gz", server.ok(BODY, chunk=10_000, chunk_delay=0.2))
    monkeypatch.setenv("ENZYME_ARTIFACTS_DOWNLOAD_DEADLINE", "1.5")
    started = time.monotonic()
    with pytest.raises(DownloadTimeoutError, match=r"took longer than 1.5 s.*ENZYME_ARTIFACTS_DOWNLOAD_DEADLINE"):
        download(url, tmp_path / "s.tar.gz", sha256=sha256(BODY), size=len(BODY))
    assert time.monotonic() - started < 4
    assert leftovers(tmp_path) == []


def test_the_deadline_spans_retries(server: ScriptedServer, tmp_path: Path) -> None:
    url = server.route("/flaky.tar.gz", server.status(503))
    settings = DownloadSettings(connect_timeout=1, read_timeout=1, retries=50, backoff_factor=0.2, deadline=1.0)
    started = time.monotonic()
    with pytest.raises(DownloadError):
        download(url, tmp_path / "f.tar.gz", sha256=sha256(BODY), settings=settings)
    assert time.monotonic() - started < 4  # urllib3's own retries stop at the deadline too


def test_rate_and_deadline_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from enzyme_artifacts._env import EnvironmentValueError

    monkeypatch.setenv("ENZYME_ARTIFACTS_DOWNLOAD_DEADLINE", "30")
    monkeypatch.setenv("ENZYME_ARTIFACTS_MIN_RATE", "16K")
    s = DownloadSettings.from_env()
    assert (s.deadline, s.min_rate) == (30.0, 16384)
    assert DownloadSettings().deadline == 1200.0 and DownloadSettings().min_rate == 4096
    monkeypatch.setenv("ENZYME_ARTIFACTS_MIN_RATE", "fast")
    with pytest.raises(EnvironmentValueError, match="ENZYME_ARTIFACTS_MIN_RATE='fast'"):
        DownloadSettings.from_env()
    monkeypatch.setenv("ENZYME_ARTIFACTS_MIN_RATE", "0")  # 0 switches the rate check off
    assert DownloadSettings.from_env().min_rate == 0


def test_a_file_url(tmp_path: Path) -> None:
    src = tmp_path / "src.tar.gz"
    src.write_bytes(BODY)
    with pytest.raises(DownloadError, match="unsupported URL"):
        download(src.as_uri(), tmp_path / "a.tar.gz", sha256=sha256(BODY))
    out = download(src.as_uri(), tmp_path / "b.tar.gz", sha256=sha256(BODY), size=len(BODY), allow_file=True)
    assert out.read_bytes() == BODY
    with pytest.raises(HashMismatchError):
        download(src.as_uri(), tmp_path / "c.tar.gz", sha256="0" * 64, allow_file=True)
    assert sorted(leftovers(tmp_path)) == ["b.tar.gz", "src.tar.gz"]


def test_the_progress_label(server: ScriptedServer, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    url = server.route("/l.tar.gz", server.ok(BODY))
    download(url, tmp_path / "l.tar.gz", sha256=sha256(BODY), progress=True,
             label=lambda total: f"the thing ({format_size(total)})", settings=FAST)
    err = capfd.readouterr().err
    assert "the thing (300.0 kB)" in err
