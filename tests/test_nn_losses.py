"""Losses: values against NumPy formulas, gradients against central differences, stability, on every backend."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from dlcore import backend, nn
from dlcore.gradcheck import assert_layer_gradients

RTOL = 1e-6


def _arr(a, xp):
    return backend.to_device(np.asarray(a), xp)


def _np(a):
    return backend.to_numpy(a)


def _scores(n, c, seed=0, scale=2.0):
    return np.random.default_rng(seed).normal(size=(n, c)) * scale


def _labels(n, c, seed=1):
    return np.random.default_rng(seed).integers(0, c, size=n)


def _np_log_softmax(s):
    shifted = s - s.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


# --------------------------------------------------------------------------- softmax cross-entropy


@pytest.mark.parametrize("n,c", [(1, 3), (5, 4), (8, 10)])
@pytest.mark.parametrize("targets", ["int", "onehot", "soft"])
def test_softmax_cross_entropy_gradients(xp, n, c, targets):
    t_int = _labels(n, c)
    if targets == "int":
        t = t_int
    elif targets == "onehot":
        t = np.eye(c)[t_int]
    else:
        t = np.random.default_rng(2).dirichlet(np.ones(c), size=n)
    assert_layer_gradients(nn.SoftmaxCrossEntropy(), _arr(_scores(n, c), xp), _arr(t, xp), rtol=RTOL)


def test_softmax_cross_entropy_unnormalised_soft_targets_use_the_exact_gradient(xp):
    t = np.random.default_rng(3).uniform(size=(4, 3))  # rows do not sum to 1
    assert_layer_gradients(nn.SoftmaxCrossEntropy(), _arr(_scores(4, 3), xp), _arr(t, xp), rtol=RTOL)


def test_softmax_cross_entropy_values(xp):
    s, t = _scores(6, 5), _labels(6, 5)
    loss = nn.SoftmaxCrossEntropy()
    value = loss.forward(_arr(s, xp), _arr(t, xp))
    assert value.ndim == 0 and backend.dtype_name(value.dtype) == "float64"
    assert backend.namespace(value) is backend.namespace(_arr(s, xp))
    expected = -np.mean(_np_log_softmax(s)[np.arange(6), t])
    assert float(value) == pytest.approx(expected, rel=1e-13)
    p = np.exp(_np_log_softmax(s))
    np.testing.assert_allclose(_np(loss.p), p, rtol=1e-13)
    np.testing.assert_allclose(_np(loss.backward()), (p - np.eye(5)[t]) / 6, rtol=1e-12, atol=1e-17)
    np.testing.assert_allclose(_np(loss.backward(2.5)), 2.5 * (p - np.eye(5)[t]) / 6, rtol=1e-12, atol=1e-17)
    # one-hot targets give the same loss and gradient as integer labels
    loss2 = nn.SoftmaxCrossEntropy()
    assert float(loss2.forward(_arr(s, xp), _arr(np.eye(5)[t], xp))) == pytest.approx(expected, rel=1e-13)
    np.testing.assert_allclose(_np(loss2.backward()), (p - np.eye(5)[t]) / 6, rtol=1e-12, atol=1e-17)


def test_softmax_cross_entropy_huge_scores_stay_finite(xp):
    s = np.array([[1e4, 0.0, -1e4], [0.0, 1e4, 0.0], [-1e4, -1e4, -1e4]])
    t = np.array([1, 1, 2])
    loss = nn.SoftmaxCrossEntropy()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value = float(loss.forward(_arr(s, xp), _arr(t, xp)))
        grad = _np(loss.backward())
    # row 0: the true class is 1e4 below the winner; row 1: correct and certain; row 2: uniform
    assert value == pytest.approx((1e4 + 0.0 + np.log(3)) / 3, rel=1e-12)
    assert np.all(np.isfinite(grad)) and np.all(np.isfinite(_np(loss.p)))


def test_softmax_cross_entropy_float32(xp):
    s = _arr(_scores(4, 3).astype("float32"), xp)
    loss = nn.SoftmaxCrossEntropy()
    value = loss.forward(s, _arr(_labels(4, 3), xp))
    assert backend.dtype_name(value.dtype) == "float32"
    assert backend.dtype_name(loss.backward().dtype) == "float32"
    assert backend.dtype_name(loss.p.dtype) == "float32"


# --------------------------------------------------------------------------- mean squared error


@pytest.mark.parametrize("shape", [(1,), (1, 3), (6,), (5, 2), (2, 3, 2)])
def test_mse_gradients(xp, shape):
    g = np.random.default_rng(4)
    assert_layer_gradients(nn.MSE(), _arr(g.normal(size=shape), xp), _arr(g.normal(size=shape), xp), rtol=RTOL)


def test_mse_values(xp):
    g = np.random.default_rng(5)
    y, t = g.normal(size=(4, 3)), g.normal(size=(4, 3))
    loss = nn.MSE()
    value = loss.forward(_arr(y, xp), _arr(t, xp))
    assert value.ndim == 0
    # L = (1/N) Σ_n ½ ||y_n - t_n||²
    assert float(value) == pytest.approx(np.sum(0.5 * np.sum((y - t) ** 2, axis=1)) / 4, rel=1e-13)
    np.testing.assert_allclose(_np(loss.backward()), (y - t) / 4, rtol=1e-13)
    np.testing.assert_allclose(_np(loss.backward(3.0)), 3 * (y - t) / 4, rtol=1e-13)
    assert float(nn.MSE().forward(_arr(y, xp), _arr(y, xp))) == 0.0


# --------------------------------------------------------------------------- binary cross-entropy


@pytest.mark.parametrize("shape", [(1,), (7,), (1, 1), (5, 3)])
def test_binary_cross_entropy_gradients(xp, shape):
    g = np.random.default_rng(6)
    z, t = g.normal(size=shape) * 3, g.uniform(size=shape)
    assert_layer_gradients(nn.SigmoidBinaryCrossEntropy(), _arr(z, xp), _arr(t, xp), rtol=RTOL)


def test_binary_cross_entropy_values_and_integer_labels(xp):
    g = np.random.default_rng(7)
    z, t = g.normal(size=8) * 2, g.integers(0, 2, size=8)
    loss = nn.SigmoidBinaryCrossEntropy()
    value = loss.forward(_arr(z, xp), _arr(t, xp))
    p = 1 / (1 + np.exp(-z))
    assert value.ndim == 0
    # computed in the logits' dtype and library, whatever the integer labels' dtype
    assert backend.namespace(value) is xp and backend.dtype_name(value.dtype) == "float64"
    assert float(value) == pytest.approx(-np.mean(t * np.log(p) + (1 - t) * np.log(1 - p)), rel=1e-12)
    np.testing.assert_allclose(_np(loss.p), p, rtol=1e-13)
    np.testing.assert_allclose(_np(loss.backward()), (p - t) / 8, rtol=1e-12)
    as_float = nn.SigmoidBinaryCrossEntropy().forward(_arr(z, xp), _arr(t.astype("float64"), xp))
    assert float(as_float) == pytest.approx(float(value), rel=1e-15)
    as_bool = nn.SigmoidBinaryCrossEntropy().forward(_arr(z, xp), _arr(t.astype(bool), xp))
    assert float(as_bool) == pytest.approx(float(value), rel=1e-15)


def test_binary_cross_entropy_is_stable_for_huge_logits(xp):
    z, t = np.array([1000.0, -1000.0, 1000.0, -1000.0]), np.array([1.0, 0.0, 0.0, 1.0])
    loss = nn.SigmoidBinaryCrossEntropy()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value = float(loss.forward(_arr(z, xp), _arr(t, xp)))
        grad = _np(loss.backward())
    assert value == pytest.approx(2000.0 / 4, rel=1e-14)  # two certain hits (0), two certain misses (1000)
    np.testing.assert_allclose(grad, [0.0, 0.0, 0.25, -0.25], atol=1e-300)


def test_losses_float32(xp):
    g = np.random.default_rng(8)
    y, t = _arr(g.normal(size=(3, 2)).astype("float32"), xp), _arr(g.uniform(size=(3, 2)).astype("float32"), xp)
    for loss in (nn.MSE(), nn.SigmoidBinaryCrossEntropy(), nn.SoftmaxCrossEntropy()):
        value = loss.forward(y, t)
        assert backend.dtype_name(value.dtype) == "float32", type(loss).__name__
        assert backend.dtype_name(loss.backward().dtype) == "float32", type(loss).__name__
