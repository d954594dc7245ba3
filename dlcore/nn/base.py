"""The layer protocol shared by every layer, loss and container in dlcore.

    y  = layer.forward(x)      # caches what backward needs
    dx = layer.backward(dy)    # returns dL/dx, stores dL/dp in layer.grads[name]
    layer.params               # name -> array (the single source of truth)
    layer.grads                # name -> array, same keys and shapes as params

Also here: moving a layer between devices (:meth:`Layer.to`), changing its
floating dtype (:meth:`Layer.astype`), and the input checks that turn a user's
mistake into an error naming the layer, what it expected and what it got.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from types import ModuleType
from typing import Any

from dlcore import backend

__all__ = ["Layer", "Loss", "check_array", "check_dtype_match", "check_labels"]


class Layer:
    """Base class: a differentiable map with optional parameters.

    Subclasses set ``self.params`` (name -> array) in ``__init__`` and fill
    ``self.grads`` in ``backward``. Layers without parameters keep both empty.
    """

    params: dict[str, Any]
    grads: dict[str, Any]
    #: True for layers whose ``forward`` takes a ``train`` flag (dropout, batch norm, ...).
    has_train_mode: bool = False

    def __init__(self) -> None:
        self.params = {}
        self.grads = {}

    # -- protocol ---------------------------------------------------------------------
    def forward(self, x: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__}.forward is not implemented")

    def backward(self, dy: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__}.backward is not implemented")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    # -- buffers: arrays that move with the layer but are not trained (running stats) ---
    def buffers(self) -> dict[str, Any]:
        """Non-trainable arrays that belong to the layer's state (e.g. running statistics)."""
        return {}

    def _set_buffer(self, name: str, value: Any) -> None:
        setattr(self, name, value)

    # -- device and dtype ---------------------------------------------------------------
    def to(self, device: str | ModuleType) -> Layer:
        """Move parameters and buffers to ``device`` ('cpu', 'gpu', 'strict' or a namespace); returns self.

        Gradients and forward caches are dropped: they belong to the old device.
        """
        xp = backend.resolve(device)
        for name in list(self.params):
            self.params[name] = backend.to_device(self.params[name], xp)
        for name, value in self.buffers().items():
            self._set_buffer(name, backend.to_device(value, xp))
        for child in self.children():
            child.to(xp)
        self.grads = {}
        return self

    def astype(self, dtype: Any) -> Layer:
        """Cast floating parameters and buffers to ``dtype`` (e.g. 'float64' for gradient checks); returns self."""
        name = backend.dtype_name(dtype)
        for key, value in list(self.params.items()):
            xp = backend.namespace(value)
            self.params[key] = xp.astype(value, getattr(xp, name))
        for key, value in self.buffers().items():
            xp = backend.namespace(value)
            self._set_buffer(key, xp.astype(value, getattr(xp, name)))
        for child in self.children():
            child.astype(name)
        self.grads = {}
        return self

    def children(self) -> Sequence[Layer]:
        """Sub-layers (containers override this)."""
        return ()

    def named_params(self) -> Iterator[tuple[str, Any]]:
        yield from self.params.items()

    def zero_grad(self) -> None:
        self.grads = {}

    @property
    def device(self) -> str:
        """'cpu', 'cuda:N', or the library's device label of the first parameter."""
        for value in self.params.values():
            return backend.device_name(value)
        return "cpu"

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k}={tuple(v.shape)}" for k, v in self.params.items())
        return f"{type(self).__name__}({shapes})"


class Loss(Layer):
    """A loss: ``forward(y, t)`` returns a scalar, ``backward()`` returns dL/dy (dL = 1)."""

    def backward(self, dout: Any = 1.0) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__}.backward is not implemented")


# --------------------------------------------------------------------------- input checks


def _describe(x: Any) -> str:
    if hasattr(x, "shape") and hasattr(x, "dtype"):
        return f"an array of shape {tuple(x.shape)} and dtype {backend.dtype_name(x.dtype)}"
    return f"a {type(x).__name__}"


def check_array(layer: str, name: str, x: Any, *, ndim: int | Sequence[int] | None = None,
                last_dim: int | None = None, axis1: int | None = None, floating: bool = True) -> None:
    """Raise a clear TypeError/ValueError when ``x`` is not what ``layer`` expects.

    ``ndim``: allowed number of dimensions; ``last_dim``: required size of the last axis;
    ``axis1``: required size of axis 1 (channels); ``floating``: require a real floating dtype.
    """
    if not (hasattr(x, "shape") and hasattr(x, "dtype")):
        raise TypeError(f"{layer}: expected {name} to be an array, got {_describe(x)}")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if x.ndim not in allowed:
            want = " or ".join(f"{d}-D" for d in allowed)
            raise ValueError(f"{layer}: expected {name} to be {want}, got {_describe(x)}")
    if x.ndim >= 1 and x.shape[0] == 0:
        raise ValueError(
            f"{layer}: got an empty batch ({name} has shape {tuple(x.shape)}); expected at least one sample"
        )
    if last_dim is not None and x.shape[-1] != last_dim:
        raise ValueError(f"{layer}: expected {name} with last dimension {last_dim}, got {_describe(x)}")
    if axis1 is not None and (x.ndim < 2 or x.shape[1] != axis1):
        raise ValueError(f"{layer}: expected {name} with {axis1} channels on axis 1, got {_describe(x)}")
    if floating and not backend.dtype_name(x.dtype).startswith("float"):
        raise TypeError(
            f"{layer}: expected {name} with a floating dtype (float32 or float64), got {_describe(x)}; "
            "convert it first, e.g. x.astype('float32')"
        )


def check_dtype_match(layer: str, x: Any, params: dict[str, Any]) -> None:
    """Layers never cast silently: the input's dtype must equal the parameters' dtype."""
    for key, value in params.items():
        if backend.dtype_name(value.dtype) != backend.dtype_name(x.dtype):
            raise TypeError(
                f"{layer}: input dtype {backend.dtype_name(x.dtype)} does not match parameter {key!r} dtype "
                f"{backend.dtype_name(value.dtype)}; cast the input or call "
                f"layer.astype('{backend.dtype_name(x.dtype)}')"
            )


def check_labels(layer: str, t: Any, n: int, n_classes: int) -> None:
    """Integer labels ``t`` of shape (n,) with values in [0, n_classes)."""
    if not hasattr(t, "dtype"):
        raise TypeError(f"{layer}: expected labels as an integer array, got {_describe(t)}")
    if not backend.dtype_name(t.dtype).startswith(("int", "uint")):
        raise TypeError(
            f"{layer}: expected integer labels (or one-hot floats of shape ({n}, {n_classes})), got {_describe(t)}"
        )
    if tuple(t.shape) != (n,):
        raise ValueError(f"{layer}: expected labels of shape ({n},), got {_describe(t)}")
    xp = backend.namespace(t)
    lo, hi = int(xp.min(t)), int(xp.max(t))
    if lo < 0 or hi >= n_classes:
        raise ValueError(f"{layer}: expected labels in [0, {n_classes - 1}], got values from {lo} to {hi}")
