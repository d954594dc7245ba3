"""Cross-check of the Transformer layers against torch.nn (float64, forward, input and parameter gradients).

Conventions mapped here (see the docstrings in dlcore/nn/multihead_attention.py and transformer.py):

- Weights: dlcore keeps (in, out) matrices, y = x W + b; torch.nn.Linear keeps (out, in), y = x Wᵀ + b.
  MultiheadAttention packs the three input projections: ``in_proj_weight`` = [Wqᵀ; Wkᵀ; Wvᵀ] (3E, E),
  ``in_proj_bias`` = [bq; bk; bv]; ``out_proj.weight`` = Woᵀ.
- Masks: dlcore's ``mask`` is True at REAL steps; torch's ``key_padding_mask`` is True at PADDED steps
  (so it is ``~mask``). A causal layer is torch's boolean ``attn_mask`` True above the diagonal.
- ``weights`` (N, heads, T, Tk) is torch's ``need_weights=True, average_attn_weights=False`` output.
- TransformerEncoderLayer: ``batch_first=True, norm_first=False, activation="relu", dropout=0.0``,
  ``self_attn`` = attn, ``linear1``/``linear2`` = ffn1/ffn2, ``norm1``/``norm2`` = norm1/norm2.
The torch modules stay in training mode (identical with dropout 0) so that no inference fast path
replaces the reference computation.
"""

from __future__ import annotations

import numpy as np
import pytest

from dlcore import nn

torch = pytest.importorskip("torch", reason="PyTorch not installed: the cross-check of LayerNorm, MultiHeadAttention "
                                            "and TransformerEncoderLayer against torch.nn is skipped")

pytestmark = pytest.mark.torch

RTOL, ATOL = 1e-10, 1e-12          # float64 on both sides: only summation order differs


def _t(a):
    return torch.from_numpy(np.ascontiguousarray(a, dtype="float64"))


def _close(ours, theirs, what):
    theirs = theirs.detach().numpy() if hasattr(theirs, "detach") else theirs
    np.testing.assert_allclose(np.asarray(ours), theirs, rtol=RTOL, atol=ATOL, err_msg=what)


def _randomized(layer, seed):
    g = np.random.default_rng(seed)
    for key in list(layer.params):
        shape = tuple(layer.params[key].shape)
        base = 1.0 if key.endswith("gamma") else 0.0
        layer.params[key] = base + 0.5 * g.standard_normal(shape)
    return layer


def _load_attention(theirs, p):
    """Copy dlcore's (in, out) attention parameters ``p`` into a torch MultiheadAttention."""
    with torch.no_grad():
        theirs.in_proj_weight.copy_(_t(np.concatenate([p["Wq"].T, p["Wk"].T, p["Wv"].T], axis=0)))
        theirs.in_proj_bias.copy_(_t(np.concatenate([p["bq"], p["bk"], p["bv"]])))
        theirs.out_proj.weight.copy_(_t(p["Wo"].T))
        theirs.out_proj.bias.copy_(_t(p["bo"]))


def _attention_grads(theirs):
    """torch's parameter gradients in dlcore's names and layout."""
    e = theirs.embed_dim
    w, b = theirs.in_proj_weight.grad.numpy(), theirs.in_proj_bias.grad.numpy()
    return {"Wq": w[:e].T, "Wk": w[e:2 * e].T, "Wv": w[2 * e:].T, "Wo": theirs.out_proj.weight.grad.numpy().T,
            "bq": b[:e], "bk": b[e:2 * e], "bv": b[2 * e:], "bo": theirs.out_proj.bias.grad.numpy()}


def _causal(t):
    return torch.triu(torch.ones(t, t, dtype=torch.bool), diagonal=1)       # True = may NOT attend


@pytest.mark.parametrize("shape", [(5, 6), (2, 4, 6)])
def test_layernorm_matches_torch(shape):
    rng = np.random.default_rng(0)
    ours = _randomized(nn.LayerNorm(6, eps=1e-5, dtype="float64"), 1)
    theirs = torch.nn.LayerNorm(6, eps=1e-5, dtype=torch.float64)
    with torch.no_grad():
        theirs.weight.copy_(_t(ours.params["gamma"]))
        theirs.bias.copy_(_t(ours.params["beta"]))
    x = rng.standard_normal(shape) * 2.0 + 1.0
    dy = rng.standard_normal(shape)
    xt = _t(x).requires_grad_(True)
    yt = theirs(xt)
    (yt * _t(dy)).sum().backward()
    _close(ours.forward(x), yt, "LayerNorm forward")
    _close(ours.backward(dy), xt.grad, "LayerNorm dx")
    _close(ours.grads["gamma"], theirs.weight.grad, "LayerNorm dgamma")
    _close(ours.grads["beta"], theirs.bias.grad, "LayerNorm dbeta")


