"""Array backends: the namespace comes from the arrays, never from a global switch.

Every compute function in dlcore starts with ``xp = namespace(x, w, ...)`` and
then uses only array-API functions of ``xp``. What the array API standard lacks
lives here, with a fast path per backend and a generic fallback:

- seeded random numbers (:func:`normal`, :func:`uniform`, :func:`random`,
  :func:`bernoulli`, :func:`permutation`),
- strided sliding windows (:func:`windows2d`),
- scatter-add (:func:`scatter_add`),
- moving arrays between devices (:func:`to_device`, :func:`to_numpy`),
- matrix products with a thread count chosen per size and machine load (:func:`matmul`,
  see :mod:`dlcore.blas_threads`), and a few fused elementwise kernels that save NumPy
  passes and temporaries (:func:`relu`, :func:`relu_backward`, :func:`relu_forward`, :func:`mask_multiply`,
  :func:`add_scaled`).

Backends: NumPy (CPU), CuPy (GPU), and any other array-API namespace such as
``array_api_strict`` (the CI stand-in for a non-NumPy library).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import array_api_compat
import numpy as np

from dlcore import blas_threads

__all__ = [
    "BackendUnavailableError",
    "DeviceMismatchError",
    "namespace",
    "is_numpy",
    "is_cupy",
    "device_of",
    "device_name",
    "resolve",
    "to_device",
    "to_numpy",
    "default_rng",
    "normal",
    "uniform",
    "random",
    "bernoulli",
    "permutation",
    "integers",
    "dtype_name",
    "windows2d",
    "scatter_add",
    "gpu_available",
    "matmul",
    "thread_policy",
    "relu_forward",
    "relu",
    "relu_backward",
    "mask_multiply",
    "maximum_",
    "parallel_rows",
    "copy_into",
    "sigmoid_",
    "add_scaled",
]


class BackendUnavailableError(RuntimeError):
    """Raised when a backend (CuPy, a GPU) is asked for but is not available."""


class DeviceMismatchError(ValueError):
    """Raised when arrays from two devices or two array libraries meet."""


# --------------------------------------------------------------------------- namespaces


def is_numpy(xp: ModuleType) -> bool:
    return xp is np or getattr(xp, "__name__", "") in ("numpy", "array_api_compat.numpy")


def is_cupy(xp: ModuleType) -> bool:
    return getattr(xp, "__name__", "") in ("cupy", "array_api_compat.cupy")


def _library_name(a: Any) -> str:
    return type(a).__module__.split(".")[0]


def namespace(*arrays: Any, where: str = "") -> ModuleType:
    """Array namespace shared by ``arrays`` (``None`` and Python scalars are ignored).

    NumPy arrays give the plain ``numpy`` module (NumPy >= 2.1 implements the
    standard in its main namespace, without wrapper overhead); other libraries
    give their array-API namespace. Arrays from two libraries or two devices
    raise :class:`DeviceMismatchError` naming ``where`` and both sides.
    """
    arrs = [a for a in arrays if a is not None and not isinstance(a, (int, float, bool, complex))]
    if not arrs:
        return np
    if all(type(a) is np.ndarray for a in arrs):
        return np
    libs = {_library_name(a) for a in arrs}
    if len(libs) > 1:
        raise DeviceMismatchError(
            f"{where or 'dlcore'}: arrays from different libraries met ({', '.join(sorted(libs))}). "
            "Move the batch and the model to one device, e.g. dlcore.to_device(x, 'gpu') and "
            "model.to('gpu'), or both to 'cpu'."
        )
    try:
        xp = array_api_compat.array_namespace(*arrs)
    except TypeError as exc:
        raise TypeError(
            f"{where or 'dlcore'}: expected arrays (NumPy, CuPy or another array-API library), "
            f"got {', '.join(sorted({type(a).__name__ for a in arrs}))}"
        ) from exc
    devices = {str(array_api_compat.device(a)) for a in arrs}
    if len(devices) > 1:
        raise DeviceMismatchError(
            f"{where or 'dlcore'}: arrays on different devices met ({', '.join(sorted(devices))}). "
            "Move them to one device first (model.to(...), dlcore.to_device(x, ...))."
        )
    return xp


def device_of(x: Any) -> Any:
    """The device object of an array (``'cpu'`` for NumPy)."""
    return array_api_compat.device(x)


def device_name(x: Any) -> str:
    """A short, human-readable device label: ``'cpu'``, ``'cuda:0'``, or the library's own."""
    if isinstance(x, np.ndarray):
        return "cpu"
    if _library_name(x) == "cupy":
        return f"cuda:{x.device.id}"
    return f"{_library_name(x)}:{array_api_compat.device(x)}"


