"""One Transformer encoder layer (Vaswani et al. 2017), post-norm as in the paper.

    z = norm1(x + dropout1(attn(x)))                         multi-head self-attention sub-layer
    y = norm2(z + dropout2(ffn2(dropout(ReLU(ffn1(z))))))    position-wise feed-forward sub-layer

attn: :class:`~dlcore.nn.MultiHeadAttention` (E, heads); ffn1: E -> ffn_dim, ffn2: ffn_dim -> E, the
same affine map at every step (:class:`~dlcore.nn.TimeAffine`); norm1, norm2: :class:`~dlcore.nn.LayerNorm`
(E). The dropouts are :class:`~dlcore.nn.Dropout` (identity with p = 0 or ``train=False``); the
attention weights themselves are not dropped. Backward runs the sub-layers in reverse, each
residual connection adding its upstream gradient to the branch's:

    dz = ffn1ᵀ(ReLU'(ffn2ᵀ(norm2ᵀ dy))) + norm2ᵀ dy,   dx = attnᵀ(norm1ᵀ dz) + norm1ᵀ dz

This is PyTorch's ``TransformerEncoderLayer(batch_first=True, norm_first=False, activation="relu")``.
"""

from __future__ import annotations

import numbers
from typing import Any

from dlcore import backend
from dlcore.nn import init as initializers
from dlcore.nn.activations import ReLU
from dlcore.nn.base import Layer
from dlcore.nn.composite import Composite
from dlcore.nn.layer_norm import LayerNorm
from dlcore.nn.multihead_attention import MultiHeadAttention
from dlcore.nn.regularization import Dropout
from dlcore.nn.time_layers import TimeAffine

__all__ = ["TransformerEncoderLayer"]


class TransformerEncoderLayer(Composite):
    """Post-norm encoder layer: x ← norm1(x + attn(x)); x ← norm2(x + ffn2(ReLU(ffn1(x)))).

    Parameters (a write-through view over the sub-layers): "attn.Wq", "attn.bq", ... "attn.bo",
    "norm1.gamma", "norm1.beta", "ffn1.W", "ffn1.b", "ffn2.W", "ffn2.b", "norm2.gamma", "norm2.beta".
    ``forward(x, train=True, *, causal=False, mask=None)`` with x (N, T, E) and the attention's
    ``causal``/``mask`` (N, T) (True at real steps); ``train`` switches the dropouts.
    ``weights`` is the attention's (N, heads, T, T) after forward.
    """

    has_train_mode = True
    key_example = "'attn.Wq', 'ffn1.W', 'norm1.gamma'"

    def __init__(self, embed_dim: int, num_heads: int, ffn_dim: int, dropout: float = 0.0, *,
                 init: str | initializers.Initializer = "xavier", rng: backend.Seed = None,
                 dtype: Any = "float32") -> None:
        super().__init__()
        gen = backend.default_rng(rng)
        self.attn = MultiHeadAttention(embed_dim, num_heads, init=init, rng=gen, dtype=dtype)
        self.embed_dim, self.num_heads = self.attn.embed_dim, self.attn.num_heads
        if isinstance(ffn_dim, bool) or not isinstance(ffn_dim, numbers.Integral) or ffn_dim <= 0:
            raise ValueError(f"TransformerEncoderLayer: expected a positive integer ffn_dim, got {ffn_dim!r}")
        self.ffn_dim = int(ffn_dim)
        self.dropout1 = Dropout(dropout, rng=gen)
        self.norm1 = LayerNorm(self.embed_dim, dtype=dtype)
        self.ffn1 = TimeAffine(self.embed_dim, self.ffn_dim, init=init, rng=gen, dtype=dtype)
        self.relu = ReLU()
        self.dropout = Dropout(dropout, rng=gen)
        self.ffn2 = TimeAffine(self.ffn_dim, self.embed_dim, init=init, rng=gen, dtype=dtype)
        self.dropout2 = Dropout(dropout, rng=gen)
        self.norm2 = LayerNorm(self.embed_dim, dtype=dtype)

    def named_children(self) -> dict[str, Layer]:
        names = ("attn", "dropout1", "norm1", "ffn1", "relu", "dropout", "ffn2", "dropout2", "norm2")
        return {name: getattr(self, name) for name in names}

    @property
    def weights(self) -> Any:
        return self.attn.weights

    def forward(self, x: Any, train: bool = True, *, causal: bool = False, mask: Any = None) -> Any:
        a = self.dropout1.forward(self.attn.forward(x, causal=causal, mask=mask), train=train)
        z = self.norm1.forward(x + a)                                        # z = norm1(x + attn(x))
        h = self.dropout.forward(self.relu.forward(self.ffn1.forward(z)), train=train)
        f = self.dropout2.forward(self.ffn2.forward(h), train=train)
        return self.norm2.forward(z + f)                                     # y = norm2(z + ffn(z))

    def backward(self, dy: Any) -> Any:
        ds = self.norm2.backward(dy)                                         # dL/d(z + f)
        dh = self.ffn2.backward(self.dropout2.backward(ds))
        dz = self.ffn1.backward(self.relu.backward(self.dropout.backward(dh))) + ds   # branch + residual
        dr = self.norm1.backward(dz)                                         # dL/d(x + a)
        return self.attn.backward(self.dropout1.backward(dr)) + dr           # branch + residual

    def __repr__(self) -> str:
        return (f"TransformerEncoderLayer(embed_dim={self.embed_dim}, num_heads={self.num_heads}, "
                f"ffn_dim={self.ffn_dim}, dropout={self.dropout.p})")
