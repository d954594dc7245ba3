"""dlcore: a small, readable reference deep-learning library for NumPy (CPU) and CuPy (GPU).

    import dlcore
    from dlcore import nn, optim, data
    model = nn.Sequential(nn.Affine(64, 100, rng=0), nn.ReLU(), nn.Affine(100, 10, rng=1))
    d = data.load_digits()
    history = dlcore.fit(model, d.x_train, d.t_train, optimizer=optim.Adam(1e-3), epochs=20, rng=0)

Subpackages are imported on first use, so ``import dlcore`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

from dlcore.backend import (  # noqa: F401 - re-exported
    BackendUnavailableError,
    DeviceMismatchError,
    gpu_available,
    to_device,
    to_numpy,
)

__version__ = "0.1.0"

_SUBMODULES = {"backend", "nn", "optim", "data", "train", "gradcheck", "plots", "energy", "classic"}
_FROM_TRAIN = {"fit", "evaluate", "predict", "Trainer", "History", "TrainingDivergedError", "accuracy"}

__all__ = sorted(
    {"to_device", "to_numpy", "gpu_available", "DeviceMismatchError", "BackendUnavailableError"}
    | _SUBMODULES | _FROM_TRAIN
)


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"dlcore.{name}")
    if name in _FROM_TRAIN:
        return getattr(importlib.import_module("dlcore.train"), name)
    raise AttributeError(f"module 'dlcore' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
