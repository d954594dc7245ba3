"""dlcore.classic: threshold units, logic gates, the perceptron (Novikoff's bound), the delta rule,
logistic and softmax regression (gradients against central differences)."""

from __future__ import annotations

import numpy as np
import pytest

from dlcore import backend, classic
from dlcore.gradcheck import numerical_gradient, relative_error

TRUTH = {
    "AND": [0, 0, 0, 1],
    "OR": [0, 1, 1, 1],
    "NAND": [1, 1, 1, 0],
    "NOR": [1, 0, 0, 0],
    "XOR": [0, 1, 1, 0],
}
X_GATE = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype="float64")


def _np(a):
    return backend.to_numpy(a)


def _separable(seed: int, n: int = 60, d: int = 2, gamma: float = 0.3):
    """Points in [-1, 1]^d labelled by a random hyperplane, those closer than gamma removed."""
    rng = np.random.default_rng(seed)
    w_star = rng.normal(size=d)
    w_star /= np.linalg.norm(w_star)
    b_star = rng.uniform(-0.3, 0.3)
    X = rng.uniform(-1, 1, size=(4 * n, d))
    u = X @ w_star + b_star
    keep = np.abs(u) > gamma
    X, u = X[keep][:n], u[keep][:n]
    return X, (u > 0).astype("float64"), w_star, b_star


# --------------------------------------------------------------------------- threshold units and gates


def test_step_numbers_and_arrays(xp):
    assert classic.step(0.5) == 1.0 and classic.step(0.0) == 0.0 and classic.step(-2) == 0.0
    u = backend.to_device(np.array([-1.0, 0.0, 1e-12, 3.0], dtype="float32"), xp)
    y = classic.step(u)
    assert backend.dtype_name(y.dtype) == "float32"
    np.testing.assert_array_equal(_np(y), [0, 0, 1, 1])
    with pytest.raises(TypeError, match="step"):
        classic.step("1")


@pytest.mark.parametrize("gate", ["AND", "OR", "NAND", "NOR", "XOR"])
def test_gates_truth_tables(xp, gate):
    X = backend.to_device(X_GATE, xp)
    fn = {"AND": classic.and_gate, "OR": classic.or_gate, "NAND": classic.nand_gate,
          "NOR": classic.nor_gate, "XOR": classic.xor_gate}[gate]
    np.testing.assert_array_equal(_np(fn(X)), TRUTH[gate])
    for i in range(4):  # one sample at a time gives 0-D results
        y = fn(X[i, :])
        assert y.shape == () and float(y) == TRUTH[gate][i]


def test_mp_neuron_threshold_and_errors(xp):
    x = backend.to_device(np.array([[1.0, 1.0], [1.0, 0.0]]), xp)
    np.testing.assert_array_equal(_np(classic.mp_neuron(x, [1.0, 1.0], 1.0)), [1, 0])  # fires when Σ w x > θ
    np.testing.assert_array_equal(_np(classic.mp_neuron(x, [1.0, 1.0], 2.0)), [0, 0])  # Σ w x = θ does not fire
    with pytest.raises(ValueError, match="mp_neuron: expected 2 weights"):
        classic.mp_neuron(x, [1.0, 1.0, 1.0], 0.5)
    with pytest.raises(ValueError, match="logic_gate"):
        classic.logic_gate("XNOR", x)


def test_no_single_threshold_unit_computes_xor():
    """No (w1, w2, θ) among many random ones realises XOR, while AND/OR are found easily (and the
    four XOR constraints are contradictory: θ >= 0, w1 > θ, w2 > θ imply w1 + w2 > θ)."""
    rng = np.random.default_rng(0)
    W = rng.normal(size=(20000, 2))
    theta = rng.normal(size=20000)
    out = (X_GATE @ W.T - theta > 0).astype(int)  # (4, trials)
    hits = {g: int(np.sum(np.all(out.T == TRUTH[g], axis=1))) for g in ("AND", "OR", "XOR")}
    assert hits["AND"] > 100 and hits["OR"] > 100
    assert hits["XOR"] == 0


