"""Sequential: a chain of layers, y = f_L(... f_2(f_1(x))), backward in reverse order.

``model.params`` and ``model.grads`` are flat, write-through views over the layers' own dicts,
with keys "<index>.<name>" ("0.W", "3.gamma"; nested containers give "1.0.W"), so an optimizer
written for one layer's ``(params, grads)`` drives the whole model, and
``model.params["0.W"] = W_new`` replaces layer 0's weight.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from dlcore.nn.base import Loss
from dlcore.nn.composite import Composite

__all__ = ["Sequential"]


class Sequential(Composite):
    """y = f_L(... f_1(x));  backward: dL/dx = J_1ᵀ (... J_Lᵀ dL/dy), layers in reverse order.

    ``forward(x, train=True)`` hands ``train`` to the layers that have a train mode (dropout,
    batch norm); ``predict(x)`` is the evaluation-mode forward. Index, slice, iterate and
    ``append`` like a list.
    """

    has_train_mode = True
    key_example = "'0.W' (layer index, name)"

    def __init__(self, *layers: Any) -> None:  # no super().__init__(): params/grads are views
        if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
            layers = tuple(layers[0])
        self.layers: list[Any] = []
        self.extend(layers)

    # -- list-like -------------------------------------------------------------------
    @staticmethod
    def _check_layer(layer: Any, position: int) -> None:
        if isinstance(layer, Loss):
            raise TypeError(f"Sequential: layer {position} is a loss ({type(layer).__name__}); keep the loss outside "
                            "the model: loss.forward(model.forward(x), t)")
        if not (callable(getattr(layer, "forward", None)) and callable(getattr(layer, "backward", None))):
            raise TypeError(f"Sequential: expected layers with forward and backward (dlcore.nn.Layer), got an "
                            f"object of type {type(layer).__name__} at position {position}")

    def append(self, layer: Any) -> Sequential:
        """Add ``layer`` at the end; returns self."""
        self._check_layer(layer, len(self.layers))
        self.layers.append(layer)
        return self

    def extend(self, layers: Iterable[Any]) -> Sequential:
        for layer in layers:
            self.append(layer)
        return self

    def __len__(self) -> int:
        return len(self.layers)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.layers)

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return Sequential(*self.layers[index])
        return self.layers[index]

    # -- protocol --------------------------------------------------------------------
    def forward(self, x: Any, train: bool = True) -> Any:
        for layer in self.layers:
            x = layer.forward(x, train=train) if getattr(layer, "has_train_mode", False) else layer.forward(x)
        return x

    def backward(self, dy: Any) -> Any:
        for layer in reversed(self.layers):
            dy = layer.backward(dy)
        return dy

    def predict(self, x: Any) -> Any:
        """Evaluation-mode forward pass (dropout off, batch norm on running statistics)."""
        return self.forward(x, train=False)

    def named_children(self) -> dict[str, Any]:
        """Layers by position: the "<i>" in the flat keys "<i>.<name>"."""
        return {str(i): layer for i, layer in enumerate(self.layers)}

    def __repr__(self) -> str:
        if not self.layers:
            return "Sequential()"
        lines = ["Sequential("]
        for i, layer in enumerate(self.layers):
            body = repr(layer).replace("\n", "\n  ")
            lines.append(f"  ({i}): {body}")
        lines.append(")")
        return "\n".join(lines)
