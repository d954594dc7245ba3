"""One SGD training step of an MLP 784-1000-1000-10 (ReLU, softmax CE, batch 128, float32).

dlcore versus PyTorch CPU in the same process (median of rounds, the two alternating). Run:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python -m benchmarks.bench_mlp [--runs 3] [--contention]

``--runs 3`` repeats the comparison three times (spread of the medians); ``--contention`` measures
again beside a busy CPU-bound process and prints contended / quiet; ``--threads N`` limits both sides.

(the OPENBLAS_* variables set on this machine force a slower BLAS kernel; unset them only here).
"""

from __future__ import annotations

import argparse

import numpy as np

from benchmarks import harness
from dlcore import nn, optim

BATCH, SIZES, LR = 128, (784, 1000, 1000, 10), 0.01
TARGET = 1.0  # issue 12: at or below PyTorch CPU


def dlcore_step() -> tuple:
    rng = np.random.default_rng(0)
    layers: list = []
    for i, (a, b) in enumerate(zip(SIZES[:-1], SIZES[1:], strict=True)):
        layers.append(nn.Affine(a, b, rng=i, input_grad=i > 0))   # no dL/dx for the data, as in torch
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


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    harness.add_common_arguments(parser, rounds=7)
    args = parser.parse_args(argv)
    torch = harness.torch_or_none()
    print(f"MLP {'-'.join(map(str, SIZES))}, batch {BATCH}, float32, one SGD step")
    with harness.thread_limit(args.threads, torch):
        print(harness.machine_line())
        step, _ = dlcore_step()
        fns = {"dlcore": step}
        if torch is not None:
            print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
            fns["torch"] = torch_step(torch)
        else:
            print("torch not installed: dlcore's time alone (install torch==2.13.0 to compare)")
        result = harness.compare("mlp", fns, ours="dlcore", ref="torch" if torch is not None else None,
                                 target=TARGET, rounds=args.rounds, runs=args.runs, contention=args.contention,
                                 inner=5, ref_label="torch")
        peak = harness.traced_peak(step)
    print(f"  dlcore peak traced memory per step: {peak / 2**20:.1f} MiB")
    result["peak_bytes"] = peak
    return result


if __name__ == "__main__":
    main()
