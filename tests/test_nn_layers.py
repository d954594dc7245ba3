"""Layers of dlcore.nn: gradients against central differences, forward values against NumPy formulas,
parameters as the source of truth, and float32 in -> float32 out. Every test runs on every backend."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from dlcore import backend, nn
from dlcore.gradcheck import assert_layer_gradients, numerical_gradient, relative_error

RTOL = 1e-6


def _arr(a, xp):
    return backend.to_device(np.asarray(a), xp)


def _np(a):
    return backend.to_numpy(a)


def _away_from_zero(a, margin=0.05):
    """Move entries out of [-margin, margin] so finite differences never straddle a kink at 0."""
    return np.where(np.abs(a) < margin, np.sign(a + 1e-12) * (np.abs(a) + margin), a)


def _input(shape, seed=0, kink=False):
    x = np.random.default_rng(seed).normal(size=shape)
    return _away_from_zero(x) if kink else x


def _on(layer, xp):
    return layer.astype("float64").to(xp)


# --------------------------------------------------------------------------- gradient checks

ACTIVATIONS = {
    "Sigmoid": (nn.Sigmoid, False),
    "Tanh": (nn.Tanh, False),
    "ReLU": (nn.ReLU, True),
    "LeakyReLU": (lambda: nn.LeakyReLU(0.1), True),
    "ELU": (nn.ELU, True),
    "ELU(0.5)": (lambda: nn.ELU(alpha=0.5), True),
    "Softmax": (nn.Softmax, False),
}


@pytest.mark.parametrize("name", list(ACTIVATIONS))
@pytest.mark.parametrize("shape", [(1, 4), (5, 3), (2, 3, 2, 2)], ids=["1x4", "5x3", "2x3x2x2"])
def test_activation_gradients(xp, name, shape):
    make, kink = ACTIVATIONS[name]
    x = _arr(_input(shape, seed=len(name), kink=kink), xp)
    assert_layer_gradients(_on(make(), xp), x, rtol=RTOL)


@pytest.mark.parametrize("n", [1, 6])
def test_affine_gradients(xp, n):
    layer = _on(nn.Affine(4, 3, rng=1), xp)
    layer.params["b"] = _arr(np.random.default_rng(2).normal(size=3), xp)
    assert_layer_gradients(layer, _arr(_input((n, 4)), xp), rtol=RTOL)


def test_affine_without_input_gradient_keeps_the_parameter_gradients(xp):
    """input_grad=False (a network's first layer): backward returns None, dW and db are unchanged."""
    x = _arr(_input((5, 4)), xp)
    dy = _arr(np.random.default_rng(3).normal(size=(5, 3)), xp)
    full, first = (_on(nn.Affine(4, 3, rng=1, input_grad=flag), xp) for flag in (True, False))
    for layer in (full, first):
        layer.forward(x)
    assert full.backward(dy) is not None and first.backward(dy) is None
    for key in ("W", "b"):
        np.testing.assert_array_equal(backend.to_numpy(first.grads[key]), backend.to_numpy(full.grads[key]))


@pytest.mark.parametrize("n,pieces", [(1, 3), (5, 2)])
def test_maxout_gradients(xp, n, pieces):
    layer = _on(nn.Maxout(4, 3, pieces, rng=3), xp)
    layer.params["b"] = _arr(np.random.default_rng(4).normal(size=(pieces, 3)), xp)
    assert_layer_gradients(layer, _arr(_input((n, 4), seed=5), xp), rtol=RTOL)


@pytest.mark.parametrize("num,shape", [(1, (4, 3)), (1, (2, 3, 2, 2)), (3, (1, 3)), (3, (5, 3)), (3, (2, 3, 2, 2))])
def test_prelu_gradients(xp, num, shape):
    layer = _on(nn.PReLU(num), xp)
    layer.params["a"] = _arr(np.linspace(0.1, 0.4, num), xp)
    assert_layer_gradients(layer, _arr(_input(shape, seed=6, kink=True), xp), rtol=RTOL)


@pytest.mark.parametrize("shape", [(1, 2, 3), (2, 3, 2, 2)])
def test_flatten_gradients(xp, shape):
    layer = nn.Flatten()
    x = _arr(_input(shape), xp)
    assert tuple(layer.forward(x).shape) == (shape[0], int(np.prod(shape[1:])))
    assert_layer_gradients(layer, x, rtol=RTOL)


@pytest.mark.parametrize("gate", [nn.Add, nn.Mul])
@pytest.mark.parametrize("shapes", [((1, 3), (1, 3)), ((4, 3), (4, 3)), ((4, 3), (3,)), ((2, 1, 3), (4, 1))],
                         ids=["1x3", "same", "bias", "both-broadcast"])
def test_gate_gradients(xp, gate, shapes):
    x, y = _arr(_input(shapes[0], seed=7), xp), _arr(_input(shapes[1], seed=8), xp)
    assert_layer_gradients(gate(), x, y, rtol=RTOL)


def test_gates_on_python_numbers_apple_example():
    """DLfS chapter 5: 2 apples at 100 each with 10 % tax."""
    mul_apple, mul_tax = nn.Mul(), nn.Mul()
    price = mul_tax.forward(mul_apple.forward(100, 2), 1.1)
    dapple_price, dtax = mul_tax.backward(1)
    dapple, dnum = mul_apple.backward(dapple_price)
    assert price == pytest.approx(220.0)
    assert (dapple, dnum, dtax) == pytest.approx((2.2, 110.0, 200.0))
    assert all(isinstance(v, float | int) for v in (dapple, dnum, dtax))
    add = nn.Add()
    assert add.forward(3.0, 4) == 7.0
    assert add.backward(1.3) == (1.3, 1.3)


def test_mul_gate_number_times_array(xp):
    x = _arr(np.array([1.0, 2.0, 3.0]), xp)
    gate = nn.Mul()
    _np_assert(gate.forward(2.0, x), [2.0, 4.0, 6.0])
    dx, dy = gate.backward(_arr(np.ones(3), xp))
    assert float(dx) == pytest.approx(6.0)  # the scalar fans out: its gradient is the sum
    _np_assert(dy, [2.0, 2.0, 2.0])


@pytest.mark.parametrize("shape", [(6, 3), (2, 3, 2, 2), (1, 3, 2, 2)], ids=["2d", "4d", "4d-batch1"])
@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
def test_batchnorm_gradients(xp, shape, train):
    layer = _on(nn.BatchNorm(3), xp)
    g = np.random.default_rng(9)
    layer.params["gamma"] = _arr(g.normal(size=3), xp)
    layer.params["beta"] = _arr(g.normal(size=3), xp)
    layer.running_mean = _arr(g.normal(size=3), xp)
    layer.running_var = _arr(g.uniform(0.5, 2.0, size=3), xp)
    x = _arr(_input(shape, seed=10) * 2.0 + 1.0, xp)
    assert_layer_gradients(layer, x, train=train, rtol=RTOL)


@pytest.mark.parametrize("p", [0.2, 0.5])
@pytest.mark.parametrize("shape", [(1, 5), (6, 4), (2, 3, 2, 2)], ids=["1x5", "6x4", "4d"])
def test_dropout_backward_uses_the_forward_mask(xp, p, shape):
    layer = nn.Dropout(p, rng=11)
    x = _arr(_input(shape), xp)
    y = layer.forward(x, train=True)
    mask = _np(layer.mask)
    assert set(np.unique(mask)) <= {0.0, 1.0}
    np.testing.assert_allclose(_np(y), _np(x) * mask / (1 - p), rtol=1e-12)
    dy = _input(shape, seed=12)
    np.testing.assert_allclose(_np(layer.backward(_arr(dy, xp))), mask * dy / (1 - p), rtol=1e-12)
    # the same against central differences: a fresh layer with the same seed draws the same mask
    dy_x = _arr(dy, xp)

    def loss():
        return xp.sum(nn.Dropout(p, rng=11).forward(x, train=True) * dy_x)

    err, _ = relative_error(layer.backward(dy_x), numerical_gradient(loss, x))
    assert err <= RTOL


def test_sequential_gradients(xp):
    model = nn.Sequential(nn.Affine(4, 5, rng=0), nn.Tanh(), nn.BatchNorm(5), nn.Affine(5, 4, rng=1), nn.ELU(),
                          nn.PReLU(4), nn.Affine(4, 3, rng=2), nn.Softmax())
    _on(model, xp)
    model.params["5.a"] = _arr(np.array([0.1, 0.2, 0.3, 0.4]), xp)
    assert_layer_gradients(model, _arr(_input((3, 4)), xp), train=True, rtol=RTOL)


# --------------------------------------------------------------------------- forward values


def _np_assert(a, expected, rtol=1e-12, atol=0.0):
    np.testing.assert_allclose(_np(a), np.asarray(expected), rtol=rtol, atol=atol)


def test_activation_forward_values(xp):
    x_np = _input((4, 5))
    x = _arr(x_np, xp)
    _np_assert(nn.Sigmoid().forward(x), 1 / (1 + np.exp(-x_np)), rtol=1e-14)
    _np_assert(nn.Tanh().forward(x), np.tanh(x_np))
    _np_assert(nn.ReLU().forward(x), np.maximum(x_np, 0))
    _np_assert(nn.LeakyReLU(0.2).forward(x), np.where(x_np > 0, x_np, 0.2 * x_np))
    _np_assert(nn.ELU(0.7).forward(x), np.where(x_np > 0, x_np, 0.7 * (np.exp(x_np) - 1)), rtol=1e-14)
    prelu = nn.PReLU(5, init=0.3, dtype="float64").to(xp)
    _np_assert(prelu.forward(x), np.where(x_np > 0, x_np, 0.3 * x_np))
    e = np.exp(x_np - x_np.max(axis=1, keepdims=True))
    _np_assert(nn.Softmax().forward(x), e / e.sum(axis=1, keepdims=True), rtol=1e-14)


def test_sigmoid_and_friends_are_stable_for_huge_inputs(xp):
    x = _arr(np.array([-1000.0, -40.0, 0.0, 40.0, 1000.0]), xp)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warning from exp
        s = nn.sigmoid(x)
        sp = nn.softplus(x)
        ls = nn.log_sigmoid(x)
        elu = nn.ELU().forward(x)
    s_np = _np(s)
    assert s_np[0] == 0.0 and s_np[-1] == 1.0 and s_np[2] == 0.5
    np.testing.assert_allclose(s_np[1], 1 / (1 + np.exp(40.0)), rtol=1e-14)
    _np_assert(sp, [0.0, np.log1p(np.exp(-40.0)), np.log(2.0), 40.0 + np.log1p(np.exp(-40.0)), 1000.0], rtol=1e-14)
    _np_assert(ls, [-1000.0, -40.0 - np.log1p(np.exp(-40.0)), -np.log(2.0), -np.log1p(np.exp(-40.0)), 0.0],
               rtol=1e-14)
    _np_assert(elu, [-1.0, np.expm1(-40.0), 0.0, 40.0, 1000.0])


def test_softmax_functions(xp):
    x_np = _input((3, 6)) * 5
    x_np[1] += 1e4  # a huge but legal score row
    x = _arr(x_np, xp)
    p = _np(nn.softmax(x))
    assert np.all(np.isfinite(p))
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-14)
    shifted = x_np - x_np.max(axis=1, keepdims=True)
    ref = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    _np_assert(nn.log_softmax(x), ref, rtol=1e-12, atol=1e-12)
    _np_assert(nn.logsumexp(x), x_np.max(axis=1) + np.log(np.exp(shifted).sum(axis=1)), rtol=1e-14)
    assert tuple(nn.logsumexp(x, keepdims=True).shape) == (3, 1)


