"""MNIST and Fashion-MNIST: downloaded once into the data folder, then read from there.

Both are 60000 training and 10000 test images of 28x28 uint8 pixels in IDX files
(:mod:`dlcore.data.idx`), fetched by :func:`dlcore.data.download.fetch` from a list of
mirrors and verified before use. The data folder is ``$DLCORE_DATA`` (else
``~/.cache/dlcore``); the files land in its ``mnist/`` and ``fashion-mnist/``
sub-folders, decompressed. Offline, place the four ``.gz`` files there by hand,
or use :func:`dlcore.data.load_digits`, which needs no download.

Checksum provenance (nothing here was computed by this project, which had no network):

- ``gz_md5``: MD5 of the canonical ``.gz`` files, as listed in torchvision's MNIST and
  FashionMNIST ``resources`` (the same values appear in many independent projects).
- ``gz_sha256``: SHA-256 of the same ``.gz`` files, as listed in TensorFlow Datasets'
  download checksums for MNIST (and public checksum lists for both data sets).
- ``size``: size of the decompressed IDX file, exact by construction: a 16-byte
  header + N*28*28 bytes for images, an 8-byte header + N bytes for labels.
- ``sha256`` (of the decompressed file): not known to us, left empty rather than
  guessed. So a mirror that re-compresses the files fails verification until you pass
  the decompressed digests with ``checksums=``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from dlcore import backend
from dlcore.data.dataset import Dataset, _to_arrays, stratified_indices
from dlcore.data.download import FileCheck, data_home, fetch
from dlcore.data.idx import read_idx

__all__ = [
    "MNIST_FILES", "MNIST_MIRRORS", "MNIST_CHECKSUMS", "FASHION_MNIST_MIRRORS", "FASHION_MNIST_CHECKSUMS",
    "FASHION_MNIST_CLASSES", "load_mnist", "load_fashion_mnist",
]

#: Role -> canonical file name (the same for both data sets).
MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}

MNIST_MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",       # PyTorch's mirror (torchvision)
    "https://storage.googleapis.com/cvdf-datasets/mnist/",  # Google CVDF mirror (TensorFlow)
)
FASHION_MNIST_MIRRORS: tuple[str, ...] = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",                        # Zalando Research (S3)
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",  # the project's repo
)

_SIZES = {"train_images": 16 + 60000 * 784, "train_labels": 8 + 60000,
          "test_images": 16 + 10000 * 784, "test_labels": 8 + 10000}
_MNIST_SOURCE = "MD5: torchvision MNIST.resources; SHA-256 of .gz: TensorFlow Datasets checksums; size: IDX layout"
_FASHION_SOURCE = ("MD5: torchvision FashionMNIST.resources; SHA-256 of .gz: public checksum lists of the "
                   "Zalando files; size: IDX layout")

MNIST_CHECKSUMS: dict[str, FileCheck] = {
    MNIST_FILES["train_images"]: FileCheck(
        size=_SIZES["train_images"], gz_md5="f68b3c2dcbeaaa9fbdd348bbdeb94873",
        gz_sha256="440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609", source=_MNIST_SOURCE),
    MNIST_FILES["train_labels"]: FileCheck(
        size=_SIZES["train_labels"], gz_md5="d53e105ee54ea40749a09fcbcd1e9432",
        gz_sha256="3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c", source=_MNIST_SOURCE),
    MNIST_FILES["test_images"]: FileCheck(
        size=_SIZES["test_images"], gz_md5="9fb629c4189551a2d022fa330f9573f3",
        gz_sha256="8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6", source=_MNIST_SOURCE),
    MNIST_FILES["test_labels"]: FileCheck(
        size=_SIZES["test_labels"], gz_md5="ec29112dd5afa0611ce80d1b7f02629c",
        gz_sha256="f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6", source=_MNIST_SOURCE),
}

FASHION_MNIST_CHECKSUMS: dict[str, FileCheck] = {
    MNIST_FILES["train_images"]: FileCheck(
        size=_SIZES["train_images"], gz_md5="8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        gz_sha256="08dc20ab1689590a0bcd66e874647b6ee8464e2d501b5a3f1f78831db19a3fdc", source=_FASHION_SOURCE),
    MNIST_FILES["train_labels"]: FileCheck(
        size=_SIZES["train_labels"], gz_md5="25c81989df183df01b3e8a0aad5dffbe",
        gz_sha256="b0197879cbda89f3dc7b894f9fd52b858e68ea4182b6947c9d8c2b67e5f18dcc", source=_FASHION_SOURCE),
    MNIST_FILES["test_images"]: FileCheck(
        size=_SIZES["test_images"], gz_md5="bef4ecab320f06d8554ea6380940ec79",
        gz_sha256="78dcbbfb5a27efaf1b6c1d616caca68560be8766c5bffcb2791df9273a534229", source=_FASHION_SOURCE),
    MNIST_FILES["test_labels"]: FileCheck(
        size=_SIZES["test_labels"], gz_md5="bb300cfdad3c16e7a12a480ee83cd310",
        gz_sha256="42bd18137a62d5998cdeae52bf3a0676ac6b706f5cf8439b47bb5b151ae3dccf", source=_FASHION_SOURCE),
}

DIGIT_NAMES = tuple(str(d) for d in range(10))
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                         "Bag", "Ankle boot")

Checksums = Mapping[str, FileCheck | str]


def _check_for(name: str, table: Mapping[str, FileCheck], override: Checksums | None) -> FileCheck:
    """The override for ``name`` (a FileCheck, or a string = SHA-256 of the decompressed file), else the table's."""
    if override is not None and name in override:
        value = override[name]
        return value if isinstance(value, FileCheck) else FileCheck(sha256=value, source="checksums= argument")
    return table[name]


