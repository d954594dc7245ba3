"""Local normalization of (N, C, H, W) feature maps: across channels (AlexNet) and over space (Jarrett et al.).

LocalResponseNorm (Krizhevsky, Sutskever & Hinton 2012, section 3.3), for each position:

    s_c = k + α Σ_{c' ∈ W(c)} x_{c'}²,     y_c = x_c · s_c^(-β),     W(c) = [c - ⌊n/2⌋, c + ⌊(n-1)/2⌋] ∩ [0, C)

    dL/dx_j = g_j s_j^(-β) - 2αβ x_j Σ_{c : j ∈ W(c)} g_c x_c s_c^(-β-1)          (g = dL/dy)

α multiplies the plain sum, as in the paper; PyTorch's LocalResponseNorm divides it by n first
(``alpha / size``), so ``LocalResponseNorm(n, alpha=a)`` here equals PyTorch's ``(n, alpha=a * n)``.

LocalContrastNorm (Jarrett, Kavukcuoglu, Ranzato & LeCun 2009; Pinto et al. 2008), per sample: with a
normalized window w over space (Gaussian or box, Σ w = 1) and the weighted local mean over the
window and all C channels,

    M(u)[h, w] = (1 / Z[h, w]) Σ_{p, q} w[p, q] (1/C) Σ_c u[c, h + p, w + q]      (zero padding, "same" size)

where Z[h, w] = Σ_{p, q} w[p, q] · [h + p, w + q inside the image] renormalizes at the borders,

    v = x - M(x)                                  (subtractive step, M broadcast over channels)
    σ[h, w] = sqrt(M(v²)[h, w])                   (local standard deviation)
    d = max(σ, mean_{h,w} σ, ε)                   (divisive step never amplifies flat regions)
    y = v / d                                     (d broadcast over channels)
"""

from __future__ import annotations

import math
from typing import Any

from dlcore import backend
from dlcore.nn.base import Layer
from dlcore.nn.conv import _Shape, check_image_batch
from dlcore.nn.functional import _check_dy

__all__ = ["LocalResponseNorm", "LocalContrastNorm"]


def _channel_window_sum(u: Any, before: int, after: int) -> Any:
    """out_c = Σ_{c' = c - before}^{c + after} u_{c'} over axis 1 (zeros outside [0, C)): one slice-add per offset."""
    xp = backend.namespace(u)
    n, c, h, w = u.shape
    padded = xp.zeros((n, c + before + after, h, w), dtype=u.dtype, device=backend.device_of(u))
    padded[:, before:before + c, :, :] = u
    out = padded[:, 0:c, :, :]
    for t in range(1, before + after + 1):
        out = out + padded[:, t:t + c, :, :]
    return out


