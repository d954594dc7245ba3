"""Helpers shared by greedy layer-wise pretraining (DBN, stacked autoencoders)."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from dlcore import backend

__all__ = ["per_layer", "fresh_optimizer", "mlp_from_weights", "check_layer_sizes"]


def check_layer_sizes(owner: str, layer_sizes: Sequence[int]) -> list[int]:
    sizes = list(layer_sizes)
    if len(sizes) < 2 or any(int(s) != s or s <= 0 for s in sizes):
        raise ValueError(f"{owner}: expected at least two positive layer sizes (visible, hidden, ...), got {sizes}")
    return [int(s) for s in sizes]


def per_layer(owner: str, name: str, value: Any, n_layers: int) -> list[Any]:
    """A setting given once for all layers, or as a list with one entry per layer."""
    if isinstance(value, (list, tuple)):
        if len(value) != n_layers:
            raise ValueError(f"{owner}: expected {name} for each of the {n_layers} layers, got {len(value)} values")
        return list(value)
    return [value] * n_layers


def fresh_optimizer(optimizer: Any) -> Any:
    """A new optimizer per layer: optimizer state is kept per parameter name ("W", "b", ...),
    so one instance shared by all layers would mix their momenta. Accepts a factory or an instance (copied)."""
    if optimizer is None:
        return None
    if hasattr(optimizer, "update"):
        return copy.deepcopy(optimizer)
    return optimizer()


def mlp_from_weights(weights: Sequence[tuple[Any, Any]], n_classes: int | None, *, rng: backend.Seed = None,
                     init: str = "xavier") -> Any:
    """Sequential(Affine(W_1, c_1), Sigmoid(), ..., [Affine(fresh, n_classes)]) on the weights' device.

    ``weights``: (W, bias) per layer, copied; the output layer is freshly initialised from ``rng``.
    """
    from dlcore.nn.activations import Sigmoid
    from dlcore.nn.container import Sequential
    from dlcore.nn.linear import Affine

    xp = backend.namespace(weights[0][0])
    dtype = backend.dtype_name(weights[0][0].dtype)
    gen = backend.default_rng(rng)
    layers: list[Any] = []
    for W, bias in weights:
        affine = Affine(W.shape[0], W.shape[1], rng=gen, dtype=dtype).to(xp)
        affine.params["W"] = xp.asarray(W, copy=True)
        affine.params["b"] = xp.asarray(bias, copy=True)
        layers += [affine, Sigmoid()]
    if n_classes is not None:
        layers.append(Affine(weights[-1][0].shape[1], int(n_classes), init=init,
                             rng=gen, dtype=dtype).to(xp))
    return Sequential(*layers)
