"""IDX reader/writer: round trips, the exact header layout, and clear errors for broken files."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from dlcore.data import IDXError, idx_bytes, parse_idx, read_idx, write_idx


@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16", "int32", "float32", "float64"])
@pytest.mark.parametrize("shape", [(7,), (3, 4, 5), (1, 2, 1, 3)])
def test_round_trip_bytes(dtype, shape):
    rng = np.random.default_rng(0)
    if dtype.startswith("float"):
        a = (rng.standard_normal(shape) * 50).astype(dtype)
    else:
        info = np.iinfo(dtype)
        a = rng.integers(info.min, info.max, shape, endpoint=True).astype(dtype)
    b = parse_idx(idx_bytes(a))
    assert b.dtype == np.dtype(dtype) and b.dtype.isnative
    assert b.shape == shape
    np.testing.assert_array_equal(a, b)
    assert b.flags.writeable


@pytest.mark.parametrize("name", ["images-idx3-ubyte", "images-idx3-ubyte.gz"])
def test_round_trip_file(tmp_path, name):
    a = np.random.default_rng(1).integers(0, 256, (5, 28, 28)).astype(np.uint8)
    path = write_idx(tmp_path / name, a)
    raw = path.read_bytes()
    assert (raw[:2] == b"\x1f\x8b") == name.endswith(".gz")
    np.testing.assert_array_equal(read_idx(path), a)


def test_header_layout_matches_mnist():
    data = idx_bytes(np.zeros((60000, 28, 28), np.uint8))
    assert data[:16] == bytes.fromhex("00000803" "0000EA60" "0000001C" "0000001C")
    assert len(data) == 16 + 60000 * 784
    labels = idx_bytes(np.zeros(10000, np.uint8))
    assert labels[:8] == bytes.fromhex("00000801" "00002710") and len(labels) == 10008


def test_big_endian_payload():
    data = idx_bytes(np.array([1, 256], dtype=np.int32))
    assert data == bytes.fromhex("00000C01" "00000002" "00000001" "00000100")
    np.testing.assert_array_equal(parse_idx(data), [1, 256])


def test_truncated_payload_is_reported():
    data = idx_bytes(np.arange(12, dtype=np.uint8).reshape(3, 4))
    with pytest.raises(IDXError, match=r"truncated.*needs 12 bytes.*only 11"):
        parse_idx(data[:-1], name="labels.idx")
    with pytest.raises(IDXError, match="labels.idx"):
        parse_idx(data[:-1], name="labels.idx")


def test_truncated_header_is_reported():
    data = idx_bytes(np.zeros((2, 3, 4), np.uint8))
    with pytest.raises(IDXError, match="truncated.*header"):
        parse_idx(data[:10])
    with pytest.raises(IDXError, match="truncated.*at least 4"):
        parse_idx(data[:3])


def test_bad_magic_is_reported():
    data = bytearray(idx_bytes(np.zeros(4, np.uint8)))
    data[0] = 0x12
    with pytest.raises(IDXError, match="bad IDX magic number 0x12000801"):
        parse_idx(bytes(data))


def test_gzip_bytes_given_to_parse_get_a_hint():
    gz = gzip.compress(idx_bytes(np.zeros(4, np.uint8)))
    with pytest.raises(IDXError, match="gzip-compressed"):
        parse_idx(gz)


def test_unknown_type_code_and_trailing_bytes():
    data = bytearray(idx_bytes(np.zeros(4, np.uint8)))
    data[2] = 0x0A
    with pytest.raises(IDXError, match="unknown IDX type code 0x0A"):
        parse_idx(bytes(data))
    with pytest.raises(IDXError, match="2 unexpected trailing bytes"):
        parse_idx(idx_bytes(np.zeros(4, np.uint8)) + b"\x00\x00")


def test_truncated_gzip_file_is_reported(tmp_path):
    path = write_idx(tmp_path / "x.gz", np.arange(1000, dtype=np.int16))
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(IDXError, match="corrupt or truncated gzip"):
        read_idx(path)


@pytest.mark.parametrize("dtype", ["int64", "bool", "complex64"])
def test_writer_rejects_dtypes_idx_cannot_store(dtype):
    with pytest.raises(TypeError, match="IDX cannot store"):
        idx_bytes(np.zeros(3, dtype))
