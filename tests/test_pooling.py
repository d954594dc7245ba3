"""Pooling layers: forward against direct loops over windows, gradients against central differences
(float64, with stride and padding; max-pool inputs without ties), tie-breaking, and clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from dlcore import backend
from dlcore.gradcheck import assert_layer_gradients
from dlcore.nn.pooling import AvgPool2D, GlobalAvgPool2D, LpPool2D, MaxPool2D

# (x shape, kernel, stride, padding)
GEOMETRIES = [
    ((2, 3, 6, 6), 2, None, 0),                 # the LeNet case: non-overlapping 2x2
    ((1, 2, 5, 7), (3, 2), (2, 1), (1, 1)),     # non-square, overlapping, padded, batch of 1
    ((2, 1, 7, 5), 3, 2, 1),                    # odd sizes, overlapping
]
IDS = ["2x2", "k32-s21-p11", "k3-s2-p1"]


def _arr(a, xp):
    return backend.to_device(np.asarray(a), xp)


def _np(a):
    return backend.to_numpy(a)


def _pair(v):
    return (v, v) if isinstance(v, int) else v


def _no_ties(shape, seed):
    """Distinct values spaced 0.1 apart: no max-pool ties, and finite differences never swap an argmax."""
    n = int(np.prod(shape))
    return np.random.default_rng(seed).permutation(n).reshape(shape) * 0.1 - n * 0.05


def _windows(x, k, s, p, fill):
    """Yield (n, c, p, q, window) by direct loops: the oracle."""
    (kh, kw), (sh, sw) = _pair(k), _pair(s if s is not None else k)
    ph, pw = _pair(p)
    x_pad = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=fill)
    oh, ow = (x_pad.shape[2] - kh) // sh + 1, (x_pad.shape[3] - kw) // sw + 1
    for a in range(x.shape[0]):
        for c in range(x.shape[1]):
            for i in range(oh):
                for j in range(ow):
                    yield a, c, i, j, x_pad[a, c, i * sh:i * sh + kh, j * sw:j * sw + kw], (oh, ow)


def _direct(x, k, s, p, reduce, fill=0.0):
    out = None
    for a, c, i, j, win, (oh, ow) in _windows(x, k, s, p, fill):
        if out is None:
            out = np.zeros((x.shape[0], x.shape[1], oh, ow))
        out[a, c, i, j] = reduce(win)
    return out


@pytest.mark.parametrize(("shape", "k", "s", "p"), GEOMETRIES, ids=IDS)
def test_pool_forward_matches_direct_loops(xp, shape, k, s, p):
    x = np.random.default_rng(0).normal(size=shape)
    xa = _arr(x, xp)
    np.testing.assert_allclose(_np(MaxPool2D(k, s, p).forward(xa)), _direct(x, k, s, p, np.max, -np.inf))
    np.testing.assert_allclose(_np(AvgPool2D(k, s, p).forward(xa)), _direct(x, k, s, p, np.mean), rtol=1e-12)
    lp = _direct(x, k, s, p, lambda w: np.sum(np.abs(w) ** 3) ** (1 / 3))
    np.testing.assert_allclose(_np(LpPool2D(3, k, s, p).forward(xa)), lp, rtol=1e-12)


@pytest.mark.parametrize(("shape", "k", "s", "p"), GEOMETRIES, ids=IDS)
def test_maxpool_gradients(xp, shape, k, s, p):
    assert_layer_gradients(MaxPool2D(k, s, p), _arr(_no_ties(shape, 1), xp), rtol=1e-6)


@pytest.mark.parametrize(("shape", "k", "s", "p"), GEOMETRIES, ids=IDS)
def test_avgpool_gradients(xp, shape, k, s, p):
    x = _arr(np.random.default_rng(2).normal(size=shape), xp)
    assert_layer_gradients(AvgPool2D(k, s, p), x, rtol=1e-6)


@pytest.mark.parametrize("power", [1.5, 2, 3])
@pytest.mark.parametrize(("shape", "k", "s", "p"), GEOMETRIES[:2], ids=IDS[:2])
def test_lppool_gradients(xp, shape, k, s, p, power):
    x = np.random.default_rng(3).normal(size=shape)
    x = np.where(np.abs(x) < 0.05, 0.05 + np.abs(x), x)     # |x|^p is smooth away from 0
    assert_layer_gradients(LpPool2D(power, k, s, p), _arr(x, xp), rtol=1e-6)


@pytest.mark.parametrize("shape", [(1, 3, 4, 5), (3, 2, 1, 1)])
def test_global_avgpool(xp, shape):
    x = np.random.default_rng(4).normal(size=shape)
    y = GlobalAvgPool2D().forward(_arr(x, xp))
    assert tuple(y.shape) == shape[:2]
    np.testing.assert_allclose(_np(y), x.mean(axis=(2, 3)), rtol=1e-12)
    assert_layer_gradients(GlobalAvgPool2D(), _arr(x, xp), rtol=1e-6)


def test_maxpool_ties_go_to_the_first_maximum_in_row_major_order(xp):
    x = np.array([[[[1.0, 3.0, 0.0, 0.0],
                    [3.0, 3.0, 0.0, 0.0]]]])
    pool = MaxPool2D(2)
    y = pool.forward(_arr(x, xp))
    np.testing.assert_array_equal(_np(y), [[[[3.0, 0.0]]]])
    dx = _np(pool.backward(_arr(np.array([[[[5.0, 7.0]]]]), xp)))
    np.testing.assert_array_equal(dx, [[[[0.0, 5.0, 7.0, 0.0],
                                          [0.0, 0.0, 0.0, 0.0]]]])


def test_maxpool_overlapping_windows_accumulate_at_a_shared_argmax(xp):
    x = np.array([[[[0.0, 9.0, 0.0]]]])                       # 9 is the max of both 1x2 windows
    pool = MaxPool2D((1, 2), stride=1)
    pool.forward(_arr(x, xp))
    dx = _np(pool.backward(_arr(np.array([[[[1.0, 2.0]]]]), xp)))
    np.testing.assert_array_equal(dx, [[[[0.0, 3.0, 0.0]]]])


@pytest.mark.torch
def test_maxpool_matches_torch():
    torch = pytest.importorskip("torch", reason="PyTorch is an optional oracle; not installed")
    for shape, k, s, p in GEOMETRIES:
        x = _no_ties(shape, 5)
        pool = MaxPool2D(k, s, p)
        y = pool.forward(x)
        dy = np.random.default_rng(6).normal(size=y.shape)
        xt = torch.tensor(x, requires_grad=True)
        yt = torch.nn.functional.max_pool2d(xt, _pair(k), _pair(s) if s is not None else None, _pair(p))
        yt.backward(torch.tensor(dy))
        np.testing.assert_allclose(y, yt.detach().numpy())
        np.testing.assert_allclose(pool.backward(dy), xt.grad.numpy(), rtol=1e-12)


def test_pool_float32_in_float32_out():
    x = np.random.default_rng(7).normal(size=(2, 2, 4, 4)).astype(np.float32)
    for layer in (MaxPool2D(2), AvgPool2D(2), LpPool2D(2, 2), GlobalAvgPool2D()):
        y = layer.forward(x)
        assert y.dtype == np.float32
        assert layer.backward(np.ones_like(y)).dtype == np.float32


def test_maxpool_keeps_a_channels_last_layout():
    x = np.random.default_rng(8).normal(size=(2, 4, 4, 3)).transpose(0, 3, 1, 2)    # (N, C, H, W) view, C fastest
    pool = MaxPool2D(2)
    y = pool.forward(x)
    np.testing.assert_array_equal(y, MaxPool2D(2).forward(np.ascontiguousarray(x)))
    dx = pool.backward(np.ones(y.shape))
    assert dx.strides[1] == dx.itemsize                                              # still channels last
    np.testing.assert_array_equal(dx.sum(axis=(2, 3)), np.full((2, 3), 4.0))


# --------------------------------------------------------------------------- errors


def test_pool_kernel_larger_than_padded_input():
    with pytest.raises(ValueError, match="MaxPool2D: the 3x3 kernel is larger than the input padded to 2x2"):
        MaxPool2D(3).forward(np.zeros((1, 1, 2, 2)))
    with pytest.raises(ValueError, match="AvgPool2D: the 4x4 kernel"):
        AvgPool2D(4, padding=1).forward(np.zeros((1, 1, 1, 1)))


@pytest.mark.parametrize("layer", [MaxPool2D(2), AvgPool2D(2), LpPool2D(2, 2), GlobalAvgPool2D()],
                         ids=["max", "avg", "lp", "global"])
def test_pool_rejects_non_4d_input(layer):
    with pytest.raises(ValueError, match=r"expected a 4-D batch of images \(N, C, H, W\)"):
        layer.forward(np.zeros((4, 4)))


def test_pool_rejects_bad_hyperparameters():
    with pytest.raises(ValueError, match="MaxPool2D: expected padding at most half the kernel"):
        MaxPool2D(2, padding=2)
    with pytest.raises(ValueError, match="LpPool2D: expected a finite p >= 1"):
        LpPool2D(0.5, 2)
    with pytest.raises(ValueError, match="LpPool2D: expected a finite p >= 1"):
        LpPool2D(float("inf"), 2)
    with pytest.raises(ValueError, match="AvgPool2D: expected stride >= 1"):
        AvgPool2D(2, stride=0)


def test_pool_backward_checks():
    pool = MaxPool2D(2)
    with pytest.raises(RuntimeError, match="MaxPool2D: backward called before forward"):
        pool.backward(np.zeros((1, 1, 1, 1)))
    pool.forward(np.zeros((1, 1, 4, 4)))
    with pytest.raises(ValueError, match=r"MaxPool2D: expected dy of shape \(1, 1, 2, 2\)"):
        pool.backward(np.zeros((1, 1, 4, 4)))
    with pytest.raises(TypeError, match="MaxPool2D: expected dy of dtype float64"):
        pool.backward(np.zeros((1, 1, 2, 2), np.float32))
