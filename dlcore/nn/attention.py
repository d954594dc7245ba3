"""Attention over the encoder's states: weights a = softmax(scores), context = Σ_t a_t h^enc_t.

For each decoder query q (a decoder state) and every encoder state h_t (t = 1..T):

    DotAttention (Luong):        s_t = q · h_t            (× 1/√H with ``scaled=True``)
    AdditiveAttention (Bahdanau): s_t = vᵀ tanh(h_t W_enc + q W_dec)
    a = softmax(s) over t,   context = Σ_t a_t h_t

Backward, with dc = dL/dcontext:  da_t = dc · h_t,  dh_t += a_t dc,  ds = a ⊙ (da - Σ_t a_t da_t)
(the softmax Jacobian), then through the score function to h_t, q and the parameters.

Shapes: ``hs_enc`` (N, T, H_enc); the query ``h_dec`` is (N, H_dec) for one decoder step or
(N, T2, H_dec) for a whole decoded sequence; the context has the query's shape with H_enc features.
After forward, ``weights`` holds a: (N, T2, T), or (N, T) for a 2-D query — ready for a heat map.
An optional ``mask`` (N, T) of booleans marks the real (non-padding) encoder steps; masked steps get weight 0.
"""

from __future__ import annotations

import math
from typing import Any

from dlcore import backend
from dlcore.nn import init as initializers
from dlcore.nn.base import Layer, check_array, check_dtype_match
from dlcore.nn.functional import _describe, softmax

__all__ = ["DotAttention", "AdditiveAttention"]


def _check_inputs(layer: str, hs: Any, q: Any, enc_size: int | None, dec_size: int | None) -> None:
    check_array(layer, "hs_enc", hs, ndim=3)
    check_array(layer, "h_dec", q, ndim=(2, 3))
    if hs.shape[1] == 0:
        raise ValueError(f"{layer}: got an encoder sequence of length 0 ({_describe(hs)}); expected at least one step")
    if q.ndim == 3 and q.shape[1] == 0:
        raise ValueError(f"{layer}: got a decoder sequence of length 0 ({_describe(q)}); expected at least one step")
    if q.shape[0] != hs.shape[0]:
        raise ValueError(f"{layer}: hs_enc and h_dec have different batch sizes ({hs.shape[0]} and {q.shape[0]})")
    if enc_size is not None and hs.shape[-1] != enc_size:
        raise ValueError(f"{layer}: expected hs_enc with {enc_size} features, got {_describe(hs)}")
    if dec_size is not None and q.shape[-1] != dec_size:
        raise ValueError(f"{layer}: expected h_dec with {dec_size} features, got {_describe(q)}")
    if backend.dtype_name(hs.dtype) != backend.dtype_name(q.dtype):
        raise TypeError(f"{layer}: hs_enc and h_dec have different dtypes ({backend.dtype_name(hs.dtype)} and "
                        f"{backend.dtype_name(q.dtype)})")
    backend.namespace(hs, q, where=f"{layer}.forward")


def _masked_softmax(layer: str, s: Any, mask: Any, xp: Any) -> Any:
    """softmax over the last axis of s (N, T2, T); positions where mask (N, T) is False get weight 0."""
    if mask is not None:
        if not (hasattr(mask, "shape") and tuple(mask.shape) == (s.shape[0], s.shape[2])):
            raise ValueError(f"{layer}: expected mask of shape ({s.shape[0]}, {s.shape[2]}) (batch, encoder steps), "
                             f"got {_describe(mask)}")
        mask = xp.astype(mask, xp.bool)
        if not bool(xp.all(xp.any(mask, axis=1))):
            raise ValueError(f"{layer}: the mask hides every encoder step of some sequence; keep at least one")
        s = xp.where(mask[:, None, :], s, xp.asarray(-math.inf, dtype=s.dtype))
    return softmax(s)                                   # exp(-inf) = 0 at masked steps


def _swap(x: Any, xp: Any) -> Any:
    return xp.permute_dims(x, (0, 2, 1))


class _AttentionBase(Layer):
    def _begin(self, hs: Any, q: Any) -> tuple[Any, Any, bool]:
        xp = backend.namespace(hs, q)
        single = q.ndim == 2
        return xp, (q[:, None, :] if single else q), single

    def _weighted(self, hs: Any, q3: Any, s: Any, mask: Any, single: bool, xp: Any) -> Any:
        a = _masked_softmax(type(self).__name__, s, mask, xp)
        self.a = a
        self.weights = a[:, 0, :] if single else a
        ctx = a @ hs                                   # Σ_t a_t h_t
        return ctx[:, 0, :] if single else ctx

    def _back_weighted(self, dctx: Any) -> tuple[Any, Any, Any, Any]:
        """(xp, dc (N, T2, H), dhs from the weighted sum, ds = dL/dscores)."""
        if self.cache is None:
            raise RuntimeError(f"{type(self).__name__}: backward called before forward; call forward first")
        hs, q3, single = self.cache[:3]
        xp = backend.namespace(dctx)
        want = (hs.shape[0], hs.shape[2]) if single else (hs.shape[0], q3.shape[1], hs.shape[2])
        if tuple(dctx.shape) != want:
            raise ValueError(f"{type(self).__name__}: expected dcontext of shape {want}, got {_describe(dctx)}")
        dc = dctx[:, None, :] if single else dctx
        a = self.a
        da = dc @ _swap(hs, xp)                          # da_t = dc · h_t
        dhs = _swap(a, xp) @ dc                          # dh_t += a_t dc
        ds = a * (da - xp.sum(da * a, axis=-1, keepdims=True))
        return xp, dc, dhs, ds