def test_softmax_layer_backward_is_the_full_jacobian(xp):
    x_np, dy_np = _input((2, 4)), _input((2, 4), seed=1)
    layer = nn.Softmax()
    y = _np(layer.forward(_arr(x_np, xp)))
    dx = _np(layer.backward(_arr(dy_np, xp)))
    for n in range(2):
        jac = np.diag(y[n]) - np.outer(y[n], y[n])
        np.testing.assert_allclose(dx[n], jac @ dy_np[n], rtol=1e-12, atol=1e-15)


def test_one_hot(xp):
    t = _arr(np.array([2, 0, 1, 2]), xp)
    oh = nn.one_hot(t, 3, dtype="float64")
    assert backend.dtype_name(oh.dtype) == "float64"
    _np_assert(oh, np.eye(3)[[2, 0, 1, 2]])
    assert backend.dtype_name(nn.one_hot(t, 4).dtype) == "float32"


def test_maxout_forward_is_the_max_over_pieces(xp):
    layer = _on(nn.Maxout(4, 3, pieces=5, rng=0), xp)
    x_np = _input((6, 4))
    W, b = _np(layer.params["W"]), _np(layer.params["b"])
    assert W.shape == (4, 5, 3) and b.shape == (5, 3)
    z = np.einsum("ni,ikj->nkj", x_np, W) + b
    _np_assert(layer.forward(_arr(x_np, xp)), z.max(axis=1), rtol=1e-12)
    # each piece is an Affine-shaped weight with the He variance 2 / in_features
    big = nn.Maxout(400, 300, pieces=2, rng=1)
    assert np.var(_np(big.params["W"])) == pytest.approx(2 / 400, rel=0.05)