def gpu_available() -> bool:
    """True when CuPy imports and sees at least one CUDA device."""
    try:
        cp = importlib.import_module("cupy")
        return cp.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


def _cupy() -> ModuleType:
    try:
        cp = importlib.import_module("cupy")
    except ImportError as exc:
        raise BackendUnavailableError(
            "The GPU backend needs CuPy, which is not installed. Install the GPU extra "
            "(pip install 'dlcourse[gpu]', which brings cupy-cuda12x) or stay on 'cpu'."
        ) from exc
    try:
        count = cp.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDA driver missing or broken
        raise BackendUnavailableError(
            f"CuPy is installed but no CUDA device can be used ({exc}). Stay on 'cpu'."
        ) from exc
    if count == 0:
        raise BackendUnavailableError("CuPy is installed but no CUDA device is visible. Stay on 'cpu'.")
    return cp


_ALIASES = {"cpu": "numpy", "numpy": "numpy", "np": "numpy", "gpu": "cupy", "cuda": "cupy", "cupy": "cupy",
            "strict": "array_api_strict", "array_api_strict": "array_api_strict"}


def resolve(target: str | ModuleType) -> ModuleType:
    """The namespace for a device name (``'cpu'``, ``'gpu'``/``'cuda'``, ``'strict'``) or a module."""
    if isinstance(target, ModuleType):
        name = target.__name__.removeprefix("array_api_compat.")
        return resolve(name) if name in _ALIASES else target
    if not isinstance(target, str) or target.lower() not in _ALIASES:
        raise ValueError(
            f"unknown device {target!r}: expected 'cpu', 'gpu' (or 'cuda'), 'strict', or an array namespace module"
        )
    lib = _ALIASES[target.lower()]
    if lib == "numpy":
        return np
    if lib == "cupy":
        return array_api_compat.array_namespace(_cupy().empty(0))
    return importlib.import_module(lib)


def to_numpy(x: Any) -> np.ndarray:
    """Copy (or view) an array of any backend as a NumPy array on the host."""
    if isinstance(x, np.ndarray):
        return x
    if _library_name(x) == "cupy":
        return x.get()
    if isinstance(x, (int, float, bool, np.generic, list, tuple)):
        return np.asarray(x)
    try:
        return np.from_dlpack(x)
    except Exception:
        return np.asarray(x)


