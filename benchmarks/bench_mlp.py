"""One SGD training step of an MLP 784-1000-1000-10 (ReLU, softmax CE, batch 128, float32).

dlcore versus PyTorch CPU in the same process (median of rounds). Run:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python -m benchmarks.bench_mlp

(the OPENBLAS_* variables set on this machine force a slower BLAS kernel; unset them only here).
"""

from __future__ import annotations

import numpy as np

from benchmarks import harness
from dlcore import nn, optim

BATCH, SIZES, LR = 128, (784, 1000, 1000, 10), 0.01


def dlcore_step() -> tuple:
    rng = np.random.default_rng(0)
    layers: list = []
    for i, (a, b) in enumerate(zip(SIZES[:-1], SIZES[1:], strict=True)):
        layers.append(nn.Affine(a, b, rng=i))
        if i < len(SIZES) - 2:
            layers.append(nn.ReLU())
    model, loss, opt = nn.Sequential(*layers), nn.SoftmaxCrossEntropy(), optim.SGD(lr=LR)
    x = rng.random((BATCH, SIZES[0]), dtype=np.float32)
    t = rng.integers(0, SIZES[-1], BATCH)

    def step() -> None:
        loss.forward(model.forward(x), t)
        model.backward(loss.backward())
        opt.update(model.params, model.grads)

    return step, model


def torch_step(torch) -> object:
    torch.manual_seed(0)
    mods = []
    for i, (a, b) in enumerate(zip(SIZES[:-1], SIZES[1:], strict=True)):
        mods.append(torch.nn.Linear(a, b))
        if i < len(SIZES) - 2:
            mods.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*mods)
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    lossf = torch.nn.CrossEntropyLoss()
    x = torch.rand(BATCH, SIZES[0])
    t = torch.randint(0, SIZES[-1], (BATCH,))

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        lossf(model(x), t).backward()
        opt.step()

    return step


def main(rounds: int = 7) -> dict:
    print(f"MLP {'-'.join(map(str, SIZES))}, batch {BATCH}, float32, one SGD step")
    print("BLAS:", harness.blas_info())
    step, _ = dlcore_step()
    ours = harness.measure("dlcore", step, rounds=rounds, warmup=2, inner=5)
    peak = harness.traced_peak(step)
    torch = harness.torch_or_none()
    ref = None
    if torch is not None:
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
        ref = harness.measure("torch", torch_step(torch), rounds=rounds, warmup=2, inner=5)
    print(harness.ratio_line(ours, ref, target=1.0))
    print(f"  dlcore peak traced memory per step: {peak / 2**20:.1f} MiB")
    return {"dlcore_s": ours.median_s, "torch_s": ref.median_s if ref else None, "peak_bytes": peak}


if __name__ == "__main__":
    main()
