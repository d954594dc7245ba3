"""Numerical gradient checking (CS231n style) and a cheap directional check (Chainer's idea).

Central differences:   dL/dx_i ≈ (L(x + ε e_i) − L(x − ε e_i)) / (2ε),  error O(ε²).

Error measure used throughout (stated once):

    rel_i = |a_i − n_i| / max(|a_i| + |n_i|, 1e-3 · (max_j |a_j| + max_j |n_j|))

the usual symmetric relative error, with a floor so that entries a thousand times smaller
than the largest are judged on the gradient's own scale (their absolute numerical error is
set by that scale, not by their own size). ``max_error`` is the worst rel_i.

In float64 with ε = 1e-5 a correct smooth layer gives errors around 1e-9 to 1e-11; a bug
gives errors near 1. Check in float64: float32 round-off alone is ~1e-3 here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dlcore import backend
from dlcore.nn.base import Layer, Loss

__all__ = [
    "numerical_gradient", "relative_error", "GradReport", "check_layer", "assert_layer_gradients",
    "check_directional", "DirectionalReport",
]


def _flat_indices(shape: tuple[int, ...]) -> Iterator[tuple[int, ...]]:
    yield from np.ndindex(*shape) if shape else iter([()])


def numerical_gradient(f: Callable[[], Any], x: Any, eps: float = 1e-5) -> Any:
    """Central-difference gradient of the scalar ``f()`` w.r.t. ``x``.

    ``x`` is perturbed in place, one entry at a time, and restored exactly.
    Returns an array on ``x``'s backend with ``x``'s shape and dtype.
    """
    xp = backend.namespace(x)
    grad = np.zeros(tuple(x.shape), dtype="float64")
    for idx in _flat_indices(tuple(x.shape)):
        old = float(x[idx])  # a copy: CuPy's x[idx] is a view that the next line would change
        x[idx] = old + eps
        f_plus = float(f())
        x[idx] = old - eps
        f_minus = float(f())
        x[idx] = old
        grad[idx] = (f_plus - f_minus) / (2 * eps)
    return backend.to_device(grad.astype(backend.dtype_name(x.dtype)), xp)


def relative_error(analytic: Any, numeric: Any, *, equal_nan: bool = False) -> tuple[float, tuple[int, ...]]:
    """(worst rel_i, index of the worst entry) with the floored symmetric measure above.

    Entries that are exactly equal count 0 (so equal infinities agree); with ``equal_nan`` a NaN
    where NaN is expected counts 0 too. Any other non-finite error is reported as ``inf``.
    """
    a = backend.to_numpy(analytic).astype("float64")
    n = backend.to_numpy(numeric).astype("float64")
    if a.shape != n.shape:
        raise ValueError(f"relative_error: shapes differ, analytic {a.shape} vs numeric {n.shape}")
    if a.size == 0:
        return 0.0, ()
    with np.errstate(all="ignore"):
        fa, fn = np.abs(a[np.isfinite(a)]), np.abs(n[np.isfinite(n)])
        floor = 1e-3 * ((float(fa.max()) if fa.size else 0.0) + (float(fn.max()) if fn.size else 0.0))
        denom = np.maximum(np.abs(a) + np.abs(n), max(floor, np.finfo("float64").tiny))
        rel = np.abs(a - n) / denom
    agree = (a == n) | (np.isnan(a) & np.isnan(n)) if equal_nan else (a == n)
    rel = np.where(agree, 0.0, rel)
    if not np.all(np.isfinite(rel)):
        bad = np.unravel_index(int(np.argmax(~np.isfinite(rel))), rel.shape)
        return math.inf, tuple(int(i) for i in bad)
    worst = np.unravel_index(int(np.argmax(rel)), rel.shape)
    return float(rel[worst]), tuple(int(i) for i in worst)


@dataclass
class GradReport:
    """Worst relative error per checked quantity ('dx', 'dx1', 'W', ...) and overall."""

    layer: str
    errors: dict[str, float] = field(default_factory=dict)
    where: dict[str, tuple[int, ...]] = field(default_factory=dict)
    values: dict[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def max_error(self) -> float:
        return max(self.errors.values(), default=0.0)

    @property
    def worst(self) -> tuple[str, tuple[int, ...]]:
        name = max(self.errors, key=self.errors.__getitem__)
        return name, self.where[name]

    def __str__(self) -> str:
        lines = [f"gradient check of {self.layer}: worst relative error {self.max_error:.2e}"]
        for name, err in self.errors.items():
            a, n = self.values[name]
            lines.append(f"  {name:>10}: {err:.2e} at {self.where[name]} (analytic {a:.6g}, numerical {n:.6g})")
        return "\n".join(lines)


def _is_float(a: Any) -> bool:
    return hasattr(a, "dtype") and backend.dtype_name(a.dtype).startswith("float")


def _forward(layer: Layer, inputs: tuple, train: bool | None) -> Any:
    if train is not None and getattr(layer, "has_train_mode", False):
        return layer.forward(*inputs, train=train)
    return layer.forward(*inputs)


def _as_tuple(d: Any) -> tuple:
    return d if isinstance(d, tuple) else (d,)


def check_layer(layer: Layer, *inputs: Any, dy: Any = None, train: bool | None = None,
                eps: float = 1e-5, rng: backend.Seed = 0) -> GradReport:
    """Compare ``layer.backward`` with central differences for every floating input and parameter.

    The scalar checked is L = Σ forward(*inputs) ⊙ dy with a fixed random ``dy`` (so dL/dy = dy);
    for a :class:`Loss`, L = forward(*inputs) and ``backward()`` is called without arguments.
    Layers with randomness (dropout) must be made deterministic by the caller.
    """
    xp = backend.namespace(*[a for a in inputs if hasattr(a, "shape")])
    is_loss = isinstance(layer, Loss)
    y = _forward(layer, inputs, train)
    if not is_loss and dy is None:
        dy = backend.normal(rng, tuple(y.shape), dtype=y.dtype, xp=xp)

    def loss() -> Any:
        out = _forward(layer, inputs, train)
        return out if is_loss else xp.sum(out * dy)

    grads_in = _as_tuple(layer.backward() if is_loss else layer.backward(dy))
    analytic: dict[str, Any] = {}
    float_inputs = [i for i, a in enumerate(inputs) if _is_float(a)]
    if is_loss:  # a loss is differentiated w.r.t. its prediction only, never its targets
        float_inputs = float_inputs[:1]
    for k, i in enumerate(float_inputs):
        name = "dx" if len(float_inputs) == 1 else f"dx{k + 1}"
        analytic[name] = (grads_in[i] if len(grads_in) > i else grads_in[k], inputs[i])
    for pname in layer.params:
        if pname not in layer.grads:
            raise AssertionError(f"{type(layer).__name__}.backward did not set grads[{pname!r}]")
        analytic[pname] = (layer.grads[pname], None)
    report = GradReport(type(layer).__name__)
    for name, (a, target) in analytic.items():
        target = layer.params[name] if target is None else target
        if tuple(a.shape) != tuple(target.shape):
            raise AssertionError(
                f"{type(layer).__name__}: gradient {name} has shape {tuple(a.shape)}, expected {tuple(target.shape)}"
            )
        a_host = backend.to_numpy(a).astype("float64").copy()
        n = numerical_gradient(loss, target, eps)
        err, where = relative_error(a_host, n)
        report.errors[name], report.where[name] = err, where
        n_host = backend.to_numpy(n)
        report.values[name] = (float(a_host[where]) if a_host.size else 0.0,
                               float(n_host[where]) if n_host.size else 0.0)
    return report


def assert_layer_gradients(layer: Layer, *inputs: Any, rtol: float = 1e-6, **kw: Any) -> GradReport:
    """:func:`check_layer`, raising AssertionError with the full report when the worst error exceeds ``rtol``."""
    report = check_layer(layer, *inputs, **kw)
    if not report.max_error <= rtol:
        raise AssertionError(f"{report}\n  tolerance {rtol:.1e} exceeded")
    return report


@dataclass
class DirectionalReport:
    """Analytic vs numerical directional derivative along one random direction."""

    analytic: float
    numerical: float

    @property
    def error(self) -> float:
        denom = max(abs(self.analytic) + abs(self.numerical), np.finfo("float64").tiny)
        return abs(self.analytic - self.numerical) / denom


def check_directional(layer: Layer, *inputs: Any, dy: Any = None, train: bool | None = None,
                      eps: float = 1e-5, rng: backend.Seed = 0) -> DirectionalReport:
    """Cheap check for large layers: one random direction u over all inputs and parameters.

    Compares Σ_i (∂L/∂θ_i) u_i with (L(θ + εu) − L(θ − εu)) / 2ε: two forward passes instead of 2·|θ|.
    """
    gen = backend.default_rng(rng)
    xp = backend.namespace(*[a for a in inputs if hasattr(a, "shape")])
    is_loss = isinstance(layer, Loss)
    y = _forward(layer, inputs, train)
    if not is_loss and dy is None:
        dy = backend.normal(gen, tuple(y.shape), dtype=y.dtype, xp=xp)
    grads_in = _as_tuple(layer.backward() if is_loss else layer.backward(dy))
    inputs = list(inputs)
    targets: list[tuple[str, int | str]] = [("in", i) for i, a in enumerate(inputs) if _is_float(a)]
    if is_loss:
        targets = targets[:1]
    targets += [("param", k) for k in layer.params]
    analytic_grads = {}
    for kind, key in targets:
        analytic_grads[(kind, key)] = grads_in[key] if kind == "in" else layer.grads[key]
    directions = {t: backend.normal(gen, tuple((inputs[t[1]] if t[0] == "in" else layer.params[t[1]]).shape),
                                    dtype=y.dtype, xp=xp) for t in targets}
    analytic = sum(float(xp.sum(analytic_grads[t] * directions[t])) for t in targets)
    originals = {t: (inputs[t[1]] if t[0] == "in" else layer.params[t[1]]) for t in targets}

    def shifted(sign: float) -> float:
        for t in targets:
            value = originals[t] + sign * eps * directions[t]
            if t[0] == "in":
                inputs[t[1]] = value
            else:
                layer.params[t[1]] = value
        out = _forward(layer, tuple(inputs), train)
        return float(out if is_loss else xp.sum(out * dy))

    numerical = (shifted(+1) - shifted(-1)) / (2 * eps)
    for t in targets:
        if t[0] == "param":
            layer.params[t[1]] = originals[t]
    return DirectionalReport(analytic, numerical)
