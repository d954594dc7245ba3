"""2-D convolution layer (Conv2D), computed with im2col (see :mod:`dlcore.nn.im2col`)."""

from __future__ import annotations

from typing import Any

from dlcore import backend
from dlcore.nn import init as initializers
from dlcore.nn.base import Layer, check_array, check_dtype_match
from dlcore.nn.functional import _check_dy
from dlcore.nn.im2col import IntPair, im2col, materialize, output_size, pair

__all__ = ["Conv2D", "check_image_batch"]


def check_image_batch(layer: str, x: Any, channels: int | None = None) -> None:
    """x must be a floating (N, C, H, W) batch (with ``channels`` channels when given)."""
    if hasattr(x, "shape") and hasattr(x, "ndim") and x.ndim != 4:
        raise ValueError(
            f"{layer}: expected a 4-D batch of images (N, C, H, W), got an array of shape {tuple(x.shape)}; "
            "for a single image use x[None], for a flat batch reshape it to (N, C, H, W)"
        )
    check_array(layer, "x", x, ndim=4)
    if channels is not None and x.shape[1] != channels:
        raise ValueError(f"{layer}: expected x with {channels} channels (axis 1 of (N, C, H, W)), got an array of "
                         f"shape {tuple(x.shape)} with {x.shape[1]} channels")


class Conv2D(Layer):
    """Convolution (cross-correlation, as in every deep-learning library) of an (N, C_in, H, W) batch:

        y[n, o, p, q] = b[o] + Σ_{c, i, j} W[o, c, i, j] · x_pad[n, c, p s_h + i, q s_w + j]

    with W (C_out, C_in, KH, KW), b (C_out,), x_pad the input with ``padding`` zeros around it,
    output (N, C_out, OH, OW), OH = (H + 2 p_h - KH) // s_h + 1 (likewise OW). As one matrix product
    over all windows (im2col, channels last), with W_col = W arranged as (KH KW C_in, C_out):

        Y = col(x) W_col + b                                     Y: (N OH OW, C_out)
        dW_col = col(x)ᵀ dY,   db = Σ_{n,p,q} dY,   dx = col2im(dY W_colᵀ)

    (dx is summed kernel offset by kernel offset, see :meth:`_input_gradient`).

    Output and dx are (N, C, H, W) arrays stored channels last (on NumPy a transposed view of an
    (N, H, W, C) buffer): elementwise layers keep that layout, pooling reads it with unit strides,
    and the next convolution's im2col needs no transposing copy. ``input_grad=False`` skips dx (``backward`` returns None): for the first layer of a network,
    whose input is data, it saves the largest col2im, as PyTorch does for inputs without
    ``requires_grad``. ``bias=False`` drops b (before batch normalization it is redundant).
    The im2col buffer is kept between calls of the same input shape (it is what backward needs).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntPair, stride: IntPair = 1,
                 padding: IntPair = 0, *, init: str | initializers.Initializer = "he", rng: backend.Seed = None,
                 dtype: Any = "float32", bias: bool = True, input_grad: bool = True) -> None:
        super().__init__()
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"Conv2D: expected {name} to be a positive int, got {value!r}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = pair(kernel_size, "kernel_size", "Conv2D")
        self.stride = pair(stride, "stride", "Conv2D")
        self.padding = pair(padding, "padding", "Conv2D", minimum=0)
        self.input_grad = bool(input_grad)
        kh, kw = self.kernel_size
        self.params = {"W": initializers.get(init)((out_channels, in_channels, kh, kw), rng, dtype)}
        if bias:
            self.params["b"] = initializers.zeros((out_channels,), dtype=dtype)
        self.col: Any = None
        self.x_shape: tuple[int, ...] | None = None
        self.y_shape: tuple[int, ...] | None = None

    def _w_col(self, xp: Any) -> Any:
        """W (C_out, C_in, KH, KW) as W_col (KH KW C_in, C_out), matching the channels-last columns."""
        w = self.params["W"]
        return xp.reshape(xp.permute_dims(w, (2, 3, 1, 0)), (-1, self.out_channels))

    def forward(self, x: Any) -> Any:
        check_image_batch("Conv2D", x, self.in_channels)
        check_dtype_match("Conv2D", x, self.params)
        xp = backend.namespace(x, *self.params.values(), where="Conv2D.forward")
        n, _, h, w = x.shape
        oh, ow = output_size(h, w, self.kernel_size, self.stride, self.padding, "Conv2D")
        self.col = im2col(x, self.kernel_size, self.stride, self.padding, channels_last=True, out=self.col)
        y = self.col @ self._w_col(xp)                      # Y = col W_col   (N OH OW, C_out)
        if "b" in self.params:
            y += self.params["b"]
        self.x_shape, self.y_shape = tuple(x.shape), (n, self.out_channels, oh, ow)
        return xp.permute_dims(xp.reshape(y, (n, oh, ow, self.out_channels)), (0, 3, 1, 2))   # stays channels last

    def backward(self, dy: Any) -> Any:
        _check_dy("Conv2D", dy, None if self.y_shape is None else _Shape(self.y_shape, self.col.dtype))
        xp = backend.namespace(dy, self.col, where="Conv2D.backward")
        d_y = xp.reshape(xp.permute_dims(dy, (0, 2, 3, 1)), (-1, self.out_channels))   # dY, channels last
        kh, kw = self.kernel_size
        dw_col = self.col.T @ d_y                                                  # dW_col = colᵀ dY
        self.grads["W"] = xp.permute_dims(xp.reshape(dw_col, (kh, kw, self.in_channels, self.out_channels)),
                                          (3, 2, 0, 1))
        if "b" in self.params:
            self.grads["b"] = xp.sum(dy, axis=(0, 2, 3))                          # db = Σ_{n,p,q} dY
        if not self.input_grad:
            return None
        return self._input_gradient(d_y, xp)

    def _input_gradient(self, d_y: Any, xp: Any) -> Any:
        """dx = col2im(dY W_colᵀ), one kernel offset (i, j) at a time:

            dx_pad[n, p s_h + i, q s_w + j, :] += (dY W[:, :, i, j])[(n, p, q), :]      (channels last)

        Same sums as :func:`~dlcore.nn.im2col.col2im`, but dcol = dY W_colᵀ (as large as col) is
        never formed: each offset's (N OH OW, C_in) block is made and added while it is in cache.
        """
        n, c, h, w = self.x_shape
        _, _, oh, ow = self.y_shape
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        taps = materialize(xp.permute_dims(self.params["W"], (2, 3, 0, 1)))      # W[:, :, i, j] = taps[i, j]
        acc = xp.zeros((n, h + 2 * ph, w + 2 * pw, c), dtype=d_y.dtype, device=backend.device_of(d_y))
        for i in range(kh):
            for j in range(kw):
                block = xp.reshape(d_y @ taps[i, j, ...], (n, oh, ow, c))       # dY W_ij: (N OH OW, C_in)
                acc[:, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw, :] += block
        return xp.permute_dims(acc[:, ph:ph + h, pw:pw + w, :], (0, 3, 1, 2))           # stays channels last

    def __repr__(self) -> str:
        extra = "" if "b" in self.params else ", bias=False"
        return (f"Conv2D({self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}{extra})")


class _Shape:
    """Shape and dtype of the forward output, for the backward input check (without keeping the output)."""

    def __init__(self, shape: tuple[int, ...], dtype: Any) -> None:
        self.shape, self.dtype = shape, dtype
