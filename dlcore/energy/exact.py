"""Exact partition function, likelihood and gradient of tiny RBMs, by enumeration.

Enumerate the smaller layer and sum the other out analytically (an RBM's layers are
conditionally independent):

    enumerating h:  log Z = log Σ_h exp(cᵀh + Σ_i softplus(b_i + (hWᵀ)_i))
    enumerating v:  log Z = log Σ_v exp(−F(v))

so the cost is 2^min(n_v, n_h) rows (a Gaussian–Bernoulli RBM can only enumerate h). Above
:data:`MAX_EXACT_UNITS` enumerated units the functions refuse; use
:func:`dlcore.energy.ais.ais_log_partition` instead.

    log-likelihood:  (1/N) Σ_n log p(v_n) = −(1/N) Σ_n F(v_n) − log Z
    gradient of −log-likelihood:  ∂/∂W = −(⟨v hᵀ⟩_data − ⟨v hᵀ⟩_model), ∂/∂b = −(⟨v⟩_data − ⟨v⟩_model),
                                   ∂/∂c = −(⟨h⟩_data − ⟨h⟩_model),  with ⟨h⟩_data using p(h=1|v_n).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from dlcore import backend
from dlcore.nn.functional import logsumexp

__all__ = ["MAX_EXACT_UNITS", "log_partition", "log_likelihood", "exact_gradient", "model_expectations",
           "binary_states"]

#: Largest number of units exact enumeration runs over (2^20 ≈ 10^6 configurations).
MAX_EXACT_UNITS = 20
_CHUNK = 1 << 14


def binary_states(m: int, *, start: int = 0, stop: int | None = None, xp: Any = None, dtype: Any = "float32",
                  device: Any = None) -> Any:
    """Rows ``start .. stop−1`` of the 2^m binary vectors of length m (row r holds the bits of r; NumPy by default)."""
    xp = backend.resolve("cpu") if xp is None else xp
    stop = (1 << m) if stop is None else stop
    kw = {} if device is None else {"device": device}
    r = xp.arange(start, stop, dtype=xp.int64, **kw)
    shifts = xp.arange(m, dtype=xp.int64, **kw)
    bits = xp.bitwise_and(xp.bitwise_right_shift(xp.reshape(r, (-1, 1)), xp.reshape(shifts, (1, -1))), 1)
    return xp.astype(bits, getattr(xp, backend.dtype_name(dtype)))


def _side(rbm: Any, where: str, hint: str = "") -> str:
    """Which layer to enumerate: the smaller one the model allows; refuse above MAX_EXACT_UNITS."""
    sizes = {"visible": rbm.n_visible, "hidden": rbm.n_hidden}
    side = min(rbm._enumerable, key=lambda s: sizes[s])
    if sizes[side] > MAX_EXACT_UNITS:
        name = type(rbm).__name__
        layers = " or ".join(rbm._enumerable)
        raise ValueError(
            f"{name}.{where}: exact enumeration runs over 2^{sizes[side]} states of the {side} layer "
            f"({name} with {rbm.n_visible} visible and {rbm.n_hidden} hidden units), above the limit of "
            f"{MAX_EXACT_UNITS} {layers} units (2^{MAX_EXACT_UNITS} states). "
            + (hint or "Estimate log Z with annealed importance sampling instead: "
                       "rbm.ais_log_partition(n_betas=..., n_runs=...)")
        )
    return side


def _chunks(rbm: Any, side: str) -> Iterator[tuple[Any, Any]]:
    """(states, unnormalised log-probability of each state) over the enumerated layer, in chunks."""
    W = rbm.params["W"]
    xp = backend.namespace(W)
    m = rbm.n_visible if side == "visible" else rbm.n_hidden
    for start in range(0, 1 << m, _CHUNK):
        s = binary_states(m, start=start, stop=min(1 << m, start + _CHUNK), xp=xp, dtype=W.dtype,
                          device=backend.device_of(W))
        yield s, (-rbm._free_energy(s, xp) if side == "visible" else rbm._log_marginal_h(s))


def log_partition(rbm: Any) -> float:
    """Exact log Z of a tiny RBM (enumerating the smaller allowed layer, chunk by chunk)."""
    side = _side(rbm, "log_partition")
    xp = backend.namespace(rbm.params["W"])
    parts = [logsumexp(logp) for _, logp in _chunks(rbm, side)]
    return float(logsumexp(xp.stack(parts)))


def log_likelihood(rbm: Any, X: Any) -> float:
    """Exact mean log-likelihood (1/N) Σ_n log p(v_n) = −mean F(v_n) − log Z (a log density for real v)."""
    xp = rbm._check_data(X, "log_likelihood")
    _side(rbm, "log_likelihood")
    return float(-xp.mean(rbm._free_energy(X, xp))) - log_partition(rbm)


def model_expectations(rbm: Any) -> tuple[Any, Any, Any]:
    """(⟨v⟩_model, ⟨h⟩_model, ⟨v hᵀ⟩_model) under the model distribution, by enumeration."""
    side = _side(rbm, "model_expectations")
    xp = backend.namespace(rbm.params["W"])
    log_z = log_partition(rbm)
    ev = eh = evh = None
    for states, logp in _chunks(rbm, side):
        p = xp.exp(logp - log_z)
        if side == "hidden":   # E[v | h] in closed form, h enumerated
            v, h = rbm._mean_v(states), states
        else:                  # E[h | v] in closed form, v enumerated
            v, h = states, rbm._ph(states)
        cv, ch = p @ v, p @ h
        cvh = (v * xp.reshape(p, (-1, 1))).T @ h
        ev, eh, evh = (cv, ch, cvh) if ev is None else (ev + cv, eh + ch, evh + cvh)
    return ev, eh, evh


def exact_gradient(rbm: Any, X: Any) -> dict[str, Any]:
    """Exact gradient of the mean negative log-likelihood (same keys as ``rbm.params``).

    grads = −(data statistics − model statistics), the data side with h replaced by p(h=1|v_n).
    """
    xp = rbm._check_data(X, "exact_gradient")
    _side(rbm, "exact_gradient", "Estimate the gradient with rbm.cd_gradient(v, k) (CD-k or persistent CD) instead.")
    ev, eh, evh = model_expectations(rbm)
    ph = rbm._ph(X)
    n = X.shape[0]
    return {
        "W": evh - (X.T @ ph) * (1.0 / n),
        "b": ev - xp.mean(X, axis=0),
        "c": eh - xp.mean(ph, axis=0),
    }
