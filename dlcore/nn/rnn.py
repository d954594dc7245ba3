"""The simple (Elman) recurrent layer, one step and whole sequences, and what all recurrent layers share.

    h_t = tanh(x_t Wx + h_{t-1} Wh + b)          Wx (D, H), Wh (H, H), b (H,)

Shapes follow *Deep Learning from Scratch 2*: a batch of sequences is ``xs`` of shape
(N, T, D) (batch, time, features) and the hidden states are ``hs`` (N, T, H).

Backpropagation through time (BPTT): with dL/dh_t = dhs_t + (the gradient arriving from step t+1),

    da_t      = dL/dh_t ⊙ (1 - h_t²)                (through tanh)
    dL/dh_t-1 = da_t Whᵀ   (flows to the previous step)
    dL/dx_t   = da_t Wxᵀ
    dL/dWx = Σ_t x_tᵀ da_t,   dL/dWh = Σ_t h_{t-1}ᵀ da_t,   dL/db = Σ_t Σ_n da_t

The parameter gradients are sums over time because one set of weights is used at every step.
"""

from __future__ import annotations

from typing import Any

from dlcore import backend
from dlcore.nn import init as initializers
from dlcore.nn.base import Layer, check_array, check_dtype_match
from dlcore.nn.functional import _check_dy, _describe

__all__ = ["RNNCell", "RNN"]


# --------------------------------------------------------------------------- helpers shared by RNN, LSTM, GRU


def recurrent_params(layer: str, input_size: int, hidden_size: int, n_gates: int, init: Any, rng: backend.Seed,
                     dtype: Any) -> dict[str, Any]:
    """Wx (D, G·H), Wh (H, G·H), b (G·H,) for a layer with G gate blocks (RNN 1, GRU 3, LSTM 4).

    The default init ``'lecun'`` draws N(0, 1/fan_in): Wx ~ N(0, 1/D), Wh ~ N(0, 1/H), as DLfS-2's
    randn(D, H) / sqrt(D); b = 0.
    """
    for what, size in (("input_size", input_size), ("hidden_size", hidden_size)):
        if int(size) != size or size <= 0:
            raise ValueError(f"{layer}: expected a positive integer {what}, got {size!r}")
    d, h = int(input_size), int(hidden_size)
    gen = backend.default_rng(rng)
    make = initializers.get(init)
    return {
        "Wx": make((d, n_gates * h), gen, dtype),
        "Wh": make((h, n_gates * h), gen, dtype),
        "b": initializers.zeros((n_gates * h,), dtype=dtype),
    }


def check_sequence(layer: str, xs: Any, input_size: int, params: dict[str, Any]) -> None:
    """xs must be a floating (N, T, D) array with T >= 1, D = input_size, in the parameters' dtype."""
    if hasattr(xs, "ndim") and xs.ndim == 2 and xs.shape[-1] == input_size:
        raise ValueError(f"{layer}: expected a batch of sequences (N, T, {input_size}), got {_describe(xs)}; "
                         "for a single sequence add the batch axis (xs[None]), for one time step use the cell")
    check_array(layer, "xs", xs, ndim=3)
    if xs.shape[1] == 0:
        raise ValueError(f"{layer}: got a sequence of length 0 (xs has shape {tuple(xs.shape)}); "
                         "expected at least one time step")
    if xs.shape[2] != input_size:
        raise ValueError(f"{layer}: expected {input_size} features per time step (xs of shape (N, T, {input_size})), "
                         f"got {_describe(xs)}")
    check_dtype_match(layer, xs, params)
    backend.namespace(xs, *params.values(), where=f"{layer}.forward")


def check_state(layer: str, name: str, h: Any, n: int, hidden_size: int, like: Any) -> None:
    """An initial state must be (N, H) in the dtype and namespace of the input."""
    check_array(layer, name, h, ndim=2)
    if tuple(h.shape) != (n, hidden_size):
        raise ValueError(f"{layer}: expected {name} of shape ({n}, {hidden_size}) (batch, hidden), got {_describe(h)}")
    if backend.dtype_name(h.dtype) != backend.dtype_name(like.dtype):
        raise TypeError(f"{layer}: expected {name} of dtype {backend.dtype_name(like.dtype)} (like the input), "
                        f"got {_describe(h)}")
    backend.namespace(h, like, where=f"{layer}.forward")


