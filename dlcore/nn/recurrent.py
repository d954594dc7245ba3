"""Recurrent layers in one place, the bidirectional wrapper, and composite layers made of named sub-layers.

    RNN, RNNCell      (dlcore.nn.rnn)    h_t = tanh(x_t Wx + h_{t-1} Wh + b)
    LSTM, LSTMCell    (dlcore.nn.lstm)   gates f, g, i, o;  c_t = f c_{t-1} + g i,  h_t = o tanh(c_t)
    GRU, GRUCell      (dlcore.nn.gru)    gates z, r, h̃;    h_t = (1 - z) h_{t-1} + z h̃
    Bidirectional     [h→_t ; h←_t]:  one layer reads the sequence forwards, the other backwards

``Composite`` is re-exported from :mod:`dlcore.nn.composite` for backwards compatibility.
"""

from __future__ import annotations

from typing import Any

from dlcore import backend
from dlcore.nn.base import Layer
from dlcore.nn.composite import Composite
from dlcore.nn.gru import GRU, GRUCell
from dlcore.nn.lstm import GATE_ORDER, LSTM, LSTMCell
from dlcore.nn.rnn import RNN, RecurrentBase, RNNCell

__all__ = ["RNN", "RNNCell", "LSTM", "LSTMCell", "GATE_ORDER", "GRU", "GRUCell", "RecurrentBase",
           "Bidirectional", "Composite"]


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
