"""A small training loop: mini-batch gradient descent with validation, history and a progress bar.

One step on a mini-batch (x_B, t_B):

    scores = model.forward(x_B, train=True)
    L      = loss.forward(scores, t_B)           # batch-mean loss
    model.backward(loss.backward())               # fills model.grads
    optimizer.update(model.params, model.grads)   # θ ← θ − ε ∇L (or momentum, Adam, ...)
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dlcore import backend
from dlcore.data.batches import BatchIterator
from dlcore.nn.base import Layer, Loss

__all__ = ["History", "Trainer", "TrainingDivergedError", "fit", "evaluate", "predict", "accuracy"]


class TrainingDivergedError(FloatingPointError):
    """The loss became NaN or infinite; training stopped instead of continuing with garbage."""


@dataclass
class History:
    """Per-epoch records of a training run (lists indexed by epoch)."""

    loss: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)

    @property
    def epochs(self) -> int:
        return len(self.loss)

    def plot(self, **kwargs: Any) -> Any:
        """Loss and accuracy curves (see :func:`dlcore.plots.plot_history`)."""
        from dlcore.plots import plot_history

        return plot_history(self, **kwargs)

    def as_dict(self) -> dict[str, list[float]]:
        return {k: list(v) for k, v in self.__dict__.items()}


def accuracy(scores: Any, t: Any) -> float:
    """Fraction of correct predictions.

    Class scores (N, C) with C > 1: arg-max against integer labels (N,) or one-hot rows (N, C).
    One logit per sample, (N,) or (N, 1): predicted class [z > 0] against 0/1 targets of the same shape.
    """
    xp = backend.namespace(scores, t, where="accuracy")
    if scores.ndim == 2 and scores.shape[1] > 1:
        pred = xp.argmax(scores, axis=-1)
        if tuple(t.shape) == tuple(scores.shape):
            labels = xp.argmax(t, axis=-1)
        elif tuple(t.shape) == (scores.shape[0],):
            labels = t
        else:
            raise ValueError(f"accuracy: expected labels of shape ({scores.shape[0]},) or one-hot "
                             f"{tuple(scores.shape)} for scores of shape {tuple(scores.shape)}, got {tuple(t.shape)}")
        return float(xp.mean(xp.astype(pred == xp.astype(labels, pred.dtype), scores.dtype)))
    if scores.ndim in (1, 2) and tuple(t.shape) == tuple(scores.shape):
        return float(xp.mean(xp.astype((scores > 0) == (t > 0.5), scores.dtype)))
    raise ValueError(f"accuracy: expected class scores (N, C) or one logit per sample (N,)/(N, 1) with targets "
                     f"of the same shape, got scores {tuple(scores.shape)} and targets {tuple(t.shape)}")


def _model_namespace(model: Layer) -> Any:
    values = list(model.params.values())
    return backend.namespace(values[0]) if values else None


def _forward(model: Layer, x: Any, train: bool) -> Any:
    return model.forward(x, train=train) if getattr(model, "has_train_mode", False) else model.forward(x)


def _progress_bar(total: int, enabled: bool, desc: str) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm  # a widget in Jupyter, a text bar in a terminal

    return tqdm(total=total, desc=desc, unit="batch", leave=True, dynamic_ncols=True)


class Trainer:
    """Holds the model, loss and optimizer; :meth:`fit`, :meth:`evaluate`, :meth:`predict`.

    ``rng`` seeds the shuffling and the validation split, so a run is reproducible.
    """

    def __init__(self, model: Layer, loss: Loss | None = None, optimizer: Any = None, *,
                 batch_size: int = 100, rng: backend.Seed = None, progress: bool = True,
                 metric: Callable[[Any, Any], float] | None = accuracy) -> None:
        from dlcore.nn.losses import SoftmaxCrossEntropy
        from dlcore.optim import SGD

        if batch_size <= 0:
            raise ValueError(f"Trainer: expected a positive batch_size, got {batch_size}")
        self.model = model
        self.loss = loss if loss is not None else SoftmaxCrossEntropy()
        self.optimizer = optimizer if optimizer is not None else SGD(lr=0.1)
        self.batch_size = int(batch_size)
        self.rng = backend.default_rng(rng)
        self.progress = progress
        from dlcore.nn.losses import MSE

        # accuracy means nothing for a regression loss: record the loss alone unless a metric is given
        self.metric = None if metric is accuracy and isinstance(self.loss, MSE) else metric
        self.history = History()

    # -- helpers --------------------------------------------------------------------------
    def _to_model(self, a: Any) -> Any:
        xp = _model_namespace(self.model)
        return a if xp is None else backend.to_device(a, xp)

    def _check_data(self, x: Any, t: Any) -> None:
        if not (hasattr(x, "shape") and hasattr(t, "shape")):
            raise TypeError(f"Trainer.fit: expected arrays x and t, got {type(x).__name__} and {type(t).__name__}")
        if x.shape[0] != t.shape[0]:
            raise ValueError(f"Trainer.fit: x has {x.shape[0]} samples but t has {t.shape[0]}; they must match")
        if x.shape[0] == 0:
            raise ValueError("Trainer.fit: got an empty training set")

    def _split(self, x: Any, t: Any, fraction: float) -> tuple[Any, Any, Any, Any]:
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"Trainer.fit: validation_split must be in (0, 1), got {fraction}")
        xp = backend.namespace(x)
        n = x.shape[0]
        n_val = max(1, int(round(n * fraction)))
        perm = backend.permutation(self.rng, n, xp=xp)
        val_idx, train_idx = perm[:n_val], perm[n_val:]
        return (xp.take(x, train_idx, axis=0), xp.take(t, train_idx, axis=0),
                xp.take(x, val_idx, axis=0), xp.take(t, val_idx, axis=0))

    # -- public ---------------------------------------------------------------------------
    def fit(self, x: Any, t: Any, *, epochs: int = 10, validation_data: tuple[Any, Any] | None = None,
            validation_split: float = 0.0) -> History:
        """Train for ``epochs`` passes over (x, t); returns the (cumulative) :class:`History`."""
        self._check_data(x, t)
        if int(epochs) < 1:
            raise ValueError(f"Trainer.fit: expected epochs >= 1, got {epochs}")
        if validation_data is None and validation_split:
            x, t, xv, tv = self._split(x, t, validation_split)
            validation_data = (xv, tv)
        batches = BatchIterator(x, t, self.batch_size, shuffle=True, rng=self.rng)
        bar = _progress_bar(epochs * len(batches), self.progress, "training")
        # Overflow inside a diverging step is reported once, clearly, by the finite-loss check below.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            try:
                self._epochs(batches, epochs, validation_data, bar)
            finally:
                if bar is not None:
                    bar.close()
        return self.history

    def _epochs(self, batches: BatchIterator, epochs: int, validation_data: Any, bar: Any) -> None:
        """Run the epochs; one progress-bar tick per mini-batch."""
        for epoch in range(epochs):
            if bar is not None:
                bar.set_description(f"epoch {epoch + 1}/{epochs}")
            total_loss, total_metric, seen = 0.0, 0.0, 0
            for b, (xb, tb) in enumerate(batches):
                xb, tb = self._to_model(xb), self._to_model(tb)
                scores = _forward(self.model, xb, True)
                loss = float(self.loss.forward(scores, tb))
                if not math.isfinite(loss):
                    raise TrainingDivergedError(
                        f"the loss became {loss} at epoch {epoch + 1}, batch {b + 1}: training stopped. "
                        f"Try a smaller learning rate (now {getattr(self.optimizer, 'lr', '?')}), check that "
                        "the inputs are scaled (e.g. to [0, 1]), or clip gradients."
                    )
                self.model.backward(self.loss.backward())
                self.optimizer.update(self.model.params, self.model.grads)
                n = xb.shape[0]
                total_loss += loss * n
                if self.metric is not None:
                    total_metric += self.metric(scores, tb) * n
                seen += n
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{total_loss / seen:.4f}", refresh=False)
            self._record(total_loss / seen, total_metric / seen, validation_data, bar)

    def _record(self, loss: float, metric: float, validation_data: Any, bar: Any) -> None:
        h = self.history
        h.loss.append(loss)
        h.lr.append(float(getattr(self.optimizer, "lr", float("nan"))))
        if self.metric is not None:
            h.accuracy.append(metric)
        postfix = {"loss": f"{loss:.4f}"}
        if validation_data is not None:
            result = self.evaluate(*validation_data)
            h.val_loss.append(result["loss"])
            postfix["val_loss"] = f"{result['loss']:.4f}"
            if self.metric is not None:
                h.val_accuracy.append(result["accuracy"])
                postfix["val_acc"] = f"{result['accuracy']:.3f}"
        if bar is not None:
            bar.set_postfix(postfix)

    def predict(self, x: Any, *, batch_size: int = 1000) -> Any:
        """Model outputs (eval mode) for ``x``, computed in batches, on the model's device."""
        return predict(self.model, x, batch_size=batch_size)

    def evaluate(self, x: Any, t: Any, *, batch_size: int = 1000) -> dict[str, float]:
        """{'loss': mean loss, 'accuracy': mean metric} over (x, t) in eval mode."""
        return evaluate(self.model, x, t, loss=self.loss, metric=self.metric, batch_size=batch_size)


