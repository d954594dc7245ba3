"""Weight initializers, chosen per layer and seeded.

Each initializer is ``init(shape, rng, dtype='float32', xp=numpy) -> array``; fan-in and
fan-out follow the convention that the first axis of an Affine weight ``(in, out)``
is the input, and that a convolution weight ``(C_out, C_in, KH, KW)`` has
fan_in = C_in KH KW and fan_out = C_out KH KW.

- Xavier/Glorot (Glorot & Bengio 2010): Var[w] = 2 / (fan_in + fan_out)
- He/MSRA (He et al. 2015):             Var[w] = 2 / fan_in     (for ReLU)
- LeCun:                                Var[w] = 1 / fan_in
A uniform draw U[-a, a] has variance a^2 / 3, so a = sqrt(3 Var).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

import numpy as np

from dlcore import backend

__all__ = [
    "fans", "xavier_normal", "xavier_uniform", "he_normal", "he_uniform", "lecun_normal",
    "normal", "zeros", "ones", "get", "Initializer",
]

Initializer = Callable[..., Any]


def fans(shape: Sequence[int]) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight of ``shape``: (in, out) for matrices, (C_out, C_in, *k) for kernels."""
    shape = tuple(shape)
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def _normal(std: float, shape: Sequence[int], rng: backend.Seed, dtype: Any, xp: ModuleType) -> Any:
    return backend.normal(rng, shape, scale=std, dtype=dtype, xp=xp)


def _uniform(var: float, shape: Sequence[int], rng: backend.Seed, dtype: Any, xp: ModuleType) -> Any:
    a = math.sqrt(3.0 * var)
    return backend.uniform(rng, shape, low=-a, high=a, dtype=dtype, xp=xp)


def xavier_normal(shape: Sequence[int], rng: backend.Seed = None, dtype: Any = "float32", xp: ModuleType = np) -> Any:
    """w ~ N(0, 2 / (fan_in + fan_out))."""
    fi, fo = fans(shape)
    return _normal(math.sqrt(2.0 / (fi + fo)), shape, rng, dtype, xp)


def xavier_uniform(shape: Sequence[int], rng: backend.Seed = None, dtype: Any = "float32", xp: ModuleType = np) -> Any:
    """w ~ U[-a, a] with a = sqrt(6 / (fan_in + fan_out))."""
    fi, fo = fans(shape)
    return _uniform(2.0 / (fi + fo), shape, rng, dtype, xp)


def he_normal(shape: Sequence[int], rng: backend.Seed = None, dtype: Any = "float32", xp: ModuleType = np) -> Any:
    """w ~ N(0, 2 / fan_in)."""
    fi, _ = fans(shape)
    return _normal(math.sqrt(2.0 / fi), shape, rng, dtype, xp)


def he_uniform(shape: Sequence[int], rng: backend.Seed = None, dtype: Any = "float32", xp: ModuleType = np) -> Any:
    """w ~ U[-a, a] with a = sqrt(6 / fan_in)."""
    fi, _ = fans(shape)
    return _uniform(2.0 / fi, shape, rng, dtype, xp)


def lecun_normal(shape: Sequence[int], rng: backend.Seed = None, dtype: Any = "float32", xp: ModuleType = np) -> Any:
    """w ~ N(0, 1 / fan_in)."""
    fi, _ = fans(shape)
    return _normal(math.sqrt(1.0 / fi), shape, rng, dtype, xp)


def normal(std: float = 0.01) -> Initializer:
    """w ~ N(0, std^2): the lectures' fixed small Gaussian (e.g. 0.01)."""

    def init(shape: Sequence[int], rng: backend.Seed = None, dtype: Any = "float32", xp: ModuleType = np) -> Any:
        return _normal(std, shape, rng, dtype, xp)

    init.__name__ = f"normal({std})"
    return init


def zeros(shape: Sequence[int], rng: backend.Seed = None, dtype: Any = "float32", xp: ModuleType = np) -> Any:
    return xp.zeros(tuple(shape), dtype=getattr(xp, backend.dtype_name(dtype)))


def ones(shape: Sequence[int], rng: backend.Seed = None, dtype: Any = "float32", xp: ModuleType = np) -> Any:
    return xp.ones(tuple(shape), dtype=getattr(xp, backend.dtype_name(dtype)))


_BY_NAME: dict[str, Initializer] = {
    "xavier": xavier_normal, "glorot": xavier_normal, "xavier_normal": xavier_normal,
    "xavier_uniform": xavier_uniform, "glorot_uniform": xavier_uniform,
    "he": he_normal, "msra": he_normal, "he_normal": he_normal, "he_uniform": he_uniform,
    "lecun": lecun_normal, "lecun_normal": lecun_normal, "zeros": zeros,
}


def get(init: str | Initializer) -> Initializer:
    """An initializer from its name ('xavier', 'he', 'he_uniform', ...) or the callable itself."""
    if callable(init):
        return init
    if isinstance(init, str) and init.lower() in _BY_NAME:
        return _BY_NAME[init.lower()]
    raise ValueError(f"unknown initializer {init!r}: expected a callable or one of {sorted(_BY_NAME)}")
