"""The downloader and load_mnist against a real HTTP server on 127.0.0.1 (no network needed).

The server runs in a daemon thread on an ephemeral port, serves files the test writes into a
temporary folder, counts requests per path, and can misbehave on purpose (drop the connection
mid-body). It stops at the end of each test, and by itself after 60 s at the latest.
"""

from __future__ import annotations

import collections
import gzip
import hashlib
import http.server
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from dlcore import backend
from dlcore.data import ChecksumError, DownloadError, FileCheck, data_home, fetch, idx_bytes, load_mnist
from dlcore.data import download as download_module
from dlcore.data.mnist import (
    FASHION_MNIST_CHECKSUMS,
    FASHION_MNIST_CLASSES,
    MNIST_CHECKSUMS,
    MNIST_FILES,
    load_fashion_mnist,
)

NAME = "numbers-idx1-ubyte.gz"
PAYLOAD = idx_bytes(np.arange(3000, dtype=np.int16))
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
    timeout = 5  # a stuck client cannot hold a handler thread for long

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        state = self.server.state  # type: ignore[attr-defined]
        path = self.path.split("?")[0]
        state.hits[path] += 1
        file = state.root / path.lstrip("/")
        if not file.is_file():
            self.send_error(404, "Not Found")
            return
        body = file.read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if path in state.drop:  # promise the whole body, send half, hang up
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class LocalServer:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.hits: collections.Counter[str] = collections.Counter()
        self.drop: set[str] = set()
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.state = self  # type: ignore[attr-defined]
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.guard = threading.Timer(60.0, self.httpd.shutdown)

    def mirror(self, folder: str) -> str:
        (self.root / folder).mkdir(exist_ok=True)
        return f"{self.base}/{folder}/"

    def put(self, folder: str, name: str, data: bytes) -> None:
        (self.root / folder).mkdir(exist_ok=True)
        (self.root / folder / name).write_bytes(data)

    def count(self, folder: str, name: str) -> int:
        return self.hits[f"/{folder}/{name}"]


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    srv = LocalServer(root)
    srv.thread.start()
    srv.guard.start()
    try:
        yield srv
    finally:
        srv.guard.cancel()
        srv.httpd.shutdown()
        srv.httpd.server_close()
        srv.thread.join(5)


@pytest.fixture
def cache(tmp_path):
    return tmp_path / "cache"


def _closed_port_url() -> str:
    with socket.socket() as s:  # bind, learn the port, close: nothing listens there any more
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".")) if folder.exists() else []