class DotAttention(_AttentionBase):
    """s_t = q · h_t (÷ √H when ``scaled``);  a = softmax(s);  context = Σ_t a_t h_t.  No parameters.

    ``forward(hs_enc, h_dec, mask=None)`` -> context; ``backward(dcontext)`` -> (dhs_enc, dh_dec).
    """

    def __init__(self, *, scaled: bool = False) -> None:
        super().__init__()
        self.scaled = bool(scaled)
        self.cache: Any = None
        self.a: Any = None
        self.weights: Any = None

    def forward(self, hs_enc: Any, h_dec: Any, mask: Any = None) -> Any:
        _check_inputs("DotAttention", hs_enc, h_dec, None, None)
        if h_dec.shape[-1] != hs_enc.shape[-1]:
            raise ValueError(f"DotAttention: query and encoder states need the same size, got h_dec with "
                             f"{h_dec.shape[-1]} and hs_enc with {hs_enc.shape[-1]} features")
        xp, q3, single = self._begin(hs_enc, h_dec)
        c = 1.0 / math.sqrt(hs_enc.shape[-1]) if self.scaled else 1.0
        s = (q3 @ _swap(hs_enc, xp)) * c                 # (N, T2, T)
        self.cache = (hs_enc, q3, single, c)
        return self._weighted(hs_enc, q3, s, mask, single, xp)

    def backward(self, dcontext: Any) -> tuple[Any, Any]:
        xp, dc, dhs, ds = self._back_weighted(dcontext)
        hs, q3, single, c = self.cache
        ds = ds * c
        dq = ds @ hs                                     # ∂s/∂q = h_t
        dhs = dhs + _swap(ds, xp) @ q3                   # ∂s/∂h_t = q
        return dhs, (dq[:, 0, :] if single else dq)

    def __repr__(self) -> str:
        return f"DotAttention(scaled={self.scaled})"


class AdditiveAttention(_AttentionBase):
    """Bahdanau attention: s_t = vᵀ tanh(h_t W_enc + q W_dec); a = softmax(s); context = Σ_t a_t h_t.

    Parameters W_enc (enc_size, attn_size), W_dec (dec_size, attn_size), v (attn_size,).
    ``forward(hs_enc, h_dec, mask=None)`` -> context; ``backward(dcontext)`` -> (dhs_enc, dh_dec).
    Memory: the tanh layer has N·T2·T·attn_size entries.
    """

    def __init__(self, enc_size: int, dec_size: int, attn_size: int, *, init: Any = "xavier",
                 rng: backend.Seed = None, dtype: Any = "float32") -> None:
        super().__init__()
        for what, size in (("enc_size", enc_size), ("dec_size", dec_size), ("attn_size", attn_size)):
            if int(size) != size or size <= 0:
                raise ValueError(f"AdditiveAttention: expected a positive integer {what}, got {size!r}")
        self.enc_size, self.dec_size, self.attn_size = int(enc_size), int(dec_size), int(attn_size)
        gen = backend.default_rng(rng)
        make = initializers.get(init)
        self.params = {
            "W_enc": make((self.enc_size, self.attn_size), gen, dtype),
            "W_dec": make((self.dec_size, self.attn_size), gen, dtype),
            "v": backend.normal(gen, (self.attn_size,), scale=1.0 / math.sqrt(self.attn_size), dtype=dtype),
        }
        self.cache: Any = None
        self.a: Any = None
        self.weights: Any = None

    def forward(self, hs_enc: Any, h_dec: Any, mask: Any = None) -> Any:
        _check_inputs("AdditiveAttention", hs_enc, h_dec, self.enc_size, self.dec_size)
        check_dtype_match("AdditiveAttention", hs_enc, self.params)
        backend.namespace(hs_enc, *self.params.values(), where="AdditiveAttention.forward")
        xp, q3, single = self._begin(hs_enc, h_dec)
        p = self.params
        u_enc = hs_enc @ p["W_enc"]                      # (N, T, A)
        u_dec = q3 @ p["W_dec"]                          # (N, T2, A)
        z = xp.tanh(u_dec[:, :, None, :] + u_enc[:, None, :, :])   # (N, T2, T, A)
        s = xp.matmul(z, p["v"])                         # vᵀ z: (N, T2, T)
        self.cache = (hs_enc, q3, single, z)
        return self._weighted(hs_enc, q3, s, mask, single, xp)

    def backward(self, dcontext: Any) -> tuple[Any, Any]:
        xp, dc, dhs, ds = self._back_weighted(dcontext)
        hs, q3, single, z = self.cache
        n, t, he = hs.shape
        t2, a_size = q3.shape[1], self.attn_size
        p = self.params
        self.grads["v"] = xp.tensordot(ds, z, axes=([0, 1, 2], [0, 1, 2]))     # Σ ds_t z_t
        dpre = ds[..., None] * p["v"] * (1.0 - z * z)   # through vᵀ tanh(·)
        du_enc = xp.sum(dpre, axis=1)                    # (N, T, A): each h_t meets every query
        du_dec = xp.sum(dpre, axis=2)                    # (N, T2, A)
        self.grads["W_enc"] = xp.reshape(hs, (n * t, he)).T @ xp.reshape(du_enc, (n * t, a_size))
        self.grads["W_dec"] = xp.reshape(q3, (n * t2, self.dec_size)).T @ xp.reshape(du_dec, (n * t2, a_size))
        dhs = dhs + du_enc @ p["W_enc"].T
        dq = du_dec @ p["W_dec"].T
        return dhs, (dq[:, 0, :] if single else dq)

    def __repr__(self) -> str:
        return f"AdditiveAttention(enc_size={self.enc_size}, dec_size={self.dec_size}, attn_size={self.attn_size})"
