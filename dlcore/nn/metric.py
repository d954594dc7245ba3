"""Metric-learning losses: learn embeddings whose distances mean something.

ContrastiveLoss (Hadsell, Chopra & LeCun 2006), over N pairs (x1_n, x2_n) with d_n = ||x1_n - x2_n||:

    L = (1/N) Σ_n [ y_n d_n² + (1 - y_n) max(0, m - d_n)² ]

    y_n = 1: a similar (genuine) pair, pulled together;  y_n = 0: a dissimilar pair, pushed to at least m.
    (Hadsell et al. write the same loss with Y = 0 for similar pairs and factors ½.)

    dL/dx1_n = (2/N) [ y_n - (1 - y_n) max(0, m - d_n) / d_n ] (x1_n - x2_n),    dL/dx2_n = -dL/dx1_n

(the hinge term's gradient is taken as 0 at d_n = 0, where its direction is undefined).

TripletLoss (Schroff, Kalenichenko & Philbin 2015), over N triplets (anchor a, positive p, negative n):

    L = (1/N) Σ_n max(0, ||a_n - p_n||² - ||a_n - n_n||² + m)

    for an active triplet (loss > 0):  dL/da = (2/N) (n - p),  dL/dp = -(2/N) (a - p),  dL/dn = (2/N) (a - n)

Both take (N, D) embeddings; ``backward()`` returns the gradients w.r.t. every embedding, as a tuple.
"""

from __future__ import annotations

from typing import Any

from dlcore import backend
from dlcore.nn.base import Loss, check_array
from dlcore.nn.functional import _describe
from dlcore.nn.losses import _check_backward

__all__ = ["ContrastiveLoss", "TripletLoss"]


def _check_margin(name: str, margin: float) -> float:
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not margin >= 0:
        raise ValueError(f"{name}: expected a margin >= 0, got {margin!r}")
    return float(margin)


def _check_embeddings(name: str, arrays: dict[str, Any]) -> Any:
    first = None
    for key, a in arrays.items():
        check_array(name, key, a, ndim=2)
        if first is None:
            first = (key, a)
        elif tuple(a.shape) != tuple(first[1].shape) or backend.dtype_name(a.dtype) != backend.dtype_name(
                first[1].dtype):
            raise ValueError(f"{name}: expected {key} like {first[0]} ({_describe(first[1])}), got {_describe(a)}")
    return backend.namespace(*arrays.values(), where=f"{name}.forward")


class ContrastiveLoss(Loss):
    """L = mean over pairs of y d² + (1 - y) max(0, m - d)², d = ||x1 - x2||, y = 1 for similar pairs."""

    def __init__(self, margin: float = 1.0) -> None:
        super().__init__()
        self.margin = _check_margin("ContrastiveLoss", margin)
        self.cache: Any = None

    def forward(self, x1: Any, x2: Any, y: Any) -> Any:
        name = "ContrastiveLoss"
        xp = _check_embeddings(name, {"x1": x1, "x2": x2})
        n = x1.shape[0]
        if not hasattr(y, "shape") or tuple(y.shape) != (n,):
            raise ValueError(f"{name}: expected pair labels y of shape ({n},) (1 = similar, 0 = dissimilar), got "
                             f"{_describe(y)}")
        backend.namespace(x1, y, where=f"{name}.forward")
        kind = backend.dtype_name(y.dtype)
        y = xp.astype(y, x1.dtype) if kind == "bool" or kind.startswith(("int", "uint")) else y
        if backend.dtype_name(y.dtype) != backend.dtype_name(x1.dtype):
            raise TypeError(f"{name}: expected pair labels as integers, booleans or {backend.dtype_name(x1.dtype)}, "
                            f"got {_describe(y)}")
        if not bool(xp.all((y == 0) | (y == 1))):
            raise ValueError(f"{name}: expected pair labels y in {{0, 1}} (1 = similar, 0 = dissimilar)")
        diff = x1 - x2
        d = xp.sqrt(xp.sum(diff * diff, axis=1))                                  # d_n = ||x1_n - x2_n||
        hinge = xp.maximum(self.margin - d, 0.0)                                  # max(0, m - d_n)
        self.cache = (diff, d, hinge, y)
        return xp.mean(y * d * d + (1.0 - y) * hinge * hinge)

    def backward(self, dout: Any = 1.0) -> tuple[Any, Any]:
        _check_backward("ContrastiveLoss", self.cache)
        xp = backend.namespace(self.cache[0])
        diff, d, hinge, y = self.cache
        n = diff.shape[0]
        pull = xp.where(d > 0, hinge / xp.where(d > 0, d, 1.0), 0.0)           # max(0, m - d) / d, 0 at d = 0
        coef = (2.0 / n) * (y - (1.0 - y) * pull)
        dx1 = dout * xp.reshape(coef, (n, 1)) * diff
        return dx1, -dx1


class TripletLoss(Loss):
    """L = mean over triplets of max(0, ||a - p||² - ||a - n||² + m)."""

    def __init__(self, margin: float = 1.0) -> None:
        super().__init__()
        self.margin = _check_margin("TripletLoss", margin)
        self.cache: Any = None

    def forward(self, anchor: Any, positive: Any, negative: Any) -> Any:
        xp = _check_embeddings("TripletLoss", {"anchor": anchor, "positive": positive, "negative": negative})
        ap, an = anchor - positive, anchor - negative
        per_triplet = xp.sum(ap * ap, axis=1) - xp.sum(an * an, axis=1) + self.margin
        active = per_triplet > 0
        self.cache = (ap, an, active)
        return xp.mean(xp.where(active, per_triplet, 0.0))

    def backward(self, dout: Any = 1.0) -> tuple[Any, Any, Any]:
        _check_backward("TripletLoss", self.cache)
        ap, an, active = self.cache
        xp = backend.namespace(ap)
        n = ap.shape[0]
        w = dout * (2.0 / n) * xp.reshape(xp.astype(active, ap.dtype), (n, 1))
        d_pos, d_neg = -w * ap, w * an                                           # dL/dp, dL/dn
        return -(d_pos + d_neg), d_pos, d_neg                                     # dL/da = (2/N)(n - p)
