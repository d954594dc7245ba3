"""Toy 2-D data sets: exact truth tables, shapes, seeds, and the geometry each set promises."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import Perceptron

from dlcore import backend
from dlcore.data import blobs, circles, linearly_separable, logic_gate, moons, spirals, xor

CORNERS = [(0, 0), (0, 1), (1, 0), (1, 1)]
TABLES = {
    "AND": lambda a, b: a and b,
    "OR": lambda a, b: a or b,
    "NAND": lambda a, b: not (a and b),
    "NOR": lambda a, b: not (a or b),
    "XOR": lambda a, b: a != b,
    "XNOR": lambda a, b: a == b,
}
MAKERS = [blobs, linearly_separable, xor, moons, circles, spirals]


@pytest.mark.parametrize("name", list(TABLES))
def test_logic_gate_truth_tables(name):
    x, t = logic_gate(name.lower())
    assert x.dtype == np.float32 and t.dtype == np.int64 and x.shape == (4, 2)
    np.testing.assert_array_equal(x, np.array(CORNERS, np.float32))
    np.testing.assert_array_equal(t, [int(bool(TABLES[name](a, b))) for a, b in CORNERS])


def test_unknown_gate():
    with pytest.raises(ValueError, match="unknown gate 'IMPLIES'.*AND"):
        logic_gate("IMPLIES")


@pytest.mark.parametrize("make", MAKERS, ids=lambda f: f.__name__)
def test_shapes_dtypes_and_seeds(make):
    x, t = make(seed=0)[:2]
    assert x.ndim == 2 and x.shape[1] == 2 and x.dtype == np.float32
    assert t.shape == (x.shape[0],) and t.dtype == np.int64 and t.min() == 0
    assert np.all(np.isfinite(x))
    x2, t2 = make(seed=0)[:2]
    x3, _ = make(seed=1)[:2]
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(t, t2)
    assert not np.array_equal(x, x3)
    assert not np.all(np.diff(t) >= 0), "samples should come shuffled, not sorted by class"


def test_class_counts():
    assert np.bincount(blobs(101, 3)[1]).tolist() == [34, 34, 33]
    assert np.bincount(xor(10)[1]).tolist() == [5, 5]  # corners get 3, 3, 2, 2 samples
    assert np.bincount(spirals(7, 4)[1]).tolist() == [7] * 4
    assert np.bincount(moons(11)[1]).tolist() == [6, 5]


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("margin", [0.05, 0.5])
def test_linearly_separable_keeps_its_margin(seed, margin):
    x, t, w, b = linearly_separable(200, margin, seed, return_hyperplane=True)
    s = x.astype(np.float64) @ w + b
    assert np.isclose(np.linalg.norm(w), 1.0)
    assert np.all(np.abs(s) >= margin)
    np.testing.assert_array_equal(t, (s > 0).astype(np.int64))
    assert np.bincount(t).tolist() == [100, 100]


@pytest.mark.parametrize("seed", range(3))
def test_linearly_separable_is_learned_perfectly_by_a_perceptron(seed):
    x, t = linearly_separable(100, 0.1, seed)
    clf = Perceptron(max_iter=1000, tol=None, shuffle=False).fit(x, t)
    assert clf.score(x, t) == 1.0


def test_blobs_geometry():
    centers = np.array([[0.0, 0.0], [5.0, 5.0], [-5.0, 5.0]])
    x, t = blobs(30, centers, std=0.0)
    np.testing.assert_array_equal(x, centers[t].astype(np.float32))
    x, t = blobs(400, 2, std=0.3, seed=4)
    assert Perceptron(max_iter=1000, tol=None).fit(x, t).score(x, t) == 1.0


def test_xor_labels_follow_the_corners():
    x, t = xor(400, noise=0.1, seed=2)
    nearest = (x > 0.5).astype(np.int64)
    np.testing.assert_array_equal(t, nearest[:, 0] ^ nearest[:, 1])


def test_circles_and_moons_without_noise():
    x, t = circles(100, noise=0.0, factor=0.3)
    r = np.linalg.norm(x, axis=1)
    np.testing.assert_allclose(r[t == 0], 1.0, rtol=1e-6)
    np.testing.assert_allclose(r[t == 1], 0.3, rtol=1e-6)
    x, t = moons(100, noise=0.0)
    np.testing.assert_allclose(np.linalg.norm(x[t == 0], axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(x[t == 1] - [1.0, 0.5], axis=1), 1.0, rtol=1e-6)
    with pytest.raises(ValueError, match="factor"):
        circles(10, factor=1.5)


def test_spirals_follow_cs231n():
    x, t = spirals(50, 3, noise=0.0, seed=0)
    r = np.linalg.norm(x, axis=1)
    assert r.max() <= 1.0 + 1e-6 and x.shape == (150, 2)
    arm = x[t == 1][np.argsort(r[t == 1])]
    radius = np.linspace(0, 1, 50)
    angle = np.linspace(4, 8, 50)
    np.testing.assert_allclose(arm[1:], np.stack([radius * np.sin(angle), radius * np.cos(angle)], 1)[1:], atol=1e-6)


def test_device_strict():
    xp = backend.resolve("strict")
    for x, t in (logic_gate("and", device="strict"), spirals(5, 2, device="strict")):
        assert backend.namespace(x, t) is xp and x.dtype == xp.float32 and t.dtype == xp.int64
