"""Sinusoidal positional encoding (Vaswani et al. 2017, section 3.5).

Attention alone ignores the order of the steps, so each position gets its own pattern added:

    PE[pos, 2i]   = sin(pos / 10000^(2i/E))
    PE[pos, 2i+1] = cos(pos / 10000^(2i/E))          pos = 0 .. max_len - 1,  i = 0 .. ⌈E/2⌉ - 1

(feature 2i and 2i+1 share the wavelength 2π · 10000^(2i/E), from 2π up to about 2π · 10000).
forward: y[n, t] = x[n, t] + PE[t];  backward: dL/dx = dL/dy (the table is a constant).
"""

from __future__ import annotations

import numbers
from typing import Any

from dlcore import backend
from dlcore.nn.base import Layer, check_array
from dlcore.nn.functional import _check_dy, _describe

__all__ = ["PositionalEncoding", "sinusoid_table"]


def sinusoid_table(max_len: int, embed_dim: int, xp: Any = None) -> Any:
    """PE (max_len, embed_dim) in float64: sin at even features 2i, cos at odd 2i+1, angle pos / 10000^(2i/E)."""
    xp = backend.resolve("cpu") if xp is None else xp
    pos = xp.arange(max_len, dtype=xp.float64)[:, None]
    k = xp.arange(embed_dim, dtype=xp.float64)
    two_i = k - k % 2                                              # 2i for both features 2i and 2i+1
    angle = pos / 10000.0 ** (two_i / embed_dim)                   # pos / 10000^(2i/E)
    return xp.where(k % 2 == 0, xp.sin(angle), xp.cos(angle))


class PositionalEncoding(Layer):
    """y = x + PE[:T] for x (N, T, E) with T <= max_len; no parameters.

    ``pe`` holds the (max_len, E) table in float64 (a buffer: :meth:`to` moves it). It stays float64
    under :meth:`astype` because it is a constant: forward casts the rows it adds to the input's
    dtype, so float32 in gives float32 out and float64 in gets the table to full precision.
    """

    def __init__(self, embed_dim: int, max_len: int = 5000) -> None:
        super().__init__()
        for what, value in (("embed_dim", embed_dim), ("max_len", max_len)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
                raise ValueError(f"PositionalEncoding: expected a positive integer {what}, got {value!r}")
        self.embed_dim, self.max_len = int(embed_dim), int(max_len)
        self.pe = sinusoid_table(self.max_len, self.embed_dim)
        self.out: Any = None

    def buffers(self) -> dict[str, Any]:
        return {"pe": self.pe}

    def astype(self, dtype: Any) -> PositionalEncoding:
        """No-op apart from dropping gradients: the table stays float64 (see the class docstring)."""
        backend.dtype_name(dtype)  # still reject an unknown dtype
        self.grads = {}
        return self

    def forward(self, x: Any) -> Any:
        check_array("PositionalEncoding", "x", x, ndim=3, last_dim=self.embed_dim)
        t = x.shape[1]
        if t > self.max_len:
            raise ValueError(f"PositionalEncoding: got a sequence of {t} steps ({_describe(x)}) but the table has "
                             f"max_len = {self.max_len} positions; build PositionalEncoding({self.embed_dim}, "
                             f"max_len={t}) or longer")
        xp = backend.namespace(x, self.pe, where="PositionalEncoding.forward")
        self.out = x + xp.astype(self.pe[:t, :], x.dtype)        # the same PE[t] for every sample
        return self.out

    def backward(self, dy: Any) -> Any:
        _check_dy("PositionalEncoding", dy, self.out)
        return dy

    def __repr__(self) -> str:
        return f"PositionalEncoding(embed_dim={self.embed_dim}, max_len={self.max_len})"
