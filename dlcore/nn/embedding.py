"""Embedding: integer ids -> rows of a weight matrix (a one-hot product without the product).

    y[..., :] = W[ids[...], :]               W (V, D)
    dL/dW[v] = Σ_{positions p with ids[p] = v} dL/dy[p]      (scatter-add: repeated ids accumulate)
"""

from __future__ import annotations

from typing import Any

from dlcore import backend
from dlcore.nn import init as initializers
from dlcore.nn.base import Layer
from dlcore.nn.functional import _check_dy, _describe

__all__ = ["Embedding", "check_ids"]


def check_ids(layer: str, ids: Any, vocab_size: int) -> None:
    """ids must be a non-empty integer array with values in [0, vocab_size)."""
    if not (hasattr(ids, "shape") and hasattr(ids, "dtype")):
        raise TypeError(f"{layer}: expected ids as an integer array, got {_describe(ids)}")
    if not backend.dtype_name(ids.dtype).startswith(("int", "uint")):
        raise TypeError(f"{layer}: expected integer ids (word/symbol indices), got {_describe(ids)}; "
                        "convert them first, e.g. ids.astype('int64')")
    if ids.ndim == 0 or ids.shape[0] == 0:
        raise ValueError(f"{layer}: expected a non-empty batch of ids, got {_describe(ids)}")
    if any(s == 0 for s in ids.shape):
        raise ValueError(f"{layer}: got an empty sequence (ids of shape {tuple(ids.shape)}); "
                         "expected at least one time step")
    xp = backend.namespace(ids)
    lo, hi = int(xp.min(ids)), int(xp.max(ids))
    if lo < 0 or hi >= vocab_size:
        raise ValueError(f"{layer}: expected ids in [0, {vocab_size - 1}] (vocab_size {vocab_size}), "
                         f"got values from {lo} to {hi}")


class Embedding(Layer):
    """y = W[ids]: ids of any shape (N,) or (N, T) -> (..., D); W (vocab_size, dim) ~ N(0, 0.01²) by default.

    ``backward(dy)`` stores dW (scatter-add of dy into the rows that were looked up) and returns
    None: ids are not differentiable.
    """

    def __init__(self, vocab_size: int, dim: int, *, init: Any = None, rng: backend.Seed = None,
                 dtype: Any = "float32") -> None:
        super().__init__()
        for what, size in (("vocab_size", vocab_size), ("dim", dim)):
            if int(size) != size or size <= 0:
                raise ValueError(f"Embedding: expected a positive integer {what}, got {size!r}")
        self.vocab_size, self.dim = int(vocab_size), int(dim)
        make = initializers.normal(0.01) if init is None else initializers.get(init)
        self.params = {"W": make((self.vocab_size, self.dim), rng, dtype)}
        self.ids: Any = None
        self.out: Any = None

    def forward(self, ids: Any) -> Any:
        check_ids("Embedding", ids, self.vocab_size)
        xp = backend.namespace(ids, self.params["W"], where="Embedding.forward")
        self.ids = ids
        flat = xp.reshape(ids, (-1,))
        self.out = xp.reshape(xp.take(self.params["W"], flat, axis=0), tuple(ids.shape) + (self.dim,))
        return self.out

    def backward(self, dy: Any) -> None:
        _check_dy("Embedding", dy, self.out)
        xp = backend.namespace(dy)
        w = self.params["W"]
        dw = xp.zeros(w.shape, dtype=w.dtype, device=backend.device_of(w))
        self.grads["W"] = backend.scatter_add(dw, xp.reshape(self.ids, (-1,)), xp.reshape(dy, (-1, self.dim)))
        return None

    def __repr__(self) -> str:
        return f"Embedding(vocab_size={self.vocab_size}, dim={self.dim})"
