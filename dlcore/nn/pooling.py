"""Pooling layers over the spatial axes of an (N, C, H, W) batch.

Every window is visited through the kernel offsets (i, j): the strided slice

    x_pad[:, :, i : i + s_h (OH - 1) + 1 : s_h, j : j + s_w (OW - 1) + 1 : s_w]      shape (N, C, OH, OW)

holds entry (i, j) of every window at once, so a pooling is a handful of whole-batch
operations (KH·KW of them), never a loop over pixels and never ``reshape(...).max``. Backward
adds each offset's share back through the same slices. OH, OW as for a convolution.

- :class:`MaxPool2D`: y = max over the window; the gradient goes to one argmax per window.
- :class:`AvgPool2D`: y = mean over the window (padding zeros count, as PyTorch's default).
- :class:`LpPool2D`: y = (Σ_window |x|^p)^(1/p).
- :class:`GlobalAvgPool2D`: y[n, c] = mean over all H·W positions.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from dlcore import backend
from dlcore.nn.base import Layer
from dlcore.nn.conv import _Shape, check_image_batch
from dlcore.nn.functional import _check_dy
from dlcore.nn.im2col import IntPair, output_size, pad2d, pair

__all__ = ["MaxPool2D", "AvgPool2D", "LpPool2D", "GlobalAvgPool2D"]


class _Pool2D(Layer):
    """Shared geometry: kernel, stride (default: the kernel, i.e. non-overlapping windows), padding."""

    name = "Pool2D"

    def __init__(self, kernel_size: IntPair, stride: IntPair | None = None, padding: IntPair = 0) -> None:
        super().__init__()
        self.kernel_size = pair(kernel_size, "kernel_size", self.name)
        self.stride = self.kernel_size if stride is None else pair(stride, "stride", self.name)
        self.padding = pair(padding, "padding", self.name, minimum=0)
        self.x_shape: tuple[int, ...] | None = None
        self.y_shape: tuple[int, ...] | None = None
        self.dtype: Any = None

    def _setup(self, x: Any) -> tuple[Any, int, int]:
        check_image_batch(self.name, x)
        n, c, h, w = x.shape
        oh, ow = output_size(h, w, self.kernel_size, self.stride, self.padding, self.name)
        self.x_shape, self.y_shape, self.dtype = tuple(x.shape), (n, c, oh, ow), x.dtype
        return backend.namespace(x), oh, ow

    def _offsets(self, oh: int, ow: int) -> Iterator[tuple[slice, slice]]:
        """Slices (rows, cols) of x_pad holding entry (i, j) of every window, offsets in row-major order."""
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        for i in range(kh):
            for j in range(kw):
                yield slice(i, i + sh * (oh - 1) + 1, sh), slice(j, j + sw * (ow - 1) + 1, sw)

    def _overlapping(self) -> bool:
        return self.stride[0] < self.kernel_size[0] or self.stride[1] < self.kernel_size[1]

    def _check_backward(self, dy: Any) -> None:
        _check_dy(self.name, dy, None if self.y_shape is None else _Shape(self.y_shape, self.dtype))

    def _unpad(self, dx_pad: Any) -> Any:
        ph, pw = self.padding
        _, _, h, w = self.x_shape
        return dx_pad if ph == pw == 0 else dx_pad[:, :, ph:ph + h, pw:pw + w]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding})"


class MaxPool2D(_Pool2D):
    """y[n, c, p, q] = max_{i, j} x_pad[n, c, p s_h + i, q s_w + j]  (padding with -inf).

    Backward sends dL/dy of each window to exactly one input, its argmax; on ties the first
    maximal entry in row-major order (smallest i, then smallest j) wins, as in PyTorch. Where
    windows overlap, an input that is the argmax of several windows collects all their gradients.
    ``padding`` is at most half the kernel, so every window holds at least one real input.
    """

    name = "MaxPool2D"

    def __init__(self, kernel_size: IntPair, stride: IntPair | None = None, padding: IntPair = 0) -> None:
        super().__init__(kernel_size, stride, padding)
        if self.padding[0] > self.kernel_size[0] // 2 or self.padding[1] > self.kernel_size[1] // 2:
            raise ValueError(f"MaxPool2D: expected padding at most half the kernel ({self.kernel_size}), got "
                             f"{self.padding}")
        self.x_pad: Any = None
        self.y: Any = None

    def forward(self, x: Any) -> Any:
        xp, oh, ow = self._setup(x)
        self.x_pad = x_pad = pad2d(x, self.padding, -math.inf)
        offsets = list(self._offsets(oh, ow))
        if len(offsets) == 1:                            # a 1x1 window: a copy (y must not be a view of x)
            self.y = xp.asarray(x_pad[:, :, offsets[0][0], offsets[0][1]], copy=True)
            return self.y
        n, c = x.shape[0], x.shape[1]
        y = xp.empty((n, c, oh, ow), dtype=x.dtype, device=backend.device_of(x))

        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        last_row, last_col = sh * (oh - 1) + 1, sw * (ow - 1) + 1

        def rows_of(lo: int, hi: int) -> None:
            # max is separable: first over the kernel's rows, whole rows at a time (slices of rows, each
            # read as runs of W contiguous numbers), then over its columns on the (N, C, OH, W) result
            # (strided, but on 1/KH of the data): for 2x2 windows 1.5x faster than four strided slices
            block = x_pad[lo:hi, ...]
            rows = block[:, :, 0:last_row:sh, :]
            for i in range(1, kh):
                nxt = block[:, :, i:i + last_row:sh, :]
                rows = xp.maximum(rows, nxt) if i == 1 else backend.maximum_(rows, nxt)
            target = y[lo:hi, ...]
            part = target
            for j in range(1, kw):
                first = rows[:, :, :, 0:last_col:sw] if j == 1 else part
                part = backend.maximum_(first, rows[:, :, :, j:j + last_col:sw], out=target)
            if kw == 1:
                part = rows[:, :, :, 0:last_col:sw]
            if part is not target:                       # a backend without out= (or KW = 1): store the block
                y[lo:hi, ...] = part

        backend.parallel_rows(n, rows_of, n * c * oh * ow * len(offsets), xp)
        self.y = y
        return y

    def backward(self, dy: Any) -> Any:
        self._check_backward(dy)
        xp = backend.namespace(dy, self.y, where="MaxPool2D.backward")
        _, _, oh, ow = self.y_shape
        x_pad, y = self.x_pad, self.y
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        # non-overlapping windows that tile x_pad write every entry once: no zero fill needed;
        # *_like keeps the input's memory layout (say, a channels-last view)
        tiled = (sh, sw) == (kh, kw) and (oh * kh, ow * kw) == tuple(x_pad.shape[2:])
        dx_pad = xp.empty_like(x_pad) if tiled else xp.zeros_like(x_pad)
        overlapping = self._overlapping()
        offsets = list(self._offsets(oh, ow))

        def rows_of(lo: int, hi: int) -> None:
            g, ys = dy[lo:hi, ...], y[lo:hi, ...]
            free = None                                  # windows whose argmax is not found yet
            for k, (rows, cols) in enumerate(offsets):
                first = x_pad[lo:hi, :, rows, cols] == ys
                if free is not None:
                    first = first & free                 # the first maximal entry in row-major order wins
                if k < len(offsets) - 1:
                    free = ~first if free is None else free & ~first
                # multiply by the 0/1 mask rather than xp.where: NumPy's where branches per element
                # and is ~20x slower on a random mask; the bool mask goes in as it is (no cast pass),
                # and the product is written straight into dx's strided slice where the windows do
                # not overlap (no temporary: 20 % faster than a contiguous product and a copy)
                if overlapping:
                    dx_pad[lo:hi, :, rows, cols] += backend.mask_multiply(g, first)
                    continue
                target = dx_pad[lo:hi, :, rows, cols]
                share = backend.mask_multiply(g, first, out=target)
                if share is not target:                  # a backend without out=: store the share
                    dx_pad[lo:hi, :, rows, cols] = share

        backend.parallel_rows(dy.shape[0], rows_of, int(x_pad.shape[0] * x_pad.shape[1]) * oh * ow * len(offsets), xp)
        return self._unpad(dx_pad)


class AvgPool2D(_Pool2D):
    """y[n, c, p, q] = (1 / (KH KW)) Σ_{i, j} x_pad[n, c, p s_h + i, q s_w + j]  (padding zeros are counted);
    dL/dx_pad[window entry] += dL/dy / (KH KW)."""

    name = "AvgPool2D"

    def forward(self, x: Any) -> Any:
        xp, oh, ow = self._setup(x)
        x_pad = pad2d(x, self.padding)
        total = None
        for rows, cols in self._offsets(oh, ow):
            total = x_pad[:, :, rows, cols] if total is None else total + x_pad[:, :, rows, cols]
        return total / float(self.kernel_size[0] * self.kernel_size[1])

    def backward(self, dy: Any) -> Any:
        self._check_backward(dy)
        xp = backend.namespace(dy)
        n, c, h, w = self.x_shape
        ph, pw = self.padding
        dx_pad = xp.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=dy.dtype, device=backend.device_of(dy))
        share = dy / float(self.kernel_size[0] * self.kernel_size[1])
        for rows, cols in self._offsets(*self.y_shape[2:]):
            dx_pad[:, :, rows, cols] += share
        return self._unpad(dx_pad)


class LpPool2D(_Pool2D):
    """y = (Σ_window |x|^p)^(1/p), the p-norm of each window (p >= 1; p = 1 sums |x|, p → ∞ gives max |x|).

    dL/dx = dL/dy · y^(1-p) · |x|^(p-1) sign(x) for every window holding x (0 for an all-zero window).
    PyTorch's LPPool2d computes (Σ x^p)^(1/p) without the absolute value: the same for even p
    or non-negative inputs.
    """

    name = "LpPool2D"

    def __init__(self, p: float, kernel_size: IntPair, stride: IntPair | None = None, padding: IntPair = 0) -> None:
        super().__init__(kernel_size, stride, padding)
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not math.isfinite(p) or p < 1:
            raise ValueError(f"LpPool2D: expected a finite p >= 1, got {p!r} (use MaxPool2D for p = inf)")
        self.p = float(p)
        self.x_pad: Any = None
        self.y: Any = None

    def forward(self, x: Any) -> Any:
        xp, oh, ow = self._setup(x)
        self.x_pad = x_pad = pad2d(x, self.padding)
        a = xp.abs(x_pad) ** self.p
        total = None
        for rows, cols in self._offsets(oh, ow):
            total = a[:, :, rows, cols] if total is None else total + a[:, :, rows, cols]
        self.y = total ** (1.0 / self.p)
        return self.y

    def backward(self, dy: Any) -> Any:
        self._check_backward(dy)
        xp = backend.namespace(dy, self.y)
        p, y, x_pad = self.p, self.y, self.x_pad
        safe_y = xp.where(y > 0, y, 1.0)
        g = xp.where(y > 0, dy * safe_y ** (1.0 - p), 0.0)                 # dL/dy · y^(1-p)
        h = xp.sign(x_pad) * xp.abs(x_pad) ** (p - 1.0) if p != 1.0 else xp.sign(x_pad)   # d|x|^p/dx / p
        dx_pad = xp.zeros(tuple(x_pad.shape), dtype=dy.dtype, device=backend.device_of(dy))
        for rows, cols in self._offsets(*self.y_shape[2:]):
            dx_pad[:, :, rows, cols] += g * h[:, :, rows, cols]
        return self._unpad(dx_pad)

    def __repr__(self) -> str:
        return (f"LpPool2D(p={self.p:g}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding})")


class GlobalAvgPool2D(Layer):
    """y[n, c] = (1 / (H W)) Σ_{h, w} x[n, c, h, w]: (N, C, H, W) -> (N, C), ready for an Affine layer;
    dL/dx[n, c, h, w] = dL/dy[n, c] / (H W)."""

    def __init__(self) -> None:
        super().__init__()
        self.x_shape: tuple[int, ...] | None = None
        self.dtype: Any = None

    def forward(self, x: Any) -> Any:
        check_image_batch("GlobalAvgPool2D", x)
        self.x_shape, self.dtype = tuple(x.shape), x.dtype
        return backend.namespace(x).mean(x, axis=(2, 3))

    def backward(self, dy: Any) -> Any:
        _check_dy("GlobalAvgPool2D", dy, None if self.x_shape is None else _Shape(self.x_shape[:2], self.dtype))
        xp = backend.namespace(dy)
        n, c, h, w = self.x_shape
        dx = xp.zeros(self.x_shape, dtype=dy.dtype, device=backend.device_of(dy))
        return dx + xp.reshape(dy / float(h * w), (n, c, 1, 1))
