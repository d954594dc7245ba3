"""Correct versions of chapter 6's layer exercises, for its closing experiments (kernel side).

A closing experiment grades the student's training function; the model it builds is made of the notebook's
earlier exercises (Embedding, LSTM, the time loss; AdditiveAttention; PositionalEncoding and the encoder
layer). While it trains, those names point to the classes below, so a mistake in an earlier exercise costs
that exercise's points and not the experiment's as well (CHAPTERS.md). Each class has the constructor the
notebook gives (same arguments, same random draws in the same order) and the equations of the exercise, so
a correct notebook trains exactly as it would with its own layers. The source scan forbids a student to
import this module; the kernel's dlcore still has no reference for these exercises.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def _sigmoid(a: Any) -> Any:
    return 0.5 * (1.0 + np.tanh(0.5 * a))


def _softmax(s: Any) -> Any:
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


class Embedding:
    """y = W[ids]; dW[v] = Σ dy over the positions where ids == v."""

    def __init__(self, vocab_size: int, dim: int, rng: Any = None, scale: float = 0.01) -> None:
        r = np.random.default_rng(rng)
        self.params = {"W": r.normal(0.0, scale, (vocab_size, dim))}
        self.grads: dict = {}

    def forward(self, ids: Any) -> Any:
        self.ids = np.asarray(ids)
        return self.params["W"][self.ids]

    def backward(self, dy: Any) -> None:
        w = self.params["W"]
        dw = np.zeros_like(w)
        np.add.at(dw, self.ids.reshape(-1), np.asarray(dy).reshape(-1, w.shape[1]))
        self.grads["W"] = dw


class LSTM:
    """A = x_t Wx + h Wh + b -> f, g, i, o (in this order); c = f c + g i; h = o tanh(c), from h = c = 0."""

    def __init__(self, input_size: int, hidden_size: int, rng: Any = None, forget_bias: float = 0.0) -> None:
        r = np.random.default_rng(rng)
        self.input_size, self.hidden_size = input_size, hidden_size
        self.params = {"Wx": r.normal(0.0, 1 / np.sqrt(input_size), (input_size, 4 * hidden_size)),
                       "Wh": r.normal(0.0, 1 / np.sqrt(hidden_size), (hidden_size, 4 * hidden_size)),
                       "b": np.zeros(4 * hidden_size)}
        self.params["b"][:hidden_size] = forget_bias
        self.grads: dict = {}

    def forward(self, xs: Any) -> Any:
        p, h_size = self.params, self.hidden_size
        n, t_len, _ = xs.shape
        h, c = np.zeros((n, h_size)), np.zeros((n, h_size))
        hs, self.steps = np.empty((n, t_len, h_size)), []
        xw = xs @ p["Wx"] + p["b"]
        for t in range(t_len):
            a = xw[:, t] + h @ p["Wh"]
            f, g = _sigmoid(a[:, :h_size]), np.tanh(a[:, h_size:2 * h_size])
            i, o = _sigmoid(a[:, 2 * h_size:3 * h_size]), _sigmoid(a[:, 3 * h_size:])
            h_prev, c_prev = h, c
            c = f * c + g * i
            tc = np.tanh(c)
            h = o * tc
            hs[:, t] = h
            self.steps.append((h_prev, c_prev, f, g, i, o, tc))
        self.xs = xs
        return hs

    def backward(self, dhs: Any) -> Any:
        p, xs = self.params, self.xs
        grads = {k: np.zeros_like(v) for k, v in p.items()}
        dxs = np.empty(xs.shape)
        dh = dc = np.zeros((xs.shape[0], self.hidden_size))
        for t in reversed(range(xs.shape[1])):
            h_prev, c_prev, f, g, i, o, tc = self.steps[t]
            dh = dhs[:, t] + dh
            dc = dc + dh * o * (1.0 - tc ** 2)
            da = np.concatenate([dc * c_prev * f * (1 - f), dc * i * (1 - g ** 2), dc * g * i * (1 - i),
                                 dh * tc * o * (1 - o)], axis=1)
            grads["Wx"] += xs[:, t].T @ da
            grads["Wh"] += h_prev.T @ da
            grads["b"] += da.sum(axis=0)
            dxs[:, t] = da @ p["Wx"].T
            dh, dc = da @ p["Wh"].T, dc * f
        self.grads = grads
        return dxs


class TimeSoftmaxCrossEntropy:
    """L = −(1/|V|) Σ over the real positions V of log softmax(s)[t]; ds = (p − onehot(t)) / |V|, 0 at padding."""

    def __init__(self, ignore_label: int = -1) -> None:
        self.ignore_label = ignore_label
        self.params: dict = {}
        self.grads: dict = {}

    def forward(self, scores: Any, ts: Any) -> float:
        mask = ts != self.ignore_label
        labels = np.where(mask, ts, 0)
        shifted = scores - scores.max(axis=-1, keepdims=True)
        logp = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))      # log softmax, never log(0)
        picked = np.take_along_axis(logp, labels[..., None], axis=-1)[..., 0]
        self.p, self.labels, self.mask, self.count = np.exp(logp), labels, mask, max(int(mask.sum()), 1)
        return float(-(picked * mask).sum() / self.count)

    def backward(self, dout: float = 1.0) -> Any:
        ds = self.p.copy()
        np.put_along_axis(ds, self.labels[..., None],
                          np.take_along_axis(ds, self.labels[..., None], axis=-1) - 1.0, axis=-1)
        return dout * ds * self.mask[..., None] / self.count


class AdditiveAttention:
    """s_t = vᵀ tanh(h_t W_enc + q W_dec); a = softmax(s) (masked steps −∞); context = Σ_t a_t h_t."""

    def __init__(self, enc_size: int, dec_size: int, attn_size: int, rng: Any = None) -> None:
        r = np.random.default_rng(rng)
        self.params = {"W_enc": r.normal(0.0, 1 / np.sqrt(enc_size), (enc_size, attn_size)),
                       "W_dec": r.normal(0.0, 1 / np.sqrt(dec_size), (dec_size, attn_size)),
                       "v": r.normal(0.0, 1 / np.sqrt(attn_size), attn_size)}
        self.grads: dict = {}
        self.weights: Any = None

    def forward(self, hs_enc: Any, h_dec: Any, mask: Any = None) -> Any:
        p, single = self.params, h_dec.ndim == 2
        q = h_dec[:, None, :] if single else h_dec                                    # (N, T2, Hd)
        z = np.tanh((hs_enc @ p["W_enc"])[:, None, :, :] + (q @ p["W_dec"])[:, :, None, :])  # (N, T2, T, A)
        s = z @ p["v"]
        if mask is not None:
            s = np.where(mask[:, None, :], s, -np.inf)
        a = _softmax(s)
        self.cache = (hs_enc, q, z, a, single)
        self.weights = a[:, 0] if single else a
        ctx = a @ hs_enc
        return ctx[:, 0] if single else ctx

    def backward(self, dcontext: Any) -> tuple[Any, Any]:
        hs, q, z, a, single = self.cache
        p = self.params
        dc = dcontext[:, None, :] if single else dcontext
        da = dc @ hs.transpose(0, 2, 1)
        ds = a * (da - np.sum(da * a, axis=-1, keepdims=True))
        dpre = ds[..., None] * p["v"] * (1.0 - z ** 2)
        du_enc, du_dec = dpre.sum(axis=1), dpre.sum(axis=2)
        self.grads = {"v": np.einsum("nuta,nut->a", z, ds), "W_enc": np.einsum("nte,nta->ea", hs, du_enc),
                      "W_dec": np.einsum("nud,nua->da", q, du_dec)}
        dhs = a.transpose(0, 2, 1) @ dc + du_enc @ p["W_enc"].T
        dq = du_dec @ p["W_dec"].T
        return dhs, (dq[:, 0] if single else dq)


class PositionalEncoding:
    """y = x + PE[:T]; PE[pos, 2i] = sin(pos / 10000^(2i/E)), PE[pos, 2i+1] = cos(pos / 10000^(2i/E))."""

    def __init__(self, embed_dim: int, max_len: int = 5000) -> None:
        self.params: dict = {}
        self.grads: dict = {}
        angle = np.arange(max_len)[:, None] / 10000.0 ** (np.arange(embed_dim) // 2 * 2 / embed_dim)
        self.pe = np.where(np.arange(embed_dim) % 2 == 0, np.sin(angle), np.cos(angle))

    def forward(self, x: Any) -> Any:
        return x + self.pe[:x.shape[1]]

    def backward(self, dy: Any) -> Any:
        return dy


class _LayerNorm:
    """y = γ (x − μ) / √(σ² + ε) + β over the last axis."""

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        self.eps = eps
        self.params = {"gamma": np.ones(num_features), "beta": np.zeros(num_features)}
        self.grads: dict = {}

    def forward(self, x: Any) -> Any:
        self.inv = 1.0 / np.sqrt(x.var(axis=-1, keepdims=True) + self.eps)
        self.xhat = (x - x.mean(axis=-1, keepdims=True)) * self.inv
        return self.params["gamma"] * self.xhat + self.params["beta"]

    def backward(self, dy: Any) -> Any:
        rows, xhat = tuple(range(dy.ndim - 1)), self.xhat
        self.grads = {"gamma": np.sum(dy * xhat, axis=rows), "beta": np.sum(dy, axis=rows)}
        d = dy * self.params["gamma"]
        return self.inv * (d - d.mean(axis=-1, keepdims=True) - xhat * np.mean(d * xhat, axis=-1, keepdims=True))


class _MultiHeadAttention:
    """Y = concat_j softmax(Q_j K_jᵀ / √d_k + M) V_j Wo + bo, Q = X Wq + bq, K = X Wk + bk, V = X Wv + bv."""

    def __init__(self, embed_dim: int, num_heads: int, rng: Any = None) -> None:
        r = np.random.default_rng(rng)
        self.num_heads = num_heads
        self.params: dict = {}
        for name in "qkvo":
            self.params["W" + name] = r.normal(0.0, 1 / np.sqrt(embed_dim), (embed_dim, embed_dim))
            self.params["b" + name] = np.zeros(embed_dim)
        self.grads: dict = {}
        self.weights: Any = None

    def _split(self, z: Any) -> Any:
        n, t, e = z.shape
        return z.reshape(n, t, self.num_heads, e // self.num_heads).transpose(0, 2, 1, 3)

    @staticmethod
    def _merge(z: Any) -> Any:
        n, h, t, d = z.shape
        return z.transpose(0, 2, 1, 3).reshape(n, t, h * d)

    def forward(self, x: Any, causal: bool = False) -> Any:
        p = self.params
        q, k, v = (self._split(x @ p["W" + c] + p["b" + c]) for c in "qkv")
        scale = 1.0 / math.sqrt(q.shape[-1])
        s = q @ k.transpose(0, 1, 3, 2) * scale
        if causal:
            s = np.where(np.tril(np.ones((x.shape[1],) * 2, dtype=bool)), s, -np.inf)
        self.weights = a = _softmax(s)
        heads = self._merge(a @ v)
        self.cache = (x, q, k, v, a, heads, scale)
        return heads @ p["Wo"] + p["bo"]

    def backward(self, dy: Any) -> Any:
        x, q, k, v, a, heads, scale = self.cache
        p = self.params
        self.grads = {"Wo": np.einsum("nte,ntf->ef", heads, dy), "bo": dy.sum(axis=(0, 1))}
        dheads = self._split(dy @ p["Wo"].T)
        da = dheads @ v.transpose(0, 1, 3, 2)
        ds = a * (da - np.sum(da * a, axis=-1, keepdims=True)) * scale
        dx = np.zeros_like(x)
        for c, dz in (("q", ds @ k), ("k", ds.transpose(0, 1, 3, 2) @ q), ("v", a.transpose(0, 1, 3, 2) @ dheads)):
            dz = self._merge(dz)
            self.grads["W" + c] = np.einsum("nte,ntf->ef", x, dz)
            self.grads["b" + c] = dz.sum(axis=(0, 1))
            dx += dz @ p["W" + c].T
        return dx


class TransformerEncoderLayer:
    """Z = LN1(X + MHA(X)); Y = LN2(Z + ReLU(Z W1 + b1) W2 + b2), with dlcore's TimeAffine for W1 and W2 (as
    the notebook's constructor has it)."""

    def __init__(self, embed_dim: int, num_heads: int, ffn_dim: int, rng: Any = None) -> None:
        from dlcore.nn import TimeAffine  # not an exercise: the kernel's dlcore has it, as the notebook does

        r = np.random.default_rng(rng)
        self.parts = {"attn": _MultiHeadAttention(embed_dim, num_heads, rng=r), "norm1": _LayerNorm(embed_dim),
                      "ffn1": TimeAffine(embed_dim, ffn_dim, rng=r, dtype="float64"),
                      "ffn2": TimeAffine(ffn_dim, embed_dim, rng=r, dtype="float64"), "norm2": _LayerNorm(embed_dim)}

    @property
    def params(self) -> dict:
        return {f"{n}.{k}": v for n, part in self.parts.items() for k, v in part.params.items()}

    @property
    def grads(self) -> dict:
        return {f"{n}.{k}": v for n, part in self.parts.items() for k, v in part.grads.items()}

    @property
    def weights(self) -> Any:
        return self.parts["attn"].weights

    def forward(self, x: Any, causal: bool = False) -> Any:
        p = self.parts
        z = p["norm1"].forward(x + p["attn"].forward(x, causal=causal))
        u = p["ffn1"].forward(z)
        self.mask = u > 0
        return p["norm2"].forward(z + p["ffn2"].forward(np.where(self.mask, u, 0.0)))

    def backward(self, dy: Any) -> Any:
        p = self.parts
        d = p["norm2"].backward(dy)
        dz = d + p["ffn1"].backward(np.where(self.mask, p["ffn2"].backward(d), 0.0))
        d = p["norm1"].backward(dz)
        return d + p["attn"].backward(d)


#: The layers a closing experiment's model may take from the notebook, by the names the notebook gives them.
STANDINS = {cls.__name__: cls for cls in (Embedding, LSTM, TimeSoftmaxCrossEntropy, AdditiveAttention,
                                          PositionalEncoding, TransformerEncoderLayer)}
