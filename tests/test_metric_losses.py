"""Contrastive and triplet losses: values against the formulas, gradients w.r.t. every embedding against
central differences (float64, away from the hinge kinks) on every backend, and clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from dlcore import backend
from dlcore.gradcheck import assert_layer_gradients, numerical_gradient, relative_error
from dlcore.nn.metric import ContrastiveLoss, TripletLoss


def _arr(a, xp):
    return backend.to_device(np.asarray(a), xp)


def _np(a):
    return backend.to_numpy(a)


def _pairs(n=6, d=4, seed=0):
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=(n, d))
    x2 = x1 + rng.normal(size=(n, d)) * np.linspace(0.1, 1.0, n)[:, None]   # distances on both sides of m
    y = np.array([1, 0] * (n // 2) + [0] * (n % 2))
    return x1, x2, y


def _check_all_inputs(loss, inputs, xp):
    """Every embedding's gradient against central differences (check_layer covers only the first)."""
    arrays = [_arr(a, xp) for a in inputs]
    float_count = 2 if isinstance(loss, ContrastiveLoss) else 3
    loss.forward(*arrays)
    grads = loss.backward()
    assert len(grads) == float_count
    for k in range(float_count):
        numeric = numerical_gradient(lambda: loss.forward(*arrays), arrays[k])
        err, where = relative_error(_np(grads[k]), _np(numeric))
        assert err <= 1e-6, f"gradient {k}: relative error {err:.2e} at {where}"


def test_contrastive_value(xp):
    x1, x2, y = _pairs()
    m = 1.2
    d = np.linalg.norm(x1 - x2, axis=1)
    expected = np.mean(y * d**2 + (1 - y) * np.maximum(0, m - d) ** 2)
    value = ContrastiveLoss(m).forward(_arr(x1, xp), _arr(x2, xp), _arr(y, xp))
    assert abs(float(value) - expected) <= 1e-12 * expected


def test_contrastive_gradients(xp):
    x1, x2, y = _pairs()
    m = 1.2
    d = np.linalg.norm(x1 - x2, axis=1)
    assert np.min(np.abs(d - m)) > 1e-3 and np.sum((y == 0) & (d < m)) >= 1     # an active hinge, no kink
    assert_layer_gradients(ContrastiveLoss(m), _arr(x1, xp), _arr(x2, xp), _arr(y, xp), rtol=1e-6)
    _check_all_inputs(ContrastiveLoss(m), (x1, x2, y), xp)


def test_contrastive_labels_as_bool_int_or_float_agree():
    x1, x2, y = _pairs(seed=1)
    values = [float(ContrastiveLoss().forward(x1, x2, lab)) for lab in (y, y.astype(bool), y.astype(np.float64))]
    assert values[0] == values[1] == values[2]


def test_contrastive_identical_dissimilar_pair_has_finite_zero_gradient():
    x = np.ones((2, 3))
    loss = ContrastiveLoss(1.0)
    assert float(loss.forward(x, x.copy(), np.array([0, 0]))) == 1.0     # m² each
    dx1, dx2 = loss.backward()
    assert np.all(dx1 == 0) and np.all(dx2 == 0)


def _triplets(n=6, d=3, seed=2):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n, d))
    p = a + 0.5 * rng.normal(size=(n, d))
    neg = a + np.linspace(0.3, 2.0, n)[:, None] * rng.normal(size=(n, d))
    return a, p, neg


def test_triplet_value_and_gradients(xp):
    a, p, neg = _triplets()
    m = 0.5
    per = np.sum((a - p) ** 2, axis=1) - np.sum((a - neg) ** 2, axis=1) + m
    assert np.min(np.abs(per)) > 1e-3 and 0 < np.sum(per > 0) < len(per)     # active and inactive, no kink
    loss = TripletLoss(m)
    value = loss.forward(_arr(a, xp), _arr(p, xp), _arr(neg, xp))
    assert abs(float(value) - np.mean(np.maximum(per, 0))) <= 1e-12
    assert_layer_gradients(TripletLoss(m), _arr(a, xp), _arr(p, xp), _arr(neg, xp), rtol=1e-6)
    _check_all_inputs(TripletLoss(m), (a, p, neg), xp)


def test_float32_in_float32_out():
    a, p, neg = (v.astype(np.float32) for v in _triplets())
    loss = TripletLoss(0.5)
    assert loss.forward(a, p, neg).dtype == np.float32
    assert all(g.dtype == np.float32 for g in loss.backward())
    c = ContrastiveLoss()
    assert c.forward(a, p, np.ones(6, np.int64)).dtype == np.float32
    assert all(g.dtype == np.float32 for g in c.backward())


def test_metric_loss_errors():
    x = np.zeros((3, 2))
    with pytest.raises(ValueError, match=r"ContrastiveLoss: expected pair labels y of shape \(3,\)"):
        ContrastiveLoss().forward(x, x, np.zeros(2))
    with pytest.raises(ValueError, match=r"ContrastiveLoss: expected pair labels y in \{0, 1\}"):
        ContrastiveLoss().forward(x, x, np.array([0, 1, 2]))
    with pytest.raises(TypeError, match="ContrastiveLoss: expected pair labels as integers, booleans or float64"):
        ContrastiveLoss().forward(x, x, np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="ContrastiveLoss: expected x2 like x1"):
        ContrastiveLoss().forward(x, np.zeros((3, 3)), np.zeros(3))
    with pytest.raises(ValueError, match="TripletLoss: expected negative like anchor"):
        TripletLoss().forward(x, x, np.zeros((2, 2)))
    with pytest.raises(ValueError, match="TripletLoss: expected anchor to be 2-D"):
        TripletLoss().forward(np.zeros(3), np.zeros(3), np.zeros(3))
    with pytest.raises(ValueError, match="TripletLoss: expected a margin >= 0"):
        TripletLoss(-1.0)
    with pytest.raises(RuntimeError, match="TripletLoss: backward called before forward"):
        TripletLoss().backward()
