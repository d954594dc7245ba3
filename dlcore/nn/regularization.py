"""Dropout (Srivastava et al. 2014), in its inverted form.

Training:  y = x ⊙ m / (1 - p),  m_i ~ Bernoulli(1 - p) (each unit is dropped with probability p),
           so E[y] = x and nothing changes at test time;
Evaluation: y = x.
Backward:  dL/dx = dL/dy ⊙ m / (1 - p)  (the same mask as the forward pass).
"""

from __future__ import annotations

from typing import Any

from dlcore import backend
from dlcore.nn.base import Layer, check_array
from dlcore.nn.functional import _check_dy

__all__ = ["Dropout"]


class Dropout(Layer):
    """Inverted dropout with drop probability ``p``; ``rng`` (seed or Generator) draws the masks.

    After a training forward pass ``mask`` holds the 0/1 keep mask m (in the input's dtype).
    """

    has_train_mode = True

    def __init__(self, p: float = 0.5, rng: backend.Seed = None) -> None:
        super().__init__()
        if not 0.0 <= float(p) < 1.0:
            raise ValueError(f"Dropout: expected a drop probability p in [0, 1), got {p}")
        self.p = float(p)
        self.rng = backend.default_rng(rng)
        self.mask: Any = None
        self.scale = 1.0 / (1.0 - self.p)
        self.x: Any = None

    def forward(self, x: Any, train: bool = True) -> Any:
        check_array("Dropout", "x", x, ndim=range(1, 8))
        self.x = x
        if not train or self.p == 0.0:
            self.mask = None  # identity: backward passes dy through
            return x
        xp = backend.namespace(x)
        u = backend.random(self.rng, tuple(x.shape), dtype=x.dtype, xp=xp)
        self.mask = xp.astype(u >= self.p, x.dtype)  # keep with probability 1 - p
        return x * self.mask * self.scale

    def backward(self, dy: Any) -> Any:
        _check_dy("Dropout", dy, self.x)
        if self.mask is None:
            return dy
        return dy * self.mask * self.scale  # dL/dx = dL/dy ⊙ m / (1 - p)

    def __repr__(self) -> str:
        return f"Dropout(p={self.p})"