def test_batchnorm_train_normalises_and_updates_running_stats(xp):
    layer = _on(nn.BatchNorm(3, momentum=0.8), xp)
    x_np = _input((4, 3, 2, 2)) * np.array([1.0, 2.0, 3.0])[None, :, None, None] + 5.0
    y = _np(layer.forward(_arr(x_np, xp), train=True))
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0.0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=(0, 2, 3)), 1.0, rtol=1e-4)  # ε = 1e-5 in the denominator
    mu, var_unbiased = x_np.mean(axis=(0, 2, 3)), x_np.var(axis=(0, 2, 3), ddof=1)
    _np_assert(layer.running_mean, 0.8 * 0 + 0.2 * mu)
    _np_assert(layer.running_var, 0.8 * 1 + 0.2 * var_unbiased)
    assert layer.train is True


def test_batchnorm_eval_uses_running_stats(xp):
    layer = _on(nn.BatchNorm(3), xp)
    g = np.random.default_rng(0)
    rm, rv = g.normal(size=3), g.uniform(0.5, 2, size=3)
    gamma, beta = g.normal(size=3), g.normal(size=3)
    layer.running_mean, layer.running_var = _arr(rm, xp), _arr(rv, xp)
    layer.params["gamma"], layer.params["beta"] = _arr(gamma, xp), _arr(beta, xp)
    x_np = _input((5, 3))
    y = layer.forward(_arr(x_np, xp), train=False)
    _np_assert(y, gamma * (x_np - rm) / np.sqrt(rv + 1e-5) + beta)
    _np_assert(layer.running_mean, rm)  # evaluation leaves the running statistics alone
    assert layer.train is False