def _check_batching(where: str, x: Any, batch_size: int) -> None:
    if not hasattr(x, "shape") or x.ndim == 0 or x.shape[0] == 0:
        raise ValueError(f"{where}: expected a non-empty batch of samples, got "
                         f"{'shape ' + str(tuple(x.shape)) if hasattr(x, 'shape') else type(x).__name__}")
    if int(batch_size) <= 0:
        raise ValueError(f"{where}: expected a positive batch_size, got {batch_size}")


def predict(model: Layer, x: Any, *, batch_size: int = 1000) -> Any:
    """Eval-mode outputs of ``model`` for ``x`` in batches, on the model's device."""
    _check_batching("predict", x, batch_size)
    xp_model = _model_namespace(model)
    outs = []
    for start in range(0, x.shape[0], batch_size):
        xb = x[start:start + batch_size]
        xb = xb if xp_model is None else backend.to_device(xb, xp_model)
        outs.append(_forward(model, xb, False))
    return backend.namespace(outs[0]).concat(outs, axis=0)


def evaluate(model: Layer, x: Any, t: Any, *, loss: Loss | None = None,
             metric: Callable[[Any, Any], float] | None = accuracy, batch_size: int = 1000) -> dict[str, float]:
    """Mean loss and metric of ``model`` on (x, t) in eval mode."""
    from dlcore.nn.losses import SoftmaxCrossEntropy

    loss = loss if loss is not None else SoftmaxCrossEntropy()
    _check_batching("evaluate", x, batch_size)
    if t.shape[0] != x.shape[0]:
        raise ValueError(f"evaluate: x has {x.shape[0]} samples but t has {t.shape[0]}; they must match")
    xp_model = _model_namespace(model)
    total_loss, total_metric, seen = 0.0, 0.0, 0
    for start in range(0, x.shape[0], batch_size):
        xb, tb = x[start:start + batch_size], t[start:start + batch_size]
        if xp_model is not None:
            xb, tb = backend.to_device(xb, xp_model), backend.to_device(tb, xp_model)
        scores = _forward(model, xb, False)
        n = xb.shape[0]
        total_loss += float(loss.forward(scores, tb)) * n
        if metric is not None:
            total_metric += metric(scores, tb) * n
        seen += n
    result = {"loss": total_loss / seen}
    if metric is not None:
        result["accuracy"] = total_metric / seen
    return result


def fit(model: Layer, x: Any, t: Any, *, loss: Loss | None = None, optimizer: Any = None, epochs: int = 10,
        batch_size: int = 100, validation_data: tuple[Any, Any] | None = None, validation_split: float = 0.0,
        rng: backend.Seed = None, progress: bool = True) -> History:
    """Train ``model`` on (x, t); shorthand for ``Trainer(...).fit(...)``. Defaults: softmax CE, SGD(0.1)."""
    trainer = Trainer(model, loss, optimizer, batch_size=batch_size, rng=rng, progress=progress)
    return trainer.fit(x, t, epochs=epochs, validation_data=validation_data, validation_split=validation_split)
