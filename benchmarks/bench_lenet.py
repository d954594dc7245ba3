"""One SGD training step of LeNet (batch 128, float32): dlcore versus PyTorch CPU in the same process.

conv 5x5x20 on 1x28x28, ReLU, max-pool 2, conv 5x5x50, ReLU, max-pool 2, affine 800 -> 500, ReLU,
affine 500 -> 10, softmax cross-entropy, SGD; one step = forward + backward + update. Median of 5
rounds (each the mean of 3 steps, dlcore and torch alternating) after warm-up. Run:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python -m benchmarks.bench_lenet [--runs 3] [--contention]

(the OPENBLAS_* variables set on this machine force a slower BLAS kernel; unset them only here).
PyTorch does not compute a gradient for its input batch, so neither does dlcore's first
convolution (``Conv2D(..., input_grad=False)``); ``--with-dx`` times the step with that gradient
computed anyway too.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks import harness
from dlcore import nn, optim
from dlcore.nn.conv import Conv2D
from dlcore.nn.pooling import MaxPool2D

BATCH, LR, TARGET = 128, 0.01, 1.0   # issue 12: at or below PyTorch CPU


def lenet(*, input_grad: bool = False) -> nn.Sequential:
    return nn.Sequential(
        Conv2D(1, 20, 5, rng=1, input_grad=input_grad), nn.ReLU(), MaxPool2D(2),     # 20 x 24 x 24 -> 20 x 12 x 12
        Conv2D(20, 50, 5, rng=2), nn.ReLU(), MaxPool2D(2),                           # 50 x 8 x 8 -> 50 x 4 x 4
        nn.Flatten(), nn.Affine(800, 500, rng=3), nn.ReLU(), nn.Affine(500, 10, rng=4),
    )


def dlcore_step(*, input_grad: bool = False) -> Callable[[], None]:
    rng = np.random.default_rng(0)
    model, loss, opt = lenet(input_grad=input_grad), nn.SoftmaxCrossEntropy(), optim.SGD(lr=LR)
    x = rng.random((BATCH, 1, 28, 28), dtype=np.float32)
    t = rng.integers(0, 10, BATCH)

    def step() -> None:
        loss.forward(model.forward(x), t)
        model.backward(loss.backward())
        opt.update(model.params, model.grads)

    return step


def torch_step(torch: Any) -> Callable[[], None]:
    torch.manual_seed(0)
    nnt = torch.nn
    model = nnt.Sequential(
        nnt.Conv2d(1, 20, 5), nnt.ReLU(), nnt.MaxPool2d(2),
        nnt.Conv2d(20, 50, 5), nnt.ReLU(), nnt.MaxPool2d(2),
        nnt.Flatten(), nnt.Linear(800, 500), nnt.ReLU(), nnt.Linear(500, 10),
    )
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    lossf = nnt.CrossEntropyLoss()
    x = torch.rand(BATCH, 1, 28, 28)
    t = torch.randint(0, 10, (BATCH,))

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        lossf(model(x), t).backward()
        opt.step()

    return step


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    harness.add_common_arguments(parser, rounds=5)
    parser.add_argument("--with-dx", action="store_true",
                        help="also time the step with dL/dx of the first convolution computed")
    args = parser.parse_args(argv)
    torch = harness.torch_or_none()
    print(f"LeNet (conv5x5x20, pool, conv5x5x50, pool, 800-500-10), batch {BATCH}, float32, one SGD step")
    with harness.thread_limit(args.threads, torch):
        print(harness.machine_line())
        step = dlcore_step()
        fns = {"dlcore": step}
        if args.with_dx:
            fns["dlcore, conv1 dx computed too"] = dlcore_step(input_grad=True)
        if torch is not None:
            print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
            fns["torch"] = torch_step(torch)
        else:
            print("torch not installed: dlcore's time alone (install torch==2.13.0 to compare)")
        result = harness.compare("lenet", fns, ours="dlcore", ref="torch" if torch is not None else None,
                                 target=TARGET, rounds=args.rounds, runs=args.runs, contention=args.contention,
                                 inner=3, ref_label="torch")
        peak = harness.traced_peak(step)
    print(f"  dlcore peak traced memory per step: {peak / 2**20:.1f} MiB")
    result["peak_bytes"] = peak
    return result


if __name__ == "__main__":
    main()