class LocalResponseNorm(Layer):
    """y_c = x_c / (k + α Σ_{c' near c} x_{c'}²)^β across ``size`` neighbouring channels (AlexNet's n=5,
    α=1e-4, β=0.75, k=2). See the module docstring for the window and the gradient."""

    def __init__(self, size: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 2.0) -> None:
        super().__init__()
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise ValueError(f"LocalResponseNorm: expected size to be a positive int, got {size!r}")
        if k <= 0 or alpha < 0:
            raise ValueError(f"LocalResponseNorm: expected k > 0 and alpha >= 0, got k={k}, alpha={alpha}")
        self.size, self.alpha, self.beta, self.k = size, float(alpha), float(beta), float(k)
        self.x: Any = None
        self.s: Any = None
        self.y: Any = None

    def forward(self, x: Any) -> Any:
        check_image_batch("LocalResponseNorm", x)
        n = self.size
        self.x = x
        self.s = self.k + self.alpha * _channel_window_sum(x * x, n // 2, (n - 1) // 2)   # s_c
        self.y = x * self.s ** (-self.beta)
        return self.y

    def backward(self, dy: Any) -> Any:
        _check_dy("LocalResponseNorm", dy, self.y)
        backend.namespace(dy, self.y, where="LocalResponseNorm.backward")
        n = self.size
        u = dy * self.y / self.s                                   # g_c x_c s_c^(-β-1)
        back = _channel_window_sum(u, (n - 1) // 2, n // 2)        # Σ over the c whose window holds j
        return dy * self.s ** (-self.beta) - (2.0 * self.alpha * self.beta) * self.x * back

    def __repr__(self) -> str:
        return f"LocalResponseNorm(size={self.size}, alpha={self.alpha:g}, beta={self.beta:g}, k={self.k:g})"


def _window_1d(size: int, sigma: float, kind: str) -> list[float]:
    r = size // 2
    if kind == "box":
        raw = [1.0] * size
    else:
        raw = [math.exp(-0.5 * ((t - r) / sigma) ** 2) for t in range(size)]
    total = sum(raw)
    return [v / total for v in raw]


class LocalContrastNorm(Layer):
    """Subtractive then divisive normalization over a ``size`` x ``size`` window (module docstring).

    ``window``: 'gaussian' (standard deviation ``sigma``, default size / 4) or 'box'; ``size`` odd.
    ``eps`` keeps the divisor positive on constant images. The window is separable,
    w[p, q] = g[p] g[q], so each local mean is two 1-D passes of ``size`` slice-adds.
    """

    def __init__(self, size: int = 9, sigma: float | None = None, window: str = "gaussian", eps: float = 1e-4) -> None:
        super().__init__()
        if not isinstance(size, int) or isinstance(size, bool) or size < 1 or size % 2 == 0:
            raise ValueError(f"LocalContrastNorm: expected an odd positive window size, got {size!r}")
        if window not in ("gaussian", "box"):
            raise ValueError(f"LocalContrastNorm: expected window 'gaussian' or 'box', got {window!r}")
        sigma = size / 4.0 if sigma is None else float(sigma)
        if sigma <= 0 or eps <= 0:
            raise ValueError(f"LocalContrastNorm: expected sigma > 0 and eps > 0, got sigma={sigma}, eps={eps}")
        self.size, self.sigma, self.window, self.eps = size, sigma, window, float(eps)
        self.g = _window_1d(size, sigma, window)
        self.cache: Any = None
        self.dtype: Any = None

    # -- the local mean M and its adjoint ---------------------------------------------------
    def _smooth(self, m: Any) -> Any:
        """Σ_{p,q} g[p] g[q] m[:, h + p - r, w + q - r] (zero outside) for m of shape (N, H, W).

        The window is symmetric, so this zero-padded correlation is its own adjoint.
        """
        xp = backend.namespace(m)
        n, h, w = m.shape
        r = self.size // 2
        padded = xp.zeros((n, h + 2 * r, w), dtype=m.dtype, device=backend.device_of(m))
        padded[:, r:r + h, :] = m
        rows = sum((gp * padded[:, p:p + h, :] for p, gp in enumerate(self.g)), start=xp.zeros_like(m))
        padded = xp.zeros((n, h, w + 2 * r), dtype=m.dtype, device=backend.device_of(m))
        padded[:, :, r:r + w] = rows
        return sum((gq * padded[:, :, q:q + w] for q, gq in enumerate(self.g)), start=xp.zeros_like(m))

    def _mean(self, u: Any, z: Any) -> Any:
        """M(u) (N, H, W) of u (N, C, H, W)."""
        xp = backend.namespace(u)
        return self._smooth(xp.mean(u, axis=1)) / z

    def _mean_adjoint(self, a: Any, z: Any, channels: int) -> Any:
        """Mᵀ(a) (N, C, H, W) of a (N, H, W): <M(u), a> = <u, Mᵀ(a)>."""
        xp = backend.namespace(a)
        return xp.reshape(self._smooth(a / z) / float(channels), (a.shape[0], 1, a.shape[1], a.shape[2]))

    def forward(self, x: Any) -> Any:
        check_image_batch("LocalContrastNorm", x)
        xp = backend.namespace(x)
        n, c, h, w = x.shape
        z = self._smooth(xp.ones((1, h, w), dtype=x.dtype, device=backend.device_of(x)))       # Z[h, w]
        v = x - xp.reshape(self._mean(x, z), (n, 1, h, w))                                       # v = x - M(x)
        sigma = xp.sqrt(self._mean(v * v, z))                                                    # σ = sqrt(M(v²))
        c_mean = xp.mean(sigma, axis=(1, 2), keepdims=True)                                      # mean σ per sample
        d = xp.maximum(xp.maximum(sigma, c_mean), self.eps)
        self.cache = (v, sigma, c_mean, d, z)
        self.dtype = x.dtype
        return v / xp.reshape(d, (n, 1, h, w))

    def backward(self, dy: Any) -> Any:
        shape = None if self.cache is None else _Shape(tuple(self.cache[0].shape), self.dtype)
        _check_dy("LocalContrastNorm", dy, shape)
        xp = backend.namespace(dy)
        v, sigma, c_mean, d, z = self.cache
        n, c, h, w = v.shape
        d4 = xp.reshape(d, (n, 1, h, w))
        dv = dy / d4                                                        # through y = v / d, v direct
        dd = -xp.sum(dy * v, axis=1) / (d * d)                              # dL/dd, (N, H, W)
        dd = xp.where(d > self.eps, dd, 0.0)                                # ε is a constant
        sigma_wins = sigma >= c_mean
        dsigma = xp.where(sigma_wins, dd, 0.0)
        dc = xp.sum(xp.where(sigma_wins, 0.0, dd), axis=(1, 2), keepdims=True)
        dsigma = dsigma + dc / float(h * w)                                 # c = mean σ
        ds = xp.where(sigma > 0, dsigma / (2.0 * xp.where(sigma > 0, sigma, 1.0)), 0.0)   # σ = sqrt(s)
        dv = dv + 2.0 * v * self._mean_adjoint(ds, z, c)                    # s = M(v²)
        return dv - self._mean_adjoint(xp.sum(dv, axis=1), z, c)            # v = x - M(x)

    def __repr__(self) -> str:
        return (f"LocalContrastNorm(size={self.size}, sigma={self.sigma:g}, window={self.window!r}, "
                f"eps={self.eps:g})")
