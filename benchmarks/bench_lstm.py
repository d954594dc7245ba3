"""LSTM forward + backward: dlcore vs torch.nn.LSTM on the CPU, same process, float32.

    python -m benchmarks.bench_lstm [--runs 3] [--contention]   # batch 64, T 50, D 64, H 256, median of 5 rounds

Target (issue 12): dlcore at or below PyTorch's time (ratio <= 1.0); with a busy process beside
(``--contention``), no slower than twice its quiet time. One round is a forward over the whole batch of
sequences and a backward that produces dL/dxs and every parameter gradient, with the same
upstream gradient dL/dhs on both sides. Peak memory: tracemalloc's high-water mark for dlcore,
and the growth of the peak RSS of a fresh child process for both. Runs without torch
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
TARGET = 1.0  # issue 12: at or below PyTorch CPU


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
    """Run two steps in this fresh process; print the growth of its peak RSS in bytes."""
    if kind == "torch":
        import torch

        step = torch_step(torch)
    else:
        step = dlcore_step()[1]
    before = _peak_rss()
    step()
    step()
    print(json.dumps({"rss_growth": _peak_rss() - before}))


def _peak_rss() -> int:
    """This process's peak resident set in bytes: VmHWM on Linux (ru_maxrss survives exec, so a child
    started by a big parent would inherit the parent's peak), ru_maxrss elsewhere."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def rss_growth(kind: str) -> int | None:
    proc = subprocess.run([sys.executable, "-m", "benchmarks.bench_lstm", "--child", kind],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])["rss_growth"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    harness.add_common_arguments(parser, rounds=5)
    parser.add_argument("--child", choices=["dlcore", "torch"], help=argparse.SUPPRESS)
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurements")
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child)
        return
    torch = harness.torch_or_none()
    print(f"LSTM forward + backward, batch {N}, T {T}, D {D}, H {H}, float32, median of {args.rounds} rounds")
    with harness.thread_limit(args.threads, torch):
        print(harness.machine_line())
        steps = {"dlcore LSTM": dlcore_step()[1]}
        if torch is not None:
            print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
            steps["torch.nn.LSTM"] = torch_step(torch)
        else:
            print("torch not installed: dlcore's time alone (install torch==2.13.0 to compare)")
        harness.compare("lstm", steps, ours="dlcore LSTM", ref="torch.nn.LSTM" if torch is not None else None,
                        target=TARGET, rounds=args.rounds, runs=args.runs, contention=args.contention,
                        ref_label="torch")
        if args.no_memory:
            return
        peak = harness.traced_peak(steps["dlcore LSTM"])
    print(f"load average after: {harness.load_average()}")
    print(f"peak memory, dlcore (tracemalloc): {peak / 2**20:.1f} MiB")
    for kind in ("dlcore", "torch") if torch is not None else ("dlcore",):
        growth = rss_growth(kind)
        text = "n/a" if growth is None else f"{growth / 2**20:.1f} MiB"
        print(f"peak memory, {kind} (peak-RSS growth of a fresh process over two steps): {text}")


if __name__ == "__main__":
    main()
