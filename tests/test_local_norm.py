"""LocalResponseNorm and LocalContrastNorm: forward against the formulas written out directly (NumPy loops),
gradients against central differences in float64 on every backend, and clear errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dlcore import backend
from dlcore.gradcheck import assert_layer_gradients
from dlcore.nn.local_norm import LocalContrastNorm, LocalResponseNorm


def _arr(a, xp):
    return backend.to_device(np.asarray(a), xp)


def _np(a):
    return backend.to_numpy(a)


def _lrn_direct(x, n, alpha, beta, k):
    """b_c = a_c / (k + α Σ_{c' = max(0, c - n//2)}^{min(C-1, c + (n-1)//2)} a_{c'}²)^β."""
    y = np.empty_like(x)
    channels = x.shape[1]
    for c in range(channels):
        lo, hi = max(0, c - n // 2), min(channels - 1, c + (n - 1) // 2)
        y[:, c] = x[:, c] / (k + alpha * np.sum(x[:, lo:hi + 1] ** 2, axis=1)) ** beta
    return y


def _lcn_direct(x, size, sigma, window, eps):
    """The module docstring's formula, one output pixel at a time."""
    r = size // 2
    g = np.ones(size) if window == "box" else np.exp(-0.5 * ((np.arange(size) - r) / sigma) ** 2)
    w2 = np.outer(g, g) / g.sum() ** 2
    n, c, h, w = x.shape

    def local_mean(u):            # u: (C, H, W) -> (H, W)
        out = np.zeros((h, w))
        for a in range(h):
            for b in range(w):
                total = mass = 0.0
                for p in range(size):
                    for q in range(size):
                        i, j = a + p - r, b + q - r
                        if 0 <= i < h and 0 <= j < w:
                            total += w2[p, q] * u[:, i, j].mean()
                            mass += w2[p, q]
                out[a, b] = total / mass
        return out

    y = np.empty_like(x)
    for s in range(n):
        v = x[s] - local_mean(x[s])
        sig = np.sqrt(local_mean(v * v))
        d = np.maximum(np.maximum(sig, sig.mean()), eps)
        y[s] = v / d
    return y


@pytest.mark.parametrize(("size", "alpha", "beta", "k"), [(5, 1e-4, 0.75, 2.0), (3, 0.5, 0.6, 1.0), (4, 0.3, 1.2, 1.5)])
def test_lrn_forward_matches_formula(xp, size, alpha, beta, k):
    x = np.random.default_rng(0).normal(size=(2, 6, 3, 2))
    y = LocalResponseNorm(size, alpha, beta, k).forward(_arr(x, xp))
    np.testing.assert_allclose(_np(y), _lrn_direct(x, size, alpha, beta, k), rtol=1e-12)


@pytest.mark.parametrize(("size", "shape"), [(3, (2, 5, 3, 2)), (4, (1, 4, 2, 3)), (1, (1, 2, 2, 2))])
def test_lrn_gradients(xp, size, shape):
    x = _arr(np.random.default_rng(1).normal(size=shape), xp)
    assert_layer_gradients(LocalResponseNorm(size, alpha=0.4, beta=0.75, k=1.0), x, rtol=1e-6)


@pytest.mark.torch
def test_lrn_matches_torch_with_alpha_times_size():
    torch = pytest.importorskip("torch", reason="PyTorch is an optional oracle; not installed")
    x = np.random.default_rng(2).normal(size=(2, 7, 3, 3))
    for size in (3, 4, 5):
        ours = LocalResponseNorm(size, alpha=0.2, beta=0.75, k=2.0).forward(x)
        ref = torch.nn.LocalResponseNorm(size, alpha=0.2 * size, beta=0.75, k=2.0)(torch.tensor(x))
        np.testing.assert_allclose(ours, ref.numpy(), rtol=1e-10)


@pytest.mark.parametrize(("size", "window"), [(3, "gaussian"), (5, "box")])
def test_lcn_forward_matches_formula(xp, size, window):
    x = np.random.default_rng(3).normal(size=(2, 2, 5, 4))
    layer = LocalContrastNorm(size, window=window)
    y = layer.forward(_arr(x, xp))
    np.testing.assert_allclose(_np(y), _lcn_direct(x, size, layer.sigma, window, layer.eps), rtol=1e-10)


def test_lcn_output_is_locally_centred_and_ignores_brightness_and_contrast():
    x = np.random.default_rng(4).normal(size=(1, 1, 8, 8))
    layer = LocalContrastNorm(9, window="box")          # one window covers the whole image
    y = layer.forward(x)
    np.testing.assert_allclose(layer.forward(3.0 * x + 5.0), y, rtol=1e-10, atol=1e-12)
    assert abs(float(layer.forward(x).mean())) < 0.5
    flat = layer.forward(np.full((1, 1, 4, 4), 7.0))    # a constant image: no division by zero, output 0
    np.testing.assert_allclose(flat, 0.0, atol=1e-9)


@pytest.mark.parametrize(("size", "window", "shape"), [(3, "gaussian", (2, 2, 4, 5)), (5, "box", (1, 3, 3, 3))])
def test_lcn_gradients(xp, size, window, shape):
    x = _arr(np.random.default_rng(5).normal(size=shape), xp)
    assert_layer_gradients(LocalContrastNorm(size, window=window), x, rtol=1e-6, eps=1e-4)


def test_lcn_gradient_where_the_mean_sigma_wins():
    """Mostly flat image with one bright corner: most positions divide by mean σ (the max's other branch)."""
    x = np.zeros((1, 1, 6, 6)) + np.random.default_rng(6).normal(size=(1, 1, 6, 6)) * 0.01
    x[0, 0, :2, :2] += 3.0
    layer = LocalContrastNorm(3)
    layer.forward(x)
    _, sigma, c_mean, _, _ = layer.cache
    assert 0 < int(np.sum(sigma < c_mean)) < sigma.size
    assert np.min(np.abs(sigma - c_mean)) > 1e-3          # away from the kink
    assert_layer_gradients(layer, x, rtol=1e-6, eps=1e-5)


# --------------------------------------------------------------------------- errors


def test_local_norm_errors():
    with pytest.raises(ValueError, match=r"LocalResponseNorm: expected a 4-D batch of images \(N, C, H, W\)"):
        LocalResponseNorm().forward(np.zeros((2, 5)))
    with pytest.raises(ValueError, match=r"LocalContrastNorm: expected a 4-D batch"):
        LocalContrastNorm().forward(np.zeros((2, 5, 5)))
    with pytest.raises(ValueError, match="LocalResponseNorm: expected size to be a positive int"):
        LocalResponseNorm(0)
    with pytest.raises(ValueError, match="LocalContrastNorm: expected an odd positive window size"):
        LocalContrastNorm(4)
    with pytest.raises(ValueError, match="LocalContrastNorm: expected window 'gaussian' or 'box'"):
        LocalContrastNorm(3, window="disc")
    with pytest.raises(RuntimeError, match="LocalContrastNorm: backward called before forward"):
        LocalContrastNorm().backward(np.zeros((1, 1, 2, 2)))
    layer = LocalResponseNorm()
    layer.forward(np.ones((1, 3, 2, 2)))
    with pytest.raises(ValueError, match=r"LocalResponseNorm: expected dy of shape \(1, 3, 2, 2\)"):
        layer.backward(np.ones((1, 3, 2, 1)))
    assert math.isclose(layer.k, 2.0)
