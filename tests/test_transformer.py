"""The Transformer pieces: LayerNorm, MultiHeadAttention, PositionalEncoding, TransformerEncoderLayer.

Gradients against central differences in float64 on every backend (worst relative error <= GRAD_RTOL,
the measure of dlcore.gradcheck); forward values against formulas written out independently here
with NumPy; masks, causal attention, dtypes and the errors for bad input.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from dlcore import backend, nn
from dlcore.gradcheck import assert_layer_gradients, check_layer
from dlcore.nn.base import Layer

#: Bound on the worst relative error of every gradient check here. Measured worst cases (NumPy and
#: array_api_strict alike): PositionalEncoding 3e-10, LayerNorm 3e-9, MultiHeadAttention 2e-8,
#: TransformerEncoderLayer 2e-8, two encoder layers in a Sequential 1e-7; a wrong term gives ~1.
GRAD_RTOL = 1e-6
ATTN_PARAMS = {"Wq", "Wk", "Wv", "Wo", "bq", "bk", "bv", "bo"}


def assert_gradients(layer, *inputs, **kw):
    """check_layer with every error <= GRAD_RTOL, except the key bias, whose gradient must be exactly 0.

    dL/dbk = 0 in exact arithmetic (bk shifts every score of a query's row by the same q·bk, which
    softmax ignores), so central differences there are pure round-off (~1e-11) and their relative
    error is meaningless; test_key_bias_changes_nothing checks the claim on the forward pass instead.
    """
    report = check_layer(layer, *inputs, **kw)
    zero = {k for k in report.errors if k == "bk" or k.endswith(".bk")}
    checked = {k: v for k, v in report.errors.items() if k not in zero}
    assert max(checked.values()) <= GRAD_RTOL, f"{report}\n  tolerance {GRAD_RTOL:.1e} exceeded"
    for key in zero:
        assert not np.any(_np(layer.grads[key])), f"grads[{key!r}] should be exactly 0"
    return report


def _arr(a, xp):
    return backend.to_device(np.asarray(a), xp)


def _np(a):
    return backend.to_numpy(a)


def _normal(shape, seed, xp=np):
    return _arr(np.random.default_rng(seed).standard_normal(shape), xp)


def _randomize(layer, xp, seed, scale=0.5):
    """Give every parameter (biases, gamma and beta included) random float64 values on ``xp``."""
    g = np.random.default_rng(seed)
    for key in list(layer.params):
        shape = tuple(layer.params[key].shape)
        base = 1.0 if key.endswith("gamma") else 0.0
        layer.params[key] = _arr(base + scale * g.standard_normal(shape), xp)
    return layer


def _mha(e, heads, xp, seed=0):
    return _randomize(nn.MultiHeadAttention(e, heads, rng=seed).astype("float64").to(xp), xp, seed + 100)


class WithOptions(Layer):
    """forward(*inputs) = layer.forward(*inputs, **options): fixes the keyword-only options for the gradient check.

    ``reseed`` (Dropout layers) restarts their generators before every forward, so each call draws
    the same dropout masks and the layer is a deterministic function for central differences.
    """

    def __init__(self, layer, reseed=(), **options) -> None:
        self.layer, self.options, self.reseed = layer, options, reseed
        self.has_train_mode = getattr(layer, "has_train_mode", False)

    @property
    def params(self):
        return self.layer.params

    @property
    def grads(self):
        return self.layer.grads

    def forward(self, *inputs, **kw):
        for k, drop in enumerate(self.reseed):
            drop.rng = np.random.default_rng(1000 + k)
        return self.layer.forward(*inputs, **kw, **self.options)

    def backward(self, dy):
        return self.layer.backward(dy)


def _padding_mask(lengths, steps, xp):
    """(N, steps) booleans, True at the first lengths[n] steps (real) and False after (padding)."""
    return _arr(np.arange(steps)[None, :] < np.asarray(lengths)[:, None], xp)


# =========================================================================== gradient checks


@pytest.mark.parametrize("shape", [(1, 4), (5, 4), (2, 3, 4)], ids=["1x4", "5x4", "2x3x4"])
def test_layernorm_gradients(xp, shape):
    layer = _randomize(nn.LayerNorm(4).astype("float64").to(xp), xp, 1)
    report = assert_layer_gradients(layer, _normal(shape, 2, xp) * 2.0 + 1.0, rtol=GRAD_RTOL)
    assert set(report.errors) == {"dx", "gamma", "beta"}


@pytest.mark.parametrize("n,t,heads", [(1, 1, 1), (2, 4, 1), (2, 4, 2), (1, 3, 3)])
def test_self_attention_gradients(xp, n, t, heads):
    e = 6
    report = assert_gradients(_mha(e, heads, xp), _normal((n, t, e), 3, xp))
    assert set(report.errors) == {"dx"} | ATTN_PARAMS


@pytest.mark.parametrize("t,tk,heads", [(3, 5, 2), (4, 1, 2), (1, 4, 1)])
def test_cross_attention_gradients_include_dcontext(xp, t, tk, heads):
    e = 4
    att = _mha(e, heads, xp, seed=1)
    report = assert_gradients(att, _normal((2, t, e), 4, xp), _normal((2, tk, e), 5, xp))
    assert set(report.errors) == {"dx1", "dx2"} | ATTN_PARAMS                  # dx2 = dL/dcontext


@pytest.mark.parametrize("options", ["causal", "mask", "causal+mask"])
def test_masked_self_attention_gradients(xp, options):
    n, t, e = 2, 5, 4
    kw = {}
    if "causal" in options:
        kw["causal"] = True
    if "mask" in options:
        kw["mask"] = _padding_mask([3, 5], t, xp)
    att = _mha(e, 2, xp, seed=2)
    report = assert_gradients(WithOptions(att, **kw), _normal((n, t, e), 6, xp))
    assert set(report.errors) == {"dx"} | ATTN_PARAMS


def test_masked_cross_attention_gradients(xp):
    att = _mha(4, 2, xp, seed=3)
    mask = _padding_mask([2, 4], 4, xp)
    report = assert_gradients(WithOptions(att, mask=mask), _normal((2, 3, 4), 7, xp), _normal((2, 4, 4), 8, xp))
    assert set(report.errors) == {"dx1", "dx2"} | ATTN_PARAMS
    # padded context steps receive no gradient at all: nothing reads them
    dx, dc = att.backward(_normal((2, 3, 4), 9, xp))
    np.testing.assert_array_equal(_np(dc)[0, 2:], 0.0)


def test_positional_encoding_gradients(xp):
    layer = nn.PositionalEncoding(4, max_len=7).to(xp)
    report = assert_layer_gradients(layer, _normal((2, 5, 4), 10, xp), rtol=GRAD_RTOL)
    assert set(report.errors) == {"dx"}


@pytest.mark.parametrize("options", ["plain", "causal", "mask"])
def test_encoder_layer_gradients(xp, options):
    kw = {"plain": {}, "causal": {"causal": True}, "mask": {"mask": _padding_mask([2, 4], 4, xp)}}[options]
    layer = _randomize(nn.TransformerEncoderLayer(4, 2, 6, rng=4).astype("float64").to(xp), xp, 11)
    report = assert_gradients(WithOptions(layer, **kw), _normal((2, 4, 4), 12, xp), train=True)
    expected = {"dx"} | {f"attn.{k}" for k in ATTN_PARAMS} | {
        "norm1.gamma", "norm1.beta", "ffn1.W", "ffn1.b", "ffn2.W", "ffn2.b", "norm2.gamma", "norm2.beta"}
    assert set(report.errors) == expected


def test_encoder_layer_gradients_with_dropout(xp):
    layer = _randomize(nn.TransformerEncoderLayer(4, 2, 6, dropout=0.3, rng=5).astype("float64").to(xp), xp, 13)
    drops = (layer.dropout1, layer.dropout, layer.dropout2)
    wrapped = WithOptions(layer, reseed=drops)
    assert_gradients(wrapped, _normal((2, 3, 4), 14, xp), train=True)
    assert all(d.mask is not None for d in drops)                                # dropout was active
    assert any(float(_np(d.mask).min()) == 0.0 for d in drops)                   # and dropped something


def test_stack_in_sequential_gradients(xp):
    model = nn.Sequential(nn.PositionalEncoding(4, max_len=10), nn.TransformerEncoderLayer(4, 2, 5, rng=6),
                          nn.TransformerEncoderLayer(4, 1, 3, rng=7))
    _randomize(model.astype("float64").to(xp), xp, 15)
    assert "1.attn.Wq" in model.params and "2.norm2.beta" in model.params
    assert_gradients(model, _normal((2, 3, 4), 16, xp), train=True)


# =========================================================================== forward values


def _softmax(s):
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _layernorm_formula(x, gamma, beta, eps=1e-5):
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    return gamma * (x - mu) / np.sqrt(var + eps) + beta


def _attention_formula(p, x, c, heads, hidden=None):
    """Head by head with explicit loops over the heads: softmax(Q_j K_jᵀ/√d + hidden·(-inf)) V_j, concat, Wo."""
    e = x.shape[-1]
    d = e // heads
    q, k, v = x @ p["Wq"] + p["bq"], c @ p["Wk"] + p["bk"], c @ p["Wv"] + p["bv"]
    outs, weights = [], []
    for j in range(heads):
        cols = slice(j * d, (j + 1) * d)
        s = np.einsum("ntd,nsd->nts", q[..., cols], k[..., cols]) / math.sqrt(d)
        if hidden is not None:
            s = np.where(hidden, -np.inf, s)
        a = _softmax(s)
        weights.append(a)
        outs.append(np.einsum("nts,nsd->ntd", a, v[..., cols]))
    return np.concatenate(outs, axis=-1) @ p["Wo"] + p["bo"], np.stack(weights, axis=1)


def test_layernorm_rows_have_mean_0_and_variance_1(xp):
    x = _normal((3, 5, 8), 20, xp) * 3.0 + 2.0
    y = _np(nn.LayerNorm(8).astype("float64").to(xp).forward(x))
    np.testing.assert_allclose(y.mean(axis=-1), 0.0, atol=1e-14)
    x_np = _np(x)
    var = x_np.var(axis=-1)
    np.testing.assert_allclose(y.var(axis=-1), var / (var + 1e-5), rtol=1e-12)   # = 1 up to ε
    np.testing.assert_allclose(y.var(axis=-1), 1.0, rtol=1e-5)
    layer = _randomize(nn.LayerNorm(8, eps=1e-3).astype("float64").to(xp), xp, 21)
    p = {k: _np(v) for k, v in layer.params.items()}
    np.testing.assert_allclose(_np(layer.forward(x)), _layernorm_formula(x_np, p["gamma"], p["beta"], 1e-3),
                               rtol=1e-12, atol=1e-13)


def test_multihead_attention_matches_the_per_head_formula(xp):
    att = _mha(6, 3, xp, seed=22)
    x, c = _normal((2, 4, 6), 23, xp), _normal((2, 5, 6), 24, xp)
    p = {k: _np(v) for k, v in att.params.items()}
    y_self, w_self = _attention_formula(p, _np(x), _np(x), 3)
    np.testing.assert_allclose(_np(att.forward(x)), y_self, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(_np(att.weights), w_self, rtol=1e-12, atol=1e-15)
    y_cross, w_cross = _attention_formula(p, _np(x), _np(c), 3)
    np.testing.assert_allclose(_np(att.forward(x, c)), y_cross, rtol=1e-12, atol=1e-13)
    assert tuple(att.weights.shape) == (2, 3, 4, 5)                              # (N, heads, T, Tk)
    np.testing.assert_allclose(_np(att.weights), w_cross, rtol=1e-12, atol=1e-15)


def test_one_head_with_identity_weights_is_scaled_dot_attention(xp):
    """With Wq = Wk = Wv = Wo = I and zero biases, one head is DotAttention(scaled=True): same mask convention."""
    e = 4
    att = nn.MultiHeadAttention(e, 1, dtype="float64").to(xp)
    for name in ("Wq", "Wk", "Wv", "Wo"):
        att.params[name] = _arr(np.eye(e), xp)
    x, c = _normal((2, 3, e), 25, xp), _normal((2, 5, e), 26, xp)
    mask = _padding_mask([5, 2], 5, xp)
    ref = nn.DotAttention(scaled=True)
    np.testing.assert_allclose(_np(att.forward(x, c, mask=mask)), _np(ref.forward(c, x, mask)), rtol=1e-12)
    np.testing.assert_allclose(_np(att.weights)[:, 0], _np(ref.weights), rtol=1e-12)


def test_weights_rows_sum_to_one_and_hidden_keys_get_exactly_zero(xp):
    n, t, e, heads = 2, 5, 4, 2
    att = _mha(e, heads, xp, seed=27)
    x = _normal((n, t, e), 28, xp)
    mask = _padding_mask([3, 5], t, xp)
    att.forward(x, causal=True, mask=mask)
    w = _np(att.weights)
    assert w.shape == (n, heads, t, t)
    np.testing.assert_allclose(w.sum(axis=-1), 1.0, rtol=1e-12)
    upper = np.triu(np.ones((t, t), dtype=bool), k=1)                            # key s > query t
    assert np.all(w[:, :, upper] == 0.0)
    assert np.all(w[0, :, :, 3:] == 0.0)                                         # padded keys of sample 0
    assert np.all(w[:, :, ~upper][..., :1] > 0.0)
    # the first query of a causal layer sees only the first key
    np.testing.assert_array_equal(w[:, :, 0, 0], 1.0)
    # and a mask of all-True changes nothing
    y_all = _np(att.forward(x, mask=_padding_mask([t, t], t, xp)))
    np.testing.assert_array_equal(y_all, _np(att.forward(x)))


def test_key_bias_changes_nothing(xp):
    """Why grads["bk"] is exactly 0: shifting bk leaves the output (and the weights) unchanged."""
    att = _mha(4, 2, xp, seed=28)
    x, c = _normal((2, 3, 4), 46, xp), _normal((2, 5, 4), 47, xp)
    mask = _padding_mask([5, 2], 5, xp)
    y, w = _np(att.forward(x, c, mask=mask)), _np(att.weights)
    att.params["bk"] = att.params["bk"] + _normal((4,), 48, xp) * 3.0
    np.testing.assert_allclose(_np(att.forward(x, c, mask=mask)), y, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(_np(att.weights), w, rtol=1e-11, atol=1e-15)
    att.params["bq"] = att.params["bq"] + _normal((4,), 49, xp)                  # the query bias does matter
    assert np.abs(_np(att.forward(x, c, mask=mask)) - y).max() > 1e-3


def test_causal_output_at_step_t_ignores_later_steps(xp):
    att = _mha(4, 2, xp, seed=29)
    x = _np(_normal((1, 6, 4), 30))
    y = _np(att.forward(_arr(x, xp), causal=True))
    x2 = x.copy()
    x2[:, 3:] += 10.0                                                            # change steps 3..5 only
    y2 = _np(att.forward(_arr(x2, xp), causal=True))
    np.testing.assert_allclose(y2[:, :3], y[:, :3], rtol=1e-12)
    assert np.abs(y2[:, 3:] - y[:, 3:]).max() > 1e-3


def test_self_attention_is_permutation_equivariant(xp):
    """Without positions, attention cannot tell the order: permuting the steps permutes the output."""
    att = _mha(6, 2, xp, seed=31)
    x = _np(_normal((2, 5, 6), 32))
    perm = np.array([3, 0, 4, 1, 2])
    y = _np(att.forward(_arr(x, xp)))
    np.testing.assert_allclose(_np(att.forward(_arr(x[:, perm], xp))), y[:, perm], rtol=1e-12, atol=1e-14)


def test_positional_encoding_values_by_hand(xp):
    e = 6
    layer = nn.PositionalEncoding(e, max_len=50).to(xp)
    out = _np(layer.forward(_arr(np.zeros((1, 50, e)), xp)))[0]
    np.testing.assert_array_equal(out[0], [0.0, 1.0, 0.0, 1.0, 0.0, 1.0])        # sin 0, cos 0
    for pos in (1, 7, 49):
        expected = []
        for i in range(e // 2):
            angle = pos / 10000 ** (2 * i / e)
            expected += [math.sin(angle), math.cos(angle)]
        np.testing.assert_allclose(out[pos], expected, rtol=1e-14, atol=1e-15)
    # by hand at pos = 2, feature 2 (i = 1) and 5 (i = 2)
    assert out[2, 2] == pytest.approx(math.sin(2 / 10000 ** (1 / 3)), rel=1e-14)
    assert out[2, 5] == pytest.approx(math.cos(2 / 10000 ** (2 / 3)), rel=1e-14)
    # added to the input, the same row for every sample
    x = _normal((3, 4, e), 33, xp)
    np.testing.assert_allclose(_np(layer.forward(x)), _np(x) + out[None, :4], rtol=1e-14, atol=1e-15)


def test_positional_encoding_odd_width_ends_with_a_sine():
    table = nn.PositionalEncoding(5, max_len=4).pe
    assert table.shape == (4, 5) and table.dtype == np.float64
    np.testing.assert_allclose(table[3, 4], math.sin(3 / 10000 ** (4 / 5)), rtol=1e-14)


def test_encoder_layer_matches_the_post_norm_formula(xp):
    layer = _randomize(nn.TransformerEncoderLayer(6, 2, 10, rng=34).astype("float64").to(xp), xp, 35)
    x = _normal((2, 5, 6), 36, xp)
    mask = _padding_mask([5, 3], 5, xp)
    p = {k: _np(v) for k, v in layer.params.items()}
    attn = {k.split(".", 1)[1]: v for k, v in p.items() if k.startswith("attn.")}
    x_np = _np(x)
    a, _ = _attention_formula(attn, x_np, x_np, 2, hidden=~_np(mask)[:, None, :])
    z = _layernorm_formula(x_np + a, p["norm1.gamma"], p["norm1.beta"])
    f = np.maximum(z @ p["ffn1.W"] + p["ffn1.b"], 0.0) @ p["ffn2.W"] + p["ffn2.b"]
    expected = _layernorm_formula(z + f, p["norm2.gamma"], p["norm2.beta"])
    np.testing.assert_allclose(_np(layer.forward(x, mask=mask)), expected, rtol=1e-11, atol=1e-12)
    assert tuple(layer.weights.shape) == (2, 2, 5, 5)
    # dropout = 0: training and evaluation are the same function
    np.testing.assert_array_equal(_np(layer.forward(x, train=False, mask=mask)), _np(layer.forward(x, mask=mask)))


def test_encoder_layer_dropout_only_in_training():
    layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.5, rng=37, dtype="float64")
    x = np.random.default_rng(38).standard_normal((2, 6, 8))
    y_eval = layer.forward(x, train=False)
    np.testing.assert_array_equal(layer.forward(x, train=False), y_eval)          # deterministic
    y1, y2 = layer.forward(x, train=True), layer.forward(x, train=True)
    assert np.abs(y1 - y_eval).max() > 1e-3 and np.abs(y1 - y2).max() > 1e-3      # fresh masks each call
    with pytest.raises(ValueError, match=r"drop probability p in \[0, 1\)"):
        nn.TransformerEncoderLayer(8, 2, 16, dropout=1.0)


def test_parameter_names_shapes_and_seeding():
    layer = nn.TransformerEncoderLayer(8, 2, 16, rng=0)
    shapes = {k: tuple(v.shape) for k, v in layer.params.items()}
    assert shapes == {**{f"attn.W{c}": (8, 8) for c in "qkvo"}, **{f"attn.b{c}": (8,) for c in "qkvo"},
                      "norm1.gamma": (8,), "norm1.beta": (8,), "ffn1.W": (8, 16), "ffn1.b": (16,),
                      "ffn2.W": (16, 8), "ffn2.b": (8,), "norm2.gamma": (8,), "norm2.beta": (8,)}
    again = nn.TransformerEncoderLayer(8, 2, 16, rng=0)
    other = nn.TransformerEncoderLayer(8, 2, 16, rng=1)
    for k in layer.params:
        np.testing.assert_array_equal(layer.params[k], again.params[k])
    assert not np.array_equal(layer.params["attn.Wq"], other.params["attn.Wq"])
    assert not np.array_equal(layer.params["attn.Wq"], layer.params["attn.Wk"])
    # write-through: replacing a flat key replaces the sub-layer's own array
    w = np.zeros((8, 16), dtype="float32")
    layer.params["ffn1.W"] = w
    assert layer.ffn1.params["W"] is w


# =========================================================================== dtypes


@pytest.mark.parametrize("name", ["LayerNorm", "MultiHeadAttention", "cross", "PositionalEncoding",
                                  "TransformerEncoderLayer"])
def test_float32_in_float32_out(xp, name):
    make = {"LayerNorm": lambda: nn.LayerNorm(4), "MultiHeadAttention": lambda: nn.MultiHeadAttention(4, 2, rng=0),
            "cross": lambda: nn.MultiHeadAttention(4, 2, rng=0), "PositionalEncoding": lambda: nn.PositionalEncoding(4),
            "TransformerEncoderLayer": lambda: nn.TransformerEncoderLayer(4, 2, 8, dropout=0.1, rng=0)}[name]
    layer = make().to(xp)
    x = _arr(np.random.default_rng(0).standard_normal((2, 3, 4)).astype("float32"), xp)
    inputs = (x, _arr(np.ones((2, 5, 4), dtype="float32"), xp)) if name == "cross" else (x,)
    y = layer.forward(*inputs)
    assert backend.dtype_name(y.dtype) == "float32"
    grads_in = layer.backward(y)
    for d in grads_in if isinstance(grads_in, tuple) else (grads_in,):
        assert backend.dtype_name(d.dtype) == "float32"
    for key, g in layer.grads.items():
        assert backend.dtype_name(g.dtype) == "float32", key


def test_positional_table_stays_float64_and_follows_the_device(xp):
    layer = nn.PositionalEncoding(4, max_len=6).astype("float32").to(xp)
    assert backend.dtype_name(layer.pe.dtype) == "float64"
    x32 = _arr(np.zeros((1, 6, 4), dtype="float32"), xp)
    x64 = _arr(np.zeros((1, 6, 4)), xp)
    assert backend.dtype_name(layer.forward(x32).dtype) == "float32"
    np.testing.assert_array_equal(_np(layer.forward(x64))[0], nn.positional.sinusoid_table(6, 4))


def test_a_float64_input_into_float32_layers_is_refused():
    x = np.zeros((1, 2, 4))
    for layer in (nn.LayerNorm(4), nn.MultiHeadAttention(4, 2), nn.TransformerEncoderLayer(4, 2, 8)):
        with pytest.raises(TypeError, match=r"input dtype float64 does not match parameter .* dtype float32"):
            layer.forward(x)


# =========================================================================== bad input


def test_embed_dim_must_be_divisible_by_num_heads():
    with pytest.raises(ValueError, match=r"embed_dim \(10\) must be divisible by num_heads \(3\)"):
        nn.MultiHeadAttention(10, 3)
    with pytest.raises(ValueError, match=r"embed_dim \(10\) must be divisible by num_heads \(4\)"):
        nn.TransformerEncoderLayer(10, 4, 16)
    with pytest.raises(ValueError, match="positive integer num_heads"):
        nn.MultiHeadAttention(8, 0)
    with pytest.raises(ValueError, match="positive integer ffn_dim"):
        nn.TransformerEncoderLayer(8, 2, 0)
    with pytest.raises(ValueError, match="positive integer max_len"):
        nn.PositionalEncoding(8, max_len=0)
    with pytest.raises(ValueError, match="positive integer num_features"):
        nn.LayerNorm(0)


@pytest.mark.parametrize("layer,shape,message", [
    (lambda: nn.MultiHeadAttention(4, 2), (2, 4), r"MultiHeadAttention: expected x to be 3-D, got an array of "
                                                  r"shape \(2, 4\)"),
    (lambda: nn.MultiHeadAttention(4, 2), (2, 3, 5), r"MultiHeadAttention: expected x with last dimension 4, got "
                                                     r".*\(2, 3, 5\)"),
    (lambda: nn.MultiHeadAttention(4, 2), (2, 0, 4), r"sequence of length 0"),
    (lambda: nn.LayerNorm(4), (2, 3, 5), r"LayerNorm: expected x with last dimension 4, got .*\(2, 3, 5\)"),
    (lambda: nn.LayerNorm(4), (4,), r"LayerNorm: expected x with a batch axis and 4 features on the last axis, "
                                    r"e.g. \(N, 4\) or \(N, T, 4\), got .*\(4,\)"),
    (lambda: nn.PositionalEncoding(4), (3, 4), r"PositionalEncoding: expected x to be 3-D, got .*\(3, 4\)"),
    (lambda: nn.PositionalEncoding(4), (1, 3, 6), r"PositionalEncoding: expected x with last dimension 4"),
    (lambda: nn.PositionalEncoding(4, max_len=5), (1, 6, 4),
     r"PositionalEncoding: got a sequence of 6 steps .* max_len = 5 positions; build PositionalEncoding\(4, "
     r"max_len=6\)"),
    (lambda: nn.TransformerEncoderLayer(4, 2, 8), (3, 4), r"MultiHeadAttention: expected x to be 3-D"),
], ids=["mha-rank", "mha-width", "mha-empty", "ln-width", "ln-rank", "pe-rank", "pe-width", "pe-max-len",
        "encoder-rank"])
def test_wrong_input_shape(xp, layer, shape, message):
    with pytest.raises(ValueError, match=message):
        layer().astype("float64").to(xp).forward(_normal(shape, 40, xp))


def test_context_and_mask_checks(xp):
    att = nn.MultiHeadAttention(4, 2).astype("float64").to(xp)
    x = _normal((2, 3, 4), 41, xp)
    with pytest.raises(ValueError, match=r"different batch sizes \(2 and 1\); expected context of shape \(2, Tk, 4\)"):
        att.forward(x, _normal((1, 5, 4), 42, xp))
    with pytest.raises(ValueError, match=r"expected context with last dimension 4"):
        att.forward(x, _normal((2, 5, 3), 42, xp))
    with pytest.raises(ValueError, match=r"expected mask of shape \(2, 5\) \(batch, key steps; True at real steps"):
        att.forward(x, _normal((2, 5, 4), 42, xp), mask=_padding_mask([3, 3], 3, xp))
    with pytest.raises(ValueError, match=r"expected mask of shape \(2, 3\)"):
        att.forward(x, mask=_padding_mask([3, 3, 3], 3, xp))
    with pytest.raises(ValueError, match="hides every key from some query"):
        att.forward(x, mask=_padding_mask([3, 0], 3, xp))
    hidden_first = _arr(np.array([[True, True, True], [False, True, True]]), xp)
    att.forward(x, mask=hidden_first)                                            # fine without causal
    with pytest.raises(ValueError, match=r"with causal=True hides every key"):
        att.forward(x, causal=True, mask=hidden_first)                           # query 0 would see nothing
    with pytest.raises(TypeError, match="expected causal to be True or False"):
        att.forward(x, causal="yes")
    with pytest.raises(TypeError, match="context and .*dtype|input dtype float32 does not match"):
        att.forward(x, _arr(np.zeros((2, 5, 4), dtype="float32"), xp))


def test_backward_checks(xp):
    for layer in (nn.LayerNorm(4), nn.MultiHeadAttention(4, 2), nn.PositionalEncoding(4)):
        name = type(layer).__name__
        layer = layer.astype("float64").to(xp)
        with pytest.raises(RuntimeError, match=f"{name}: backward called before forward"):
            layer.backward(_normal((2, 3, 4), 43, xp))
        layer.forward(_normal((2, 3, 4), 44, xp))
        with pytest.raises(ValueError, match=rf"{name}: expected dy of shape \(2, 3, 4\) \(the forward output\)"):
            layer.backward(_normal((2, 4, 3), 45, xp))
