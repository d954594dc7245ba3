"""Activation layers: y = f(x) elementwise (and softmax / maxout over features).

Each caches what its derivative needs in forward and returns dL/dx = dL/dy · f'(x) in backward.
"""

from __future__ import annotations

from typing import Any

from dlcore import backend
from dlcore.nn import init as initializers
from dlcore.nn.base import Layer, check_array, check_dtype_match
from dlcore.nn.functional import _check_dy, sigmoid, softmax

__all__ = ["Sigmoid", "Tanh", "ReLU", "LeakyReLU", "ELU", "PReLU", "Maxout", "Softmax"]


class Sigmoid(Layer):
    """y = σ(x) = 1 / (1 + e^{-x});  dL/dx = dL/dy · y (1 - y)."""

    def __init__(self) -> None:
        super().__init__()
        self.out: Any = None

    def forward(self, x: Any) -> Any:
        check_array("Sigmoid", "x", x)
        self.out = sigmoid(x)
        return self.out

    def backward(self, dy: Any) -> Any:
        _check_dy("Sigmoid", dy, self.out)
        return dy * self.out * (1.0 - self.out)


class Tanh(Layer):
    """y = tanh(x);  dL/dx = dL/dy · (1 - y²)."""

    def __init__(self) -> None:
        super().__init__()
        self.out: Any = None

    def forward(self, x: Any) -> Any:
        check_array("Tanh", "x", x)
        self.out = backend.namespace(x).tanh(x)
        return self.out

    def backward(self, dy: Any) -> Any:
        _check_dy("Tanh", dy, self.out)
        return dy * (1.0 - self.out * self.out)


class ReLU(Layer):
    """y = max(0, x) = x · [x > 0];  dL/dx = dL/dy · [x > 0]  (the subgradient 0 is used at x = 0).

    The layer keeps y and finds the mask [x > 0] = [y > 0] again in backward
    (:func:`dlcore.backend.relu`, :func:`~dlcore.backend.relu_backward`): on NumPy the forward is then
    one ``maximum`` pass and the backward a comparison into a float array and one product, fewer and
    faster passes than a bool mask made in forward and a mixed-type product (and several times faster
    than ``where``). A NaN input shows up as NaN in y instead of being hidden as 0.
    """

    def __init__(self) -> None:
        super().__init__()
        self.x: Any = None                               # the input, kept for inspection (no copy)
        self.y: Any = None

    def forward(self, x: Any) -> Any:
        check_array("ReLU", "x", x)
        self.x, self.y = x, backend.relu(x)
        return self.y

    def backward(self, dy: Any) -> Any:
        _check_dy("ReLU", dy, self.y)
        return backend.relu_backward(dy, self.y)


class LeakyReLU(Layer):
    """y = x if x > 0 else α x;  dL/dx = dL/dy · (1 if x > 0 else α)."""

    def __init__(self, alpha: float = 0.01) -> None:
        super().__init__()
        self.alpha = float(alpha)
        self.x: Any = None
        self.mask: Any = None

    def forward(self, x: Any) -> Any:
        check_array("LeakyReLU", "x", x)
        self.x, self.mask = x, x > 0
        return backend.namespace(x).where(self.mask, x, self.alpha * x)

    def backward(self, dy: Any) -> Any:
        _check_dy("LeakyReLU", dy, self.x)
        return backend.namespace(dy).where(self.mask, dy, self.alpha * dy)

    def __repr__(self) -> str:
        return f"LeakyReLU(alpha={self.alpha})"


class ELU(Layer):
    """y = x if x > 0 else α (e^x - 1);  dL/dx = dL/dy · (1 if x > 0 else y + α)."""

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        self.alpha = float(alpha)
        self.mask: Any = None
        self.out: Any = None

    def forward(self, x: Any) -> Any:
        check_array("ELU", "x", x)
        xp = backend.namespace(x)
        self.mask = x > 0
        # expm1 of min(x, 0): accurate near 0 and never overflows for large positive x
        self.out = xp.where(self.mask, x, self.alpha * xp.expm1(xp.minimum(x, 0.0)))
        return self.out

    def backward(self, dy: Any) -> Any:
        _check_dy("ELU", dy, self.out)
        return backend.namespace(dy).where(self.mask, dy, dy * (self.out + self.alpha))

    def __repr__(self) -> str:
        return f"ELU(alpha={self.alpha})"


