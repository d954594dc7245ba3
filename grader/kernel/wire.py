"""The one wire format between the trusted grader and the kernel: plain data as JSON, never pickle.

    encode(value) -> JSON-able      numbers, strings, None, bools, NumPy arrays (numeric or string
                                    dtypes) and scalars, lists, tuples, dicts with string keys;
                                    anything else becomes {"__opaque__": "<type>"}
    decode(json)  -> value          the inverse; safe on hostile input: it refuses object and structured
                                    dtypes, checks that an array's bytes match its shape and dtype, and
                                    builds nothing but the types above (an opaque value stays a string)

Used in both directions: plans' inputs to the kernel (requests), records back (records file).
Imports only the standard library and NumPy (this module is copied into the sandbox).
"""

from __future__ import annotations

import base64
import math
from typing import Any

import numpy as np

__all__ = ["encode", "decode", "Opaque"]

MAX_BYTES = 32 * 2**20     # one message's array data; more is recorded as "too large"
MAX_DEPTH = 40
MAX_ITEMS = 200_000


class Opaque(str):
    """Stands for a value that is not plain data ("<opaque: Foo>"); compares like its text."""


class _TooLarge(Exception):
    pass


def _safe(dtype: np.dtype) -> bool:  # numbers and strings only: never object or structured dtypes
    return dtype.kind in "biufcSU" and not dtype.hasobject and dtype.fields is None


def _array(a: Any, budget: list[int]) -> dict:
    a = np.asarray(a)
    if not _safe(a.dtype):
        return {"__opaque__": f"array of dtype {a.dtype}"}
    budget[0] -= a.nbytes
    if budget[0] < 0:
        raise _TooLarge
    return {"__ndarray__": base64.b64encode(np.ascontiguousarray(a).tobytes()).decode("ascii"),
            "dtype": a.dtype.str, "shape": list(a.shape)}


def _enc(v: Any, budget: list[int], depth: int) -> Any:
    if depth > MAX_DEPTH:
        return {"__opaque__": "too deeply nested"}
    t = type(v)
    if v is None or t is bool or t is int:
        return v
    if t is str:
        budget[0] -= len(v)
        if budget[0] < 0:
            raise _TooLarge
        return v
    if t is float:
        return v if math.isfinite(v) else {"__float__": repr(v)}
    if isinstance(v, (np.ndarray, np.generic)):
        out = _array(v, budget)
        return out if isinstance(v, np.ndarray) or "__opaque__" in out else {**out, "scalar": True}
    if hasattr(v, "__array_namespace__"):  # array-api arrays (array_api_strict, CuPy): as NumPy
        try:
            return _array(np.from_dlpack(v), budget)
        except _TooLarge:
            raise
        except Exception:
            return {"__opaque__": t.__name__[:80]}
    if isinstance(v, (list, tuple, dict)):
        if len(v) > MAX_ITEMS:
            raise _TooLarge
        if isinstance(v, dict):
            return {"__dict__": [[_enc(k, budget, depth + 1), _enc(x, budget, depth + 1)] for k, x in v.items()]}
        body = [_enc(x, budget, depth + 1) for x in v]
        return {"__tuple__": body} if isinstance(v, tuple) else body
    for plain in (bool, int, float, str):  # subclasses of the plain types: their plain value
        if isinstance(v, plain):
            return _enc(plain(v), budget, depth)
    return {"__opaque__": t.__name__[:80]}


def encode(v: Any) -> Any:
    """JSON-able form of ``v`` (never raises: misbehaving objects become opaque)."""
    try:
        return _enc(v, [MAX_BYTES], 0)
    except _TooLarge:
        return {"__opaque__": "a value too large to record"}
    except RecursionError:
        return {"__opaque__": "too deeply nested"}
    except Exception as exc:  # a student's object misbehaved while being read
        return {"__opaque__": f"unreadable ({type(exc).__name__})"}


def _decode_array(v: dict) -> Any:
    dtype = np.dtype(str(v["dtype"]))
    if not _safe(dtype):
        raise ValueError(f"refusing to decode an array of dtype {dtype}")
    shape = [int(n) for n in v["shape"]]
    if len(shape) > 32 or any(n < 0 for n in shape):
        raise ValueError(f"refusing to decode an array of shape {shape}")
    raw = base64.b64decode(str(v["__ndarray__"]), validate=True)
    if math.prod(shape) * dtype.itemsize != len(raw):
        raise ValueError("array data does not match its shape and dtype")
    a = np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
    return a[()] if v.get("scalar") is True else a


def decode(v: Any, depth: int = 0) -> Any:
    """Inverse of :func:`encode`; raises ValueError on anything that is not this format."""
    if depth > MAX_DEPTH + 2:
        raise ValueError("too deeply nested")
    if isinstance(v, dict):
        if "__ndarray__" in v:
            return _decode_array(v)
        if "__tuple__" in v:
            return tuple(decode(x, depth + 1) for x in v["__tuple__"])
        if "__dict__" in v:
            out = {}
            for pair in v["__dict__"]:
                key, value = decode(pair[0], depth + 1), decode(pair[1], depth + 1)
                if not isinstance(key, (str, int, float, bool, tuple)) and key is not None:
                    key = Opaque(f"<opaque key: {type(key).__name__}>")
                out[key] = value
            return out
        if "__float__" in v:
            return float(str(v["__float__"]))
        if "__opaque__" in v:
            return Opaque(f"<opaque: {str(v['__opaque__'])[:80]}>")
        raise ValueError(f"not a wire value: a mapping with keys {sorted(map(str, v))[:5]}")
    if isinstance(v, list):
        return [decode(x, depth + 1) for x in v]
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    raise ValueError(f"not a wire value: {type(v).__name__}")

