"""Small seeded 2-D data sets for the first chapters: logic gates, blobs, XOR, moons, circles, spirals.

Every function returns ``(X, t)`` with X float32 of shape (N, 2) and t int64 class
indices of shape (N,), on ``device`` ('cpu' by default). Samples come in a seeded
random order (so mini-batches mix the classes); the same seed gives the same set.
"""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any

import numpy as np

from dlcore import backend

__all__ = ["LOGIC_GATES", "logic_gate", "blobs", "linearly_separable", "xor", "moons", "circles", "spirals"]

#: Truth tables over the inputs (x1, x2) = (0,0), (0,1), (1,0), (1,1).
LOGIC_GATES: dict[str, tuple[int, int, int, int]] = {
    "AND": (0, 0, 0, 1),
    "OR": (0, 1, 1, 1),
    "NAND": (1, 1, 1, 0),
    "NOR": (1, 0, 0, 0),
    "XOR": (0, 1, 1, 0),
    "XNOR": (1, 0, 0, 1),
}
_CORNERS = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64)


def _out(x: np.ndarray, t: np.ndarray, rng: np.random.Generator | None, device: str | ModuleType,
         ) -> tuple[Any, Any]:
    if rng is not None:
        order = rng.permutation(x.shape[0])
        x, t = x[order], t[order]
    x, t = x.astype(np.float32), t.astype(np.int64)
    return backend.to_device(x, device), backend.to_device(t, device)


