"""Chapter 1 as reference code: threshold units, the perceptron, the delta rule, logistic and softmax regression.

Notation of the lecture, used throughout:

    x ∈ R^D       input (one sample; a batch X has one sample per row, shape (N, D))
    w, b          weights and bias (the bias is minus the threshold: b = −θ)
    u = wᵀx + b   total input (総入力)
    y = f(u)      output of the unit;  t  target (教師信号);  η  learning rate (学習率)

(The lecture writes the delta rule as w ← w + η(y − ŷ) f′(u) x, with y the target and ŷ the output;
the chapter-1 notebook uses that form, while this module names targets t as dlcore's losses do.)

A threshold unit uses the step function f = H, the sigmoid unit f = σ. Every function takes
its array namespace from its inputs (NumPy, CuPy, array_api_strict, ...), never mutates them,
and returns new arrays.
"""

from __future__ import annotations

import math
from numbers import Real
from typing import Any

from dlcore import backend
from dlcore.nn.base import check_array
from dlcore.nn.functional import log_softmax, one_hot, sigmoid, softmax, softplus

__all__ = [
    "step", "mp_neuron", "GATE_WEIGHTS", "logic_gate", "and_gate", "or_gate", "nand_gate", "nor_gate", "xor_gate",
    "perceptron_update", "train_perceptron", "Perceptron", "margin", "novikoff_bound",
    "delta_rule_update", "logistic_regression_gradient", "softmax_regression_gradient",
]

#: Hand-chosen (w, θ) of a McCulloch–Pitts unit y = H(w₁x₁ + w₂x₂ − θ) for each two-input gate.
GATE_WEIGHTS: dict[str, tuple[tuple[float, float], float]] = {
    "AND": ((1.0, 1.0), 1.5),
    "OR": ((1.0, 1.0), 0.5),
    "NAND": ((-1.0, -1.0), -1.5),
    "NOR": ((-1.0, -1.0), -0.5),
}


def _is_number(v: Any) -> bool:
    return isinstance(v, Real) and not hasattr(v, "shape")


def _like(v: Any, x: Any) -> Any:
    """``v`` (a number, a sequence, or an integer/boolean array such as labels) as an array in x's namespace,
    dtype and device. A floating array of another precision is refused, never cast silently."""
    xp = backend.namespace(x)
    if isinstance(v, Real) and type(v).__module__ == "numpy":  # a NumPy scalar (e.g. t[i] of a NumPy label array)
        v = v.item()
    if hasattr(v, "dtype"):
        backend.namespace(v, x, where="dlcore.classic")
        have, want = backend.dtype_name(v.dtype), backend.dtype_name(x.dtype)
        if have == want:
            return v
        if have.startswith("float"):
            raise TypeError(f"dlcore.classic: got a {have} array next to {want} inputs; use one floating dtype "
                            f"(e.g. .astype('{want}'))")
        return xp.astype(v, x.dtype)
    return xp.asarray(v, dtype=x.dtype, device=backend.device_of(x))


# --------------------------------------------------------------------------- threshold units


def step(u: Any) -> Any:
    """Heaviside step function H(u) = 1 if u > 0 else 0 (elementwise).

    A Python number gives a float; an array gives an array of the same shape and dtype.
    """
    if _is_number(u):
        return 1.0 if u > 0 else 0.0
    if not hasattr(u, "dtype"):
        raise TypeError(f"step: expected a number or an array, got a {type(u).__name__}")
    xp = backend.namespace(u)
    return xp.astype(u > 0, u.dtype)


def mp_neuron(x: Any, w: Any, theta: float) -> Any:
    """McCulloch–Pitts unit: y = H(Σ_i w_i x_i − θ), i.e. it fires when the weighted sum exceeds θ.

    ``x``: one input (D,) or a batch (N, D), floating; ``w``: D weights (array or sequence);
    returns a 0-D array or an (N,) array of 0/1 in x's dtype.
    """
    check_array("mp_neuron", "x", x, ndim=(1, 2))
    w = _like(w, x)
    if w.ndim != 1 or w.shape[0] != x.shape[-1]:
        raise ValueError(f"mp_neuron: expected {x.shape[-1]} weights (one per input), got shape {tuple(w.shape)}")
    return step(x @ w - theta)


def logic_gate(name: str, x: Any) -> Any:
    """A two-input gate ('AND', 'OR', 'NAND', 'NOR') as one McCulloch–Pitts unit with :data:`GATE_WEIGHTS`."""
    key = name.upper()
    if key not in GATE_WEIGHTS:
        raise ValueError(f"logic_gate: expected one of {sorted(GATE_WEIGHTS)}, got {name!r}")
    w, theta = GATE_WEIGHTS[key]
    return mp_neuron(x, w, theta)


