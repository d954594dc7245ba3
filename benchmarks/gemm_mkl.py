"""Would MKL's SGEMM meet issue 12's MLP target? The MLP step's eight products, NumPy's BLAS against MKL's.

    pip install mkl      # in a scratch environment: a 229 MB wheel, about 1 GB installed, x86 only
    python -m benchmarks.gemm_mkl [--rounds 5]

The products of one SGD step of bench_mlp (batch 128, 784-1000-1000-10, float32; no dL/dX for the first
layer): Y = X W for every layer, dW = Xᵀ dY for every layer, dX = dY Wᵀ for the last two. MKL is called
through ctypes (``cblas_sgemm``, row-major) with as many threads as NumPy's BLAS has. The two alternate,
with a 0.2 s pause before each round so that the other library's spinning threads have parked. Not a
dependency of the project: this script records the measurement behind the decision not to take one.
"""

from __future__ import annotations

import argparse
import ctypes
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from benchmarks import harness

BATCH, SIZES = 128, (784, 1000, 1000, 10)
_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112


def load_mkl() -> ctypes.CDLL:
    """MKL's single dynamic library from the ``mkl`` wheel (installed into ``sys.prefix/lib``)."""
    found = sorted(Path(sys.prefix, "lib").glob("libmkl_rt.so*")) + sorted(Path(sys.prefix, "Library", "bin")
                                                                             .glob("mkl_rt*.dll"))
    if not found:
        raise SystemExit("MKL is not installed in this environment: pip install mkl (x86 only)")
    return ctypes.CDLL(str(found[0]))


def sgemm(mkl: ctypes.CDLL, a: np.ndarray, b: np.ndarray, *, ta: bool = False, tb: bool = False) -> np.ndarray:
    """C = op(A) op(B) in float32 with MKL (A, B C-contiguous)."""
    m, k = (a.shape[1], a.shape[0]) if ta else a.shape
    n = b.shape[0] if tb else b.shape[1]
    c = np.empty((m, n), np.float32)
    ptr = ctypes.POINTER(ctypes.c_float)
    mkl.cblas_sgemm(_ROW_MAJOR, _TRANS if ta else _NO_TRANS, _TRANS if tb else _NO_TRANS, m, n, k,
                    ctypes.c_float(1.0), a.ctypes.data_as(ptr), a.shape[1], b.ctypes.data_as(ptr), b.shape[1],
                    ctypes.c_float(0.0), c.ctypes.data_as(ptr), n)
    return c


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    from threadpoolctl import threadpool_info

    threads = next((info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"), 1)
    mkl = load_mkl()
    mkl.MKL_Set_Num_Threads(int(threads))
    rng = np.random.default_rng(0)
    xs = [rng.random((BATCH, SIZES[i]), dtype=np.float32) for i in range(3)]
    ws = [rng.random((SIZES[i], SIZES[i + 1]), dtype=np.float32) for i in range(3)]
    dys = [rng.random((BATCH, SIZES[i + 1]), dtype=np.float32) for i in range(3)]

    def numpy_products() -> None:
        for i in range(3):
            np.matmul(xs[i], ws[i])
            np.matmul(xs[i].T, dys[i])
            if i:
                np.matmul(dys[i], ws[i].T)

    def mkl_products() -> None:
        for i in range(3):
            sgemm(mkl, xs[i], ws[i])
            sgemm(mkl, xs[i], dys[i], ta=True)
            if i:
                sgemm(mkl, dys[i], ws[i], tb=True)

    for i in range(3):                                   # the same products, to float32 round-off
        np.testing.assert_allclose(sgemm(mkl, xs[i], dys[i], ta=True), xs[i].T @ dys[i], rtol=1e-3)
        np.testing.assert_allclose(sgemm(mkl, dys[i], ws[i], tb=True), dys[i] @ ws[i].T, rtol=1e-3)

    def median_ms(fn: Callable[[], None], n: int = 50) -> float:
        fn()
        times = []
        for _ in range(n):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return statistics.median(times) * 1e3

    print(harness.machine_line(), f"; MKL threads={threads}")
    rounds: dict[str, list[float]] = {"numpy": [], "mkl": []}
    for _ in range(args.rounds):
        for name, fn in (("numpy", numpy_products), ("mkl", mkl_products)):
            time.sleep(0.2)
            rounds[name].append(median_ms(fn))
    for name, values in rounds.items():
        print(f"{name}: the step's eight products {statistics.median(values):.2f} ms "
              f"(rounds {min(values):.2f}-{max(values):.2f})")
    print(f"mkl / numpy = {statistics.median(rounds['mkl']) / statistics.median(rounds['numpy']):.2f}")


if __name__ == "__main__":
    main()
