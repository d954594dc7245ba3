"""Recurrent layers in one place, the bidirectional wrapper, and composite layers made of named sub-layers.

    RNN, RNNCell      (dlcore.nn.rnn)    h_t = tanh(x_t Wx + h_{t-1} Wh + b)
    LSTM, LSTMCell    (dlcore.nn.lstm)   gates f, g, i, o;  c_t = f c_{t-1} + g i,  h_t = o tanh(c_t)
    GRU, GRUCell      (dlcore.nn.gru)    gates z, r, h̃;    h_t = (1 - z) h_{t-1} + z h̃
    Bidirectional     [h→_t ; h←_t]:  one layer reads the sequence forwards, the other backwards
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any

from dlcore import backend
from dlcore.nn.base import Layer
from dlcore.nn.gru import GRU, GRUCell
from dlcore.nn.lstm import GATE_ORDER, LSTM, LSTMCell
from dlcore.nn.rnn import RNN, RecurrentBase, RNNCell

__all__ = ["RNN", "RNNCell", "LSTM", "LSTMCell", "GATE_ORDER", "GRU", "GRUCell", "RecurrentBase",
           "Bidirectional", "Composite"]


class _ChildView(MutableMapping):
    """Write-through view ``"<child>.<name>" -> child.<attr>[name]`` over a composite's named sub-layers."""

    def __init__(self, owner: Composite, attr: str) -> None:
        self._owner, self._attr = owner, attr

    def _locate(self, key: str) -> tuple[Any, str]:
        head, _, rest = key.partition(".") if isinstance(key, str) else ("", "", "")
        child = self._owner.named_children().get(head)
        if child is None or not rest:
            raise KeyError(f"{type(self._owner).__name__}.{self._attr}: no entry {key!r}; available: {list(self)}")
        return getattr(child, self._attr), rest

    def __getitem__(self, key: str) -> Any:
        inner, rest = self._locate(key)
        try:
            return inner[rest]
        except KeyError:
            raise KeyError(f"{type(self._owner).__name__}.{self._attr}: no entry {key!r}; "
                           f"available: {list(self)}") from None

    def __setitem__(self, key: str, value: Any) -> None:
        inner, rest = self._locate(key)
        if self._attr == "params":
            if rest not in inner:
                raise KeyError(f"{type(self._owner).__name__}.params: no parameter {key!r}; available: {list(self)}")
            if tuple(getattr(value, "shape", ())) != tuple(inner[rest].shape):
                raise ValueError(f"{type(self._owner).__name__}.params: {key!r} has shape "
                                 f"{tuple(inner[rest].shape)}, got {tuple(getattr(value, 'shape', ()))}")
        inner[rest] = value

    def __delitem__(self, key: str) -> None:
        inner, rest = self._locate(key)
        del inner[rest]

    def __iter__(self) -> Iterator[str]:
        for name, child in self._owner.named_children().items():
            for key in getattr(child, self._attr):
                yield f"{name}.{key}"

    def __len__(self) -> int:
        return sum(len(getattr(child, self._attr)) for child in self._owner.named_children().values())

    def __repr__(self) -> str:
        return "{" + ", ".join(f"{k!r}: <{tuple(v.shape)}>" for k, v in self.items()) + "}"