def test_dropout_eval_is_identity_and_train_keeps_the_expectation(xp):
    layer = nn.Dropout(0.3, rng=0)
    x = _arr(np.full((200, 500), 2.0), xp)
    assert layer.forward(x, train=False) is x
    assert layer.backward(x) is x
    y = _np(layer.forward(x, train=True))
    kept = np.mean(y != 0)
    assert kept == pytest.approx(0.7, abs=0.005)  # 1e5 Bernoulli draws: std 0.0015
    assert y.mean() == pytest.approx(2.0, rel=0.01)
    np.testing.assert_allclose(y[y != 0], 2.0 / 0.7, rtol=1e-12)
    assert nn.Dropout(0.0).forward(x) is x


def test_dropout_same_seed_same_mask_and_fresh_masks_per_call(xp):
    x = _arr(np.ones((4, 50)), xp)
    a, b = nn.Dropout(0.5, rng=3), nn.Dropout(0.5, rng=3)
    first = _np(a.forward(x))
    np.testing.assert_array_equal(first, _np(b.forward(x)))
    assert not np.array_equal(first, _np(a.forward(x)))


# --------------------------------------------------------------------------- params are the source of truth


def test_replacing_params_changes_the_output(xp):
    x_np = _input((3, 4))
    x = _arr(x_np, xp)
    affine = _on(nn.Affine(4, 2, rng=0), xp)
    W_new, b_new = np.arange(8.0).reshape(4, 2), np.array([1.0, -1.0])
    affine.params["W"], affine.params["b"] = _arr(W_new, xp), _arr(b_new, xp)
    _np_assert(affine.forward(x), x_np @ W_new + b_new)
    affine.backward(_arr(np.ones((3, 2)), xp))
    _np_assert(affine.grads["W"], x_np.T @ np.ones((3, 2)))

    prelu = _on(nn.PReLU(), xp)
    prelu.params["a"] = _arr(np.array([0.5]), xp)
    _np_assert(prelu.forward(x), np.where(x_np > 0, x_np, 0.5 * x_np))

    bn = _on(nn.BatchNorm(4), xp)
    bn.params["beta"] = _arr(np.full(4, 3.0), xp)
    np.testing.assert_allclose(_np(bn.forward(x)).mean(axis=0), 3.0, atol=1e-12)

    mo = _on(nn.Maxout(4, 2, 2, rng=0), xp)
    mo.params["b"] = _arr(np.array([[100.0, 0.0], [0.0, 100.0]]), xp)
    W = _np(mo.params["W"])
    _np_assert(mo.forward(x), np.stack([x_np @ W[:, 0, 0] + 100, x_np @ W[:, 1, 1] + 100], axis=1))