def and_gate(x: Any) -> Any:
    """x₁ AND x₂ = H(x₁ + x₂ − 1.5)."""
    return logic_gate("AND", x)


def or_gate(x: Any) -> Any:
    """x₁ OR x₂ = H(x₁ + x₂ − 0.5)."""
    return logic_gate("OR", x)


def nand_gate(x: Any) -> Any:
    """NOT (x₁ AND x₂) = H(−x₁ − x₂ + 1.5)."""
    return logic_gate("NAND", x)


def nor_gate(x: Any) -> Any:
    """NOT (x₁ OR x₂) = H(−x₁ − x₂ + 0.5)."""
    return logic_gate("NOR", x)


def xor_gate(x: Any) -> Any:
    """x₁ XOR x₂ = AND(NAND(x), OR(x)): two layers of threshold units (no single unit can do it)."""
    xp = backend.namespace(x)
    h = xp.stack([nand_gate(x), or_gate(x)], axis=-1)  # hidden layer: (s₁, s₂) = (NAND, OR)
    return and_gate(h)


# --------------------------------------------------------------------------- Rosenblatt's perceptron


def perceptron_update(w: Any, b: Any, x: Any, t: Any, eta: float = 1.0) -> tuple[Any, Any]:
    """One step of Rosenblatt's learning rule on one sample (x, t), t ∈ {0, 1}:

        y = H(wᵀx + b),   w ← w + η (t − y) x,   b ← b + η (t − y)

    Nothing changes when the sample is classified correctly. Returns new (w, b); the inputs are
    not modified. ``b`` may be a number (then a float is returned) or a 0-D array.
    """
    check_array("perceptron_update", "w", w, ndim=1)
    check_array("perceptron_update", "x", x, ndim=1, last_dim=w.shape[0])
    xp = backend.namespace(w, x, where="perceptron_update")
    tt = _like(t, x)
    y = step(xp.sum(w * x) + b)
    err = tt - y                          # t − y ∈ {−1, 0, 1}
    w_new = w + eta * err * x             # Δw = η (t − y) x
    b_new = b + eta * err                 # Δb = η (t − y)  (the bias is the weight of a constant input 1)
    return w_new, (float(b_new) if _is_number(b) else b_new)


def train_perceptron(X: Any, t: Any, eta: float = 1.0, max_epochs: int = 100, *, shuffle: bool = False,
                     rng: backend.Seed = None) -> tuple[Any, Any, list[int], list[tuple[Any, Any]]]:
    """Rosenblatt's perceptron trained online from w = 0, b = 0 with :func:`perceptron_update`.

    One epoch visits the samples of X (N, D) in order (or in a new seeded random order with
    ``shuffle=True``); training stops after the first epoch without a mistake or after ``max_epochs``.
    ``t`` (N,) holds targets in {0, 1}. Returns ``(w, b, errors, history)``: the final weights and bias
    (a 0-D array), the number of mistakes (updates) in every epoch, and the list of (w, b) before the
    first epoch and after every epoch.
    """
    if eta <= 0:
        raise ValueError(f"Perceptron: expected a positive learning rate eta, got {eta}")
    if max_epochs < 1:
        raise ValueError(f"Perceptron: expected max_epochs >= 1, got {max_epochs}")
    check_array("Perceptron", "X", X, ndim=2)
    xp = backend.namespace(X, t, where="Perceptron.fit")
    n, d = X.shape
    if not hasattr(t, "shape") or tuple(t.shape) != (n,):
        raise ValueError(f"Perceptron: expected targets t of shape ({n},), got {getattr(t, 'shape', type(t))}")
    t = _like(t, X)
    if bool(xp.any((t != 0) & (t != 1))):
        raise ValueError("Perceptron: expected targets in {0, 1}")
    gen = backend.default_rng(rng)
    w = xp.zeros((d,), dtype=X.dtype, device=backend.device_of(X))
    b = xp.zeros((), dtype=X.dtype, device=backend.device_of(X))
    errors: list[int] = []
    history = [(w, b)]
    for _ in range(int(max_epochs)):
        order = gen.permutation(n) if shuffle else range(n)
        mistakes = 0
        for i in order:
            x_i, t_i = X[int(i), :], t[int(i)]
            if bool(step(xp.sum(w * x_i) + b) != t_i):  # a mistake: this sample changes w and b
                mistakes += 1
            w, b = perceptron_update(w, b, x_i, t_i, eta)
        errors.append(mistakes)
        history.append((w, b))
        if mistakes == 0:
            break
    return w, b, errors, history


