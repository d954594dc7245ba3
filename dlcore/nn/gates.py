"""The computational-graph gates of the backpropagation lecture: add and multiply nodes.

    add:       z = x + y     ∂L/∂x = ∂L/∂z,       ∂L/∂y = ∂L/∂z
    multiply:  z = x · y     ∂L/∂x = ∂L/∂z · y,   ∂L/∂y = ∂L/∂z · x

They work on Python numbers (the apple-shopping example) and on arrays of any backend
alike. When the two inputs broadcast against each other, each gradient is summed back
to its input's shape (a branch that fans out receives the sum of its gradients).
"""

from __future__ import annotations

from numbers import Number
from typing import Any

from dlcore import backend
from dlcore.nn.base import Layer

__all__ = ["Add", "Mul"]


def _shape(v: Any) -> tuple[int, ...] | None:
    """Shape of an array, None for a Python number."""
    if isinstance(v, Number) and not hasattr(v, "shape"):
        return None
    if not hasattr(v, "shape"):
        raise TypeError(f"expected a number or an array, got a {type(v).__name__}")
    return tuple(v.shape)


def _check_inputs(gate: str, x: Any, y: Any) -> None:
    for name, v in (("x", x), ("y", y)):
        try:
            _shape(v)
        except TypeError as exc:
            raise TypeError(f"{gate}: {name}: {exc}") from None
    backend.namespace(x, y, where=f"{gate}.forward")
    if hasattr(x, "dtype") and hasattr(y, "dtype") and backend.dtype_name(x.dtype) != backend.dtype_name(y.dtype):
        raise TypeError(
            f"{gate}: expected x and y of one dtype (gates never cast silently), got "
            f"{backend.dtype_name(x.dtype)} and {backend.dtype_name(y.dtype)}"
        )


def _unbroadcast(g: Any, shape: tuple[int, ...] | None) -> Any:
    """Sum the gradient ``g`` over the axes that broadcasting added or stretched, back to ``shape``.

    ``shape`` None means the input was a Python number: the result is a number too when
    ``g`` is one, otherwise the sum of all entries (a 0-D array).
    """
    if not hasattr(g, "shape"):
        return g
    xp = backend.namespace(g)
    target = () if shape is None else shape
    if tuple(g.shape) == target:
        return g
    lead = g.ndim - len(target)
    if lead > 0:
        g = xp.sum(g, axis=tuple(range(lead)))
    stretched = tuple(i for i, n in enumerate(target) if n == 1 and g.shape[i] != 1)
    if stretched:
        g = xp.sum(g, axis=stretched, keepdims=True)
    return g


class Add(Layer):
    """z = x + y;  backward(dz) -> (dz, dz)  (the add gate passes the gradient through unchanged)."""

    def __init__(self) -> None:
        super().__init__()
        self.shapes: tuple[Any, Any] | None = None

    def forward(self, x: Any, y: Any) -> Any:
        _check_inputs("Add", x, y)
        self.shapes = (_shape(x), _shape(y))
        return x + y

    def backward(self, dout: Any) -> tuple[Any, Any]:
        if self.shapes is None:
            raise RuntimeError("Add: backward called before forward; call forward first")
        dx = dout * 1  # ∂z/∂x = 1
        dy = dout * 1  # ∂z/∂y = 1
        return _unbroadcast(dx, self.shapes[0]), _unbroadcast(dy, self.shapes[1])


class Mul(Layer):
    """z = x · y;  backward(dz) -> (dz · y, dz · x)  (the multiply gate swaps its inputs)."""

    def __init__(self) -> None:
        super().__init__()
        self.x: Any = None
        self.y: Any = None

    def forward(self, x: Any, y: Any) -> Any:
        _check_inputs("Mul", x, y)
        self.x, self.y = x, y
        return x * y

    def backward(self, dout: Any) -> tuple[Any, Any]:
        if self.x is None:
            raise RuntimeError("Mul: backward called before forward; call forward first")
        dx = dout * self.y  # ∂z/∂x = y
        dy = dout * self.x  # ∂z/∂y = x
        return _unbroadcast(dx, _shape(self.x)), _unbroadcast(dy, _shape(self.y))
