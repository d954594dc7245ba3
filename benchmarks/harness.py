"""Timing and memory helpers shared by the benchmarks (never used by tests).

Times are medians over rounds after a warm-up, measured with ``time.perf_counter``; peak
memory is the high-water mark of allocations traced by ``tracemalloc`` (NumPy registers its
buffers there; PyTorch does not, so bench_lstm also measures the RSS growth of a child process).
"""

from __future__ import annotations

import contextlib
import gc
import os
import platform
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator
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


def load_average() -> str:
    """The 1-, 5- and 15-minute load averages and the CPU count, e.g. '0.12 0.30 0.41 on 2 CPUs'."""
    try:
        loads = " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:  # Windows
        loads = "n/a"
    return f"{loads} on {os.cpu_count()} CPUs"


def cpu_model() -> str:
    """The processor's name (from /proc/cpuinfo on Linux, platform.processor() elsewhere)."""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_line() -> str:
    """One line naming the CPU, the BLAS kernel and thread count, dlcore's thread policy and the load."""
    from dlcore import backend

    policy = backend.thread_policy() if hasattr(backend, "thread_policy") else "BLAS default"
    return (f"machine: {cpu_model()}, {os.cpu_count()} CPUs; BLAS: {blas_info()}; "
            f"dlcore threads: {policy}; load average {load_average()}")


_BUSY = "import sys\nsys.stdout.write('ready\\n')\nsys.stdout.flush()\nx = 0\nwhile True:\n    x += 1\n"


@contextlib.contextmanager
def busy_process(n: int = 1) -> Iterator[list[int]]:
    """Run ``n`` CPU-bound processes (a pure-Python counting loop each) beside the block; yields their pids.

    Each child reports 'ready' once its loop is about to start, and the block begins only after every
    child has said so (no fixed sleep); the children are ended, by their own pids, when the block exits.
    """
    procs = [subprocess.Popen([sys.executable, "-c", _BUSY], stdout=subprocess.PIPE, text=True)
             for _ in range(n)]
    try:
        for proc in procs:
            if proc.stdout.readline().strip() != "ready":
                raise RuntimeError("the busy process did not start")
        yield [proc.pid for proc in procs]
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
            proc.stdout.close()


def contention_line(name: str, quiet: Timing, busy: Timing, limit: float = 2.0) -> str:
    """'name: quiet q ms, contended c ms, ratio r (target <= 2.00: met|MISSED)'."""
    r = busy.median_s / quiet.median_s
    return (f"  {name}: quiet {quiet.median_s * 1e3:.2f} ms, with a busy process {busy.median_s * 1e3:.2f} ms, "
            f"contended / quiet = {r:.2f} (target <= {limit:.2f}: {'met' if r <= limit else 'MISSED'})")


def spread(ts: Timing) -> str:
    """'min-max' of a timing's rounds in ms."""
    return f"{min(ts.rounds) * 1e3:.2f}-{max(ts.rounds) * 1e3:.2f} ms"


def torch_or_none() -> Any:
    try:
        import torch
    except ImportError:
        return None
    return torch
