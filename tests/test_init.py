"""Initializers: variances match their formulas, seeds reproduce, names resolve, every backend."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dlcore import backend
from dlcore.nn import init

SHAPE = (300, 500)  # 150 000 draws: the sample variance is within ~0.4 % (normal) of the truth
FAN_IN, FAN_OUT = SHAPE

VARIANCES = {
    "he_normal": (init.he_normal, 2 / FAN_IN),
    "he_uniform": (init.he_uniform, 2 / FAN_IN),
    "xavier_normal": (init.xavier_normal, 2 / (FAN_IN + FAN_OUT)),
    "xavier_uniform": (init.xavier_uniform, 2 / (FAN_IN + FAN_OUT)),
    "lecun_normal": (init.lecun_normal, 1 / FAN_IN),
    "normal(0.01)": (init.normal(0.01), 1e-4),
}


@pytest.mark.parametrize("name", list(VARIANCES))
def test_variance_matches_the_formula(name):
    draw, var = VARIANCES[name]
    w = backend.to_numpy(draw(SHAPE, 0)).astype("float64")
    assert w.shape == SHAPE
    assert np.var(w) == pytest.approx(var, rel=0.05)
    assert abs(np.mean(w)) < 0.05 * math.sqrt(var)
    if "uniform" in name:
        assert np.max(np.abs(w)) <= math.sqrt(3 * var)
        assert np.max(np.abs(w)) > 0.99 * math.sqrt(3 * var)  # really uniform on [-a, a], not narrower


def test_uniform_and_normal_are_different_distributions():
    u = backend.to_numpy(init.he_uniform(SHAPE, 0)).astype("float64")
    n = backend.to_numpy(init.he_normal(SHAPE, 0)).astype("float64")
    kurt = lambda w: np.mean(w**4) / np.mean(w**2) ** 2  # noqa: E731 - 1.8 for uniform, 3 for normal
    assert kurt(u) == pytest.approx(1.8, rel=0.03)
    assert kurt(n) == pytest.approx(3.0, rel=0.05)


def test_convolution_fans():
    assert init.fans((16, 3, 5, 5)) == (75, 400)
    assert init.fans((7, 9)) == (7, 9)
    assert init.fans((6,)) == (6, 6)
    w = backend.to_numpy(init.he_normal((64, 32, 3, 3), 1)).astype("float64")
    assert np.var(w) == pytest.approx(2 / (32 * 9), rel=0.05)


@pytest.mark.parametrize("name", ["he", "he_uniform", "xavier", "xavier_uniform", "lecun"])
def test_same_seed_same_weights(name):
    draw = init.get(name)
    a, b = draw((20, 30), 7), draw((20, 30), 7)
    np.testing.assert_array_equal(backend.to_numpy(a), backend.to_numpy(b))
    assert not np.array_equal(backend.to_numpy(a), backend.to_numpy(draw((20, 30), 8)))
    gen = np.random.default_rng(7)  # a Generator advances: two draws differ
    assert not np.array_equal(backend.to_numpy(draw((20, 30), gen)), backend.to_numpy(draw((20, 30), gen)))


def test_seeded_layers_are_reproducible():
    from dlcore import nn

    np.testing.assert_array_equal(nn.Affine(5, 4, rng=3).params["W"], nn.Affine(5, 4, rng=3).params["W"])
    np.testing.assert_array_equal(nn.Maxout(5, 4, 3, rng=3).params["W"], nn.Maxout(5, 4, 3, rng=3).params["W"])


def test_get_resolves_names_and_callables():
    assert init.get("he") is init.he_normal
    assert init.get("Glorot") is init.xavier_normal
    assert init.get("xavier_uniform") is init.xavier_uniform
    assert init.get(init.lecun_normal) is init.lecun_normal
    custom = init.normal(0.5)
    assert init.get(custom) is custom


@pytest.mark.parametrize("bad", ["kaiming_fancy", "", 3])
def test_unknown_initializer_raises(bad):
    with pytest.raises(ValueError, match=rf"unknown initializer {bad!r}: expected a callable or one of \["):
        init.get(bad)


def test_initializers_on_every_backend(xp):
    target = backend.namespace(backend.to_device(np.zeros(1), xp))
    for draw in (init.he_normal, init.he_uniform, init.xavier_normal, init.xavier_uniform, init.lecun_normal,
                 init.normal(0.1), init.zeros, init.ones):
        w = draw((4, 6), 0, "float64", xp)
        assert backend.namespace(w) is target
        assert backend.dtype_name(w.dtype) == "float64" and tuple(w.shape) == (4, 6)
    assert backend.dtype_name(init.he_normal((4, 6), 0, xp=xp).dtype) == "float32"  # the default dtype
    np.testing.assert_array_equal(backend.to_numpy(init.zeros((2, 3), xp=xp)), 0.0)
    np.testing.assert_array_equal(backend.to_numpy(init.ones((2, 3), xp=xp)), 1.0)
    # the same seed draws the same numbers on every backend that draws on the host
    if not backend.is_cupy(xp):
        np.testing.assert_array_equal(backend.to_numpy(init.he_normal((4, 6), 5, "float64", xp)),
                                      init.he_normal((4, 6), 5, "float64"))
