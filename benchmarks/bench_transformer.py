"""One Transformer encoder layer forward + backward: dlcore vs torch.nn.TransformerEncoderLayer, CPU, same process.

    python -m benchmarks.bench_transformer     # batch 32, T 64, E 128, 4 heads, ffn 512, float32, median of 5

One round is a forward over the batch and a backward that produces dL/dx and every parameter
gradient, with the same upstream gradient on both sides; both layers are post-norm with ReLU and
dropout 0 (torch in training mode, so no inference fast path). The rounds alternate between the
two libraries so that a busy machine slows both alike. There is no target: the number says how
far the NumPy reference is from PyTorch's kernels. Runs without torch (then only dlcore's time
and memory are printed).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
from collections.abc import Callable

import numpy as np

from benchmarks import harness
from dlcore.nn.transformer import TransformerEncoderLayer

N, T, E, HEADS, FFN = 32, 64, 128, 4, 512


def make_inputs(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((N, T, E)).astype("float32"), rng.standard_normal((N, T, E)).astype("float32")


def dlcore_step() -> Callable[[], None]:
    x, dy = make_inputs()
    layer = TransformerEncoderLayer(E, HEADS, FFN, dropout=0.0, rng=0, dtype="float32")

    def step() -> None:
        layer.forward(x, train=True)
        layer.backward(dy)

    return step


def torch_step(torch) -> Callable[[], None]:
    x_np, dy_np = make_inputs()
    layer = torch.nn.TransformerEncoderLayer(E, HEADS, dim_feedforward=FFN, dropout=0.0, activation="relu",
                                             batch_first=True, norm_first=False)
    layer.train()
    x = torch.from_numpy(x_np).requires_grad_(True)
    dy = torch.from_numpy(dy_np)

    def step() -> None:
        layer.zero_grad(set_to_none=True)
        x.grad = None
        layer(x).backward(dy)

    return step


def interleaved(steps: dict[str, Callable[[], None]], rounds: int, warmup: int = 2) -> dict[str, harness.Timing]:
    for fn in steps.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, fn in steps.items():
            times[name].append(harness.measure(name, fn, rounds=1, warmup=0).median_s)
    return {name: harness.Timing(name, statistics.median(ts), ts) for name, ts in times.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None,
                        help="limit NumPy's BLAS (threadpoolctl) and torch to this many threads")
    args = parser.parse_args(argv)
    limits = contextlib.nullcontext()
    if args.threads is not None:
        from threadpoolctl import threadpool_limits

        limits = threadpool_limits(args.threads, user_api="blas")
    torch = harness.torch_or_none()
    if torch is not None and args.threads is not None:
        torch.set_num_threads(args.threads)
    print(f"TransformerEncoderLayer forward + backward, batch {N}, T {T}, E {E}, {HEADS} heads, ffn {FFN}, "
          f"float32, median of {args.rounds} rounds")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    with limits:
        print(f"BLAS: {harness.blas_info()}")
        steps = {"dlcore TransformerEncoderLayer": dlcore_step()}
        if torch is not None:
            print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
            steps["torch.nn.TransformerEncoderLayer"] = torch_step(torch)
        timings = interleaved(steps, args.rounds)
        print(harness.ratio_line(timings["dlcore TransformerEncoderLayer"],
                                 timings.get("torch.nn.TransformerEncoderLayer"),
                                 missing="install torch to compare with torch.nn.TransformerEncoderLayer"))
        peak = harness.traced_peak(steps["dlcore TransformerEncoderLayer"])
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"peak memory, dlcore (tracemalloc, one step): {peak / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
