"""Timing and memory helpers shared by the benchmarks (never used by tests).

Times are medians over rounds after a warm-up, measured with ``time.perf_counter``; peak
memory is the high-water mark of allocations traced by ``tracemalloc`` (NumPy registers its
buffers there; PyTorch does not, so bench_lstm also measures the RSS growth of a child process).
"""

from __future__ import annotations

import gc
import os
import statistics
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass
class Timing:
    name: str
    median_s: float
    rounds: list[float]

    def __str__(self) -> str:
        return f"{self.name}: median {self.median_s * 1e3:.2f} ms over {len(self.rounds)} rounds"


def measure(name: str, fn: Callable[[], Any], *, rounds: int = 5, warmup: int = 1, inner: int = 1) -> Timing:
    """Median wall time of ``fn()`` (averaged over ``inner`` calls per round)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(rounds):
        gc.collect()
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        times.append((time.perf_counter() - t0) / inner)
    return Timing(name, statistics.median(times), times)


def traced_peak(fn: Callable[[], Any]) -> int:
    """Peak bytes allocated through tracemalloc (NumPy registers its buffers there) while running ``fn``."""
    gc.collect()
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def ratio_line(ours: Timing, ref: Timing | None, target: float | None = None, *,
               missing: str = "install torch==2.13.0 to compare") -> str:
    """'ours / ref = r (target <= t: met|MISSED)' or a note (``missing``) that the reference is not there."""
    if ref is None:
        return f"{ours}\n  reference not available ({missing})"
    r = ours.median_s / ref.median_s
    verdict = "" if target is None else f"  (target <= {target:.2f}: {'met' if r <= target else 'MISSED'})"
    return f"{ours}\n{ref}\n  ratio dlcore / reference = {r:.2f}{verdict}"


def blas_info() -> str:
    """Which BLAS library and kernel NumPy runs (threadpoolctl), and the OPENBLAS_* overrides in force."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "threadpoolctl not installed"
    parts = [f"{i.get('internal_api')} {i.get('version')} {i.get('architecture')} threads={i.get('num_threads')}"
             for i in threadpool_info() if i.get("user_api") == "blas"]
    env = {k: v for k, v in os.environ.items() if k.startswith("OPENBLAS_")}
    return "; ".join(parts) + (f"; env {env}" if env else "; no OPENBLAS_* overrides")


def torch_or_none() -> Any:
    try:
        import torch
    except ImportError:
        return None
    return torch
