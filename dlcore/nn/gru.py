"""Gated recurrent unit (Cho et al. 2014), in the form of *Deep Learning from Scratch 2* (appendix).

One step, gate order **z, r, h̃** in the column blocks of Wx (D, 3H), Wh (H, 3H), b (3H,):

    z  = σ(x Wx_z + h_prev Wh_z + b_z)              update gate
    r  = σ(x Wx_r + h_prev Wh_r + b_r)              reset gate
    h̃  = tanh(x Wx_h + (r ⊙ h_prev) Wh_h + b_h)     candidate
    h_next = (1 - z) ⊙ h_prev + z ⊙ h̃

(PyTorch's GRU puts the reset gate after the product, r ⊙ (h_prev Wh_h + b_hn), and swaps the roles
of z and 1 - z; the two are different models.) Backward of one step, dh = dL/dh_next:

    dh̃ = dh ⊙ z,   dz = dh ⊙ (h̃ - h_prev),   dh_prev = dh ⊙ (1 - z)
    da_h = dh̃ ⊙ (1 - h̃²),   d(r ⊙ h_prev) = da_h Wh_hᵀ,   dr = d(r ⊙ h_prev) ⊙ h_prev
    dh_prev += d(r ⊙ h_prev) ⊙ r + [da_z, da_r] [Wh_z, Wh_r]ᵀ   with da_z = dz z(1-z), da_r = dr r(1-r)
    dWh_h += (r ⊙ h_prev)ᵀ da_h,   dWh_zr += h_prevᵀ [da_z, da_r],   dWx += xᵀ dA,   db += Σ_n dA
"""

from __future__ import annotations

from typing import Any

from dlcore import backend
from dlcore.nn.base import Layer, check_array, check_dtype_match
from dlcore.nn.functional import _check_dy, sigmoid_tanh
from dlcore.nn.rnn import RecurrentBase, check_sequence, check_state, recurrent_params

__all__ = ["GRUCell", "GRU"]


def gru_step(xw: Any, h_prev: Any, wh: Any, hidden: int, xp: Any) -> tuple[Any, tuple[Any, Any, Any, Any]]:
    """h_next and (z, r, h̃, r ⊙ h_prev) from the input projection xw = x Wx + b (N, 3H)."""
    h = hidden
    zr = sigmoid_tanh(xw[:, :2 * h] + h_prev @ wh[:, :2 * h])
    z, r = zr[:, :h], zr[:, h:]
    rh = r * h_prev
    h_tilde = xp.tanh(xw[:, 2 * h:] + rh @ wh[:, 2 * h:])
    return h_prev + z * (h_tilde - h_prev), (z, r, h_tilde, rh)


def gru_step_backward(dh: Any, h_prev: Any, saved: tuple[Any, Any, Any, Any], wh: Any, hidden: int,
                      xp: Any) -> tuple[Any, Any]:
    """(dA (N, 3H) = dL/d(pre-activations [z, r, h̃]), dh_prev) for one step."""
    h = hidden
    z, r, h_tilde, _ = saved
    da_h = dh * z * (1.0 - h_tilde * h_tilde)
    dz = dh * (h_tilde - h_prev)
    drh = da_h @ wh[:, 2 * h:].T
    dr = drh * h_prev
    da_zr = xp.concat([dz * z * (1.0 - z), dr * r * (1.0 - r)], axis=1)
    dh_prev = dh * (1.0 - z) + drh * r + da_zr @ wh[:, :2 * h].T
    return xp.concat([da_zr, da_h], axis=1), dh_prev


def gru_weight_grads(x: Any, h_prev: Any, rh: Any, da: Any, hidden: int, xp: Any) -> dict[str, Any]:
    """dWx = xᵀ dA, dWh = [h_prevᵀ dA_zr, (r ⊙ h_prev)ᵀ dA_h], db = Σ_n dA (rows: samples, or samples × time)."""
    h = hidden
    return {
        "Wx": x.T @ da,
        "Wh": xp.concat([h_prev.T @ da[:, :2 * h], rh.T @ da[:, 2 * h:]], axis=1),
        "b": xp.sum(da, axis=0),
    }


