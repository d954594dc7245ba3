"""Sequential: flat write-through params/grads, train flag, list behaviour, device/dtype moves."""

from __future__ import annotations

import numpy as np
import pytest

from dlcore import backend, nn
from dlcore.gradcheck import assert_layer_gradients


def _arr(a, xp):
    return backend.to_device(np.asarray(a), xp)


def _np(a):
    return backend.to_numpy(a)


def _model():
    return nn.Sequential(nn.Affine(4, 5, rng=0), nn.ReLU(), nn.Dropout(0.5, rng=1), nn.BatchNorm(5),
                         nn.Affine(5, 3, rng=2))


def _x(n=6, seed=0):
    return np.random.default_rng(seed).normal(size=(n, 4))


def test_params_keys_and_order():
    model = _model()
    keys = ["0.W", "0.b", "3.gamma", "3.beta", "4.W", "4.b"]
    assert list(model.params) == keys
    assert list(model.params.keys()) == keys and len(model.params) == 6
    assert model.params["0.W"] is model[0].params["W"]
    assert model.params["3.gamma"] is model[3].params["gamma"]
    assert "4.b" in model.params and "1.W" not in model.params and "9.W" not in model.params


def test_params_write_through_changes_the_output(xp):
    model = _model().astype("float64").to(xp)
    x = _arr(_x(), xp)
    before = _np(model.predict(x))
    W_new = _arr(np.ones((5, 3)), xp)
    model.params["4.W"] = W_new
    assert model[4].params["W"] is W_new
    after = _np(model.predict(x))
    assert not np.allclose(before, after)
    h = _np(model[:4].predict(x))
    np.testing.assert_allclose(after, h @ np.ones((5, 3)) + _np(model.params["4.b"]), rtol=1e-12)
    # in-place updates through the view (what an optimizer does) reach the layer too
    model.params["4.b"] += 1.0
    np.testing.assert_allclose(_np(model[4].params["b"]), 1.0)


def test_params_write_through_rejects_bad_keys_and_shapes():
    model = _model()
    with pytest.raises(ValueError, match=r"'0.W' has shape \(4, 5\), got a replacement of shape \(5, 4\)"):
        model.params["0.W"] = np.zeros((5, 4), dtype="float32")
    with pytest.raises(KeyError, match="no parameter '1.W'"):
        model.params["1.W"] = np.zeros((4, 5), dtype="float32")
    with pytest.raises(KeyError, match="keys look like '0.W'"):
        model.params["W"]
    with pytest.raises(TypeError, match="cannot be deleted"):
        del model.params["0.W"]


def test_load_params_from_another_model():
    a, b = _model(), _model()
    for k in b.params:
        b.params[k] = b.params[k] + 1.0
    a.params = b.params
    for k in a.params:
        assert a.params[k] is b.params[k]
    with pytest.raises(KeyError, match="expected exactly the keys"):
        a.params = {"0.W": a.params["0.W"]}


def test_grads_view_and_zero_grad(xp):
    model = _model().astype("float64").to(xp)
    assert len(model.grads) == 0
    y = model.forward(_arr(_x(), xp))
    model.backward(xp.ones_like(y))
    assert list(model.grads) == list(model.params)
    for k in model.params:
        assert tuple(model.grads[k].shape) == tuple(model.params[k].shape)
        assert model.grads[k] is model[int(k.split(".")[0])].grads[k.split(".", 1)[1]]
    model.zero_grad()
    assert len(model.grads) == 0 and model[0].grads == {}


def test_forward_passes_train_flag_and_predict_is_eval(xp):
    model = _model().astype("float64").to(xp)
    x = _arr(_x(), xp)
    y_train = _np(model.forward(x))
    assert model[2].mask is not None and model[3].train is True
    y_eval = _np(model.predict(x))
    assert model[2].mask is None and model[3].train is False
    assert not np.allclose(y_train, y_eval)
    # evaluation is a deterministic function of x: dropout off, batch norm on running stats
    np.testing.assert_array_equal(y_eval, _np(model.forward(x, train=False)))
    h = _np(model[0].forward(x))
    h = np.maximum(h, 0)
    rm, rv = _np(model[3].running_mean), _np(model[3].running_var)
    h = (h - rm) / np.sqrt(rv + 1e-5)
    np.testing.assert_allclose(y_eval, h @ _np(model.params["4.W"]) + _np(model.params["4.b"]), rtol=1e-12)