class RecurrentBase(Layer):
    """Whole-sequence recurrent layer: ``forward(xs, h0=None)`` (N, T, D) -> (N, T, H), ``backward(dhs)`` -> dxs.

    - The initial state is zero unless given (``h0``, and ``c0`` for the LSTM).
    - ``backward`` stores the parameter gradients (summed over time) in ``grads`` and the
      gradient of the initial state in ``dh0`` (and ``dc0``).
    - ``stateful=True``: the last state of one ``forward`` is the initial state of the next one
      (truncated BPTT: values flow across calls, gradients stop at the boundary);
      ``reset_state()`` starts afresh. The carried state is a buffer (it moves with ``.to``).
    - ``last_state`` holds the state after the last step (step-by-step generation reads it).
    """

    n_gates = 1

    def __init__(self, input_size: int, hidden_size: int, *, stateful: bool = False, init: Any = "lecun",
                 rng: backend.Seed = None, dtype: Any = "float32") -> None:
        super().__init__()
        name = type(self).__name__
        self.params = recurrent_params(name, input_size, hidden_size, self.n_gates, init, rng, dtype)
        self.input_size, self.hidden_size = int(input_size), int(hidden_size)
        self.stateful = bool(stateful)
        self.state: dict[str, Any] = {}
        #: The state after the last time step of the last forward ({"h": ...}, LSTM also "c").
        self.last_state: dict[str, Any] = {}
        self.cache: Any = None
        self.dh0: Any = None

    # -- carried state ------------------------------------------------------------------
    def reset_state(self) -> None:
        """Forget the carried state: the next forward starts from zeros (or the given h0)."""
        self.state = {}

    def set_state(self, h: Any, c: Any = None) -> None:
        """Set the state the next ``forward`` starts from (used by a decoder; implies nothing about statefulness)."""
        self.state = {"h": h} if c is None else {"h": h, "c": c}

    def buffers(self) -> dict[str, Any]:
        return dict(self.state)

    def _set_buffer(self, name: str, value: Any) -> None:
        self.state[name] = value

    def _initial(self, name: str, given: Any, xs: Any) -> Any:
        """The initial state ``name``: given > carried > zeros."""
        layer, n = type(self).__name__, xs.shape[0]
        if given is None:
            given = self.state.get(name)
            if given is not None and tuple(given.shape) != (n, self.hidden_size):
                raise ValueError(f"{layer}: the carried state {name} has batch size {given.shape[0]} but xs has {n}; "
                                 "call reset_state() before changing the batch size")
        if given is None:
            xp = backend.namespace(xs)
            return xp.zeros((n, self.hidden_size), dtype=xs.dtype, device=backend.device_of(xs))
        check_state(layer, f"{name}0", given, n, self.hidden_size, xs)
        return given

    def _keep(self, **last: Any) -> None:
        """Record the last state; carry it to the next forward (stateful), or drop any state set by set_state."""
        self.last_state = dict(last)
        self.state = dict(last) if self.stateful else {}

    def _check_dhs(self, dhs: Any) -> None:
        if self.cache is None:
            raise RuntimeError(f"{type(self).__name__}: backward called before forward; call forward first")
        _check_dy(type(self).__name__, dhs, self.cache["hs"])

    def __repr__(self) -> str:
        extra = ", stateful=True" if self.stateful else ""
        return f"{type(self).__name__}(input_size={self.input_size}, hidden_size={self.hidden_size}{extra})"


# --------------------------------------------------------------------------- one step


