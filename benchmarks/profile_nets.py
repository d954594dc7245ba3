"""Where the milliseconds go: a line-by-line profile of one training step of each standard net.

    python -m benchmarks.profile_nets [mlp lenet lstm rbm] [--steps 20] [--top 12] [--threads N]

Each net's step (the same as its benchmark script) runs ``--steps`` times under ``line_profiler``
(``pip install line_profiler``; a profiling tool, not a dependency of the project) with every
compute method of the layers involved registered, so that each source line's share of the step is
known: matrix products, im2col copies, elementwise passes, allocations. Lines are grouped into
those categories by what they call (see :func:`category`), and the top lines are printed with
their share. Absolute times are inflated by the profiler (a few µs per line) and by load on the
machine; the shares are what this script is for. Without line_profiler it falls back to cProfile
(functions only: an ``@`` product is then counted in the function that contains it).
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import inspect
import os
import pstats
import re
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from benchmarks import harness

# Patterns tried in order; the first that matches a source line names its category.
CATEGORIES: list[tuple[str, re.Pattern[str]]] = [
    ("GEMM", re.compile(r"@|matmul|\bgemm\b|\bdot\(|_w_rows|mm\(")),
    ("im2col / layout copies", re.compile(r"im2col|materialize|ascontiguous|permute_dims|transpose|concat|stack|"
                                          r"take\(|copy=True|\[:, :, rows, cols\] [+]?=|acc\[")),
    ("allocation", re.compile(r"\b(empty|zeros|full|ones)(_like)?\(")),
    ("random numbers", re.compile(r"bernoulli|random\(|permutation|uniform|normal\(")),
    ("elementwise", re.compile(r"[-+*/]=|tanh|exp|log|maximum|minimum|multiply|subtract|add\(|where|astype|sigmoid|"
                               r"sum\(|mean\(|[-+*/] ")),
]


def category(line: str) -> str:
    """The category of one source line (first matching pattern; 'other' for checks and bookkeeping)."""
    code = line.split("#", 1)[0]
    for name, pattern in CATEGORIES:
        if pattern.search(code):
            return name
    return "other (checks, Python)"


def _targets(name: str) -> tuple[Callable[[], None], list[Callable[..., Any]]]:
    """The step function of benchmark ``name`` and the compute functions to profile line by line."""
    from dlcore.nn import activations, conv, im2col, linear, losses, pooling
    from dlcore.nn.functional import log_softmax, one_hot, sigmoid_tanh
    from dlcore.optim import optimizers

    common = [linear.Affine.forward, linear.Affine.backward, activations.ReLU.forward, activations.ReLU.backward,
              losses.SoftmaxCrossEntropy.forward, losses.SoftmaxCrossEntropy.backward, log_softmax, one_hot,
              optimizers.Optimizer.update, optimizers.SGD._step]
    if name == "mlp":
        from benchmarks import bench_mlp

        return bench_mlp.dlcore_step()[0], common
    if name == "lenet":
        from benchmarks import bench_lenet

        return bench_lenet.dlcore_step(), common + [
            conv.Conv2D.forward, conv.Conv2D.backward, conv.Conv2D._dx_rows, conv.Conv2D._dx_images,
            im2col.im2col, im2col.im2col_images, im2col.materialize, pooling.MaxPool2D.forward,
            pooling.MaxPool2D.backward, linear.Flatten.forward, linear.Flatten.backward]
    if name == "lstm":
        from benchmarks import bench_lstm
        from dlcore.nn.lstm import LSTM

        return bench_lstm.dlcore_step()[1], [LSTM.forward, LSTM.backward, LSTM._forward_numpy, LSTM._backward_numpy]
    if name == "rbm":
        from benchmarks import bench_rbm
        from dlcore import backend
        from dlcore.energy.rbm import RBM

        X = bench_rbm.make_data()
        return (lambda: bench_rbm.run_dlcore(X)), [RBM.fit, RBM._cd_step, RBM._ph, RBM._mean_v, RBM._sample_v,
                                                   RBM._apply, backend.bernoulli, backend._draw, sigmoid_tanh]
    raise ValueError(f"unknown net {name!r}: expected mlp, lenet, lstm or rbm")


def _unwrap(fn: Callable[..., Any]) -> Callable[..., Any]:
    return inspect.unwrap(getattr(fn, "__func__", fn))


def profile_lines(name: str, steps: int, top: int) -> None:
    step, functions = _targets(name)
    step()                                            # warm-up: buffers allocated, caches filled
    try:
        from line_profiler import LineProfiler
    except ImportError:
        print("line_profiler not installed: cProfile by function instead (pip install line_profiler)")
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(steps):
            step()
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(top)
        return
    lp = LineProfiler()
    for fn in functions:
        lp.add_function(_unwrap(fn))
    t0 = time.perf_counter()
    lp.runcall(lambda: [step() for _ in range(steps)])
    wall = (time.perf_counter() - t0) / steps
    stats = lp.get_stats()
    rows = []                                         # (seconds per step, file:line func, source, hits)
    per_func: dict[str, tuple[float, int]] = {}       # short name -> (seconds in its lines, calls)
    for (filename, _, func), timings in stats.timings.items():
        if not timings:
            continue
        try:
            with open(filename) as handle:
                source = handle.read().splitlines()
        except OSError:
            source = []
        seconds = sum(total for _, _, total in timings) * stats.unit / steps
        calls = max(1, timings[0][1])                 # hits of the first executed line = calls
        short = func.rsplit(".", 1)[-1]
        old = per_func.get(short, (0.0, 0))
        per_func[short] = (old[0] + seconds, old[1] + calls)
        for lineno, hits, total in timings:
            text = source[lineno - 1].strip() if 0 < lineno <= len(source) else "?"
            rows.append((total * stats.unit / steps, f"{os.path.basename(filename)}:{lineno} {func}", text, hits))
    # a line that calls a profiled function also holds that function's time: subtract it (the callee's
    # mean time per call times this line's hits), so that every millisecond is counted once, where it is spent
    leaf_rows = []
    for seconds, where, text, hits in rows:
        for callee in _profiled_callees(text, per_func):
            total_s, calls = per_func[callee]
            seconds -= total_s * hits / calls
        leaf_rows.append((max(seconds, 0.0), where, text, hits))
    total = sum(r[0] for r in leaf_rows)
    by_cat: dict[str, float] = defaultdict(float)
    for seconds, _, text, _ in leaf_rows:
        by_cat[category(text)] += seconds
    print(f"{name}: {wall * 1e3:.2f} ms per step under the profiler, {total * 1e3:.2f} ms in profiled lines "
          f"({steps} steps); load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for cat, seconds in sorted(by_cat.items(), key=lambda kv: -kv[1]):
        print(f"  {cat:28s} {seconds * 1e3:8.2f} ms  {100 * seconds / total:5.1f} %")
    print(f"  top {top} lines:")
    for seconds, where, text, hits in sorted(leaf_rows, key=lambda r: -r[0])[:top]:
        share = 100 * seconds / total
        print(f"  {share:5.1f} %  {seconds * 1e3:7.3f} ms  x{hits // steps:<4d} {where:38s} {text[:80]}")


def _profiled_callees(text: str, per_func: dict[str, tuple[float, int]]) -> list[str]:
    """The profiled functions this source line calls (by name; forward/backward only as self.<name>)."""
    code = text.split("#", 1)[0]
    return [f for f in per_func if f not in ("forward", "backward") and re.search(rf"\b{re.escape(f)}\(", code)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("nets", nargs="*", default=["mlp", "lenet", "lstm", "rbm"])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--threads", type=int, default=None, help="limit the BLAS to this many threads")
    args = parser.parse_args(argv)
    print(harness.machine_line())
    limits = contextlib.nullcontext()
    if args.threads is not None:
        from threadpoolctl import threadpool_limits

        limits = threadpool_limits(args.threads, user_api="blas")
    with limits:
        for name in args.nets:
            profile_lines(name, args.steps if name != "rbm" else max(1, args.steps // 10), args.top)
            print()


if __name__ == "__main__":
    main()
