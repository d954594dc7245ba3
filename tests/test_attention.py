"""Dot-product and additive (Bahdanau) attention: weights, context, gradients, masks, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from dlcore import backend
from dlcore.gradcheck import assert_layer_gradients
from dlcore.nn.attention import AdditiveAttention, DotAttention
from dlcore.nn.base import Layer

N, T, H = 2, 5, 3


def _arr(rng, shape, xp):
    return backend.to_device(rng.standard_normal(shape), xp)


class Masked(Layer):
    """forward(hs, q) with a fixed mask, for the gradient check."""

    def __init__(self, att: Layer, mask) -> None:
        self.att, self.mask = att, mask

    @property
    def params(self):
        return self.att.params

    @property
    def grads(self):
        return self.att.grads

    def forward(self, hs, q):
        return self.att.forward(hs, q, self.mask)

    def backward(self, dy):
        return self.att.backward(dy)


@pytest.mark.parametrize("query_shape", [(N, H), (N, 4, H), (1, 1, H)])
@pytest.mark.parametrize("scaled", [False, True])
def test_dot_attention_gradients(xp, rng, query_shape, scaled):
    n = query_shape[0]
    report = assert_layer_gradients(DotAttention(scaled=scaled), _arr(rng, (n, T, H), xp), _arr(rng, query_shape, xp))
    assert set(report.errors) == {"dx1", "dx2"}


@pytest.mark.parametrize("query_shape", [(N, 2), (N, 4, 2), (1, 1, 2)])
def test_additive_attention_gradients(xp, rng, query_shape):
    att = AdditiveAttention(H, 2, 4, rng=1).astype("float64").to(xp)
    n = query_shape[0]
    report = assert_layer_gradients(att, _arr(rng, (n, T, H), xp), _arr(rng, query_shape, xp))
    assert set(report.errors) == {"dx1", "dx2", "W_enc", "W_dec", "v"}


@pytest.mark.parametrize("make", [lambda: DotAttention(), lambda: AdditiveAttention(H, H, 4, rng=2)])
def test_masked_gradients_and_zero_weights(xp, rng, make):
    mask = backend.to_device(np.array([[True, True, True, False, False], [True] * T]), xp)
    att = make().astype("float64").to(xp)
    assert_layer_gradients(Masked(att, mask), _arr(rng, (N, T, H), xp), _arr(rng, (N, 3, H), xp))
    w = backend.to_numpy(att.weights)
    assert w.shape == (N, 3, T)
    np.testing.assert_array_equal(w[0, :, 3:], 0.0)
    np.testing.assert_allclose(w.sum(axis=-1), 1.0, rtol=1e-12)


def test_dot_attention_values(rng):
    hs, q = rng.standard_normal((N, T, H)), rng.standard_normal((N, H))
    att = DotAttention()
    ctx = att.forward(hs, q)
    s = np.einsum("nth,nh->nt", hs, q)
    a = np.exp(s - s.max(1, keepdims=True))
    a /= a.sum(1, keepdims=True)
    np.testing.assert_allclose(att.weights, a, rtol=1e-12)
    np.testing.assert_allclose(ctx, np.einsum("nt,nth->nh", a, hs), rtol=1e-12)
    # a query parallel to one encoder state and much longer than the rest picks that state
    hs = np.eye(T, H * 2)[None]
    ctx = att.forward(hs, 50.0 * hs[:, 2])
    np.testing.assert_allclose(ctx, hs[:, 2], atol=1e-12)


def test_additive_attention_values(rng):
    att = AdditiveAttention(H, 2, 4, rng=3, dtype="float64")
    hs, q = rng.standard_normal((N, T, H)), rng.standard_normal((N, 2))
    ctx = att.forward(hs, q)
    p = att.params
    s = np.tanh(hs @ p["W_enc"] + (q @ p["W_dec"])[:, None, :]) @ p["v"]
    a = np.exp(s) / np.exp(s).sum(1, keepdims=True)
    np.testing.assert_allclose(att.weights, a, rtol=1e-12)
    np.testing.assert_allclose(ctx, np.einsum("nt,nth->nh", a, hs), rtol=1e-12)


def test_bad_input():
    hs = np.zeros((N, T, H))
    with pytest.raises(ValueError, match="same size"):
        DotAttention().forward(hs, np.zeros((N, H + 1)))
    with pytest.raises(ValueError, match="batch sizes"):
        DotAttention().forward(hs, np.zeros((N + 1, H)))
    with pytest.raises(ValueError, match="length 0"):
        DotAttention().forward(np.zeros((N, 0, H)), np.zeros((N, H)))
    with pytest.raises(ValueError, match="every encoder step"):
        DotAttention().forward(hs, np.zeros((N, H)), np.zeros((N, T), dtype=bool))
    with pytest.raises(ValueError, match="4 features"):
        AdditiveAttention(4, H, 2, dtype="float64").forward(hs, np.zeros((N, H)))
    with pytest.raises(TypeError, match="dtype"):
        AdditiveAttention(H, H, 2).forward(hs, np.zeros((N, H)))
    with pytest.raises(RuntimeError, match="before forward"):
        DotAttention().backward(np.zeros((N, H)))