class Perceptron:
    """Rosenblatt's perceptron y = H(wᵀx + b), trained online (sample by sample) by :func:`train_perceptron`.

    Starts from w = 0, b = 0 and stops after the first epoch without a mistake (``converged``) or after
    ``max_epochs``. Records for the plots and for Novikoff's theorem:

        history   [(w, b)] before the first epoch and after every epoch
        errors    number of misclassified samples (updates) in every epoch
        n_updates total number of updates
    """

    def __init__(self, eta: float = 1.0, max_epochs: int = 100, *, shuffle: bool = False,
                 rng: backend.Seed = None) -> None:
        if eta <= 0:
            raise ValueError(f"Perceptron: expected a positive learning rate eta, got {eta}")
        if max_epochs < 1:
            raise ValueError(f"Perceptron: expected max_epochs >= 1, got {max_epochs}")
        self.eta, self.max_epochs, self.shuffle = float(eta), int(max_epochs), bool(shuffle)
        self.rng = backend.default_rng(rng)
        self.w: Any = None
        self.b: Any = None
        self.history: list[tuple[Any, Any]] = []
        self.errors: list[int] = []
        self.n_updates = 0
        self.converged = False

    def fit(self, X: Any, t: Any) -> Perceptron:
        """Train on X (N, D) with targets t (N,) in {0, 1}; returns self."""
        self.w, self.b, self.errors, self.history = train_perceptron(
            X, t, self.eta, self.max_epochs, shuffle=self.shuffle, rng=self.rng)
        self.n_updates = sum(self.errors)
        self.converged = self.errors[-1] == 0
        return self

    def decision_function(self, X: Any) -> Any:
        """u = X w + b for every row of X."""
        if self.w is None:
            raise RuntimeError("Perceptron: call fit before predict")
        check_array("Perceptron", "X", X, ndim=2, last_dim=self.w.shape[0])
        return X @ self.w + self.b

    def predict(self, X: Any) -> Any:
        """y = H(X w + b) in {0, 1}."""
        return step(self.decision_function(X))


def _augmented(X: Any, w: Any, b: Any) -> tuple[Any, Any]:
    """x̃ = (x, 1) for every row and w̃ = (w, b): the bias becomes an ordinary weight."""
    xp = backend.namespace(X, w)
    ones = xp.ones((X.shape[0], 1), dtype=X.dtype, device=backend.device_of(X))
    wb = xp.concat([_like(w, X), xp.reshape(_like(b, X), (1,))])
    return xp.concat([X, ones], axis=1), wb


def margin(X: Any, t: Any, w: Any, b: Any) -> float:
    """Geometric margin of (w, b) on the augmented data: γ = min_n s_n w̃ᵀx̃_n / ||w̃||, s_n = 2t_n − 1.

    Positive exactly when the hyperplane wᵀx + b = 0 separates the two classes.
    """
    check_array("margin", "X", X, ndim=2)
    xp = backend.namespace(X)
    Xa, wa = _augmented(X, w, b)
    s = 2.0 * _like(t, X) - 1.0
    return float(xp.min(s * (Xa @ wa))) / float(xp.sqrt(xp.sum(wa * wa)))


def novikoff_bound(X: Any, t: Any, w_star: Any, b_star: Any) -> float:
    """Novikoff's bound on the number of perceptron updates (from w = 0, any η > 0): (R / γ)².

    R = max_n ||x̃_n|| with x̃ = (x, 1), γ = :func:`margin` of a separating (w*, b*).
    Raises ValueError when (w*, b*) does not separate the data.
    """
    gamma = margin(X, t, w_star, b_star)
    if not gamma > 0:
        raise ValueError(f"novikoff_bound: (w*, b*) does not separate the data (margin {gamma:.3g} <= 0)")
    xp = backend.namespace(X)
    Xa, _ = _augmented(X, w_star, b_star)
    r = math.sqrt(float(xp.max(xp.sum(Xa * Xa, axis=1))))
    return (r / gamma) ** 2


# --------------------------------------------------------------------------- sigmoid unit and regression


