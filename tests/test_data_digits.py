"""load_digits (scikit-learn's bundled 8x8 digits), the Dataset container and stratified splits."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits as sk_load_digits

from dlcore import backend
from dlcore.data import Dataset, load_digits, stratified_indices, validation_split

N, COUNTS = 1797, np.bincount(sk_load_digits().target)


def _rows(x):
    x = backend.to_numpy(x).reshape(x.shape[0], -1)
    return x[np.lexsort(x.T[::-1])]


def test_shapes_dtypes_and_ranges():
    d = load_digits()
    assert isinstance(d, Dataset) and d.name == "digits"
    assert d.x_train.shape == (N - 359, 64) and d.x_test.shape == (359, 64)  # round(0.2 * 1797) = 359
    assert d.x_train.dtype == np.float32 and d.t_train.dtype == np.int64
    assert d.x_train.min() == 0.0 and d.x_train.max() == 1.0
    assert set(np.unique(d.t_test)) == set(range(10))
    assert d.class_names == tuple("0123456789") and d.n_classes == 10 and d.image_shape == (8, 8)


def test_split_is_a_partition_of_the_whole_set():
    d = load_digits(scale=False)
    everything = np.concatenate([d.x_train, d.x_test])
    np.testing.assert_array_equal(_rows(everything), _rows(sk_load_digits().data.astype(np.float32)))
    labels = np.concatenate([d.t_train, d.t_test])
    np.testing.assert_array_equal(np.bincount(labels), COUNTS)


def test_split_is_stratified():
    for test_size in (0.2, 0.5, 100):
        d = load_digits(test_size=test_size, seed=3)
        frac = (test_size if isinstance(test_size, float) else test_size / N)
        assert np.all(np.abs(np.bincount(d.t_test, minlength=10) - frac * COUNTS) < 1)


def test_seed_reproducibility():
    a, b, c = load_digits(seed=1), load_digits(seed=1), load_digits(seed=2)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.t_test, b.t_test)
    assert not np.array_equal(a.x_train, c.x_train)


def test_raw_values_and_dtype():
    d = load_digits(scale=False, dtype="float64")
    assert d.x_train.dtype == np.float64 and d.x_train.max() == 16.0
    np.testing.assert_array_equal(d.x_train, np.round(d.x_train))
    np.testing.assert_allclose(load_digits(dtype="float64").x_train * 16, d.x_train)
    raw = load_digits(scale=False, dtype="uint8")
    assert raw.x_train.dtype == np.uint8
    with pytest.raises(TypeError, match="scale=True.*floating dtype"):
        load_digits(dtype="int32")


def test_cnn_shape_matches_flat():
    flat, cnn = load_digits(), load_digits(flatten=False)
    assert cnn.x_train.shape == (N - 359, 1, 8, 8)
    np.testing.assert_array_equal(cnn.x_train.reshape(cnn.x_train.shape[0], 64), flat.x_train)


def test_one_hot():
    labels, hot = load_digits(), load_digits(one_hot=True)
    assert hot.t_train.shape == (N - 359, 10) and hot.t_train.dtype == np.float32
    np.testing.assert_array_equal(hot.t_train.sum(axis=1), 1.0)
    np.testing.assert_array_equal(hot.t_train.argmax(axis=1), labels.t_train)


def test_strict_device():
    d = load_digits(device="strict", one_hot=True)
    xp = backend.resolve("strict")
    for a in (d.x_train, d.t_train, d.x_test, d.t_test):
        assert backend.namespace(a) is xp
    assert d.x_train.dtype == xp.float32
    np.testing.assert_array_equal(backend.to_numpy(d.x_test), load_digits().x_test)
    back = d.to("cpu")
    assert isinstance(back.x_train, np.ndarray)
    assert "array_api_strict" in repr(d) and "(1438, 64) float32" in repr(d)


def test_validation_subset():
    d = load_digits(validation_size=0.1)
    assert d.x_val.shape[0] == round(0.1 * (N - 359)) and d.x_train.shape[0] == N - 359 - d.x_val.shape[0]
    full = load_digits()
    np.testing.assert_array_equal(d.x_test, full.x_test)
    np.testing.assert_array_equal(_rows(np.concatenate([d.x_train, d.x_val])), _rows(full.x_train))
    assert d.val[0] is d.x_val
    with pytest.raises(ValueError, match="no validation subset"):
        _ = load_digits().val


def test_with_validation_equals_validation_split(xp):
    d = load_digits(device=xp)
    v = d.with_validation(200, seed=5)
    x_tr, t_tr, x_val, t_val = validation_split(d.x_train, d.t_train, 200, seed=5)
    assert tuple(v.x_val.shape) == (200, 64) and tuple(x_tr.shape) == (N - 359 - 200, 64)
    np.testing.assert_array_equal(backend.to_numpy(v.t_val), backend.to_numpy(t_val))
    assert backend.namespace(x_val) is xp
    counts = np.bincount(backend.to_numpy(t_val), minlength=10)
    expected = 200 * np.bincount(backend.to_numpy(d.t_train)) / (N - 359)
    assert np.all(np.abs(counts - expected) < 1)
    with pytest.raises(ValueError, match="already has a validation subset"):
        v.with_validation(0.1)


def test_stratified_indices_exact_sizes_and_errors():
    labels = np.array([0] * 7 + [1] * 2 + [2] * 1)
    keep, held = stratified_indices(labels, 5, seed=0)
    assert held.size == 5 and keep.size == 5
    assert np.intersect1d(keep, held).size == 0
    assert np.bincount(labels[held], minlength=3).tolist() == [4, 1, 0]  # remainder tie: the larger class
    for bad in (0, 10, 1.0, 0.0):
        with pytest.raises(ValueError):
            stratified_indices(labels, bad)
    with pytest.raises(TypeError):
        stratified_indices(labels, "half")
