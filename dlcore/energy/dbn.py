"""Deep belief network: a stack of RBMs trained greedily, one layer at a time (Hinton et al. 2006).

    layer 1:  RBM(v, h¹) trained on the data X
    layer l:  RBM(h^{l−1}, h^l) trained on p(h^{l−1} = 1 | ...) of the layer below (mean-field up-pass)

Generation: Gibbs sampling in the top RBM (an undirected associative memory), then one
top-down pass through the lower RBMs' p(v | h) (a directed sigmoid belief net). For
classification, the stack becomes an MLP of Affine + Sigmoid layers (W^l, c^l) with a fresh
output layer, fine-tuned by backpropagation.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType
from typing import Any

from dlcore import backend
from dlcore.energy.gaussian import GaussianBernoulliRBM
from dlcore.energy.rbm import RBM
from dlcore.energy.stacking import check_layer_sizes, fresh_optimizer, mlp_from_weights, per_layer

__all__ = ["DBN"]


class DBN:
    """A stack of RBMs with sizes ``layer_sizes`` = (n_visible, n_h1, n_h2, ...).

    ``visible="gaussian"`` makes the first RBM a :class:`GaussianBernoulliRBM` (standardised
    real inputs); the others are Bernoulli–Bernoulli.
    """

    def __init__(self, layer_sizes: Sequence[int], *, rng: backend.Seed = None, dtype: Any = "float32",
                 visible: str = "binary") -> None:
        sizes = check_layer_sizes("DBN", layer_sizes)
        if visible not in ("binary", "gaussian"):
            raise ValueError(f"DBN: expected visible='binary' or 'gaussian', got {visible!r}")
        gen = backend.default_rng(rng)
        first = GaussianBernoulliRBM if visible == "gaussian" else RBM
        self.layer_sizes = sizes
        self.rbms: list[RBM] = [(first if i == 0 else RBM)(sizes[i], sizes[i + 1], rng=gen, dtype=dtype)
                                for i in range(len(sizes) - 1)]
        self.rng = gen
        self.histories: list[dict[str, list[float]]] = []

    def __len__(self) -> int:
        return len(self.rbms)

    def __repr__(self) -> str:
        return f"DBN({'-'.join(map(str, self.layer_sizes))}, device={self.rbms[0].device})"

    def to(self, device: str | ModuleType) -> DBN:
        for rbm in self.rbms:
            rbm.to(device)
        return self

    def astype(self, dtype: Any) -> DBN:
        for rbm in self.rbms:
            rbm.astype(dtype)
        return self

    def pretrain(self, X: Any, epochs: int | Sequence[int] = 10, batch_size: int = 100,
                 lr: float | Sequence[float] = 0.1, k: int = 1, persistent: bool = False, *, optimizer: Any = None,
                 rng: backend.Seed = None, progress: bool = True, monitor: bool = True,
                 probabilities: bool = False) -> list[dict[str, list[float]]]:
        """Greedy layer-wise pretraining: ``RBM.fit`` on X, then on each layer's hidden probabilities.

        ``epochs`` and ``lr`` may be given per layer (lists). ``optimizer``: a factory (or an instance,
        copied) giving each layer its own optimizer. ``probabilities=True`` accepts X in [0, 1] as
        Bernoulli means (the upper layers always train on probabilities). Returns (and keeps in
        ``self.histories``) each layer's history; ``reconstruction_error`` at epoch 0 is the error
        before that layer's training.
        """
        n = len(self.rbms)
        epochs_l, lr_l = per_layer("DBN", "epochs", epochs, n), per_layer("DBN", "lr", lr, n)
        gen = backend.default_rng(self.rng if rng is None else rng)
        x = X
        self.histories = []
        for i, rbm in enumerate(self.rbms):
            hist = rbm.fit(x, epochs=epochs_l[i], batch_size=batch_size, lr=lr_l[i], k=k, persistent=persistent,
                           optimizer=fresh_optimizer(optimizer), rng=gen, progress=progress, monitor=monitor,
                           probabilities=probabilities or i > 0)
            self.histories.append(hist)
            if i < n - 1:
                x = rbm.transform(x)
        return self.histories

    def up_pass(self, X: Any, *, all_layers: bool = False) -> Any:
        """Mean-field up-pass h^l = σ(c^l + h^{l−1} W^l); the top layer's probabilities (or every layer's)."""
        outs = []
        x = X
        for rbm in self.rbms:
            x = rbm.transform(x)
            outs.append(x)
        return outs if all_layers else x

    transform = up_pass

    def sample(self, n: int, gibbs_steps: int = 1000, rng: backend.Seed = None, *, init: Any = None) -> Any:
        """``n`` samples of the visible layer: ``gibbs_steps`` Gibbs steps in the top RBM, then a down-pass.

        The top chain starts at random binary states (or at the up-pass of the data rows ``init``);
        the down-pass samples each hidden layer from p(h^{l−1} | h^l) and returns the visible layer's
        probabilities p(v = 1 | h¹) (its mean for Gaussian visible units), shape (n, n_visible).
        """
        gen = backend.default_rng(self.rng if rng is None else rng)
        top = self.rbms[-1]
        xp = backend.namespace(top.params["W"])
        if init is not None:
            x = init
            for rbm in self.rbms[:-1]:
                x = rbm.transform(x)
            v = backend.bernoulli(gen, x)
        else:
            half = xp.full((int(n), top.n_visible), 0.5, dtype=top.params["W"].dtype,
                           device=backend.device_of(top.params["W"]))
            v = backend.bernoulli(gen, half)
        if gibbs_steps > 0:
            v = top.gibbs(v, gibbs_steps, gen)
        for i in range(len(self.rbms) - 2, -1, -1):
            mean = self.rbms[i].p_v_given_h(v)
            v = mean if i == 0 else backend.bernoulli(gen, mean)
        return v

    def to_mlp(self, n_classes: int | None, *, rng: backend.Seed = None, pretrained: bool = True) -> Any:
        """A ``Sequential`` of Affine(W^l, c^l) + Sigmoid per RBM and a fresh Affine(n_top, n_classes).

        Train it with ``SoftmaxCrossEntropy`` (discriminative fine-tuning). ``pretrained=False`` gives the
        same architecture with random (Xavier) weights, for the comparison the chapter makes.
        """
        gen = backend.default_rng(self.rng if rng is None else rng)
        if not pretrained:
            from dlcore.nn import init as initializers

            W0 = self.rbms[0].params["W"]
            xp = backend.namespace(W0)
            weights = [(initializers.xavier_normal(tuple(r.params["W"].shape), gen, W0.dtype, xp=xp),
                        xp.zeros_like(r.params["c"])) for r in self.rbms]
            return mlp_from_weights(weights, n_classes, rng=gen)
        return mlp_from_weights([(r.params["W"], r.params["c"]) for r in self.rbms], n_classes, rng=gen)
