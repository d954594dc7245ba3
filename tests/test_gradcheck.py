"""dlcore.gradcheck: numerical gradients, the error measure, and that the checks catch real bugs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dlcore import backend, gradcheck
from dlcore.nn.linear import Affine


def test_numerical_gradient_of_known_function(xp):
    x = backend.to_device(np.array([[0.3, -1.2], [2.0, 0.5]]), xp)
    g = gradcheck.numerical_gradient(lambda: xp.sum(xp.sin(x) * x), x)
    want = np.sin(backend.to_numpy(x)) + backend.to_numpy(x) * np.cos(backend.to_numpy(x))
    np.testing.assert_allclose(backend.to_numpy(g), want, rtol=1e-9)
    # x is restored exactly after the perturbations
    np.testing.assert_array_equal(backend.to_numpy(x), [[0.3, -1.2], [2.0, 0.5]])


def test_relative_error_is_symmetric_floored_and_locates_the_worst_entry():
    a = np.array([1.0, 2.0, 3.0])
    n = np.array([1.0, 2.0, 3.3])
    err, where = gradcheck.relative_error(a, n)
    assert where == (2,)
    assert err == pytest.approx(0.3 / 6.3)
    assert gradcheck.relative_error(n, a)[0] == pytest.approx(err)
    # tiny entries are judged on the gradient's scale: 1e-12 vs 2e-12 next to a 1.0 is no error
    err, _ = gradcheck.relative_error(np.array([1.0, 1e-12]), np.array([1.0, 2e-12]))
    assert err < 1e-9
    assert gradcheck.relative_error(np.array([np.nan]), np.array([1.0]))[0] == math.inf


def test_check_layer_passes_a_correct_layer_with_a_tiny_error(xp):
    layer = Affine(5, 3, rng=0).astype("float64").to(xp)
    x = backend.to_device(np.random.default_rng(1).normal(size=(4, 5)), xp)
    report = gradcheck.assert_layer_gradients(layer, x, rtol=1e-6)
    assert set(report.errors) == {"dx", "W", "b"}
    assert report.max_error < 1e-8


class _DoubledBiasGradient(Affine):
    def backward(self, dy):
        dx = super().backward(dy)
        self.grads["b"] = self.grads["b"] * 2.0  # a bug: a stray factor on db
        return dx


def test_check_layer_reports_the_buggy_quantity_and_where(xp):
    layer = _DoubledBiasGradient(4, 3, rng=0).astype("float64").to(xp)
    x = backend.to_device(np.random.default_rng(2).normal(size=(2, 4)), xp)
    report = gradcheck.check_layer(layer, x)
    assert report.worst[0] == "b"
    assert report.errors["b"] == pytest.approx(1 / 3, rel=1e-4)  # |2g - g| / (|2g| + |g|)
    assert report.errors["W"] < 1e-8
    with pytest.raises(AssertionError, match=r"(?s)b: 3\.33e-01.*tolerance 1\.0e-06 exceeded"):
        gradcheck.assert_layer_gradients(layer, x)


def test_check_layer_rejects_gradients_of_the_wrong_shape():
    class WrongShape(Affine):
        def backward(self, dy):
            dx = super().backward(dy)
            self.grads["W"] = self.grads["W"].T
            return dx

    layer = WrongShape(4, 3, rng=0).astype("float64")
    with pytest.raises(AssertionError, match=r"gradient W has shape \(3, 4\), expected \(4, 3\)"):
        gradcheck.check_layer(layer, np.ones((2, 4)))


def test_directional_check_agrees_for_a_correct_layer_and_not_for_a_buggy_one(xp):
    x = backend.to_device(np.random.default_rng(3).normal(size=(6, 8)), xp)
    good = gradcheck.check_directional(Affine(8, 7, rng=0).astype("float64").to(xp), x)
    assert good.error < 1e-8
    bad = gradcheck.check_directional(_DoubledBiasGradient(8, 7, rng=0).astype("float64").to(xp), x)
    assert bad.error > 1e-3


def test_directional_check_restores_parameters():
    layer = Affine(3, 2, rng=0).astype("float64")
    w = layer.params["W"].copy()
    gradcheck.check_directional(layer, np.ones((2, 3)))
    np.testing.assert_array_equal(layer.params["W"], w)


def test_relative_error_treats_exact_agreement_and_nan_explicitly():
    assert gradcheck.relative_error(np.array([np.inf, 1.0]), np.array([np.inf, 1.0]))[0] == 0.0
    assert gradcheck.relative_error(np.array([np.nan, 1.0]), np.array([np.nan, 1.0]))[0] == math.inf
    assert gradcheck.relative_error(np.array([np.nan, 1.0]), np.array([np.nan, 1.0]), equal_nan=True)[0] == 0.0
    err, where = gradcheck.relative_error(np.array([np.inf, 1.0, 2.0]), np.array([np.inf, 1.0, 3.0]))
    assert where == (2,) and err == pytest.approx(0.2)  # an infinity elsewhere does not hide the error
