"""Stateless, numerically stable functions shared by the layers and losses.

All work along the last axis where an axis matters and take their namespace from the input.

    sigmoid(x)     = 1 / (1 + exp(-x))               (branch-free, never overflows)
    softplus(x)    = log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|))
    log_sigmoid(x) = -softplus(-x)
    logsumexp(x)   = m + log Σ_k exp(x_k - m),  m = max_k x_k
    softmax(x)_k   = exp(x_k - m) / Σ_j exp(x_j - m)
    log_softmax(x) = x - logsumexp(x)
    one_hot(t, K)  = T with T[n, k] = [t_n == k]
"""

from __future__ import annotations

from typing import Any

from dlcore import backend
from dlcore.nn.base import _describe, check_array

__all__ = ["sigmoid", "sigmoid_tanh", "softplus", "log_sigmoid", "logsumexp", "softmax", "log_softmax", "one_hot"]


def sigmoid(x: Any) -> Any:
    """σ(x) = 1 / (1 + e^{-x}), computed from e = exp(-|x|) ∈ (0, 1] so that nothing overflows.

    σ(x) = 1 / (1 + e) for x >= 0 and e / (1 + e) for x < 0 (e underflows quietly to 0 for x << 0).
    """
    check_array("sigmoid", "x", x, ndim=None)
    xp = backend.namespace(x)
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def sigmoid_tanh(x: Any) -> Any:
    """σ(x) = ½ tanh(x/2) + ½: the same function, branch-free, one transcendental pass, never overflows.

    The fast form for inner loops (RBM sampling, LSTM/GRU gates), without input checks. Its absolute
    error is one rounding, so far tails (σ < 1e-7 in float32) lose relative precision; use
    :func:`sigmoid` where that matters and softplus for log-probabilities.
    """
    return 0.5 * backend.namespace(x).tanh(0.5 * x) + 0.5


def softplus(x: Any) -> Any:
    """log(1 + e^x) = max(x, 0) + log1p(e^{-|x|}) (no overflow for large |x|)."""
    check_array("softplus", "x", x, ndim=None)
    xp = backend.namespace(x)
    return xp.maximum(x, 0.0) + xp.log1p(xp.exp(-xp.abs(x)))


def log_sigmoid(x: Any) -> Any:
    """log σ(x) = -softplus(-x)."""
    return -softplus(-x)


def logsumexp(x: Any, *, keepdims: bool = False) -> Any:
    """log Σ_k exp(x_k) along the last axis, shifted by the maximum so exp never overflows."""
    check_array("logsumexp", "x", x, ndim=None)
    xp = backend.namespace(x)
    m = xp.max(x, axis=-1, keepdims=True)
    out = m + xp.log(xp.sum(xp.exp(x - m), axis=-1, keepdims=True))
    return out if keepdims else out[..., 0]


def softmax(x: Any) -> Any:
    """y_k = exp(x_k - m) / Σ_j exp(x_j - m) along the last axis (m = max_j x_j; rows sum to 1)."""
    check_array("softmax", "x", x, ndim=None)
    xp = backend.namespace(x)
    e = xp.exp(x - xp.max(x, axis=-1, keepdims=True))
    return e / xp.sum(e, axis=-1, keepdims=True)


def log_softmax(x: Any) -> Any:
    """log y_k = x_k - logsumexp(x) along the last axis (finite even for scores of 1e4)."""
    check_array("log_softmax", "x", x, ndim=None)
    xp = backend.namespace(x)
    shifted = x - xp.max(x, axis=-1, keepdims=True)
    return shifted - xp.log(xp.sum(xp.exp(shifted), axis=-1, keepdims=True))


def one_hot(t: Any, n_classes: int, dtype: Any = "float32") -> Any:
    """One-hot rows: T[..., k] = 1 if t[...] == k else 0, shape t.shape + (n_classes,)."""
    if not hasattr(t, "dtype") or not backend.dtype_name(t.dtype).startswith(("int", "uint")):
        raise TypeError(f"one_hot: expected an integer label array, got {_describe(t)}")
    if n_classes <= 0:
        raise ValueError(f"one_hot: expected a positive number of classes, got {n_classes}")
    xp = backend.namespace(t)
    if t.size and (int(xp.min(t)) < 0 or int(xp.max(t)) >= n_classes):
        raise ValueError(
            f"one_hot: expected labels in [0, {n_classes - 1}], got values from {int(xp.min(t))} to {int(xp.max(t))}"
        )
    classes = xp.arange(n_classes, device=backend.device_of(t))
    return xp.astype(t[..., None] == classes, getattr(xp, backend.dtype_name(dtype)))


# --------------------------------------------------------------------------- helpers for the layers


def _check_dy(layer: str, dy: Any, like: Any) -> None:
    """``backward`` input check: forward must have run, and dy must match its output in shape and dtype."""
    if like is None:
        raise RuntimeError(f"{layer}: backward called before forward; call forward first (it caches what backward "
                           "needs)")
    if not (hasattr(dy, "shape") and hasattr(dy, "dtype")):
        raise TypeError(f"{layer}: expected dy to be an array, got {_describe(dy)}")
    if tuple(dy.shape) != tuple(like.shape):
        raise ValueError(f"{layer}: expected dy of shape {tuple(like.shape)} (the forward output), got {_describe(dy)}")
    if backend.dtype_name(dy.dtype) != backend.dtype_name(like.dtype):
        raise TypeError(
            f"{layer}: expected dy of dtype {backend.dtype_name(like.dtype)} (the forward output), got {_describe(dy)}"
        )