@pytest.mark.parametrize("case", ["self", "causal", "key-padding", "causal+key-padding", "cross", "cross+key-padding"])
def test_multihead_attention_matches_torch(case):
    n, t, tk, e, heads = 2, 4, 5, 6, 3
    rng = np.random.default_rng(2)
    cross = case.startswith("cross")
    ours = _randomized(nn.MultiHeadAttention(e, heads, rng=0, dtype="float64"), 3)
    theirs = torch.nn.MultiheadAttention(e, heads, dropout=0.0, bias=True, batch_first=True, dtype=torch.float64)
    _load_attention(theirs, ours.params)
    steps = tk if cross else t
    x = rng.standard_normal((n, t, e))
    c = rng.standard_normal((n, tk, e)) if cross else None
    mask = (np.arange(steps)[None, :] < np.array([steps - 2, steps])[:, None]) if "padding" in case else None
    dy = rng.standard_normal((n, t, e))

    y = ours.forward(x, c, causal="causal" in case, mask=mask)
    grads_in = ours.backward(dy)

    xt = _t(x).requires_grad_(True)
    ct = _t(c).requires_grad_(True) if cross else xt
    yt, wt = theirs(xt, ct, ct, key_padding_mask=None if mask is None else torch.from_numpy(~mask),
                    attn_mask=_causal(t) if "causal" in case else None, need_weights=True, average_attn_weights=False)
    (yt * _t(dy)).sum().backward()

    _close(y, yt, f"{case}: output")
    _close(ours.weights, wt, f"{case}: attention weights (N, heads, T, Tk)")
    if cross:
        _close(grads_in[0], xt.grad, f"{case}: dx")
        _close(grads_in[1], ct.grad, f"{case}: dcontext")
    else:
        _close(grads_in, xt.grad, f"{case}: dx (query, key and value paths)")
    for key, g in _attention_grads(theirs).items():
        _close(ours.grads[key], g, f"{case}: d{key}")


@pytest.mark.parametrize("case", ["plain", "causal", "key-padding"])
def test_encoder_layer_matches_torch(case):
    n, t, e, heads, f = 2, 5, 8, 2, 12
    rng = np.random.default_rng(4)
    ours = _randomized(nn.TransformerEncoderLayer(e, heads, f, dropout=0.0, rng=0, dtype="float64"), 5)
    theirs = torch.nn.TransformerEncoderLayer(e, heads, dim_feedforward=f, dropout=0.0, activation="relu",
                                              layer_norm_eps=1e-5, batch_first=True, norm_first=False,
                                              dtype=torch.float64)
    theirs.train()
    p = ours.params
    _load_attention(theirs.self_attn, {k.split(".", 1)[1]: v for k, v in p.items() if k.startswith("attn.")})
    with torch.no_grad():
        theirs.linear1.weight.copy_(_t(p["ffn1.W"].T))
        theirs.linear1.bias.copy_(_t(p["ffn1.b"]))
        theirs.linear2.weight.copy_(_t(p["ffn2.W"].T))
        theirs.linear2.bias.copy_(_t(p["ffn2.b"]))
        for norm in ("norm1", "norm2"):
            getattr(theirs, norm).weight.copy_(_t(p[f"{norm}.gamma"]))
            getattr(theirs, norm).bias.copy_(_t(p[f"{norm}.beta"]))
    x = rng.standard_normal((n, t, e))
    dy = rng.standard_normal((n, t, e))
    mask = (np.arange(t)[None, :] < np.array([3, t])[:, None]) if case == "key-padding" else None

    y = ours.forward(x, train=True, causal=case == "causal", mask=mask)
    dx = ours.backward(dy)

    xt = _t(x).requires_grad_(True)
    yt = theirs(xt, src_mask=_causal(t) if case == "causal" else None,
                src_key_padding_mask=None if mask is None else torch.from_numpy(~mask))
    (yt * _t(dy)).sum().backward()

    _close(y, yt, f"{case}: output")
    _close(dx, xt.grad, f"{case}: dx")
    for key, g in _attention_grads(theirs.self_attn).items():
        _close(ours.grads[f"attn.{key}"], g, f"{case}: dattn.{key}")
    _close(ours.grads["ffn1.W"], theirs.linear1.weight.grad.T, f"{case}: dffn1.W")
    _close(ours.grads["ffn1.b"], theirs.linear1.bias.grad, f"{case}: dffn1.b")
    _close(ours.grads["ffn2.W"], theirs.linear2.weight.grad.T, f"{case}: dffn2.W")
    _close(ours.grads["ffn2.b"], theirs.linear2.bias.grad, f"{case}: dffn2.b")
    for norm in ("norm1", "norm2"):
        _close(ours.grads[f"{norm}.gamma"], getattr(theirs, norm).weight.grad, f"{case}: d{norm}.gamma")
        _close(ours.grads[f"{norm}.beta"], getattr(theirs, norm).bias.grad, f"{case}: d{norm}.beta")
