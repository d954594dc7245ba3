"""Layer normalization (Ba, Kiros & Hinton 2016): each sample normalized over its own features.

For every row x = x[..., :] of D = num_features values (a sample, or one time step of a sequence):
    μ = (1/D) Σ_k x_k,   σ² = (1/D) Σ_k (x_k - μ)²,   x̂ = (x - μ) / sqrt(σ² + ε),   y = γ ⊙ x̂ + β
Unlike batch normalization nothing is averaged over the batch, so training and evaluation are
the same computation and there are no running statistics. Backward, per row (the compact form):
    dx̂ = dy ⊙ γ,   dx = (1 / (D sqrt(σ² + ε))) (D dx̂ - Σ_k dx̂_k - x̂ Σ_k dx̂_k x̂_k)
    dγ = Σ_rows dy ⊙ x̂,   dβ = Σ_rows dy
"""

from __future__ import annotations

from typing import Any

from dlcore import backend
from dlcore.nn import init as initializers
from dlcore.nn.base import Layer, check_array, check_dtype_match
from dlcore.nn.functional import _check_dy, _describe

__all__ = ["LayerNorm"]


class LayerNorm(Layer):
    """y = γ (x - μ) / sqrt(σ² + ε) + β with μ, σ² over the last axis of x (..., num_features).

    Parameters gamma (ones) and beta (zeros), each (num_features,). Any input with at least two
    axes whose last axis has num_features entries: (N, D), (N, T, D), ...
    """

    def __init__(self, num_features: int, eps: float = 1e-5, *, dtype: Any = "float32") -> None:
        super().__init__()
        if isinstance(num_features, bool) or int(num_features) != num_features or num_features <= 0:
            raise ValueError(f"LayerNorm: expected a positive integer num_features, got {num_features!r}")
        if not float(eps) > 0.0:
            raise ValueError(f"LayerNorm: expected eps > 0, got {eps!r}")
        self.num_features, self.eps = int(num_features), float(eps)
        self.params = {
            "gamma": initializers.ones((self.num_features,), dtype=dtype),
            "beta": initializers.zeros((self.num_features,), dtype=dtype),
        }
        self.xhat: Any = None
        self.std: Any = None

    def forward(self, x: Any) -> Any:
        if hasattr(x, "ndim") and hasattr(x, "dtype") and x.ndim < 2:
            raise ValueError(f"LayerNorm: expected x with a batch axis and {self.num_features} features on the "
                             f"last axis, e.g. (N, {self.num_features}) or (N, T, {self.num_features}), "
                             f"got {_describe(x)}")
        check_array("LayerNorm", "x", x, last_dim=self.num_features)
        check_dtype_match("LayerNorm", x, self.params)
        xp = backend.namespace(x, self.params["gamma"], where="LayerNorm.forward")
        mu = xp.mean(x, axis=-1, keepdims=True)                  # μ per row
        xc = x - mu
        var = xp.mean(xc * xc, axis=-1, keepdims=True)           # σ² per row (biased)
        self.std = xp.sqrt(var + self.eps)
        self.xhat = xc / self.std
        return self.params["gamma"] * self.xhat + self.params["beta"]

    def backward(self, dy: Any) -> Any:
        _check_dy("LayerNorm", dy, self.xhat)
        xp = backend.namespace(dy)
        d = self.num_features
        xhat = self.xhat
        rows = tuple(range(dy.ndim - 1))
        self.grads["gamma"] = xp.sum(dy * xhat, axis=rows)       # dγ = Σ dy x̂
        self.grads["beta"] = xp.sum(dy, axis=rows)               # dβ = Σ dy
        dxhat = dy * self.params["gamma"]
        return (d * dxhat - xp.sum(dxhat, axis=-1, keepdims=True)
                - xhat * xp.sum(dxhat * xhat, axis=-1, keepdims=True)) / (d * self.std)

    def __repr__(self) -> str:
        return f"LayerNorm({self.num_features}, eps={self.eps:g})"
