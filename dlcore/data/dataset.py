"""The container every image loader returns, and stratified splitting.

A :class:`Dataset` holds ``x_train, t_train, x_test, t_test`` (and optionally a
validation subset ``x_val, t_val``) on one device, plus what a plot needs
(``class_names``, ``image_shape``). Inputs are ``(N, H*W)`` for an MLP
(``flatten=True``) or ``(N, 1, H, W)`` for a CNN; targets are int64 class
indices, or one-hot rows in the input dtype.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from dlcore import backend

__all__ = ["Dataset", "stratified_indices", "validation_split"]


@dataclass(frozen=True, repr=False)
class Dataset:
    """Train/test (and optional validation) arrays of a classification data set."""

    x_train: Any
    t_train: Any
    x_test: Any
    t_test: Any
    x_val: Any = None
    t_val: Any = None
    class_names: tuple[str, ...] = ()
    image_shape: tuple[int, ...] = ()
    name: str = ""

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def train(self) -> tuple[Any, Any]:
        """``(x_train, t_train)``."""
        return self.x_train, self.t_train

    @property
    def test(self) -> tuple[Any, Any]:
        """``(x_test, t_test)``."""
        return self.x_test, self.t_test

    @property
    def val(self) -> tuple[Any, Any]:
        """``(x_val, t_val)``; raises if the data set has no validation subset."""
        if self.x_val is None:
            raise ValueError(f"{self.name or 'Dataset'} has no validation subset; "
                             "ask the loader for one (validation_size=...) or call .with_validation(...)")
        return self.x_val, self.t_val

    def to(self, device: str | ModuleType) -> Dataset:
        """The same data on ``device`` ('cpu', 'gpu', 'strict' or a namespace)."""
        arrays = {f: backend.to_device(getattr(self, f), device)
                  for f in ("x_train", "t_train", "x_test", "t_test", "x_val", "t_val")}
        return dataclasses.replace(self, **arrays)

    def with_validation(self, size: float | int = 0.1, *, seed: backend.Seed = 0) -> Dataset:
        """Move a stratified, seeded subset of the training set into ``x_val, t_val``."""
        if self.x_val is not None:
            raise ValueError(f"{self.name or 'Dataset'} already has a validation subset")
        x_tr, t_tr, x_val, t_val = validation_split(self.x_train, self.t_train, size, seed=seed)
        return dataclasses.replace(self, x_train=x_tr, t_train=t_tr, x_val=x_val, t_val=t_val)

    def __repr__(self) -> str:
        def desc(a: Any) -> str:
            return f"{tuple(a.shape)} {backend.dtype_name(a.dtype)}"

        parts = [f"train: x {desc(self.x_train)}, t {desc(self.t_train)}"]
        if self.x_val is not None:
            parts.append(f"val: x {desc(self.x_val)}, t {desc(self.t_val)}")
        parts.append(f"test: x {desc(self.x_test)}, t {desc(self.t_test)}")
        device = backend.device_name(self.x_train)
        return f"Dataset({self.name!r}, {self.n_classes} classes, {'; '.join(parts)}, device {device})"


def _labels_numpy(t: Any) -> np.ndarray:
    labels = backend.to_numpy(t)
    return labels.argmax(axis=1) if labels.ndim == 2 else labels


def _count(size: float | int, n: int, what: str) -> int:
    if isinstance(size, (bool, np.bool_)) or not isinstance(size, (int, float, np.integer, np.floating)):
        raise TypeError(f"{what}: expected a fraction in (0, 1) or a number of samples, got {size!r}")
    k = int(round(float(size) * n)) if isinstance(size, (float, np.floating)) else int(size)
    if isinstance(size, (float, np.floating)) and not 0.0 < size < 1.0:
        raise ValueError(f"{what}: a fraction must lie in (0, 1), got {size}")
    if not 0 < k < n:
        raise ValueError(f"{what}: {size!r} of {n} samples gives {k}; both parts must be non-empty")
    return k


def stratified_indices(labels: Sequence[int] | np.ndarray, size: float | int, *,
                       seed: backend.Seed = 0) -> tuple[np.ndarray, np.ndarray]:
    """Seeded stratified split of ``range(len(labels))`` into ``(keep, held_out)`` index arrays.

    ``size`` (a fraction or a count) goes to ``held_out``; each class contributes in
    proportion to its frequency (largest remainders settle the rounding), so the class
    proportions of both parts match the whole to within one sample per class.
    Both index arrays are sorted (the original order is kept).
    """
    labels = np.asarray(labels)
    n = labels.shape[0]
    k = _count(size, n, "stratified split")
    rng = backend.default_rng(seed)
    classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    quota = counts * (k / n)
    take = np.floor(quota).astype(np.int64)
    short = k - int(take.sum())
    if short:  # largest fractional parts first; ties go to the larger class, then the lower label
        order = np.lexsort((np.arange(classes.size), -counts, -(quota - take)))
        take[order[:short]] += 1
    held = [rng.permutation(np.flatnonzero(inverse == c))[:take[c]] for c in range(classes.size)]
    held_out = np.sort(np.concatenate(held)) if held else np.empty(0, np.int64)
    mask = np.ones(n, bool)
    mask[held_out] = False
    return np.flatnonzero(mask), held_out


def validation_split(x: Any, t: Any, size: float | int = 0.1, *,
                     seed: backend.Seed = 0) -> tuple[Any, Any, Any, Any]:
    """``(x_train, t_train, x_val, t_val)``: a stratified, seeded hold-out of ``size`` (fraction or count).

    Works on any backend (the split is computed from the labels on the host, the
    arrays are gathered with ``xp.take`` on their own device); ``t`` may be integer
    labels or one-hot rows.
    """
    xp = backend.namespace(x, t, where="validation_split")
    if x.shape[0] != t.shape[0]:
        raise ValueError(f"validation_split: x has {x.shape[0]} samples but t has {t.shape[0]}")
    keep, held = stratified_indices(_labels_numpy(t), size, seed=seed)
    keep_i, held_i = (backend.to_device(i, xp) for i in (keep, held))
    return (xp.take(x, keep_i, axis=0), xp.take(t, keep_i, axis=0),
            xp.take(x, held_i, axis=0), xp.take(t, held_i, axis=0))


def _to_arrays(images: np.ndarray, labels: np.ndarray, *, n_classes: int, flatten: bool, scale: bool,
               max_value: float, one_hot: bool, dtype: Any, who: str) -> tuple[np.ndarray, np.ndarray]:
    """Host-side conversion of raw ``(N, H, W)`` images and labels into model inputs and targets."""
    name = backend.dtype_name(dtype)
    if scale and not name.startswith("float"):
        raise TypeError(f"{who}: scale=True gives values in [0, 1] and needs a floating dtype, got {name}; "
                        "pass scale=False for the raw pixel values")
    x = images.astype(name)
    if scale:
        x /= np.asarray(max_value, dtype=name)
    n = x.shape[0]
    x = x.reshape(n, -1) if flatten else x.reshape(n, 1, *images.shape[1:])
    t = labels.astype(np.int64)
    if one_hot:
        out_dtype = name if name.startswith("float") else "float32"
        t = np.eye(n_classes, dtype=out_dtype)[t]
    return x, t
