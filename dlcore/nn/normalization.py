"""Batch normalization (Ioffe & Szegedy 2015).

Training, per feature (for (N, D) inputs) or per channel over N, H, W (for (N, C, H, W) inputs),
with m values per feature:
    μ = (1/m) Σ x,   σ² = (1/m) Σ (x - μ)²,   x̂ = (x - μ) / sqrt(σ² + ε),   y = γ x̂ + β
Running statistics (used in evaluation), with the lecture's momentum convention (momentum = 0.9
keeps 90 % of the old value; PyTorch's momentum=0.1 is the same update):
    running_mean ← momentum · running_mean + (1 - momentum) · μ
    running_var  ← momentum · running_var  + (1 - momentum) · σ² · m / (m - 1)
The running variance uses the unbiased batch variance, as PyTorch does; normalisation itself
uses the biased σ². Backward (training), the compact form:
    dx̂ = dy · γ,   dx = (1 / (m sqrt(σ² + ε))) (m dx̂ - Σ dx̂ - x̂ Σ dx̂ x̂)
    dγ = Σ dy · x̂,   dβ = Σ dy
"""

from __future__ import annotations

import math
from typing import Any

from dlcore import backend
from dlcore.nn import init as initializers
from dlcore.nn.base import Layer, check_array, check_dtype_match
from dlcore.nn.functional import _check_dy

__all__ = ["BatchNorm"]


class BatchNorm(Layer):
    """y = γ (x - μ) / sqrt(σ² + ε) + β with batch statistics in training, running ones in evaluation.

    Parameters gamma, beta (num_features,); buffers running_mean, running_var (num_features,).
    ``train`` (the flag of the last forward call) says which statistics were used.
    """

    has_train_mode = True

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.9, *, dtype: Any = "float32") -> None:
        super().__init__()
        if int(num_features) <= 0:
            raise ValueError(f"BatchNorm: expected num_features >= 1, got {num_features}")
        if not 0.0 <= float(momentum) <= 1.0:
            raise ValueError(f"BatchNorm: expected momentum in [0, 1], got {momentum}")
        self.num_features, self.eps, self.momentum = int(num_features), float(eps), float(momentum)
        self.params = {
            "gamma": initializers.ones((self.num_features,), dtype=dtype),
            "beta": initializers.zeros((self.num_features,), dtype=dtype),
        }
        self.running_mean = initializers.zeros((self.num_features,), dtype=dtype)
        self.running_var = initializers.ones((self.num_features,), dtype=dtype)
        self.train = True
        self.xhat: Any = None
        self.std: Any = None

    def buffers(self) -> dict[str, Any]:
        return {"running_mean": self.running_mean, "running_var": self.running_var}

    def _axes(self, x: Any) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Reduction axes and the broadcast shape of a per-feature vector: (0,), (1, D) or (0, 2, 3), (1, C, 1, 1)."""
        if x.ndim == 2:
            return (0,), (1, self.num_features)
        return (0, 2, 3), (1, self.num_features, 1, 1)

    def forward(self, x: Any, train: bool = True) -> Any:
        check_array("BatchNorm", "x", x, ndim=(2, 4), axis1=self.num_features)
        check_dtype_match("BatchNorm", x, self.params)
        xp = backend.namespace(x, self.params["gamma"], self.running_mean, where="BatchNorm.forward")
        axes, shape = self._axes(x)
        self.train = bool(train)
        if self.train:
            m = math.prod(x.shape) // self.num_features
            if m < 2:
                raise ValueError(
                    f"BatchNorm: expected more than 1 value per feature in training mode, got x of shape "
                    f"{tuple(x.shape)}; use a larger batch or forward(x, train=False)"
                )
            mu = xp.mean(x, axis=axes, keepdims=True)
            xc = x - mu
            var = xp.mean(xc * xc, axis=axes, keepdims=True)
            mom = self.momentum
            self.running_mean = mom * self.running_mean + (1.0 - mom) * xp.reshape(mu, (-1,))
            self.running_var = mom * self.running_var + (1.0 - mom) * xp.reshape(var, (-1,)) * (m / (m - 1))
        else:
            xc = x - xp.reshape(self.running_mean, shape)
            var = xp.reshape(self.running_var, shape)
        self.std = xp.sqrt(var + self.eps)
        self.xhat = xc / self.std
        return xp.reshape(self.params["gamma"], shape) * self.xhat + xp.reshape(self.params["beta"], shape)

    def backward(self, dy: Any) -> Any:
        _check_dy("BatchNorm", dy, self.xhat)
        xp = backend.namespace(dy)
        axes, shape = self._axes(dy)
        xhat = self.xhat
        self.grads["gamma"] = xp.sum(dy * xhat, axis=axes)  # dγ = Σ dy x̂
        self.grads["beta"] = xp.sum(dy, axis=axes)  # dβ = Σ dy
        dxhat = dy * xp.reshape(self.params["gamma"], shape)
        if not self.train:  # running statistics are constants: y is affine in x
            return dxhat / self.std
        m = math.prod(dy.shape) // self.num_features
        return (m * dxhat - xp.sum(dxhat, axis=axes, keepdims=True)
                - xhat * xp.sum(dxhat * xhat, axis=axes, keepdims=True)) / (m * self.std)

    def __repr__(self) -> str:
        return f"BatchNorm({self.num_features}, eps={self.eps:g}, momentum={self.momentum:g})"
