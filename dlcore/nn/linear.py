"""Affine (fully connected) layer and Flatten."""

from __future__ import annotations

from typing import Any

from dlcore import backend
from dlcore.nn import init as initializers
from dlcore.nn.base import Layer, check_array, check_dtype_match

__all__ = ["Affine", "Flatten"]


class Affine(Layer):
    """Y = X W + b  (lecture notation; X is a row-per-sample batch, W has shape (in, out)).

    ``input_grad=False`` skips dL/dX (``backward`` returns None): for the first layer of a network, whose
    input is data, as PyTorch does for inputs without ``requires_grad`` (in an MLP 784-1000-1000-10 it is
    a seventh of a step's arithmetic).
    """

    def __init__(self, in_features: int, out_features: int, *, init: str | initializers.Initializer = "he",
                 rng: backend.Seed = None, dtype: Any = "float32", input_grad: bool = True) -> None:
        super().__init__()
        if in_features <= 0 or out_features <= 0:
            raise ValueError(f"Affine: expected positive feature counts, got in={in_features}, out={out_features}")
        self.in_features, self.out_features = int(in_features), int(out_features)
        self.input_grad = bool(input_grad)
        self.params = {
            "W": initializers.get(init)((in_features, out_features), rng, dtype),
            "b": initializers.zeros((out_features,), dtype=dtype),
        }
        self.x: Any = None

    def forward(self, x: Any) -> Any:
        check_array("Affine", "x", x, ndim=2, last_dim=self.in_features)
        check_dtype_match("Affine", x, self.params)
        backend.namespace(x, self.params["W"], where="Affine.forward")
        self.x = x
        y = backend.matmul(x, self.params["W"])
        y += self.params["b"]                     # in place: no second (N, out) array
        return y

    def backward(self, dy: Any) -> Any:
        if self.x is None:
            raise RuntimeError("Affine: backward called before forward; call forward first (it caches x)")
        xp = backend.namespace(dy)
        self.grads["W"] = backend.matmul(self.x.T, dy)          # dL/dW = X^T dY
        self.grads["b"] = xp.sum(dy, axis=0)                     # dL/db = sum over the batch
        return backend.matmul(dy, self.params["W"].T) if self.input_grad else None  # dL/dX = dY W^T


class Flatten(Layer):
    """(N, d1, d2, ...) -> (N, d1 d2 ...); backward restores the input shape."""

    def forward(self, x: Any) -> Any:
        check_array("Flatten", "x", x, ndim=range(2, 8), floating=False)
        self.shape = tuple(x.shape)
        return backend.namespace(x).reshape(x, (x.shape[0], -1))

    def backward(self, dy: Any) -> Any:
        if getattr(self, "shape", None) is None:
            raise RuntimeError("Flatten: backward called before forward; call forward first (it caches the shape)")
        return backend.namespace(dy).reshape(dy, self.shape)
