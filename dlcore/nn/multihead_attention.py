"""Multi-head scaled dot-product attention (Vaswani et al. 2017), self- or cross-attention.

Queries come from x (N, T, E); keys and values from the context c (N, Tk, E), which is x itself
for self-attention. With h heads of d = E / h features each (head j uses features jd .. (j+1)d - 1):

    Q = x Wq + bq,   K = c Wk + bk,   V = c Wv + bv               (N, T|Tk, E), split into h heads
    S_j = Q_j K_jᵀ / √d                                            (N, h, T, Tk)
    A_j = softmax(S_j) over the keys,  -∞ (weight 0) where a key is hidden
    O_j = A_j V_j,   y = concat_j(O_j) Wo + bo                     (N, T, E)

A key is hidden by ``mask`` (N, Tk), True at the real steps as in :mod:`dlcore.nn.attention`
(padding is False), and with ``causal=True`` key s is hidden from query t when s > t (no peeking
at later steps). Backward, with dO_j = (dy Woᵀ)_j:

    dA_j = dO_j V_jᵀ,   dV_j = A_jᵀ dO_j,   dS_j = A_j ⊙ (dA_j - Σ_s A_j,s dA_j,s) / √d
    dQ_j = dS_j K_j,    dK_j = dS_jᵀ Q_j
    dWo = concat(O)ᵀ dy, dWq = xᵀ dQ, dWk = cᵀ dK, dWv = cᵀ dV  (summed over N and time), db = Σ d(·)
    dx = dQ Wqᵀ (+ dK Wkᵀ + dV Wvᵀ for self-attention),   dc = dK Wkᵀ + dV Wvᵀ

dbk = Σ dK is exactly 0: bk adds the same q_t · bk to every score of query t, which softmax ignores
(Σ_s dS_ts = 0). The layer stores exact zeros; a finite-difference check (or an implementation that
sums dK) sees only round-off there, so compare dbk with an absolute tolerance, never a relative one.

Weights are in the library's (in, out) layout; PyTorch's ``in_proj_weight`` is [Wq; Wk; Wv]ᵀ stacked,
(3E, E) in (out, in) layout, and ``out_proj.weight`` is Woᵀ.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from dlcore import backend
from dlcore.nn import init as initializers
from dlcore.nn.base import Layer, check_array, check_dtype_match
from dlcore.nn.functional import _check_dy, _describe, softmax

__all__ = ["MultiHeadAttention"]

_NAME = "MultiHeadAttention"


def _positive_int(what: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"{_NAME}: expected a positive integer {what}, got {value!r}")
    return int(value)


class MultiHeadAttention(Layer):
    """y = concat_j softmax(Q_j K_jᵀ / √d) V_j · Wo + bo with h = ``num_heads`` heads; see the module docstring.

    Parameters Wq, Wk, Wv, Wo (E, E) and bq, bk, bv, bo (E,). ``forward(x, context=None, *, causal=False,
    mask=None)`` returns (N, T, E); ``backward(dy)`` returns dx for self-attention and (dx, dcontext)
    for cross-attention. After forward, ``weights`` holds A (N, heads, T, Tk) for heat maps.
    """

    def __init__(self, embed_dim: int, num_heads: int, *, init: Any = "xavier", rng: backend.Seed = None,
                 dtype: Any = "float32") -> None:
        super().__init__()
        self.embed_dim = _positive_int("embed_dim", embed_dim)
        self.num_heads = _positive_int("num_heads", num_heads)
        if self.embed_dim % self.num_heads:
            raise ValueError(f"{_NAME}: embed_dim ({self.embed_dim}) must be divisible by num_heads "
                             f"({self.num_heads}); each head gets embed_dim / num_heads features")
        self.head_dim = self.embed_dim // self.num_heads
        gen = backend.default_rng(rng)
        make = initializers.get(init)
        e = self.embed_dim
        self.params = {name: make((e, e), gen, dtype) for name in ("Wq", "Wk", "Wv", "Wo")}
        for name in ("bq", "bk", "bv", "bo"):
            self.params[name] = initializers.zeros((e,), dtype=dtype)
        self.cache: Any = None
        self.out: Any = None
        self.weights: Any = None

    # -- helpers -------------------------------------------------------------------------------
    def _split(self, z: Any, xp: Any) -> Any:
        """(N, T, E) -> (N, h, T, d)."""
        n, t, _ = z.shape
        return xp.permute_dims(xp.reshape(z, (n, t, self.num_heads, self.head_dim)), (0, 2, 1, 3))

    def _merge(self, z: Any, xp: Any) -> Any:
        """(N, h, T, d) -> (N, T, E)."""
        n, _, t, _ = z.shape
        return xp.reshape(xp.permute_dims(z, (0, 2, 1, 3)), (n, t, self.embed_dim))

    def _check(self, x: Any, context: Any, causal: Any, mask: Any) -> None:
        e = self.embed_dim
        check_array(_NAME, "x", x, ndim=3, last_dim=e)
        if x.shape[1] == 0:
            raise ValueError(f"{_NAME}: got a sequence of length 0 ({_describe(x)}); expected at least one step")
        if context is not None:
            check_array(_NAME, "context", context, ndim=3, last_dim=e)
            if context.shape[0] != x.shape[0]:
                raise ValueError(f"{_NAME}: x and context have different batch sizes ({x.shape[0]} and "
                                 f"{context.shape[0]}); expected context of shape ({x.shape[0]}, Tk, {e})")
            if context.shape[1] == 0:
                raise ValueError(f"{_NAME}: got a context of length 0 ({_describe(context)}); expected at least "
                                 "one step")
            check_dtype_match(_NAME, context, self.params)
        check_dtype_match(_NAME, x, self.params)
        if not isinstance(causal, bool):
            raise TypeError(f"{_NAME}: expected causal to be True or False, got {causal!r}")
        if mask is not None:
            tk = (x if context is None else context).shape[1]
            if not (hasattr(mask, "shape") and hasattr(mask, "dtype")) or tuple(mask.shape) != (x.shape[0], tk):
                raise ValueError(f"{_NAME}: expected mask of shape ({x.shape[0]}, {tk}) (batch, key steps; True at "
                                 f"real steps, False at padding), got {_describe(mask)}")

    def _allowed(self, t: int, tk: int, causal: bool, mask: Any, xp: Any, device: Any) -> Any:
        """Boolean array broadcastable to (N, h, T, Tk): True where query t may attend key s; None if all may."""
        allowed = None
        if mask is not None:
            allowed = xp.astype(mask, xp.bool)[:, None, None, :]             # hide padded keys
        if causal:
            later = xp.arange(tk, device=device)[None, :] <= xp.arange(t, device=device)[:, None]   # s <= t
            allowed = later if allowed is None else allowed & later
        if allowed is not None and not bool(xp.all(xp.any(allowed, axis=-1))):
            raise ValueError(f"{_NAME}: the mask{' with causal=True' if causal else ''} hides every key from some "
                             "query; keep at least one real step visible to each query (the first step, with "
                             "causal=True)")
        return allowed

    # -- protocol ------------------------------------------------------------------------------
    def forward(self, x: Any, context: Any = None, *, causal: bool = False, mask: Any = None) -> Any:
        self._check(x, context, causal, mask)
        p = self.params
        cross = context is not None
        c = context if cross else x
        xp = backend.namespace(x, c, mask, *p.values(), where=f"{_NAME}.forward")
        q = self._split(x @ p["Wq"] + p["bq"], xp)                            # (N, h, T, d)
        k = self._split(c @ p["Wk"] + p["bk"], xp)                            # (N, h, Tk, d)
        v = self._split(c @ p["Wv"] + p["bv"], xp)
        scale = 1.0 / math.sqrt(self.head_dim)
        s = (q @ xp.permute_dims(k, (0, 1, 3, 2))) * scale                    # S = Q Kᵀ / √d
        allowed = self._allowed(x.shape[1], c.shape[1], causal, mask, xp, backend.device_of(x))
        if allowed is not None:
            s = xp.where(allowed, s, xp.asarray(-math.inf, dtype=s.dtype))
        a = softmax(s)                                                         # exp(-inf) = 0 where hidden
        o = self._merge(a @ v, xp)                                            # concat_j A_j V_j
        self.weights = a
        self.cache = (x, c, cross, q, k, v, a, o, scale)
        self.out = o @ p["Wo"] + p["bo"]
        return self.out

    def backward(self, dy: Any) -> Any:
        _check_dy(_NAME, dy, self.out)
        x, c, cross, q, k, v, a, o, scale = self.cache
        xp = backend.namespace(dy)
        p, e = self.params, self.embed_dim
        n, t, _ = x.shape
        tk = c.shape[1]

        def wgrad(inp: Any, d: Any, rows: int) -> Any:                        # Σ_{n,t} inpᵀ d
            return xp.reshape(inp, (rows, e)).T @ xp.reshape(d, (rows, e))

        self.grads["Wo"] = wgrad(o, dy, n * t)                                # dWo = Oᵀ dy
        self.grads["bo"] = xp.sum(dy, axis=(0, 1))
        do = self._split(dy @ p["Wo"].T, xp)                                  # (N, h, T, d)
        da = do @ xp.permute_dims(v, (0, 1, 3, 2))                            # dA = dO Vᵀ
        dv = xp.permute_dims(a, (0, 1, 3, 2)) @ do                            # dV = Aᵀ dO
        ds = a * (da - xp.sum(a * da, axis=-1, keepdims=True)) * scale        # softmax Jacobian, then 1/√d
        dq = self._merge(ds @ k, xp)                                          # dQ = dS K
        dk = self._merge(xp.permute_dims(ds, (0, 1, 3, 2)) @ q, xp)           # dK = dSᵀ Q
        dv = self._merge(dv, xp)
        self.grads["Wq"], self.grads["bq"] = wgrad(x, dq, n * t), xp.sum(dq, axis=(0, 1))
        self.grads["Wk"], self.grads["bk"] = wgrad(c, dk, n * tk), xp.zeros_like(p["bk"])   # dbk = 0, see above
        self.grads["Wv"], self.grads["bv"] = wgrad(c, dv, n * tk), xp.sum(dv, axis=(0, 1))
        dx = dq @ p["Wq"].T
        dc = dk @ p["Wk"].T + dv @ p["Wv"].T
        return (dx, dc) if cross else dx + dc

    def __repr__(self) -> str:
        return f"MultiHeadAttention(embed_dim={self.embed_dim}, num_heads={self.num_heads})"