def to_device(x: Any, target: str | ModuleType) -> Any:
    """Move an array (or a dict/list/tuple of arrays) to ``target``: 'cpu', 'gpu', 'strict' or a namespace.

    Arrays already on the target are returned unchanged (no copy).
    """
    if isinstance(x, dict):
        return {k: to_device(v, target) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(to_device(v, target) for v in x)
    if x is None:
        return None
    xp = resolve(target)
    if is_numpy(xp):
        return to_numpy(x)
    if not isinstance(x, np.ndarray) and _library_name(x) == xp.__name__.removeprefix("array_api_compat."):
        return x
    host = to_numpy(x)
    return xp.asarray(host)


# --------------------------------------------------------------------------- random numbers

Seed = int | np.random.Generator | None


def default_rng(seed: Seed = None) -> np.random.Generator:
    """A NumPy ``Generator`` from an int seed, an existing generator (returned as is) or None."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or isinstance(seed, (int, np.integer)):
        return np.random.default_rng(seed)
    raise TypeError(f"expected a seed (int), a numpy.random.Generator or None, got {type(seed).__name__}")


_DTYPE_NAMES: dict[Any, str] = {}


def dtype_name(dtype: Any) -> str:
    """The canonical name ('float32', 'int64', ...) of a dtype from any backend, or of a string.

    Remembered per dtype (the layers ask on every call; NumPy's ``dtype.name`` costs microseconds)."""
    key = (type(dtype), dtype)                          # the type first: dtypes of two libraries never meet
    try:
        return _DTYPE_NAMES[key]
    except (KeyError, TypeError):                       # not seen yet, or unhashable
        pass
    try:
        name = np.dtype(dtype).name
    except TypeError:
        name = str(dtype).rsplit(".", 1)[-1].removesuffix("'>")
    try:
        _DTYPE_NAMES[key] = name
    except TypeError:
        pass
    return name


def _draw(rng: np.random.Generator, xp: ModuleType, fn: str, shape: tuple, dtype: Any, **kw: Any) -> Any:
    """Draw on the backend: CuPy draws on the GPU from a child seed, others on the host."""
    name = dtype_name(dtype)
    if is_cupy(xp):
        import cupy as cp  # noqa: PLC0415 - only reached with CuPy installed

        g = cp.random.default_rng(int(rng.integers(2**63)))
        if fn == "normal":
            out = g.standard_normal(shape, dtype="float64") * kw["scale"] + kw["loc"]
        elif fn == "uniform":
            out = g.uniform(kw["low"], kw["high"], shape)
        else:
            out = g.random(shape)
        return out.astype(name)
    if fn == "normal":
        host = rng.normal(kw["loc"], kw["scale"], shape)
    elif fn == "uniform":
        host = rng.uniform(kw["low"], kw["high"], shape)
    else:
        host = rng.random(shape)
    host = host.astype(name, copy=False)
    return host if is_numpy(xp) else xp.asarray(host)


def _shape(shape: int | Sequence[int]) -> tuple[int, ...]:
    return (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(int(s) for s in shape)


def normal(rng: Seed, shape: int | Sequence[int], *, loc: float = 0.0, scale: float = 1.0,
           dtype: Any = "float32", xp: ModuleType = np) -> Any:
    """Samples of N(loc, scale^2) with ``shape`` on the backend ``xp``."""
    return _draw(default_rng(rng), xp, "normal", _shape(shape), dtype, loc=loc, scale=scale)


def uniform(rng: Seed, shape: int | Sequence[int], *, low: float = 0.0, high: float = 1.0,
            dtype: Any = "float32", xp: ModuleType = np) -> Any:
    """Samples of U[low, high) with ``shape`` on the backend ``xp``."""
    return _draw(default_rng(rng), xp, "uniform", _shape(shape), dtype, low=low, high=high)


def random(rng: Seed, shape: int | Sequence[int], *, dtype: Any = "float32", xp: ModuleType = np) -> Any:
    """Samples of U[0, 1) with ``shape`` on the backend ``xp``."""
    return _draw(default_rng(rng), xp, "random", _shape(shape), dtype)


def bernoulli(rng: Seed, p: Any) -> Any:
    """Binary samples with P(1) = p elementwise, in the namespace and dtype of ``p``: [u < p] with
    u ~ U[0, 1) drawn as :func:`random` draws it (float64, then cast to p's dtype).

    NumPy: the comparison writes its 0/1 result straight into an array of p's dtype (one pass
    and one temporary fewer); the same draws, so the same samples."""
    if type(p) is np.ndarray:
        u = default_rng(rng).random(p.shape)
        if u.dtype != p.dtype:
            u = u.astype(p.dtype)
        return np.less(u, p, out=np.empty(p.shape, dtype=p.dtype))
    xp = namespace(p)
    u = random(rng, tuple(p.shape), dtype=p.dtype, xp=xp)
    return xp.astype(u < p, p.dtype)


def permutation(rng: Seed, n: int, *, xp: ModuleType = np) -> Any:
    """A random permutation of ``range(n)`` as an int64 index array on ``xp``."""
    perm = default_rng(rng).permutation(int(n))
    return perm if is_numpy(xp) else xp.asarray(perm)


def integers(rng: Seed, low: int, high: int, shape: int | Sequence[int], *, xp: ModuleType = np) -> Any:
    """Uniform integers in [low, high) (int64) on ``xp``."""
    out = default_rng(rng).integers(low, high, _shape(shape))
    return out if is_numpy(xp) else xp.asarray(out)


# --------------------------------------------------------------------------- strided windows


def windows2d(x: Any, kh: int, kw: int, stride: int | tuple[int, int] = 1) -> Any:
    """Sliding ``kh x kw`` windows over the last two axes of ``x`` (N, C, H, W).

    Returns shape ``(N, C, OH, OW, kh, kw)`` with OH = (H - kh) // sh + 1 and
    OW = (W - kw) // sw + 1. NumPy and CuPy return a strided *view* (no copy);
    other backends build it from ``kh * kw`` strided slices (a loop over the
    kernel offsets, never over pixels).
    """
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    n, c, h, w = x.shape
    oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
    if oh <= 0 or ow <= 0:
        raise ValueError(f"windows2d: a {kh}x{kw} window does not fit in a {h}x{w} input")
    xp = namespace(x)
    if is_numpy(xp) or is_cupy(xp):
        lib = np if is_numpy(xp) else importlib.import_module("cupy")
        s = x.strides
        return lib.lib.stride_tricks.as_strided(
            x, shape=(n, c, oh, ow, kh, kw), strides=(s[0], s[1], s[2] * sh, s[3] * sw, s[2], s[3]), writeable=False
        )
    rows = []
    for i in range(kh):
        cols = [x[:, :, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw] for j in range(kw)]
        rows.append(xp.stack(cols, axis=-1))
    return xp.stack(rows, axis=-2)


# --------------------------------------------------------------------------- scatter-add


def scatter_add(target: Any, indices: Any, values: Any) -> Any:
    """``target[indices[i]] += values[i]`` along axis 0, with repeated indices accumulated.

    ``indices`` is a 1-D integer array; ``values`` has shape ``(len(indices),) + target.shape[1:]``.
    NumPy uses ``np.add.at``, CuPy ``cupyx.scatter_add``; other backends add a
    one-hot matrix product. Updates ``target`` in place where the backend allows and
    always returns the result.
    """
    xp = namespace(target, values)
    if is_numpy(xp):
        np.add.at(target, indices, values)
        return target
    if is_cupy(xp):
        import cupyx  # noqa: PLC0415 - only reached with CuPy installed

        cupyx.scatter_add(target, indices, values)
        return target
    m = target.shape[0]
    onehot = xp.astype(xp.reshape(indices, (-1, 1)) == xp.reshape(xp.arange(m, device=device_of(indices)), (1, -1)),
                       target.dtype)
    flat = xp.reshape(values, (values.shape[0], -1))
    return target + xp.reshape(onehot.T @ flat, target.shape)


# --------------------------------------------------------------------------- matrix products


def _flops(a: Any, b: Any) -> float:
    """2 m k n of one matrix of the product a @ b (per matrix of a batched product)."""
    if a.ndim == 0 or b.ndim == 0:
        return 0.0
    m = a.shape[-2] if a.ndim >= 2 else 1
    n = b.shape[-1] if b.ndim >= 2 else 1
    return 2.0 * m * a.shape[-1] * n


def matmul(a: Any, b: Any, out: Any = None, *, own_threads: bool | None = None) -> Any:
    """a @ b on any backend. On NumPy the product runs on the thread count of
    :mod:`dlcore.blas_threads` (one thread for small products or when other processes hold the
    CPUs); ``out`` (NumPy/CuPy) receives the result without a new allocation. Other backends
    ignore ``out`` and return a new array: always use the returned value.

    With several threads, a 2-D product is split in blocks over dlcore's own threads, each a
    single-threaded BLAS call (:func:`_split_matmul`), when ``own_threads`` is true; never when it is
    false; with None (the default), while dlcore is splitting elementwise passes over its threads too
    (:meth:`dlcore.blas_threads.ThreadPolicy.product_threads`: convolutional nets). Otherwise the BLAS
    threads it: its threads keep spinning between calls, which suits a rapid sequence of products
    with little in between (an MLP, an LSTM's time loop, an RBM's batches)."""
    if type(a) is np.ndarray and type(b) is np.ndarray:
        flops = _flops(a, b)
        if out is None and flops < blas_threads.POLICY.min_flops and max(a.ndim, b.ndim) == 3:
            return _batched_matmul(a, b, flops)
        if a.ndim == 2 and b.ndim == 2:
            threads = blas_threads.POLICY.product_threads(flops, max(a.shape[0], b.shape[1]), own_threads)
            if threads > 1:
                return _split_matmul(a, b, out, threads)
        return blas_threads.POLICY.run(flops, np.matmul, a, b, out=out)
    xp = namespace(a, b, where="matmul")
    if out is not None and is_cupy(xp):
        return xp.matmul(a, b, out=out)
    return a @ b


def _split_matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray | None, threads: int) -> np.ndarray:
    """a @ b in blocks, one per thread of dlcore's pool, each a single-threaded BLAS call: blocks of a's
    rows when a has at least as many rows as b has columns, else blocks of b's columns. (Each call
    packs all of the other factor: the split is the one that repeats the smaller one. Splitting an
    MLP's (128, 784) x (784, 1000) by rows made each thread pack all of b and the step 1.8x slower.)

    Each entry of the result is the same dot product as in one call (to round-off: the BLAS may take
    another kernel for the edge of a block, as it does when it threads a product itself).

    Why not the BLAS's own threads: OpenBLAS keeps them spinning for up to about 0.1 s after every
    threaded call, on the very CPUs that dlcore's next split pass (a ReLU, a pooling, an im2col copy)
    wants; measured here, a LeNet step on two threads then burnt twice the CPU time of one thread
    (87 ms against 41 ms under load), with own threads 44 ms. dlcore's pool threads sleep while they wait.
    """
    if out is None:
        out = np.empty((a.shape[0], b.shape[1]), dtype=np.result_type(a, b))

    if a.shape[0] >= b.shape[1]:
        def part(lo: int, hi: int) -> None:
            np.matmul(a[lo:hi], b, out=out[lo:hi])
    else:
        def part(lo: int, hi: int) -> None:
            np.matmul(a, b[:, lo:hi], out=out[:, lo:hi])

    blas_threads.POLICY.blocks(max(a.shape[0], b.shape[1]), part, threads)
    return out


def _batched_matmul(a: np.ndarray, b: np.ndarray, flops: float) -> np.ndarray:
    """A stack of small products (one batch axis; one side may be a single matrix): single-threaded
    BLAS calls, the batch split over the free CPUs by blocks of matrices (identical results)."""
    batch = a.shape[0] if a.ndim == 3 else b.shape[0]
    if (a.ndim == 3 and a.shape[0] not in (1, batch)) or (b.ndim == 3 and b.shape[0] not in (1, batch)):
        return blas_threads.POLICY.run(flops, np.matmul, a, b)        # let NumPy report the mismatch
    if (a.ndim == 3 and a.shape[0] == 1) or (b.ndim == 3 and b.shape[0] == 1) or a.ndim < 2 or b.ndim < 2:
        return blas_threads.POLICY.run(flops, np.matmul, a, b)
    out = np.empty((batch, a.shape[-2], b.shape[-1]), dtype=np.result_type(a, b))

    def block(lo: int, hi: int) -> None:
        blas_threads.POLICY.run(flops, np.matmul, a[lo:hi] if a.ndim == 3 else a, b[lo:hi] if b.ndim == 3 else b,
                                out=out[lo:hi])

    blas_threads.parallel_chunks(batch, block, int(batch * flops) // 16)
    return out


def thread_policy() -> str:
    """One line describing how :func:`matmul` picks BLAS threads (see :mod:`dlcore.blas_threads`)."""
    return blas_threads.describe()


# --------------------------------------------------------------------------- fused elementwise kernels


def parallel_rows(rows: int, fn: Any, entries: int, xp: ModuleType) -> None:
    """Run ``fn(lo, hi)`` for row blocks of a batch covering ``range(rows)``: split over threads on NumPy
    when the pass is large and CPUs are free (:func:`dlcore.blas_threads.parallel_chunks`), one call
    ``fn(0, rows)`` otherwise and on every other backend. ``fn`` must only write rows lo:hi of its outputs."""
    if is_numpy(xp):
        blas_threads.parallel_chunks(rows, fn, entries)
    else:
        fn(0, rows)


def relu_forward(x: Any) -> tuple[Any, Any]:
    """(y, mask) with mask = [x > 0] and y = x · mask (NaN stays NaN, as x · 0 does).

    NumPy: the mask is a bool array and the product is one mixed-type pass (two passes instead of
    three, and a mask of one byte per entry), split over threads for a large batch. Other backends:
    the mask in x's dtype.
    """
    xp = namespace(x)
    if is_numpy(xp):
        if x.ndim == 0:
            mask = np.greater(x, 0)
            return np.multiply(x, mask, dtype=x.dtype), mask
        y, mask = np.empty_like(x), np.empty(x.shape, dtype=bool)

        def rows(lo: int, hi: int) -> None:
            np.greater(x[lo:hi], 0, out=mask[lo:hi])
            np.multiply(x[lo:hi], mask[lo:hi], out=y[lo:hi], dtype=x.dtype)

        blas_threads.parallel_chunks(x.shape[0], rows, x.size)
        return y, mask
    mask = xp.astype(x > 0, x.dtype)
    return x * mask, mask


def relu(x: Any) -> Any:
    """y = max(0, x) = x · [x > 0] elementwise (NaN stays NaN).

    NumPy: one ``maximum`` pass (no mask is made: :func:`relu_backward` finds [x > 0] again as
    [y > 0]), split over threads for a large batch; 2.5x faster than the comparison and the mixed-type
    product of :func:`relu_forward`. Other backends: x · [x > 0] in x's dtype.
    """
    xp = namespace(x)
    if is_numpy(xp):
        zero = x.dtype.type(0)
        if x.ndim == 0:
            return np.maximum(x, zero)
        y = np.empty_like(x)

        def rows(lo: int, hi: int) -> None:
            np.maximum(x[lo:hi], zero, out=y[lo:hi])

        blas_threads.parallel_chunks(x.shape[0], rows, x.size)
        return y
    return x * xp.astype(x > 0, x.dtype)


def relu_backward(dy: Any, y: Any) -> Any:
    """dL/dx = dL/dy · [y > 0] for y = relu(x) ([y > 0] = [x > 0], also for a NaN x: the gradient is 0 there).

    NumPy: the comparison writes its 0/1 straight into a float array of dy's dtype, then one in-place
    float product (a float·float pass is faster than a bool·float one); split over threads for a large
    batch. Other backends: dy · [y > 0] in dy's dtype.
    """
    if type(dy) is np.ndarray and type(y) is np.ndarray and dy.shape == y.shape and dy.ndim > 0:
        out = np.empty_like(dy)

        def rows(lo: int, hi: int) -> None:
            np.greater(y[lo:hi], 0, out=out[lo:hi])
            out[lo:hi] *= dy[lo:hi]

        blas_threads.parallel_chunks(dy.shape[0], rows, dy.size)
        return out
    xp = namespace(dy, y)
    return dy * xp.astype(y > 0, dy.dtype)


def mask_multiply(dy: Any, mask: Any, out: Any = None) -> Any:
    """dy · mask for a 0/1 mask, bool (as :func:`relu_forward` makes on NumPy, or a comparison) or in
    dy's dtype. NumPy: one mixed-type pass (split over threads for a large batch), written into
    ``out`` when given; other backends ignore ``out`` and return a new array: always use the returned
    value."""
    if type(dy) is np.ndarray and type(mask) is np.ndarray:
        if out is not None or dy.ndim == 0 or dy.shape != mask.shape:
            return np.multiply(dy, mask, out=out, dtype=dy.dtype)
        res = np.empty_like(dy)

        def rows(lo: int, hi: int) -> None:
            np.multiply(dy[lo:hi], mask[lo:hi], out=res[lo:hi], dtype=dy.dtype)

        blas_threads.parallel_chunks(dy.shape[0], rows, dy.size)
        return res
    if dtype_name(mask.dtype) == "bool":
        mask = namespace(mask).astype(mask, dy.dtype)
    return dy * mask


def copy_into(out: Any, view: Any) -> Any:
    """out[...] = view (same shape), split over threads by rows on NumPy for a large copy; returns out."""
    if type(out) is np.ndarray and out.ndim > 0:
        def rows(lo: int, hi: int) -> None:
            out[lo:hi] = view[lo:hi]

        blas_threads.parallel_chunks(out.shape[0], rows, out.size)
        return out
    out[...] = view
    return out


def sigmoid_(z: Any) -> Any:
    """σ(z) = ½ tanh(z/2) + ½ (as :func:`dlcore.nn.functional.sigmoid_tanh`), computed in place on
    NumPy/CuPy (z is overwritten and returned: pass a fresh array, such as a product just made);
    a new array elsewhere. Same operations in the same order, so the same roundings."""
    xp = namespace(z)
    if is_numpy(xp) or is_cupy(xp):
        lib = np if is_numpy(xp) else importlib.import_module("cupy")
        z *= 0.5
        lib.tanh(z, out=z)
        z *= 0.5
        z += 0.5
        return z
    return 0.5 * xp.tanh(0.5 * z) + 0.5


def maximum_(a: Any, b: Any, out: Any = None) -> Any:
    """max(a, b) elementwise into ``out`` (default: a, in place) on NumPy/CuPy, returning it; a new
    array elsewhere (always use the returned value)."""
    xp = namespace(a, b)
    if is_numpy(xp):
        return np.maximum(a, b, out=a if out is None else out)
    if is_cupy(xp):
        return importlib.import_module("cupy").maximum(a, b, out=a if out is None else out)
    return xp.maximum(a, b)


def add_scaled(w: Any, alpha: float, g: Any, *, block: int = 1 << 15) -> Any:
    """w ← w + alpha · g in place where the backend allows; returns w.

    NumPy: block by block through one small scratch buffer, so neither a w-sized temporary is
    allocated nor the product alpha · g written to and read back from main memory (same roundings
    as ``w += alpha * g``); a large w's blocks are split over the free CPUs while dlcore splits its other
    passes (a convolutional net; not in an MLP, where the BLAS's threads are kept). Other backends:
    ``w + alpha * g`` (in place where supported).
    """
    if type(w) is np.ndarray and type(g) is np.ndarray and w.flags.c_contiguous and g.flags.c_contiguous \
            and w.dtype == g.dtype and w.size > block:
        wf, gf = w.reshape(-1), g.reshape(-1)
        scale = w.dtype.type(alpha)

        def blocks(lo: int, hi: int) -> None:            # blocks lo:hi, on one thread, with its own buffer
            buf = np.empty(block, dtype=w.dtype)
            for start in range(lo * block, min(hi * block, wf.size), block):
                stop = min(start + block, wf.size)
                tmp = buf[:stop - start]
                np.multiply(gf[start:stop], scale, out=tmp)
                wf[start:stop] += tmp

        blas_threads.parallel_chunks(-(-wf.size // block), blocks, wf.size, follow=True)
        return w
    try:
        w += alpha * g
        return w
    except (TypeError, ValueError, AttributeError):  # a backend without in-place updates
        return w + alpha * g
