"""The 8x8 handwritten digits bundled with scikit-learn: the course's offline data set.

1797 grey-level images of the digits 0-9 (UCI "Optical Recognition of Handwritten
Digits", 4-bit pixels 0..16), shipped inside scikit-learn: no download, so every
notebook's closing experiment runs anywhere. ``scale=True`` maps pixels to [0, 1]
by x / 16.
"""

from __future__ import annotations

import functools
from types import ModuleType
from typing import Any

import numpy as np

from dlcore import backend
from dlcore.data.dataset import Dataset, _to_arrays, stratified_indices

__all__ = ["load_digits"]

DIGIT_NAMES = tuple(str(d) for d in range(10))


@functools.lru_cache(maxsize=1)
def _raw_digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits as sk_load_digits  # noqa: PLC0415 - keep `import dlcore` light

    bunch = sk_load_digits()
    images = bunch.images.astype(np.uint8)  # integer values 0..16 stored as float64
    labels = bunch.target.astype(np.int64)
    images.flags.writeable = False
    labels.flags.writeable = False
    return images, labels


def load_digits(test_size: float | int = 0.2, seed: backend.Seed = 0, flatten: bool = True, scale: bool = True,
                one_hot: bool = False, dtype: Any = "float32", device: str | ModuleType = "cpu", *,
                validation_size: float | int | None = None) -> Dataset:
    """scikit-learn's 8x8 digits as a :class:`Dataset`, split into train and test (stratified, seeded).

    ``test_size``: fraction or count of test samples. ``flatten``: inputs (N, 64) for an MLP, else
    (N, 1, 8, 8) for a CNN. ``scale``: pixels / 16 in [0, 1]. ``one_hot``: targets as one-hot rows
    in ``dtype`` instead of int64 labels. ``validation_size``: also hold out a stratified part of the
    training set as ``x_val, t_val``. ``device``: 'cpu', 'gpu', 'strict' or a namespace.
    """
    images, labels = _raw_digits()
    x, t = _to_arrays(images, labels, n_classes=10, flatten=flatten, scale=scale, max_value=16.0,
                      one_hot=one_hot, dtype=dtype, who="load_digits")
    rng = backend.default_rng(seed)
    train, test = stratified_indices(labels, test_size, seed=rng)
    parts: dict[str, Any] = {"x_test": x[test], "t_test": t[test]}
    if validation_size is not None:
        keep, val = stratified_indices(labels[train], validation_size, seed=rng)
        parts.update(x_val=x[train[val]], t_val=t[train[val]])
        train = train[keep]
    data = Dataset(x_train=x[train], t_train=t[train], class_names=DIGIT_NAMES, image_shape=(8, 8),
                   name="digits", **parts)
    return data.to(device)