def _load_idx_pair(folder: Path, table: Mapping[str, FileCheck], split: str, mirrors: Sequence[str],
                   checksums: Checksums | None, timeout: float, progress: bool,
                   who: str) -> tuple[np.ndarray, np.ndarray]:
    paths = {}
    for part in ("images", "labels"):
        name = MNIST_FILES[f"{split}_{part}"]
        paths[part] = fetch(name, mirrors, _check_for(name, table, checksums), folder,
                            timeout=timeout, progress=progress)
    images, labels = read_idx(paths["images"]), read_idx(paths["labels"])
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(f"{who}: {paths['images']} holds {images.dtype} of shape {images.shape}; "
                         "expected uint8 images of shape (N, H, W)")
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise ValueError(f"{who}: {paths['labels']} holds labels of shape {labels.shape} for {images.shape[0]} images")
    if labels.size and labels.max() > 9:
        raise ValueError(f"{who}: {paths['labels']} holds a label {labels.max()}, expected 0..9")
    return images, labels


def _load(name: str, table: Mapping[str, FileCheck], default_mirrors: Sequence[str], class_names: tuple[str, ...], *,
          flatten: bool, scale: bool, one_hot: bool, dtype: Any, device: str | ModuleType, n_train: int | None,
          n_test: int | None, validation_size: float | int | None, seed: backend.Seed,
          cache_dir: str | os.PathLike[str] | None, mirrors: Sequence[str] | None, checksums: Checksums | None,
          timeout: float, progress: bool) -> Dataset:
    who = f"load_{name.replace('-', '_')}"
    folder = Path(cache_dir).expanduser() if cache_dir is not None else data_home() / name
    mirrors = tuple(default_mirrors if mirrors is None else mirrors)
    sets = {}
    image_shape: tuple[int, ...] = ()
    for split, limit in (("train", n_train), ("test", n_test)):
        images, labels = _load_idx_pair(folder, table, split, mirrors, checksums, timeout, progress, who)
        if limit is not None:
            if not 0 < limit <= images.shape[0]:
                raise ValueError(f"{who}: n_{split}={limit} must lie in [1, {images.shape[0]}]")
            images, labels = images[:limit], labels[:limit]
        image_shape = tuple(images.shape[1:])
        sets[split] = _to_arrays(images, labels, n_classes=10, flatten=flatten, scale=scale, max_value=255.0,
                                 one_hot=one_hot, dtype=dtype, who=who) + (labels,)
    (x_tr, t_tr, raw_tr), (x_te, t_te, _) = sets["train"], sets["test"]
    parts: dict[str, Any] = {}
    if validation_size is not None:
        keep, val = stratified_indices(raw_tr, validation_size, seed=seed)
        parts = {"x_val": x_tr[val], "t_val": t_tr[val]}
        x_tr, t_tr = x_tr[keep], t_tr[keep]
    data = Dataset(x_train=x_tr, t_train=t_tr, x_test=x_te, t_test=t_te, class_names=class_names,
                   image_shape=image_shape, name=name, **parts)
    return data.to(device)


