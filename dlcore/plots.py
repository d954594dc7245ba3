"""Matplotlib helpers for the chapters: training curves, decision boundaries, image grids.

Every function draws on a given ``ax`` (or makes a figure), labels its axes, and returns
the figure so notebooks can save or further style it. Arrays from any backend are
copied to the host first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from dlcore.backend import to_numpy

__all__ = ["plot_history", "plot_decision_boundary", "show_images"]


def _pyplot() -> Any:
    import matplotlib.pyplot as plt

    return plt


def plot_history(history: Any, *, title: str = "Training history", figsize: tuple[float, float] = (10, 3.5)) -> Any:
    """Loss (left) and accuracy (right) per epoch, training and validation curves."""
    plt = _pyplot()
    h = history if isinstance(history, dict) else history.as_dict()
    has_acc = bool(h.get("accuracy"))
    fig, axes = plt.subplots(1, 2 if has_acc else 1, figsize=figsize, squeeze=False)
    epochs = np.arange(1, len(h["loss"]) + 1)
    ax = axes[0, 0]
    ax.plot(epochs, h["loss"], "o-", label="training")
    if h.get("val_loss"):
        ax.plot(epochs, h["val_loss"], "s--", label="validation")
    ax.set(title="Loss", xlabel="epoch", ylabel="mean loss per sample")
    ax.legend()
    if has_acc:
        ax = axes[0, 1]
        ax.plot(epochs, h["accuracy"], "o-", label="training")
        if h.get("val_accuracy"):
            ax.plot(epochs, h["val_accuracy"], "s--", label="validation")
        ax.set(title="Accuracy", xlabel="epoch", ylabel="fraction correct", ylim=(0, 1.02))
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_decision_boundary(predict: Callable[[np.ndarray], Any], x: Any, t: Any, *, ax: Any = None,
                           resolution: int = 200, title: str = "Decision regions",
                           labels: tuple[str, str] = ("$x_1$", "$x_2$"), threshold: float = 0.0) -> Any:
    """Colour the plane by the class ``predict(grid)`` gives and scatter (x, t) on top.

    ``predict`` may return class ids (N,) of an integer dtype, class scores (N, C) (arg-maxed), or one
    score per point, (N,) or (N, 1), classified as [score > threshold] (0 for logits, 0.5 for probabilities).
    """
    plt = _pyplot()
    x, t = to_numpy(x), to_numpy(t)
    if ax is None:
        _, ax = plt.subplots(figsize=(4.5, 4))
    pad = 0.5
    (x0, y0), (x1, y1) = x.min(axis=0) - pad, x.max(axis=0) + pad
    gx, gy = np.meshgrid(np.linspace(x0, x1, resolution), np.linspace(y0, y1, resolution))
    grid = np.c_[gx.ravel(), gy.ravel()].astype(x.dtype)
    z = to_numpy(predict(grid))
    if z.ndim == 2 and z.shape[1] > 1:
        z = z.argmax(axis=1)
    elif not np.issubdtype(z.dtype, np.integer) and z.dtype != bool:
        z = z.reshape(-1) > threshold
    ax.contourf(gx, gy, z.reshape(gx.shape).astype(float), alpha=0.3, cmap="coolwarm")
    labels_t = t.argmax(axis=1) if t.ndim == 2 else t
    ax.scatter(x[:, 0], x[:, 1], c=labels_t, cmap="coolwarm", edgecolors="k", s=25)
    ax.set(title=title, xlabel=labels[0], ylabel=labels[1])
    return ax.figure


def show_images(images: Any, *, titles: Sequence[str] | None = None, ncols: int = 10, cmap: str = "gray",
                suptitle: str | None = None, size: float = 1.2) -> Any:
    """A grid of images: (N, H, W), (N, 1, H, W) or flat (N, H*W) with square H = W."""
    plt = _pyplot()
    imgs = to_numpy(images)
    if imgs.ndim == 2:
        side = int(round(np.sqrt(imgs.shape[1])))
        imgs = imgs.reshape(-1, side, side)
    if imgs.ndim == 4:
        imgs = imgs[:, 0] if imgs.shape[1] == 1 else imgs.transpose(0, 2, 3, 1)
    n = imgs.shape[0]
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, min(ncols, n), figsize=(size * min(ncols, n), size * nrows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(imgs[i], cmap=cmap)
            if titles is not None:
                ax.set_title(titles[i], fontsize=8)
    if suptitle:
        fig.suptitle(suptitle)
    return fig
