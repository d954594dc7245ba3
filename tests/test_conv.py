"""im2col / col2im and Conv2D: fast path against the loop oracle, the adjoint identity, gradients
against central differences (float64), forward against a direct correlation (and PyTorch when
installed), and clear errors. Every test body runs on every backend."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from dlcore import backend
from dlcore.gradcheck import assert_layer_gradients
from dlcore.nn.conv import Conv2D
from dlcore.nn.im2col import col2im, col2im_loop, im2col, im2col_images, im2col_loop

# (x shape, kernel, stride, padding): square and non-square, stride > 1, padding, batch of 1, odd sizes
GEOMETRIES = [
    ((2, 3, 7, 6), (3, 2), (2, 1), (1, 2)),
    ((1, 1, 5, 5), 3, 1, 0),
    ((3, 2, 9, 8), (2, 3), (3, 2), (0, 1)),
    ((2, 4, 6, 7), 3, 2, 1),
    ((1, 2, 4, 3), (4, 3), 1, 0),            # kernel as large as the input: one output pixel
]
IDS = ["nonsquare-s21-p12", "batch1-k3", "s32-p01", "k3-s2-p1", "full-kernel"]


def _arr(a, xp):
    return backend.to_device(np.asarray(a), xp)


def _np(a):
    return backend.to_numpy(a)


def _direct_conv(x, w, b, stride, padding):
    """y[n, o, p, q] = b[o] + Σ_{c,i,j} W[o,c,i,j] x_pad[n, c, p sh + i, q sw + j], as nested loops (NumPy)."""
    (sh, sw), (ph, pw) = stride, padding
    x_pad = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    n, _, hp, wp = x_pad.shape
    co, _, kh, kw = w.shape
    oh, ow = (hp - kh) // sh + 1, (wp - kw) // sw + 1
    y = np.zeros((n, co, oh, ow))
    for a in range(n):
        for o in range(co):
            for p in range(oh):
                for q in range(ow):
                    y[a, o, p, q] = b[o] + np.sum(w[o] * x_pad[a, :, p * sh:p * sh + kh, q * sw:q * sw + kw])
    return y


def _pair(v):
    return (v, v) if isinstance(v, int) else v


# --------------------------------------------------------------------------- im2col / col2im


@pytest.mark.parametrize("channels_last", [False, True], ids=["cij", "ijc"])
@pytest.mark.parametrize(("shape", "k", "s", "p"), GEOMETRIES, ids=IDS)
def test_im2col_fast_equals_loop(xp, shape, k, s, p, channels_last):
    x = _arr(np.random.default_rng(1).normal(size=shape), xp)
    fast = im2col(x, k, s, p, channels_last=channels_last)
    slow = im2col_loop(x, k, s, p, channels_last=channels_last)
    assert tuple(fast.shape) == tuple(slow.shape)
    np.testing.assert_allclose(_np(fast), _np(slow), rtol=0, atol=1e-12)


@pytest.mark.parametrize("channels_last", [False, True], ids=["cij", "ijc"])
@pytest.mark.parametrize(("shape", "k", "s", "p"), GEOMETRIES, ids=IDS)
def test_col2im_fast_equals_loop_and_is_the_adjoint(xp, shape, k, s, p, channels_last):
    rng = np.random.default_rng(2)
    x = _arr(rng.normal(size=shape), xp)
    col = im2col(x, k, s, p, channels_last=channels_last)
    d = _arr(rng.normal(size=tuple(col.shape)), xp)
    fast = col2im(d, shape, k, s, p, channels_last=channels_last)
    slow = col2im_loop(d, shape, k, s, p, channels_last=channels_last)
    assert tuple(fast.shape) == shape
    np.testing.assert_allclose(_np(fast), _np(slow), rtol=0, atol=1e-12)
    # <im2col(x), d> = <x, col2im(d)>
    lhs, rhs = float(xp.sum(col * d)), float(xp.sum(x * fast))
    assert abs(lhs - rhs) <= 1e-10 * (abs(lhs) + 1.0)


@pytest.mark.parametrize(("shape", "k", "s", "p"), GEOMETRIES, ids=IDS)
def test_im2col_images_is_the_per_image_transpose(xp, shape, k, s, p):
    x = _arr(np.random.default_rng(1).normal(size=shape), xp)
    per_image = _np(im2col_images(x, k, s, p))
    rows = _np(im2col_loop(x, k, s, p))
    n = shape[0]
    np.testing.assert_array_equal(per_image, rows.reshape(n, -1, rows.shape[1]).transpose(0, 2, 1))


def test_im2col_layouts_hold_the_same_numbers():
    x = np.random.default_rng(3).normal(size=(2, 3, 5, 4))
    a = im2col(x, (2, 3), 1, 1)                          # columns (c, i, j)
    b = im2col(x, (2, 3), 1, 1, channels_last=True)      # columns (i, j, c)
    np.testing.assert_array_equal(a.reshape(-1, 3, 2, 3).transpose(0, 2, 3, 1).reshape(a.shape), b)


def test_im2col_reuses_a_buffer_without_changing_results():
    rng = np.random.default_rng(4)
    x1, x2 = rng.normal(size=(2, 3, 6, 6)), rng.normal(size=(2, 3, 6, 6))
    first = im2col(x1, 3, channels_last=True)
    second = im2col(x2, 3, channels_last=True, out=first)
    assert np.shares_memory(first, second)
    np.testing.assert_array_equal(second, im2col_loop(x2, 3, channels_last=True))


def test_conv_reuses_its_im2col_buffer_without_changing_results():
    rng = np.random.default_rng(5)
    x1, x2 = rng.normal(size=(2, 3, 6, 6)), rng.normal(size=(2, 3, 6, 6))
    for layout in ("rows", "images"):
        conv = Conv2D(3, 2, 3, rng=0, dtype="float64", layout=layout)
        conv.forward(x1)
        buffer = conv.col
        y2 = conv.forward(x2)
        assert conv.col is buffer or np.shares_memory(conv.col, buffer)
        fresh = Conv2D(3, 2, 3, rng=0, dtype="float64", layout=layout)
        np.testing.assert_array_equal(y2, fresh.forward(x2))
        dy = rng.normal(size=y2.shape)
        np.testing.assert_array_equal(conv.backward(dy), fresh.backward(dy))
        np.testing.assert_array_equal(conv.grads["W"], fresh.grads["W"])


@pytest.mark.parametrize("layout", ["rows", "images"])
def test_conv_called_twice_when_the_columns_are_the_input_itself(layout):
    """A 1x1 kernel without padding: im2col of a contiguous input is the input itself; the next forward
    must neither write into it (read-only view, or worse the caller's x) nor fail."""
    rng = np.random.default_rng(6)
    x1, x2 = rng.normal(size=(2, 1, 4, 4)), rng.normal(size=(2, 1, 4, 4))
    keep1, keep2 = x1.copy(), x2.copy()
    conv = Conv2D(1, 1, 1, rng=0, dtype="float64", layout=layout)
    conv.forward(x1)
    y2 = conv.forward(x2)
    np.testing.assert_array_equal(x1, keep1)
    np.testing.assert_array_equal(x2, keep2)
    np.testing.assert_allclose(y2, Conv2D(1, 1, 1, rng=0, dtype="float64", layout=layout).forward(x2), rtol=1e-15)


# --------------------------------------------------------------------------- Conv2D forward


@pytest.mark.parametrize("layout", ["rows", "images"])
@pytest.mark.parametrize(("shape", "k", "s", "p"), GEOMETRIES, ids=IDS)
def test_conv_forward_matches_direct_correlation(xp, shape, k, s, p, layout):
    rng = np.random.default_rng(6)
    conv = Conv2D(shape[1], 3, k, s, p, rng=7, dtype="float64", layout=layout)
    conv.params["b"] = rng.normal(size=3)
    x = rng.normal(size=shape)
    expected = _direct_conv(x, conv.params["W"], conv.params["b"], _pair(s), _pair(p))
    y = conv.to(xp).forward(_arr(x, xp))
    np.testing.assert_allclose(_np(y), expected, rtol=1e-12, atol=1e-12)


def test_conv_edge_filter_by_hand():
    """A horizontal-difference filter finds the vertical edge of a step image."""
    x = np.zeros((1, 1, 4, 5))
    x[..., 2:] = 1.0
    conv = Conv2D(1, 1, (1, 2), dtype="float64")
    conv.params["W"][...] = np.array([[[[-1.0, 1.0]]]])
    y = conv.forward(x)
    np.testing.assert_array_equal(y[0, 0], np.tile([0.0, 1.0, 0.0, 0.0], (4, 1)))


def test_conv_float32_in_float32_out():
    conv = Conv2D(2, 3, 3, padding=1, rng=0)
    y = conv.forward(np.ones((1, 2, 5, 5), np.float32))
    assert y.dtype == np.float32 and y.shape == (1, 3, 5, 5)
    assert conv.backward(np.ones_like(y)).dtype == np.float32


@pytest.mark.torch
def test_conv_matches_torch():
    torch = pytest.importorskip("torch", reason="PyTorch is an optional oracle; not installed")
    rng = np.random.default_rng(8)
    for (shape, k, s, p), layout in itertools.product(GEOMETRIES, ["rows", "images"]):
        conv = Conv2D(shape[1], 4, k, s, p, rng=9, dtype="float64", layout=layout)
        conv.params["b"] = rng.normal(size=4)
        x = rng.normal(size=shape)
        y = conv.forward(x)
        dy = rng.normal(size=y.shape)
        dx = conv.backward(dy)
        xt = torch.tensor(x, requires_grad=True)
        wt = torch.tensor(conv.params["W"], requires_grad=True)
        bt = torch.tensor(conv.params["b"], requires_grad=True)
        yt = torch.nn.functional.conv2d(xt, wt, bt, stride=_pair(s), padding=_pair(p))
        yt.backward(torch.tensor(dy))
        np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(conv.grads["W"], wt.grad.numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(conv.grads["b"], bt.grad.numpy(), rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------------------- Conv2D gradients


@pytest.mark.parametrize("layout", ["rows", "images"])
@pytest.mark.parametrize(("shape", "k", "s", "p"), GEOMETRIES[:4], ids=IDS[:4])
def test_conv_gradients(xp, shape, k, s, p, layout):
    x = _arr(np.random.default_rng(10).normal(size=shape), xp)
    conv = Conv2D(shape[1], 2, k, s, p, rng=11, layout=layout).astype("float64").to(xp)
    assert_layer_gradients(conv, x, rtol=1e-6)


def test_conv_auto_layout_choice():
    first = Conv2D(1, 4, 5)                      # C_in KW = 5 < OW = 24: per-image columns
    first.forward(np.zeros((2, 1, 28, 28), np.float32))
    assert first.per_image and first.col.shape == (2, 26, 576)          # 25 kernel entries and the bias's ones
    np.testing.assert_array_equal(first.col[:, 25, :], 1.0)
    second = Conv2D(20, 4, 5)                    # C_in KW = 100 > OW = 8: channels-last rows
    second.forward(np.zeros((2, 20, 12, 12), np.float32))
    assert not second.per_image and second.col.shape == (128, 500)
    strided = Conv2D(1, 4, 3, stride=2)          # stride > 1: rows
    strided.forward(np.zeros((1, 1, 28, 28), np.float32))
    assert not strided.per_image


@pytest.mark.parametrize("layout", ["rows", "images"])
def test_conv_without_bias_and_without_input_gradient(layout):
    rng = np.random.default_rng(12)
    x = rng.normal(size=(2, 2, 5, 5))
    conv = Conv2D(2, 3, 3, bias=False, input_grad=False, rng=0, dtype="float64", layout=layout)
    assert set(conv.params) == {"W"}
    y = conv.forward(x)
    assert conv.backward(np.ones_like(y)) is None
    reference = Conv2D(2, 3, 3, bias=True, rng=0, dtype="float64")
    reference.forward(x)
    reference.backward(np.ones_like(y))
    np.testing.assert_allclose(conv.grads["W"], reference.grads["W"])


def test_conv_params_are_the_source_of_truth():
    conv = Conv2D(1, 1, 2, dtype="float64")
    conv.params["W"] = np.full((1, 1, 2, 2), 2.0)
    conv.params["b"] = np.array([1.0])
    np.testing.assert_array_equal(conv.forward(np.ones((1, 1, 3, 3))), np.full((1, 1, 2, 2), 9.0))


# --------------------------------------------------------------------------- errors


def test_conv_wrong_channel_count():
    with pytest.raises(ValueError, match=r"Conv2D: expected x with 3 channels.*got.*\(2, 4, 8, 8\)"):
        Conv2D(3, 2, 3).forward(np.zeros((2, 4, 8, 8), np.float32))


def test_conv_kernel_larger_than_padded_input():
    with pytest.raises(ValueError, match=r"Conv2D: the 5x5 kernel is larger than the input padded to 5x4"):
        Conv2D(1, 1, 5, padding=(1, 0)).forward(np.zeros((1, 1, 3, 4), np.float32))


@pytest.mark.parametrize("shape", [(8, 8), (1, 8, 8), (1, 1, 1, 8, 8)])
def test_conv_rejects_non_4d_input(shape):
    with pytest.raises(ValueError, match=r"Conv2D: expected a 4-D batch of images \(N, C, H, W\)"):
        Conv2D(1, 1, 3).forward(np.zeros(shape, np.float32))


def test_conv_rejects_integer_input_and_dtype_mismatch():
    with pytest.raises(TypeError, match="Conv2D: expected x with a floating dtype"):
        Conv2D(1, 1, 3).forward(np.zeros((1, 1, 5, 5), np.int64))
    with pytest.raises(TypeError, match="Conv2D: input dtype float64 does not match"):
        Conv2D(1, 1, 3).forward(np.zeros((1, 1, 5, 5)))


@pytest.mark.parametrize(("args", "kw", "match"), [
    ((0, 1, 3), {}, "in_channels to be a positive int"),
    ((1, 1, 0), {}, "kernel_size >= 1"),
    ((1, 1, (3, 3, 3)), {}, "kernel_size as an int or a pair"),
    ((1, 1, 3), {"stride": 0}, "stride >= 1"),
    ((1, 1, 3), {"padding": -1}, "padding >= 0"),
    ((1, 1, 3), {"layout": "nhwc"}, "expected layout in"),
    ((1, 1, 2.5), {}, "kernel_size as an int or a pair"),
])
def test_conv_rejects_bad_hyperparameters(args, kw, match):
    with pytest.raises((ValueError, TypeError), match=match):
        Conv2D(*args, **kw)


def test_conv_backward_checks():
    conv = Conv2D(1, 2, 3, rng=0)
    with pytest.raises(RuntimeError, match="Conv2D: backward called before forward"):
        conv.backward(np.zeros((1, 2, 3, 3), np.float32))
    conv.forward(np.zeros((1, 1, 5, 5), np.float32))
    with pytest.raises(ValueError, match=r"Conv2D: expected dy of shape \(1, 2, 3, 3\)"):
        conv.backward(np.zeros((1, 2, 4, 4), np.float32))


def test_col2im_rejects_a_wrong_column_shape():
    with pytest.raises(ValueError, match=r"col2im: expected col of shape \(9, 4\)"):
        col2im(np.zeros((9, 5)), (1, 1, 4, 4), 2)
