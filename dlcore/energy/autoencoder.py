"""Autoencoders (tied or untied, denoising, sparse) and their greedy stacking.

    x̃ = x ⊙ m,  m_i ~ Bernoulli(1 − noise)            (masking noise; m = 1 without noise)
    h = σ(x̃ W + c)                                    encoder, W: (n_in, n_hidden)
    z = σ(h W' + b),  W' = Wᵀ (tied) or its own W_dec  decoder
    L = (1/N) Σ_n ℓ(x_n, z_n) + β Σ_j KL(ρ ‖ ρ̂_j),    ρ̂_j = (1/N) Σ_n h_nj

with ℓ the cross-entropy −Σ_i [x_i log z_i + (1 − x_i) log(1 − z_i)] = Σ_i softplus(a_i) − x_i a_i
(a = hW' + b, computed from the logits so it never takes log 0), or the squared error ½‖z − x‖²,
and KL(ρ ‖ ρ̂) = ρ log(ρ/ρ̂) + (1 − ρ) log((1 − ρ)/(1 − ρ̂)). The target is always the clean x.

Backward (dL = 1):  δ_a = (z − x)/N (cross-entropy) or (z − x) z (1 − z)/N (squared error);
    dW' = hᵀ δ_a,  db = Σ_n δ_a,  δ_h = δ_a W'ᵀ + (β/N)(−ρ/ρ̂ + (1 − ρ)/(1 − ρ̂)),
    δ_u = δ_h ⊙ h(1 − h),  dW = x̃ᵀ δ_u (+ δ_aᵀ h when tied),  dc = Σ_n δ_u.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from dlcore import backend
from dlcore.energy.stacking import check_layer_sizes, fresh_optimizer, mlp_from_weights, per_layer
from dlcore.nn import init as initializers
from dlcore.nn.base import Layer, check_array, check_dtype_match
from dlcore.nn.functional import sigmoid, softplus

__all__ = ["Autoencoder", "StackedAutoencoder"]

_LOSSES = ("cross_entropy", "mse")


class Autoencoder(Layer):
    """One-hidden-layer autoencoder; ``forward(x)`` returns the loss L (a 0-d array), ``backward()`` dL/dx.

    ``tied``: decoder weight Wᵀ (else a parameter ``W_dec``); ``noise``: masking-noise fraction
    (denoising autoencoder, applied in training mode only); ``sparsity`` β and target ``rho`` ρ:
    KL sparsity penalty; ``loss``: 'cross_entropy' (inputs in [0, 1]) or 'mse'.
    Parameters: W (n_in, n_hidden), c (n_hidden,), b (n_in,) [, W_dec (n_hidden, n_in)].
    """

    has_train_mode = True

    def __init__(self, n_in: int, n_hidden: int, *, tied: bool = True, noise: float = 0.0, sparsity: float = 0.0,
                 rho: float = 0.05, loss: str = "cross_entropy", rng: backend.Seed = None,
                 dtype: Any = "float32") -> None:
        super().__init__()
        if int(n_in) != n_in or int(n_hidden) != n_hidden or n_in <= 0 or n_hidden <= 0:
            raise ValueError(f"Autoencoder: expected positive sizes, got n_in={n_in}, n_hidden={n_hidden}")
        if not 0.0 <= noise < 1.0:
            raise ValueError(f"Autoencoder: expected a masking-noise fraction in [0, 1), got noise={noise}")
        if sparsity < 0.0 or not 0.0 < rho < 1.0:
            raise ValueError(f"Autoencoder: expected sparsity >= 0 and 0 < rho < 1, got sparsity={sparsity}, rho={rho}")
        if loss not in _LOSSES:
            raise ValueError(f"Autoencoder: expected loss in {_LOSSES}, got {loss!r}")
        self.n_in, self.n_hidden = int(n_in), int(n_hidden)
        self.tied, self.noise, self.sparsity, self.rho, self.loss = bool(tied), float(noise), float(sparsity), \
            float(rho), loss
        self.rng = backend.default_rng(rng)
        self.params = {
            "W": initializers.xavier_uniform((self.n_in, self.n_hidden), self.rng, dtype),
            "c": initializers.zeros((self.n_hidden,), dtype=dtype),
            "b": initializers.zeros((self.n_in,), dtype=dtype),
        }
        if not self.tied:
            self.params["W_dec"] = initializers.xavier_uniform((self.n_hidden, self.n_in), self.rng, dtype)
        self.cache: Any = None
        self.history: dict[str, list[float]] = {}

    def __repr__(self) -> str:
        extra = "".join(f", {k}={v}" for k, v in (("noise", self.noise), ("sparsity", self.sparsity)) if v)
        return f"Autoencoder({self.n_in}, {self.n_hidden}, tied={self.tied}{extra}, loss={self.loss!r})"

    # -- pieces ----------------------------------------------------------------------------
    def _check(self, x: Any, where: str) -> Any:
        check_array(f"Autoencoder.{where}", "x", x, ndim=2, last_dim=self.n_in)
        check_dtype_match(f"Autoencoder.{where}", x, self.params)
        xp = backend.namespace(x, self.params["W"], where=f"Autoencoder.{where}")
        if self.loss == "cross_entropy":
            lo, hi = float(xp.min(x)), float(xp.max(x))
            if lo < 0.0 or hi > 1.0:
                raise ValueError(f"Autoencoder.{where}: the cross-entropy loss needs inputs in [0, 1], got values "
                                 f"from {lo:.4g} to {hi:.4g}; rescale them or use loss='mse'")
        return xp

    def _decoder_weight(self) -> Any:
        return self.params["W"].T if self.tied else self.params["W_dec"]

    def encode(self, x: Any) -> Any:
        """h = σ(xW + c) (clean input)."""
        self._check(x, "encode")
        return sigmoid(x @ self.params["W"] + self.params["c"])

    transform = encode

    def decode(self, h: Any) -> Any:
        """z = σ(hW' + b)."""
        check_array("Autoencoder.decode", "h", h, ndim=2, last_dim=self.n_hidden)
        return sigmoid(h @ self._decoder_weight() + self.params["b"])

    def reconstruct(self, x: Any) -> Any:
        """z = decode(encode(x)) without noise."""
        return self.decode(self.encode(x))

    def reconstruction_error(self, x: Any) -> float:
        """Mean squared error per unit between x and its reconstruction."""
        xp = backend.namespace(x)
        return float(xp.mean((x - self.reconstruct(x)) ** 2))

    # -- protocol --------------------------------------------------------------------------
    def forward(self, x: Any, train: bool = True, *, mask: Any = None, rng: backend.Seed = None) -> Any:
        """The loss L on the batch x (0-d array). ``mask``: a fixed noise mask (else drawn when training)."""
        xp = self._check(x, "forward")
        p = self.params
        n = x.shape[0]
        if mask is None and train and self.noise > 0.0:
            keep = xp.full(tuple(x.shape), 1.0 - self.noise, dtype=x.dtype, device=backend.device_of(x))
            mask = backend.bernoulli(self.rng if rng is None else rng, keep)
        x_tilde = x if mask is None else x * mask
        h = sigmoid(x_tilde @ p["W"] + p["c"])
        a = h @ self._decoder_weight() + p["b"]
        if self.loss == "cross_entropy":
            z = None
            loss = xp.sum(softplus(a) - x * a) / n
        else:
            z = sigmoid(a)
            loss = 0.5 * xp.sum((z - x) ** 2) / n
        rho_hat = None
        if self.sparsity > 0.0:
            rho_hat = xp.mean(h, axis=0)
            r = self.rho
            kl = r * xp.log(r / rho_hat) + (1.0 - r) * xp.log((1.0 - r) / (1.0 - rho_hat))
            loss = loss + self.sparsity * xp.sum(kl)
        self.cache = (x, mask, x_tilde, h, a, z, rho_hat)
        return loss

    def backward(self, dout: Any = 1.0) -> Any:
        """dL/dx (through the encoder and the target); fills ``grads`` for every parameter."""
        if self.cache is None:
            raise RuntimeError("Autoencoder: backward called before forward; call forward first")
        x, mask, x_tilde, h, a, z, rho_hat = self.cache
        xp = backend.namespace(x)
        n = x.shape[0]
        if self.loss == "cross_entropy":
            da = (sigmoid(a) - x) * (dout / n)             # ∂/∂a [softplus(a) − x a] = σ(a) − x
            dx_target = -a * (dout / n)
        else:
            da = (z - x) * z * (1.0 - z) * (dout / n)
            dx_target = -(z - x) * (dout / n)
        Wd = self._decoder_weight()
        dh = da @ Wd.T
        if rho_hat is not None:
            r = self.rho
            dh = dh + (self.sparsity * dout / n) * (-r / rho_hat + (1.0 - r) / (1.0 - rho_hat))
        du = dh * h * (1.0 - h)
        dW = x_tilde.T @ du                                   # encoder path
        if self.tied:
            dW = dW + da.T @ h                                # decoder path through W' = Wᵀ
        else:
            self.grads["W_dec"] = h.T @ da
        self.grads["W"] = dW
        self.grads["c"] = xp.sum(du, axis=0)
        self.grads["b"] = xp.sum(da, axis=0)
        dx = du @ self.params["W"].T
        if mask is not None:
            dx = dx * mask
        return dx + dx_target

    def loss_and_grads(self, x: Any, *, train: bool = True, mask: Any = None,
                       rng: backend.Seed = None) -> tuple[float, dict[str, Any]]:
        """(L, grads) for the batch x: forward then backward."""
        loss = self.forward(x, train, mask=mask, rng=rng)
        self.backward()
        return float(loss), dict(self.grads)

    # -- training --------------------------------------------------------------------------
    def fit(self, X: Any, epochs: int = 10, batch_size: int = 100, lr: float = 0.1, *, optimizer: Any = None,
            rng: backend.Seed = None, progress: bool = True, monitor_size: int = 1000,
            shuffle: bool = True) -> dict[str, list[float]]:
        """Mini-batch gradient descent on L (SGD with ``lr`` unless an ``optimizer`` is given).

        History, before training (epoch 0) and after each epoch, on the first ``monitor_size`` rows
        without noise: ``loss`` (L) and ``reconstruction_error`` (mean squared error per unit).
        """
        xp = self._check(X, "fit")
        gen = backend.default_rng(self.rng if rng is None else rng)
        batch_size = int(batch_size)
        if batch_size < 1 or int(epochs) != epochs or epochs < 0:
            raise ValueError(f"Autoencoder.fit: expected epochs >= 0 and batch_size >= 1, got {epochs}, {batch_size}")
        n = X.shape[0]
        X_mon = X[:min(n, int(monitor_size)), :]
        history: dict[str, list[float]] = {"epoch": [], "loss": [], "reconstruction_error": []}

        def record(epoch: int) -> dict[str, float]:
            row = {"loss": float(self.forward(X_mon, train=False)),
                   "reconstruction_error": self.reconstruction_error(X_mon)}
            history["epoch"].append(epoch)
            for key, value in row.items():
                history[key].append(value)
            return row

        record(0)
        from dlcore.energy.rbm import _progress

        bar = _progress(progress, int(epochs) * math.ceil(n / batch_size), "Autoencoder")
        try:
            for epoch in range(1, int(epochs) + 1):
                order = backend.permutation(gen, n, xp=xp) if shuffle else None
                for start in range(0, n, batch_size):
                    batch = X[start:min(start + batch_size, n), :] if order is None else \
                        xp.take(X, order[start:min(start + batch_size, n)], axis=0)
                    self.forward(batch, train=True, rng=gen)
                    self.backward()
                    if optimizer is not None:
                        optimizer.update(self.params, self.grads)
                    else:
                        for key, g in self.grads.items():
                            self.params[key] = self.params[key] - lr * g
                    if bar is not None:
                        bar.update(1)
                row = record(epoch)
                if bar is not None:
                    bar.set_postfix({key: f"{value:.4g}" for key, value in row.items()}, refresh=False)
        finally:
            if bar is not None:
                bar.close()
        self.cache = None
        self.history = history
        return history


class StackedAutoencoder:
    """Autoencoders stacked for greedy layer-wise pretraining (Bengio et al. 2007; Vincent et al. 2008).

    Layer l is trained to reconstruct the codes h^{l−1} of the layer below; ``to_mlp`` turns the
    encoders into Affine + Sigmoid layers with a fresh output layer for fine-tuning. Keyword
    arguments (tied, noise, sparsity, rho, loss) go to every :class:`Autoencoder`.
    """

    def __init__(self, layer_sizes: Sequence[int], *, rng: backend.Seed = None, dtype: Any = "float32",
                 **ae_kwargs: Any) -> None:
        sizes = check_layer_sizes("StackedAutoencoder", layer_sizes)
        gen = backend.default_rng(rng)
        self.layer_sizes = sizes
        self.autoencoders = [Autoencoder(sizes[i], sizes[i + 1], rng=gen, dtype=dtype, **ae_kwargs)
                             for i in range(len(sizes) - 1)]
        self.rng = gen
        self.histories: list[dict[str, list[float]]] = []

    def __len__(self) -> int:
        return len(self.autoencoders)

    def __repr__(self) -> str:
        return f"StackedAutoencoder({'-'.join(map(str, self.layer_sizes))})"

    def to(self, device: str | ModuleType) -> StackedAutoencoder:
        for ae in self.autoencoders:
            ae.to(device)
        return self

    def astype(self, dtype: Any) -> StackedAutoencoder:
        for ae in self.autoencoders:
            ae.astype(dtype)
        return self

    def pretrain(self, X: Any, epochs: int | Sequence[int] = 10, batch_size: int = 100,
                 lr: float | Sequence[float] = 0.1, *, optimizer: Any = None, rng: backend.Seed = None,
                 progress: bool = True) -> list[dict[str, list[float]]]:
        """Train each autoencoder on the codes of the one below; returns the per-layer histories."""
        n = len(self.autoencoders)
        epochs_l = per_layer("StackedAutoencoder", "epochs", epochs, n)
        lr_l = per_layer("StackedAutoencoder", "lr", lr, n)
        gen = backend.default_rng(self.rng if rng is None else rng)
        x = X
        self.histories = []
        for i, ae in enumerate(self.autoencoders):
            self.histories.append(ae.fit(x, epochs=epochs_l[i], batch_size=batch_size, lr=lr_l[i],
                                         optimizer=fresh_optimizer(optimizer), rng=gen, progress=progress))
            if i < n - 1:
                x = ae.encode(x)
        return self.histories

    def transform(self, X: Any) -> Any:
        """The top code h^L = enc_L(... enc_1(X))."""
        x = X
        for ae in self.autoencoders:
            x = ae.encode(x)
        return x

    def to_mlp(self, n_classes: int | None, *, rng: backend.Seed = None) -> Any:
        """A ``Sequential`` of Affine(W^l, c^l) + Sigmoid per encoder and a fresh Affine(n_top, n_classes)."""
        gen = backend.default_rng(self.rng if rng is None else rng)
        return mlp_from_weights([(ae.params["W"], ae.params["c"]) for ae in self.autoencoders], n_classes, rng=gen)