class PReLU(Layer):
    """y = x if x > 0 else a x, with a learnable slope a (He et al. 2015).

    ``num_parameters=1``: one slope shared by every entry (any input shape);
    ``num_parameters=D``: one slope per feature/channel on axis 1, for (N, D) and (N, C, H, W) inputs.
        dL/dx = dL/dy · (1 if x > 0 else a),   dL/da = Σ_{x <= 0} dL/dy · x  (summed over all but axis 1)
    """

    def __init__(self, num_parameters: int = 1, init: float = 0.25, *, dtype: Any = "float32") -> None:
        super().__init__()
        if int(num_parameters) <= 0:
            raise ValueError(f"PReLU: expected num_parameters >= 1, got {num_parameters}")
        self.num_parameters = int(num_parameters)
        a = initializers.ones((self.num_parameters,), dtype=dtype)
        self.params = {"a": a * float(init)}
        self.x: Any = None

    def _slope(self, x: Any) -> Any:
        """The slope reshaped to broadcast over axis 1: (1, D, 1, ..., 1)."""
        a = self.params["a"]
        if self.num_parameters == 1:
            return a
        return backend.namespace(a).reshape(a, (1, self.num_parameters) + (1,) * (x.ndim - 2))

    def forward(self, x: Any) -> Any:
        if self.num_parameters == 1:
            check_array("PReLU", "x", x)
        else:
            check_array("PReLU", "x", x, ndim=range(2, 8), axis1=self.num_parameters)
        check_dtype_match("PReLU", x, self.params)
        xp = backend.namespace(x, self.params["a"], where="PReLU.forward")
        self.x = x
        return xp.where(x > 0, x, self._slope(x) * x)

    def backward(self, dy: Any) -> Any:
        _check_dy("PReLU", dy, self.x)
        xp = backend.namespace(dy)
        pos = self.x > 0
        g = xp.where(pos, 0.0, dy * self.x)  # ∂y/∂a = x where x <= 0
        if self.num_parameters == 1:
            self.grads["a"] = xp.reshape(xp.sum(g), (1,))
        else:
            self.grads["a"] = xp.sum(g, axis=tuple(i for i in range(g.ndim) if i != 1))
        return xp.where(pos, dy, self._slope(self.x) * dy)

    def __repr__(self) -> str:
        return f"PReLU(a={tuple(self.params['a'].shape)})"


class Maxout(Layer):
    """y_j = max_k z_{kj},  z_{kj} = Σ_i x_i W_{ikj} + b_{kj}  (Goodfellow et al. 2013).

    Parameters: W of shape (in_features, pieces, out_features), b of shape (pieces, out_features);
    piece k is an ordinary affine map with weight W[:, k, :] (initialised as an (in, out) Affine weight).
    The gradient of the max goes to the winning piece only (the first one on ties):
        dL/dz_{kj} = dL/dy_j · [k = argmax_k z_{kj}],  then the affine backward for W, b and x.
    """

    def __init__(self, in_features: int, out_features: int, pieces: int = 2, *,
                 init: str | initializers.Initializer = "he", rng: backend.Seed = None, dtype: Any = "float32") -> None:
        super().__init__()
        if in_features <= 0 or out_features <= 0 or pieces <= 0:
            raise ValueError(
                f"Maxout: expected positive sizes, got in={in_features}, out={out_features}, pieces={pieces}"
            )
        self.in_features, self.out_features, self.pieces = int(in_features), int(out_features), int(pieces)
        gen = backend.default_rng(rng)
        draw = initializers.get(init)
        ws = [draw((self.in_features, self.out_features), gen, dtype) for _ in range(self.pieces)]
        xp = backend.namespace(*ws)
        self.params = {
            "W": xp.stack(ws, axis=1),
            "b": initializers.zeros((self.pieces, self.out_features), dtype=dtype),
        }
        self.x: Any = None
        self.mask: Any = None

    def forward(self, x: Any) -> Any:
        check_array("Maxout", "x", x, ndim=2, last_dim=self.in_features)
        check_dtype_match("Maxout", x, self.params)
        xp = backend.namespace(x, self.params["W"], where="Maxout.forward")
        n, k, m = x.shape[0], self.pieces, self.out_features
        W = xp.reshape(self.params["W"], (self.in_features, k * m))
        z = xp.reshape(x @ W + xp.reshape(self.params["b"], (k * m,)), (n, k, m))
        winner = xp.argmax(z, axis=1)  # (N, out): index of the winning piece
        pieces = xp.reshape(xp.arange(k, device=backend.device_of(x)), (1, k, 1))
        self.mask = xp.astype(pieces == winner[:, None, :], x.dtype)  # (N, pieces, out), one 1 per column
        self.x = x
        return xp.max(z, axis=1)

    def backward(self, dy: Any) -> Any:
        if self.x is None:
            raise RuntimeError("Maxout: backward called before forward; call forward first")
        xp = backend.namespace(dy)
        n, k, m = self.x.shape[0], self.pieces, self.out_features
        if tuple(dy.shape) != (n, m):
            raise ValueError(f"Maxout: expected dy of shape {(n, m)} (the forward output), got shape {tuple(dy.shape)}")
        dz = xp.reshape(self.mask * dy[:, None, :], (n, k * m))  # gradient routed to the argmax
        W = xp.reshape(self.params["W"], (self.in_features, k * m))
        self.grads["W"] = xp.reshape(self.x.T @ dz, (self.in_features, k, m))  # dL/dW = X^T dZ
        self.grads["b"] = xp.reshape(xp.sum(dz, axis=0), (k, m))  # dL/db = Σ_n dZ
        return dz @ W.T  # dL/dX = dZ W^T

    def __repr__(self) -> str:
        return f"Maxout(in={self.in_features}, out={self.out_features}, pieces={self.pieces})"


class Softmax(Layer):
    """y_k = e^{x_k} / Σ_j e^{x_j} along the last axis;  dL/dx = y ⊙ (dL/dy - Σ_k dL/dy_k y_k).

    The backward is the full Jacobian-vector product (J = diag(y) - y yᵀ), so it is correct for
    any upstream gradient, not only the one of cross-entropy.
    """

    def __init__(self) -> None:
        super().__init__()
        self.out: Any = None

    def forward(self, x: Any) -> Any:
        check_array("Softmax", "x", x, ndim=range(1, 8))
        self.out = softmax(x)
        return self.out

    def backward(self, dy: Any) -> Any:
        _check_dy("Softmax", dy, self.out)
        xp = backend.namespace(dy)
        y = self.out
        return y * (dy - xp.sum(dy * y, axis=-1, keepdims=True))
