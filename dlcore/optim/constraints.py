"""Gradient clipping and the max-norm weight constraint.

Gradient clipping by global norm (Pascanu et al. 2013), applied to the gradients
*before* a step::

    ||g|| = sqrt(sum_k sum_i g_k,i^2)          (over every gradient in the mapping)
    g_k  <- g_k * c / max(||g||, c)             (direction kept, norm at most c)

Max-norm constraint (Srebro & Shraibman 2005; used with dropout by Srivastava et
al. 2014), applied to the weights *after* a step: the vector of incoming weights
of each unit is rescaled to norm at most c::

    w_j <- w_j * c / max(||w_j||, c)

Which vector is "the incoming weights of a unit" depends on the layout:

- 2-D weights ``(in, out)`` (Affine, recurrent matrices): each column ``W[:, j]``,
  i.e. the norm is taken over axis 0;
- weights with 3 or more axes ``(C_out, C_in, KH, KW)`` (convolution kernels): each
  output filter ``W[j]``, i.e. the norm is taken over every axis but 0;
- 0-D and 1-D parameters (biases, batch-norm scales and shifts) are never constrained.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, MutableMapping
from typing import Any

from dlcore import backend

__all__ = ["global_norm", "clip_grad_norm", "clipped", "unit_norms", "renorm", "apply_max_norm"]


def _check_bound(owner: str, name: str, value: float) -> float:
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{owner}: expected {name} to be a finite number > 0, got {value}")
    return value


def _sum_of_squares(grads: Mapping[Hashable, Any]) -> tuple[Any, Any]:
    """(Σ_k Σ_i g_k,i², namespace): a 0-D array of the gradients' namespace; (None, None) without gradients."""
    total, xp = None, None
    for key, g in grads.items():
        xp = backend.namespace(g, where=f"global_norm (key {key!r})")
        s = xp.sum(g * g)
        total = s if total is None else total + s
    return total, xp


def global_norm(grads: Mapping[Hashable, Any]) -> float:
    """||g|| = sqrt(Σ_k Σ_i g_k,i²) over every array of ``grads``, as a Python float."""
    total, _ = _sum_of_squares(grads)
    return 0.0 if total is None else math.sqrt(float(total))


def clipped(grads: Mapping[Hashable, Any], max_norm: float) -> tuple[dict[Hashable, Any], float]:
    """A new dict of the gradients scaled by c / max(||g||, c), and ||g|| before clipping.

    Leaves ``grads`` untouched (this is what an optimizer's ``clip_norm`` option uses).
    """
    c = _check_bound("clip_grad_norm", "max_norm", max_norm)
    total, xp = _sum_of_squares(grads)
    if total is None:
        return {}, 0.0
    norm = xp.sqrt(total)
    scale = c / xp.clip(norm, min=c)      # 1 when ||g|| <= c; never divides by zero
    return {k: g * xp.astype(scale, g.dtype) for k, g in grads.items()}, float(norm)


def clip_grad_norm(grads: MutableMapping[Hashable, Any], max_norm: float) -> float:
    """Clip gradients by their global norm, writing ``grads[k] = g_k c / max(||g||, c)``; returns ||g|| before.

    The direction of the concatenated gradient is unchanged and its norm becomes min(||g||, c).
    """
    new, norm = clipped(grads, max_norm)
    for key, g in new.items():
        grads[key] = g
    return norm


def unit_norms(w: Any) -> Any:
    """Norm of each unit's incoming weights, shaped to broadcast against ``w``.

    (in, out) -> (1, out) column norms; (C_out, ...) -> (C_out, 1, ..., 1) filter norms.
    """
    xp = backend.namespace(w)
    if w.ndim < 2:
        raise ValueError(f"max-norm: expected a weight with at least 2 axes, got shape {tuple(w.shape)}")
    if w.ndim == 2:
        return xp.sqrt(xp.sum(w * w, axis=0, keepdims=True))
    return xp.sqrt(xp.sum(w * w, axis=tuple(range(1, w.ndim)), keepdims=True))


def renorm(w: Any, max_norm: float) -> Any:
    """The factor c / max(||w_j||, c) for each unit j of ``w`` (broadcastable; 1 where the norm is within c)."""
    c = _check_bound("max-norm", "max_norm", max_norm)
    return c / backend.namespace(w).clip(unit_norms(w), min=c)


def apply_max_norm(params: MutableMapping[Hashable, Any], max_norm: float) -> None:
    """Rescale, in place, every unit of every parameter with >= 2 axes to norm <= ``max_norm``.

    Biases and other 0-D/1-D parameters are left alone. Writes back through ``params[k] = w``
    so write-through views (``Sequential.params``) see the change.
    """
    _check_bound("max-norm", "max_norm", max_norm)
    for key in list(params.keys()):
        w = params[key]
        if w.ndim < 2:
            continue
        w *= renorm(w, max_norm)
        params[key] = w
