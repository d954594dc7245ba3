"""Time-distributed layers: the same affine map and loss at every time step of (N, T, ·) sequences.

    TimeAffine:               y_t = h_t W + b for every t, as one (N·T, H) @ (H, M) product
    TimeSoftmaxCrossEntropy:  L = -(1/|V|) Σ_{(n,t) ∈ V} log p_{n,t}[t_{n,t}],   p = softmax(s) over the vocabulary,
                              V = the positions whose target is not ``ignore_label`` (padding);
                              dL/ds_{n,t} = (p_{n,t} - onehot(t_{n,t})) / |V| on V and 0 elsewhere.
"""

from __future__ import annotations

from typing import Any

from dlcore import backend
from dlcore.nn import init as initializers
from dlcore.nn.base import Layer, Loss, check_array, check_dtype_match
from dlcore.nn.functional import _describe, log_softmax, one_hot

__all__ = ["TimeAffine", "TimeSoftmaxCrossEntropy"]


class TimeAffine(Layer):
    """Y_t = H_t W + b at every time step:  (N, T, in_features) -> (N, T, out_features).

    dL/dW = Σ_{n,t} h_{n,t}ᵀ dy_{n,t},  dL/db = Σ_{n,t} dy_{n,t},  dL/dh_{n,t} = dy_{n,t} Wᵀ.
    """

    def __init__(self, in_features: int, out_features: int, *, init: Any = "lecun", rng: backend.Seed = None,
                 dtype: Any = "float32") -> None:
        super().__init__()
        for what, size in (("in_features", in_features), ("out_features", out_features)):
            if int(size) != size or size <= 0:
                raise ValueError(f"TimeAffine: expected a positive integer {what}, got {size!r}")
        self.in_features, self.out_features = int(in_features), int(out_features)
        self.params = {
            "W": initializers.get(init)((self.in_features, self.out_features), rng, dtype),
            "b": initializers.zeros((self.out_features,), dtype=dtype),
        }
        self.x2: Any = None
        self.shape: tuple[int, ...] = ()

    def forward(self, hs: Any) -> Any:
        check_array("TimeAffine", "hs", hs, ndim=3, last_dim=self.in_features)
        if hs.shape[1] == 0:
            raise ValueError(f"TimeAffine: got a sequence of length 0 ({_describe(hs)}); expected at least one step")
        check_dtype_match("TimeAffine", hs, self.params)
        xp = backend.namespace(hs, *self.params.values(), where="TimeAffine.forward")
        n, t, d = hs.shape
        self.shape = (n, t, d)
        self.x2 = xp.reshape(hs, (n * t, d))
        return xp.reshape(self.x2 @ self.params["W"] + self.params["b"], (n, t, self.out_features))

    def backward(self, dy: Any) -> Any:
        if self.x2 is None:
            raise RuntimeError("TimeAffine: backward called before forward; call forward first")
        n, t, d = self.shape
        if tuple(dy.shape) != (n, t, self.out_features):
            raise ValueError(f"TimeAffine: expected dy of shape {(n, t, self.out_features)} (the forward output), "
                             f"got {_describe(dy)}")
        xp = backend.namespace(dy)
        dy2 = xp.reshape(dy, (n * t, self.out_features))
        self.grads["W"] = self.x2.T @ dy2          # Σ_{n,t} h_{n,t}ᵀ dy_{n,t}
        self.grads["b"] = xp.sum(dy2, axis=0)
        return xp.reshape(dy2 @ self.params["W"].T, (n, t, d))

    def __repr__(self) -> str:
        return f"TimeAffine(in_features={self.in_features}, out_features={self.out_features})"


class TimeSoftmaxCrossEntropy(Loss):
    """Mean cross-entropy over the non-ignored positions of a batch of sequences; see the module docstring.

    ``forward(scores, ts)``: scores (N, T, V) raw scores, ts (N, T) integer targets in [0, V) or
    ``ignore_label`` (default -1, for padding). After forward, ``p`` holds the probabilities and
    ``mask`` the non-ignored positions. A batch in which every position is ignored is an error.
    """

    def __init__(self, ignore_label: int = -1) -> None:
        super().__init__()
        self.ignore_label = int(ignore_label)
        self.p: Any = None
        self.target: Any = None
        self.mask: Any = None
        self.count = 0

    def forward(self, scores: Any, ts: Any) -> Any:
        name = "TimeSoftmaxCrossEntropy"
        check_array(name, "scores", scores, ndim=3)
        n, t, v = scores.shape
        if t == 0:
            raise ValueError(f"{name}: got a sequence of length 0 ({_describe(scores)}); expected at least one step")
        if not (hasattr(ts, "dtype") and backend.dtype_name(ts.dtype).startswith(("int", "uint"))):
            raise TypeError(f"{name}: expected integer targets of shape ({n}, {t}), got {_describe(ts)}")
        if tuple(ts.shape) != (n, t):
            raise ValueError(f"{name}: expected targets of shape ({n}, {t}) (like the scores without the "
                             f"vocabulary axis), got {_describe(ts)}")
        xp = backend.namespace(scores, ts, where=f"{name}.forward")
        mask = ts != self.ignore_label
        count = int(xp.sum(xp.astype(mask, xp.int64)))
        if count == 0:
            raise ValueError(f"{name}: every target equals ignore_label={self.ignore_label}; "
                             "there is nothing to average over")
        labels = xp.where(mask, ts, xp.zeros_like(ts))
        lo, hi = int(xp.min(labels)), int(xp.max(labels))
        if lo < 0 or hi >= v:
            raise ValueError(f"{name}: expected targets in [0, {v - 1}] or ignore_label={self.ignore_label}, "
                             f"got values from {int(xp.min(ts))} to {int(xp.max(ts))}")
        m = xp.astype(mask, scores.dtype)[..., None]
        target = one_hot(labels, v, scores.dtype) * m
        logp = log_softmax(scores)
        self.p, self.target, self.mask, self.count = xp.exp(logp), target, m, count
        return xp.asarray(-xp.sum(target * logp) / count)

    def backward(self, dout: Any = 1.0) -> Any:
        if self.p is None:
            raise RuntimeError("TimeSoftmaxCrossEntropy: backward called before forward; call forward first")
        return dout * (self.p - self.target) * self.mask / self.count   # zero at ignored positions

    def __repr__(self) -> str:
        return f"TimeSoftmaxCrossEntropy(ignore_label={self.ignore_label})"
