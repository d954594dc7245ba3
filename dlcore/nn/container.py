"""Sequential: a chain of layers, y = f_L(... f_2(f_1(x))), backward in reverse order.

``model.params`` and ``model.grads`` are flat, write-through views over the layers' own dicts,
with keys "<index>.<name>" ("0.W", "3.gamma"; nested containers give "1.0.W"), so an optimizer
written for one layer's ``(params, grads)`` drives the whole model, and
``model.params["0.W"] = W_new`` replaces layer 0's weight.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from typing import Any

from dlcore.nn.base import Layer, Loss

__all__ = ["Sequential"]


class _FlatView(MutableMapping):
    """Write-through view ``"<i>.<name>" -> layers[i].<attr>[name]`` (attr is 'params' or 'grads')."""

    def __init__(self, model: Sequential, attr: str) -> None:
        self._model, self._attr = model, attr

    def _locate(self, key: str) -> tuple[dict[str, Any] | MutableMapping, str]:
        head, _, rest = key.partition(".") if isinstance(key, str) else ("", "", "")
        layers = self._model.layers
        if not (head.isdigit() and rest and int(head) < len(layers)):
            raise KeyError(f"Sequential.{self._attr}: no entry {key!r}; keys look like '0.W' (layer index, name), "
                           f"available: {list(self)}")
        return getattr(layers[int(head)], self._attr), rest

    def __getitem__(self, key: str) -> Any:
        inner, rest = self._locate(key)
        try:
            return inner[rest]
        except KeyError:
            raise KeyError(f"Sequential.{self._attr}: no entry {key!r}; available: {list(self)}") from None

    def __setitem__(self, key: str, value: Any) -> None:
        inner, rest = self._locate(key)
        if self._attr == "params":
            if rest not in inner:
                raise KeyError(f"Sequential.params: no parameter {key!r} to replace; available: {list(self)}")
            old = inner[rest]
            if tuple(getattr(value, "shape", ())) != tuple(old.shape):
                raise ValueError(f"Sequential.params: {key!r} has shape {tuple(old.shape)}, got a replacement of "
                                 f"shape {tuple(getattr(value, 'shape', ()))}")
        inner[rest] = value

    def __delitem__(self, key: str) -> None:
        if self._attr == "params":
            raise TypeError("Sequential.params: parameters cannot be deleted (replace them instead)")
        inner, rest = self._locate(key)
        del inner[rest]

    def __iter__(self) -> Iterator[str]:
        for i, layer in enumerate(self._model.layers):
            for name in getattr(layer, self._attr, {}):
                yield f"{i}.{name}"

    def __len__(self) -> int:
        return sum(len(getattr(layer, self._attr, {})) for layer in self._model.layers)

    def __repr__(self) -> str:
        return "{" + ", ".join(f"{k!r}: <{tuple(v.shape)}>" for k, v in self.items()) + "}"


class Sequential(Layer):
    """y = f_L(... f_1(x));  backward: dL/dx = J_1ᵀ (... J_Lᵀ dL/dy), layers in reverse order.

    ``forward(x, train=True)`` hands ``train`` to the layers that have a train mode (dropout,
    batch norm); ``predict(x)`` is the evaluation-mode forward. Index, slice, iterate and
    ``append`` like a list.
    """

    has_train_mode = True

    def __init__(self, *layers: Any) -> None:  # no super().__init__(): params/grads are views
        if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
            layers = tuple(layers[0])
        self.layers: list[Any] = []
        self._params = _FlatView(self, "params")
        self._grads = _FlatView(self, "grads")
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

    def children(self) -> tuple[Any, ...]:
        return tuple(self.layers)

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

    # -- flat views ------------------------------------------------------------------
    @property
    def params(self) -> MutableMapping:
        """Write-through view "<i>.<name>" -> layer i's parameter."""
        return self._params

    @params.setter
    def params(self, values: Mapping[str, Any]) -> None:
        """Load parameters: ``model.params = other.params`` replaces every parameter (same keys required)."""
        if values is self._params:
            return
        values = dict(values)
        if set(values) != set(self._params):
            raise KeyError(f"Sequential.params: expected exactly the keys {list(self._params)}, got {list(values)}")
        for key, value in values.items():
            self._params[key] = value

    @property
    def grads(self) -> MutableMapping:
        """Write-through view "<i>.<name>" -> layer i's gradient (filled by backward)."""
        return self._grads

    @grads.setter
    def grads(self, values: Mapping[str, Any]) -> None:
        """``model.grads = {}`` clears every layer's gradients; a non-empty mapping is written through."""
        if values is self._grads:
            return
        values = dict(values)
        for layer in self.layers:
            if hasattr(layer, "grads"):
                layer.grads = {}
        for key, value in values.items():
            self._grads[key] = value

    def buffers(self) -> dict[str, Any]:
        return {f"{i}.{name}": value for i, layer in enumerate(self.layers)
                for name, value in (layer.buffers().items() if hasattr(layer, "buffers") else ())}

    def _set_buffer(self, name: str, value: Any) -> None:
        head, _, rest = name.partition(".")
        self.layers[int(head)]._set_buffer(rest, value)

    def __repr__(self) -> str:
        if not self.layers:
            return "Sequential()"
        lines = ["Sequential("]
        for i, layer in enumerate(self.layers):
            body = repr(layer).replace("\n", "\n  ")
            lines.append(f"  ({i}): {body}")
        lines.append(")")
        return "\n".join(lines)
