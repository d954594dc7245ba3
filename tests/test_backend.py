"""dlcore.backend: namespaces, devices, random numbers, strided windows, scatter-add."""

from __future__ import annotations

import numpy as np
import pytest

from dlcore import backend
from dlcore.nn.linear import Affine


def test_namespace_of_numpy_is_plain_numpy():
    assert backend.namespace(np.ones(2), None, 3.0) is np


def test_to_device_round_trip(xp):
    a = np.arange(6.0).reshape(2, 3)
    on = backend.to_device(a, xp)
    assert backend.namespace(on) is xp
    assert type(on) is type(xp.asarray([0.0]))  # an array of xp's own library, not a NumPy array left behind
    np.testing.assert_array_equal(backend.to_numpy(on), a)
    assert backend.to_device(on, xp) is on  # no copy when already there


def test_to_device_moves_containers(xp):
    moved = backend.to_device({"a": np.ones(2), "b": [np.zeros(1), None]}, xp)
    assert backend.to_numpy(moved["a"]).tolist() == [1.0, 1.0]
    assert moved["b"][1] is None


def test_mixing_libraries_raises_clear_error():
    import array_api_strict as xs

    with pytest.raises(backend.DeviceMismatchError, match="Affine.forward.*different libraries.*to_device"):
        backend.namespace(np.ones(2), xs.ones(2), where="Affine.forward")


def test_mixing_devices_raises_clear_error():
    import array_api_strict as xs

    other = xs.ones(2, device=xs.Device("device1"))
    with pytest.raises(backend.DeviceMismatchError, match="different devices"):
        backend.namespace(xs.ones(2), other)


def test_layer_forward_with_batch_on_other_device_names_layer():
    layer = Affine(3, 2, rng=0).to("strict")
    with pytest.raises(backend.DeviceMismatchError, match="Affine"):
        layer.forward(np.ones((4, 3), dtype="float32"))


@pytest.mark.skipif(backend.gpu_available(), reason="a GPU is present; the no-GPU error cannot be provoked")
def test_gpu_request_without_cupy_or_device_is_clear():
    with pytest.raises(backend.BackendUnavailableError, match="(CuPy|CUDA).*cpu"):
        backend.resolve("gpu")
    with pytest.raises(backend.BackendUnavailableError):
        Affine(2, 2).to("gpu")


def test_unknown_device_name():
    with pytest.raises(ValueError, match="expected 'cpu', 'gpu'"):
        backend.resolve("tpu")


@pytest.mark.parametrize("fn", ["normal", "uniform", "random"])
def test_random_is_seeded_and_backend_independent(xp, fn):
    draw = getattr(backend, fn)
    a = draw(42, (3, 4), dtype="float64", xp=xp)
    b = draw(42, (3, 4), dtype="float64", xp=xp)
    assert backend.dtype_name(a.dtype) == "float64"
    np.testing.assert_array_equal(backend.to_numpy(a), backend.to_numpy(b))
    if not backend.is_cupy(xp):  # host-drawn backends give identical numbers to NumPy
        np.testing.assert_array_equal(backend.to_numpy(a), draw(42, (3, 4), dtype="float64"))


def test_random_statistics():
    z = backend.normal(0, 200_000, loc=1.0, scale=2.0, dtype="float64")
    assert abs(z.mean() - 1.0) < 0.02 and abs(z.std() - 2.0) < 0.02
    u = backend.uniform(0, 200_000, low=-1.0, high=3.0, dtype="float64")
    assert u.min() >= -1.0 and u.max() < 3.0 and abs(u.mean() - 1.0) < 0.02


def test_bernoulli_follows_p(xp):
    p = backend.to_device(np.full((50_000,), 0.3), xp)
    s = backend.to_numpy(backend.bernoulli(0, p))
    assert set(np.unique(s)) <= {0.0, 1.0}
    assert abs(s.mean() - 0.3) < 0.01


def test_permutation_and_integers(xp):
    perm = backend.to_numpy(backend.permutation(3, 10, xp=xp))
    assert sorted(perm.tolist()) == list(range(10))
    ints = backend.to_numpy(backend.integers(0, 2, 5, (100,), xp=xp))
    assert ints.min() >= 2 and ints.max() < 5


@pytest.mark.parametrize("shape,k,stride", [((2, 3, 5, 6), (3, 2), (1, 1)), ((1, 1, 7, 5), (2, 3), (2, 1)),
                                            ((2, 2, 4, 4), (4, 4), (1, 1))])
def test_windows2d_matches_naive(xp, shape, k, stride):
    x = np.random.default_rng(0).normal(size=shape)
    got = backend.to_numpy(backend.windows2d(backend.to_device(x, xp), *k, stride))
    n, c, h, w = shape
    oh, ow = (h - k[0]) // stride[0] + 1, (w - k[1]) // stride[1] + 1
    want = np.empty((n, c, oh, ow, *k))
    for i in range(oh):
        for j in range(ow):
            r, s = i * stride[0], j * stride[1]
            want[:, :, i, j] = x[:, :, r:r + k[0], s:s + k[1]]
    np.testing.assert_array_equal(got, want)


def test_windows2d_rejects_oversized_window():
    with pytest.raises(ValueError, match="does not fit"):
        backend.windows2d(np.zeros((1, 1, 2, 2)), 3, 3)


def test_scatter_add_accumulates_repeated_indices(xp):
    target = backend.to_device(np.zeros((5, 2)), xp)
    idx = backend.to_device(np.array([0, 3, 3, 1, 3]), xp)
    vals = backend.to_device(np.arange(10.0).reshape(5, 2), xp)
    out = backend.to_numpy(backend.scatter_add(target, idx, vals))
    want = np.zeros((5, 2))
    np.add.at(want, np.array([0, 3, 3, 1, 3]), np.arange(10.0).reshape(5, 2))
    np.testing.assert_array_equal(out, want)


def test_layer_to_and_astype(xp):
    layer = Affine(4, 3, rng=0)
    w0 = layer.params["W"].copy()
    layer.astype("float64").to(xp)
    assert backend.dtype_name(layer.params["W"].dtype) == "float64"
    np.testing.assert_allclose(backend.to_numpy(layer.params["W"]), w0, rtol=1e-7)
    y = layer.forward(backend.to_device(np.ones((2, 4)), xp))
    assert backend.dtype_name(y.dtype) == "float64"
    layer.to("cpu")
    assert isinstance(layer.params["W"], np.ndarray) and layer.device == "cpu"


def test_layers_never_cast_silently():
    layer = Affine(4, 3, rng=0)  # float32
    with pytest.raises(TypeError, match="Affine: input dtype float64 does not match parameter 'W' dtype float32"):
        layer.forward(np.ones((2, 4)))
