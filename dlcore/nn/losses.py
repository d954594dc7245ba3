"""Losses: ``L = loss.forward(prediction, target)`` (a 0-D array), ``dL/dprediction = loss.backward()``.

Every loss is averaged over the batch axis N (axis 0) and summed over everything else, so the
gradient carries the factor 1/N and a learning rate does not depend on the batch size.
``backward(dout=1.0)`` scales the gradient by dout = ∂(whatever is downstream)/∂L.
"""

from __future__ import annotations

from typing import Any

from dlcore import backend
from dlcore.nn.base import Loss, check_array, check_labels
from dlcore.nn.functional import _describe, log_softmax, one_hot, sigmoid, softplus

__all__ = ["SoftmaxCrossEntropy", "MSE", "SigmoidBinaryCrossEntropy"]


def _is_int(a: Any) -> bool:
    return backend.dtype_name(a.dtype).startswith(("int", "uint"))


def _same_shape_target(loss: str, y: Any, t: Any, what: str) -> None:
    if tuple(t.shape) != tuple(y.shape):
        raise ValueError(f"{loss}: expected {what} of shape {tuple(y.shape)} (like the prediction), got {_describe(t)}")


def _check_backward(loss: str, cache: Any) -> None:
    if cache is None:
        raise RuntimeError(f"{loss}: backward called before forward; call forward(prediction, target) first")


class SoftmaxCrossEntropy(Loss):
    """L = -(1/N) Σ_n Σ_k t_nk log p_nk,  p_n = softmax(s_n);   dL/ds = (p - t) / N.

    ``scores`` s: (N, C) raw class scores (logits). ``t``: integer labels (N,) in [0, C) or
    one-hot / soft targets (N, C) in the dtype of the scores. log p comes from log-softmax
    (log-sum-exp), so scores of 1e4 give a finite loss. After forward, ``p`` holds the
    probabilities. For soft targets whose rows do not sum to 1 the exact gradient
    (p Σ_k t_nk - t) / N is used.
    """

    def __init__(self) -> None:
        super().__init__()
        self.p: Any = None
        self.t: Any = None
        self.soft = False

    def forward(self, scores: Any, t: Any) -> Any:
        name = "SoftmaxCrossEntropy"
        check_array(name, "scores", scores, ndim=2)
        if not hasattr(t, "dtype"):
            raise TypeError(f"{name}: expected targets as an integer label array (N,) or a float array (N, C), "
                            f"got {_describe(t)}")
        xp = backend.namespace(scores, t, where=f"{name}.forward")
        n, c = scores.shape
        if _is_int(t):
            check_labels(name, t, n, c)
            target, self.soft = one_hot(t, c, scores.dtype), False
        elif backend.dtype_name(t.dtype).startswith("float"):
            _same_shape_target(name, scores, t, "one-hot/soft targets")
            if backend.dtype_name(t.dtype) != backend.dtype_name(scores.dtype):
                raise TypeError(f"{name}: expected targets of dtype {backend.dtype_name(scores.dtype)} (like the "
                                f"scores), got {_describe(t)}")
            target, self.soft = t, True
        else:
            raise TypeError(f"{name}: expected integer labels (N,) or float targets (N, C), got {_describe(t)}")
        logp = log_softmax(scores)
        self.p, self.t = xp.exp(logp), target
        return xp.asarray(-xp.sum(target * logp) / n)

    def backward(self, dout: Any = 1.0) -> Any:
        _check_backward("SoftmaxCrossEntropy", self.p)
        n = self.p.shape[0]
        if self.soft:
            xp = backend.namespace(self.p)
            return dout * (self.p * xp.sum(self.t, axis=-1, keepdims=True) - self.t) / n
        return dout * (self.p - self.t) / n  # dL/ds = (p - t) / N


class MSE(Loss):
    """L = (1/N) Σ_n ½ ||y_n - t_n||²  (the lecture's sum-of-squares error, averaged over the batch);
    dL/dy = (y - t) / N.

    Note the ½ and the mean over the batch axis only: for y of shape (N, D) this is
    D/2 times the per-element mean that some libraries call "MSE".
    """

    def __init__(self) -> None:
        super().__init__()
        self.diff: Any = None

    def forward(self, y: Any, t: Any) -> Any:
        name = "MSE"
        check_array(name, "y", y, ndim=range(1, 8))
        check_array(name, "t", t, ndim=range(1, 8))
        xp = backend.namespace(y, t, where=f"{name}.forward")
        _same_shape_target(name, y, t, "targets")
        if backend.dtype_name(t.dtype) != backend.dtype_name(y.dtype):
            raise TypeError(f"{name}: expected targets of dtype {backend.dtype_name(y.dtype)} (like y), "
                            f"got {_describe(t)}")
        self.diff = y - t
        return xp.asarray(0.5 * xp.sum(self.diff * self.diff) / y.shape[0])

    def backward(self, dout: Any = 1.0) -> Any:
        _check_backward("MSE", self.diff)
        return dout * self.diff / self.diff.shape[0]  # dL/dy = (y - t) / N


class SigmoidBinaryCrossEntropy(Loss):
    """Binary cross-entropy on logits z (logistic regression), p = σ(z):

        L = -(1/N) Σ_n Σ_j [t log p + (1 - t) log(1 - p)] = (1/N) Σ [softplus(z) - t z];   dL/dz = (p - t) / N.

    The softplus form never takes log(0), so |z| = 1000 gives a finite loss. ``z``: logits of
    shape (N,) or (N, K) (K independent binary outputs); ``t``: targets in [0, 1] of the same
    shape, either floats in the dtype of z or integer/bool 0/1 labels. ``p`` holds σ(z) after forward.
    """

    def __init__(self) -> None:
        super().__init__()
        self.p: Any = None
        self.t: Any = None

    def forward(self, z: Any, t: Any) -> Any:
        name = type(self).__name__
        check_array(name, "logits", z, ndim=range(1, 8))
        check_array(name, "targets", t, ndim=range(1, 8), floating=False)
        xp = backend.namespace(z, t, where=f"{name}.forward")
        _same_shape_target(name, z, t, "targets")
        kind = backend.dtype_name(t.dtype)
        if kind.startswith("float"):
            if kind != backend.dtype_name(z.dtype):
                raise TypeError(f"{name}: expected float targets of dtype {backend.dtype_name(z.dtype)} (like the "
                                f"logits) or 0/1 integer labels, got {_describe(t)}")
        elif kind == "bool" or _is_int(t):
            t = xp.astype(t, z.dtype)  # exact: 0/1 labels are representable in any float dtype
        else:
            raise TypeError(f"{name}: expected targets in [0, 1] as floats or 0/1 integers, got {_describe(t)}")
        lo, hi = float(xp.min(t)), float(xp.max(t))
        if lo < 0 or hi > 1:
            raise ValueError(f"{name}: expected targets in [0, 1], got values from {lo:g} to {hi:g}")
        self.p, self.t = sigmoid(z), t
        return xp.asarray(xp.sum(softplus(z) - t * z) / z.shape[0])

    def backward(self, dout: Any = 1.0) -> Any:
        _check_backward(type(self).__name__, self.p)
        return dout * (self.p - self.t) / self.p.shape[0]  # dL/dz = (σ(z) - t) / N
