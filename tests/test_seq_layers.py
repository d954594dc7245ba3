"""Embedding, TimeAffine and TimeSoftmaxCrossEntropy (with an ignore label for padding)."""

from __future__ import annotations

import numpy as np
import pytest

from dlcore import backend
from dlcore.gradcheck import assert_layer_gradients
from dlcore.nn.embedding import Embedding
from dlcore.nn.time_layers import TimeAffine, TimeSoftmaxCrossEntropy


def _arr(rng, shape, xp):
    return backend.to_device(rng.standard_normal(shape), xp)


# --------------------------------------------------------------------------- Embedding


@pytest.mark.parametrize("shape", [(1,), (3, 4), (1, 1)])
def test_embedding_gradient_with_repeated_ids(xp, rng, shape):
    layer = Embedding(5, 3, rng=0).astype("float64").to(xp)
    ids = rng.integers(0, 5, shape)
    ids.flat[0] = ids.flat[-1] = 2         # a repeated id must accumulate
    report = assert_layer_gradients(layer, backend.to_device(ids, xp))
    assert set(report.errors) == {"W"}


def test_embedding_lookup_and_scatter_add(rng):
    layer = Embedding(4, 2, dtype="float64")
    w = layer.params["W"]
    ids = np.array([[0, 3, 3], [1, 0, 3]])
    y = layer.forward(ids)
    np.testing.assert_array_equal(y, w[ids])
    dy = rng.standard_normal((2, 3, 2))
    assert layer.backward(dy) is None
    expected = np.zeros((4, 2))
    for (n, t), v in np.ndenumerate(ids):
        expected[v] += dy[n, t]
    np.testing.assert_allclose(layer.grads["W"], expected, rtol=1e-12)


def test_embedding_bad_ids():
    layer = Embedding(5, 3)
    with pytest.raises(ValueError, match=r"ids in \[0, 4\].*from 0 to 5"):
        layer.forward(np.array([[0, 5]]))
    with pytest.raises(ValueError, match="from -1"):
        layer.forward(np.array([-1, 2]))
    with pytest.raises(TypeError, match="integer ids"):
        layer.forward(np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="empty sequence"):
        layer.forward(np.zeros((2, 0), dtype=np.int64))
    with pytest.raises(ValueError, match="vocab_size"):
        Embedding(0, 3)


# --------------------------------------------------------------------------- TimeAffine


@pytest.mark.parametrize("n,t", [(1, 1), (3, 4)])
def test_time_affine_gradients(xp, rng, n, t):
    layer = TimeAffine(3, 5, rng=1).astype("float64").to(xp)
    layer.params["b"] = _arr(rng, (5,), xp)
    report = assert_layer_gradients(layer, _arr(rng, (n, t, 3), xp))
    assert set(report.errors) == {"dx", "W", "b"}


def test_time_affine_is_affine_at_every_step(rng):
    layer = TimeAffine(3, 2, rng=2, dtype="float64")
    hs = rng.standard_normal((2, 4, 3))
    y = layer.forward(hs)
    for t in range(4):
        np.testing.assert_allclose(y[:, t], hs[:, t] @ layer.params["W"] + layer.params["b"], rtol=1e-12)
    with pytest.raises(ValueError, match="last dimension 3"):
        layer.forward(rng.standard_normal((2, 4, 2)))


# --------------------------------------------------------------------------- TimeSoftmaxCrossEntropy


@pytest.mark.parametrize("n,t", [(1, 1), (3, 4)])
def test_time_softmax_ce_gradient_with_ignored_positions(xp, rng, n, t):
    scores = rng.standard_normal((n, t, 5))
    ts = rng.integers(0, 5, (n, t))
    if n * t > 1:
        ts[0, -1] = ts[-1, 0] = -1
    loss = TimeSoftmaxCrossEntropy()
    assert_layer_gradients(loss, backend.to_device(scores, xp), backend.to_device(ts, xp))
    grad = backend.to_numpy(loss.backward())
    np.testing.assert_array_equal(grad[ts == -1], 0.0)


def test_time_softmax_ce_value_is_mean_over_real_positions(rng):
    scores = rng.standard_normal((2, 3, 4))
    ts = np.array([[1, 2, -1], [0, -1, -1]])
    value = float(TimeSoftmaxCrossEntropy().forward(scores, ts))
    logp = scores - np.log(np.exp(scores).sum(-1, keepdims=True))
    expected = -np.mean([logp[0, 0, 1], logp[0, 1, 2], logp[1, 0, 0]])
    assert value == pytest.approx(expected, rel=1e-12)
    # a custom ignore label; scores of 1e4 stay finite
    ts2 = np.where(ts == -1, 7, ts)
    assert float(TimeSoftmaxCrossEntropy(ignore_label=7).forward(scores, ts2)) == pytest.approx(expected, rel=1e-12)
    assert np.isfinite(float(TimeSoftmaxCrossEntropy().forward(1e4 * scores, ts)))


def test_time_softmax_ce_bad_input(rng):
    loss = TimeSoftmaxCrossEntropy()
    scores = rng.standard_normal((2, 3, 4))
    with pytest.raises(ValueError, match="ignore_label"):
        loss.forward(scores, np.full((2, 3), -1))
    with pytest.raises(ValueError, match=r"targets in \[0, 3\]"):
        loss.forward(scores, np.array([[0, 4, 1], [0, 0, 0]]))
    with pytest.raises(ValueError, match=r"shape \(2, 3\)"):
        loss.forward(scores, np.zeros((2, 4), dtype=np.int64))
    with pytest.raises(TypeError, match="integer targets"):
        loss.forward(scores, np.zeros((2, 3)))
    with pytest.raises(ValueError, match="length 0"):
        loss.forward(np.zeros((2, 0, 4)), np.zeros((2, 0), dtype=np.int64))
