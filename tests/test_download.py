"""Downloads from a local HTTP server: mirror fallback, checksum refusal, dropped connections,
atomic writes (nothing left behind on failure)."""
from __future__ import annotations

import gzip
import hashlib
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from autoenc import data
from autoenc.errors import DataError
from generated import write_dataset


class _Handler(BaseHTTPRequestHandler):
    """GET /<mode>/<file>.gz, where mode says how this "mirror" misbehaves."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        _, mode, filename = self.path.split("/", 2)
        stem = filename.removesuffix(".gz")
        self.server.requests.append((mode, stem))
        files = self.server.files
        if mode == "forbidden":
            return self.send_error(403)
        if mode == "partial" and stem in (data.TRAIN_IMAGES, data.TEST_LABELS):
            return self.send_error(404)
        if stem not in files["good"]:
            return self.send_error(404)
        body = files.get(mode, files["good"])[stem]
        if mode == "slow":
            time.sleep(1.0)
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if mode == "drop":  # announce the full length, send half, hang up
            self.wfile.write(body[: len(body) // 2])
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        pass  # a client that gave up (timeout test) is not an error here


def _read_files(folder: Path) -> dict[str, bytes]:
    return {stem: (folder / (stem + ".gz")).read_bytes() for stem in data.FILES}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    """A local server with a small generated mnist: good, corrupt and recompressed copies."""
    root = tmp_path_factory.mktemp("served")
    table = write_dataset(root / "good", "mnist", n_train=120, n_test=24)
    write_dataset(root / "corrupt", "mnist", n_train=120, n_test=24, seed=1)
    good = _read_files(root / "good" / "mnist")
    recompressed = {stem: gzip.compress(gzip.decompress(body), compresslevel=9, mtime=1)
                    for stem, body in good.items()}
    srv = _Server(("127.0.0.1", 0), _Handler)
    srv.files = {"good": good, "corrupt": _read_files(root / "corrupt" / "mnist"),
                 "recompressed": recompressed}
    srv.table = table
    srv.requests = []
    thread = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def mirror(server, monkeypatch: pytest.MonkeyPatch):
    """mirror(mode) -> base URL; downloads allowed, checksums of the served mnist in place."""
    monkeypatch.delenv("AUTOENC_OFFLINE")
    monkeypatch.setitem(data.SHA256, "mnist", server.table)
    server.requests.clear()
    return lambda mode: f"http://127.0.0.1:{server.server_address[1]}/{mode}/"


def _leftovers(folder: Path) -> list[str]:
    """Names of the files a failed fetch left in the dataset folder (which it may remove)."""
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def _assert_verified(folder: Path) -> None:
    assert sorted(p.name for p in folder.iterdir()) == sorted(s + ".gz" for s in data.FILES)
    for stem in data.FILES:
        assert data._verified("mnist", stem, folder)


def test_falls_back_to_next_mirror(mirror, server, tmp_path: Path) -> None:
    folder = data.fetch("mnist", dest=tmp_path,
                        mirrors=[mirror("forbidden"), mirror("partial"), mirror("good")])
    assert folder == tmp_path / "mnist"
    _assert_verified(folder)
    used = {stem: [mode for mode, s in server.requests if s == stem] for stem in data.FILES}
    assert used[data.TRAIN_IMAGES] == ["forbidden", "partial", "good"]
    assert used[data.TRAIN_LABELS] == ["forbidden", "partial"]
    # Files already present and verified are not downloaded again.
    server.requests.clear()
    data.fetch("mnist", dest=tmp_path, mirrors=[mirror("forbidden")])
    assert server.requests == []


def test_all_mirrors_fail(mirror, tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        data.fetch("mnist", dest=tmp_path, mirrors=[mirror("forbidden"), mirror("partial")])
    message = str(info.value)
    assert "HTTP 403" in message and "HTTP 404" in message and "nothing was written" in message
    assert _leftovers(tmp_path / "mnist") == []


def test_corrupt_mirror_is_refused(mirror, server, tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        data.fetch("mnist", dest=tmp_path, mirrors=[mirror("corrupt")])
    message = str(info.value)
    stem = data.TRAIN_IMAGES
    actual = hashlib.sha256(gzip.decompress(server.files["corrupt"][stem])).hexdigest()
    assert f"{stem}.gz" in message and "checksum mismatch" in message
    assert server.table[stem] in message and actual in message
    assert _leftovers(tmp_path / "mnist") == []  # no file, no temporary file
    data.fetch("mnist", dest=tmp_path, mirrors=[mirror("corrupt"), mirror("good")])
    _assert_verified(tmp_path / "mnist")


def test_dropped_connection_leaves_nothing(mirror, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="connection dropped after"):
        data.fetch("mnist", dest=tmp_path, mirrors=[mirror("drop")])
    assert _leftovers(tmp_path / "mnist") == []


def test_timeout_moves_on(mirror, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(data, "TIMEOUT", 0.2)
    monkeypatch.setattr(data, "FILES", (data.TRAIN_LABELS,))  # one file is enough here
    data.fetch("mnist", dest=tmp_path, mirrors=[mirror("slow"), mirror("good")])
    assert [p.name for p in (tmp_path / "mnist").iterdir()] == [data.TRAIN_LABELS + ".gz"]


def test_recompressed_copy_verifies(mirror, server, tmp_path: Path) -> None:
    folder = data.fetch("mnist", dest=tmp_path, mirrors=[mirror("recompressed")])
    stem = data.TEST_IMAGES
    stored = (folder / (stem + ".gz")).read_bytes()
    assert stored == server.files["recompressed"][stem] != server.files["good"][stem]
    assert data.load("mnist", "test", data_dir=tmp_path)[0].shape == (24, 784)


def test_load_downloads_into_cache(mirror, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(data.MIRRORS, "mnist", [mirror("good")])
    x, y = data.load("mnist", "val")
    assert x.shape == (10, 784) and y.shape == (10,)
    assert data.locate("mnist") == ("cache", data.cache_dir() / "mnist")


def test_offline_refuses_to_download(mirror, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOENC_OFFLINE", "1")
    with pytest.raises(DataError, match="AUTOENC_OFFLINE"):
        data.fetch("mnist", mirrors=[mirror("good")])
