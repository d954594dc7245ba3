"""Bernoulli–Bernoulli restricted Boltzmann machine (lecture notation).

    E(v, h)    = −bᵀv − cᵀh − vᵀWh                         v ∈ {0,1}^{n_v}, h ∈ {0,1}^{n_h}
    p(v, h)    = exp(−E(v, h)) / Z,   Z = Σ_{v,h} exp(−E(v, h))
    p(h_j=1|v) = σ(c_j + (vW)_j)          p(v_i=1|h) = σ(b_i + (hWᵀ)_i)
    F(v)       = −log Σ_h exp(−E(v, h)) = −bᵀv − Σ_j softplus(c_j + (vW)_j)

W has shape (n_visible, n_hidden), b is the visible bias, c the hidden bias; samples are rows.

Gradients follow the convention of every other dlcore layer: ``grads`` hold the gradient of the
*negative* log-likelihood −(1/N) Σ_n log p(v_n), so ``optimizer.update(rbm.params, grads)``
does gradient descent, and

    ∂(−log p)/∂W = −(⟨v hᵀ⟩_data − ⟨v hᵀ⟩_model)      (same with v for b and h for c),

where CD-k estimates ⟨·⟩_model from k Gibbs steps started at the data, and persistent CD
(Tieleman 2008) from chains kept alive across parameter updates.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from dlcore import backend
from dlcore.nn import init as initializers
from dlcore.nn.base import Layer, check_array, check_dtype_match
from dlcore.nn.functional import softplus

__all__ = ["RBM"]

Monitor = bool | Callable[["RBM", int], dict[str, float]]


class RBM(Layer):
    """Bernoulli–Bernoulli RBM, E(v, h) = −bᵀv − cᵀh − vᵀWh; W ~ N(0, 0.01²), b = c = 0 initially.

    ``rng`` seeds the model's own generator, used for the weights and whenever a sampling method
    is called without its own ``rng``. ``forward(v)`` is :meth:`transform` (the features
    p(h=1|v)); an RBM has no ``backward``: it is trained with :meth:`cd_gradient` / :meth:`fit`.
    """

    #: The layers exact enumeration may run over (a Gaussian RBM can enumerate only h).
    _enumerable = ("visible", "hidden")
    #: Binary visible units have a pseudo-likelihood (recorded by the fit monitor).
    _has_pseudo_likelihood = True

    def __init__(self, n_visible: int, n_hidden: int, *, rng: backend.Seed = None, dtype: Any = "float32",
                 init_std: float = 0.01) -> None:
        super().__init__()
        name = type(self).__name__
        if int(n_visible) != n_visible or int(n_hidden) != n_hidden or n_visible <= 0 or n_hidden <= 0:
            raise ValueError(f"{name}: expected positive unit counts, got n_visible={n_visible}, n_hidden={n_hidden}")
        self.n_visible, self.n_hidden = int(n_visible), int(n_hidden)
        self.rng = backend.default_rng(rng)
        self.params = {
            "W": initializers.normal(init_std)((self.n_visible, self.n_hidden), self.rng, dtype),
            "b": initializers.zeros((self.n_visible,), dtype=dtype),
            "c": initializers.zeros((self.n_hidden,), dtype=dtype),
        }
        #: Persistent-CD fantasy particles (visible states, one row per chain) and their hidden samples.
        self.persistent_chain: Any = None
        self.persistent_hidden: Any = None
        self.history: dict[str, list[float]] = {}

    # -- state that moves with the model ---------------------------------------------------
    def buffers(self) -> dict[str, Any]:
        return {k: v for k, v in (("persistent_chain", self.persistent_chain),
                                  ("persistent_hidden", self.persistent_hidden)) if v is not None}

    def reset_chains(self) -> None:
        """Forget the persistent chains (the next persistent update starts them at its batch)."""
        self.persistent_chain = self.persistent_hidden = None

    # -- input checks ----------------------------------------------------------------------
    @property
    def _name(self) -> str:
        return type(self).__name__

    def _gen(self, rng: backend.Seed) -> Any:
        return self.rng if rng is None else backend.default_rng(rng)

    def _check(self, x: Any, name: str, width: int, where: str) -> Any:
        check_array(f"{self._name}.{where}", name, x, ndim=2, last_dim=width)
        check_dtype_match(f"{self._name}.{where}", x, self.params)
        return backend.namespace(x, self.params["W"], where=f"{self._name}.{where}")

    def _check_data(self, v: Any, where: str, probabilities: bool = False) -> Any:
        """Visible data for training/likelihoods: binary, or in [0, 1] with ``probabilities=True``."""
        xp = self._check(v, "v", self.n_visible, where)
        if _is_binary(v, xp):
            return xp
        lo, hi = float(xp.min(v)), float(xp.max(v))
        if probabilities and lo >= 0.0 and hi <= 1.0:
            return xp
        want = "values in [0, 1]" if probabilities else "binary data (only 0 and 1)"
        hint = ("" if probabilities else
                "; binarise it first (e.g. (x > 0.5) cast to float) or pass probabilities=True to treat values "
                "in [0, 1] as Bernoulli means (mean-field data, as in DBN pretraining)")
        raise ValueError(f"{self._name}.{where}: expected {want}, got values from {lo:.4g} to {hi:.4g}{hint}. "
                         "For real-valued inputs use GaussianBernoulliRBM.")

    # -- the model -------------------------------------------------------------------------
    def _ph(self, v: Any) -> Any:
        z = backend.matmul(v, self.params["W"], own_threads=False)
        z += self.params["c"]
        return backend.sigmoid_(z)                       # σ(vW + c), in place on the fresh product

    def _mean_v(self, h: Any) -> Any:
        z = backend.matmul(h, self.params["W"].T, own_threads=False)
        z += self.params["b"]
        return backend.sigmoid_(z)                       # σ(hWᵀ + b)

    def _sample_v(self, h: Any, rng: Any) -> Any:
        return backend.bernoulli(rng, self._mean_v(h))

    def energy(self, v: Any, h: Any) -> Any:
        """E(v, h) = −bᵀv − cᵀh − vᵀWh per row, shape (N,)."""
        xp = self._check(v, "v", self.n_visible, "energy")
        self._check(h, "h", self.n_hidden, "energy")
        if v.shape[0] != h.shape[0]:
            raise ValueError(f"{self._name}.energy: v has {v.shape[0]} rows but h has {h.shape[0]}")
        p = self.params
        return -(v @ p["b"]) - (h @ p["c"]) - xp.sum((v @ p["W"]) * h, axis=1)

    def p_h_given_v(self, v: Any) -> Any:
        """p(h_j = 1 | v) = σ(c_j + (vW)_j), shape (N, n_hidden)."""
        self._check(v, "v", self.n_visible, "p_h_given_v")
        return self._ph(v)

    def p_v_given_h(self, h: Any) -> Any:
        """p(v_i = 1 | h) = σ(b_i + (hWᵀ)_i), shape (N, n_visible)."""
        self._check(h, "h", self.n_hidden, "p_v_given_h")
        return self._mean_v(h)

    def sample_h(self, v: Any, rng: backend.Seed = None) -> Any:
        """A binary sample h ~ p(h | v)."""
        return backend.bernoulli(self._gen(rng), self.p_h_given_v(v))

    def sample_v(self, h: Any, rng: backend.Seed = None) -> Any:
        """A sample v ~ p(v | h) (binary here; Gaussian in :class:`GaussianBernoulliRBM`)."""
        self._check(h, "h", self.n_hidden, "sample_v")
        return self._sample_v(h, self._gen(rng))

    def free_energy(self, v: Any) -> Any:
        """F(v) = −bᵀv − Σ_j softplus(c_j + (vW)_j) per row, shape (N,); p(v) = exp(−F(v)) / Z."""
        xp = self._check(v, "v", self.n_visible, "free_energy")
        return self._free_energy(v, xp)

    def _free_energy(self, v: Any, xp: Any) -> Any:
        p = self.params
        return -(v @ p["b"]) - xp.sum(softplus(v @ p["W"] + p["c"]), axis=1)

    def gibbs(self, v: Any, k: int = 1, rng: backend.Seed = None) -> Any:
        """k steps of block Gibbs sampling v → h ~ p(h|v) → v ~ p(v|h); returns the last v."""
        self._check(v, "v", self.n_visible, "gibbs")
        gen = self._gen(rng)
        for _ in range(self._check_k(k)):
            v = self._sample_v(backend.bernoulli(gen, self._ph(v)), gen)
        return v

    def transform(self, v: Any) -> Any:
        """Features p(h = 1 | v) (the hidden probabilities)."""
        return self.p_h_given_v(v)

    def forward(self, v: Any) -> Any:
        return self.transform(v)

    def backward(self, dy: Any) -> Any:
        raise NotImplementedError(f"{self._name} has no backward: train it with cd_gradient/fit, or turn it into an "
                                  "Affine + Sigmoid pair (DBN.to_mlp) for backpropagation")

    def reconstruct(self, v: Any) -> Any:
        """Mean-field reconstruction E[v | h = p(h|v)]: σ(b + p(h|v) Wᵀ) for binary units."""
        self._check(v, "v", self.n_visible, "reconstruct")
        return self._mean_v(self._ph(v))

    def reconstruction_error(self, v: Any) -> float:
        """Mean squared error per unit between v and :meth:`reconstruct` (v)."""
        xp = backend.namespace(v)
        return float(xp.mean((v - self.reconstruct(v)) ** 2))

    def pseudo_likelihood(self, v: Any, rng: backend.Seed = None) -> float:
        """Stochastic log pseudo-likelihood, mean over rows (as scikit-learn's ``score_samples``).

        log PL(v) = Σ_i log p(v_i | v_{−i}) ≈ n_v · log σ(F(ṽ) − F(v)), with ṽ = v with one random unit flipped.
        """
        xp = self._check_data(v, "pseudo_likelihood")
        gen = self._gen(rng)
        n = v.shape[0]
        flip = backend.integers(gen, 0, self.n_visible, n, xp=xp)
        cols = xp.arange(self.n_visible, device=backend.device_of(v))
        mask = xp.astype(xp.reshape(flip, (n, 1)) == xp.reshape(cols, (1, -1)), v.dtype)
        v_flip = v + mask * (1.0 - 2.0 * v)
        delta = self._free_energy(v_flip, xp) - self._free_energy(v, xp)
        return float(self.n_visible * xp.mean(-softplus(-delta)))

    # -- learning --------------------------------------------------------------------------
    def _check_k(self, k: int) -> int:
        if int(k) != k or k < 1:
            raise ValueError(f"{self._name}: expected k >= 1 Gibbs steps, got {k!r}")
        return int(k)

    def cd_gradient(self, v: Any, k: int = 1, persistent: bool | Any = None, rng: backend.Seed = None, *,
                    probabilities: bool = False) -> dict[str, Any]:
        """CD-k or persistent-CD estimate of the gradient of the negative log-likelihood (mean over the batch).

            grads["W"] = −(v₀ᵀ p(h|v₀) / N − v_kᵀ p(h|v_k) / M),  grads["b"] = −(mean v₀ − mean v_k),
            grads["c"] = −(mean p(h|v₀) − mean p(h|v_k))

        ``persistent``: None/False: CD-k, the chain starts at the batch. True: persistent CD with the
        chains in :attr:`persistent_chain` (started at the first batch; their number M stays fixed).
        An array of visible states: the chains start there. In the persistent cases the chains'
        final states are stored back in :attr:`persistent_chain` (and their last hidden sample in
        :attr:`persistent_hidden`, from which the next update continues with v ~ p(v | h): a persistent
        step costs one matrix product less, and that h was drawn under the parameters before the update,
        as in scikit-learn's BernoulliRBM). Returns ``grads`` (same keys as ``params``),
        also stored in ``self.grads``. Apply with ``optimizer.update(rbm.params, grads)``.
        """
        self._check_data(v, "cd_gradient", probabilities)
        k = self._check_k(k)
        if persistent is not None and not isinstance(persistent, bool):
            self._check(persistent, "persistent", self.n_visible, "cd_gradient")
        grads = self._cd_step(v, k, persistent, self._gen(rng))
        self.grads = grads
        return grads

    def _cd_step(self, v0: Any, k: int, persistent: Any, gen: Any) -> dict[str, Any]:
        """One CD/PCD gradient (no input checks; ``fit`` calls this directly).

        Computed with as few passes as the equations allow: when the chain continues from its stored
        hidden sample, p(h|v₀) is not needed before the chain's last v_k, so p(h|v₀) and p(h|v_k) come
        from one product [v₀; v_k] W; and the weight gradient is one product

            dW = [v₀; v_k]ᵀ ([p(h|v₀); p(h|v_k)] ⊙ s),   s = −1/N on the rows of v₀, +1/M on those of v_k,

        the same sum as v_kᵀ p(h|v_k) / M − v₀ᵀ p(h|v₀) / N (up to round-off) in one pass over W's shape.
        The random draws happen in the same order as in the plain loop, so a seed gives the same chain.
        """
        xp = backend.namespace(v0)
        keep = persistent is not None and persistent is not False
        continued = persistent is True and self.persistent_hidden is not None
        ph0 = None if continued else self._ph(v0)
        if continued:
            h = self.persistent_hidden
        elif persistent is True and self.persistent_chain is not None:
            h = backend.bernoulli(gen, self._ph(self.persistent_chain))
        elif keep and persistent is not True:
            h = backend.bernoulli(gen, self._ph(persistent))
        else:
            h = backend.bernoulli(gen, ph0)
        n0 = v0.shape[0]
        both = None
        for step in range(k):
            vk = self._sample_v(h, gen)
            if ph0 is None and step == k - 1:            # the last step: p(h|v₀) and p(h|v_k) together
                both = xp.concat([v0, vk], axis=0)
                p_both = self._ph(both)
                ph0, phk = p_both[:n0, :], p_both[n0:, :]
            else:
                phk = self._ph(vk)
            if keep or step < k - 1:
                h = backend.bernoulli(gen, phk)
        if keep:
            self.persistent_chain, self.persistent_hidden = vk, h
        nk = vk.shape[0]
        if both is None:
            both, p_both = xp.concat([v0, vk], axis=0), xp.concat([ph0, phk], axis=0)
        dev = backend.device_of(v0)
        sign = xp.concat([xp.full((n0, 1), -1.0 / n0, dtype=v0.dtype, device=dev),
                          xp.full((nk, 1), 1.0 / nk, dtype=v0.dtype, device=dev)], axis=0)
        return {
            "W": backend.matmul(both.T, p_both * sign, own_threads=False),
            "b": xp.mean(vk, axis=0) - xp.mean(v0, axis=0),
            "c": xp.mean(phk, axis=0) - xp.mean(ph0, axis=0),
        }

    def fit(self, X: Any, epochs: int = 10, batch_size: int = 100, lr: float = 0.1, k: int = 1,
            persistent: bool = False, *, optimizer: Any = None, rng: backend.Seed = None, progress: bool = True,
            monitor: Monitor = True, monitor_size: int = 1000, shuffle: bool = True,
            probabilities: bool = False) -> dict[str, list[float]]:
        """Train by CD-k (or persistent CD) on the rows of ``X``; returns the per-epoch history.

        Each mini-batch: grads = :meth:`cd_gradient`, then ``optimizer.update(params, grads)``, or
        plain gradient descent θ ← θ − lr · grads when ``optimizer`` is None (``lr`` is ignored
        otherwise). ``persistent=True`` keeps one chain per batch row alive across updates (and
        across calls of ``fit``, until :meth:`reset_chains`).

        ``monitor=True`` records, before training (epoch 0) and after each epoch, on the first
        ``monitor_size`` rows: ``reconstruction_error`` (:meth:`reconstruction_error`) and, for
        binary data, ``pseudo_likelihood`` (:meth:`pseudo_likelihood`). A callable
        ``monitor(rbm, epoch) -> dict`` adds its own values as well. ``progress`` shows a tqdm bar.
        """
        xp = self._check_data(X, "fit", probabilities)
        gen = self._gen(rng)
        batch_size = int(batch_size)
        if batch_size < 1 or int(epochs) != epochs or epochs < 0:
            raise ValueError(f"{self._name}.fit: expected epochs >= 0 and batch_size >= 1, got {epochs}, {batch_size}")
        k = self._check_k(k)
        n = X.shape[0]
        X_mon = X[:min(n, int(monitor_size)), :]
        binary = _is_binary(X_mon, xp)
        # the monitor draws from its own generator, so monitoring never changes the trained model
        monitor_gen = backend.default_rng(int(gen.integers(2**63)))
        history: dict[str, list[float]] = {"epoch": []}

        def record(epoch: int) -> dict[str, float]:
            row: dict[str, float] = {}
            if monitor:
                row["reconstruction_error"] = self.reconstruction_error(X_mon)
                if binary and self._has_pseudo_likelihood:
                    row["pseudo_likelihood"] = self.pseudo_likelihood(X_mon, monitor_gen)
            if callable(monitor):
                row.update(monitor(self, epoch))
            history["epoch"].append(epoch)
            for key, value in row.items():
                history.setdefault(key, []).append(float(value))
            return row

        record(0)
        bar = _progress(progress, int(epochs) * math.ceil(n / batch_size), self._name)
        try:
            for epoch in range(1, int(epochs) + 1):
                order = backend.permutation(gen, n, xp=xp) if shuffle else None
                for start in range(0, n, batch_size):
                    if order is None:
                        batch = X[start:min(start + batch_size, n), :]
                    else:
                        batch = xp.take(X, order[start:min(start + batch_size, n)], axis=0)
                    grads = self._cd_step(batch, k, bool(persistent), gen)
                    self._apply(grads, lr, optimizer)
                    if bar is not None:
                        bar.update(1)
                row = record(epoch)
                if bar is not None and row:
                    bar.set_postfix({key: f"{value:.4g}" for key, value in row.items()}, refresh=False)
        finally:
            if bar is not None:
                bar.close()
        self.grads = {}
        self.history = history
        return history

    def _apply(self, grads: dict[str, Any], lr: float, optimizer: Any) -> None:
        if optimizer is not None:
            optimizer.update(self.params, grads)
            return
        for key, g in grads.items():   # in place, as the optimizers do: θ ← θ − lr g in one fused pass
            self.params[key] = backend.add_scaled(self.params[key], -lr, g)

    # -- exact quantities (tiny models) and AIS (real sizes) --------------------------------
    def log_partition(self) -> float:
        """Exact log Z by enumerating the smaller layer (see :func:`dlcore.energy.exact.log_partition`)."""
        from dlcore.energy.exact import log_partition

        return log_partition(self)

    def log_likelihood(self, X: Any) -> float:
        """Exact mean log-likelihood (1/N) Σ_n log p(v_n) = −mean F(v_n) − log Z (tiny models only)."""
        from dlcore.energy.exact import log_likelihood

        return log_likelihood(self, X)

    def exact_gradient(self, X: Any) -> dict[str, Any]:
        """Exact gradient of the mean negative log-likelihood, by enumeration (tiny models only)."""
        from dlcore.energy.exact import exact_gradient

        return exact_gradient(self, X)

    def ais_log_partition(self, n_betas: int = 1000, n_runs: int = 100, rng: backend.Seed = None,
                          **kwargs: Any) -> float:
        """Annealed-importance-sampling estimate of log Z (see :func:`dlcore.energy.ais.ais_log_partition`)."""
        from dlcore.energy.ais import ais_log_partition

        return ais_log_partition(self, n_betas=n_betas, n_runs=n_runs, rng=rng, **kwargs)

    # -- hooks for exact enumeration --------------------------------------------------------
    def _log_marginal_h(self, h: Any) -> Any:
        """log Σ_v exp(−E(v, h)) = cᵀh + Σ_i softplus(b_i + (hWᵀ)_i), per row of h."""
        xp = backend.namespace(h)
        p = self.params
        return h @ p["c"] + xp.sum(softplus(h @ p["W"].T + p["b"]), axis=1)

    def __repr__(self) -> str:
        return f"{self._name}(n_visible={self.n_visible}, n_hidden={self.n_hidden}, device={self.device})"


def _is_binary(v: Any, xp: Any, rows: int = 2048) -> bool:
    """All entries 0 or 1? Checked in row blocks, so the temporaries stay small for a large data set."""
    n = v.shape[0]
    return all(bool(xp.all((v[i:min(i + rows, n), ...] == 0.0) | (v[i:min(i + rows, n), ...] == 1.0)))
               for i in range(0, n, rows))


def _progress(progress: bool, total: int, desc: str) -> Any:
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="batch", leave=False)