class GRUCell(Layer):
    """One GRU step: ``forward(x, h_prev)`` -> h_next; ``backward(dh_next)`` -> (dx, dh_prev)."""

    def __init__(self, input_size: int, hidden_size: int, *, init: Any = "lecun", rng: backend.Seed = None,
                 dtype: Any = "float32") -> None:
        super().__init__()
        self.params = recurrent_params("GRUCell", input_size, hidden_size, 3, init, rng, dtype)
        self.input_size, self.hidden_size = int(input_size), int(hidden_size)
        self.cache: Any = None

    def forward(self, x: Any, h_prev: Any) -> Any:
        check_array("GRUCell", "x", x, ndim=2, last_dim=self.input_size)
        check_dtype_match("GRUCell", x, self.params)
        check_state("GRUCell", "h_prev", h_prev, x.shape[0], self.hidden_size, x)
        xp = backend.namespace(x, h_prev, *self.params.values(), where="GRUCell.forward")
        p = self.params
        h_next, saved = gru_step(x @ p["Wx"] + p["b"], h_prev, p["Wh"], self.hidden_size, xp)
        self.cache = (x, h_prev, saved, h_next)
        return h_next

    def backward(self, dh_next: Any) -> tuple[Any, Any]:
        if self.cache is None:
            raise RuntimeError("GRUCell: backward called before forward; call forward first")
        x, h_prev, saved, h_next = self.cache
        _check_dy("GRUCell", dh_next, h_next)
        xp = backend.namespace(dh_next)
        da, dh_prev = gru_step_backward(dh_next, h_prev, saved, self.params["Wh"], self.hidden_size, xp)
        self.grads.update(gru_weight_grads(x, h_prev, saved[3], da, self.hidden_size, xp))
        return da @ self.params["Wx"].T, dh_prev

    def __repr__(self) -> str:
        return f"GRUCell(input_size={self.input_size}, hidden_size={self.hidden_size})"


class GRU(RecurrentBase):
    """GRU over whole sequences: ``forward(xs, h0=None)`` (N, T, D) -> hs (N, T, H); see the module docstring.

    ``backward(dhs)`` returns dxs, stores the parameter gradients (summed over time) and ``dh0``.
    """

    n_gates = 3

    def forward(self, xs: Any, h0: Any = None) -> Any:
        check_sequence("GRU", xs, self.input_size, self.params)
        xp = backend.namespace(xs)
        n, t_len, d = xs.shape
        hdim = self.hidden_size
        wx, wh, b = self.params["Wx"], self.params["Wh"], self.params["b"]
        h = h0 = self._initial("h", h0, xs)
        xw = xp.reshape(xp.reshape(xs, (n * t_len, d)) @ wx + b, (n, t_len, 3 * hdim))
        hs, saved = [], []
        for t in range(t_len):
            h, s = gru_step(xw[:, t, :], h, wh, hdim, xp)
            hs.append(h)
            saved.append(s)
        hs = xp.stack(hs, axis=1)
        self.cache = {"xs": xs, "h0": h0, "hs": hs, "saved": saved}
        self._keep(h=h)
        return hs

    def backward(self, dhs: Any) -> Any:
        self._check_dhs(dhs)
        xs, h0, hs, saved = self.cache["xs"], self.cache["h0"], self.cache["hs"], self.cache["saved"]
        xp = backend.namespace(dhs)
        n, t_len, d = xs.shape
        hdim = self.hidden_size
        wx, wh = self.params["Wx"], self.params["Wh"]
        h_prev = xp.concat([h0[:, None, :], hs[:, :-1, :]], axis=1)
        dh = xp.zeros_like(h0)
        das = [None] * t_len
        for t in reversed(range(t_len)):
            das[t], dh = gru_step_backward(dhs[:, t, :] + dh, h_prev[:, t, :], saved[t], wh, hdim, xp)
        da = xp.reshape(xp.stack(das, axis=1), (n * t_len, 3 * hdim))
        rh = xp.reshape(xp.stack([s[3] for s in saved], axis=1), (n * t_len, hdim))
        self.grads.update(gru_weight_grads(xp.reshape(xs, (n * t_len, d)), xp.reshape(h_prev, (n * t_len, hdim)),
                                           rh, da, hdim, xp))
        self.dh0 = dh
        return xp.reshape(da @ wx.T, (n, t_len, d))