def load_mnist(*, flatten: bool = True, scale: bool = True, one_hot: bool = False, dtype: Any = "float32",
               device: str | ModuleType = "cpu", n_train: int | None = None, n_test: int | None = None,
               validation_size: float | int | None = None, seed: backend.Seed = 0,
               cache_dir: str | os.PathLike[str] | None = None, mirrors: Sequence[str] | None = None,
               checksums: Checksums | None = None, timeout: float = 5.0, progress: bool = True) -> Dataset:
    """MNIST (60000 train / 10000 test handwritten digits, 28x28) as a :class:`Dataset`.

    Same conventions as :func:`dlcore.data.load_digits` (``flatten``, ``scale`` = x / 255, ``one_hot``,
    ``dtype``, ``device``). ``n_train``/``n_test``: keep only the first samples of each official set.
    ``validation_size``: hold out a stratified, seeded part of the (limited) training set as ``x_val, t_val``.
    ``cache_dir``: folder of the files (default ``$DLCORE_DATA/mnist`` or ``~/.cache/dlcore/mnist``).
    ``mirrors``: base URLs to try instead of :data:`MNIST_MIRRORS`. ``checksums``: file name -> a
    :class:`FileCheck` or the SHA-256 of the decompressed file, replacing :data:`MNIST_CHECKSUMS` entries.
    Raises :class:`dlcore.data.DownloadError` (with what to do offline) when the files cannot be had.
    """
    return _load("mnist", MNIST_CHECKSUMS, MNIST_MIRRORS, DIGIT_NAMES, flatten=flatten, scale=scale,
                 one_hot=one_hot, dtype=dtype, device=device, n_train=n_train, n_test=n_test,
                 validation_size=validation_size, seed=seed, cache_dir=cache_dir, mirrors=mirrors,
                 checksums=checksums, timeout=timeout, progress=progress)


def load_fashion_mnist(*, flatten: bool = True, scale: bool = True, one_hot: bool = False, dtype: Any = "float32",
                       device: str | ModuleType = "cpu", n_train: int | None = None, n_test: int | None = None,
                       validation_size: float | int | None = None, seed: backend.Seed = 0,
                       cache_dir: str | os.PathLike[str] | None = None, mirrors: Sequence[str] | None = None,
                       checksums: Checksums | None = None, timeout: float = 5.0, progress: bool = True) -> Dataset:
    """Fashion-MNIST (Zalando's 28x28 clothing images, 10 classes, 60000/10000) as a :class:`Dataset`.

    Arguments as in :func:`load_mnist`; files live in ``$DLCORE_DATA/fashion-mnist`` (or
    ``~/.cache/dlcore/fashion-mnist``); default mirrors :data:`FASHION_MNIST_MIRRORS`.
    """
    return _load("fashion-mnist", FASHION_MNIST_CHECKSUMS, FASHION_MNIST_MIRRORS, FASHION_MNIST_CLASSES,
                 flatten=flatten, scale=scale, one_hot=one_hot, dtype=dtype, device=device, n_train=n_train,
                 n_test=n_test, validation_size=validation_size, seed=seed, cache_dir=cache_dir, mirrors=mirrors,
                 checksums=checksums, timeout=timeout, progress=progress)
