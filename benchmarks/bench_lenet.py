"""One SGD training step of LeNet (batch 128, float32): dlcore versus PyTorch CPU in the same process.

conv 5x5x20 on 1x28x28, ReLU, max-pool 2, conv 5x5x50, ReLU, max-pool 2, affine 800 -> 500, ReLU,
affine 500 -> 10, softmax cross-entropy, SGD; one step = forward + backward + update. Median of 5
rounds (each the mean of 3 steps) after warm-up. Run:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python -m benchmarks.bench_lenet

(the OPENBLAS_* variables set on this machine force a slower BLAS kernel; unset them only here).
PyTorch does not compute a gradient for its input batch, so neither does dlcore's first
convolution (``Conv2D(..., input_grad=False)``); the step with that gradient computed anyway is
timed and printed too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks import harness
from dlcore import nn, optim
from dlcore.nn.conv import Conv2D
from dlcore.nn.pooling import MaxPool2D

BATCH, LR, TARGET = 128, 0.01, 1.5


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


def main(rounds: int = 5) -> dict:
    print(f"LeNet (conv5x5x20, pool, conv5x5x50, pool, 800-500-10), batch {BATCH}, float32, one SGD step")
    print("BLAS:", harness.blas_info())
    step = dlcore_step()
    ours = harness.measure("dlcore", step, rounds=rounds, warmup=2, inner=3)
    peak = harness.traced_peak(step)
    with_dx = harness.measure("dlcore, conv1 dx computed too", dlcore_step(input_grad=True), rounds=rounds,
                              warmup=2, inner=3)
    torch = harness.torch_or_none()
    ref = None
    if torch is not None:
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
        ref = harness.measure("torch", torch_step(torch), rounds=rounds, warmup=2, inner=3)
    print(harness.ratio_line(ours, ref, target=TARGET))
    print(f"{with_dx}" + (f"  (ratio {with_dx.median_s / ref.median_s:.2f})" if ref is not None else ""))
    print(f"  dlcore peak traced memory per step: {peak / 2**20:.1f} MiB")
    return {"dlcore_s": ours.median_s, "dlcore_with_dx_s": with_dx.median_s,
            "torch_s": ref.median_s if ref else None, "peak_bytes": peak}


if __name__ == "__main__":
    main()
