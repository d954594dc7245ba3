"""Gaussian–Bernoulli RBM for real-valued inputs, with unit-variance visible units.

    E(v, h)    = ½‖v − b‖² − cᵀh − vᵀWh             v ∈ ℝ^{n_v}, h ∈ {0,1}^{n_h}
    p(h_j=1|v) = σ(c_j + (vW)_j)                   p(v | h) = N(b + hWᵀ, I)
    F(v)       = ½‖v − b‖² − Σ_j softplus(c_j + (vW)_j)

σ = 1 for every visible unit, so standardise each input feature (zero mean, unit variance)
before training (Hinton's practical guide, §13.2). Summing v out analytically gives the
marginal of h used for the exact log Z of tiny models (only h can be enumerated):

    log ∫ exp(−E(v, h)) dv = cᵀh + ½‖b + hWᵀ‖² − ½‖b‖² + (n_v / 2) log 2π.

Training, gradients (of the negative log-likelihood) and the exact quantities are those of
:class:`~dlcore.energy.rbm.RBM`: ∂F/∂b = −(v − b) gives the same −(⟨v⟩_data − ⟨v⟩_model).
"""

from __future__ import annotations

import math
from typing import Any

from dlcore import backend
from dlcore.energy.rbm import RBM
from dlcore.nn.functional import softplus

__all__ = ["GaussianBernoulliRBM"]


class GaussianBernoulliRBM(RBM):
    """RBM with Gaussian visible units of unit variance: E(v, h) = ½‖v − b‖² − cᵀh − vᵀWh."""

    _enumerable = ("hidden",)
    _has_pseudo_likelihood = False

    def _check_data(self, v: Any, where: str, probabilities: bool = False) -> Any:
        return self._check(v, "v", self.n_visible, where)

    def _mean_v(self, h: Any) -> Any:
        return h @ self.params["W"].T + self.params["b"]

    def _sample_v(self, h: Any, rng: Any) -> Any:
        mean = self._mean_v(h)
        xp = backend.namespace(mean)
        return mean + backend.normal(rng, tuple(mean.shape), dtype=mean.dtype, xp=xp)

    def p_v_given_h(self, h: Any) -> Any:
        """Mean of p(v | h) = N(b + hWᵀ, I), shape (N, n_visible)."""
        return super().p_v_given_h(h)

    def energy(self, v: Any, h: Any) -> Any:
        """E(v, h) = ½‖v − b‖² − cᵀh − vᵀWh per row, shape (N,)."""
        xp = self._check(v, "v", self.n_visible, "energy")
        self._check(h, "h", self.n_hidden, "energy")
        if v.shape[0] != h.shape[0]:
            raise ValueError(f"{self._name}.energy: v has {v.shape[0]} rows but h has {h.shape[0]}")
        p = self.params
        return 0.5 * xp.sum((v - p["b"]) ** 2, axis=1) - (h @ p["c"]) - xp.sum((v @ p["W"]) * h, axis=1)

    def free_energy(self, v: Any) -> Any:
        """F(v) = ½‖v − b‖² − Σ_j softplus(c_j + (vW)_j) per row, shape (N,)."""
        return super().free_energy(v)

    def _free_energy(self, v: Any, xp: Any) -> Any:
        p = self.params
        return 0.5 * xp.sum((v - p["b"]) ** 2, axis=1) - xp.sum(softplus(v @ p["W"] + p["c"]), axis=1)

    def _log_marginal_h(self, h: Any) -> Any:
        xp = backend.namespace(h)
        p = self.params
        m = h @ p["W"].T + p["b"]
        return (h @ p["c"] + 0.5 * xp.sum(m * m, axis=1) - 0.5 * xp.sum(p["b"] * p["b"])
                + 0.5 * self.n_visible * math.log(2.0 * math.pi))

    def pseudo_likelihood(self, v: Any, rng: backend.Seed = None) -> float:
        raise NotImplementedError(f"{self._name}: the pseudo-likelihood is defined here for binary visible units only")

    def reconstruct(self, v: Any) -> Any:
        """Mean-field reconstruction E[v | h = p(h|v)] = b + p(h|v) Wᵀ."""
        return super().reconstruct(v)
