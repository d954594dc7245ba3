"""Long short-term memory (Hochreiter & Schmidhuber 1997, with the forget gate of Gers et al. 2000).

One step, gate order **f, g, i, o** as in *Deep Learning from Scratch 2* (PyTorch uses i, f, g, o):

    A = x Wx + h_prev Wh + b                       Wx (D, 4H), Wh (H, 4H), b (4H,)
    f = σ(A[:, 0:H])      forget gate
    g = tanh(A[:, H:2H])  candidate cell value
    i = σ(A[:, 2H:3H])    input gate
    o = σ(A[:, 3H:4H])    output gate
    c_next = f ⊙ c_prev + g ⊙ i
    h_next = o ⊙ tanh(c_next)

Backward of one step, given dh = dL/dh_next and dc = dL/dc_next (from the later step):

    dc  += dh ⊙ o ⊙ (1 - tanh²(c_next))
    do   = dh ⊙ tanh(c_next)     df = dc ⊙ c_prev     dg = dc ⊙ i     di = dc ⊙ g
    dA   = [df ⊙ f(1-f), dg ⊙ (1-g²), di ⊙ i(1-i), do ⊙ o(1-o)]
    dc_prev = dc ⊙ f,   dh_prev = dA Whᵀ,   dx = dA Wxᵀ,   dWx += xᵀ dA,  dWh += h_prevᵀ dA,  db += Σ_n dA

The cell state c carries the gradient back through time multiplied only by f (no squashing),
which is why the LSTM remembers over long gaps.
"""

from __future__ import annotations

from typing import Any

from dlcore import backend
from dlcore.nn.base import Layer, check_array, check_dtype_match
from dlcore.nn.functional import _check_dy, sigmoid_tanh
from dlcore.nn.rnn import RecurrentBase, check_sequence, check_state, recurrent_params

__all__ = ["LSTMCell", "LSTM", "GATE_ORDER"]

#: Column blocks of Wx, Wh and b: forget, candidate, input, output (DLfS-2).
GATE_ORDER = ("f", "g", "i", "o")


def lstm_gates(a: Any, hidden: int, xp: Any) -> tuple[Any, Any, Any, Any]:
    """(f, g, i, o) from the pre-activation A (N, 4H)."""
    h = hidden
    f = sigmoid_tanh(a[:, :h])
    g = xp.tanh(a[:, h:2 * h])
    i = sigmoid_tanh(a[:, 2 * h:3 * h])
    o = sigmoid_tanh(a[:, 3 * h:])
    return f, g, i, o


def lstm_step_backward(dh: Any, dc: Any, gates: tuple[Any, Any, Any, Any], c_prev: Any, tc: Any,
                       xp: Any) -> tuple[Any, Any]:
    """(dA, dc_prev) for one step, given dh, dc at its output, its gates, c_prev and tanh(c_next)."""
    f, g, i, o = gates
    do = dh * tc
    dc = dc + dh * o * (1.0 - tc * tc)
    df, dg, di = dc * c_prev, dc * i, dc * g
    da = xp.concat([df * f * (1.0 - f), dg * (1.0 - g * g), di * i * (1.0 - i), do * o * (1.0 - o)], axis=1)
    return da, dc * f


# --------------------------------------------------------------------------- one step