class Composite(Layer):
    """A layer built from named sub-layers; ``params``/``grads`` are write-through views "<child>.<name>".

    Subclasses set their sub-layers as attributes and list them in :meth:`named_children`.
    """

    def named_children(self) -> dict[str, Layer]:  # pragma: no cover - abstract
        raise NotImplementedError

    def children(self) -> tuple[Layer, ...]:
        return tuple(self.named_children().values())

    @property
    def params(self) -> MutableMapping:
        return _ChildView(self, "params")

    @params.setter
    def params(self, values: Mapping[str, Any]) -> None:
        view = _ChildView(self, "params")
        for key, value in dict(values).items():
            view[key] = value

    @property
    def grads(self) -> MutableMapping:
        return _ChildView(self, "grads")

    @grads.setter
    def grads(self, values: Mapping[str, Any]) -> None:
        values = dict(values)
        for child in self.children():
            child.grads = {}
        view = _ChildView(self, "grads")
        for key, value in values.items():
            view[key] = value

    def buffers(self) -> dict[str, Any]:
        return {f"{name}.{key}": value for name, child in self.named_children().items()
                for key, value in child.buffers().items()}

    def _set_buffer(self, name: str, value: Any) -> None:
        head, _, rest = name.partition(".")
        self.named_children()[head]._set_buffer(rest, value)

    def to(self, device: Any) -> Layer:
        for child in self.children():
            child.to(device)
        return self

    def astype(self, dtype: Any) -> Layer:
        for child in self.children():
            child.astype(dtype)
        return self

    def __repr__(self) -> str:
        inner = ", ".join(f"{name}={child!r}" for name, child in self.named_children().items())
        return f"{type(self).__name__}({inner})"


class Bidirectional(Composite):
    """hs_t = [h→_t ; h←_t]: ``layer_fwd`` reads x_1..x_T, ``layer_bwd`` reads x_T..x_1; (N, T, D) -> (N, T, H_f + H_b).

    h←_t is the backward layer's state after reading x_T..x_t, so both halves at step t are aligned
    with x_t. backward: dxs = (dxs from the forward layer) + time-reversed (dxs from the backward layer).
    Parameters appear as "fwd.Wx", "bwd.Wx", ... Both layers start from a zero state (no padding mask:
    pad at the end and the backward layer reads the padding first).
    """

    def __init__(self, layer_fwd: RecurrentBase, layer_bwd: RecurrentBase) -> None:
        if layer_fwd is layer_bwd:
            raise ValueError("Bidirectional: expected two distinct layers (one per direction), "
                             "got the same object twice")
        for name, layer in (("layer_fwd", layer_fwd), ("layer_bwd", layer_bwd)):
            if not hasattr(layer, "hidden_size") or not hasattr(layer, "input_size"):
                raise TypeError(f"Bidirectional: expected {name} to be a recurrent layer (RNN, LSTM, GRU), "
                                f"got {type(layer).__name__}")
            if getattr(layer, "stateful", False):
                raise ValueError(f"Bidirectional: {name} is stateful; a bidirectional layer sees whole sequences, "
                                 "create it with stateful=False")
        if layer_fwd.input_size != layer_bwd.input_size:
            raise ValueError(f"Bidirectional: the two layers expect different input sizes "
                             f"({layer_fwd.input_size} and {layer_bwd.input_size})")
        self.fwd, self.bwd = layer_fwd, layer_bwd
        self.input_size = layer_fwd.input_size
        self.hidden_size = layer_fwd.hidden_size + layer_bwd.hidden_size

    def named_children(self) -> dict[str, Layer]:
        return {"fwd": self.fwd, "bwd": self.bwd}

    def forward(self, xs: Any) -> Any:
        xp = backend.namespace(xs)
        hs_f = self.fwd.forward(xs)
        hs_b = self.bwd.forward(xp.flip(xs, axis=1))
        return xp.concat([hs_f, xp.flip(hs_b, axis=1)], axis=-1)

    def backward(self, dhs: Any) -> Any:
        xp = backend.namespace(dhs)
        hf = self.fwd.hidden_size
        if dhs.ndim != 3 or dhs.shape[-1] != self.hidden_size:
            raise ValueError(f"Bidirectional: expected dhs of shape (N, T, {self.hidden_size}), "
                             f"got shape {tuple(dhs.shape)}")
        dxs_f = self.fwd.backward(dhs[:, :, :hf])
        dxs_b = self.bwd.backward(xp.flip(dhs[:, :, hf:], axis=1))
        return dxs_f + xp.flip(dxs_b, axis=1)
