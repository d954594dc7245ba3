"""im2col / col2im: a convolution as one matrix product.

For x of shape (N, C, H, W), a KH x KW kernel, stride (s_h, s_w) and zero padding (p_h, p_w):

    OH = (H + 2 p_h - KH) // s_h + 1,        OW = (W + 2 p_w - KW) // s_w + 1
    col[(n, p, q), (c, i, j)] = x_pad[n, c, p s_h + i, q s_w + j]          col: (N OH OW, C KH KW)

one row per output pixel, one column per kernel entry, so that a convolution is
Y = col · W_col with W_col the kernel reshaped to (C KH KW, C_out). col2im is the adjoint
(transpose) of im2col: every entry goes back to the pixel it came from, overlaps add up,

    dx_pad[n, c, p s_h + i, q s_w + j] += dcol[(n, p, q), (c, i, j)]        (then the padding is cut off)

so that <im2col(x), d> = <x, col2im(d)>. With ``channels_last=True`` the columns are ordered
(i, j, c) instead of (c, i, j): the same numbers, in the order that makes the fast copy read
long contiguous runs (below).

Two implementations with the same results:

- :func:`im2col_loop`, :func:`col2im_loop`: a Python loop over the output pixels, one patch at a
  time. This is the picture of the lecture; slow, kept for teaching and as the test oracle.
- :func:`im2col`, :func:`col2im`, :func:`im2col_images`: the fast path, the only place where speed matters.
  im2col copies a strided *view* of all the windows (:func:`dlcore.backend.windows2d`, no copy
  on NumPy/CuPy) into the column matrix in one go; col2im loops over the KH·KW kernel offsets
  only (never over pixels), each step one strided slice-add over the whole batch. With channels
  last, one window row is KW·C consecutive numbers in memory (C=20, KW=5: 100 floats instead of 5),
  which makes the copy several times faster.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from dlcore import backend
from dlcore.nn.base import check_array

__all__ = [
    "pair", "output_size", "pad2d", "materialize",
    "im2col", "col2im", "im2col_images", "im2col_loop", "col2im_loop",
]

IntPair = int | Sequence[int]


def pair(value: IntPair, name: str, owner: str, *, minimum: int = 1) -> tuple[int, int]:
    """``value`` as (rows, cols): an int means the same for both; each entry an int >= ``minimum``."""
    items = (value, value) if not isinstance(value, Sequence) or isinstance(value, str) else tuple(value)
    if len(items) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in items):
        raise TypeError(f"{owner}: expected {name} as an int or a pair of ints, got {value!r}")
    if min(items) < minimum:
        raise ValueError(f"{owner}: expected {name} >= {minimum}, got {value!r}")
    return int(items[0]), int(items[1])


def output_size(h: int, w: int, kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int],
                owner: str = "im2col") -> tuple[int, int]:
    """(OH, OW) = ((H + 2 p_h - KH) // s_h + 1, (W + 2 p_w - KW) // s_w + 1); an error if the kernel does not fit."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    hp, wp = h + 2 * ph, w + 2 * pw
    if kh > hp or kw > wp:
        raise ValueError(
            f"{owner}: the {kh}x{kw} kernel is larger than the input padded to {hp}x{wp} (input {h}x{w}, padding "
            f"{ph}x{pw}); use a smaller kernel, more padding or a larger input"
        )
    return (hp - kh) // sh + 1, (wp - kw) // sw + 1


def _geometry(kernel_size: IntPair, stride: IntPair, padding: IntPair, owner: str) -> tuple[tuple[int, int], ...]:
    return (pair(kernel_size, "kernel_size", owner), pair(stride, "stride", owner),
            pair(padding, "padding", owner, minimum=0))


def _zeros(xp: Any, shape: tuple[int, ...], like: Any) -> Any:
    return xp.zeros(shape, dtype=like.dtype, device=backend.device_of(like))


def pad2d(x: Any, padding: tuple[int, int], value: float = 0.0) -> Any:
    """x (N, C, H, W) surrounded by ``padding`` = (p_h, p_w) rows/columns of ``value``; x itself when no padding."""
    ph, pw = padding
    if ph == 0 and pw == 0:
        return x
    xp = backend.namespace(x)
    n, c, h, w = x.shape
    out = xp.full((n, c, h + 2 * ph, w + 2 * pw), value, dtype=x.dtype, device=backend.device_of(x))
    out[:, :, ph:ph + h, pw:pw + w] = x
    return out


def materialize(view: Any, out: Any = None) -> Any:
    """The values of ``view`` (a strided window view, a transpose) in a C-contiguous array: a copy,
    unless ``view`` already is contiguous (then it comes back as is).

    ``out``, when given with the right shape and dtype on NumPy/CuPy, is reused as the destination:
    a layer keeps its large im2col buffer between steps, since a fresh multi-megabyte array costs
    page faults and zero-filling by the OS the first time it is written.
    """
    xp = backend.namespace(view)
    reusable = (out is not None and (backend.is_numpy(xp) or backend.is_cupy(xp))
                and tuple(out.shape) == tuple(view.shape) and out.dtype == view.dtype
                # an earlier result that was the input itself (a contiguous view comes back as is) is
                # neither ours to overwrite nor, for a strided NumPy view, writeable
                and getattr(getattr(out, "flags", None), "writeable", True)
                and not xp.may_share_memory(out, view))
    if not reusable:
        if backend.is_numpy(xp) and view.ndim > 0 and not view.flags.c_contiguous:
            # a fresh C-ordered array filled by row blocks, on several threads for a large batch
            return backend.copy_into(np.empty(view.shape, dtype=view.dtype), view)
        return xp.reshape(xp.reshape(view, (-1,)), tuple(view.shape))   # flattening copies in C order
    return backend.copy_into(out, view)          # by row blocks on several threads for a large batch


def _nhwc_padded(x: Any, padding: tuple[int, int]) -> Any:
    """x (N, C, H, W) as a zero-padded channels-last array (N, H + 2 p_h, W + 2 p_w, C), in one copy."""
    xp = backend.namespace(x)
    n, c, h, w = x.shape
    ph, pw = padding
    nhwc = xp.permute_dims(x, (0, 2, 3, 1))
    if ph == 0 and pw == 0:
        # reshaping to 1-D copies only when needed: free when x is already stored channels last
        # (for instance any x with one channel)
        return xp.reshape(xp.reshape(nhwc, (-1,)), (n, h, w, c))
    out = _zeros(xp, (n, h + 2 * ph, w + 2 * pw, c), x)
    out[:, ph:ph + h, pw:pw + w, :] = nhwc
    return out


# --------------------------------------------------------------------------- fast path


def _reusable(out: Any, x: Any, shape: tuple[int, ...], win: Any) -> Any:
    """An earlier result ``out`` of ``shape`` from the same library, viewed like ``win``; else None."""
    if out is None or type(out) is not type(x) or tuple(out.shape) != shape:
        return None
    return backend.namespace(x).reshape(out, tuple(win.shape))


def im2col(x: Any, kernel_size: IntPair, stride: IntPair = 1, padding: IntPair = 0, *,
           channels_last: bool = False, out: Any = None) -> Any:
    """col[(n, p, q), (c, i, j)] = x_pad[n, c, p s_h + i, q s_w + j]; shape (N OH OW, C KH KW).

    ``channels_last=True`` orders the columns (i, j, c). ``out``: an earlier result of the same
    shape to reuse as the buffer (NumPy/CuPy only; see :func:`materialize`).
    """
    check_array("im2col", "x", x, ndim=4, floating=False)
    kernel, strides, padding = _geometry(kernel_size, stride, padding, "im2col")
    n, c, h, w = x.shape
    oh, ow = output_size(h, w, kernel, strides, padding, "im2col")
    xp = backend.namespace(x)
    if channels_last:
        src = _nhwc_padded(x, padding)                                  # (N, Hp, Wp, C)
        win = backend.windows2d(xp.permute_dims(src, (0, 3, 1, 2)), *kernel, strides)  # (N, C, OH, OW, KH, KW)
        win = xp.permute_dims(win, (0, 2, 3, 4, 5, 1))                  # (N, OH, OW, KH, KW, C)
    else:
        win = backend.windows2d(pad2d(x, padding), *kernel, strides)   # (N, C, OH, OW, KH, KW)
        win = xp.permute_dims(win, (0, 2, 3, 1, 4, 5))                  # (N, OH, OW, C, KH, KW)
    shape = (n * oh * ow, c * kernel[0] * kernel[1])
    return xp.reshape(materialize(win, _reusable(out, x, shape, win)), shape)


def im2col_images(x: Any, kernel_size: IntPair, stride: IntPair = 1, padding: IntPair = 0, *, out: Any = None) -> Any:
    """Caffe's layout, one matrix per image: col[n, (c, i, j), (p, q)] = x_pad[n, c, p s_h + i, q s_w + j].

    Shape (N, C KH KW, OH OW): the same numbers as :func:`im2col`, so that W_mat col[n] (W_mat = W
    reshaped to (C_out, C KH KW)) is image n's output, already (C_out, OH OW). The copy reads runs
    of OW consecutive pixels, which is the fast order when C KW is small (a first layer, C = 1).
    """
    check_array("im2col_images", "x", x, ndim=4, floating=False)
    kernel, strides, padding = _geometry(kernel_size, stride, padding, "im2col_images")
    n, c, h, w = x.shape
    oh, ow = output_size(h, w, kernel, strides, padding, "im2col_images")
    xp = backend.namespace(x)
    win = backend.windows2d(pad2d(x, padding), *kernel, strides)      # (N, C, OH, OW, KH, KW)
    win = xp.permute_dims(win, (0, 1, 4, 5, 2, 3))                    # (N, C, KH, KW, OH, OW)
    shape = (n, c * kernel[0] * kernel[1], oh * ow)
    return xp.reshape(materialize(win, _reusable(out, x, shape, win)), shape)


def col2im(col: Any, x_shape: Sequence[int], kernel_size: IntPair, stride: IntPair = 1, padding: IntPair = 0, *,
           channels_last: bool = False) -> Any:
    """The adjoint of :func:`im2col`: dx_pad[n, c, p s_h + i, q s_w + j] += col[(n, p, q), (c, i, j)], unpadded.

    Returns an (N, C, H, W) array for ``x_shape`` = (N, C, H, W). One strided slice-add of the whole
    batch per kernel offset (i, j); overlapping windows (stride < kernel) accumulate.
    """
    check_array("col2im", "col", col, ndim=2, floating=False)
    kernel, strides, padding = _geometry(kernel_size, stride, padding, "col2im")
    n, c, h, w = (int(s) for s in x_shape)
    oh, ow = output_size(h, w, kernel, strides, padding, "col2im")
    (kh, kw), (sh, sw), (ph, pw) = kernel, strides, padding
    if tuple(col.shape) != (n * oh * ow, c * kh * kw):
        raise ValueError(f"col2im: expected col of shape ({n * oh * ow}, {c * kh * kw}) for x of shape "
                         f"{(n, c, h, w)}, got {tuple(col.shape)}")
    xp = backend.namespace(col)
    if channels_last:
        cols = xp.reshape(col, (n, oh, ow, kh, kw, c))
        acc = _zeros(xp, (n, h + 2 * ph, w + 2 * pw, c), col)
        for i in range(kh):
            for j in range(kw):
                acc[:, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw, :] += cols[:, :, :, i, j, :]
        return materialize(xp.permute_dims(acc[:, ph:ph + h, pw:pw + w, :], (0, 3, 1, 2)))
    cols = xp.reshape(col, (n, oh, ow, c, kh, kw))
    acc = _zeros(xp, (n, c, h + 2 * ph, w + 2 * pw), col)
    for i in range(kh):
        for j in range(kw):
            patch = xp.permute_dims(cols[:, :, :, :, i, j], (0, 3, 1, 2))            # (N, C, OH, OW)
            acc[:, :, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw] += patch
    if ph == 0 and pw == 0:
        return acc
    return materialize(acc[:, :, ph:ph + h, pw:pw + w])


# --------------------------------------------------------------------------- teaching versions (test oracle)


def im2col_loop(x: Any, kernel_size: IntPair, stride: IntPair = 1, padding: IntPair = 0, *,
                channels_last: bool = False) -> Any:
    """:func:`im2col` one output pixel at a time: row (n, p, q) is the flattened patch under the kernel."""
    check_array("im2col_loop", "x", x, ndim=4, floating=False)
    kernel, strides, padding = _geometry(kernel_size, stride, padding, "im2col_loop")
    (kh, kw), (sh, sw) = kernel, strides
    n, c, h, w = x.shape
    oh, ow = output_size(h, w, kernel, strides, padding, "im2col_loop")
    xp = backend.namespace(x)
    x_pad = pad2d(x, padding)
    col = _zeros(xp, (n, oh, ow, c * kh * kw), x)
    for b in range(n):
        for p in range(oh):
            for q in range(ow):
                patch = x_pad[b, :, p * sh:p * sh + kh, q * sw:q * sw + kw]           # (C, KH, KW)
                if channels_last:
                    patch = xp.permute_dims(patch, (1, 2, 0))                         # (KH, KW, C)
                col[b, p, q, :] = xp.reshape(patch, (-1,))
    return xp.reshape(col, (n * oh * ow, c * kh * kw))


def col2im_loop(col: Any, x_shape: Sequence[int], kernel_size: IntPair, stride: IntPair = 1, padding: IntPair = 0,
                *, channels_last: bool = False) -> Any:
    """:func:`col2im` one output pixel at a time: row (n, p, q) is added back onto its patch."""
    check_array("col2im_loop", "col", col, ndim=2, floating=False)
    kernel, strides, padding = _geometry(kernel_size, stride, padding, "col2im_loop")
    (kh, kw), (sh, sw), (ph, pw) = kernel, strides, padding
    n, c, h, w = (int(s) for s in x_shape)
    oh, ow = output_size(h, w, kernel, strides, padding, "col2im_loop")
    xp = backend.namespace(col)
    rows = xp.reshape(col, (n, oh, ow, c * kh * kw))
    dx_pad = _zeros(xp, (n, c, h + 2 * ph, w + 2 * pw), col)
    for b in range(n):
        for p in range(oh):
            for q in range(ow):
                if channels_last:
                    patch = xp.permute_dims(xp.reshape(rows[b, p, q, :], (kh, kw, c)), (2, 0, 1))
                else:
                    patch = xp.reshape(rows[b, p, q, :], (c, kh, kw))
                dx_pad[b, :, p * sh:p * sh + kh, q * sw:q * sw + kw] += patch
    return dx_pad[:, :, ph:ph + h, pw:pw + w]