# --------------------------------------------------------------------------- perceptron


def test_perceptron_update_rule(xp):
    w = backend.to_device(np.array([0.5, -1.0]), xp)
    x = backend.to_device(np.array([1.0, 2.0]), xp)  # u = 0.5 - 2 + b
    w_copy = _np(w).copy()
    w1, b1 = classic.perceptron_update(w, 0.25, x, 1, eta=0.1)  # y = 0, t = 1: w + η x, b + η
    np.testing.assert_allclose(_np(w1), [0.6, -0.8])
    assert isinstance(b1, float) and b1 == pytest.approx(0.35)
    np.testing.assert_array_equal(_np(w), w_copy)  # not mutated
    w2, b2 = classic.perceptron_update(w, 0.25, x, 0, eta=0.1)  # correct already: unchanged
    np.testing.assert_array_equal(_np(w2), w_copy)
    assert b2 == 0.25
    b0 = backend.to_device(np.array(3.0), xp)  # u > 0, t = 0: w − η x
    t0 = backend.to_device(np.array(0), xp)
    w3, b3 = classic.perceptron_update(w, b0, x, t0, eta=1.0)
    np.testing.assert_allclose(_np(w3), [-0.5, -3.0])
    assert float(b3) == 2.0 and b3.shape == ()
    w4, _ = classic.perceptron_update(w, 0.0, x, np.int64(1), eta=1.0)  # a NumPy scalar target works on any backend
    np.testing.assert_allclose(_np(w4), [1.5, 1.0])


@pytest.mark.parametrize("seed,eta", [(0, 1.0), (1, 0.05), (2, 3.0)])
def test_perceptron_converges_within_novikoff_bound(xp, seed, eta):
    X_np, t_np, w_star, b_star = _separable(seed)
    X, t = backend.to_device(X_np, xp), backend.to_device(t_np, xp)
    bound = classic.novikoff_bound(X, t, backend.to_device(w_star, xp), b_star)
    p = classic.Perceptron(eta=eta, max_epochs=200).fit(X, t)
    assert p.converged
    assert p.errors[-1] == 0 and all(e > 0 for e in p.errors[:-1])
    assert p.n_updates == sum(p.errors) <= bound
    assert len(p.history) == len(p.errors) + 1
    np.testing.assert_array_equal(_np(p.predict(X)), t_np)
    assert classic.margin(X, t, p.w, p.b) > 0  # the learnt hyperplane separates the data


def test_perceptron_history_starts_at_zero_and_shuffle_is_seeded(xp):
    X_np, t_np, *_ = _separable(3, n=30)
    X, t = backend.to_device(X_np, xp), backend.to_device(t_np, xp)
    a = classic.Perceptron(shuffle=True, rng=5).fit(X, t)
    b = classic.Perceptron(shuffle=True, rng=5).fit(X, t)
    assert a.errors == b.errors
    np.testing.assert_array_equal(_np(a.w), _np(b.w))
    w0, b0 = a.history[0]
    assert float(backend.namespace(w0).sum(w0 * w0)) == 0.0 and float(b0) == 0.0
    w, b, errors, history = classic.train_perceptron(X, t, 1.0, 100, shuffle=True, rng=5)  # the functional form
    assert errors == a.errors and len(history) == len(a.history)
    np.testing.assert_array_equal(_np(w), _np(a.w))
    assert float(b) == float(a.b)


def test_perceptron_cannot_learn_xor(xp):
    X = backend.to_device(X_GATE, xp)
    t = backend.to_device(np.array(TRUTH["XOR"], dtype="float64"), xp)
    p = classic.Perceptron(max_epochs=50).fit(X, t)
    assert not p.converged
    assert len(p.errors) == 50 and min(p.errors) >= 1
    assert np.sum(_np(p.predict(X)) == TRUTH["XOR"]) <= 3  # at most 3 of the 4 points right
    t_and = backend.to_device(np.array(TRUTH["AND"], dtype="float64"), xp)
    assert classic.Perceptron(max_epochs=50).fit(X, t_and).converged


