"""Layers made of named sub-layers, with flat write-through ``params``/``grads`` views.

``model.params["<child>.<name>"]`` reads and replaces the child's own entry (nested composites give
"1.0.W", "encoder.lstm.Wx"), so an optimizer written for one layer's ``(params, grads)`` drives a
whole model, and each layer's own ``params`` dict stays the single source of truth.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any

from dlcore.nn.base import Layer

__all__ = ["ChildView", "Composite"]


class ChildView(MutableMapping):
    """Write-through view ``"<child>.<name>" -> child.<attr>[name]`` (attr is 'params' or 'grads')."""

    def __init__(self, owner: Composite, attr: str) -> None:
        self._owner, self._attr = owner, attr

    def _where(self) -> str:
        return f"{type(self._owner).__name__}.{self._attr}"

    def _locate(self, key: str) -> tuple[MutableMapping, str]:
        head, _, rest = key.partition(".") if isinstance(key, str) else ("", "", "")
        child = self._owner.named_children().get(head)
        if child is None or not rest:
            raise KeyError(f"{self._where()}: no entry {key!r}; keys look like {self._owner.key_example}, "
                           f"available: {list(self)}")
        return getattr(child, self._attr), rest

    def __getitem__(self, key: str) -> Any:
        inner, rest = self._locate(key)
        try:
            return inner[rest]
        except KeyError:
            raise KeyError(f"{self._where()}: no entry {key!r}; available: {list(self)}") from None

    def __setitem__(self, key: str, value: Any) -> None:
        inner, rest = self._locate(key)
        if self._attr == "params":
            if rest not in inner:
                raise KeyError(f"{self._where()}: no parameter {key!r} to replace; available: {list(self)}")
            old_shape, new_shape = tuple(inner[rest].shape), tuple(getattr(value, "shape", ()))
            if new_shape != old_shape:
                raise ValueError(f"{self._where()}: {key!r} has shape {old_shape}, got a replacement of "
                                 f"shape {new_shape}")
        inner[rest] = value

    def __delitem__(self, key: str) -> None:
        if self._attr == "params":
            raise TypeError(f"{self._where()}: parameters cannot be deleted (replace them instead)")
        inner, rest = self._locate(key)
        del inner[rest]

    def __iter__(self) -> Iterator[str]:
        for name, child in self._owner.named_children().items():
            for key in getattr(child, self._attr, {}):
                yield f"{name}.{key}"

    def __len__(self) -> int:
        return sum(len(getattr(child, self._attr, {})) for child in self._owner.named_children().values())

    def __repr__(self) -> str:
        return "{" + ", ".join(f"{k!r}: <{tuple(v.shape)}>" for k, v in self.items()) + "}"


def _require(child: Any, method: str, owner: Composite) -> Any:
    if not callable(getattr(child, method, None)):
        raise TypeError(f"{type(owner).__name__}.{method}: sub-layer {type(child).__name__} has no {method}() "
                        "(derive it from dlcore.nn.Layer to get one)")
    return child


class Composite(Layer):
    """A layer built from named sub-layers; subclasses list them in :meth:`named_children`.

    ``params``/``grads`` are :class:`ChildView` s; ``to``/``astype``/``buffers`` recurse into the children.
    """

    #: How a flat key looks, for error messages.
    key_example = "'<sub-layer>.<name>'"

    def __init__(self) -> None:  # no Layer.__init__: params/grads are views, not dicts
        pass

    def named_children(self) -> dict[str, Layer]:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__}.named_children is not implemented")

    def children(self) -> tuple[Layer, ...]:
        return tuple(self.named_children().values())

    @property
    def params(self) -> MutableMapping:
        return ChildView(self, "params")

    @params.setter
    def params(self, values: Mapping[str, Any]) -> None:
        """Load parameters: ``model.params = other.params`` replaces every parameter (the same keys required)."""
        view = ChildView(self, "params")
        if values is view or isinstance(values, ChildView) and values._owner is self:
            return
        values = dict(values)
        if set(values) != set(view):
            raise KeyError(f"{type(self).__name__}.params: expected exactly the keys {list(view)}, got {list(values)}")
        for key, value in values.items():
            view[key] = value

    @property
    def grads(self) -> MutableMapping:
        return ChildView(self, "grads")

    @grads.setter
    def grads(self, values: Mapping[str, Any]) -> None:
        """``model.grads = {}`` clears every child's gradients; a non-empty mapping is written through."""
        view = ChildView(self, "grads")
        if isinstance(values, ChildView) and values._owner is self:
            return
        values = dict(values)
        for child in self.children():
            if hasattr(child, "grads"):
                child.grads = {}
        for key, value in values.items():
            view[key] = value

    def buffers(self) -> dict[str, Any]:
        return {f"{name}.{key}": value for name, child in self.named_children().items()
                for key, value in (child.buffers() if hasattr(child, "buffers") else {}).items()}

    def _set_buffer(self, name: str, value: Any) -> None:
        head, _, rest = name.partition(".")
        self.named_children()[head]._set_buffer(rest, value)

    def to(self, device: Any) -> Composite:
        """Move every sub-layer (see :meth:`Layer.to`); returns self."""
        for child in self.children():
            _require(child, "to", self).to(device)
        return self

    def astype(self, dtype: Any) -> Composite:
        """Cast every sub-layer (see :meth:`Layer.astype`); returns self."""
        for child in self.children():
            _require(child, "astype", self).astype(dtype)
        return self

    def zero_grad(self) -> None:
        self.grads = {}

    def __repr__(self) -> str:
        inner = ", ".join(f"{name}={child!r}" for name, child in self.named_children().items())
        return f"{type(self).__name__}({inner})"