class LSTMCell(Layer):
    """One LSTM step: ``forward(x, h_prev, c_prev)`` -> (h_next, c_next); see the module docstring.

    ``backward(dh_next, dc_next=None)`` returns (dx, dh_prev, dc_prev) and stores dWx, dWh, db
    (``dc_next`` None means no gradient arrives at c_next from later steps).
    """

    def __init__(self, input_size: int, hidden_size: int, *, init: Any = "lecun", rng: backend.Seed = None,
                 dtype: Any = "float32") -> None:
        super().__init__()
        self.params = recurrent_params("LSTMCell", input_size, hidden_size, 4, init, rng, dtype)
        self.input_size, self.hidden_size = int(input_size), int(hidden_size)
        self.cache: Any = None

    def forward(self, x: Any, h_prev: Any, c_prev: Any) -> tuple[Any, Any]:
        check_array("LSTMCell", "x", x, ndim=2, last_dim=self.input_size)
        check_dtype_match("LSTMCell", x, self.params)
        check_state("LSTMCell", "h_prev", h_prev, x.shape[0], self.hidden_size, x)
        check_state("LSTMCell", "c_prev", c_prev, x.shape[0], self.hidden_size, x)
        xp = backend.namespace(x, h_prev, c_prev, *self.params.values(), where="LSTMCell.forward")
        p = self.params
        a = x @ p["Wx"] + h_prev @ p["Wh"] + p["b"]
        f, g, i, o = gates = lstm_gates(a, self.hidden_size, xp)
        c_next = f * c_prev + g * i
        tc = xp.tanh(c_next)
        h_next = o * tc
        self.cache = (x, h_prev, c_prev, gates, tc, h_next)
        return h_next, c_next

    def backward(self, dh_next: Any, dc_next: Any = None) -> tuple[Any, Any, Any]:
        if self.cache is None:
            raise RuntimeError("LSTMCell: backward called before forward; call forward first")
        x, h_prev, c_prev, gates, tc, h_next = self.cache
        _check_dy("LSTMCell", dh_next, h_next)
        xp = backend.namespace(dh_next)
        if dc_next is None:
            dc_next = xp.zeros_like(dh_next)
        else:
            _check_dy("LSTMCell", dc_next, h_next)
        da, dc_prev = lstm_step_backward(dh_next, dc_next, gates, c_prev, tc, xp)
        self.grads["Wx"] = x.T @ da
        self.grads["Wh"] = h_prev.T @ da
        self.grads["b"] = xp.sum(da, axis=0)
        return da @ self.params["Wx"].T, da @ self.params["Wh"].T, dc_prev

    def __repr__(self) -> str:
        return f"LSTMCell(input_size={self.input_size}, hidden_size={self.hidden_size})"


# --------------------------------------------------------------------------- whole sequences