def delta_rule_update(w: Any, b: Any, x: Any, t: Any, eta: float = 0.1, *,
                      activation: str = "sigmoid") -> tuple[Any, Any]:
    """The delta rule (gradient descent on E = ½ Σ_n (t_n − y_n)²) for one unit y = f(wᵀx + b):

        δ = (t − y) f′(u),   w ← w + η δ x,   b ← b + η δ

    ``activation``: 'sigmoid' (f = σ, f′(u) = y(1 − y)) or 'linear' (f(u) = u, f′ = 1: Widrow–Hoff).
    ``x``: one sample (D,) with a scalar t, or a batch (N, D) with t of shape (N,), in which case the
    updates of the samples are summed: w ← w + η Xᵀδ, b ← b + η Σ_n δ_n. Returns new (w, b).
    """
    check_array("delta_rule_update", "w", w, ndim=1)
    check_array("delta_rule_update", "x", x, ndim=(1, 2), last_dim=w.shape[0])
    xp = backend.namespace(w, x, where="delta_rule_update")
    tt = _like(t, x)
    if tuple(tt.shape) != tuple(x.shape[:-1]):
        raise ValueError(f"delta_rule_update: expected t of shape {tuple(x.shape[:-1])}, got {tuple(tt.shape)}")
    u = x @ w + b
    if activation == "sigmoid":
        y = sigmoid(u)
        fprime = y * (1.0 - y)            # σ′(u) = σ(u)(1 − σ(u))
    elif activation == "linear":
        y, fprime = u, 1.0
    else:
        raise ValueError(f"delta_rule_update: expected activation 'sigmoid' or 'linear', got {activation!r}")
    delta = (tt - y) * fprime             # δ = (t − y) f′(u)
    if x.ndim == 1:
        w_new, db = w + eta * delta * x, eta * delta
    else:
        w_new, db = w + eta * (x.T @ delta), eta * xp.sum(delta)
    b_new = b + db
    return w_new, (float(b_new) if _is_number(b) else b_new)


def logistic_regression_gradient(w: Any, b: Any, X: Any, t: Any) -> tuple[Any, Any, Any]:
    """Cross-entropy of logistic regression y = σ(Xw + b) and its gradient:

        L = −(1/N) Σ_n [t_n log y_n + (1 − t_n) log(1 − y_n)] = (1/N) Σ_n [softplus(u_n) − t_n u_n]
        ∂L/∂w = Xᵀ(y − t) / N,   ∂L/∂b = Σ_n (y_n − t_n) / N

    ``X`` (N, D), ``w`` (D,), ``b`` a number or 0-D array, ``t`` (N,) in [0, 1].
    Returns (L, dw, db) with L and db as 0-D arrays.
    """
    check_array("logistic_regression_gradient", "X", X, ndim=2, last_dim=w.shape[0])
    xp = backend.namespace(X, w, where="logistic_regression_gradient")
    n = X.shape[0]
    tt = _like(t, X)
    if tuple(tt.shape) != (n,):
        raise ValueError(f"logistic_regression_gradient: expected t of shape ({n},), got {tuple(tt.shape)}")
    u = X @ w + b
    loss = xp.sum(softplus(u) - tt * u) / n   # stable: never log(0)
    e = (sigmoid(u) - tt) / n                 # ∂L/∂u = (y − t) / N
    return loss, X.T @ e, xp.sum(e)


def softmax_regression_gradient(W: Any, b: Any, X: Any, t: Any) -> tuple[Any, Any, Any]:
    """Cross-entropy of softmax regression P = softmax(XW + b) and its gradient:

        L = −(1/N) Σ_n Σ_k t_nk log p_nk,   ∂L/∂W = Xᵀ(P − T) / N,   ∂L/∂b = Σ_n (p_n − t_n) / N

    ``X`` (N, D), ``W`` (D, K), ``b`` (K,), ``t`` integer labels (N,) or one-hot rows (N, K).
    Returns (L, dW, db) with L a 0-D array.
    """
    check_array("softmax_regression_gradient", "X", X, ndim=2)
    check_array("softmax_regression_gradient", "W", W, ndim=2)
    xp = backend.namespace(X, W, where="softmax_regression_gradient")
    n, k = X.shape[0], W.shape[1]
    if W.shape[0] != X.shape[1]:
        raise ValueError(f"softmax_regression_gradient: W has shape {tuple(W.shape)}, expected ({X.shape[1]}, K)")
    if backend.dtype_name(t.dtype).startswith(("int", "uint")):
        T = one_hot(t, k, X.dtype)
    else:
        T = _like(t, X)
    if tuple(T.shape) != (n, k):
        raise ValueError(f"softmax_regression_gradient: expected labels (N,) or one-hot (N, K) = ({n}, {k}) targets, "
                         f"got shape {tuple(t.shape)}")
    s = X @ W + b
    loss = -xp.sum(T * log_softmax(s)) / n
    e = (softmax(s) - T) / n                  # ∂L/∂s = (P − T) / N
    return loss, X.T @ e, xp.sum(e, axis=0)
