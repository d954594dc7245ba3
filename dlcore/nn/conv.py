"""2-D convolution layer (Conv2D), computed with im2col (see :mod:`dlcore.nn.im2col`)."""

from __future__ import annotations

from typing import Any

from dlcore import backend
from dlcore.nn import init as initializers
from dlcore.nn.base import Layer, check_array, check_dtype_match
from dlcore.nn.functional import _check_dy
from dlcore.nn.im2col import IntPair, im2col, im2col_images, materialize, output_size, pair

__all__ = ["Conv2D", "check_image_batch"]

LAYOUTS = ("auto", "rows", "images")


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
    output (N, C_out, OH, OW), OH = (H + 2 p_h - KH) // s_h + 1 (likewise OW). As matrix products
    over all windows (im2col), with W_mat = W as a (C_out, C_in KH KW) matrix:

        Y = col(x) W_matᵀ + b,     dW_mat = dYᵀ col(x),     db = Σ_{n,p,q} dY,     dx = col2im(dY W_mat)

    Two arrangements of the same sums (``layout``; 'auto' picks the faster per input shape):

    - 'rows': one row per output pixel, columns (i, j, c) channels last, one matrix product for
      the whole batch. The input is first copied channels last (N, H, W, C), so that im2col's copy
      reads runs of KW·C_in consecutive numbers; the output is transposed back to (N, C, H, W).
    - 'images': Caffe's (C_in KH KW, OH OW) matrix per image, one product per image giving
      (C_out, OH OW) directly; its copy reads runs of OW pixels, fast when C_in KW is small.

    Outputs and dx are contiguous (N, C, H, W) arrays. (Handing channels-last views on to the next
    layers saves the transposes but measured no faster in LeNet: mixed layouts slow the others.)

    dx is summed kernel offset by kernel offset (see :meth:`_dx_rows`), so the column-sized dcol is
    never formed. ``input_grad=False`` skips dx (``backward`` returns None): for the first layer of a
    network, whose input is data, as PyTorch does for inputs without ``requires_grad``. ``bias=False``
    drops b (before batch normalization it is redundant). The im2col buffer is kept between calls.
    """

    #: entries of one block of dY W_i in :meth:`_dx_rows` (2^17 float32: 512 kB, cache-sized)
    block_entries = 1 << 17

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntPair, stride: IntPair = 1,
                 padding: IntPair = 0, *, init: str | initializers.Initializer = "he", rng: backend.Seed = None,
                 dtype: Any = "float32", bias: bool = True, input_grad: bool = True, layout: str = "auto") -> None:
        super().__init__()
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"Conv2D: expected {name} to be a positive int, got {value!r}")
        if layout not in LAYOUTS:
            raise ValueError(f"Conv2D: expected layout in {LAYOUTS}, got {layout!r}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = pair(kernel_size, "kernel_size", "Conv2D")
        self.stride = pair(stride, "stride", "Conv2D")
        self.padding = pair(padding, "padding", "Conv2D", minimum=0)
        self.input_grad, self.layout = bool(input_grad), layout
        kh, kw = self.kernel_size
        self.params = {"W": initializers.get(init)((out_channels, in_channels, kh, kw), rng, dtype)}
        if bias:
            self.params["b"] = initializers.zeros((out_channels,), dtype=dtype)
        self.col: Any = None
        self.per_image = False
        self.x_shape: tuple[int, ...] | None = None
        self.y_shape: tuple[int, ...] | None = None

    def _use_images(self, ow: int) -> bool:
        """'auto': per-image columns when their contiguous runs (OW pixels) beat channels-last runs (KW C_in)."""
        if self.layout != "auto":
            return self.layout == "images"
        return self.stride[1] == 1 and ow > self.kernel_size[1] * self.in_channels

    def forward(self, x: Any) -> Any:
        check_image_batch("Conv2D", x, self.in_channels)
        check_dtype_match("Conv2D", x, self.params)
        xp = backend.namespace(x, *self.params.values(), where="Conv2D.forward")
        n, _, h, w = x.shape
        oh, ow = output_size(h, w, self.kernel_size, self.stride, self.padding, "Conv2D")
        co = self.out_channels
        self.x_shape, self.y_shape = tuple(x.shape), (n, co, oh, ow)
        w_mat = xp.reshape(self.params["W"], (co, -1))                              # (C_out, C_in KH KW)
        if self._use_images(ow):
            self.per_image = True
            self.col = self._image_columns(x, xp)
            if "b" in self.params:                                                  # [W_mat | b] [col_n; 1]
                w_mat = xp.concat([w_mat, xp.reshape(self.params["b"], (co, 1))], axis=1)
            y = backend.matmul(w_mat, self.col)                                     # Y_n = W_mat col_n + b
            return xp.reshape(y, (n, co, oh, ow))
        self.per_image = False
        self.col = im2col(x, self.kernel_size, self.stride, self.padding, channels_last=True, out=self.col)
        y = backend.matmul(self.col, self._w_rows(xp))                              # Y = col W_rows
        if "b" in self.params:
            y += self.params["b"]
        return materialize(xp.permute_dims(xp.reshape(y, (n, oh, ow, co)), (0, 3, 1, 2)))

    def _image_columns(self, x: Any, xp: Any) -> Any:
        """Per-image columns (N, C_in KH KW, OH OW) of :func:`~dlcore.nn.im2col.im2col_images`, with a row of
        ones below when the layer has a bias: then [W_mat | b] [col_n; 1] = W_mat col_n + b is one product,
        and the backward's Σ_n dY_n [col_n; 1]ᵀ holds db = Σ_{n,p,q} dY as its last column. That saves
        two passes over the layer's output (the bias add and the db sum: 1.5 M numbers each in LeNet's
        first layer). On NumPy/CuPy the buffer, ones included, is kept between calls."""
        args = (self.kernel_size, self.stride, self.padding)
        if "b" not in self.params:
            return im2col_images(x, *args, out=self.col)
        n, _, h, w = x.shape
        oh, ow = output_size(h, w, *args, "Conv2D")
        k, pixels = self.in_channels * self.kernel_size[0] * self.kernel_size[1], oh * ow
        if not (backend.is_numpy(xp) or backend.is_cupy(xp)):
            ones = xp.ones((n, 1, pixels), dtype=x.dtype, device=backend.device_of(x))
            return xp.concat([im2col_images(x, *args), ones], axis=1)
        buf = self.col
        if (buf is None or type(buf) is not type(x) or tuple(buf.shape) != (n, k + 1, pixels)
                or buf.dtype != x.dtype):
            buf = xp.empty((n, k + 1, pixels), dtype=x.dtype)
            buf[:, k, :] = 1
        cols = im2col_images(x, *args, out=buf[:, :k, :])
        if not xp.may_share_memory(cols, buf):           # the copy did not go into the buffer: put it there
            buf[:, :k, :] = cols
        return buf

    def _w_rows(self, xp: Any) -> Any:
        """W as (KH KW C_in, C_out), matching the channels-last columns (i, j, c)."""
        return xp.reshape(xp.permute_dims(self.params["W"], (2, 3, 1, 0)), (-1, self.out_channels))

    def backward(self, dy: Any) -> Any:
        _check_dy("Conv2D", dy, None if self.y_shape is None else _Shape(self.y_shape, self.col.dtype))
        xp = backend.namespace(dy, self.col, where="Conv2D.backward")
        n, co, oh, ow = self.y_shape
        c, (kh, kw) = self.in_channels, self.kernel_size
        if self.per_image:
            d_y = xp.reshape(dy, (n, co, oh * ow))
            dw_mat = xp.sum(backend.matmul(d_y, xp.permute_dims(self.col, (0, 2, 1))), axis=0)   # Σ_n dY_n col_nᵀ
            k = c * kh * kw
            if "b" in self.params:                                                  # the ones row's column: db
                self.grads["b"] = materialize(dw_mat[:, k])
            self.grads["W"] = xp.reshape(materialize(dw_mat[:, :k]), (co, c, kh, kw))
            return self._dx_images(d_y, xp) if self.input_grad else None
        d_y = xp.reshape(materialize(xp.permute_dims(dy, (0, 2, 3, 1))), (-1, co))  # dY, channels last
        if "b" in self.params:
            self.grads["b"] = xp.sum(d_y, axis=0)                                    # db = Σ_{n,p,q} dY
        dw_rows = backend.matmul(self.col.T, d_y)                                    # colᵀ dY: (KH KW C_in, C_out)
        self.grads["W"] = xp.permute_dims(xp.reshape(dw_rows, (kh, kw, c, co)), (3, 2, 0, 1))
        return self._dx_rows(d_y, xp) if self.input_grad else None

    def _taps(self, xp: Any) -> Any:
        """W[:, :, i, j] for every kernel offset, as a contiguous (KH, KW, C_out, C_in) array."""
        return materialize(xp.permute_dims(self.params["W"], (2, 3, 0, 1)))

    def _offsets(self) -> Any:
        """(i, j, rows, cols): kernel offset and the strided slices of x_pad it touches."""
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        _, _, oh, ow = self.y_shape
        for i in range(kh):
            for j in range(kw):
                yield i, j, slice(i, i + sh * (oh - 1) + 1, sh), slice(j, j + sw * (ow - 1) + 1, sw)

    def _dx_rows(self, d_y: Any, xp: Any) -> Any:
        """dx = col2im(dY W_rowsᵀ), one kernel row i at a time (channels last):

            B_i = dY W_i,   W_i[o, (j, c)] = W[o, c, i, j]                     B_i: (N OH OW, KW C_in)
            dx_pad[n, p s_h + i, q s_w + j, :] += B_i[(n, p, q), (j, :)]        for j = 0 .. KW-1

        Same sums as :func:`~dlcore.nn.im2col.col2im`, but each row's block is made and added while it
        is in cache instead of forming dcol (as large as col) first, and with KH products of width
        KW C_in rather than KH KW narrow ones of width C_in (a (8192, 50) x (50, 20) product keeps the
        BLAS far below its speed; (50, 100) is better shaped). The batch goes through in blocks of
        images whose B_i fits in the cache (about 512 kB), so the adds read B_i from the cache.

        With stride 1 along the width, B_i's row (n, p, q) is added as one run of KW C_in numbers:
        its (j, c) entries land on the consecutive channels-last positions (q + j, c) of dx_pad's row
        p s_h + i, so a block takes OW adds of length KW C_in per kernel row instead of KW adds of
        length C_in (long runs are what NumPy's loops are fast on).
        """
        n, c, h, w = self.x_shape
        _, _, oh, ow = self.y_shape
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        ph, pw = self.padding
        co = self.out_channels
        hp, wp = h + 2 * ph, w + 2 * pw
        w_rows = materialize(xp.reshape(xp.permute_dims(self.params["W"], (2, 0, 3, 1)), (kh, co, kw * c)))
        runs = sw == 1
        acc = xp.zeros((n, hp, wp * c) if runs else (n, hp, wp, c), dtype=d_y.dtype, device=backend.device_of(d_y))
        pixels = oh * ow
        per_block = max(1, self.block_entries // (pixels * kw * c))   # images whose B_i is about 512 kB

        def images(lo: int, hi: int) -> None:           # images lo:hi (one thread's block of the batch)
            for b_lo in range(lo, hi, per_block):
                b_hi = min(hi, b_lo + per_block)
                d_block = d_y[b_lo * pixels:b_hi * pixels, :]
                for i in range(kh):
                    block = backend.matmul(d_block, w_rows[i, ...])
                    rows = slice(i, i + sh * (oh - 1) + 1, sh)
                    if runs:
                        block = xp.reshape(block, (b_hi - b_lo, oh, ow, kw * c))
                        for q in range(ow):
                            acc[b_lo:b_hi, rows, q * c:(q + kw) * c] += block[:, :, q, :]
                    else:
                        block = xp.reshape(block, (b_hi - b_lo, oh, ow, kw, c))
                        for j in range(kw):
                            acc[b_lo:b_hi, rows, j:j + sw * (ow - 1) + 1:sw, :] += block[:, :, :, j, :]

        backend.parallel_rows(n, images, n * pixels * kh * kw * c, xp)
        if runs:
            acc = xp.reshape(acc, (n, hp, wp, c))
        return materialize(xp.permute_dims(acc[:, ph:ph + h, pw:pw + w, :], (0, 3, 1, 2)))

    def _dx_images(self, d_y: Any, xp: Any) -> Any:
        """The same sums per image: dx_pad[n, :, p s_h + i, q s_w + j] += (W[:, :, i, j]ᵀ dY_n)[:, (p, q)]."""
        n, c, h, w = self.x_shape
        _, _, oh, ow = self.y_shape
        ph, pw = self.padding
        taps_t = xp.permute_dims(self._taps(xp), (0, 1, 3, 2))                      # W[:, :, i, j]ᵀ
        acc = xp.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=d_y.dtype, device=backend.device_of(d_y))
        for i, j, rows, cols in self._offsets():
            acc[:, :, rows, cols] += xp.reshape(backend.matmul(taps_t[i, j, ...], d_y), (n, c, oh, ow))
        return acc[:, :, ph:ph + h, pw:pw + w]

    def __repr__(self) -> str:
        extra = "" if "b" in self.params else ", bias=False"
        return (f"Conv2D({self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}{extra})")


class _Shape:
    """Shape and dtype of the forward output, for the backward input check (without keeping the output)."""

    def __init__(self, shape: tuple[int, ...], dtype: Any) -> None:
        self.shape, self.dtype = shape, dtype