def test_perceptron_and_bound_errors():
    with pytest.raises(ValueError, match="eta"):
        classic.Perceptron(eta=0)
    with pytest.raises(ValueError, match=r"targets in \{0, 1\}"):
        classic.Perceptron().fit(X_GATE, np.array([0.0, 1.0, 2.0, 1.0]))
    with pytest.raises(ValueError, match="shape"):
        classic.Perceptron().fit(X_GATE, np.zeros(3))
    with pytest.raises(RuntimeError, match="fit"):
        classic.Perceptron().predict(X_GATE)
    with pytest.raises(ValueError, match="does not separate"):
        classic.novikoff_bound(X_GATE, np.array(TRUTH["XOR"], dtype="float64"), np.array([1.0, 1.0]), -0.5)


# --------------------------------------------------------------------------- delta rule and regressions


def _sigmoid(u):
    return 1.0 / (1.0 + np.exp(-u))


@pytest.mark.parametrize("activation", ["sigmoid", "linear"])
@pytest.mark.parametrize("batch", [None, 1, 7])
def test_delta_rule_is_gradient_descent_on_squared_error(xp, activation, batch):
    rng = np.random.default_rng(10 + (batch or 0))
    d = 3
    shape = (d,) if batch is None else (batch, d)
    X = backend.to_device(rng.normal(size=shape), xp)
    t = backend.to_device(rng.uniform(size=shape[:-1]), xp)
    w = backend.to_device(rng.normal(size=d), xp)
    b = backend.to_device(np.array(0.3), xp)
    eta = 0.7
    mod = backend.namespace(X)

    def energy():  # E = ½ Σ (t − f(u))²
        u = X @ w + b
        y = u if activation == "linear" else 1.0 / (1.0 + mod.exp(-u))
        return 0.5 * mod.sum((t - y) ** 2)

    gw, gb = numerical_gradient(energy, w), numerical_gradient(energy, b)
    w_new, b_new = classic.delta_rule_update(w, b, X, t, eta, activation=activation)
    assert relative_error(_np(w_new) - _np(w), -eta * _np(gw))[0] < 1e-7
    assert relative_error(_np(b_new) - _np(b), -eta * _np(gb))[0] < 1e-7


def test_delta_rule_learns_or_and_checks_arguments(xp):
    X = backend.to_device(X_GATE, xp)
    t = backend.to_device(np.array(TRUTH["OR"], dtype="float64"), xp)
    w, b = backend.to_device(np.zeros(2), xp), 0.0
    for _ in range(300):
        for i in range(4):
            w, b = classic.delta_rule_update(w, b, X[i, :], t[i], 1.0)
    assert isinstance(b, float)
    y = _sigmoid(X_GATE @ _np(w) + b)
    np.testing.assert_array_equal((y > 0.5).astype(int), TRUTH["OR"])
    assert np.max(np.abs(y - TRUTH["OR"])) < 0.2
    with pytest.raises(ValueError, match="activation"):
        classic.delta_rule_update(w, b, X, t, 0.1, activation="relu")
    with pytest.raises(ValueError, match="shape"):
        classic.delta_rule_update(w, b, X, t[:3], 0.1)


@pytest.mark.parametrize("n,d", [(1, 1), (5, 3), (12, 4)])
def test_logistic_regression_gradient(xp, n, d):
    rng = np.random.default_rng(n * 10 + d)
    X = backend.to_device(rng.normal(size=(n, d)), xp)
    t_np = rng.integers(0, 2, size=n).astype("float64")
    t = backend.to_device(t_np, xp)
    w = backend.to_device(rng.normal(size=d), xp)
    b = backend.to_device(np.array(-0.2), xp)
    loss, dw, db = classic.logistic_regression_gradient(w, b, X, t)
    y = _sigmoid(_np(X) @ _np(w) - 0.2)
    assert float(loss) == pytest.approx(-np.mean(t_np * np.log(y) + (1 - t_np) * np.log(1 - y)), rel=1e-12)

    def f():
        return classic.logistic_regression_gradient(w, b, X, t)[0]

    assert relative_error(dw, numerical_gradient(f, w))[0] < 1e-7
    assert relative_error(db, numerical_gradient(f, b))[0] < 1e-7
    assert dw.shape == (d,) and db.shape == ()