# --------------------------------------------------------------------------- dtype: float32 in, float32 out

FLOAT32_CASES = {
    "Sigmoid": (nn.Sigmoid, (3, 4)), "Tanh": (nn.Tanh, (3, 4)), "ReLU": (nn.ReLU, (3, 4)),
    "LeakyReLU": (nn.LeakyReLU, (3, 4)), "ELU": (nn.ELU, (3, 4)), "PReLU": (nn.PReLU, (3, 4)),
    "PReLU(C)": (lambda: nn.PReLU(2), (3, 2, 2, 2)), "Maxout": (lambda: nn.Maxout(4, 2, 3, rng=0), (3, 4)),
    "Softmax": (nn.Softmax, (3, 4)), "Affine": (lambda: nn.Affine(4, 2, rng=0), (3, 4)),
    "Flatten": (nn.Flatten, (3, 2, 2)), "Dropout": (lambda: nn.Dropout(0.5, rng=0), (3, 4)),
    "BatchNorm": (lambda: nn.BatchNorm(4), (3, 4)), "BatchNorm4d": (lambda: nn.BatchNorm(2), (3, 2, 2, 2)),
    "Sequential": (lambda: nn.Sequential(nn.Affine(4, 3, rng=0), nn.BatchNorm(3), nn.Dropout(0.1, rng=0),
                                         nn.ReLU()), (3, 4)),
}


@pytest.mark.parametrize("name", list(FLOAT32_CASES))
def test_float32_in_float32_out(xp, name):
    make, shape = FLOAT32_CASES[name]
    layer = make().to(xp)
    x = _arr(_input(shape).astype("float32"), xp)
    y = layer.forward(x)
    dx = layer.backward(xp.ones_like(y))
    assert backend.dtype_name(y.dtype) == "float32"
    assert backend.dtype_name(dx.dtype) == "float32"
    for key, g in layer.grads.items():
        assert backend.dtype_name(g.dtype) == "float32", key
    for value in layer.buffers().values():
        assert backend.dtype_name(value.dtype) == "float32"


def test_float32_gates_and_functions(xp):
    x = _arr(_input((3, 4)).astype("float32"), xp)
    for gate in (nn.Add(), nn.Mul()):
        assert backend.dtype_name(gate.forward(x, x).dtype) == "float32"
        assert all(backend.dtype_name(g.dtype) == "float32" for g in gate.backward(x))
    for f in (nn.sigmoid, nn.softplus, nn.log_sigmoid, nn.softmax, nn.log_softmax, nn.logsumexp):
        assert backend.dtype_name(f(x).dtype) == "float32", f.__name__