def test_backward_chains_in_reverse(xp):
    model = nn.Sequential(nn.Affine(4, 3, rng=0), nn.Tanh(), nn.Affine(3, 2, rng=1)).astype("float64").to(xp)
    x_np = _x(3)
    x = _arr(x_np, xp)
    dy = np.random.default_rng(1).normal(size=(3, 2))
    model.forward(x)
    dx = _np(model.backward(_arr(dy, xp)))
    W1, W2 = _np(model.params["0.W"]), _np(model.params["2.W"])
    h = np.tanh(x_np @ W1 + _np(model.params["0.b"]))
    dh = (dy @ W2.T) * (1 - h**2)
    np.testing.assert_allclose(dx, dh @ W1.T, rtol=1e-12)
    np.testing.assert_allclose(_np(model.grads["2.W"]), h.T @ dy, rtol=1e-12)
    np.testing.assert_allclose(_np(model.grads["0.W"]), x_np.T @ dh, rtol=1e-12)


def test_nested_sequential_keys_and_gradients(xp):
    inner = nn.Sequential(nn.Affine(3, 3, rng=1), nn.Sigmoid())
    model = nn.Sequential(nn.Affine(4, 3, rng=0), inner, nn.PReLU(3)).astype("float64").to(xp)
    assert list(model.params) == ["0.W", "0.b", "1.0.W", "1.0.b", "2.a"]
    W = _arr(np.eye(3), xp)
    model.params["1.0.W"] = W
    assert inner[0].params["W"] is W
    assert_layer_gradients(model, _arr(_x(2), xp), rtol=1e-6)


def test_list_behaviour_and_append():
    a, r, b = nn.Affine(2, 3, rng=0), nn.ReLU(), nn.Affine(3, 1, rng=1)
    model = nn.Sequential(a, r)
    assert model.append(b) is model
    assert len(model) == 3 and list(model) == [a, r, b] and model[-1] is b
    assert model.children() == (a, r, b)
    tail = model[1:]
    assert isinstance(tail, nn.Sequential) and list(tail) == [r, b] and list(tail.params) == ["1.W", "1.b"]
    assert list(nn.Sequential([a, r]).params) == ["0.W", "0.b"]
    empty = nn.Sequential()
    x = np.ones((2, 2), dtype="float32")
    assert empty.forward(x) is x and len(empty.params) == 0
    model.extend([nn.Sigmoid()])
    assert len(model) == 4


def test_repr_lists_layers():
    model = nn.Sequential(nn.Affine(4, 3, rng=0), nn.ReLU(), nn.Dropout(0.25), nn.Sequential(nn.BatchNorm(3)))
    text = repr(model)
    assert text.splitlines()[0] == "Sequential("
    assert "  (0): Affine(W=(4, 3), b=(3,))" in text
    assert "  (1): ReLU()" in text
    assert "  (2): Dropout(p=0.25)" in text
    assert "  (3): Sequential(\n    (0): BatchNorm(3, eps=1e-05, momentum=0.9)\n  )" in text
    assert repr(nn.Sequential()) == "Sequential()"


def test_to_and_astype_move_every_child(xp):
    model = _model()
    model.forward(_x().astype("float32"))
    assert model.astype("float64") is model
    assert all(backend.dtype_name(v.dtype) == "float64" for v in model.params.values())
    assert all(backend.dtype_name(v.dtype) == "float64" for v in model.buffers().values())
    assert list(model.buffers()) == ["3.running_mean", "3.running_var"]
    assert model.to(xp) is model
    target = backend.namespace(_arr(np.zeros(1), xp))
    for value in list(model.params.values()) + list(model.buffers().values()):
        assert backend.namespace(value) is target
    assert model.device == backend.device_name(_arr(np.zeros(1), xp))
    assert len(model.grads) == 0
    y = model.forward(_arr(_x(), xp))
    assert backend.namespace(y) is target and backend.dtype_name(y.dtype) == "float64"


def test_rejects_losses_and_non_layers():
    with pytest.raises(TypeError, match=r"layer 1 is a loss \(SoftmaxCrossEntropy\); keep the loss outside"):
        nn.Sequential(nn.ReLU(), nn.SoftmaxCrossEntropy())
    with pytest.raises(TypeError, match="Sequential: expected layers with forward and backward.*got an object "
                                        "of type int at position 0"):
        nn.Sequential(3)
    with pytest.raises(TypeError, match="got an object of type str at position 1"):
        nn.Sequential(nn.ReLU()).append("relu")
