"""Learning-rate schedules: ``schedule(t) -> lr`` for the update number t = 0, 1, 2, ...

An optimizer evaluates its schedule once per update (``t = opt.step_count``, so the
first update uses ``schedule(0)``); pass ``schedule_every=n`` to the optimizer to
step the schedule once every n updates instead (e.g. n = batches per epoch for a
per-epoch schedule). Any callable ``int -> float`` works as a schedule.

- constant:          ε_t = ε0
- StepDecay:         ε_t = ε0 γ^floor(t / s)
- LinearDecay:       ε_t = max(ε0 − α t, ε_min)        (the lecture's linear decay)
- ExponentialDecay:  ε_t = ε0 γ^t
- CosineDecay:       ε_t = ε_min + (ε0 − ε_min) (1 + cos(π min(t, T) / T)) / 2
- Warmup:            ε_t = after(0) (t + 1) / W for t < W, then after(t − W)
"""

from __future__ import annotations

import math
from collections.abc import Callable

__all__ = ["Schedule", "Constant", "constant", "StepDecay", "LinearDecay", "ExponentialDecay", "CosineDecay", "Warmup"]


def _check_rate(owner: str, name: str, value: float) -> float:
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{owner}: expected {name} to be a finite number >= 0, got {value}")
    return value


def _check_step(owner: str, t: int) -> int:
    t = int(t)
    if t < 0:
        raise ValueError(f"{owner}: expected a step t >= 0, got {t}")
    return t


class Schedule:
    """Base class: ``schedule(t)`` gives the learning rate of update number ``t`` (t = 0 is the first)."""

    lr0: float

    def __call__(self, t: int) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class Constant(Schedule):
    """ε_t = ε0."""

    def __init__(self, lr0: float) -> None:
        self.lr0 = _check_rate("Constant", "lr0", lr0)

    def __call__(self, t: int) -> float:
        _check_step("Constant", t)
        return self.lr0


def constant(lr0: float) -> Constant:
    """The constant schedule ε_t = ε0."""
    return Constant(lr0)


class StepDecay(Schedule):
    """ε_t = ε0 γ^floor(t / step_size): multiply by γ every ``step_size`` steps."""

    def __init__(self, lr0: float, step_size: int, gamma: float = 0.1) -> None:
        self.lr0 = _check_rate("StepDecay", "lr0", lr0)
        if int(step_size) != step_size or step_size <= 0:
            raise ValueError(f"StepDecay: expected step_size to be a positive integer, got {step_size!r}")
        self.step_size = int(step_size)
        if not 0 < gamma <= 1:
            raise ValueError(f"StepDecay: expected 0 < gamma <= 1, got {gamma!r}")
        self.gamma = float(gamma)

    def __call__(self, t: int) -> float:
        t = _check_step("StepDecay", t)
        return self.lr0 * self.gamma ** (t // self.step_size)


class LinearDecay(Schedule):
    """ε_t = max(ε0 − α t, ε_min): the lecture's linear decay, floored at ``min_lr``."""

    def __init__(self, lr0: float, alpha: float, min_lr: float = 0.0) -> None:
        self.lr0 = _check_rate("LinearDecay", "lr0", lr0)
        self.alpha = _check_rate("LinearDecay", "alpha", alpha)
        self.min_lr = _check_rate("LinearDecay", "min_lr", min_lr)
        if self.min_lr > self.lr0:
            raise ValueError(f"LinearDecay: expected min_lr <= lr0, got min_lr={min_lr}, lr0={lr0}")

    def __call__(self, t: int) -> float:
        t = _check_step("LinearDecay", t)
        return max(self.lr0 - self.alpha * t, self.min_lr)


class ExponentialDecay(Schedule):
    """ε_t = ε0 γ^t."""

    def __init__(self, lr0: float, gamma: float) -> None:
        self.lr0 = _check_rate("ExponentialDecay", "lr0", lr0)
        if not 0 < gamma <= 1:
            raise ValueError(f"ExponentialDecay: expected 0 < gamma <= 1, got {gamma!r}")
        self.gamma = float(gamma)

    def __call__(self, t: int) -> float:
        t = _check_step("ExponentialDecay", t)
        return self.lr0 * self.gamma**t


class CosineDecay(Schedule):
    """ε_t = ε_min + (ε0 − ε_min) (1 + cos(π min(t, T) / T)) / 2, constant at ε_min after T steps."""

    def __init__(self, lr0: float, total_steps: int, min_lr: float = 0.0) -> None:
        self.lr0 = _check_rate("CosineDecay", "lr0", lr0)
        if int(total_steps) != total_steps or total_steps <= 0:
            raise ValueError(f"CosineDecay: expected total_steps to be a positive integer, got {total_steps!r}")
        self.total_steps = int(total_steps)
        self.min_lr = _check_rate("CosineDecay", "min_lr", min_lr)
        if self.min_lr > self.lr0:
            raise ValueError(f"CosineDecay: expected min_lr <= lr0, got min_lr={min_lr}, lr0={lr0}")

    def __call__(self, t: int) -> float:
        t = min(_check_step("CosineDecay", t), self.total_steps)
        return self.min_lr + (self.lr0 - self.min_lr) * 0.5 * (1.0 + math.cos(math.pi * t / self.total_steps))


class Warmup(Schedule):
    """Linear warm-up over ``warmup_steps`` updates, then ``after`` (shifted to start at 0).

    ε_t = after(0) (t + 1) / W for t < W, and ε_t = after(t − W) afterwards.
    ``after`` is a schedule or a number (a constant rate).
    """

    def __init__(self, after: Callable[[int], float] | float, warmup_steps: int) -> None:
        self.after = after if callable(after) else Constant(after)
        if int(warmup_steps) != warmup_steps or warmup_steps < 0:
            raise ValueError(f"Warmup: expected warmup_steps to be an integer >= 0, got {warmup_steps!r}")
        self.warmup_steps = int(warmup_steps)
        self.lr0 = float(self.after(0))

    def __call__(self, t: int) -> float:
        t = _check_step("Warmup", t)
        if t < self.warmup_steps:
            return self.lr0 * (t + 1) / self.warmup_steps
        return float(self.after(t - self.warmup_steps))
