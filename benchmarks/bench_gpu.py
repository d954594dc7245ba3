"""dlcore on the GPU (CuPy) against PyTorch CUDA: one LeNet SGD step and one LSTM forward + backward.

    python -m benchmarks.bench_gpu [--rounds 20] [--runs 3] [--nets lenet,lstm]

The same networks, batches and steps as ``bench_lenet`` and ``bench_lstm`` (float32), built on the CPU
with the same seeds and moved to the GPU (``model.to("gpu")``, ``dlcore.to_device``). Each timed round
ends with a device synchronisation (``cupy.cuda.Device().synchronize()``, ``torch.cuda.synchronize()``),
so the times are those of the finished work, not of queued kernel launches. dlcore and torch alternate
round by round (medians). Needs CuPy (``pip install 'dlcourse[gpu]'``) and a CUDA build of torch; without a
usable GPU it prints why and exits with status 0 (nothing measured), so it can sit in ``python -m benchmarks``
runs on CPU-only machines. Before timing, each dlcore step is checked against the same step on the CPU
(loss and one gradient), so a wrong GPU path fails loudly instead of being timed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks import harness


def gpu_status() -> tuple[bool, str]:
    """(usable, why not / which device): CuPy with a CUDA device, and torch with CUDA."""
    from dlcore import backend

    if not backend.gpu_available():
        try:
            import cupy  # noqa: F401
        except ImportError:
            return False, "CuPy is not installed (pip install 'dlcourse[gpu]' on a machine with a CUDA GPU)"
        return False, "CuPy is installed but sees no CUDA device"
    torch = harness.torch_or_none()
    if torch is None:
        return False, "torch is not installed (install a CUDA build of torch 2.13.0 to compare)"
    if not torch.cuda.is_available():
        return False, f"torch {torch.__version__} has no CUDA device (a CPU-only build?)"
    return True, torch.cuda.get_device_name(0)


def _sync_cupy() -> None:
    import cupy

    cupy.cuda.Device().synchronize()


def lenet_steps(torch: Any, check_only: str | None = None) -> dict[str, Callable[[], None]]:
    from benchmarks import bench_lenet
    from dlcore import backend, nn, optim

    rng = np.random.default_rng(0)
    x_host = rng.random((bench_lenet.BATCH, 1, 28, 28), dtype=np.float32)
    t_host = rng.integers(0, 10, bench_lenet.BATCH)

    def make(device: str) -> tuple[Any, Callable[[], float]]:
        model = bench_lenet.lenet().to(device)
        loss, opt = nn.SoftmaxCrossEntropy(), optim.SGD(lr=bench_lenet.LR)
        x, t = backend.to_device(x_host, device), backend.to_device(t_host, device)

        def step() -> float:
            value = loss.forward(model.forward(x), t)
            model.backward(loss.backward())
            opt.update(model.params, model.grads)
            return value

        return model, step

    if check_only:
        _check_same("LeNet", make, check_only)
        return {}
    _check_same("LeNet", make)
    _, gpu_step = make("gpu")

    def dlcore_step() -> None:
        gpu_step()
        _sync_cupy()

    nnt = torch.nn
    torch.manual_seed(0)
    model = nnt.Sequential(
        nnt.Conv2d(1, 20, 5), nnt.ReLU(), nnt.MaxPool2d(2), nnt.Conv2d(20, 50, 5), nnt.ReLU(), nnt.MaxPool2d(2),
        nnt.Flatten(), nnt.Linear(800, 500), nnt.ReLU(), nnt.Linear(500, 10),
    ).cuda()
    opt = torch.optim.SGD(model.parameters(), lr=bench_lenet.LR)
    lossf = nnt.CrossEntropyLoss()
    x, t = torch.from_numpy(x_host).cuda(), torch.from_numpy(t_host).cuda()

    def torch_step() -> None:
        opt.zero_grad(set_to_none=True)
        lossf(model(x), t).backward()
        opt.step()
        torch.cuda.synchronize()

    return {"dlcore (CuPy)": dlcore_step, "torch CUDA": torch_step}


def lstm_steps(torch: Any, check_only: str | None = None) -> dict[str, Callable[[], None]]:
    from benchmarks import bench_lstm
    from dlcore import backend
    from dlcore.nn.lstm import LSTM

    xs_host, dhs_host = bench_lstm.make_inputs()

    def make(device: str) -> tuple[Any, Callable[[], float]]:
        layer = LSTM(bench_lstm.D, bench_lstm.H, rng=0, dtype="float32").to(device)
        xs, dhs = backend.to_device(xs_host, device), backend.to_device(dhs_host, device)

        def step() -> float:
            hs = layer.forward(xs)
            layer.backward(dhs)
            return backend.namespace(hs).sum(hs * dhs)

        return layer, step

    if check_only:
        _check_same("LSTM", make, check_only)
        return {}
    _check_same("LSTM", make)
    _, gpu_step = make("gpu")

    def dlcore_step() -> None:
        gpu_step()
        _sync_cupy()

    lstm = torch.nn.LSTM(bench_lstm.D, bench_lstm.H, batch_first=True).cuda()
    x = torch.from_numpy(xs_host).cuda().requires_grad_(True)
    dy = torch.from_numpy(dhs_host).cuda()

    def torch_step() -> None:
        lstm.zero_grad(set_to_none=True)
        x.grad = None
        out, _ = lstm(x)
        out.backward(dy)
        torch.cuda.synchronize()

    return {"dlcore (CuPy)": dlcore_step, "torch CUDA": torch_step}


def _check_same(name: str, make: Callable[[str], tuple[Any, Callable[[], float]]], device: str = "gpu") -> None:
    """One step on the CPU and on ``device`` from the same start: the loss and the first gradient must agree."""
    from dlcore import backend

    cpu_model, cpu_step = make("cpu")
    gpu_model, gpu_step = make(device)
    loss_cpu, loss_gpu = float(cpu_step()), float(backend.to_numpy(gpu_step()))
    key = max(cpu_model.grads, key=lambda k: int(np.prod(cpu_model.grads[k].shape)))   # the largest gradient
    g_cpu, g_gpu = backend.to_numpy(cpu_model.grads[key]), backend.to_numpy(gpu_model.grads[key])
    rel = float(np.max(np.abs(g_cpu - g_gpu)) / (np.max(np.abs(g_cpu)) + 1e-30))
    if not np.isclose(loss_cpu, loss_gpu, rtol=1e-3) or rel > 1e-3:
        raise AssertionError(f"{name}: the {device} step disagrees with the CPU step (loss {loss_gpu} vs {loss_cpu}, "
                             f"gradient {key!r} relative difference {rel:.2e})")
    print(f"{name}: the {device} step agrees with the CPU step (loss {loss_gpu:.6g}, "
          f"gradient {key!r} rel. diff. {rel:.1e})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--nets", default="lenet,lstm")
    parser.add_argument("--check-on", metavar="DEVICE",
                        help="only run the CPU-vs-DEVICE agreement check of each step (e.g. 'strict' on a machine "
                             "without a GPU: the same non-NumPy code path, no timing)")
    args = parser.parse_args(argv)
    if args.check_on:
        for name in args.nets.split(","):
            {"lenet": lenet_steps, "lstm": lstm_steps}[name](None, check_only=args.check_on)
        return 0
    ok, why = gpu_status()
    if not ok:
        print(f"bench_gpu: skipped, no usable GPU: {why}. Nothing was measured.")
        return 0
    torch = harness.torch_or_none()
    print(f"GPU: {why}; torch {torch.__version__} (CUDA {torch.version.cuda}); {harness.machine_line()}")
    import cupy

    print(f"CuPy {cupy.__version__}")
    builders = {"lenet": lenet_steps, "lstm": lstm_steps}
    for name in args.nets.split(","):
        fns = builders[name](torch)
        harness.compare(f"gpu-{name}", fns, ours="dlcore (CuPy)", ref="torch CUDA", target=None,
                        rounds=args.rounds, runs=args.runs, warmup=3, ref_label="torch CUDA")
    return 0


if __name__ == "__main__":
    sys.exit(main())
