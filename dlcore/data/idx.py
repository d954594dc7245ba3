"""The IDX file format of MNIST and Fashion-MNIST: read and write.

An IDX file is a header and a C-order array, all big-endian::

    byte 0-1   0x00 0x00            (magic: two zero bytes)
    byte 2     type code            0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64
    byte 3     number of dimensions d
    then       d sizes, each a big-endian uint32
    then       prod(sizes) values of the type, big-endian

So MNIST's training images start with ``00 00 08 03  00 00 EA 60  00 00 00 1C  00 00 00 1C``
(uint8, 3 dimensions, 60000 x 28 x 28). Files are often gzip-compressed (``.gz``);
:func:`read_idx` recognises gzip by its own magic bytes, whatever the file name.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np

__all__ = ["IDXError", "IDX_TYPES", "parse_idx", "read_idx", "idx_bytes", "write_idx"]

#: IDX type code -> big-endian NumPy dtype.
IDX_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {dt.newbyteorder("=").name: code for code, dt in IDX_TYPES.items()}
_GZIP_MAGIC = b"\x1f\x8b"


class IDXError(ValueError):
    """Raised for data that is not a well-formed IDX file (bad magic, truncated, trailing bytes)."""


def _codes_text() -> str:
    return ", ".join(f"0x{code:02X} {dt.newbyteorder('=').name}" for code, dt in IDX_TYPES.items())


def parse_idx(data: bytes | bytearray | memoryview, *, name: str = "IDX data") -> np.ndarray:
    """Parse an (uncompressed) IDX file's bytes into a NumPy array in native byte order.

    Raises :class:`IDXError` naming ``name`` when the header is malformed or the
    payload is shorter or longer than the header's dimensions require.
    """
    buf = memoryview(data).cast("B")
    if len(buf) < 4:
        raise IDXError(f"{name}: truncated IDX file: {len(buf)} bytes, but the header alone needs at least 4")
    if bytes(buf[:2]) != b"\x00\x00":
        hint = " It looks gzip-compressed: use read_idx() or gzip.decompress() first." \
            if bytes(buf[:2]) == _GZIP_MAGIC else ""
        raise IDXError(
            f"{name}: bad IDX magic number 0x{bytes(buf[:4]).hex().upper()}: expected two zero bytes, "
            f"a type code and the number of dimensions (e.g. 0x00000803 for MNIST images).{hint}"
        )
    code, ndim = buf[2], buf[3]
    if code not in IDX_TYPES:
        raise IDXError(f"{name}: unknown IDX type code 0x{code:02X}; expected one of {_codes_text()}")
    if ndim == 0:
        raise IDXError(f"{name}: IDX header declares 0 dimensions; expected at least 1")
    header = 4 + 4 * ndim
    if len(buf) < header:
        raise IDXError(
            f"{name}: truncated IDX file: the header declares {ndim} dimensions and needs {header} bytes, "
            f"but the file has only {len(buf)}"
        )
    shape = struct.unpack(f">{ndim}I", buf[4:header])
    dtype = IDX_TYPES[code]
    expected = math.prod(shape) * dtype.itemsize
    got = len(buf) - header
    if got < expected:
        raise IDXError(
            f"{name}: truncated IDX file: shape {shape} of {dtype.newbyteorder('=').name} needs {expected} bytes "
            f"of data after the {header}-byte header, but only {got} are there (incomplete download?)"
        )
    if got > expected:
        raise IDXError(
            f"{name}: {got - expected} unexpected trailing bytes after the data for shape {shape} "
            f"({expected} bytes of {dtype.newbyteorder('=').name}); the file is not a single IDX array"
        )
    arr = np.frombuffer(buf, dtype=dtype, count=math.prod(shape), offset=header).reshape(shape)
    return arr.astype(dtype.newbyteorder("="))  # native byte order, and a writable copy


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file from disk, gzip-compressed or not (detected from its first bytes)."""
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise IDXError(f"{path}: corrupt or truncated gzip data ({exc})") from exc
    return parse_idx(raw, name=str(path))


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding (uncompressed) of a NumPy array of a supported dtype."""
    arr = np.asarray(array)
    name = arr.dtype.newbyteorder("=").name
    if name not in _CODES:
        raise TypeError(f"idx_bytes: IDX cannot store dtype {arr.dtype}; expected one of {_codes_text()}")
    if arr.ndim == 0 or arr.ndim > 255:
        raise ValueError(f"idx_bytes: IDX stores arrays of 1 to 255 dimensions, got {arr.ndim}")
    if any(s >= 2**32 for s in arr.shape):
        raise ValueError(f"idx_bytes: IDX sizes are uint32, got shape {arr.shape}")
    code = _CODES[name]
    header = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + np.ascontiguousarray(arr, dtype=IDX_TYPES[code]).tobytes()


def write_idx(path: str | os.PathLike[str], array: np.ndarray, *, compress: bool | None = None) -> Path:
    """Write ``array`` as an IDX file; gzip-compressed when ``compress`` (default: the name ends in ``.gz``)."""
    path = Path(path)
    data = idx_bytes(array)
    if compress is None:
        compress = path.suffix == ".gz"
    if compress:
        data = gzip.compress(data, mtime=0)
    path.write_bytes(data)
    return path