def _cached(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# --------------------------------------------------------------------------- fetch


def test_good_file_is_cached_decompressed_and_not_downloaded_again(server, cache):
    server.put("a", NAME, gzip.compress(PAYLOAD))
    path = fetch(NAME, [server.mirror("a")], SHA, cache, progress=False)
    assert path == cache / "numbers-idx1-ubyte"
    assert path.read_bytes() == PAYLOAD
    assert _cached(cache) == ["numbers-idx1-ubyte", "numbers-idx1-ubyte.verified.json"]
    assert server.count("a", NAME) == 1
    again = fetch(NAME, [server.mirror("a")], SHA, cache, progress=False)
    assert again == path and server.count("a", NAME) == 1


def test_corrupt_file_raises_checksum_error_and_caches_nothing(server, cache):
    bad = bytearray(PAYLOAD)
    bad[100] ^= 0xFF
    server.put("a", NAME, gzip.compress(bytes(bad)))
    with pytest.raises(ChecksumError) as info:
        fetch(NAME, [server.mirror("a")], SHA, cache, progress=False)
    msg = str(info.value)
    actual = hashlib.sha256(bytes(bad)).hexdigest()
    assert SHA in msg and actual in msg and NAME in msg
    assert info.value.expected == {"sha256 (decompressed)": SHA}
    assert info.value.actual == {"sha256 (decompressed)": actual}
    assert _cached(cache) == []


def test_connection_dropped_mid_body_leaves_nothing(server, cache):
    server.put("a", NAME, gzip.compress(PAYLOAD))
    server.drop.add(f"/a/{NAME}")
    with pytest.raises(DownloadError, match=r"connection closed after \d+ of \d+ bytes") as info:
        fetch(NAME, [server.mirror("a")], SHA, cache, progress=False)
    assert not isinstance(info.value, ChecksumError)
    assert _cached(cache) == []


def test_truncated_body_without_length_check_would_be_caught_by_gzip(server, cache):
    server.put("a", NAME, gzip.compress(PAYLOAD)[:-30])  # served complete, but the gzip stream is cut
    with pytest.raises(DownloadError, match="corrupt or truncated gzip"):
        fetch(NAME, [server.mirror("a")], SHA, cache, progress=False)
    assert _cached(cache) == []


def test_first_mirror_404_second_good(server, cache):
    server.mirror("empty")
    server.put("b", NAME, gzip.compress(PAYLOAD))
    path = fetch(NAME, [server.mirror("empty"), server.mirror("b")], SHA, cache, progress=False)
    assert path.read_bytes() == PAYLOAD
    assert server.count("empty", NAME) == 1 and server.count("b", NAME) == 1
    assert _leftovers(cache) == []


def test_bad_mirror_then_good_mirror_succeeds(server, cache):
    server.put("bad", NAME, gzip.compress(PAYLOAD[:-1] + b"\x01"))
    server.put("good", NAME, gzip.compress(PAYLOAD))
    path = fetch(NAME, [server.mirror("bad"), server.mirror("good")], SHA, cache, progress=False)
    assert path.read_bytes() == PAYLOAD


def test_all_mirrors_down_fails_fast_with_a_helpful_message(cache):
    mirrors = [_closed_port_url(), _closed_port_url()]
    start = time.perf_counter()
    with pytest.raises(DownloadError) as info:
        fetch(NAME, mirrors, SHA, cache, timeout=120.0, progress=False)
    # a refused connection fails at once instead of waiting for the timeout (two of them: 240 s); the bound
    # leaves a loaded machine a 4x margin and still fails a fetch that waits
    assert time.perf_counter() - start < 60.0
    msg = str(info.value)
    assert not isinstance(info.value, ChecksumError)
    for m in mirrors:
        assert m + NAME in msg
    assert NAME in msg and str(cache) in msg
    assert "load_digits()" in msg and "DLCORE_DATA" in msg
    assert _leftovers(cache) == [] and _cached(cache) == []


def test_silent_server_times_out_and_the_next_mirror_is_used(server, cache):
    server.put("b", NAME, gzip.compress(PAYLOAD))
    with socket.socket() as silent:  # accepts connections (kernel backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/"
        start = time.perf_counter()
        path = fetch(NAME, [url, server.mirror("b")], SHA, cache, timeout=0.3, progress=False)
        # without the timeout the silent mirror would never answer; the bound only catches that (a 200x margin)
        assert time.perf_counter() - start < 60.0
    assert path.read_bytes() == PAYLOAD


def test_data_home_follows_the_environment_variable(server, tmp_path, monkeypatch):
    home = tmp_path / "my-data"
    monkeypatch.setenv("DLCORE_DATA", str(home))
    assert data_home() == home
    server.put("a", NAME, gzip.compress(PAYLOAD))
    path = fetch(NAME, [server.mirror("a")], SHA, progress=False)
    assert path == home / "numbers-idx1-ubyte" and path.read_bytes() == PAYLOAD
    monkeypatch.delenv("DLCORE_DATA")
    assert data_home() == Path.home() / ".cache" / "dlcore"


def test_keyboard_interrupt_removes_temporary_files(server, cache, monkeypatch):
    server.put("a", NAME, gzip.compress(PAYLOAD))

    def interrupted(raw, out):
        out.write_bytes(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(download_module, "_decompress", interrupted)
    with pytest.raises(KeyboardInterrupt):
        fetch(NAME, [server.mirror("a")], SHA, cache, progress=False)
    assert _cached(cache) == []


def test_gz_digests_verify_the_canonical_file_and_reject_a_recompressed_one(server, cache):
    canonical = gzip.compress(PAYLOAD, mtime=0)
    check = FileCheck(size=len(PAYLOAD), gz_md5=hashlib.md5(canonical).hexdigest(),
                      gz_sha256=hashlib.sha256(canonical).hexdigest())
    recompressed = gzip.compress(PAYLOAD, compresslevel=1, mtime=12345)
    server.put("re", NAME, recompressed)
    with pytest.raises(ChecksumError, match=r"md5 \(.gz as served\)"):
        fetch(NAME, [server.mirror("re")], check, cache, progress=False)
    assert _cached(cache) == []
    # knowing the decompressed digest, the re-compressed copy is fine
    path = fetch(NAME, [server.mirror("re")], FileCheck(sha256=SHA, size=len(PAYLOAD)), cache / "2", progress=False)
    assert path.read_bytes() == PAYLOAD
    server.put("canon", NAME, canonical)
    path = fetch(NAME, [server.mirror("canon")], check, cache, progress=False)
    assert path.read_bytes() == PAYLOAD


def test_wrong_size_is_a_checksum_error(server, cache):
    server.put("a", NAME, gzip.compress(PAYLOAD))
    with pytest.raises(ChecksumError, match="size"):
        fetch(NAME, [server.mirror("a")], SHA, cache, size=len(PAYLOAD) + 1, progress=False)
    assert _cached(cache) == []


def test_uncompressed_file_from_a_mirror_is_accepted(server, cache):
    server.put("a", NAME, PAYLOAD)
    assert fetch(NAME, [server.mirror("a")], SHA, cache, progress=False).read_bytes() == PAYLOAD


def test_files_placed_by_hand_are_verified_and_used_offline(cache):
    cache.mkdir()
    (cache / NAME).write_bytes(gzip.compress(PAYLOAD))
    path = fetch(NAME, [], SHA, cache, progress=False)
    assert path.read_bytes() == PAYLOAD
    other = cache / "other"
    other.mkdir()
    (other / "numbers-idx1-ubyte").write_bytes(PAYLOAD)  # decompressed, no verification record
    assert fetch(NAME, [], SHA, other, progress=False).read_bytes() == PAYLOAD
    assert (other / "numbers-idx1-ubyte.verified.json").exists()


def test_corrupt_cached_file_is_reported_not_deleted(server, cache):
    server.put("a", NAME, gzip.compress(PAYLOAD))
    path = fetch(NAME, [server.mirror("a")], SHA, cache, progress=False)
    path.write_bytes(PAYLOAD[:-10])
    with pytest.raises(ChecksumError, match=r"cached file .* has 5998 bytes, expected 6008.*Delete"):
        fetch(NAME, [server.mirror("a")], SHA, cache, progress=False)
    assert path.exists() and server.count("a", NAME) == 1


def test_a_checksum_is_required(cache):
    with pytest.raises(ValueError, match="no checksum"):
        fetch(NAME, ["http://127.0.0.1:9/"], None, cache)


# --------------------------------------------------------------------------- load_mnist


def _write_mnist(server, folder, n_train=40, n_test=20, seed=0):
    rng = np.random.default_rng(seed)
    arrays = {
        "train_images": rng.integers(0, 256, (n_train, 28, 28)).astype(np.uint8),
        "train_labels": (np.arange(n_train) % 10).astype(np.uint8),
        "test_images": rng.integers(0, 256, (n_test, 28, 28)).astype(np.uint8),
        "test_labels": (np.arange(n_test) % 10).astype(np.uint8),
    }
    sums = {}
    for role, a in arrays.items():
        raw = idx_bytes(a)
        server.put(folder, MNIST_FILES[role], gzip.compress(raw))
        sums[MNIST_FILES[role]] = hashlib.sha256(raw).hexdigest()
    return arrays, sums


def test_load_mnist_end_to_end(server, cache):
    arrays, sums = _write_mnist(server, "m")
    kw = {"mirrors": [server.mirror("m")], "checksums": sums, "cache_dir": cache, "progress": False}
    data = load_mnist(**kw)
    assert data.x_train.shape == (40, 784) and data.x_test.shape == (20, 784)
    assert data.x_train.dtype == np.float32 and data.t_train.dtype == np.int64
    np.testing.assert_allclose(data.x_train, arrays["train_images"].reshape(40, -1) / np.float32(255), rtol=1e-7)
    np.testing.assert_array_equal(data.t_test, arrays["test_labels"])
    assert data.image_shape == (28, 28) and data.class_names == tuple("0123456789")
    assert sum(server.hits.values()) == 4
    cnn = load_mnist(flatten=False, one_hot=True, n_train=30, validation_size=10, device="strict", **kw)
    assert sum(server.hits.values()) == 4  # served from the cache
    assert type(cnn.x_train).__module__.startswith("array_api_strict")
    assert tuple(cnn.x_train.shape) == (20, 1, 28, 28) and tuple(cnn.x_val.shape) == (10, 1, 28, 28)
    assert tuple(cnn.t_val.shape) == (10, 10)
    val_labels = np.sort(backend.to_numpy(cnn.t_val).argmax(1))
    np.testing.assert_array_equal(val_labels, np.arange(10))  # stratified: one of each class


def test_load_mnist_offline_error_names_the_folder(cache):
    with pytest.raises(DownloadError) as info:
        load_mnist(mirrors=[_closed_port_url()], cache_dir=cache, progress=False)
    assert "train-images-idx3-ubyte.gz" in str(info.value) and str(cache) in str(info.value)


def test_load_mnist_uses_dlcore_data_subfolder(server, tmp_path, monkeypatch):
    monkeypatch.setenv("DLCORE_DATA", str(tmp_path / "d"))
    _, sums = _write_mnist(server, "m", n_train=10, n_test=10)
    load_mnist(mirrors=[server.mirror("m")], checksums=sums, progress=False)
    assert (tmp_path / "d" / "mnist" / "train-images-idx3-ubyte").exists()


def test_load_fashion_mnist_end_to_end(server, cache):
    _, sums = _write_mnist(server, "f", seed=1)
    data = load_fashion_mnist(mirrors=[server.mirror("f")], checksums=sums, cache_dir=cache, scale=False,
                              progress=False)
    assert data.class_names == FASHION_MNIST_CLASSES and data.name == "fashion-mnist"
    assert float(data.x_train.max()) == 255.0


@pytest.mark.parametrize("table", [MNIST_CHECKSUMS, FASHION_MNIST_CHECKSUMS], ids=["mnist", "fashion"])
def test_builtin_checksum_tables_are_well_formed(table):
    sizes = {"train-images-idx3-ubyte.gz": 47040016, "train-labels-idx1-ubyte.gz": 60008,
             "t10k-images-idx3-ubyte.gz": 7840016, "t10k-labels-idx1-ubyte.gz": 10008}
    assert set(table) == set(MNIST_FILES.values())
    for name, check in table.items():
        assert check.size == sizes[name]
        assert check.has_digest() and check.source
        for digest, length in ((check.gz_md5, 32), (check.gz_sha256, 64), (check.sha256, 64)):
            if digest is not None:
                assert len(digest) == length and int(digest, 16) >= 0