class RNNCell(Layer):
    """One time step:  h_next = tanh(x Wx + h_prev Wh + b).

    ``forward(x, h_prev)`` with x (N, D), h_prev (N, H) returns h_next (N, H);
    ``backward(dh_next)`` returns (dx, dh_prev) and stores dWx, dWh, db.
    """

    def __init__(self, input_size: int, hidden_size: int, *, init: Any = "lecun", rng: backend.Seed = None,
                 dtype: Any = "float32") -> None:
        super().__init__()
        self.params = recurrent_params("RNNCell", input_size, hidden_size, 1, init, rng, dtype)
        self.input_size, self.hidden_size = int(input_size), int(hidden_size)
        self.cache: Any = None

    def forward(self, x: Any, h_prev: Any) -> Any:
        check_array("RNNCell", "x", x, ndim=2, last_dim=self.input_size)
        check_dtype_match("RNNCell", x, self.params)
        check_state("RNNCell", "h_prev", h_prev, x.shape[0], self.hidden_size, x)
        xp = backend.namespace(x, h_prev, *self.params.values(), where="RNNCell.forward")
        p = self.params
        h_next = xp.tanh(x @ p["Wx"] + h_prev @ p["Wh"] + p["b"])
        self.cache = (x, h_prev, h_next)
        return h_next

    def backward(self, dh_next: Any) -> tuple[Any, Any]:
        if self.cache is None:
            raise RuntimeError("RNNCell: backward called before forward; call forward first")
        x, h_prev, h_next = self.cache
        _check_dy("RNNCell", dh_next, h_next)
        xp = backend.namespace(dh_next)
        da = dh_next * (1.0 - h_next * h_next)          # through tanh
        self.grads["Wx"] = x.T @ da                      # dL/dWx = xᵀ da
        self.grads["Wh"] = h_prev.T @ da                 # dL/dWh = h_prevᵀ da
        self.grads["b"] = xp.sum(da, axis=0)
        return da @ self.params["Wx"].T, da @ self.params["Wh"].T

    def __repr__(self) -> str:
        return f"RNNCell(input_size={self.input_size}, hidden_size={self.hidden_size})"


# --------------------------------------------------------------------------- whole sequences


class RNN(RecurrentBase):
    """h_t = tanh(x_t Wx + h_{t-1} Wh + b) for t = 1..T;  (N, T, D) -> (N, T, H).

    The input projection X Wx + b is one (N·T, D) @ (D, H) product before the loop; the loop
    only adds h_{t-1} Wh. In backward, dWx, dWh and db are one product each after the loop.
    """

    n_gates = 1

    def forward(self, xs: Any, h0: Any = None) -> Any:
        check_sequence("RNN", xs, self.input_size, self.params)
        xp = backend.namespace(xs)
        n, t_len, d = xs.shape
        hdim = self.hidden_size
        wx, wh, b = self.params["Wx"], self.params["Wh"], self.params["b"]
        h = h0 = self._initial("h", h0, xs)
        xw = xp.reshape(xp.reshape(xs, (n * t_len, d)) @ wx + b, (n, t_len, hdim))
        hs = []
        for t in range(t_len):
            h = xp.tanh(xw[:, t, :] + h @ wh)
            hs.append(h)
        hs = xp.stack(hs, axis=1)
        self.cache = {"xs": xs, "h0": h0, "hs": hs}
        self._keep(h=h)
        return hs

    def backward(self, dhs: Any) -> Any:
        self._check_dhs(dhs)
        xs, h0, hs = self.cache["xs"], self.cache["h0"], self.cache["hs"]
        xp = backend.namespace(dhs)
        n, t_len, d = xs.shape
        hdim = self.hidden_size
        wx, wh = self.params["Wx"], self.params["Wh"]
        dh = xp.zeros_like(h0)
        das = [None] * t_len
        for t in reversed(range(t_len)):
            h = hs[:, t, :]
            da = (dhs[:, t, :] + dh) * (1.0 - h * h)   # through tanh
            dh = da @ wh.T                              # to step t-1
            das[t] = da
        da = xp.reshape(xp.stack(das, axis=1), (n * t_len, hdim))
        h_prev = xp.reshape(xp.concat([h0[:, None, :], hs[:, :-1, :]], axis=1), (n * t_len, hdim))
        x2 = xp.reshape(xs, (n * t_len, d))
        self.grads["Wx"] = x2.T @ da                   # Σ_t x_tᵀ da_t
        self.grads["Wh"] = h_prev.T @ da               # Σ_t h_{t-1}ᵀ da_t
        self.grads["b"] = xp.sum(da, axis=0)
        self.dh0 = dh
        return xp.reshape(da @ wx.T, (n, t_len, d))