def _per_class(n: int, k: int, who: str) -> list[int]:
    """Split ``n`` samples over ``k`` classes as evenly as possible (the first classes get the remainder)."""
    if k < 1 or n < k:
        raise ValueError(f"{who}: need at least one sample per class, got n={n} for {k} classes")
    return [n // k + (1 if i < n % k else 0) for i in range(k)]


def logic_gate(name: str, *, device: str | ModuleType = "cpu") -> tuple[Any, Any]:
    """Truth table of a two-input gate (AND, OR, NAND, NOR, XOR, XNOR): X = the 4 corners of {0,1}^2, t = 0/1.

    Rows are in the order (0,0), (0,1), (1,0), (1,1) (not shuffled: it is a table).
    """
    key = name.upper()
    if key not in LOGIC_GATES:
        raise ValueError(f"logic_gate: unknown gate {name!r}; expected one of {', '.join(LOGIC_GATES)}")
    return _out(_CORNERS, np.array(LOGIC_GATES[key]), None, device)


def blobs(n: int = 200, centers: int | Any = 2, std: float = 0.5, seed: backend.Seed = 0, *,
          device: str | ModuleType = "cpu") -> tuple[Any, Any]:
    """Isotropic Gaussian clusters: class k is N(c_k, std^2 I).

    ``centers``: a (k, 2) array of means, or a number k of classes whose means lie evenly on
    a circle of radius 2 (two classes: (-2, 0) and (2, 0), linearly separable when std is small).
    """
    if isinstance(centers, (int, np.integer)):
        k = int(centers)
        if k < 1:
            raise ValueError(f"blobs: expected at least one center, got {k}")
        angles = math.pi + 2 * math.pi * np.arange(k) / k
        means = 2.0 * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    else:
        means = np.asarray(backend.to_numpy(centers), dtype=np.float64)
        if means.ndim != 2 or means.shape[1] != 2:
            raise ValueError(f"blobs: expected centers of shape (k, 2), got {means.shape}")
    if std < 0:
        raise ValueError(f"blobs: std must be >= 0, got {std}")
    rng = backend.default_rng(seed)
    counts = _per_class(n, means.shape[0], "blobs")
    x = np.concatenate([m + std * rng.standard_normal((c, 2)) for m, c in zip(means, counts, strict=True)])
    t = np.repeat(np.arange(means.shape[0]), counts)
    return _out(x, t, rng, device)


def linearly_separable(n: int = 100, margin: float = 0.2, seed: backend.Seed = 0, *, return_hyperplane: bool = False,
                       device: str | ModuleType = "cpu") -> tuple[Any, ...]:
    """Two classes split by a random line w.x + b = 0 (|w| = 1) with every point at distance >= ``margin``.

    Points lie in about [-2, 2]^2: the signed distance s = w.x + b is drawn from +-[margin, margin + 1.5]
    (t = 1 on the positive side), the position along the line from U[-1.5, 1.5]. So the data are
    separable with margin gamma >= margin and radius R = max |x|, the two numbers in the perceptron
    convergence theorem (at most (R / gamma)^2 updates, for the augmented input (x, 1) with R and gamma
    measured on it). ``return_hyperplane=True`` also returns ``w`` (2,) and ``b`` (NumPy, float64).
    """
    if margin <= 0:
        raise ValueError(f"linearly_separable: margin must be > 0, got {margin}")
    rng = backend.default_rng(seed)
    counts = _per_class(n, 2, "linearly_separable")
    angle = rng.uniform(0, 2 * math.pi)
    w = np.array([math.cos(angle), math.sin(angle)])
    along = np.array([-w[1], w[0]])
    b = rng.uniform(-0.5, 0.5)
    # the float32 rounding of the points moves them by < 1e-6: keep that much extra distance
    lo = margin + 1e-5
    side = np.concatenate([-np.ones(counts[0]), np.ones(counts[1])])
    s = side * rng.uniform(lo, lo + 1.5, n)
    u = rng.uniform(-1.5, 1.5, n)
    x = (s - b)[:, None] * w + u[:, None] * along  # w.x + b = s
    t = (side > 0).astype(np.int64)
    xs, ts = _out(x, t, rng, device)
    return (xs, ts, w, float(b)) if return_hyperplane else (xs, ts)


def xor(n: int = 200, noise: float = 0.1, seed: backend.Seed = 0, *,
        device: str | ModuleType = "cpu") -> tuple[Any, Any]:
    """Noisy XOR: the 4 corners of {0,1}^2 plus N(0, noise^2 I); t = x1 XOR x2 of the corner."""
    rng = backend.default_rng(seed)
    counts = _per_class(n, 4, "xor")
    corner = np.repeat(np.arange(4), counts)
    x = _CORNERS[corner] + noise * rng.standard_normal((n, 2))
    t = np.array(LOGIC_GATES["XOR"])[corner]
    return _out(x, t, rng, device)


def moons(n: int = 200, noise: float = 0.1, seed: backend.Seed = 0, *,
          device: str | ModuleType = "cpu") -> tuple[Any, Any]:
    """Two interleaving half circles (as scikit-learn's ``make_moons``): class 0 the upper arc
    (cos a, sin a), class 1 the lower arc (1 - cos a, 1/2 - sin a), a in [0, pi], plus N(0, noise^2 I)."""
    rng = backend.default_rng(seed)
    n0, n1 = _per_class(n, 2, "moons")
    a0, a1 = np.linspace(0, math.pi, n0), np.linspace(0, math.pi, n1)
    x = np.concatenate([np.stack([np.cos(a0), np.sin(a0)], 1), np.stack([1 - np.cos(a1), 0.5 - np.sin(a1)], 1)])
    x += noise * rng.standard_normal(x.shape)
    return _out(x, np.repeat([0, 1], [n0, n1]), rng, device)


def circles(n: int = 200, noise: float = 0.05, factor: float = 0.5, seed: backend.Seed = 0, *,
            device: str | ModuleType = "cpu") -> tuple[Any, Any]:
    """Two concentric circles: class 0 of radius 1, class 1 of radius ``factor`` (< 1), plus N(0, noise^2 I)."""
    if not 0 < factor < 1:
        raise ValueError(f"circles: factor must lie in (0, 1), got {factor}")
    rng = backend.default_rng(seed)
    n0, n1 = _per_class(n, 2, "circles")
    a0 = np.linspace(0, 2 * math.pi, n0, endpoint=False)
    a1 = np.linspace(0, 2 * math.pi, n1, endpoint=False)
    x = np.concatenate([np.stack([np.cos(a0), np.sin(a0)], 1), factor * np.stack([np.cos(a1), np.sin(a1)], 1)])
    x += noise * rng.standard_normal(x.shape)
    return _out(x, np.repeat([0, 1], [n0, n1]), rng, device)


def spirals(n_per_class: int = 100, n_classes: int = 3, noise: float = 0.2, seed: backend.Seed = 0, *,
            device: str | ModuleType = "cpu") -> tuple[Any, Any]:
    """CS231n's spiral: arm j has radius r = linspace(0, 1) and angle linspace(4j, 4(j+1)) + N(0, noise^2);
    x = (r sin a, r cos a). Not linearly separable for 3 arms: a linear softmax reaches about 50%."""
    if n_per_class < 1 or n_classes < 1:
        raise ValueError(f"spirals: need n_per_class >= 1 and n_classes >= 1, got {n_per_class}, {n_classes}")
    rng = backend.default_rng(seed)
    xs, ts = [], []
    for j in range(n_classes):
        r = np.linspace(0.0, 1.0, n_per_class)
        a = np.linspace(4.0 * j, 4.0 * (j + 1), n_per_class) + noise * rng.standard_normal(n_per_class)
        xs.append(np.stack([r * np.sin(a), r * np.cos(a)], axis=1))
        ts.append(np.full(n_per_class, j))
    return _out(np.concatenate(xs), np.concatenate(ts), rng, device)