class LSTM(RecurrentBase):
    """LSTM over whole sequences: ``forward(xs, h0=None, c0=None)`` (N, T, D) -> hs (N, T, H).

    Gate order f, g, i, o (see the module docstring and ``GATE_ORDER``). ``backward(dhs)`` returns
    dxs and stores the parameter gradients (summed over time), ``dh0`` and ``dc0``. With
    ``stateful=True`` both h and c are carried to the next call (truncated BPTT).
    ``forget_bias`` initialises the f block of b (1.0 is a common choice that helps remembering).

    On NumPy a fast path runs the same equations with preallocated time-major buffers and ``out=``
    (set ``fast = False`` to use the generic array-API loop everywhere); both give the same numbers.
    """

    n_gates = 4

    def __init__(self, input_size: int, hidden_size: int, *, stateful: bool = False, forget_bias: float = 0.0,
                 init: Any = "lecun", rng: backend.Seed = None, dtype: Any = "float32") -> None:
        super().__init__(input_size, hidden_size, stateful=stateful, init=init, rng=rng, dtype=dtype)
        if forget_bias:
            b = self.params["b"]
            xp = backend.namespace(b)
            hdim = self.hidden_size
            mask = xp.arange(4 * hdim) < hdim
            self.params["b"] = xp.where(mask, xp.asarray(float(forget_bias), dtype=b.dtype), b)
        self.fast = True
        self.dc0: Any = None

    def forward(self, xs: Any, h0: Any = None, c0: Any = None) -> Any:
        check_sequence("LSTM", xs, self.input_size, self.params)
        xp = backend.namespace(xs)
        h0, c0 = self._initial("h", h0, xs), self._initial("c", c0, xs)
        if self.fast and backend.is_numpy(xp):
            hs, h, c = self._forward_numpy(xs, h0, c0)
        else:
            hs, h, c = self._forward_generic(xs, h0, c0)
        self._keep(h=h, c=c)
        return hs

    def backward(self, dhs: Any) -> Any:
        self._check_dhs(dhs)
        if self.cache["fast"]:
            return self._backward_numpy(dhs)
        return self._backward_generic(dhs)

    # -- the readable loop (every backend) ----------------------------------------------------
    def _forward_generic(self, xs: Any, h0: Any, c0: Any) -> tuple[Any, Any, Any]:
        xp = backend.namespace(xs)
        n, t_len, d = xs.shape
        hdim = self.hidden_size
        wx, wh, b = self.params["Wx"], self.params["Wh"], self.params["b"]
        # input projection of every time step at once: (N·T, D) @ (D, 4H)
        xw = xp.reshape(xp.reshape(xs, (n * t_len, d)) @ wx + b, (n, t_len, 4 * hdim))
        h, c = h0, c0
        hs, cs, tcs, gates = [], [], [], []
        for t in range(t_len):
            f, g, i, o = gate = lstm_gates(xw[:, t, :] + h @ wh, hdim, xp)
            cs.append(c)                      # c_{t-1}, needed by df
            c = f * c + g * i
            tc = xp.tanh(c)
            h = o * tc
            hs.append(h)
            tcs.append(tc)
            gates.append(gate)
        hs = xp.stack(hs, axis=1)
        self.cache = {"fast": False, "xs": xs, "h0": h0, "hs": hs, "c_prev": cs, "tc": tcs, "gates": gates}
        return hs, h, c

    def _backward_generic(self, dhs: Any) -> Any:
        cache = self.cache
        xs, h0, hs = cache["xs"], cache["h0"], cache["hs"]
        xp = backend.namespace(dhs)
        n, t_len, d = xs.shape
        hdim = self.hidden_size
        wx, wh = self.params["Wx"], self.params["Wh"]
        dh, dc = xp.zeros_like(h0), xp.zeros_like(h0)
        das = [None] * t_len
        for t in reversed(range(t_len)):
            da, dc = lstm_step_backward(dhs[:, t, :] + dh, dc, cache["gates"][t], cache["c_prev"][t],
                                        cache["tc"][t], xp)
            dh = da @ wh.T
            das[t] = da
        da = xp.reshape(xp.stack(das, axis=1), (n * t_len, 4 * hdim))
        h_prev = xp.reshape(xp.concat([h0[:, None, :], hs[:, :-1, :]], axis=1), (n * t_len, hdim))
        self.grads["Wx"] = xp.reshape(xs, (n * t_len, d)).T @ da     # Σ_t x_tᵀ dA_t
        self.grads["Wh"] = h_prev.T @ da                              # Σ_t h_{t-1}ᵀ dA_t
        self.grads["b"] = xp.sum(da, axis=0)
        self.dh0, self.dc0 = dh, dc
        return xp.reshape(da @ wx.T, (n, t_len, d))

    # -- NumPy fast path: same equations, time-major buffers, in-place ufuncs ---------------
    def _forward_numpy(self, xs: Any, h0: Any, c0: Any) -> tuple[Any, Any, Any]:
        np_ = backend.namespace(xs)          # the numpy module itself
        n, t_len, d = xs.shape
        hdim = self.hidden_size
        dtype = xs.dtype
        wx, wh, b = self.params["Wx"], self.params["Wh"], self.params["b"]
        # σ(a) = ½ tanh(a/2) + ½: pre-scale the sigmoid columns by ½ so that one tanh call over
        # all 4H columns gives every gate; then u -> ½u + ½ on the sigmoid columns.
        scale = np_.full(4 * hdim, 0.5, dtype=dtype)
        scale[hdim:2 * hdim] = 1.0
        shift = np_.full(4 * hdim, 0.5, dtype=dtype)
        shift[hdim:2 * hdim] = 0.0
        wh_s = wh * scale
        x_tm = np_.ascontiguousarray(xs.transpose(1, 0, 2)).reshape(t_len * n, d)
        gates = np_.empty((t_len, n, 4 * hdim), dtype=dtype)   # pre-activations, then f, g, i, o
        backend.matmul(x_tm, wx * scale, out=gates.reshape(t_len * n, 4 * hdim), own_threads=False)
        gates += b * scale
        hs = np_.empty((t_len + 1, n, hdim), dtype=dtype)       # hs[0] = h0
        cs = np_.empty((t_len + 1, n, hdim), dtype=dtype)       # cs[0] = c0
        tcs = np_.empty((t_len, n, hdim), dtype=dtype)          # tanh(c_t)
        hs[0], cs[0] = h0, c0
        tmp4 = np_.empty((n, 4 * hdim), dtype=dtype)
        tmp = np_.empty((n, hdim), dtype=dtype)
        for t in range(t_len):
            a = gates[t]
            backend.matmul(hs[t], wh_s, out=tmp4, own_threads=False)
            a += tmp4
            np_.tanh(a, out=a)
            a *= scale
            a += shift
            f, g, i, o = a[:, :hdim], a[:, hdim:2 * hdim], a[:, 2 * hdim:3 * hdim], a[:, 3 * hdim:]
            c = cs[t + 1]
            np_.multiply(f, cs[t], out=c)
            np_.multiply(g, i, out=tmp)
            c += tmp
            np_.tanh(c, out=tcs[t])
            np_.multiply(o, tcs[t], out=hs[t + 1])
        self.cache = {"fast": True, "x_tm": x_tm, "gates": gates, "hs_tm": hs, "cs": cs, "tc": tcs,
                      "hs": hs[1:].transpose(1, 0, 2), "shape": (n, t_len, d)}
        return self.cache["hs"], hs[t_len], cs[t_len]

    def _backward_numpy(self, dhs: Any) -> Any:
        np_ = backend.namespace(dhs)
        cache = self.cache
        gates, hs, cs, tcs = cache["gates"], cache["hs_tm"], cache["cs"], cache["tc"]
        n, t_len, d = cache["shape"]
        hdim = self.hidden_size
        dtype = gates.dtype
        wh_t = np_.ascontiguousarray(self.params["Wh"].T)
        da_all = np_.empty_like(gates)
        dh = np_.zeros((n, hdim), dtype=dtype)
        dc = np_.zeros((n, hdim), dtype=dtype)
        tmp = np_.empty((n, hdim), dtype=dtype)
        tmp3 = np_.empty((n, 3 * hdim), dtype=dtype)
        for t in reversed(range(t_len)):
            a, da = gates[t], da_all[t]
            f, g, i, o = a[:, :hdim], a[:, hdim:2 * hdim], a[:, 2 * hdim:3 * hdim], a[:, 3 * hdim:]
            df, dg, di, do = da[:, :hdim], da[:, hdim:2 * hdim], da[:, 2 * hdim:3 * hdim], da[:, 3 * hdim:]
            tc = tcs[t]
            dh += dhs[:, t, :]
            np_.multiply(dh, tc, out=do)                 # do = dh ⊙ tanh(c)
            np_.multiply(tc, tc, out=tmp)                # dc += dh ⊙ o ⊙ (1 - tanh²c)
            np_.subtract(1.0, tmp, out=tmp)
            tmp *= o
            tmp *= dh
            dc += tmp
            np_.multiply(dc, cs[t], out=df)
            np_.multiply(dc, i, out=dg)
            np_.multiply(dc, g, out=di)
            dc *= f                                      # dc_prev
            sig = (da[:, :hdim], f, tmp3[:, :hdim]), (da[:, 2 * hdim:], a[:, 2 * hdim:], tmp3[:, hdim:])
            for dgate, gate, one_minus in sig:           # σ' = σ(1 - σ), no temporaries
                np_.subtract(1.0, gate, out=one_minus)
                dgate *= gate
                dgate *= one_minus
            np_.multiply(g, g, out=tmp)                  # tanh' = 1 - g²
            np_.subtract(1.0, tmp, out=tmp)
            dg *= tmp
            backend.matmul(da, wh_t, out=dh, own_threads=False)             # dh_prev = dA Whᵀ
        da2 = da_all.reshape(t_len * n, 4 * hdim)
        self.grads["Wx"] = backend.matmul(cache["x_tm"].T, da2, own_threads=False)
        self.grads["Wh"] = backend.matmul(hs[:-1].reshape(t_len * n, hdim).T, da2, own_threads=False)
        self.grads["b"] = np_.sum(da2, axis=0)
        self.dh0, self.dc0 = dh, dc
        dxs = backend.matmul(da2, self.params["Wx"].T, own_threads=False).reshape(t_len, n, d)
        return dxs.transpose(1, 0, 2)