def test_logistic_regression_is_stable_for_large_scores(xp):
    X = backend.to_device(np.array([[1000.0], [-1000.0]]), xp)
    w = backend.to_device(np.array([1.0]), xp)
    t = backend.to_device(np.array([0.0, 1.0]), xp)  # both badly wrong
    loss, dw, db = classic.logistic_regression_gradient(w, 0.0, X, t)
    assert float(loss) == pytest.approx(1000.0)
    assert np.all(np.isfinite(_np(dw))) and np.isfinite(float(db))


@pytest.mark.parametrize("n,d,k", [(1, 2, 3), (8, 2, 3), (10, 4, 5)])
def test_softmax_regression_gradient(xp, n, d, k):
    rng = np.random.default_rng(n + d + k)
    X = backend.to_device(rng.normal(size=(n, d)), xp)
    W = backend.to_device(rng.normal(size=(d, k)), xp)
    b = backend.to_device(rng.normal(size=k), xp)
    labels = rng.integers(0, k, size=n)
    t = backend.to_device(labels, xp)
    loss, dW, db = classic.softmax_regression_gradient(W, b, X, t)
    s = _np(X) @ _np(W) + _np(b)
    p = np.exp(s - s.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    assert float(loss) == pytest.approx(-np.mean(np.log(p[np.arange(n), labels])), rel=1e-12)

    def f():
        return classic.softmax_regression_gradient(W, b, X, t)[0]

    assert relative_error(dW, numerical_gradient(f, W))[0] < 1e-7
    assert relative_error(db, numerical_gradient(f, b))[0] < 1e-7
    onehot = backend.to_device(np.eye(k)[labels], xp)  # one-hot targets give the same result
    for a, c in zip(classic.softmax_regression_gradient(W, b, X, onehot), (loss, dW, db), strict=True):
        np.testing.assert_allclose(_np(a), _np(c), rtol=1e-12)


def test_two_class_softmax_equals_logistic_regression(xp):
    """softmax over scores (0, u) is (1 − σ(u), σ(u)): the same loss, and dW[:, 1] = dw."""
    rng = np.random.default_rng(3)
    X = backend.to_device(rng.normal(size=(6, 3)), xp)
    w_np = rng.normal(size=3)
    t_np = rng.integers(0, 2, size=6)
    W = backend.to_device(np.stack([np.zeros(3), w_np], axis=1), xp)
    b = backend.to_device(np.array([0.0, 0.4]), xp)
    ls, dW, db = classic.softmax_regression_gradient(W, b, X, backend.to_device(t_np, xp))
    ll, dw, dbl = classic.logistic_regression_gradient(backend.to_device(w_np, xp), 0.4, X,
                                                       backend.to_device(t_np.astype("float64"), xp))
    assert float(ls) == pytest.approx(float(ll), rel=1e-12)
    np.testing.assert_allclose(_np(dW)[:, 1], _np(dw), rtol=1e-10)
    assert float(db[1]) == pytest.approx(float(dbl), rel=1e-10)


def test_softmax_regression_rejects_bad_targets():
    X, W, b = np.zeros((3, 2)), np.zeros((2, 4)), np.zeros(4)
    with pytest.raises(ValueError, match="one-hot"):
        classic.softmax_regression_gradient(W, b, X, np.zeros((3, 3)))
    with pytest.raises(ValueError, match="labels in"):
        classic.softmax_regression_gradient(W, b, X, np.array([0, 1, 4]))


def test_mixed_floating_precisions_are_refused_not_cast():
    from dlcore import classic

    x = np.ones((2, 3), dtype="float32")
    with pytest.raises(TypeError, match="float64 array next to float32 inputs"):
        classic.mp_neuron(x, np.ones(3, dtype="float64"), 0.5)
