"""Annealed importance sampling of an RBM's log partition function (Salakhutdinov & Murray 2008).

Anneal from a base-rate model A (W = 0, visible bias b_A, no hidden coupling) to the RBM B through

    log p*_β(v) = (1 − β) b_Aᵀv + β bᵀv + Σ_j softplus(β (c_j + (vW)_j)),   0 = β_0 < β_1 < ... < β_K = 1,

so that p*_0(v) = 2^{n_h} exp(b_Aᵀv) (log Z_0 = Σ_i softplus(b_A,i) + n_h log 2) and p*_1(v) = exp(−F(v)).
Each run draws v_1 ~ p_0, then for k = 1..K adds log p*_k(v_k) − log p*_{k−1}(v_k) to its log weight
and moves v_k → v_{k+1} by one Gibbs step that leaves p_k invariant
(h ~ σ(β_k (c + vW)), v ~ σ((1 − β_k) b_A + β_k (b + hWᵀ))). Then

    Z_B / Z_0 ≈ (1/R) Σ_r w_r,    log Ẑ_B = log Z_0 + logsumexp(log w) − log R

(unbiased for Z, so log Ẑ tends to underestimate log Z slightly; more betas shrink the variance).
"""

from __future__ import annotations

import math
from typing import Any

from dlcore import backend
from dlcore.nn.functional import logsumexp, sigmoid, softplus

__all__ = ["ais_log_partition", "base_rate_bias"]


def base_rate_bias(X: Any, eps: float = 1e-3) -> Any:
    """Base-rate visible biases b_A,i = log(p_i / (1 − p_i)), p_i = mean_n X_ni clipped to [eps, 1 − eps]."""
    xp = backend.namespace(X)
    p = xp.clip(xp.mean(X, axis=0), eps, 1.0 - eps)
    return xp.log(p) - xp.log1p(-p)


def ais_log_partition(rbm: Any, n_betas: int = 1000, n_runs: int = 100, rng: backend.Seed = None, *,
                      betas: Any = None, data: Any = None, base_bias: Any = None,
                      return_log_weights: bool = False) -> float | tuple[float, Any]:
    """AIS estimate of log Z for a Bernoulli–Bernoulli RBM (any size).

    ``betas``: the schedule (increasing from 0 to 1; default ``n_betas`` evenly spaced values).
    The base model's visible bias is ``base_bias`` if given, else the base rates of ``data``
    (Salakhutdinov & Murray's choice), else the RBM's own b. ``n_runs`` independent runs go in
    parallel as rows. With ``return_log_weights`` returns ``(log Z, log w)`` (log w: one per run).
    """
    name = f"{type(rbm).__name__}.ais_log_partition"
    if not getattr(rbm, "_has_pseudo_likelihood", False):
        raise NotImplementedError(f"{name}: AIS is implemented for Bernoulli–Bernoulli RBMs only")
    p = rbm.params
    W, b, c = p["W"], p["b"], p["c"]
    xp = backend.namespace(W)
    if betas is None:
        if int(n_betas) != n_betas or n_betas < 2:
            raise ValueError(f"{name}: expected n_betas >= 2, got {n_betas!r}")
        betas = [k / (n_betas - 1) for k in range(int(n_betas))]
    betas = [float(x) for x in backend.to_numpy(betas).ravel()] if hasattr(betas, "shape") else list(betas)
    if betas[0] != 0.0 or betas[-1] != 1.0 or any(b1 <= b0 for b0, b1 in zip(betas, betas[1:], strict=False)):
        raise ValueError(f"{name}: expected an increasing schedule of betas from 0 to 1")
    if int(n_runs) != n_runs or n_runs < 1:
        raise ValueError(f"{name}: expected n_runs >= 1, got {n_runs!r}")
    if base_bias is not None:
        b_a = base_bias
    elif data is not None:
        rbm._check_data(data, "ais_log_partition", probabilities=True)
        b_a = base_rate_bias(data)
    else:
        b_a = b
    gen = backend.default_rng(rbm.rng if rng is None else rng)
    log_z0 = float(xp.sum(softplus(b_a))) + rbm.n_hidden * math.log(2.0)

    v = backend.bernoulli(gen, xp.broadcast_to(xp.reshape(sigmoid(b_a), (1, -1)), (int(n_runs), rbm.n_visible)))
    log_w = xp.zeros((int(n_runs),), dtype=W.dtype, device=backend.device_of(W))
    db = b - b_a
    for k in range(1, len(betas)):
        beta, prev = betas[k], betas[k - 1]
        x = v @ W + c
        log_w = log_w + (beta - prev) * (v @ db) + xp.sum(softplus(beta * x) - softplus(prev * x), axis=1)
        if k < len(betas) - 1:   # a Gibbs step that leaves p_k invariant
            h = backend.bernoulli(gen, sigmoid(beta * x))
            v = backend.bernoulli(gen, sigmoid((1.0 - beta) * b_a + beta * (h @ W.T + b)))
    log_z = log_z0 + float(logsumexp(log_w)) - math.log(int(n_runs))
    return (log_z, log_w) if return_log_weights else log_z

